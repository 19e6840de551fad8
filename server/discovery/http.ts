/**
 * The discovery service's HTTP, as etcd's v2 client does it for v2discovery: one endpoint, redirects followed, an
 * optional HTTP proxy (--discovery-proxy: absolute-form requests for http://, CONNECT tunnels for https://), the
 * system's CAs for https. A failed round trip or a 5xx answer is a ClusterError (the Go client's: etcd retries on it);
 * a request timeout is "context deadline exceeded" (etcd gives up on it).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';

/** The Go client's ClusterError: every endpoint failed (here, the one). etcd retries discovery on it. */
export class ClusterError extends Error {
  constructor(readonly errors: string[]) {
    super(`client: etcd cluster is unavailable or misconfigured${errors.map((e, i) => `; error #${i}: ${e}\n`).join('')}`);
  }

  detail(): string {
    return this.errors.map((e, i) => `error #${i}: ${e}\n`).join('');
  }
}

/** Go's context.DeadlineExceeded: a request that got no answer within its timeout. */
export class DeadlineExceeded extends Error {
  constructor() {
    super('context deadline exceeded');
  }
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestSpec {
  method: 'GET' | 'PUT';
  url: URL;
  form?: string;
  /** Go's DefaultRequestTimeout (5 s) for reads and writes; none for a watch. */
  timeoutMs?: number;
  /** The Go client's one-shot requests (a create): a 5xx is returned as that error, not a ClusterError. */
  oneShot?: boolean;
}

/** etcd's discovery transport's dial timeout. */
const DIAL_TIMEOUT_MS = 30000;

/** Go's dial error texts for the common failures. */
function describe(err: NodeJS.ErrnoException, url: URL, method: string): string {
  const hostport = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  let why: string;
  if (err.code === 'ECONNREFUSED') why = `dial tcp ${hostport}: connect: connection refused`;
  else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') why = `dial tcp: lookup ${url.hostname}: no such host`;
  else if (err.code === 'ECONNRESET') why = 'read: connection reset by peer';
  else if (err.code === 'ETIMEDOUT') why = `dial tcp ${hostport}: i/o timeout`;
  else if (err.code === 'ERR_INVALID_PROTOCOL') why = `unsupported protocol scheme "${url.protocol.replace(/:$/, '')}"`;
  else why = err.message;
  return `${method[0]}${method.slice(1).toLowerCase()} "${url.href}": ${why}`;
}

export class DiscoveryHTTP {
  private readonly proxy?: URL;

  constructor(proxy?: URL) {
    this.proxy = proxy;
  }

  /** One request, redirects followed (up to 10, as the Go client), as the Go client would answer it. */
  async do(spec: RequestSpec): Promise<Answer> {
    let url = spec.url;
    for (let hop = 0; ; hop++) {
      let a: Answer;
      try {
        a = await this.once(spec, url);
      } catch (err) {
        if (err instanceof DeadlineExceeded) throw err;
        const text = describe(err as NodeJS.ErrnoException, url, spec.method);
        if (spec.oneShot) throw new Error(text);
        throw new ClusterError([text]);
      }
      if (a.status >= 300 && a.status < 400 && typeof a.headers.location === 'string' && hop < 10) {
        url = new URL(a.headers.location, url);
        continue;
      }
      if (Math.floor(a.status / 100) === 5) {
        const ep = `${spec.url.protocol}//${spec.url.host}`;
        const text = a.status === 500 || a.status === 503 ? `client: etcd member ${ep} has no leader` : `client: etcd member ${ep} returns server error [${http.STATUS_CODES[a.status] ?? ''}]`;
        if (spec.oneShot) throw new Error(text);
        throw new ClusterError([text]);
      }
      return a;
    }
  }

  private async once(spec: RequestSpec, url: URL): Promise<Answer> {
    const deadline = spec.timeoutMs ? Date.now() + spec.timeoutMs : undefined;
    const secure = url.protocol === 'https:';
    // Through a proxy, an https:// request goes in a CONNECT tunnel; an http:// one names its absolute URL.
    const tunnel = this.proxy && secure ? await this.tunnel(url, deadline) : undefined;
    return new Promise<Answer>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {};
      if (spec.form !== undefined) {
        headers['Content-Type'] = 'application/x-www-form-urlencoded';
        headers['Content-Length'] = Buffer.byteLength(spec.form);
      }
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      const onAnswer = (res: http.IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', fail);
      };
      let req: http.ClientRequest;
      if (tunnel) {
        req = https.request(url, { method: spec.method, headers, agent: false, createConnection: () => tunnel }, onAnswer);
      } else if (this.proxy) {
        const p = this.proxy;
        req = http.request({ host: p.hostname, port: p.port || 80, method: spec.method, path: url.href, headers: { ...headers, Host: url.host }, agent: false }, onAnswer);
      } else {
        req = (secure ? https : http).request(url, { method: spec.method, headers, agent: false }, onAnswer);
      }
      const timer = deadline !== undefined ? setTimeout(() => {
        req.destroy();
        reject(new DeadlineExceeded());
      }, Math.max(0, deadline - Date.now())) : undefined;
      // As etcd's transport: a 30 s dial timeout, and TCP keepalives every 30 s, so that a watch on a service that
      // went away silently ends (and is retried) instead of waiting forever.
      req.on('socket', (sock: net.Socket) => {
        sock.setKeepAlive(true, 30000);
        if (!sock.connecting) return;
        const dial = setTimeout(() => req.destroy(Object.assign(new Error('i/o timeout'), { code: 'ETIMEDOUT' })), DIAL_TIMEOUT_MS);
        sock.once('connect', () => clearTimeout(dial));
        sock.once('close', () => clearTimeout(dial));
      });
      req.on('error', fail);
      if (spec.form !== undefined) req.write(spec.form);
      req.end();
    });
  }

  /** A TLS connection to url's host through the proxy's CONNECT. */
  private tunnel(url: URL, deadline: number | undefined): Promise<tls.TLSSocket> {
    const p = this.proxy!;
    const target = `${url.hostname}:${url.port || 443}`;
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const connect = http.request({ host: p.hostname, port: p.port || 80, method: 'CONNECT', path: target, headers: { Host: target }, agent: false });
      const timer = deadline !== undefined ? setTimeout(() => {
        connect.destroy();
        reject(new DeadlineExceeded());
      }, Math.max(0, deadline - Date.now())) : undefined;
      connect.on('connect', (res: http.IncomingMessage, s: net.Socket) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          s.destroy();
          reject(new Error(`proxyconnect tcp: ${res.statusCode} ${res.statusMessage}`));
          return;
        }
        resolve(tls.connect({ socket: s, servername: net.isIP(url.hostname) ? undefined : url.hostname }));
      });
      connect.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      connect.end();
    });
  }
}
