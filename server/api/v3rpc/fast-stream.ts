/**
 * A bidirectional call served straight on its HTTP/2 stream (LeaseKeepAlive: clientv3's KeepAliveOnce, and so
 * etcd's lease benchmark, opens a stream per keep-alive, where grpc-js's per-call machinery cost more than the
 * renewal). The object handed to the handler behaves as the grpc-js ServerDuplexStream the handler was written for:
 * 'data' with each decoded request, 'end', 'drain', 'cancelled'; write() of an encoded response, pause(), resume(),
 * end() for status OK and emit('error', { code, details }) for another status. What the client sees is what grpc-js
 * answers: the same headers, trailers, texts, size limit and deadline (fast-unary.ts has the unary calls).
 */
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { failHeaders, metadataValueOf, OK_HEADERS, OK_TRAILERS, parseGrpcTimeout, requestMetadata } from './fast-unary';

const RESPOND_OPTIONS = { waitForTrailers: true };
const END_STREAM = { endStream: true };

export class FastDuplexCall extends EventEmitter {
  cancelled = false;
  private finished = false;
  private headersSent = false;
  private buf: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private md?: grpc.Metadata;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly decode: (b: Buffer) => unknown,
    private readonly maxReceive: number,
  ) {
    super();
    stream.once('error', () => undefined);
    stream.on('data', (chunk: Buffer) => this.onChunk(chunk));
    stream.on('end', () => {
      if (!this.finished) this.emit('end');
    });
    stream.on('drain', () => this.emit('drain'));
    stream.once('close', () => {
      if (this.timer) clearTimeout(this.timer);
      if (this.finished) return;
      this.finished = true;
      this.cancelled = true;
      this.emit('cancelled');
    });
    // A status other than OK, as grpc-js's call takes it from its handler.
    this.on('error', (e: { code?: grpc.status; details?: string }) => this.finish(e.code ?? grpc.status.UNKNOWN, e.details ?? ''));
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = parseGrpcTimeout(String(timeout));
      if (ms === undefined) process.nextTick(() => this.finish(grpc.status.INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
      else this.timer = setTimeout(() => this.finish(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ms);
    }
  }

  get metadata(): grpc.Metadata {
    return (this.md ??= requestMetadata(this.headers));
  }

  metadataValue(key: string): grpc.MetadataValue | undefined {
    return this.md ? this.md.get(key)[0] : metadataValueOf(this.headers, key);
  }

  /** Splits what came into length-prefixed messages, each decoded and handed over. */
  private onChunk(chunk: Buffer): void {
    if (this.finished) return;
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (len > this.maxReceive) {
        this.finish(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${len} vs ${this.maxReceive})`);
        return;
      }
      if (buf.length < 5 + len) break;
      let msg: unknown;
      try {
        msg = this.decode(buf.subarray(5, 5 + len));
      } catch {
        this.finish(grpc.status.INTERNAL, 'Error deserializing request');
        return;
      }
      buf = buf.subarray(5 + len);
      this.emit('data', msg);
      if (this.finished) return;
    }
    this.buf = buf.length > 0 ? buf : undefined;
  }

  /** Writes one encoded response; false when the transport holds it back ('drain' follows). */
  write(message: Buffer): boolean {
    if (this.finished || this.stream.destroyed) return true;
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(OK_HEADERS, RESPOND_OPTIONS);
    }
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    return this.stream.write(frame);
  }

  pause(): this {
    this.stream.pause();
    return this;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }

  /** Ends the call with status OK. */
  end(): this {
    this.finish(grpc.status.OK, 'OK');
    return this;
  }

  private finish(code: grpc.status, details: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const trailers = code === grpc.status.OK ? OK_TRAILERS : { 'grpc-status': code, 'grpc-message': encodeURI(details) };
    if (!this.headersSent) {
      this.headersSent = true;
      stream.respond({ ...trailers, ...failHeaders }, END_STREAM);
      return;
    }
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end();
  }
}
