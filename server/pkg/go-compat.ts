/**
 * Go's behaviour, where etcd's answers depend on it: Go's path unescaping and cleaning, the redirects of its ServeMux,
 * its HTTP server's answers to requests it cannot parse, and strconv.ParseBool. One place, tested in
 * test/pkg/go-compat.test.ts.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { retryWithEscapedTarget } from './raw-target';

/**
 * Go's url.PathUnescape, as etcd's handlers see request paths: %XX escapes become bytes, and the bytes are a Go
 * string, which need not be valid UTF-8 (JSON shows an invalid byte as U+FFFD, and so does this decoding). A
 * malformed escape ("%zz", a lone "%") is an error: undefined.
 */
export function goPathUnescape(s: string): string | undefined {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s.charCodeAt(i) === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const cp = s.codePointAt(i)!;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
      i += cp > 0xffff ? 2 : 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** False when the path part of a request URI has a % not followed by two hex digits. */
export function isValidRequestPath(url: string): boolean {
  const q = url.indexOf('?');
  const p = q >= 0 ? url.slice(0, q) : url;
  for (let i = p.indexOf('%'); i >= 0; i = p.indexOf('%', i + 1)) {
    if (!/^[0-9a-fA-F]{2}$/.test(p.slice(i + 1, i + 3))) return false;
  }
  return true;
}

/** Go's path.Clean: one slash between segments, no . segments, .. resolved, rooted. */
export function goCleanPath(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

/** Where Go's ServeMux would redirect this request URI (its path cleaned, a trailing slash kept), if anywhere. */
export function cleanRedirect(url: string): string | undefined {
  const q = url.indexOf('?');
  const raw = q >= 0 ? url.slice(0, q) : url;
  // The common case, a clean path with nothing escaped, is decided without decoding.
  if (!raw.includes('%') && !/\/\/|\/\.\.?(\/|$)/.test(raw)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  let clean = goCleanPath(decoded);
  if (decoded.endsWith('/') && clean !== '/') clean += '/';
  if (clean === decoded) return undefined;
  return encodeURI(clean) + (q >= 0 ? url.slice(q) : '');
}

/**
 * What Go's HTTP server answers where Node's would drop the connection or answer bare: a request Node cannot
 * parse gets "400 Bad Request" (an unknown method, 405 as etcd's handlers give it; headers over the limit, 431), and
 * CONNECT a 404.
 */
export function answerLikeGo(server: http.Server): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // Go takes raw bytes >= 0x80 on the request line (a UTF-8 key); Node refuses them: parsed again, escaped.
    if (retryWithEscapedTarget(server, err, socket)) return;
    // Bytes after a `Connection: close` request: Go answers that request, then closes, ignoring them. Node's parser
    // calls them an error while the answer may still be on its way: let it go out (the server closes after it).
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    if (!socket.writable || (socket as Socket).bytesWritten > 0) return void socket.destroy();
    const [status, body] =
      err.code === 'HPE_INVALID_METHOD'
        ? ['405 Method Not Allowed', 'Method Not Allowed\n']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? ['431 Request Header Fields Too Large', '431 Request Header Fields Too Large']
          : ['400 Bad Request', '400 Bad Request'];
    // Closed once answered, as Go does (end alone would leave a half-open socket for as long as the client likes).
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
  });
  // Go sends "100 Continue" when the handler first reads the body; Node, as soon as the headers are in. A handler that
  // answers without reading (a 404) then has no 100 before its answer, and a body that fails to parse (a bad chunk)
  // before any answer gets the 400 above, where after Node's early 100 the connection was dropped unanswered.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const h = req.headers;
    if (h['transfer-encoding'] === undefined && (h['content-length'] === undefined || /^0+$/.test(h['content-length']))) {
      // No body, nothing to continue: no 100, and the connection stays open after the answer, as in Go. (Node's
      // own flag for a 100 owed; were it renamed, the connection would only be closed after the answer.)
      (res as http.ServerResponse & { _expect_continue?: boolean })._expect_continue = false;
    } else continueOnFirstRead(req, res);
    server.emit('request', req, res);
  });
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 19\r\n\r\n404 page not found\n', () => socket.destroy());
  });
}


