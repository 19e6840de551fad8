/**
 * The etcdserverpb.Maintenance service (etcd's v3rpc/maintenance.go): Status, Hash, HashKV, Alarm, Defragment,
 * Snapshot and MoveLeader over a MaintenanceBackend (the member). Snapshot streams the backend in 32 KiB chunks,
 * each with the bytes still to come, then one message with the SHA-256 of everything sent, as etcd 3.4 does: so
 * `etcdctl snapshot save` (which checks that the file ends in a digest) and `snapshot restore` (which checks the
 * digest) accept it. The member makes the backend's bytes as they are sent (no file first), as etcd reads its file.
 */
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { ServerHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import {
  AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKVRequest, HashKVResponse, HashRequest,
  HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
  StatusResponse,
} from './pb/etcdserverpb/rpc';
import { ErrGRPCNotLeader, toGRPCError } from './errors';
import { FRAME_PREFIX, grpcJsStream } from './framed-writer';
import { fillHeader, type HeaderProvider } from './kv';
import type { GrpcMetrics } from './metrics';
import { encodeToBuffer, toGrpcUnary, unaryMethod, type CallGate, type UnaryHandler } from './service';

/** What the service asks of the member; failures are thrown as etcd's server errors (errors.ts). */
export interface MaintenanceBackend {
  /** Status without its header (the service fills it). */
  status(): Promise<Omit<StatusResponse, 'header'>>;
  hash(): Promise<{ hash: number; rev: number }>;
  hashKV(rev: number): Promise<{ hash: number; rev: number; compactRev: number }>;
  /** Goes through the Raft log; the answer carries no header, as etcd's. */
  alarm(r: AlarmRequest): Promise<AlarmResponse>;
  defragment(): Promise<void>;
  /** Streams one consistent copy of the backend (etcd's bbolt file) into out, as it is made. */
  snapshot(out: SnapshotOut): Promise<void>;
  isLeader(): boolean;
  /** Hands leadership to the member with this ID (hex, as the cluster names members). */
  moveLeader(target: string): Promise<void>;
}

/** What a snapshot's bytes are handed to as the member makes them (SnapshotSender). */
export interface SnapshotOut {
  /** The snapshot's size in bytes, before any of them. */
  begin(size: number): void;
  /** Its next bytes; the next are made once the promise resolves (it rejects when the client has gone). */
  write(bytes: Buffer[]): Promise<void>;
}

/** etcd's snapshotSendBufferSize: bigger than an OS page, so each message holds whole pages. */
export const SNAPSHOT_CHUNK = 32 * 1024;
/**
 * Bytes of a snapshot queued in the HTTP/2 stream past which the next are not made until the client has taken them
 * (a few of the member's runs: the socket stays busy while the next is made).
 */
const SNAPSHOT_QUEUE_BYTES = 4 << 20;

const u64hex = (id: bigint) => id.toString(16);

function withHeader<T extends { header?: unknown }>(resp: T, rev: number | undefined, header: HeaderProvider): T {
  (resp as { header: unknown }).header = fillHeader({ clusterId: 0n, memberId: 0n, revision: BigInt(rev ?? 0), raftTerm: 0n }, header);
  return resp;
}

/** Runs a backend call; its failure becomes etcd's status. */
async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toGRPCError(err);
  }
}

export function maintenanceHandlers(b: MaintenanceBackend, header: HeaderProvider): Record<string, UnaryHandler<any, any>> {
  return {
    Status: async (): Promise<StatusResponse> => {
      const s = await mapped(() => b.status());
      return { ...s, header: fillHeader(undefined, header) };
    },
    Hash: async (): Promise<HashResponse> => {
      const h = await mapped(() => b.hash());
      return withHeader({ header: undefined, hash: h.hash }, h.rev, header);
    },
    HashKV: async (r: HashKVRequest): Promise<HashKVResponse> => {
      const h = await mapped(() => b.hashKV(Number(r.revision)));
      return withHeader({ header: undefined, hash: h.hash, compactRevision: BigInt(h.compactRev) }, h.rev, header);
    },
    Alarm: (r: AlarmRequest): Promise<AlarmResponse> => mapped(() => b.alarm(r)),
    Defragment: async (): Promise<DefragmentResponse> => {
      await mapped(() => b.defragment());
      // etcd answers an empty response, no header.
      return { header: undefined };
    },
    MoveLeader: async (r: MoveLeaderRequest): Promise<MoveLeaderResponse> => {
      if (!b.isLeader()) throw ErrGRPCNotLeader;
      await mapped(() => b.moveLeader(u64hex(r.targetID)));
      return { header: undefined };
    },
  };
}

