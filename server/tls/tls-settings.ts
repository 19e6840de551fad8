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
import { ClientCertCheck, clientCertChecks, subjectAltNames } from './client-cert-checks';

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
 * Takes the server's own connection handling off the 'secureConnection' event: a connection that negotiated h2 goes
 * to `http2`; any other is given to the HTTP/1.1 server only once etcd's checks of its client certificate passed (at
 * once when they are synchronous; after a DNS lookup for the SAN check). A socket that fails one is closed unread,
 * and the log says why in etcd's words.
 */
/**
 * Takes an HTTP/1.x connection once its handshake is done and its client certificate checked; `nodeServer` gives it
 * to the HTTPS server's own HTTP/1.1 handling (see server/embed/fast-http1.ts).
 */
export type PlainHTTP1 = (socket: tls.TLSSocket, nodeServer: (socket: tls.TLSSocket) => void) => void;

function guardConnections(
  server: https.Server,
  checks: ClientCertCheck[],
  log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void,
  http2?: (socket: tls.TLSSocket) => void,
  http1?: PlainHTTP1,
): void {
  const handlers = server.listeners('secureConnection') as ((socket: tls.TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  const serveHTTP1 = (socket: tls.TLSSocket) => {
    for (const h of handlers) h.call(server, socket);
  };
  const admit = (socket: tls.TLSSocket) => {
    if (http2 && socket.alpnProtocol === 'h2') return http2(socket);
    if (http1) return http1(socket, serveHTTP1);
    serveHTTP1(socket);
  };
  const refuse = (socket: tls.TLSSocket, why: string) => {
    logRejected(log, socket, CLIENT_CERT_AUTH_FAILED, why);
    socket.destroy();
  };
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (checks.length === 0) return admit(socket);
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

/** etcd's words for a certificate refused by its CN, hostname, SAN or CRL checks (pkg/transport/listener.go). */
export const CLIENT_CERT_AUTH_FAILED = 'client certificate authentication failed';

/**
 * Logs a refused TLS connection as etcd does (embed's logTLSHandshakeFailure): "rejected connection from <addr>
 * (error <Go's error>, ServerName <sni>[, IPAddresses, DNSNames of the certificate])", with our reason beside it.
 */
export function logRejected(
  log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void,
  socket: tls.TLSSocket,
  error: string,
  reason?: string,
): void {
  // A socket Node has already closed answers from the TCP socket under it, which cached its peer at accept.
  const parent = (socket as tls.TLSSocket & { _parent?: { remoteAddress?: string; remotePort?: number } | null })._parent;
  const remote = `${socket.remoteAddress ?? parent?.remoteAddress ?? ''}:${socket.remotePort ?? parent?.remotePort ?? ''}`;
  const serverName = (socket as tls.TLSSocket & { servername?: string | false }).servername || '';
  let cert: tls.PeerCertificate | undefined;
  try {
    cert = socket.getPeerCertificate();
  } catch {
    cert = undefined;
  }
  let msg = `rejected connection from ${JSON.stringify(remote)} (error ${JSON.stringify(error)}, ServerName ${JSON.stringify(serverName)}`;
  const meta: Record<string, unknown> = { 'remote-addr': remote, 'server-name': serverName, error };
  if (cert && Object.keys(cert).length > 0) {
    const { ips, dnsNames } = subjectAltNames(cert);
    msg += `, IPAddresses ${goQuoteList(ips)}, DNSNames ${goQuoteList(dnsNames)}`;
    meta['ip-addresses'] = ips;
    meta['dns-names'] = dnsNames;
  }
  if (reason) meta.reason = reason;
  msg += ')';
  log('warn', msg, meta);
}

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteList(xs: string[]): string {
  return `[${xs.map((x) => JSON.stringify(x)).join(' ')}]`;
}

/**
 * Go's error for a TLS handshake that failed on our side, from what OpenSSL says: why a client certificate was
 * refused (none, unknown authority, expired, not for client use), or a plain-HTTP request on a TLS port.
 */
export function goHandshakeError(err: Error & { code?: string }, socket: tls.TLSSocket): string {
  const m = `${err.code ?? ''} ${err.message}`;
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|peer did not return a certificate/i.test(m)) return "tls: client didn't provide a certificate";
  // Node verifies the chain after the handshake and closes the socket (no alert is possible there); it keeps why.
  const authorizationError = (socket as tls.TLSSocket & { authorizationError?: string }).authorizationError;
  if (authorizationError) return `tls: failed to verify client certificate: ${goX509Error(authorizationError, socket)}`;
  if (/CERTIFICATE_VERIFY_FAILED|certificate verify failed/i.test(m)) {
    const v = verifyError(socket);
    return `tls: failed to verify client certificate: ${goX509Error(v, socket)}`;
  }
  if (/wrong version number|http request|unknown protocol|packet length too long/i.test(m)) return 'tls: first record does not look like a TLS handshake';
  if (/ECONNRESET|socket hang up|EPIPE/i.test(m)) return 'EOF';
  if (/alert/i.test(m)) return `remote error: tls: ${alertName(m)}`;
  return err.message;
}

/** The X.509 verification result OpenSSL kept for the connection (CERT_HAS_EXPIRED, ...), when it did. */
function verifyError(socket: tls.TLSSocket): string {
  const h = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  try {
    const e = h?.verifyError?.();
    return e ? (e.code ?? e.message) : '';
  } catch {
    return '';
  }
}

/** Go's x509 error texts for OpenSSL's verification codes. */
function goX509Error(code: string, socket: tls.TLSSocket): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID': {
      let when = '';
      try {
        const c = socket.getPeerCertificate();
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        const t = code === 'CERT_HAS_EXPIRED' ? new Date(c.valid_to) : new Date(c.valid_from);
        when = `: current time ${now} is ${code === 'CERT_HAS_EXPIRED' ? 'after' : 'before'} ${t.toISOString().replace(/\.\d+Z$/, 'Z')}`;
      } catch {
        when = '';
      }
      return `x509: certificate has expired or is not yet valid${when}`;
    }
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
      return 'x509: certificate signed by unknown authority';
    case 'INVALID_PURPOSE':
      return 'x509: certificate specifies an incompatible key usage';
    case 'CERT_REVOKED':
      return 'x509: certificate revoked';
    default:
      return code ? `x509: ${code}` : 'x509: certificate verification failed';
  }
}