/**
 * Sends "100 Continue" when the request's body is first read: a 'data' listener or resume() (the 'resume' event,
 * also when the body is already in), or a read() that asks the socket for more (_read). Once sent, Node keeps the
 * connection alive after the answer; not sent, it closes it, as Go does when the handler did not read the body.
 */
function continueOnFirstRead(req: http.IncomingMessage, res: http.ServerResponse): void {
  const read = req._read;
  const send = (): void => {
    req._read = read;
    req.off('resume', send);
    if (!res.headersSent && !res.writableEnded) res.writeContinue();
  };
  req.on('resume', send);
  req._read = function (this: http.IncomingMessage, size: number): void {
    send();
    read.call(this, size);
  };
}

/**
 * Where etcd's handler panics (a nil dereference, an index out of range) on some request: Go's server recovers and
 * closes the connection without an answer. A handler throws this to do the same.
 */
export class GoPanic extends Error {
  constructor(what: string) {
    super(`runtime error: ${what}`);
    this.name = 'GoPanic';
  }
}

/** Go's strconv.ParseBool: the only spellings Go accepts; undefined for anything else. */
export function goParseBool(s: string): boolean | undefined {
  switch (s) {
    case '1': case 't': case 'T': case 'TRUE': case 'true': case 'True':
      return true;
    case '0': case 'f': case 'F': case 'FALSE': case 'false': case 'False':
      return false;
    default:
      return undefined;
  }
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** time.ParseDuration, in milliseconds, with Go's error texts. */
export function goParseDuration(s: string): number {
  const quoted = JSON.stringify(s);
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (rest !== '') {
    const m = /^([0-9]*(?:\.[0-9]*)?)([^0-9.]*)/.exec(rest)!;
    if (m[1] === '' || m[1] === '.') throw new Error(`time: invalid duration ${quoted}`);
    if (m[2] === '') throw new Error(`time: missing unit in duration ${quoted}`);
    const unit = /^(ns|us|µs|μs|ms|s|m|h)/.exec(m[2]);
    if (!unit || unit[1].length !== m[2].length) throw new Error(`time: unknown unit ${JSON.stringify(m[2])} in duration ${quoted}`);
    total += Number(m[1]) * DURATION_UNITS[unit[1]];
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

/** go-humanize's Bytes, as etcd prints sizes: SI units, one decimal below 10 ("20 kB", "1.1 MB"). */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.min(Math.floor(Math.log(n) / Math.log(1000)), units.length - 1);
  const v = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  if (v < 10) return `${v.toFixed(1)} ${units[e]}`;
  // Go's %.0f rounds a tie to even: 20.5 prints 20.
  const whole = v - Math.floor(v) === 0.5 ? (Math.floor(v) % 2 === 0 ? Math.floor(v) : Math.ceil(v)) : Math.round(v);
  return `${whole} ${units[e]}`;
}

/** Go's time.Duration String() of a duration in nanoseconds: "1.344339ms", "850µs", "2.5s", "1m0.5s". */
export function goDuration(ns: number): string {
  ns = Math.round(ns);
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(ns);
  const frac = (v: number, digits: number): string => {
    const whole = Math.floor(v / 10 ** digits);
    const rest = String(v % 10 ** digits).padStart(digits, '0').replace(/0+$/, '');
    return rest ? `${whole}.${rest}` : String(whole);
  };
  let s: string;
  if (u < 1e3) s = `${u}ns`;
  else if (u < 1e6) s = `${frac(u, 3)}µs`;
  else if (u < 1e9) s = `${frac(u, 6)}ms`;
  else {
    const h = Math.floor(u / 3.6e12);
    u -= h * 3.6e12;
    const m = Math.floor(u / 6e10);
    u -= m * 6e10;
    s = `${frac(u, 9)}s`;
    if (h > 0) s = `${h}h${m}m${s}`;
    else if (m > 0) s = `${m}m${s}`;
  }
  return neg ? `-${s}` : s;
}

/** Go's encoding/json of a string: HTML-safe (<, >, & escaped), control characters as Go writes them. */
export function goJSONString(s: string): string {
  return JSON.stringify(s)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\\(u[0-9a-f]{4}|.)/g, (e, c: string) => (c === 'b' ? '\\u0008' : c === 'f' ? '\\u000c' : e));
}
