/**
 * Applies v3 KV requests to the MVCC store as etcd's applierV3backend does (etcdserver/apply.go): Range with its
 * limit/sort/filter rules, Put, DeleteRange, Txn (compares, branches, nested txns, one revision) and Compaction;
 * and, with a lessor, LeaseGrant, LeaseRevoke and LeaseCheckpoint (a put's lease must exist).
 * Responses carry header.revision; the server fills cluster_id, member_id and raft_term of the top-level header.
 */
import { KeyValue } from '../api/v3rpc/pb/mvccpb/kv';
import {
  AlarmResponse,
  Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseCheckpointRequest,
  LeaseCheckpointResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import { InternalRaftRequest } from '../api/v3rpc/pb/etcdserverpb/raft_internal';
import { keyTooLong } from '../mvcc/codec';
import { ErrCompacted, ErrFutureRev, ErrKeyTooLong } from '../mvcc/errors';
import { MvccOpCounts, newOpCounts } from '../mvcc/metrics';
import { MvccStore, RangeOptions, RangeResult, WriteTxn } from '../mvcc/store';
import { ErrLeaseNotFound, type Lessor } from '../lease/lessor';
import { AlarmStore } from './alarms';
import { costTxn } from './quota';

export { ErrLeaseNotFound };

/** etcd's ErrKeyNotFound (a put with ignore_value/ignore_lease on a missing key). */
export class ErrKeyNotFound extends Error {
  constructor() {
    super('etcdserver: key not found');
    this.name = 'ErrKeyNotFound';
  }
}

/** What reads go through: the store (current view) or an open write txn (which sees its own writes). */
interface ReadView {
  range(key: Buffer, end: Buffer | undefined, opts?: RangeOptions): RangeResult;
  rev(): number;
}

export type V3Response =
  | RangeResponse
  | PutResponse
  | DeleteRangeResponse
  | TxnResponse
  | CompactionResponse
  | LeaseGrantResponse
  | LeaseRevokeResponse
  | LeaseCheckpointResponse
  | AlarmResponse;

export interface V3ApplyResult {
  resp?: V3Response;
  err?: Error;
  /** for a compaction: resolves when the compacted versions are removed (etcd's physical compaction) */
  physical?: Promise<void>;
}

const header = (revision: number): ResponseHeader => ({
  clusterId: 0n,
  memberId: 0n,
  revision: BigInt(revision),
  raftTerm: 0n,
});

/** etcd's mkGteRange plus the single-key form: empty → one key, "\0" → every key ≥ key, else [key, end). */
function rangeEnd(end: Buffer): Buffer | undefined {
  if (end.length === 0) return undefined;
  if (end.length === 1 && end[0] === 0) return Buffer.alloc(0);
  return end;
}

/** Go's int64 request fields as the store's numbers (revisions and limits fit in 2^53). */
const num = (n: bigint): number => Number(n);

function isTxnReadonly(r: TxnRequest): boolean {
  for (const ops of [r.success, r.failure]) {
    for (const op of ops) {
      if (op.requestPut || op.requestDeleteRange) return false;
      if (op.requestTxn && !isTxnReadonly(op.requestTxn)) return false;
    }
  }
  return true;
}

const cmpInt = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

function compareKV(c: Compare, kv: KeyValue | undefined): boolean {
  let result = 0;
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      result = Buffer.compare(kv ? kv.value : Buffer.alloc(0), c.value ?? Buffer.alloc(0));
      break;
    case Compare_CompareTarget.CREATE:
      result = cmpInt(kv ? kv.createRevision : 0n, c.createRevision ?? 0n);
      break;
    case Compare_CompareTarget.MOD:
      result = cmpInt(kv ? kv.modRevision : 0n, c.modRevision ?? 0n);
      break;
    case Compare_CompareTarget.VERSION:
      result = cmpInt(kv ? kv.version : 0n, c.version ?? 0n);
      break;
    case Compare_CompareTarget.LEASE:
      result = cmpInt(kv ? kv.lease : 0n, c.lease ?? 0n);
      break;
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
  }
  return true;
}

/** etcd's applyCompare: every key of the range must match; a missing key compares as zero (never by VALUE). */
function applyCompare(rv: ReadView, c: Compare): boolean {
  let rr: RangeResult;
  try {
    rr = rv.range(c.key, rangeEnd(c.rangeEnd), { keysOnly: c.target !== Compare_CompareTarget.VALUE });
  } catch {
    return false;
  }
  if (rr.kvs.length === 0) return c.target === Compare_CompareTarget.VALUE ? false : compareKV(c, undefined);
  for (const kv of rr.kvs) if (!compareKV(c, kv)) return false;
  return true;
}

