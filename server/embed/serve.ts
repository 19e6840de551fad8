/**
 * A client listener as etcd's (embed/serve.go): one address serves HTTP/1.1 (the v2 API, /metrics, /health) and
 * HTTP/2 (gRPC), in plain text and over TLS, and an http:// and an https:// URL with the same host and port share one
 * socket. What a connection speaks is decided once, when it is accepted, from its first bytes, the way etcd's cmux
 * decides (an HTTP/2 connection preface, then an HTTP/1.x request line within 4,096 bytes, then TLS); over TLS by
 * ALPN. From then on the socket belongs to the HTTP/1.1 server or to the gRPC server: no per-request cost.
 *
 * Like cmux, the first request line of a plain connection must end within its first 4,096 bytes (with its CRLF); a
 * longer one, or a first line that is not an HTTP/1.x request line, has the connection reset, unanswered.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { answerLikeGo } from '../pkg/go-compat';
import { TLSSettings, createTLSServer } from '../tls/tls-settings';
import { injectFixingAuthority } from './h2/authority';
import { H2Connection, type H2Options, type StreamHandler } from './h2/connection';
import { PlainConnection, PlainRoute } from './fast-http1';

/** HTTP/2's client connection preface (RFC 9113, 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** cmux reads the first line through a 4,096-byte buffer: the line and its "\n" must fit. */
const MAX_FIRST_LINE = 4096;
/** How often the plain connections are checked for idleness (PlainConnection.closeIfIdle). */
const IDLE_SWEEP_MS = 1000;
/** Go's http.DefaultMaxHeaderBytes (1 MB) plus the 4,096 bytes of slack its server reads beyond it. */
export const MAX_HEADER_BYTES = (1 << 20) + 4096;
/** The first byte of a TLS handshake record (a ClientHello). */
const TLS_HANDSHAKE = 0x16;

export type Protocol = 'h2' | 'http1' | 'tls' | 'refuse';

/**
 * What cmux would make of a connection that has sent `buf` so far (`ended`: and nothing more will come), or
 * undefined while it cannot tell yet. `tls`: the listener also takes TLS (an https:// URL on the same port).
 */
export function classify(buf: Buffer, ended: boolean, tlsToo: boolean): Protocol | undefined {
  if (buf.length === 0) return ended ? 'refuse' : undefined;
  if (tlsToo && buf[0] === TLS_HANDSHAKE) return 'tls';
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.compare(PREFACE, 0, n, 0, n) === 0) {
    if (n === PREFACE.length) return 'h2';
    if (!ended) return undefined;
  }
  const nl = buf.indexOf(0x0a);
  let line: Buffer;
  if (nl >= 0 && nl < MAX_FIRST_LINE) line = buf.subarray(0, nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl);
  else if (buf.length >= MAX_FIRST_LINE) return tlsToo ? 'tls' : 'refuse';
  else if (ended) line = buf;
  else return undefined;
  return isHTTP1RequestLine(line.toString('latin1')) ? 'http1' : tlsToo ? 'tls' : 'refuse';
}

/** cmux's test: "METHOD URI PROTO" split at the first two spaces, PROTO as Go's ParseHTTPVersion reads it, major 1. */
function isHTTP1RequestLine(line: string): boolean {
  const s1 = line.indexOf(' ');
  if (s1 < 0) return false;
  const s2 = line.indexOf(' ', s1 + 1);
  if (s2 < 0) return false;
  return /^HTTP\/1\.[0-9]$/.test(line.slice(s2 + 1));
}

/** Where HTTP/2 connections go: a gRPC server's injector (see grpcServer). */
export interface HTTP2Sink {
  injectConnection(connection: import('node:stream').Duplex): void;
  /**
   * Stop: every connection gets a GOAWAY and closes once its calls are done (an idle one at once), as grpc-go's
   * GracefulStop; calls still running after `graceMs` are cut.
   */
  drain(graceMs: number): void;
  destroy(): void;
}