const uvarintSize = (n: number): number => {
  let s = 1;
  for (; n >= 128; s++) n = Math.floor(n / 128);
  return s;
};

function putUvarint(b: Buffer, at: number, n: number): number {
  for (; n >= 128; n = Math.floor(n / 128)) b[at++] = (n % 128) | 128;
  b[at++] = n;
  return at;
}

/**
 * gRPC's prefix of a SnapshotResponse and its fields before a blob of `len` bytes: remaining_bytes (left out when 0,
 * as protobuf does) and the blob's tag and length, as the generated encoder writes them.
 */
function messageHead(len: number, remaining: number): Buffer {
  const fields = (remaining > 0 ? 1 + uvarintSize(remaining) : 0) + 1 + uvarintSize(len);
  const b = Buffer.allocUnsafe(FRAME_PREFIX + fields);
  b[0] = 0;
  b.writeUInt32BE(fields + len, 1);
  let o = FRAME_PREFIX;
  if (remaining > 0) {
    b[o++] = 0x10;
    o = putUvarint(b, o, remaining);
  }
  b[o++] = 0x1a;
  putUvarint(b, o, len);
  return b;
}

/**
 * Sends a snapshot as etcd does: messages of SNAPSHOT_CHUNK bytes (the last shorter), each with the bytes still to
 * come, then one with the SHA-256 of them all, hashed as they go. Where the call is grpc-js's own, the bytes go to its
 * HTTP/2 stream as they come, each message's few bytes of framing written beside its blob (no copy, and a batch of
 * messages a write); otherwise each message goes through grpc-js.
 */
export class SnapshotSender implements SnapshotOut {
  private total = 0;
  private sent = 0;
  private readonly sha = createHash('sha256');
  private readonly h2: ServerHttp2Stream | undefined;
  private readonly sendMetadata: (() => void) | undefined;
  /** without the HTTP/2 stream: the current message's blob so far, and whether grpc-js's queue is full */
  private blob: Buffer[] = [];
  private full = false;
  private cancelled: boolean;
  private wake: (() => void) | undefined;

  constructor(private readonly call: grpc.ServerWritableStream<SnapshotRequest, SnapshotResponse>) {
    const direct = grpcJsStream(call);
    this.h2 = direct?.stream;
    this.sendMetadata = direct ? () => direct.base.maybeSendMetadata() : undefined;
    this.cancelled = call.cancelled;
    // A client that goes away while we wait for it to take more: the wait ends (and the snapshot stops).
    const gone = (): void => {
      this.cancelled = true;
      this.wake?.();
    };
    call.once('cancelled', gone);
    call.once('close', gone);
    call.once('error', gone);
  }

  begin(size: number): void {
    this.total = size;
  }

  async write(bytes: Buffer[]): Promise<void> {
    if (this.cancelled) throw new Error('snapshot stream cancelled');
    const parts: Buffer[] = [];
    for (const b of bytes) {
      this.sha.update(b);
      for (let at = 0; at < b.length; ) {
        const into = this.sent % SNAPSHOT_CHUNK;
        const len = Math.min(SNAPSHOT_CHUNK, this.total - this.sent + into);
        const n = Math.min(b.length - at, len - into);
        if (n <= 0) throw new Error(`snapshot: more bytes than its ${this.total}`);
        if (this.h2) {
          if (into === 0) parts.push(messageHead(len, this.total - this.sent - len));
          parts.push(b.subarray(at, at + n));
        } else this.blob.push(b.subarray(at, at + n));
        at += n;
        this.sent += n;
        if (!this.h2 && into + n === len) this.sendBlob();
      }
    }
    const h2 = this.h2;
    if (h2) {
      if (h2.destroyed || h2.writableEnded) throw new Error('snapshot stream cancelled');
      this.sendMetadata!();
      h2.cork();
      for (const p of parts) h2.write(p);
      h2.uncork();
      // The event loop runs between runs; past the queue's limit, until the client has taken it.
      if (h2.writableLength > SNAPSHOT_QUEUE_BYTES) await this.until(h2, 'drain');
      else await new Promise((resolve) => setImmediate(resolve));
    } else if (this.full) {
      await this.until(this.call, 'drain');
      this.full = false;
    }
    if (this.cancelled) throw new Error('snapshot stream cancelled');
  }

  /** After the last bytes: the message with their SHA-256. */
  end(): void {
    if (this.sent !== this.total) throw new Error(`snapshot: ${this.sent} bytes sent of ${this.total}`);
    const digest = this.sha.digest();
    if (this.h2) {
      this.sendMetadata!();
      this.h2.write(Buffer.concat([messageHead(digest.length, 0), digest]));
    } else this.call.write({ header: undefined, remainingBytes: 0n, blob: digest });
  }