/** Go's names of TLS alerts, from OpenSSL's message ("sslv3 alert bad certificate", "tlsv13 alert certificate required"). */
export function alertName(message: string): string {
  const m = /alert ([a-z ]+?)(?:[:(]|$)/i.exec(message);
  const openssl = (m?.[1] ?? '').trim().toLowerCase();
  const go: Record<string, string> = {
    'bad certificate': 'bad certificate',
    'unknown ca': 'unknown certificate authority',
    'certificate expired': 'expired certificate',
    'certificate revoked': 'revoked certificate',
    'unsupported certificate': 'unsupported certificate',
    'certificate unknown': 'unknown certificate',
    'certificate required': 'certificate required',
    'handshake failure': 'handshake failure',
    'protocol version': 'protocol version not supported',
    'decrypt error': 'error decrypting message',
    'internal error': 'internal error',
    'unrecognized name': 'unrecognized name',
    'no application protocol': 'no application protocol',
  };
  return go[openssl] ?? (openssl || 'unknown alert');
}

/**
 * ALPN when h2 connections go to the gRPC server: h2 only for a client that offers no http/1.1. etcd's TLS listener
 * picks h2 for every client that offers it and then sends each HTTP/2 request by its content type (gRPC or its HTTP
 * handler: the v2 API, /health, /metrics); our gRPC server takes whole connections, so a client that can speak
 * HTTP/1.1 (curl, browsers; gRPC clients offer h2 alone) speaks it and gets the answers etcd's HTTP handler gives.
 */
export function selectALPN(offered: string[]): string | undefined {
  if (offered.includes('http/1.1')) return 'http/1.1';
  return offered.includes('h2') ? 'h2' : undefined;
}

/**
 * An https server for a listener, with reloadable certificates and etcd's checks of client certificates; ALPN offers
 * h2 too when `http2` takes such connections (see selectALPN).
 */
export function createTLSServer(
  s: TLSSettings,
  handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void,
  log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void,
  extra: https.ServerOptions = {},
  http2?: (socket: tls.TLSSocket) => void,
  http1?: PlainHTTP1,
): { server: https.Server; stopWatching: () => void } {
  const alpn = http2 ? { ALPNCallback: ({ protocols }: { protocols: string[] }) => selectALPN(protocols) } : {};
  const server = https.createServer({ ...serverOptions(s), ...alpn, ...extra }, handler);
  // The peer's address is read (and cached) while the TCP socket is open: a refusal is logged with it after Node
  // has closed the connection.
  server.prependListener('connection', (raw: import('node:net').Socket) => void raw.remotePort);
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    logRejected(log, socket, goHandshakeError(err, socket), err.code ?? err.message);
  });
  const checks = clientCertChecks(s);
  if (checks.length > 0 || http2 || http1) guardConnections(server, checks, log, http2, http1);
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
