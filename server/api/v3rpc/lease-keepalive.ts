/**
 * LeaseKeepAlive, one bidirectional stream renewing any leases its client names (etcd's leaseKeepAlive loop): one
 * request renewed at a time and answered before the next, so the answers are in order; a request that comes while
 * one is renewed stops the reading until it is taken, and a client that does not read its answers has nothing more
 * read from it until they drain. The header is taken before the renewal (its revision is never past one at which
 * the lease was revoked); a lease that does not exist is answered TTL 0, as etcd does.
 *
 * Answers are encoded straight from the header's bytes, shared by every answer at the same revision, with no
 * message object or writer; a stream with one request (clientv3's KeepAliveOnce, which etcd's benchmark runs, opens
 * a stream per keep-alive) is neither paused nor resumed.
 */
import * as grpc from '@grpc/grpc-js';
import { ServerErrors, toGRPCError } from './errors';
import type { HeaderProvider } from './kv';
import type { LeaseBackend } from './lease';
import type { GrpcMetrics, MethodCounters } from './metrics';
import type { LeaseKeepAliveRequest } from './pb/etcdserverpb/rpc';
import { splitPath, type CallGate } from './service';
import { HeaderBytes, putVarint, Varint64, varintSize } from './wire';

export const KEEPALIVE_PATH = '/etcdserverpb.Lease/LeaseKeepAlive';

const isLeaseNotFound = (err: unknown): boolean => err instanceof Error && err.message === ServerErrors.leaseNotFound;

const idVarint = new Varint64();
const ttlVarint = new Varint64();

/** A LeaseKeepAliveResponse's bytes (header, ID, TTL), as LeaseKeepAliveResponse.encode writes them. */
export function encodeKeepAliveResponse(header: Uint8Array, id: bigint, ttl: bigint): Buffer {
  const size = 1 + varintSize(header.length) + header.length + (id ? 1 + idVarint.set(id).size() : 0) + (ttl ? 1 + ttlVarint.set(ttl).size() : 0);
  const buf = Buffer.allocUnsafe(size);
  buf[0] = 0x0a; // header, field 1
  let at = putVarint(buf, 1, header.length);
  buf.set(header, at);
  at += header.length;
  if (id) {
    buf[at++] = 0x10; // ID, field 2
    at = idVarint.put(buf, at);
  }
  if (ttl) {
    buf[at++] = 0x18; // TTL, field 3
    ttlVarint.put(buf, at);
  }
  return buf;
}

/** One stream. */
class KeepAliveStream {
  private finished = false;
  private renewing = false;
  /** requests that came while one was renewed (the call is paused until they are taken): one, as it pauses */
  private pending: bigint[] | undefined;
  private paused = false;
  private halfClosed = false;
  /** the last answer was not taken by the transport: nothing more is done until it drains */
  private behind = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<LeaseKeepAliveRequest, Buffer>,
    private readonly backend: LeaseBackend,
    private readonly headers: HeaderBytes,
    private readonly counted: MethodCounters | undefined,
  ) {
    call.on('data', (req: LeaseKeepAliveRequest) => {
      this.counted?.received();
      if (!this.renewing && !this.behind && !this.pending?.length) return this.renew(req.ID);
      (this.pending ??= []).push(req.ID);
      this.paused = true;
      call.pause();
    });
    call.on('end', () => {
      this.halfClosed = true;
      this.next();
    });
    call.on('drain', () => {
      if (!this.behind) return;
      this.behind = false;
      this.next();
    });
    // etcd answers a stream its client cancelled with "no leader" (its only server-side cancellation), and counts it so.
    call.on('cancelled', () => {
      if (!this.finished) this.counted?.handled(grpc.status.UNAVAILABLE);
      this.finished = true;
    });
    call.on('error', () => {
      this.finished = true;
    });
  }

  private renew(id: bigint): void {
    if (this.finished) return;
    this.renewing = true;
    const header = this.headers.current();
    this.backend.leaseRenew(id).then(
      (ttl) => this.answer(header, id, ttl),
      (err: unknown) => {
        if (isLeaseNotFound(err)) return this.answer(header, id, 0n);
        this.renewing = false;
        const e = toGRPCError(err);
        this.finish(e.code, e.details);
      },
    );
  }

  private answer(header: Uint8Array, id: bigint, ttl: bigint): void {
    this.renewing = false;
    if (this.finished) return;
    this.counted?.sent();
    if (!this.call.write(encodeKeepAliveResponse(header, id, ttl))) this.behind = true;
    this.next();
  }

  /** Goes on after an answer: the request that waited, the end of the stream, or reading again. */
  private next(): void {
    if (this.finished || this.renewing || this.behind) return;
    if (this.pending?.length) return this.renew(this.pending.shift()!);
    if (this.halfClosed) return this.finish(grpc.status.OK);
    if (this.paused) {
      this.paused = false;
      this.call.resume();
    }
  }

  private finish(code: grpc.status, details?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.counted?.handled(code);
    if (code === grpc.status.OK) this.call.end();
    else this.call.emit('error', { code, details, message: details });
  }
}

/** LeaseKeepAlive's handler (grpc-js's, and the JSON gateway's). */
export function keepAliveHandler(backend: LeaseBackend, header: HeaderProvider, metrics?: GrpcMetrics, gate?: CallGate): grpc.handleBidiStreamingCall<LeaseKeepAliveRequest, Buffer> {
  const [service, method] = splitPath(KEEPALIVE_PATH);
  const counted = metrics?.forMethod('bidi_stream', service, method);
  const headers = new HeaderBytes(header);
  return (call) => {
    counted?.started();
    const refused = gate?.(KEEPALIVE_PATH, undefined);
    if (refused) {
      counted?.handled(refused.code);
      call.emit('error', { name: 'V3Error', message: refused.details, code: refused.code, details: refused.details });
      return;
    }
    new KeepAliveStream(call, backend, headers, counted);
  };
}