/**
 * Connections handed to a gRPC server; TLS, when there is any, is already done by our listener. A Go client's URL
 * given as its authority is made acceptable to Node's HTTP/2 first (h2/authority.ts).
 */
export function grpcSink(server: grpc.Server): HTTP2Sink {
  const inner = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  // Connections whose first request is still awaited (see h2/authority.ts), destroyed if the sink goes first.
  const looking = new Set<() => void>();
  return {
    injectConnection(connection) {
      const socket = connection as net.Socket;
      const stop = injectFixingAuthority(socket, (c) => {
        looking.delete(stop);
        inner.injectConnection(c);
      });
      looking.add(stop);
      socket.once('close', () => looking.delete(stop));
    },
    drain(graceMs) {
      for (const stop of looking) stop();
      looking.clear();
      inner.drain(graceMs);
    },
    destroy() {
      for (const stop of looking) stop();
      looking.clear();
      inner.destroy();
    },
  };
}

/**
 * Connections whose HTTP/2 is read and written by us (h2/connection.ts), each new stream given to `serve` (the gRPC
 * server's dispatch): no Node HTTP/2 session, and any authority a client sends is taken, as etcd's Go server takes it.
 */
export function h2Sink(serve: StreamHandler, opts: H2Options): HTTP2Sink {
  const conns = new Set<H2Connection>();
  return {
    injectConnection(connection) {
      const c = new H2Connection(connection as net.Socket, serve, opts);
      conns.add(c);
      c.onClose(() => conns.delete(c));
    },
    drain(graceMs) {
      for (const c of [...conns]) c.drain(graceMs);
    },
    destroy() {
      for (const c of [...conns]) c.destroy();
    },
  };
}

export interface ListenAddress {
  /** A TCP host and port, or a unix socket path. */
  host?: string;
  port?: number;
  path?: string;
}

/**
 * Where a listen URL listens: http(s)://h:p on TCP, unix(s)://h:p on the socket file "h:p" (a client URL's path
 * appended), as etcd does.
 */