  /** One message of the blob gathered, through grpc-js. */
  private sendBlob(): void {
    const blob = this.blob.length === 1 ? this.blob[0] : Buffer.concat(this.blob);
    this.blob = [];
    if (!this.call.write({ header: undefined, remainingBytes: BigInt(this.total - this.sent), blob })) this.full = true;
  }

  /** Waits for the event, or for the client to go. */
  private async until(e: EventEmitter, event: string): Promise<void> {
    if (this.cancelled) return;
    let done: () => void = () => undefined;
    await new Promise<void>((resolve) => {
      done = resolve;
      this.wake = resolve;
      e.once(event, resolve);
    });
    e.off(event, done);
    this.wake = undefined;
  }
}

export interface MaintenanceServiceOptions {
  backend: MaintenanceBackend;
  header: HeaderProvider;
  /** Logs the snapshot's progress as etcd does. */
  log?: (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;
  /** What refuses calls before they run (a learner's refusals). */
  gate?: CallGate;
}

const streamMethod = <Req, Res>(path: string, req: { encode(m: Req): any; decode(b: Uint8Array): Req }, res: { encode(m: Res): any; decode(b: Uint8Array): Res }): grpc.MethodDefinition<Req, Res> => ({
  path,
  requestStream: false,
  responseStream: true,
  requestSerialize: (m: Req) => encodeToBuffer(req as never, m),
  requestDeserialize: (b: Buffer) => req.decode(b),
  responseSerialize: (m: Res) => encodeToBuffer(res as never, m),
  responseDeserialize: (b: Buffer) => res.decode(b),
});

/** Adds the Maintenance service to a grpc.Server. */
export function addMaintenanceService(server: grpc.Server, o: MaintenanceServiceOptions, metrics?: GrpcMetrics): void {
  const unary = {
    Alarm: unaryMethod('/etcdserverpb.Maintenance/Alarm', AlarmRequest, AlarmResponse),
    Status: unaryMethod('/etcdserverpb.Maintenance/Status', StatusRequest, StatusResponse),
    Defragment: unaryMethod('/etcdserverpb.Maintenance/Defragment', DefragmentRequest, DefragmentResponse),
    Hash: unaryMethod('/etcdserverpb.Maintenance/Hash', HashRequest, HashResponse),
    HashKV: unaryMethod('/etcdserverpb.Maintenance/HashKV', HashKVRequest, HashKVResponse),
    MoveLeader: unaryMethod('/etcdserverpb.Maintenance/MoveLeader', MoveLeaderRequest, MoveLeaderResponse),
  };
  const definition: grpc.ServiceDefinition = { ...unary, Snapshot: streamMethod('/etcdserverpb.Maintenance/Snapshot', SnapshotRequest, SnapshotResponse) };
  const handlers = maintenanceHandlers(o.backend, o.header);
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(unary)) impl[name] = toGrpcUnary(m.path, handlers[name], metrics, o.gate);
  const counted = metrics?.forMethod('server_stream', 'etcdserverpb.Maintenance', 'Snapshot');
  const log = o.log ?? (() => undefined);
  impl.Snapshot = (call: grpc.ServerWritableStream<SnapshotRequest, SnapshotResponse>) => {
    counted?.started();
    counted?.received();
    void (async () => {
      try {
        const refused = o.gate?.('/etcdserverpb.Maintenance/Snapshot', call.request, call);
        if (refused) throw refused;
        const sender = new SnapshotSender(call);
        let total = 0;
        let start = 0;
        await o.backend.snapshot({
          begin: (size) => {
            total = size;
            start = performance.now();
            log('info', 'sending database snapshot to client', { 'total-bytes': total, capnslog: `sending database snapshot to client [${total} bytes]` });
            sender.begin(size);
          },
          write: (bytes) => sender.write(bytes),
        });
        sender.end();
        log('info', 'successfully sent database snapshot to client', { 'total-bytes': total, took: `${((performance.now() - start) / 1000).toFixed(3)}s`, capnslog: `successfully sent database snapshot to client [${total} bytes]` });
        counted?.handled(grpc.status.OK);
        call.end();
      } catch (err) {
        const e = call.cancelled ? { code: grpc.status.CANCELLED, details: 'context canceled' } : toGRPCError(err);
        counted?.handled(e.code);
        if (!call.cancelled) log('warn', 'failed to send database snapshot to client', { error: (err as Error).message });
        call.emit('error', { name: 'V3Error', message: e.details, code: e.code, details: e.details });
      }
    })();
  };
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}
