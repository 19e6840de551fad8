/**
 * Go's gRPC clients that dial one endpoint directly (clientv3's Maintenance calls: `etcdctl endpoint status`,
 * `endpoint hashkv`, `snapshot save`, `defrag`, … given `--endpoints=http://host:port`) send the whole URL as the
 * HTTP/2 `:authority`. etcd's Go server takes it; Node's HTTP/2 (nghttp2) refuses any authority with a `/` in it
 * and resets the stream (PROTOCOL_ERROR). This module stands between a client's connection and the HTTP/2 session:
 *
 * - It sends an empty SETTINGS frame at once (a server preface may start with one; the session's own follows), so
 *   that a client waiting for the server's preface sends its first request, and reads the client's frames up to its
 *   first header block and its acknowledgement of that SETTINGS frame (which it drops: the session never sent it).
 * - If the first block's `:authority` and `host` are acceptable, the connection is handed to the session as it is,
 *   a native socket with the bytes read put back: the common case costs nothing per request.
 * - Otherwise (or if the client does anything unusual first) the connection goes through a rewriter for its whole
 *   life: every header block is decoded with the client's HPACK state and written again as plain literals, with the
 *   authority cut to its host and port (`http://127.0.0.1:2379` → `127.0.0.1:2379`).
 */
import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import { encodeLiterals, Header, HpackDecoder } from './hpack';

const PREFACE_LENGTH = 24;
const FRAME_HEADER = 9;
const T_HEADERS = 1;
const T_SETTINGS = 4;
const T_PUSH_PROMISE = 5;
const T_WINDOW_UPDATE = 8;
const T_CONTINUATION = 9;
const F_ACK = 0x1;
const F_END_STREAM = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
/** The frame size a client may send before the session announces another (SETTINGS_MAX_FRAME_SIZE's default). */
const MAX_FRAME = 16384;
/** What the first look may hold back before giving up on the native path. */
const PEEK_LIMIT = 64 * 1024;
/**
 * How long the first look waits for a first request. A client that waited for the acknowledgement of its own
 * SETTINGS before sending one (none we know of does) is handed over after this, so it never waits on us.
 */
const PEEK_WAIT_MS = 250;
/** A header block larger than this is left for the session to refuse. */
const MAX_BLOCK = 1024 * 1024;

const EMPTY_SETTINGS = Buffer.from([0, 0, 0, T_SETTINGS, 0, 0, 0, 0, 0]);

