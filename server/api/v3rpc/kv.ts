/**
 * The etcdserverpb.KV service (etcd's v3rpc/key.go): Range, Put, DeleteRange, Txn and Compact, validated as etcd
 * validates them before anything is proposed or read, then executed by a KVBackend (the MVCC store behind Raft),
 * with the response header filled and every failure turned into etcd's gRPC status.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
  RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
} from './pb/etcdserverpb/rpc';
import {
  ErrGRPCDuplicateKey, ErrGRPCEmptyKey, ErrGRPCKeyNotFound, ErrGRPCLeaseProvided, ErrGRPCTooManyOps,
  ErrGRPCValueProvided, V3Error, toGRPCError,
} from './errors';
import { unaryMethod, type UnaryHandler } from './service';

/**
 * What executes validated KV requests: linearizable or serializable reads and writes through Raft into the MVCC
 * store. Failures are thrown as V3Errors or as errors with etcd's server messages (see errors.ts ServerErrors).
 * A response's header may be left out or partly filled: the service fills cluster_id, member_id, raft_term, and the
 * revision when it is 0 (as etcd's header.fill does).
 */
export interface KVBackend {
  range(r: RangeRequest, call?: CallContext): Promise<RangeResponse>;
  put(r: PutRequest, call?: CallContext): Promise<PutResponse>;
  deleteRange(r: DeleteRangeRequest, call?: CallContext): Promise<DeleteRangeResponse>;
  txn(r: TxnRequest, call?: CallContext): Promise<TxnResponse>;
  compact(r: CompactionRequest, call?: CallContext): Promise<CompactionResponse>;
}

/** What a backend may read of the call: its metadata (the auth token) and its peer's certificate. */
export type CallContext = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata'> &
  Partial<Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>> & {
    /** `metadata.get(key)[0]`, where the call can read it without building its Metadata (the fast path's calls). */
    metadataValue?(key: string): grpc.MetadataValue | undefined;
  };

/** The member's identity and state, read for every response header. */
export interface HeaderProvider {
  clusterId(): bigint;
  memberId(): bigint;
  raftTerm(): bigint;
  /** The store's current revision, for responses that carry none. */
  revision(): bigint;
}

/** Fills a response header as etcd's header.fill does; the backend's revision stays when it set one. */
export function fillHeader(h: ResponseHeader | undefined, p: HeaderProvider): ResponseHeader {
  const header = h ?? { clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n };
  header.clusterId = p.clusterId();
  header.memberId = p.memberId();
  header.raftTerm = p.raftTerm();
  if (header.revision === 0n) header.revision = p.revision();
  return header;
}

/** etcd's default for --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;

export function checkRangeRequest(r: RangeRequest): V3Error | undefined {
  return r.key.length === 0 ? ErrGRPCEmptyKey : undefined;
}

export function checkPutRequest(r: PutRequest): V3Error | undefined {
  if (r.key.length === 0) return ErrGRPCEmptyKey;
  if (r.ignoreValue && r.value.length !== 0) return ErrGRPCValueProvided;
  if (r.ignoreLease && r.lease !== 0n) return ErrGRPCLeaseProvided;
  return undefined;
}

export function checkDeleteRequest(r: DeleteRangeRequest): V3Error | undefined {
  return r.key.length === 0 ? ErrGRPCEmptyKey : undefined;
}

/**
 * etcd's checkTxnRequest: the largest of compare/success/failure counts against --max-txn-ops, keys present; a nested
 * txn is checked against what its parent leaves of the budget (etcd's rule, so the same txns pass and fail).
 */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): V3Error | undefined {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) return ErrGRPCTooManyOps;
  for (const c of r.compare) if (c.key.length === 0) return ErrGRPCEmptyKey;
  for (const u of r.success) {
    const err = checkRequestOp(u, maxTxnOps - opc);
    if (err) return err;
  }
  for (const u of r.failure) {
    const err = checkRequestOp(u, maxTxnOps - opc);
    if (err) return err;
  }
  return undefined;
}

function checkRequestOp(u: RequestOp, maxTxnOps: number): V3Error | undefined {
  if (u.requestRange) return checkRangeRequest(u.requestRange);
  if (u.requestPut) return checkPutRequest(u.requestPut);
  if (u.requestDeleteRange) return checkDeleteRequest(u.requestDeleteRange);
  if (u.requestTxn) return checkTxnRequest(u.requestTxn, maxTxnOps);
  // An op with no request in it: etcd answers "key not found".
  return ErrGRPCKeyNotFound;
}

/**
 * A deleted key range [begin, end); an empty end is unbounded, as in etcd's "affine" string intervals. A single-key
 * delete is [key, key+"\0"). A "from key" delete (end "\0") is an empty interval there and never conflicts: etcd's
 * behaviour, kept so that the same txns are refused.
 */
