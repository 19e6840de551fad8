/**
 * The member's v3 KV (etcd's etcdserver/v3_server.go): what the gRPC KV service calls. Writes (Put, DeleteRange,
 * Txn, Compact) go through the Raft log as v3 entries (an InternalRaftRequest in the entry envelope) and answer what
 * the v3 applier answered on this member; ranges are local, after a ReadIndex round unless serializable.
 */
import { InternalRaftRequest } from '../api/v3rpc/pb/etcdserverpb/raft_internal';
import {
  AlarmRequest,
  AlarmRequest_AlarmAction,
  AlarmResponse,
  AlarmType,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  TxnRequest,
  TxnResponse,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import type { CallContext, HeaderProvider, KVBackend } from '../api/v3rpc/kv';
import type { AuthGate } from '../auth/gate';
import { serverError } from '../api/v3rpc/errors';
import { encodeMessage } from '../api/v3rpc/service';
import { EntryKind } from './entry';
import type { EtcdServer } from './server';
import { V3Applier, V3ApplyResult } from './apply-v3';
import { BackendQuota, costPut, costTxn } from './quota';

/** etcd's maxRequestBytes default. */
const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/** A txn that only reads (etcd's isTxnReadonly): served like a range, without the log. */
function isTxnReadonly(r: TxnRequest): boolean {
  const readOnly = (ops: RequestOp[]): boolean => ops.every((op) => op.requestRange !== undefined || (op.requestTxn !== undefined && isTxnReadonly(op.requestTxn)));
  return readOnly(r.success) && readOnly(r.failure);
}

export class V3KV implements KVBackend {
  private readonly maxRequestBytes: number;
  private readonly quota: BackendQuota | undefined;

  constructor(
    private readonly server: EtcdServer,
    private readonly applier: V3Applier,
    opts: { maxRequestBytes?: number; auth?: AuthGate; quota?: BackendQuota } = {},
  ) {
    this.maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    this.auth = opts.auth;
    this.quota = opts.quota;
  }

  /** Who asks (server/auth/): requests are stamped with the user, local reads checked. */
  private readonly auth: AuthGate | undefined;

  /** What every response header says of this member (the applier fills the revision). */
  header(): HeaderProvider {
    const s = this.server;
    // The ids are hex strings that are set once (the cluster's when it is joined): parsed again only when they change.
    const hex = (): ((id: string | undefined) => bigint) => {
      let last: string | undefined;
      let value = 0n;
      return (id) => {
        if (id !== last) value = BigInt('0x' + (id || '0'));
        last = id;
        return value;
      };
    };
    const clusterId = hex();
    const memberId = hex();
    return {
      clusterId: () => clusterId(s.cluster?.id),
      memberId: () => memberId(s.id),
      raftTerm: () => BigInt(s.raftNode ? s.term() : 0),
      revision: () => BigInt(this.applier.store.rev()),
    };
  }

  async range(r: RangeRequest, call?: CallContext): Promise<RangeResponse> {
    if (!this.server.published) await this.ready();
    if (!r.serializable) await this.server.linearizableRead();
    if (this.auth) {
      if (this.auth.store.isEnabled()) return this.auth.serialized(call, this.auth.checkRange(call, r), () => this.applier.range(r));
      this.auth.checkToken(call);
    }
    return this.applier.range(r);
  }

  async put(r: PutRequest, call?: CallContext): Promise<PutResponse> {
    if (this.quota && !this.quota.available(costPut(r))) await this.noSpace();
    return (await this.propose({ put: r }, call)).resp as PutResponse;
  }

  async deleteRange(r: DeleteRangeRequest, call?: CallContext): Promise<DeleteRangeResponse> {
    return (await this.propose({ deleteRange: r }, call)).resp as DeleteRangeResponse;
  }

  async txn(r: TxnRequest, call?: CallContext): Promise<TxnResponse> {
    if (isTxnReadonly(r)) {
      await this.ready();
      await this.server.linearizableRead();
      if (this.auth) {
        if (this.auth.store.isEnabled()) return this.auth.serialized(call, this.auth.checkTxn(r), () => this.applier.readonlyTxn(r));
        this.auth.checkToken(call);
      }
      return this.applier.readonlyTxn(r);
    }
    if (this.quota && !this.quota.available(costTxn(r))) await this.noSpace();
    return (await this.propose({ txn: r }, call)).resp as TxnResponse;
  }

  async compact(r: CompactionRequest, call?: CallContext): Promise<CompactionResponse> {
    const res = await this.propose({ compaction: r }, call);
    // With physical, etcd answers once the compacted versions are gone.
    if (r.physical && res.physical) await res.physical;
    return res.resp as CompactionResponse;
  }

  /** Maintenance.Alarm: every action goes through the log, as etcd's; the answer has no header, as etcd's. */
  async alarm(r: AlarmRequest, call?: CallContext): Promise<AlarmResponse> {
    return (await this.propose({ alarm: r }, call)).resp as AlarmResponse;
  }

  /** etcd's quota check for a write of this cost (its quotaLeaseServer checks lease grants with it too). */
  async checkQuota(cost: number): Promise<void> {
    if (this.quota && !this.quota.available(cost)) await this.noSpace();
  }

  /**
   * etcd's quotaAlarmer: a write past --quota-backend-bytes raises this member's NOSPACE alarm through the log
   * (once: while it is up, refused writes raise nothing more) and is refused with "database space exceeded".
   */
  private async noSpace(): Promise<never> {
    const id = BigInt('0x' + (this.server.id || '0'));
    if (!this.applier.alarms.has(AlarmType.NOSPACE, id)) {
      await this.alarm({ action: AlarmRequest_AlarmAction.ACTIVATE, memberID: id, alarm: AlarmType.NOSPACE }).catch(() => undefined);
    }
    throw serverError('noSpace');
  }

  /** Resolves once this member serves clients (published). */
  ready(): Promise<void> {
    if (this.server.published) return Promise.resolve();
    return new Promise((resolve) => this.server.once('published', () => resolve()));
  }

  /**
   * Proposes a v3 request (also the lease requests) and resolves with what this member's applier answered;
   * `leaderOnly`: only into this member's log while it leads (see EtcdServer.proposeEntry).
   */
  async propose(op: Partial<InternalRaftRequest>, call?: CallContext, o: { leaderOnly?: boolean } = {}): Promise<V3ApplyResult> {
    if (!this.server.published) await this.ready();
    const who = this.auth ? this.auth.stamp(call) : { username: '', authRevision: 0n };
    const id = this.server.newRequestId();
    // The decoded request goes in as it is: fromPartial would deep-copy it (every op of a txn) only to encode it.
    // Nor is the message built by fromPartial: its encoder reads only the fields set (and ID), not the other 30.
    const msg = { header: { ID: BigInt(id), username: who.username, authRevision: who.authRevision }, ID: 0n, ...op } as InternalRaftRequest;
    const data = encodeMessage(InternalRaftRequest, msg);
    if (data.length > this.maxRequestBytes) throw serverError('requestTooLarge');
    const w = await this.server.proposeEntry(EntryKind.V3, data, id, o);
    if (w.error) throw w.error;
    const res = w.result as V3ApplyResult | undefined;
    if (!res?.resp) throw serverError('unknownMethod');
    return res;
  }
}
