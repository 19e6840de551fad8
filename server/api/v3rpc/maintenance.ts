/**
 * The etcdserverpb.Maintenance service (etcd's v3rpc/maintenance.go): Status, Hash, HashKV, Alarm, Defragment,
 * Snapshot and MoveLeader over a MaintenanceBackend (the member). Snapshot streams the backend in 32 KiB chunks,
 * each with the bytes still to come, then one message with the SHA-256 of everything sent, as etcd 3.4 does: so
 * `etcdctl snapshot save` (which checks that the file ends in a digest) and `snapshot restore` (which checks the
 * digest) accept it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {
  AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKVRequest, HashKVResponse, HashRequest,
  HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
  StatusResponse,
} from './pb/etcdserverpb/rpc';
import { ErrGRPCNotLeader, toGRPCError } from './errors';
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
  /** A consistent copy of the backend in a file, and what to call once it has been sent (or the send failed). */
  snapshot(): Promise<{ file: string; release(): void }>;
  isLeader(): boolean;
  /** Hands leadership to the member with this ID (hex, as the cluster names members). */
  moveLeader(target: string): Promise<void>;
}

/** etcd's snapshotSendBufferSize: bigger than an OS page, so each message holds whole pages. */
export const SNAPSHOT_CHUNK = 32 * 1024;

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

/** Streams a snapshot file: 32 KiB chunks with the bytes remaining, then the SHA-256 of them all. */
export async function streamSnapshot(call: grpc.ServerWritableStream<SnapshotRequest, SnapshotResponse>, file: string): Promise<void> {
  const fd = await fs.promises.open(file, 'r');
  try {
    const total = (await fd.stat()).size;
    const sha = createHash('sha256');
    let sent = 0;
    let cancelled = call.cancelled;
    // A client that goes away while we wait for it to take more: the wait ends (and the file is closed and removed).
    let wake: (() => void) | undefined;
    const gone = (): void => {
      cancelled = true;
      wake?.();
    };
    call.once('cancelled', gone);
    call.once('close', gone);
    call.once('error', gone);
    while (total - sent > 0) {
      if (cancelled) throw new Error('snapshot stream cancelled');
      const buf = Buffer.allocUnsafe(Math.min(SNAPSHOT_CHUNK, total - sent));
      const { bytesRead } = await fd.read(buf, 0, buf.length, sent);
      if (bytesRead === 0) throw new Error('snapshot file ended early');
      const blob = buf.subarray(0, bytesRead);
      sent += bytesRead;
      sha.update(blob);
      // Waits for the client when the stream's buffer is full.
      if (!call.write({ header: undefined, remainingBytes: BigInt(total - sent), blob }) && !cancelled) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          call.once('drain', resolve);
        });
        wake = undefined;
      }
    }
    if (cancelled) throw new Error('snapshot stream cancelled');
    call.write({ header: undefined, remainingBytes: 0n, blob: sha.digest() });
  } finally {
    await fd.close();
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
      let snap: { file: string; release(): void } | undefined;
      try {
        const refused = o.gate?.('/etcdserverpb.Maintenance/Snapshot', call.request, call);
        if (refused) throw refused;
        snap = await o.backend.snapshot();
        const total = (await fs.promises.stat(snap.file)).size;
        const start = performance.now();
        log('info', 'sending database snapshot to client', { 'total-bytes': total, capnslog: `sending database snapshot to client [${total} bytes]` });
        await streamSnapshot(call, snap.file);
        log('info', 'successfully sent database snapshot to client', { 'total-bytes': total, took: `${((performance.now() - start) / 1000).toFixed(3)}s`, capnslog: `successfully sent database snapshot to client [${total} bytes]` });
        counted?.handled(grpc.status.OK);
        call.end();
      } catch (err) {
        const e = call.cancelled ? { code: grpc.status.CANCELLED, details: 'context canceled' } : toGRPCError(err);
        counted?.handled(e.code);
        if (!call.cancelled) log('warn', 'failed to send database snapshot to client', { error: (err as Error).message });
        call.emit('error', { name: 'V3Error', message: e.details, code: e.code, details: e.details });
      } finally {
        snap?.release();
      }
    })();
  };
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}