/** The branch taken by the txn and, depth first, by each nested txn in the branches taken (etcd's compareToPath). */
function compareToPath(rv: ReadView, r: TxnRequest, path: boolean[] = []): boolean[] {
  const ok = r.compare.every((c) => applyCompare(rv, c));
  path.push(ok);
  for (const op of ok ? r.success : r.failure) if (op.requestTxn) compareToPath(rv, op.requestTxn, path);
  return path;
}

export class V3Applier {
  /** Operations applied, for etcd's mvcc metrics (server/mvcc/metrics.ts). */
  readonly ops: MvccOpCounts = newOpCounts();

  /**
   * The auth store's check of the request's user (etcd's authApplierV3), set when auth is wired in: a refusal is the
   * entry's answer and nothing is applied.
   */
  authorize: ((r: InternalRaftRequest) => Error | undefined) | undefined;

  /** The alarms (Maintenance.Alarm entries), which refuse writes while NOSPACE or CORRUPT is active. */
  readonly alarms: AlarmStore;

  /** Without a lessor, every lease is unknown (a put with a lease is refused, lease entries answer not found). */
  constructor(
    readonly store: MvccStore,
    readonly lessor?: Lessor,
    log?: ConstructorParameters<typeof AlarmStore>[1],
  ) {
    this.alarms = new AlarmStore(store, log);
  }

  /** True when the entry at index is already in the store (replay after a restart skips it). */
  applied(index: number): boolean {
    return index <= this.store.consistentIndex();
  }

  /** The encoding versions of v3 entries read here (the dispatcher's Applier interface). */
  readonly versions: readonly number[] = [1];

  /**
   * The dispatcher's entry point: the payload is an InternalRaftRequest. An entry at or below the consistent index
   * (replayed after a restart) answers nothing; otherwise the result is a V3ApplyResult and refusals are `error`.
   */
  apply(payload: Uint8Array, ctx: { index: number }): { result?: V3ApplyResult; error?: Error } {
    // Replay after a restart passes every entry since the last snapshot: those in the store are not even decoded.
    if (this.applied(ctx.index)) return {};
    const r = this.applyRequest(ctx.index, InternalRaftRequest.decode(payload));
    if (!r) return {};
    return r.err ? { error: r.err } : { result: r };
  }

  /**
   * Applies the v3 KV request of the log entry at index; undefined when the entry was applied before (at or below
   * the store's consistent index) or carries no KV request. Errors are returned, as etcd's applier does.
   */
  applyRequest(index: number, r: InternalRaftRequest): V3ApplyResult | undefined {
    if (this.applied(index)) return undefined;
    try {
      if (r.alarm) return { resp: this.alarms.apply(index, r.alarm) };
      const denied = this.authorize?.(r);
      if (denied) throw denied;
      if (this.alarms.mode !== 'normal') {
        // etcd's capped applier refuses puts (txns with a put in a branch, lease grants), its corrupt applier every
        // write and read.
        const put = r.put !== undefined || r.leaseGrant !== undefined || (r.txn !== undefined && costTxn(r.txn) > 0);
        const refused =
          r.put || r.deleteRange || r.txn || r.compaction || r.range || r.leaseGrant || r.leaseRevoke ? this.alarms.refusal({ put }) : undefined;
        if (refused) throw refused;
      }
      if (r.range) {
        this.store.setConsistentIndex(index);
        return { resp: this.range(r.range) };
      }
      if (r.put) return { resp: this.put(index, r.put) };
      if (r.deleteRange) return { resp: this.deleteRange(index, r.deleteRange) };
      if (r.txn) return { resp: this.txn(index, r.txn) };
      if (r.compaction) {
        const { resp, physical } = this.compaction(index, r.compaction);
        return { resp, physical };
      }
      if (r.leaseGrant) return { resp: this.leaseGrant(index, r.leaseGrant) };
      if (r.leaseRevoke) return { resp: this.leaseRevoke(index, r.leaseRevoke) };
      if (r.leaseCheckpoint) return { resp: this.leaseCheckpoint(index, r.leaseCheckpoint) };
      return undefined;
    } catch (err) {
      this.store.setConsistentIndex(index);
      return { err: err as Error };
    }
  }

