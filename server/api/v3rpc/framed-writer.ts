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

/** Bytes of frames a batch holds before it is written. */
const BATCH_BYTES = 64 * 1024;
/**
 * The stream is behind (no more is written until it drains) when more than this is queued in it: etcd's gRPC
 * per-stream write quota (grpc-go's defaultWriteQuota, 64 KiB).
 */
const STREAM_QUEUE_BYTES = 64 * 1024;
/** gRPC's message prefix: compressed flag and length. */
export const FRAME_PREFIX = 5;

/** What grpc-js's server call (BaseServerInterceptingCall) has that the batched writes use. */
interface GrpcJsCall {
  stream?: ServerHttp2Stream;
  maybeSendMetadata?: () => void;
}

export class FramedWriter {
  /** the HTTP/2 stream written directly, when the call is grpc-js's own */
  private readonly h2: ServerHttp2Stream | undefined;
  private readonly base: GrpcJsCall | undefined;
  private buf: Buffer = Buffer.allocUnsafe(0);
  /** bytes of buf filled by frames not yet written */
  private used = 0;
  private flushScheduled = false;
  /** the stream has more queued than STREAM_QUEUE_BYTES: nothing more is taken until it drains */
  blocked = false;

  constructor(private readonly call: grpc.ServerDuplexStream<unknown, Buffer>, onDrain: () => void) {
    const base = (call as unknown as { call?: GrpcJsCall }).call;
    if (base && base.stream && typeof base.stream.write === 'function' && typeof base.maybeSendMetadata === 'function') {
      this.base = base;
      this.h2 = base.stream;
    }
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
   * prefix, already written); the caller fills exactly `size` bytes, then calls end().
   */
  begin(size: number): [Buffer, number] {
    const need = FRAME_PREFIX + size;
    if (this.used + need > this.buf.length) {
      this.flush();
      this.buf = Buffer.allocUnsafe(Math.max(BATCH_BYTES, need));
    }
    const at = this.used;
    this.buf[at] = 0;
    this.buf.writeUInt32BE(size, at + 1);
    this.used += need;
    return [this.buf, at + FRAME_PREFIX];
  }

  /** The message begun is complete: written now (one at a time) or with the batch at the end of this turn. */
  end(): void {
    if (!this.h2) {
      // message by message through grpc-js (which frames it): a copy of its bytes, as buf is reused
      const msg = Buffer.from(this.buf.subarray(FRAME_PREFIX, this.used));
      this.used = 0;
      if (!this.call.write(msg)) this.blocked = true;
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** A message already encoded. */
  message(bytes: Uint8Array): void {
    const [buf, at] = this.begin(bytes.length);
    buf.set(bytes, at);
    this.end();
  }

  /** Writes the frames batched so far. */
  flush(): void {
    if (!this.used) return;
    const chunk = this.buf.subarray(0, this.used);
    // the rest of buf is for the next batch: the written part is never written over
    this.buf = this.buf.subarray(this.used);
    this.used = 0;
    const h2 = this.h2!;
    if (h2.destroyed || h2.writableEnded) return;
    this.base!.maybeSendMetadata!();
    if (!h2.write(chunk) && h2.writableLength > STREAM_QUEUE_BYTES) this.blocked = true;
  }
}
