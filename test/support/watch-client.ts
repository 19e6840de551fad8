/**
 * A Watch stream over grpc-js for tests: requests written as plain objects, every response kept, and the responses
 * normalized to short lines (ids, flags, header revision, events) so that two servers' streams compare as text.
 */
import * as grpc from '@grpc/grpc-js';
import {
  KVClient, LeaseClient, WatchClient, WatchCreateRequest, WatchRequest, type LeaseGrantRequest, type LeaseGrantResponse,
  type LeaseRevokeRequest, type LeaseRevokeResponse, type WatchResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { Event_EventType, type Event, type KeyValue } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { promiseKV, promised, type PromiseKV } from './v3-server';

export interface WatchConn {
  kv: PromiseKV;
  /** The KV client itself (for calls with another timeout). */
  kvClient: KVClient;
  watchClient: WatchClient;
  /** The Lease service: grant and revoke as promises, and the client for keep-alive streams. */
  lease: { grant(r: LeaseGrantRequest): Promise<LeaseGrantResponse>; revoke(r: LeaseRevokeRequest): Promise<LeaseRevokeResponse>; client: LeaseClient };
  close(): void;
}

const OPTIONS = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };

export interface ConnectOptions {
  /** Unary calls are given up after this long (DEADLINE_EXCEEDED); none by default. */
  timeoutMs?: number;
  /** More grpc-js channel options (e.g. reconnect backoff). */
  channel?: grpc.ChannelOptions;
}

/** A KV, a Watch and a Lease client to a client URL (http://host:port). */
export function connect(clientURL: string, o: ConnectOptions = {}): WatchConn {
  const target = clientURL.replace(/^https?:\/\//, '');
  const options = { ...OPTIONS, ...o.channel };
  const kvClient = new KVClient(target, grpc.credentials.createInsecure(), options);
  const watchClient = new WatchClient(target, grpc.credentials.createInsecure(), options);
  const leaseClient = new LeaseClient(target, grpc.credentials.createInsecure(), options);
  return {
    kv: promiseKV(kvClient, o.timeoutMs),
    kvClient,
    watchClient,
    lease: {
      grant: promised<LeaseClient, LeaseGrantRequest, LeaseGrantResponse>(leaseClient, leaseClient.leaseGrant, o.timeoutMs),
      revoke: promised<LeaseClient, LeaseRevokeRequest, LeaseRevokeResponse>(leaseClient, leaseClient.leaseRevoke, o.timeoutMs),
      client: leaseClient,
    },
    close: () => {
      kvClient.close();
      watchClient.close();
      leaseClient.close();
    },
  };
}

export class TestWatchStream {
  readonly got: WatchResponse[] = [];
  readonly call: grpc.ClientDuplexStream<WatchRequest, WatchResponse>;
  error: grpc.ServiceError | undefined;
  private waiters: (() => void)[] = [];

  constructor(client: WatchClient, metadata = new grpc.Metadata()) {
    this.call = client.watch(metadata);
    this.call.on('data', (r: WatchResponse) => {
      this.got.push(r);
      for (const w of this.waiters.splice(0)) w();
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  create(c: Partial<WatchCreateRequest>): void {
    this.call.write(WatchRequest.fromPartial({ createRequest: c }));
  }

  cancel(watchId: bigint): void {
    this.call.write(WatchRequest.fromPartial({ cancelRequest: { watchId } }));
  }

  progress(): void {
    this.call.write(WatchRequest.fromPartial({ progressRequest: {} }));
  }

  /** Resolves once cond holds of the responses so far (checked on each response), or fails after ms. */
  async until(cond: (got: WatchResponse[]) => boolean, what: string, ms = 20000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond(this.got)) {
      if (this.error) throw new Error(`stream failed waiting for ${what}: ${this.error.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got:\n${this.got.map(describe).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves at the next response (or error), or after ms. */
  next(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  close(): void {
    this.call.cancel();
  }
}

function value(b: Buffer): string {
  if (b.length <= 40) return b.toString('latin1');
  return `<${b.length} bytes ${b.subarray(0, 8).toString('latin1')}…>`;
}

function kvLine(kv: KeyValue): string {
  return `${value(kv.key)}=${value(kv.value)} c${kv.createRevision} m${kv.modRevision} v${kv.version}${kv.lease ? ` l${kv.lease}` : ''}`;
}

export function eventLine(e: Event): string {
  return `${e.type === Event_EventType.DELETE ? 'DELETE' : 'PUT'} ${kvLine(e.kv!)}${e.prevKv ? ` prev(${kvLine(e.prevKv)})` : ''}`;
}

/** One response as a line: everything but the header's cluster and member ids. */
export function describe(r: WatchResponse): string {
  const flags = [r.created && 'created', r.canceled && 'canceled', r.fragment && 'fragment', r.compactRevision && `compact=${r.compactRevision}`, r.cancelReason && `reason=${r.cancelReason}`]
    .filter(Boolean)
    .join(' ');
  return `id=${r.watchId} rev=${r.header?.revision}${flags ? ` ${flags}` : ''}${r.events.length ? ` [${r.events.map(eventLine).join('; ')}]` : ''}`;
}

/**
 * Responses grouped by watch ID, each group in arrival order: within a watcher etcd's order is fixed, across
 * watchers (and between answers and events) it is not, so that is what two servers can be compared on.
 */
export function byWatcher(got: WatchResponse[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const r of got) (out[String(r.watchId)] ??= []).push(describe(r));
  return out;
}
