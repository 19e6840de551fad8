/**
 * TLS for the client and peer listeners and for outbound peer connections, from etcd's flags: certificate, key,
 * trusted CA, client-certificate authentication, allowed CN or hostname, revocation lists, cipher suites (etcd's Go
 * names), TLS 1.2 at least, and certificate files reloaded when they change on disk (new connections see the new
 * certificate). A connection whose client certificate fails one of etcd's checks is closed before any request on
 * it is read (see client-cert-checks.ts).
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { ConfigError } from '../config';
import { ClientCertCheck, clientCertChecks } from './client-cert-checks';

export interface TLSSettings {
  certFile: string;
  keyFile: string;
  trustedCAFile: string;
  clientCertAuth: boolean;
  /** Self-signed (auto TLS): peers' certificates cannot be verified, as etcd's SelfCert says. */
  insecureSkipVerify: boolean;
  cipherSuites: string[];
  /** Peers only: the CN a client certificate must carry. */
  allowedCN?: string;
  /** A client certificate must be valid for this hostname or IP. */
  allowedHostname?: string;
  /** A CRL file: client certificates with a serial listed there are refused. */
  crlFile?: string;
  /** Peers (as etcd): a client certificate with IP or DNS SANs must name the address the connection comes from. */
  checkSAN?: boolean;
}

/** Go's names of the TLS 1.2 cipher suites etcd accepts in --cipher-suites, and OpenSSL's for them. */
const CIPHER_SUITES: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
};

/** OpenSSL's cipher list for etcd's --cipher-suites (undefined: Node's defaults). */
export function opensslCiphers(suites: string[]): string | undefined {
  if (suites.length === 0) return undefined;
  return suites
    .map((s) => {
      const c = CIPHER_SUITES[s];
      if (!c) throw new ConfigError(`unexpected TLS cipher suite ${JSON.stringify(s)}`);
      return c;
    })
    .join(':');
}

function read(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** What a TLS server (or client) is given, read from the files now. */
export function contextOptions(s: TLSSettings): tls.SecureContextOptions {
  return {
    cert: read(s.certFile, 'certificate file'),
    key: read(s.keyFile, 'key file'),
    ca: s.trustedCAFile ? read(s.trustedCAFile, 'trusted CA file') : undefined,
    minVersion: 'TLSv1.2',
    ciphers: opensslCiphers(s.cipherSuites),
  };
}

export function serverOptions(s: TLSSettings): https.ServerOptions {
  return {
    ...contextOptions(s),
    requestCert: s.clientCertAuth,
    rejectUnauthorized: s.clientCertAuth,
  };
}

/** For outbound peer connections: our certificate as a client, and how the peer's is verified. */
export function clientAgentOptions(s: TLSSettings): https.AgentOptions {
  return { ...contextOptions(s), rejectUnauthorized: !s.insecureSkipVerify };
}

/**
 * Watches the certificate, key and CA files; calls `onChange` with fresh options when one changes (and is
 * readable: a half-written rotation keeps the old certificate). Returns a function that stops watching.
 */
export function watchCertificates(s: TLSSettings, onChange: () => void, warn: (msg: string, meta: Record<string, unknown>) => void, intervalMs = 1000): () => void {
  const files = [s.certFile, s.keyFile, s.trustedCAFile].filter((f) => f !== '');
  const listener = (curr: fs.Stats, prev: fs.Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    try {
      onChange();
    } catch (err) {
      warn('could not reload the TLS certificates; keeping the previous ones', { error: (err as Error).message });
    }
  };
  for (const f of files) fs.watchFile(f, { interval: intervalMs, persistent: false }, listener);
  return () => {
    for (const f of files) fs.unwatchFile(f, listener);
  };
}

/**
 * Runs etcd's checks on every connection that presented a client certificate before the HTTP server sees it: the
 * server's own connection handling is taken off the 'secureConnection' event and given the socket only once the
 * checks passed (at once when they are synchronous; after a DNS lookup for the SAN check). A socket that fails one
 * is closed unread.
 */
function guardConnections(server: https.Server, checks: ClientCertCheck[], log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void): void {
  const handlers = server.listeners('secureConnection') as ((socket: tls.TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  const admit = (socket: tls.TLSSocket) => {
    for (const h of handlers) h.call(server, socket);
  };
  const refuse = (socket: tls.TLSSocket, why: string) => {
    log('warn', 'rejected a connection whose client certificate failed a check', { remote: socket.remoteAddress, reason: why });
    socket.destroy();
  };
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const cert = socket.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return admit(socket); // no client certificate: nothing to check
    const remote = socket.remoteAddress ?? '';
    for (let i = 0; i < checks.length; i++) {
      let r: ReturnType<ClientCertCheck>;
      try {
        r = checks[i](cert, remote);
      } catch (err) {
        r = `check failed: ${(err as Error).message}`;
      }
      if (r instanceof Promise) {
        // The rest asynchronously; meanwhile what the client sends waits in the socket.
        void (async () => {
          let why = await r.catch((err: Error) => err.message);
          for (let j = i + 1; !why && j < checks.length; j++) why = await Promise.resolve().then(() => checks[j](cert, remote)).catch((err: Error) => err.message);
          if (socket.destroyed) return;
          if (why) refuse(socket, why);
          else admit(socket);
        })().catch(() => socket.destroy());
        return;
      }
      if (r) return refuse(socket, r);
    }
    admit(socket);
  });
}

/** An https server for a listener, with reloadable certificates and etcd's checks of client certificates. */
export function createTLSServer(
  s: TLSSettings,
  handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void,
  log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void,
  extra: https.ServerOptions = {},
): { server: https.Server; stopWatching: () => void } {
  const server = https.createServer({ ...serverOptions(s), ...extra }, handler);
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    const plain = /wrong version number|http request|unknown protocol|packet length too long/i.test(err.message);
    log('warn', plain ? 'rejected a plain-HTTP request on an https listener' : 'rejected a TLS connection', {
      remote: socket.remoteAddress,
      error: err.code ?? err.message,
    });
  });
  const checks = clientCertChecks(s);
  if (checks.length > 0) guardConnections(server, checks, log);
  const stopWatching = watchCertificates(
    s,
    () => {
      server.setSecureContext(serverOptions(s));
      log('info', 'reloaded TLS certificates', { certFile: s.certFile });
    },
    (msg, meta) => log('warn', msg, meta),
  );
  return { server, stopWatching };
}
