/**
 * What the v3 robustness clients did, through gRPC: every KV and lease request with when it was sent and answered,
 * what it asked and what came back (or that nothing did), and what each watcher received, session by session. Plain
 * JSON, saved and re-checked as it is.
 */
import type * as grpc from '@grpc/grpc-js';

export type V3OpKind =
  /** A register (/v3/reg/…): linearizable Range, Put, Txn (compare mod_revision, then put, else range), DeleteRange. */
  | 'get' | 'put' | 'cas' | 'del'
  /** A key written once (/v3/uniq/…). */
  | 'uput'
  /** Leases: a grant, a key put with it (/v3/lease/…), a linearizable read of that key, a keep-alive, a revoke. */
  | 'grant' | 'lput' | 'lget' | 'keepalive' | 'revoke';

/** A key's value and mod_revision as an answer showed it (value null, mod 0: absent). */
export interface KVSeen {
  value: string | null;
  mod: number;
}

export interface V3Op {
  id: number;
  client: number;
  /** The member the request went to. */
  member: string;
  kind: V3OpKind;
  key: string;
  /** Sent and answered, in ms on the runner's monotonic clock (performance.now); ret null: no answer. */
  call: number;
  ret: number | null;
  /** What a write puts. */
  value?: string;
  /** A compare's expected mod_revision (0: the key absent). */
  expectRev?: number;
  /** The lease (hex ID) a grant got, a key was put with, a keep-alive or revoke names; the TTL a grant asked. */
  lease?: string;
  ttl?: number;
  /** The answer: the header revision; a read's kv (or a failed compare's); what a put or delete replaced. */
  rev?: number;
  kv?: KVSeen;
  prev?: KVSeen;
  /** A compare: whether it held. */
  succeeded?: boolean;
  /** A grant's or a keep-alive's TTL (0 for a keep-alive: no such lease). */
  grantedTTL?: number;
  /** A failure: the gRPC status and its text. */
  code?: number;
  error?: string;
  /** The request certainly never reached a member (no connection). */
  refused?: boolean;
}

/**
 * What an answer says about the operation: it happened as answered ('ok'), it was applied and its compare did not
 * hold or its lease was gone ('failed'), it certainly did not happen ('refused'), or nobody knows ('unknown').
 */
export function outcomeV3(op: V3Op): 'ok' | 'failed' | 'refused' | 'unknown' {
  if (op.ret === null || op.error !== undefined) {
    if (op.refused) return 'refused';
    return op.kind === 'lput' && op.error === LEASE_NOT_FOUND ? 'failed' : 'unknown';
  }
  if (op.kind === 'cas' && op.succeeded === false) return 'failed';
  if (op.kind === 'keepalive' && op.grantedTTL === 0) return 'failed';
  return 'ok';
}

export const LEASE_NOT_FOUND = 'etcdserver: requested lease not found';

/** A watch event as a watcher received it. */
export interface WatchEventSeen {
  rev: number;
  key: string;
  type: 'put' | 'delete';
  value: string;
  create: number;
  version: number;
  lease: string;
  /** The kv before it (prev_kv), null when it had none. */
  prev: KVSeen | null;
  /** When it arrived (performance.now). */
  at: number;
}

/** One watch stream of a watcher: opened on a member from a revision, until it failed or was left. */
export interface WatchSession {
  member: string;
  from: number;
  opened: number;
  closed?: number;
  /** Why it ended: the stream's error, a cancel, the watcher leaving it (silent, or moving on). */
  reason?: string;
  events: number;
}

export interface WatcherLog {
  watcher: number;
  sessions: WatchSession[];
  events: WatchEventSeen[];
}

/** Records the run's v3 operations. */
export class V3Recorder {
  readonly ops: V3Op[] = [];
  private nextId = 0;

  /** Sends one request (`send`) and records it with what `answer` reads of the response; resolves once answered or given up on. */
  async run<R>(fields: Omit<V3Op, 'id' | 'call' | 'ret'>, send: () => Promise<R>, answer: (r: R, op: V3Op) => void): Promise<V3Op> {
    const op: V3Op = { ...fields, id: this.nextId++, call: performance.now(), ret: null };
    this.ops.push(op);
    try {
      const r = await send();
      op.ret = performance.now();
      answer(r, op);
    } catch (err) {
      failed(op, err as grpc.ServiceError);
    }
    return op;
  }

  /** An operation recorded by its caller (a keep-alive on a stream). */
  add(fields: Omit<V3Op, 'id'>): V3Op {
    const op: V3Op = { ...fields, id: this.nextId++ };
    this.ops.push(op);
    return op;
  }
}

/**
 * A failed call: with no connection, grpc-js fails it at once ("No connection established"), and it never left;
 * anything else (a deadline, a dropped connection, an etcd error) leaves its outcome unknown.
 */
export function failed(op: V3Op, err: grpc.ServiceError): void {
  op.code = err.code;
  op.error = err.details || err.message;
  if (/No connection established|ECONNREFUSED/.test(op.error)) op.refused = true;
  // An etcd failure that was answered (e.g. the lease of a put was gone) keeps its answer time.
  if (op.error === LEASE_NOT_FOUND) op.ret = performance.now();
}
