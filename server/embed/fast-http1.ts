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
import { endDirect, isSharedReadBuffer, readDirect, resumeDirect } from './direct-read';
import { BusyPoll, clientPoll, noteRequest } from '../pkg/busy-poll';

const EMPTY = Buffer.alloc(0);

/** A request read whole: method, origin-form target, lower-case header names (each once), and the body if any. */
export interface PlainRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Valid only while the route is called (it may be a view of the shared read buffer, see direct-read.ts). */
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
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** RFC 9110's tchar, by byte: the bytes of a header name. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

export type ParseResult =
  | { kind: 'request'; method: string; url: string; headers: Record<string, string>; bodyStart: number; end: number }
  | { kind: 'incomplete' }
  | { kind: 'not-plain' };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const NOT_PLAIN_REQUEST: ParseResult = { kind: 'not-plain' };

/**
 * The first request in `buf`, if this path takes it: where its body starts and where it ends; 'incomplete' while
 * more bytes are needed; 'not-plain' for anything Node's server is to read instead. Pure.
 *
 * It is on every request's path, so it reads the head's characters one by one, without splitting or regular
 * expressions: what a byte may be is decided by its code.
 */
export function parsePlainRequest(buf: Buffer): ParseResult {
  const headEnd = buf.indexOf(CRLFCRLF);
  // A head with a bare LF (Node's parser takes LF alone as a line end) never gets its CRLFCRLF: Node's to read.
  if (headEnd < 0) return buf.length > MAX_PLAIN_HEAD || hasBareLF(buf) ? NOT_PLAIN_REQUEST : INCOMPLETE;
  if (headEnd > MAX_PLAIN_HEAD) return NOT_PLAIN_REQUEST;
  const head = buf.toString('latin1', 0, headEnd);
  // The request line: METHOD SP origin-form-target SP HTTP/1.1, the target of visible ASCII only (bytes Node's
  // parser would refuse or read otherwise, controls and >= 0x80, are its to handle).
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = head.length;
  const s1 = head.indexOf(' ');
  if (s1 < 0 || s1 >= lineEnd) return NOT_PLAIN_REQUEST;
  const method = head.slice(0, s1);
  if (!METHODS.has(method) || head.charCodeAt(s1 + 1) !== 0x2f) return NOT_PLAIN_REQUEST;
  let s2 = s1 + 2;
  for (; s2 < lineEnd; s2++) {
    const c = head.charCodeAt(s2);
    if (c < 0x21 || c > 0x7e) break;
  }
  if (s2 !== lineEnd - 9 || head.charCodeAt(s2) !== 0x20 || !head.startsWith('HTTP/1.1', s2 + 1)) return NOT_PLAIN_REQUEST;
  const url = head.slice(s1 + 1, s2);
  const headers: Record<string, string> = {};
  let length = 0;
  let count = 0;
  for (let start = lineEnd + 2; start < head.length + 2; ) {
    if (++count > MAX_HEADERS) return NOT_PLAIN_REQUEST;
    let end = head.indexOf('\r\n', start);
    if (end < 0) end = head.length;
    // name: one or more tchars, then the colon (so also no obs-fold line, which starts with a space)
    let colon = start;
    for (; colon < end; colon++) {
      const c = head.charCodeAt(colon);
      if (c >= 128 || TCHAR[c] === 0) break;
    }
    if (colon === start || colon === end || head.charCodeAt(colon) !== 0x3a) return NOT_PLAIN_REQUEST;
    // value: visible ASCII, spaces and tabs only (a bare LF inside is refused here), trimmed of spaces and tabs
    let vStart = colon + 1;
    let vEnd = end;
    for (let i = vStart; i < vEnd; i++) {
      const c = head.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c > 0x7e) return NOT_PLAIN_REQUEST;
    }
    while (vStart < vEnd && isBlank(head.charCodeAt(vStart))) vStart++;
    while (vEnd > vStart && isBlank(head.charCodeAt(vEnd - 1))) vEnd--;
    const key = commonName(head, start, colon) ?? head.slice(start, colon).toLowerCase();
    const value = head.slice(vStart, vEnd);
    if (NOT_PLAIN.has(key) || key in headers) return NOT_PLAIN_REQUEST;
    if (key === 'connection' && value.toLowerCase() !== 'keep-alive') return NOT_PLAIN_REQUEST;
    if (key === 'content-length') {
      length = digits(value);
      if (length < 0 || length > MAX_PLAIN_BODY) return NOT_PLAIN_REQUEST;
    }
    headers[key] = value;
    start = end + 2;
  }
  // An HTTP/1.1 request without Host is refused by Node's server (and Go's): theirs to answer.
  if (headers.host === undefined) return NOT_PLAIN_REQUEST;
  const bodyStart = headEnd + 4;
  if (buf.length < bodyStart + length) return INCOMPLETE;
  return { kind: 'request', method, url, headers, bodyStart, end: bodyStart + length };
}

