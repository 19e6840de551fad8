/**
 * The member's own client for the Lock and Election services (etcd's etcdserver/api/v3client): KV calls go to the KV
 * service's handlers (its validation, the backend, the header) with the caller's call, so the caller's auth applies
 * to every request the recipes make; session leases are granted through the Lease backend; watches are watchers of
 * the member's watchable store with a small queue of their own. Nothing goes over the network.
 */
import * as grpc from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type { DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse } from '../v3rpc/pb/etcdserverpb/rpc';
import type { Event } from '../v3rpc/pb/mvccpb/kv';
import { ErrGRPCCompacted, ErrGRPCWatchCanceled, V3Error, toGRPCError } from '../v3rpc/errors';
import type { CallContext, HeaderProvider } from '../v3rpc/kv';
import type { LeaseBackend } from '../v3rpc/lease';
import type { UnaryHandler } from '../v3rpc/service';
import type { WatchableStore, WatchResult, WatchSink } from '../../mvcc/watchable';
import { ContextCanceled, type ConcurrencyClient } from './concurrency';

/** clientv3/concurrency's default session TTL (seconds): the lease granted for a caller that names none. */
export const DEFAULT_SESSION_TTL = 60n;

/** Watch responses a recipe's watcher queues before it falls behind (and is caught up from the store's history). */
const WATCH_QUEUE = 16;

export interface InProcessOptions {
  /** The KV service's handlers (kvService): Range, Txn and DeleteRange are called. */
  kv: Record<string, UnaryHandler<any, any>>;
  lease: LeaseBackend;
  watchable: WatchableStore;
  header: HeaderProvider;
}

/**
 * What etcd's Lock and Election services answer for an error of their clientv3: clientv3 turns etcd's errors into
 * its own type, which has no gRPC status, so the caller gets code Unknown and etcd's text (all but "watch canceled",
 * which clientv3 leaves as it is); the recipes' own errors ("election: not leader") the same.
 */
export function asClientError(err: unknown): V3Error {
  if (err instanceof V3Error) return err.code === grpc.status.UNKNOWN || err === ErrGRPCWatchCanceled ? err : new V3Error(grpc.status.UNKNOWN, err.details);
  return new V3Error(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err));
}

/** The call's context, as a signal: aborted when the client cancels the call (or goes away). */
export function callSignal(call: { cancelled?: boolean } & Pick<EventEmitter, 'once'>): AbortSignal {
  const ac = new AbortController();
  if (call.cancelled) ac.abort();
  else call.once('cancelled', () => ac.abort());
  return ac.signal;
}

export class InProcessClient {
  constructor(private readonly o: InProcessOptions) {}

  /** etcd's session for a call: the lease given, or a new one of the default TTL when none (0) is. */
  async sessionLease(lease: bigint): Promise<bigint> {
    if (lease !== 0n) return lease;
    try {
      const r = await this.o.lease.leaseGrant({ ID: 0n, TTL: DEFAULT_SESSION_TTL } as LeaseGrantRequest);
      return r.ID;
    } catch (err) {
      throw toGRPCError(err);
    }
  }

  /** A client whose every request is the caller's (its metadata: token; its certificate). */
  forCall(call: CallContext): ConcurrencyClient {
    const kv = this.o.kv;
    const c = call as grpc.ServerUnaryCall<unknown, unknown>;
    return {
      range: (r: RangeRequest) => kv.Range(r, c) as Promise<RangeResponse>,
      txn: (r: TxnRequest) => kv.Txn(r, c) as Promise<TxnResponse>,
      deleteRange: (r: DeleteRangeRequest) => kv.DeleteRange(r, c) as Promise<DeleteRangeResponse>,
      watch: (key, end, rev, signal, onEvents) => this.watch(key, end, rev, signal, onEvents),
    };
  }

  private header(rev: number): ResponseHeader {
    const h = this.o.header;
    return { clusterId: h.clusterId(), memberId: h.memberId(), revision: BigInt(rev), raftTerm: h.raftTerm() };
  }

  /** A watcher of the store from rev; responses are handed on after the apply that made them, one at a time. */
  private watch(key: Buffer, end: Buffer | undefined, rev: bigint, signal: AbortSignal | undefined, onEvents: (h: ResponseHeader, events: Event[]) => boolean | Promise<boolean>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new ContextCanceled());
      const queue: WatchResult[] = [];
      let busy = false;
      let done = false;
      const sink: WatchSink = {
        ready: () => !done && queue.length < WATCH_QUEUE,
        send: (_w, r) => {
          if (done) return;
          queue.push(r);
          // never on the apply path that sent it
          if (!busy) queueMicrotask(pump);
        },
      };
      const ws = this.o.watchable.newWatchStream(sink);
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        ws.close();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => finish(new ContextCanceled());
      signal?.addEventListener('abort', onAbort);
      const pump = async (): Promise<void> => {
        if (busy || done) return;
        busy = true;
        try {
          while (queue.length && !done) {
            const r = queue.shift()!;
            if (r.compactRevision !== 0) return finish(ErrGRPCCompacted);
            if (await onEvents(this.header(r.revision), r.events)) return finish();
          }
        } catch (err) {
          return finish(err);
        } finally {
          busy = false;
        }
        if (!done) ws.ready();
      };
      try {
        ws.watch(0n, key, end, Number(rev));
      } catch (err) {
        finish(err);
      }
    });
  }
}
