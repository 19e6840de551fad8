/**
 * TLS for the client and peer listeners and for outbound peer connections, from etcd's flags: certificate, key,
 * trusted CA, client-certificate authentication, allowed CN, cipher suites (etcd's Go names), TLS 1.2 at least,
 * and certificate files reloaded when they change on disk (new connections see the new certificate).
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { ConfigError } from '../config';

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
  if (s.allowedCN) {
    const cn = s.allowedCN;
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const got = socket.getPeerCertificate()?.subject?.CN;
      if (got !== cn) {
        log('warn', 'rejected a peer whose certificate CN is not the allowed one', { remote: socket.remoteAddress, cn: got ?? '', allowed: cn });
        socket.destroy();
      }
    });
  }
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