interface Interval { begin: Buffer; end: Buffer }

const ZERO = Buffer.from([0]);

function containsKey(dels: Interval[], k: Buffer): boolean {
  for (const iv of dels) {
    if (Buffer.compare(iv.begin, k) <= 0 && (iv.end.length === 0 || Buffer.compare(k, iv.end) < 0)) return true;
  }
  return false;
}

/**
 * etcd's checkIntervals: within one txn branch (and the txns nested in it), no key may be put twice or both put and
 * deleted; a nested txn's success and failure branches are exclusive, so they may put the same key. Returns the puts
 * and deletes of the branch for its parent's check, or the duplicate-key error.
 */
export function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Interval[] } | V3Error {
  const dels: Interval[] = [];
  for (const req of reqs) {
    const d = req.requestDeleteRange;
    if (!d) continue;
    dels.push({ begin: d.key, end: d.rangeEnd.length !== 0 ? d.rangeEnd : Buffer.concat([d.key, ZERO]) });
  }
  // Keys as latin1 strings: one char per byte, so distinct byte strings stay distinct.
  const puts = new Set<string>();
  for (const req of reqs) {
    const t = req.requestTxn;
    if (!t) continue;
    const then = checkIntervals(t.success);
    if (then instanceof V3Error) return then;
    const els = checkIntervals(t.failure);
    if (els instanceof V3Error) return els;
    for (const k of then.puts) {
      if (puts.has(k) || containsKey(dels, Buffer.from(k, 'latin1'))) return ErrGRPCDuplicateKey;
      puts.add(k);
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) return ErrGRPCDuplicateKey;
      if (containsKey(dels, Buffer.from(k, 'latin1'))) return ErrGRPCDuplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const req of reqs) {
    const p = req.requestPut;
    if (!p) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k) || containsKey(dels, p.key)) return ErrGRPCDuplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}

/** The Txn checks in etcd's order: shape and budget first, then the (costlier) overlap check of each branch. */
export function checkTxn(r: TxnRequest, maxTxnOps: number): V3Error | undefined {
  const err = checkTxnRequest(r, maxTxnOps);
  if (err) return err;
  const s = checkIntervals(r.success);
  if (s instanceof V3Error) return s;
  const f = checkIntervals(r.failure);
  if (f instanceof V3Error) return f;
  return undefined;
}

export interface KVServiceOptions {
  backend: KVBackend;
  header: HeaderProvider;
  /** --max-txn-ops */
  maxTxnOps?: number;
}

/** Runs check, then the backend, then fills the header; any failure becomes etcd's status. */
function handle<Req, Res extends { header?: ResponseHeader | undefined }>(
  check: (r: Req) => V3Error | undefined,
  exec: (r: Req, call: CallContext) => Promise<Res>,
  header: HeaderProvider,
): UnaryHandler<Req, Res> {
  return async (req, call) => {
    const invalid = check(req);
    if (invalid) throw invalid;
    let resp: Res;
    try {
      resp = await exec(req, call);
    } catch (err) {
      throw toGRPCError(err);
    }
    resp.header = fillHeader(resp.header, header);
    return resp;
  };
}

const none = () => undefined;

/** The KV service's definition and handlers, to add to a grpc.Server. */
export function kvService(opts: KVServiceOptions): { definition: grpc.ServiceDefinition; handlers: Record<string, UnaryHandler<any, any>> } {
  const { backend: b, header } = opts;
  const maxTxnOps = opts.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
  return {
    definition: {
      Range: unaryMethod('/etcdserverpb.KV/Range', RangeRequest, RangeResponse),
      Put: unaryMethod('/etcdserverpb.KV/Put', PutRequest, PutResponse),
      DeleteRange: unaryMethod('/etcdserverpb.KV/DeleteRange', DeleteRangeRequest, DeleteRangeResponse),
      Txn: unaryMethod('/etcdserverpb.KV/Txn', TxnRequest, TxnResponse),
      Compact: unaryMethod('/etcdserverpb.KV/Compact', CompactionRequest, CompactionResponse),
    },
    handlers: {
      Range: handle(checkRangeRequest, (r, c) => b.range(r, c), header),
      Put: handle(checkPutRequest, (r, c) => b.put(r, c), header),
      DeleteRange: handle(checkDeleteRequest, (r, c) => b.deleteRange(r, c), header),
      Txn: handle((r: TxnRequest) => checkTxn(r, maxTxnOps), (r, c) => b.txn(r, c), header),
      Compact: handle(none, (r: CompactionRequest, c) => b.compact(r, c), header),
    },
  };
}