  /** A Range, serializable or linearizable alike (the server decides when to call it). */
  range(r: RangeRequest, rv: ReadView = this.store): RangeResponse {
    this.ops.range++;
    let limit = num(r.limit);
    const sortOrder =
      r.sortTarget !== RangeRequest_SortTarget.KEY && r.sortOrder === RangeRequest_SortOrder.NONE
        ? RangeRequest_SortOrder.ASCEND
        : r.sortOrder;
    if (
      r.sortOrder !== RangeRequest_SortOrder.NONE ||
      r.minModRevision !== 0n ||
      r.maxModRevision !== 0n ||
      r.minCreateRevision !== 0n ||
      r.maxCreateRevision !== 0n
    ) {
      limit = 0; // fetch everything; filter, sort and truncate afterwards
    }
    if (limit > 0) limit++; // one more to tell `more`
    const rr = rv.range(r.key, rangeEnd(r.rangeEnd), {
      rev: num(r.revision),
      limit,
      countOnly: r.countOnly,
      keysOnly: r.keysOnly && !(sortOrder !== RangeRequest_SortOrder.NONE && r.sortTarget === RangeRequest_SortTarget.VALUE),
    });
    let kvs = rr.kvs;
    if (r.maxModRevision !== 0n) kvs = kvs.filter((kv) => kv.modRevision <= r.maxModRevision);
    if (r.minModRevision !== 0n) kvs = kvs.filter((kv) => kv.modRevision >= r.minModRevision);
    if (r.maxCreateRevision !== 0n) kvs = kvs.filter((kv) => kv.createRevision <= r.maxCreateRevision);
    if (r.minCreateRevision !== 0n) kvs = kvs.filter((kv) => kv.createRevision >= r.minCreateRevision);
    if (sortOrder === RangeRequest_SortOrder.ASCEND || sortOrder === RangeRequest_SortOrder.DESCEND) {
      const cmp = sorter(r.sortTarget);
      if (cmp) kvs.sort(sortOrder === RangeRequest_SortOrder.ASCEND ? cmp : (a, b) => cmp(b, a));
    }
    let more = false;
    if (r.limit > 0n && kvs.length > num(r.limit)) {
      kvs = kvs.slice(0, num(r.limit));
      more = true;
    }
    if (r.keysOnly) for (const kv of kvs) if (kv.value.length) kv.value = Buffer.alloc(0);
    return { header: header(rr.rev), kvs, more, count: BigInt(rr.count) };
  }

  put(index: number, r: PutRequest): PutResponse {
    this.checkLease(r.lease);
    if (keyTooLong(r.key)) throw new ErrKeyTooLong();
    const txn = this.store.write(index);
    try {
      return this.putIn(txn, r);
    } finally {
      txn.end();
    }
  }

  deleteRange(index: number, r: DeleteRangeRequest): DeleteRangeResponse {
    const txn = this.store.write(index);
    try {
      return this.deleteIn(txn, r);
    } finally {
      txn.end();
    }
  }

  txn(index: number, r: TxnRequest): TxnResponse {
    this.ops.txn++;
    const path = compareToPath(this.store, r);
    if (!isTxnReadonly(r)) this.checkRequests(r, path, 0, (op) => this.checkPut(op));
    this.checkRequests(r, path, 0, (op) => this.checkRange(op));
    const txn = isTxnReadonly(r) ? undefined : this.store.write(index);
    try {
      const resp = this.applyTxn(txn ?? this.store, txn, r, path, { i: 0 });
      resp.header = header(txn ? txn.rev() : this.store.rev());
      return resp;
    } finally {
      if (txn) txn.end();
      else this.store.setConsistentIndex(index);
    }
  }

  /** A txn that only reads, served without the log (etcd's isTxnReadonly path): one synchronous read view. */
  readonlyTxn(r: TxnRequest): TxnResponse {
    const path = compareToPath(this.store, r);
    this.checkRequests(r, path, 0, (op) => this.checkRange(op));
    const resp = this.applyTxn(this.store, undefined, r, path, { i: 0 });
    resp.header = header(this.store.rev());
    return resp;
  }

  compaction(index: number, r: CompactionRequest): { resp: CompactionResponse; physical: Promise<void> } {
    const physical = this.store.compact(num(r.revision), index);
    physical.catch(() => undefined);
    return { resp: { header: header(this.store.rev()) }, physical };
  }

  /** etcd's LeaseGrant apply: the lease, with its TTL raised to the minimum; ErrLeaseExists, ErrLeaseTTLTooLarge. */
  leaseGrant(index: number, r: LeaseGrantRequest): LeaseGrantResponse {
    if (!this.lessor) throw new ErrLeaseNotFound();
    try {
      const l = this.lessor.grant(r.ID, Number(r.TTL));
      return { header: header(this.store.rev()), ID: l.id, TTL: BigInt(l.ttl), error: '' };
    } finally {
      this.store.setConsistentIndex(index);
    }
  }

