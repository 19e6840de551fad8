/**
 * etcd's backend quota (etcdserver/quota.go): --quota-backend-bytes bounds the backend's size. A write whose cost
 * would take the database to the quota or past it is refused with "etcdserver: mvcc: database space exceeded", and
 * the member raises the NOSPACE alarm (server/etcdserver/alarms.ts), which refuses puts on every member until an
 * operator compacts, defragments and disarms it.
 */
import type { PutRequest, RequestOp, TxnRequest } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { humanBytes } from '../pkg/go-compat';

/** etcd's DefaultQuotaBytes (2 GiB): the quota when the flag is 0. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd's MaxQuotaBytes (8 GiB): a larger quota is allowed, with a warning. */
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
/** etcd's estimates of what a key's metadata and a lease cost. */
export const KV_OVERHEAD = 256;
export const LEASE_OVERHEAD = 64;

export const costPut = (r: PutRequest): number => KV_OVERHEAD + r.key.length + r.value.length;

/** etcd's costTxn: the larger branch's puts (puts of nested txns are not counted, as etcd does not count them). */
export function costTxn(r: TxnRequest): number {
  const branch = (ops: RequestOp[]) => ops.reduce((n, op) => n + (op.requestPut ? costPut(op.requestPut) : 0), 0);
  return Math.max(branch(r.success), branch(r.failure));
}

export class BackendQuota {
  /** The quota in bytes; undefined when disabled (a negative flag). */
  readonly bytes: number | undefined;

  constructor(
    flag: number,
    private readonly size: () => number,
    log?: (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => void,
  ) {
    if (flag < 0) {
      this.bytes = undefined;
      log?.('info', 'disabled backend quota', { 'quota-size-bytes': flag, capnslog: 'disabling backend quota' });
    } else if (flag === 0) {
      this.bytes = DEFAULT_QUOTA_BYTES;
      log?.('info', 'enabled backend quota with default value', { 'quota-size-bytes': DEFAULT_QUOTA_BYTES, 'quota-size': humanBytes(DEFAULT_QUOTA_BYTES) });
    } else {
      this.bytes = flag;
      if (flag > MAX_QUOTA_BYTES) {
        log?.('warn', 'quota exceeds the maximum value', { 'quota-size-bytes': flag, 'quota-maximum-size-bytes': MAX_QUOTA_BYTES, capnslog: `backend quota ${flag} exceeds maximum recommended quota ${MAX_QUOTA_BYTES}` });
      }
      log?.('info', 'enabled backend quota', { 'quota-size-bytes': flag, 'quota-size': humanBytes(flag) });
    }
  }

  /** Whether a write of this cost fits (a write that costs nothing always does). */
  available(cost: number): boolean {
    if (this.bytes === undefined || cost === 0) return true;
    return this.size() + cost < this.bytes;
  }

  /** What is left of the quota (etcd's Remaining), for the metrics. */
  remaining(): number {
    return this.bytes === undefined ? 1 : this.bytes - this.size();
  }
}