/** The characters nghttp2 accepts in `:authority` and `host` (RFC 3986's authority). */
const AUTHORITY_CHARS = /^[A-Za-z0-9!$%&'()*+,\-.:;=@[\]_~]*$/;

export function validAuthority(v: string): boolean {
  return AUTHORITY_CHARS.test(v);
}

/** The host and port of an authority given as a URL; `localhost` when nothing acceptable is left. */
export function fixAuthority(v: string): string {
  if (validAuthority(v)) return v;
  const cut = v.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '').replace(/[/?#].*$/s, '');
  return cut !== '' && validAuthority(cut) ? cut : 'localhost';
}

function needsFix(headers: Header[]): boolean {
  return headers.some(([n, v]) => (n === ':authority' || n === 'host') && !validAuthority(v));
}

interface Frame {
  start: number;
  end: number;
  type: number;
  flags: number;
  stream: number;
}

/** The complete frames at the start of buf (after the preface), and where the incomplete rest begins. */
function frames(buf: Buffer, from: number): { frames: Frame[]; rest: number; oversized: boolean } {
  const out: Frame[] = [];
  let p = from;
  while (buf.length - p >= FRAME_HEADER) {
    const len = buf.readUIntBE(p, 3);
    if (len > MAX_FRAME) return { frames: out, rest: p, oversized: true };
    if (buf.length - p < FRAME_HEADER + len) break;
    out.push({ start: p, end: p + FRAME_HEADER + len, type: buf[p + 3], flags: buf[p + 4], stream: buf.readUInt32BE(p + 5) & 0x7fffffff });
    p += FRAME_HEADER + len;
  }
  return { frames: out, rest: p, oversized: false };
}

/** A HEADERS or CONTINUATION frame's header block fragment, and a HEADERS frame's priority fields. */
function fragment(buf: Buffer, f: Frame): { fragment: Buffer; priority?: Buffer } | undefined {
  let p = f.start + FRAME_HEADER;
  let end = f.end;
  if (f.type === T_CONTINUATION) return { fragment: buf.subarray(p, end) };
  if (f.flags & F_PADDED) {
    if (p >= end) return undefined;
    const pad = buf[p++];
    end -= pad;
  }
  let priority: Buffer | undefined;
  if (f.flags & F_PRIORITY) {
    priority = buf.subarray(p, p + 5);
    p += 5;
  }
  if (p > end) return undefined;
  return { fragment: buf.subarray(p, end), priority };
}

function frameHeader(len: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

/** A header block as HEADERS and CONTINUATION frames of at most MAX_FRAME bytes. */
function headerFrames(stream: number, endStream: boolean, priority: Buffer | undefined, block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const first = priority ? MAX_FRAME - priority.length : MAX_FRAME;
  let p = Math.min(first, block.length);
  let flags = (endStream ? F_END_STREAM : 0) | (priority ? F_PRIORITY : 0) | (p === block.length ? F_END_HEADERS : 0);
  const head = priority ? Buffer.concat([priority, block.subarray(0, p)]) : block.subarray(0, p);
  out.push(frameHeader(head.length, T_HEADERS, flags, stream), head);
  while (p < block.length) {
    const n = Math.min(MAX_FRAME, block.length - p);
    flags = p + n === block.length ? F_END_HEADERS : 0;
    out.push(frameHeader(n, T_CONTINUATION, flags, stream), block.subarray(p, p + n));
    p += n;
  }
  return out;
}

/**
 * The client-to-server bytes of one connection, from its preface on, with every header block written again as
 * literals (authority fixed) and, once, the acknowledgement of our early SETTINGS frame dropped. Anything it cannot
 * follow (an oversized frame, a broken block) makes it pass the rest through untouched, for the session to refuse.
 */
export class InboundRewriter {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceLeft = PREFACE_LENGTH;
  private readonly decoder = new HpackDecoder();
  private block: { frames: Buffer[]; parts: Buffer[]; size: number; stream: number; endStream: boolean; priority?: Buffer } | undefined;
  private passthrough = false;

  constructor(private stripAck: boolean) {}

  push(chunk: Buffer): Buffer[] {
    if (this.passthrough) return [chunk];
    const out: Buffer[] = [];
    let buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      out.push(buf.subarray(0, n));
      this.prefaceLeft -= n;
      buf = buf.subarray(n);
    }
    const { frames: fs, rest, oversized } = frames(buf, 0);
    for (const f of fs) {
      if (this.passthrough) {
        out.push(buf.subarray(f.start, f.end));
        continue;
      }
      out.push(...this.frame(buf, f));
    }
    if (oversized) {
      out.push(...this.abandon(), buf.subarray(rest));
      this.buf = Buffer.alloc(0);
      this.passthrough = true;
      return out;
    }
    // The incomplete frame is kept (copied: the chunk it came in is the stream's, not ours).
    this.buf = Buffer.from(buf.subarray(rest));
    return out;
  }

  private frame(buf: Buffer, f: Frame): Buffer[] {
    const raw = buf.subarray(f.start, f.end);
    if (this.block) {
      if (f.type !== T_CONTINUATION || f.stream !== this.block.stream) return this.giveUp(raw);
      const fr = fragment(buf, f)!;
      this.block.frames.push(Buffer.from(raw));
      this.block.parts.push(Buffer.from(fr.fragment));
      this.block.size += fr.fragment.length;
      if (this.block.size > MAX_BLOCK) return this.giveUp();
      return f.flags & F_END_HEADERS ? this.finishBlock() : [];
    }
    if (f.type === T_SETTINGS && f.flags & F_ACK && this.stripAck) {
      this.stripAck = false;
      return [];
    }
    if (f.type === T_PUSH_PROMISE || f.type === T_CONTINUATION) return this.giveUp(raw);
    if (f.type !== T_HEADERS) return [raw];
    const fr = fragment(buf, f);
    if (!fr) return this.giveUp(raw);
    this.block = { frames: [Buffer.from(raw)], parts: [Buffer.from(fr.fragment)], size: fr.fragment.length, stream: f.stream, endStream: (f.flags & F_END_STREAM) !== 0, priority: fr.priority && Buffer.from(fr.priority) };
    return f.flags & F_END_HEADERS ? this.finishBlock() : [];
  }

  private finishBlock(): Buffer[] {
    const b = this.block!;
    let headers: Header[];
    try {
      headers = this.decoder.decode(b.parts.length === 1 ? b.parts[0] : Buffer.concat(b.parts));
    } catch {
      return this.giveUp();
    }
    this.block = undefined;
    for (const h of headers) if (h[0] === ':authority' || h[0] === 'host') h[1] = fixAuthority(h[1]);
    return headerFrames(b.stream, b.endStream, b.priority, encodeLiterals(headers));
  }

  /** From here on, bytes go through as they are (the session will refuse what we could not read). */
  private giveUp(raw?: Buffer): Buffer[] {
    const out = this.abandon();
    if (raw) out.push(raw);
    this.passthrough = true;
    return out;
  }

  private abandon(): Buffer[] {
    const out = this.block?.frames ?? [];
    this.block = undefined;
    return out;
  }
}

/** A connection seen through an InboundRewriter, as a stream the HTTP/2 session can own. */
class RewrittenConnection extends Duplex {
  constructor(private readonly socket: net.Socket, rewriter: InboundRewriter, first: Buffer) {
    super({ allowHalfOpen: false });
    const take = (chunk: Buffer): void => {
      let ok = true;
      for (const b of rewriter.push(chunk)) ok = this.push(b) && ok;
      if (!ok) socket.pause();
    };
    socket.on('data', take);
    socket.on('end', () => this.push(null));
    // A client gone (ECONNRESET, EPIPE) closes the connection, without an error: an 'error' event makes the HTTP/2
    // session write its GOAWAY into the stream while the stream's own write is still pending, which trips an
    // assertion in Node's JSStreamSocket (ERR_INTERNAL_ASSERTION) and ends the process.
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    take(first);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  /** TLS sockets' peer certificate, for whoever asks the session's socket. */
  getPeerCertificate(detailed?: boolean): unknown {
    const s = this.socket as net.Socket & { getPeerCertificate?: (d?: boolean) => unknown };
    return s.getPeerCertificate?.(detailed);
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }

  override _read(): void {
    this.socket.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A write the client is no longer there to take (EPIPE, ECONNRESET) closes the connection, as an error would
    // trip the same assertion (see the constructor).
    this.socket.write(chunk, (err) => {
      if (err) this.destroy();
      cb();
    });
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(() => cb());
  }
  override _destroy(_err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(null);
  }
}

/** What the first look at a connection decided. */
type Verdict = { wait: true; ackAt?: [number, number] } | { wait: false; native: boolean; ackAt?: [number, number] };

/**
 * Looks at what a client sent so far (preface included): wait, hand over natively, or rewrite. Past PEEK_LIMIT only
 * a connection still undecided is rewritten: a first request with a large body (a put of 64 KiB, sent with its
 * headers before the ACK) has everything needed for the native path in its first frames.
 */
export function firstLook(buf: Buffer): Verdict {
  const v = look(buf);
  return v.wait && buf.length > PEEK_LIMIT ? { wait: false, native: false } : v;
}

function look(buf: Buffer): Verdict {
  if (buf.length < PREFACE_LENGTH) return { wait: true };
  const { frames: fs, oversized } = frames(buf, PREFACE_LENGTH);
  if (oversized) return { wait: false, native: false };
  let ackAt: [number, number] | undefined;
  let block: Buffer[] | undefined;
  let blockDone = false;
  let unusual = false;
  for (const f of fs) {
    if (f.type === T_SETTINGS && f.flags & F_ACK && !ackAt) {
      ackAt = [f.start, f.end];
      continue;
    }
    if (block && !blockDone) {
      if (f.type !== T_CONTINUATION) return { wait: false, native: false };
      block.push(fragment(buf, f)!.fragment);
      blockDone = (f.flags & F_END_HEADERS) !== 0;
      continue;
    }
    if (f.type === T_HEADERS && !block) {
      const fr = fragment(buf, f);
      if (!fr) return { wait: false, native: false };
      block = [fr.fragment];
      blockDone = (f.flags & F_END_HEADERS) !== 0;
      continue;
    }
    if (f.type !== T_SETTINGS && f.type !== T_WINDOW_UPDATE && !block) unusual = true;
  }
  if (!ackAt) return { wait: true };
  if (unusual) return { wait: false, native: false };
  if (!block || !blockDone) return { wait: true, ackAt };
  try {
    return { wait: false, native: !needsFix(new HpackDecoder().decode(Buffer.concat(block))), ackAt };
  } catch {
    return { wait: false, native: false };
  }
}

/**
 * Takes an HTTP/2 connection (its preface possibly read and put back, the socket paused) and hands it to `inject`:
 * natively when the client's authority is acceptable, through a rewriter otherwise. Returns a function that
 * destroys the connection while it is still being looked at (for a listener that closes).
 */
export function injectFixingAuthority(socket: net.Socket, inject: (connection: Duplex) => void): () => void {
  let buf: Buffer = Buffer.alloc(0);
  let decided = false;
  const decide = (v: Verdict): void => {
    if (v.wait || decided) return;
    decided = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('end', onEnd);
    socket.pause();
    if (v.native) {
      const [a, b] = v.ackAt!;
      socket.unshift(Buffer.concat([buf.subarray(0, a), buf.subarray(b)]));
      inject(socket);
    } else inject(new RewrittenConnection(socket, new InboundRewriter(true), buf));
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    decide(firstLook(buf));
  };
  // No first request in time (a client that connects ahead of its first call): once our SETTINGS frame is
  // acknowledged the connection goes to the session natively; a request with a URL for authority would then be
  // refused as before, but no client waits on us.
  const onTimer = (): void => {
    const v = firstLook(buf);
    if (v.ackAt) decide({ wait: false, native: true, ackAt: v.ackAt });
    else timer = setTimeout(onTimer, PEEK_WAIT_MS).unref();
  };
  let timer = setTimeout(onTimer, PEEK_WAIT_MS).unref();
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const onEnd = onError;
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('end', onEnd);
  // A server's preface may begin with any SETTINGS frame: this empty one gets a client's first request going.
  socket.write(EMPTY_SETTINGS);
  socket.resume();
  return () => {
    if (!decided) onError();
  };
}