  /** etcd's LeaseRevoke apply: the lease's keys deleted at one revision (none: no new revision), the lease gone. */
  leaseRevoke(index: number, r: LeaseRevokeRequest): LeaseRevokeResponse {
    if (!this.lessor) throw new ErrLeaseNotFound();
    this.lessor.revoke(r.ID, index);
    return { header: header(this.store.rev()) };
  }

  leaseCheckpoint(index: number, r: LeaseCheckpointRequest): LeaseCheckpointResponse {
    for (const c of r.checkpoints) this.lessor?.checkpoint(c.ID, Number(c.remainingTTL));
    this.store.setConsistentIndex(index);
    return { header: header(this.store.rev()) };
  }

  private checkLease(lease: bigint): void {
    if (lease !== 0n && !this.lessor?.lookup(lease)) throw new ErrLeaseNotFound();
  }

  private putIn(txn: WriteTxn, r: PutRequest): PutResponse {
    this.ops.put++;
    this.ops.putBytes += r.key.length + r.value.length;
    let value = r.value;
    let lease = r.lease;
    let prev: KeyValue | undefined;
    if (r.ignoreValue || r.ignoreLease || r.prevKv) prev = txn.range(r.key, undefined).kvs[0];
    if ((r.ignoreValue || r.ignoreLease) && !prev) throw new ErrKeyNotFound();
    if (r.ignoreValue) value = prev!.value;
    if (r.ignoreLease) lease = prev!.lease;
    txn.put(r.key, value, lease);
    return { header: header(txn.beginRev + 1), prevKv: r.prevKv ? prev : undefined };
  }

  private deleteIn(txn: WriteTxn, r: DeleteRangeRequest): DeleteRangeResponse {
    this.ops.delete++;
    const end = rangeEnd(r.rangeEnd);
    const prevKvs = r.prevKv ? txn.range(r.key, end).kvs : [];
    const deleted = txn.deleteRange(r.key, end);
    return { header: header(txn.rev()), deleted: BigInt(deleted), prevKvs };
  }

  /** Runs the branch the path chose; pos.i walks the path through nested txns in the order compareToPath made it. */
  private applyTxn(rv: ReadView, txn: WriteTxn | undefined, r: TxnRequest, path: boolean[], pos: { i: number }): TxnResponse {
    const ok = path[pos.i++];
    const responses: ResponseOp[] = [];
    for (const op of ok ? r.success : r.failure) {
      if (op.requestRange) responses.push({ responseRange: this.range(op.requestRange, rv) });
      else if (op.requestPut) responses.push({ responsePut: this.putIn(txn!, op.requestPut) });
      else if (op.requestDeleteRange) responses.push({ responseDeleteRange: this.deleteIn(txn!, op.requestDeleteRange) });
      else if (op.requestTxn) responses.push({ responseTxn: this.applyTxn(rv, txn, op.requestTxn, path, pos) });
      else responses.push({});
    }
    return { header: header(0), succeeded: ok, responses };
  }

  /** etcd's checkRequests: runs f on every op of the branches the path takes, before anything is written. */
  private checkRequests(r: TxnRequest, path: boolean[], at: number, f: (op: RequestOp) => void): number {
    let used = 1;
    for (const op of path[at] ? r.success : r.failure) {
      if (op.requestTxn) used += this.checkRequests(op.requestTxn, path, at + used, f);
      else f(op);
    }
    return used;
  }

  private checkPut(op: RequestOp): void {
    const p = op.requestPut;
    if (!p) return;
    if ((p.ignoreValue || p.ignoreLease) && this.store.range(p.key, undefined, { keysOnly: true }).count === 0) {
      throw new ErrKeyNotFound();
    }
    this.checkLease(p.lease);
    if (keyTooLong(p.key)) throw new ErrKeyTooLong(); // refused before the txn writes anything
  }

  private checkRange(op: RequestOp): void {
    const r = op.requestRange;
    if (!r || r.revision === 0n) return;
    if (r.revision > BigInt(this.store.rev())) throw new ErrFutureRev();
    if (r.revision < BigInt(this.store.compactRev())) throw new ErrCompacted();
  }
}

function sorter(target: RangeRequest_SortTarget): ((a: KeyValue, b: KeyValue) => number) | undefined {
  switch (target) {
    case RangeRequest_SortTarget.KEY:
      return (a, b) => Buffer.compare(a.key, b.key);
    case RangeRequest_SortTarget.VERSION:
      return (a, b) => cmpInt(a.version, b.version);
    case RangeRequest_SortTarget.CREATE:
      return (a, b) => cmpInt(a.createRevision, b.createRevision);
    case RangeRequest_SortTarget.MOD:
      return (a, b) => cmpInt(a.modRevision, b.modRevision);
    case RangeRequest_SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
  }
  return undefined;
}
