/**
 * The plain HTTP/1.1 path: the common requests of a plain-text client connection (a v2 key read or write, one
 * request at a time, as etcdctl, the v2 client libraries and load generators send them) read and answered straight on
 * the socket, without Node's HTTP server's per-request objects (IncomingMessage, ServerResponse, their streams and
 * events), which cost as much CPU as the whole of the request's own work.
 *
 * Only requests this module reads with certainty are taken: a request line of a known method and a plain origin-form
 * target, headers it knows to be harmless, a body given by Content-Length. Anything else (chunked bodies, Expect,
 * Upgrade, Connection: close, HTTP/1.0, a header block that does not parse as plainly, a request the route declines)
 * hands the connection, from that request on and with the bytes not yet answered, to Node's HTTP server for good,
 * which then answers as it always has. The answers are byte for byte those Node's server writes for the same handler
 * (test/embed/fast-http1.test.ts compares them).
 *
 * Requests on one connection are served one at a time, in order, as Go's server serves them: a pipelined read sees
 * the write before it.
 */
import { STATUS_CODES } from 'node:http';
import type * as net from 'node:net';

/** A request read whole: method, origin-form target, lower-case header names (each once), and the body if any. */
export interface PlainRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  socket: net.Socket;
}

/** An answer: its status, header lines after `before` (in order), and body (undefined: none, as for HEAD). */
export interface PlainAnswer {
  status: number;
  headers: Record<string, string>;
  body: string | undefined;
}

/** 'drop': close the connection unanswered, as Go's server does after a handler's panic. */
export type PlainOutcome = PlainAnswer | 'drop';

/** What a route makes of a request: header lines sent first (CORS), and the answer, now or later. */
export interface PlainReply {
  before: string;
  answer: PlainOutcome | Promise<PlainOutcome>;
}

/** The requests taken here; undefined hands this request, and the connection, to Node's server. */
export type PlainRoute = (r: PlainRequest) => PlainReply | undefined;

/** Header blocks longer than this are Node's to read (and to refuse at its own limit). */
export const MAX_PLAIN_HEAD = 16 * 1024;
/** Bodies longer than this are Node's to read. */
export const MAX_PLAIN_BODY = 1024 * 1024;
const MAX_HEADERS = 64;

const METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE']);
/** Headers whose meaning this path does not implement. */
const NOT_PLAIN = new Set(['transfer-encoding', 'expect', 'upgrade', 'te', 'trailer', 'http2-settings', 'proxy-connection', 'keep-alive']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII only: bytes Node's parser would refuse or read otherwise (controls, >= 0x80) are its to handle. */
const TARGET = /^\/[\x21-\x7e]*$/;
const VALUE = /^[\x20-\x7e\t]*$/;

export type ParseResult =
  | { kind: 'request'; method: string; url: string; headers: Record<string, string>; bodyStart: number; end: number }
  | { kind: 'incomplete' }
  | { kind: 'not-plain' };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const NOT_PLAIN_REQUEST: ParseResult = { kind: 'not-plain' };

/**
 * The first request in `buf`, if this path takes it: where its body starts and where it ends; 'incomplete' while
 * more bytes are needed; 'not-plain' for anything Node's server is to read instead. Pure.
 */
export function parsePlainRequest(buf: Buffer): ParseResult {
  const headEnd = buf.indexOf('\r\n\r\n');
  // A head with a bare LF (Node's parser takes LF alone as a line end) never gets its CRLFCRLF: Node's to read.
  if (headEnd < 0) return buf.length > MAX_PLAIN_HEAD || hasBareLF(buf) ? NOT_PLAIN_REQUEST : INCOMPLETE;
  if (headEnd > MAX_PLAIN_HEAD) return NOT_PLAIN_REQUEST;
  const head = buf.toString('latin1', 0, headEnd);
  const lines = head.split('\r\n');
  if (lines.length > MAX_HEADERS + 1) return NOT_PLAIN_REQUEST;
  const rl = lines[0];
  const s1 = rl.indexOf(' ');
  const s2 = rl.indexOf(' ', s1 + 1);
  if (s1 < 0 || s2 < 0 || rl.slice(s2 + 1) !== 'HTTP/1.1') return NOT_PLAIN_REQUEST;
  const method = rl.slice(0, s1);
  const url = rl.slice(s1 + 1, s2);
  if (!METHODS.has(method) || !TARGET.test(url)) return NOT_PLAIN_REQUEST;
  const headers: Record<string, string> = {};
  let length = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) return NOT_PLAIN_REQUEST; // also an obs-fold line (leading space) and a bare LF inside
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return NOT_PLAIN_REQUEST;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!VALUE.test(value)) return NOT_PLAIN_REQUEST;
    const key = name.toLowerCase();
    if (NOT_PLAIN.has(key) || key in headers) return NOT_PLAIN_REQUEST;
    if (key === 'connection' && value.toLowerCase() !== 'keep-alive') return NOT_PLAIN_REQUEST;
    if (key === 'content-length') {
      if (!/^[0-9]{1,7}$/.test(value)) return NOT_PLAIN_REQUEST;
      length = Number(value);
      if (length > MAX_PLAIN_BODY) return NOT_PLAIN_REQUEST;
    }
    headers[key] = value;
  }
  // An HTTP/1.1 request without Host is refused by Node's server (and Go's): theirs to answer.
  if (headers.host === undefined) return NOT_PLAIN_REQUEST;
  const bodyStart = headEnd + 4;
  if (buf.length < bodyStart + length) return INCOMPLETE;
  return { kind: 'request', method, url, headers, bodyStart, end: bodyStart + length };
}