/** Header names clients send on most requests, lower-case: found without making a new string. */
const COMMON_NAMES = ['host', 'content-type', 'content-length', 'user-agent', 'accept', 'accept-encoding', 'authorization', 'origin', 'connection'];
const COMMON_BY_LENGTH: string[][] = [];
for (const n of COMMON_NAMES) (COMMON_BY_LENGTH[n.length] ??= []).push(n);

/** head[start, end) when it is one of COMMON_NAMES in any case, as that name. */
function commonName(head: string, start: number, end: number): string | undefined {
  const candidates = COMMON_BY_LENGTH[end - start];
  if (candidates === undefined) return undefined;
  next: for (const name of candidates) {
    for (let i = 0; i < name.length; i++) {
      const c = head.charCodeAt(start + i);
      // ASCII letters compare in either case; the names' other bytes ('-') only as themselves.
      if (c !== name.charCodeAt(i) && (c | 0x20) !== name.charCodeAt(i)) continue next;
    }
    return name;
  }
  return undefined;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** A Content-Length of 1 to 7 decimal digits, or -1. */
function digits(s: string): number {
  if (s.length === 0 || s.length > 7) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
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
  /**
   * Idle connections are closed after this long, as Node's server's keepAliveTimeout closes its own (checked by
   * closeIfIdle, which the listener calls for all its connections about once a second).
   */
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
  /** Read straight from the socket's handle (direct-read.ts), not through its stream's 'data' events. */
  private readonly direct: boolean;
  /**
   * Read from or written to since the last closeIfIdle(): a flag set per request, instead of a socket timeout, which
   * Node re-arms (a timer list insert) on every read and every write.
   */
  private active = true;
  /** When closeIfIdle() last found the connection quiet. */
  private quietSince = 0;
  private readonly onData = (chunk: Buffer): void => {
    this.active = true;
    clientPoll.arrived();
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.busy) this.pump();
    else if (this.buf.length > MAX_PLAIN_HEAD + MAX_PLAIN_BODY) this.socket.pause(); // resumed by the next pump
  };
  /** A direct read: the bytes are the shared read buffer's, so what is kept of them past this call is copied. */
  private readonly onBytes = (bytes: Buffer): boolean => {
    this.active = true;
    clientPoll.arrived();
    if (this.busy) {
      this.buf = this.buf.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.buf, bytes]);
      return this.buf.length <= MAX_PLAIN_HEAD + MAX_PLAIN_BODY; // false: no more reads until the next pump
    }
    this.buf = this.buf.length === 0 ? bytes : Buffer.concat([this.buf, bytes]);
    this.pump();
    if (isSharedReadBuffer(this.buf)) this.buf = this.buf.length === 0 ? EMPTY : Buffer.from(this.buf);
    return true;
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    if (!this.busy) this.pump();
  };
  private readonly onError = (): void => this.destroy();
  private readonly onClose = (): void => this.release();
  private readonly next = (): void => {
    this.busy = false;
    if (!this.gone) this.pump();
  };

  constructor(readonly socket: net.Socket, first: Buffer, private readonly o: PlainConnectionOptions) {
    this.buf = first;
    this.direct = readDirect(socket, this.onBytes);
    if (!this.direct) socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
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

  /**
   * Closes the connection once nothing was read or written for keepAliveMs, and no answer is pending: called about
   * once a second, so it closes between keepAliveMs and a second more after the last activity.
   */
  closeIfIdle(now: number): void {
    if (this.gone) return;
    if (this.active || this.busy) {
      this.active = false;
      this.quietSince = now;
    } else if (now - this.quietSince >= this.o.keepAliveMs) this.destroy();
  }

  destroy(): void {
    this.release();
    this.socket.destroy();
  }

  /** Serves the requests read so far, one at a time, until one is incomplete, pending, or not this path's. */
  private pump(): void {
    if (this.direct) resumeDirect(this.socket);
    else if (this.socket.isPaused()) this.socket.resume();
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
      noteRequest();
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
      this.buf = p.end === this.buf.length ? EMPTY : this.buf.subarray(p.end);
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
    this.active = true;
    const flushed = this.socket.write(serializeAnswer(before, outcome, Math.floor(this.o.keepAliveMs / 1000)));
    if (!flushed) {
      // A client that does not read its answers gets no more of them until it does: bounded memory.
      this.busy = true;
      this.socket.once('drain', this.next);
      return false;
    }
    // The client's next request, if it sends them one after another, comes within microseconds.
    clientPoll.expect(BusyPoll.ANSWER_US);
    if (resume) this.next();
    return true;
  }

  private handOver(): void {
    this.release();
    const unread = isSharedReadBuffer(this.buf) ? Buffer.from(this.buf) : this.buf;
    this.buf = EMPTY;
    if (this.direct) endDirect(this.socket);
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
    s.off('drain', this.next);
    this.o.done(this);
  }
}