export function listenAddress(u: URL, side: 'client' | 'peer' = 'client'): ListenAddress {
  if (u.protocol === 'unix:' || u.protocol === 'unixs:') return { path: side === 'client' ? u.host + (u.pathname === '/' ? '' : u.pathname) : u.host };
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

export function isTLSScheme(u: URL): boolean {
  return u.protocol === 'https:' || u.protocol === 'unixs:';
}

export interface ClientListenerOptions {
  /** The URLs served on this address (one, or an http and an https URL with the same host and port). */
  urls: string[];
  tls?: TLSSettings;
  /** Without one, connections are taken but wait until serve() (see there). */
  handler?: http.RequestListener;
  /** HTTP/2 connections (h2c preface or ALPN h2); without one, they are refused like any unknown protocol. */
  http2?: HTTP2Sink;
  log: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void;
}

/**
 * One listening socket for one or two client URLs. Offers what the member's stop needs of an http.Server: close,
 * closeIdleConnections, closeAllConnections.
 */
export class ClientListener {
  private readonly net: net.Server;
  readonly http: http.Server;
  private readonly tlsServer?: http.Server;
  private readonly stopWatching: () => void = () => undefined;
  private readonly plain: boolean;
  private readonly secure: boolean;
  private readonly pending = new Set<net.Socket>();
  private socketPath?: string;
  private readonly address0: ListenAddress;
  private handler?: http.RequestListener;
  private sink?: HTTP2Sink;
  /** Connections taken before serve(), paused; undefined once serving. */
  private held: Set<net.Socket> | undefined;
  /** The plain HTTP/1.1 path's requests (see fast-http1.ts), and its connections. */
  private plainRoute?: PlainRoute;
  private readonly plainConnections = new Set<PlainConnection>();
  /** Checks the plain connections for idleness while there are any (see PlainConnection.closeIfIdle). */
  private idleSweep?: NodeJS.Timeout;
  private readonly keepAliveMs: number;

  constructor(private readonly o: ClientListenerOptions) {
    this.handler = o.handler;
    this.sink = o.http2;
    if (!o.handler) this.held = new Set();
    const handler: http.RequestListener = (req, res) => this.handler!(req, res);
    const urls = o.urls.map((u) => new URL(u));
    this.address0 = listenAddress(urls[0]);
    this.plain = urls.some((u) => !isTLSScheme(u));
    this.secure = urls.some(isTLSScheme);
    const httpOptions: http.ServerOptions = { keepAliveTimeout: 30000, maxHeaderSize: MAX_HEADER_BYTES };
    this.keepAliveMs = httpOptions.keepAliveTimeout!;
    this.http = http.createServer(httpOptions, handler);
    answerLikeGo(this.http);
    if (this.secure) {
      const t = createTLSServer(
        o.tls!,
        handler,
        o.log,
        httpOptions,
        (s: tls.TLSSocket) => (this.sink ? this.sink.injectConnection(s) : s.destroy()),
        (s, nodeServer) => (this.plainRoute ? this.servePlain(s, Buffer.alloc(0), nodeServer) : nodeServer(s)),
      );
      answerLikeGo(t.server);
      this.tlsServer = t.server;
      this.stopWatching = t.stopWatching;
    }
    // Half-open allowed, as an HTTP/1.1 server's sockets are; the other owners get theirs as they expect.
    this.net = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  get urls(): string[] {
    return this.o.urls;
  }

  /**
   * Starts serving: the connections taken while the member was starting are served now, in order. A listener opened
   * early (as etcd's are, before the data is loaded) lets clients connect at once and wait, instead of being refused
   * and backing off (a Go client then retries only after a second or more). `plain`: the requests of plain-text
   * HTTP/1.1 connections answered without Node's HTTP server (fast-http1.ts); the rest go to `handler`.
   */
  serve(handler: http.RequestListener, http2?: HTTP2Sink, plain?: PlainRoute): void {
    this.handler = handler;
    this.sink = http2;
    this.plainRoute = plain;
    const held = this.held ?? new Set();
    this.held = undefined;
    for (const socket of held) if (!socket.destroyed) this.accept(socket);
  }

  /** The first bytes decide who gets the socket; they are put back for its new owner to read. */
  private accept(socket: net.Socket): void {
    if (this.held) {
      // Nothing reads it yet: what it sends waits in its buffers for the owner serve() gives it.
      this.held.add(socket);
      socket.once('close', () => this.held?.delete(socket));
      // An error before serving (a reset) only ends this connection.
      socket.on('error', () => socket.destroy());
      return;
    }
    if (!this.plain) {
      socket.allowHalfOpen = false;
      return void this.tlsServer!.emit('connection', socket); // https only: every connection is TLS
    }
    this.pending.add(socket);
    let buf: Buffer = Buffer.alloc(0);
    const decide = (ended: boolean): void => {
      const p = classify(buf, ended, this.secure);
      if (p === undefined) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      this.pending.delete(socket);
      if (ended) {
        // Half-closed before it could be told apart: only a complete HTTP/1.x request can still be answered.
        if (p !== 'http1') return void socket.destroy();
        this.http.emit('connection', socket);
        socket.emit('data', buf);
        socket.emit('end');
        return;
      }
      if (p === 'refuse') {
        // As cmux: no answer, and a reset for what is left unread.
        return void socket.resetAndDestroy();
      }
      socket.pause();
      if (p === 'http1' && this.plainRoute) return this.servePlain(socket, buf);
      socket.unshift(buf);
      // The HTTP/2 session and the TLS socket take what was put back themselves; the HTTP/1.1 parser is fed it once
      // the socket flows again.
      if (p === 'h2' && this.sink) {
        socket.allowHalfOpen = false; // as an HTTP/2 server's own sockets
        this.sink.injectConnection(socket);
      } else if (p === 'http1') {
        this.http.emit('connection', socket);
        socket.resume();
      } else if (p === 'tls') {
        socket.allowHalfOpen = false;
        this.tlsServer!.emit('connection', socket);
      } else socket.resetAndDestroy();
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      decide(false);
    };
    const onEnd = (): void => decide(true);
    const onError = (): void => {
      this.pending.delete(socket);
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  }

  /**
   * A plain-text or TLS HTTP/1.x connection, served by the plain path until it hands the connection over to Node's
   * server (`nodeServer`: the HTTP server's, or the HTTPS server's, own handling of a new connection).
   */
  private servePlain<S extends net.Socket>(socket: S, first: Buffer, nodeServer: (s: S) => void = (s) => void this.http.emit('connection', s)): void {
    const c = new PlainConnection(socket, first, {
      route: this.plainRoute!,
      keepAliveMs: this.keepAliveMs,
      done: (conn) => this.plainConnections.delete(conn),
      handOver: (s, unread, ended) => {
        if (ended) {
          nodeServer(s as S);
          if (unread.length > 0) s.emit('data', unread);
          s.emit('end');
          return;
        }
        s.pause();
        if (unread.length > 0) s.unshift(unread);
        nodeServer(s as S);
        s.resume();
      },
    });
    // Not yet done (closed or handed over) while constructing: tracked for the member's stop, and for idleness.
    if (c.serving) {
      this.plainConnections.add(c);
      this.idleSweep ??= setInterval(() => this.sweepIdlePlain(), IDLE_SWEEP_MS).unref();
    }
  }

  listen(): Promise<void> {
    const a = this.address0;
    return new Promise<void>((resolve, reject) => {
      this.net.once('error', reject);
      const done = (): void => {
        this.net.off('error', reject);
        // The HTTP servers never listen themselves: this starts their connection tracking (idle connections closed
        // at stop, Node's request and header timeouts) as their own listen would.
        this.http.emit('listening');
        this.tlsServer?.emit('listening');
        resolve();
      };
      if (a.path !== undefined) {
        // As etcd's client listeners: an existing socket file is not replaced (EADDRINUSE); it is removed when closed.
        this.socketPath = a.path;
        this.net.listen(a.path, done);
      } else this.net.listen(a.port, a.host, done);
    });
  }

  address(): net.AddressInfo | string | null {
    return this.net.address();
  }

  close(cb?: () => void): void {
    this.net.close(() => {
      if (this.socketPath !== undefined) fs.rmSync(this.socketPath, { force: true });
      cb?.();
    });
    this.stopWatching();
    for (const s of this.pending) s.destroy();
    for (const s of this.held ?? []) s.destroy();
    this.closeIdlePlain(); // the busy ones are still checked for idleness until they close
    this.http.close();
    this.tlsServer?.close();
  }

  /** Closes the plain connections idle past the keep-alive time; stops checking while there are none. */
  private sweepIdlePlain(): void {
    const now = Date.now();
    for (const c of [...this.plainConnections]) c.closeIfIdle(now);
    if (this.plainConnections.size === 0 && this.idleSweep) {
      clearInterval(this.idleSweep);
      this.idleSweep = undefined;
    }
  }

  private closeIdlePlain(): void {
    for (const c of [...this.plainConnections]) if (c.idle) c.destroy();
  }

  closeIdleConnections(): void {
    this.closeIdlePlain();
    this.http.closeIdleConnections();
    this.tlsServer?.closeIdleConnections();
  }

  closeAllConnections(): void {
    for (const c of [...this.plainConnections]) c.destroy();
    this.http.closeAllConnections();
    this.tlsServer?.closeAllConnections();
  }
}

/** Client URLs grouped by the address they listen on: an http and an https URL on one port share a listener. */
export function groupByAddress(urls: string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const s of urls) {
    const a = listenAddress(new URL(s));
    const key = a.path !== undefined ? `unix|${a.path}` : `tcp|${a.host}|${a.port}`;
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return [...groups.values()];
}