function hasBareLF(buf: Buffer): boolean {
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) if (i === 0 || buf[i - 1] !== 0x0d) return true;
  return false;
}

let dateCache = '';
let dateSecond = -1;

/** The Date header's value, made once a second, as Node's server caches it. */
function utcDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

/** The bytes Node's ServerResponse writes for writeHead(status, headers) and end(body) after setHeader()s (`before`). */
export function serializeAnswer(before: string, a: PlainAnswer, keepAliveSeconds: number): string {
  let out = `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status]}\r\n${before}`;
  for (const name in a.headers) out += `${name}: ${a.headers[name]}\r\n`;
  out += `Date: ${utcDate()}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${keepAliveSeconds}\r\n\r\n`;
  return a.body === undefined ? out : out + a.body;
}

export interface PlainConnectionOptions {
  route: PlainRoute;
  /** Gives the connection to Node's server: it reads the socket from now on. */
  handOver: (socket: net.Socket, unread: Buffer, ended: boolean) => void;
  /** Idle connections are closed after this long, as Node's server's keepAliveTimeout closes its own. */
  keepAliveMs: number;
  /** Called once the connection is no longer this path's (closed or handed over). */
  done: (c: PlainConnection) => void;
}

/** One client connection on the plain path, until it closes or is handed to Node's server. */
export class PlainConnection {
  private buf: Buffer;
  /** A request is being answered (or its answer waits for the socket to drain). */
  private busy = false;
  private ended = false;
  private gone = false;
  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.busy) this.pump();
    else if (this.buf.length > MAX_PLAIN_HEAD + MAX_PLAIN_BODY) this.socket.pause(); // resumed by the next pump
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    if (!this.busy) this.pump();
  };
  private readonly onError = (): void => this.destroy();
  private readonly onClose = (): void => this.release();
  private readonly onTimeout = (): void => {
    if (!this.busy) this.destroy();
  };
  private readonly next = (): void => {
    this.busy = false;
    if (!this.gone) this.pump();
  };

  constructor(readonly socket: net.Socket, first: Buffer, private readonly o: PlainConnectionOptions) {
    this.buf = first;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
    socket.setTimeout(o.keepAliveMs);
    this.pump();
  }

  /** Still this path's: neither closed nor handed over. */
  get serving(): boolean {
    return !this.gone;
  }

  /** Idle: no request being answered (closed at a member's stop, as Node's server closes its idle connections). */
  get idle(): boolean {
    return !this.busy;
  }

  destroy(): void {
    this.release();
    this.socket.destroy();
  }

  /** Serves the requests read so far, one at a time, until one is incomplete, pending, or not this path's. */
  private pump(): void {
    if (this.socket.isPaused()) this.socket.resume();
    while (!this.gone) {
      if (this.buf.length === 0) {
        if (this.ended) {
          this.release();
          this.socket.on('error', () => this.socket.destroy());
          this.socket.end(); // everything answered and the client is done sending: as Node's server, close our side
        }
        return;
      }
      const p = parsePlainRequest(this.buf);
      if (p.kind === 'incomplete' && !this.ended) return;
      if (p.kind !== 'request') return this.handOver();
      const request: PlainRequest = {
        method: p.method,
        url: p.url,
        headers: p.headers,
        body: p.end > p.bodyStart ? this.buf.subarray(p.bodyStart, p.end) : undefined,
        socket: this.socket,
      };
      let reply: PlainReply | undefined;
      try {
        reply = this.o.route(request);
      } catch {
        // A route decides before it does anything, so nothing is half done; but nothing is answered twice either.
        return this.destroy();
      }
      if (reply === undefined) return this.handOver();
      this.buf = this.buf.subarray(p.end);
      const a = reply.answer;
      if (a instanceof Promise) {
        this.busy = true;
        a.then(
          (outcome) => this.answer(reply.before, outcome, true),
          () => this.destroy(),
        );
        return;
      }
      if (!this.answer(reply.before, a, false)) return;
    }
  }

  /** Writes an answer; false when the next request must wait (the socket is full, or gone). */
  private answer(before: string, outcome: PlainOutcome, resume: boolean): boolean {
    if (this.gone) return false;
    if (outcome === 'drop') {
      this.destroy();
      return false;
    }
    const flushed = this.socket.write(serializeAnswer(before, outcome, Math.floor(this.o.keepAliveMs / 1000)));
    if (!flushed) {
      // A client that does not read its answers gets no more of them until it does: bounded memory.
      this.busy = true;
      this.socket.once('drain', this.next);
      return false;
    }
    if (resume) this.next();
    return true;
  }

  private handOver(): void {
    this.release();
    const unread = this.buf;
    this.buf = Buffer.alloc(0);
    this.o.handOver(this.socket, unread, this.ended);
  }

  private release(): void {
    if (this.gone) return;
    this.gone = true;
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('error', this.onError);
    s.off('close', this.onClose);
    s.off('timeout', this.onTimeout);
    s.off('drain', this.next);
    s.setTimeout(0);
    this.o.done(this);
  }
}
