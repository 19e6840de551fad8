/**
 * A server stream's responses written to its HTTP/2 stream as gRPC frames, many to a write. grpc-js writes each
 * message on its own: an objectMode Writable that takes the next message only once the last one's HTTP/2 write is
 * done, a serialize copy and a native write each, which was most of a watch stream's cost when one put is an event
 * to many of its watchers. Here the messages queued in one turn of the event loop go out in one write of their
 * frames (a 0 byte for "not compressed", the length as 4 bytes big-endian, the message), as grpc-js frames them.
 *
 * This reaches grpc-js's call (its `call.stream` and `maybeSendMetadata`, grpc-js 1.x); a call without them is
 * written message by message through call.write, as before.
 */
import type * as grpc from '@grpc/grpc-js';
import type { ServerHttp2Stream } from 'node:http2';

/** The shared slab's size; a message larger than half of it is given a buffer of its own. */
const SLAB_BYTES = 64 * 1024;
/**
 * The stream is behind (no more is taken until it drains) when more than this is queued in it; a stream's batch is
 * written as soon as it reaches it: etcd's gRPC per-stream write quota (grpc-go's defaultWriteQuota, 64 KiB).
 */
const STREAM_QUEUE_BYTES = 64 * 1024;
/** gRPC's message prefix: compressed flag and length. */
export const FRAME_PREFIX = 5;

/** What grpc-js's server call (BaseServerInterceptingCall) has that the batched writes use. */
interface GrpcJsCall {
  stream?: ServerHttp2Stream;
  maybeSendMetadata?: () => void;
}

/** The HTTP/2 stream of a grpc-js server call, and its maybeSendMetadata: undefined when the call is not grpc-js's own. */
export function grpcJsStream(call: object): { stream: ServerHttp2Stream; base: Required<GrpcJsCall> } | undefined {
  const base = (call as { call?: GrpcJsCall }).call;
  if (!base || !base.stream || typeof base.stream.write !== 'function' || typeof base.maybeSendMetadata !== 'function') return undefined;
  return { stream: base.stream, base: base as Required<GrpcJsCall> };
}

/**
 * Where every stream's frames of this turn are encoded: one slab for all, reused turn after turn, as every batch is
 * copied out to a buffer of its own size when it is written. So a stream holds no memory between turns whatever it
 * sends, and one that sends a response a turn does not pin a slab.
 */
let slab = Buffer.allocUnsafe(SLAB_BYTES);
let slabUsed = 0;
const pending = new Set<FramedWriter>();
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  for (const w of pending) w.flush();
  pending.clear();
  slabUsed = 0;
}

export class FramedWriter {
  /** the HTTP/2 stream written directly, when the call is grpc-js's own */
  private readonly h2: ServerHttp2Stream | undefined;
  private readonly base: GrpcJsCall | undefined;
  /** this turn's frames: parts of the slab (adjacent frames are one part) or a large message's own buffer */
  private parts: Buffer[] = [];
  private bytes = 0;
  /** the message begun: where its frame starts and its length with the prefix */
  private frame: Buffer | undefined;
  private frameAt = 0;
  private frameLen = 0;
  /** the stream has more queued than STREAM_QUEUE_BYTES: nothing more is taken until it drains */
  blocked = false;

  constructor(private readonly call: grpc.ServerDuplexStream<unknown, Buffer>, onDrain: () => void) {
    const direct = grpcJsStream(call);
    this.base = direct?.base;
    this.h2 = direct?.stream;
    const drained = (): void => {
      this.blocked = false;
      onDrain();
    };
    (this.h2 ?? call).on('drain', drained);
  }

  /** Whether responses are batched into the HTTP/2 stream (false: one call.write each). */
  get direct(): boolean {
    return this.h2 !== undefined;
  }

  /**
   * Room for one message of `size` bytes: returns the buffer and the offset its bytes go at (after the frame's
   * prefix, already written); the caller fills exactly `size` bytes, then calls end() before any other begin().
   */
  begin(size: number): [Buffer, number] {
    const need = FRAME_PREFIX + size;
    let buf: Buffer;
    let at = 0;
    if (need > SLAB_BYTES / 2) buf = Buffer.allocUnsafe(need);
    else {
      if (slabUsed + need > slab.length) {
        // the full slab stays with the parts that refer to it until they are copied out
        slab = Buffer.allocUnsafe(SLAB_BYTES);
        slabUsed = 0;
      }
      buf = slab;
      at = slabUsed;
      slabUsed += need;
    }
    buf[at] = 0;
    buf.writeUInt32BE(size, at + 1);
    this.frame = buf;
    this.frameAt = at;
    this.frameLen = need;
    return [buf, at + FRAME_PREFIX];
  }

  /** The message begun is complete: written with this turn's batch (at once past STREAM_QUEUE_BYTES). */
  end(): void {
    const buf = this.frame!;
    const at = this.frameAt;
    const len = this.frameLen;
    this.frame = undefined;
    if (!this.h2) {
      // message by message through grpc-js (which frames it): a copy of its bytes, as the slab is reused
      if (!this.call.write(Buffer.from(buf.subarray(at + FRAME_PREFIX, at + len)))) this.blocked = true;
      return;
    }
    const last = this.parts[this.parts.length - 1];
    if (last && last.buffer === buf.buffer && last.byteOffset + last.length === buf.byteOffset + at) {
      this.parts[this.parts.length - 1] = buf.subarray(at - last.length, at + len);
    } else this.parts.push(buf.subarray(at, at + len));
    this.bytes += len;
    if (this.bytes > STREAM_QUEUE_BYTES) return this.flush();
    pending.add(this);
    if (!flushScheduled) {
      flushScheduled = true;
      // A microtask: after the apply that made these events (so one write takes them all), and before the put
      // answers that apply resolved go out, as etcd sends a watch event no later than the write's answer.
      queueMicrotask(flushAll);
    }
  }

  /** A message already encoded. */
  message(bytes: Uint8Array): void {
    const [buf, at] = this.begin(bytes.length);
    buf.set(bytes, at);
    this.end();
  }

  /** Writes the frames batched so far (copied out of the slab). */
  flush(): void {
    if (!this.bytes) return;
    const parts = this.parts;
    const chunk = parts.length === 1 && parts[0].buffer !== slab.buffer && parts[0].length > SLAB_BYTES / 2 ? parts[0] : Buffer.concat(parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    const h2 = this.h2!;
    if (h2.destroyed || h2.writableEnded) return;
    this.base!.maybeSendMetadata!();
    if (!h2.write(chunk) && h2.writableLength > STREAM_QUEUE_BYTES) this.blocked = true;
  }
}
