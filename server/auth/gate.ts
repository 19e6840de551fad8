/**
 * Who a v3 request comes from (etcd's AuthInfoFromCtx and AuthInfoFromTLS), and the checks of requests served
 * without the log (etcd's doSerialize). Every service asks here: KV, and Watch (`checkWatch`) and Lease
 * (`checkLeaseKeys`) when they land.
 */
import type { MetadataValue } from '@grpc/grpc-js';
import type { RangeRequest, TxnRequest } from '../api/v3rpc/pb/etcdserverpb/rpc';
import type { CallContext } from '../api/v3rpc/kv';
import { serverError } from '../api/v3rpc/errors';
import type { AuthInfo, AuthStore } from './store';

/** A call's first value of a metadata key, without building its Metadata where the call can (CallContext). */
function metadataValue(call: CallContext, key: string): MetadataValue | undefined {
  return call.metadataValue ? call.metadataValue(key) : call.metadata.get(key)[0];
}

/** The `token` metadata, else the gateway's `authorization`. */
function tokenOf(call: CallContext): MetadataValue | undefined {
  return metadataValue(call, 'token') ?? metadataValue(call, 'authorization');
}

export class AuthGate {
  constructor(
    readonly store: AuthStore,
    /** --client-cert-auth: a verified client certificate's common name is the user when no token is given */
    private readonly clientCertAuth: boolean,
  ) {}

  /** The caller: from the `token` (or the gateway's `authorization`) metadata, else the client certificate's CN. */
  authInfo(call: CallContext | undefined): AuthInfo | undefined {
    if (!call) return undefined;
    const token = tokenOf(call);
    if (token !== undefined) return this.store.authInfoFromToken(String(token));
    if (!this.clientCertAuth || !call.getAuthContext) return undefined;
    // As etcd: a request the gateway forwards is not the certificate's owner's.
    if (metadataValue(call, 'grpcgateway-accept') !== undefined) return undefined;
    const cert = call.getAuthContext().sslPeerCertificate;
    const cn = cert?.subject?.CN;
    if (!cn) return undefined;
    return { username: Array.isArray(cn) ? cn[0] : cn, revision: this.store.revision() };
  }

  /**
   * With auth off, etcd still reads the token a request carries (AuthInfoFromCtx): one that is no token is refused
   * with "invalid auth token". Only the metadata is looked at (a request without a token costs two lookups).
   */
  checkToken(call: CallContext | undefined): void {
    if (!call) return;
    const token = tokenOf(call);
    if (token !== undefined) this.store.authInfoFromToken(String(token));
  }

  /** The header fields of a proposed request: who asks, at which auth revision (none when auth is off). */
  stamp(call: CallContext | undefined): { username: string; authRevision: bigint } {
    if (!call) return { username: '', authRevision: 0n };
    const ai = this.authInfo(call);
    return ai ? { username: ai.username, authRevision: BigInt(ai.revision) } : { username: '', authRevision: 0n };
  }

  /**
   * etcd's doSerialize around a read served locally: the check, the read, then the auth revision again (a change
   * made meanwhile refuses the answer).
   */
  async serialized<T>(call: CallContext | undefined, check: (ai: AuthInfo) => Error | undefined, read: () => Promise<T> | T): Promise<T> {
    if (!this.store.isEnabled()) return read();
    const ai = this.authInfo(call) ?? { username: '', revision: 0 };
    const denied = check(ai);
    if (denied) throw denied;
    const res = await read();
    if (ai.revision !== 0 && ai.revision !== this.store.revision()) throw serverError('authOldRevision');
    return res;
  }

  checkRange(call: CallContext | undefined, r: RangeRequest): (ai: AuthInfo) => Error | undefined {
    return (ai) => this.store.isRangePermitted(ai, r.key, r.rangeEnd);
  }

  checkTxn(r: TxnRequest): (ai: AuthInfo) => Error | undefined {
    return (ai) => this.store.checkTxn(ai, r);
  }

  /** For the Watch service: may the caller watch [key, rangeEnd)? (etcd's watch.go isWatchPermitted) */
  checkWatch(call: CallContext | undefined, key: Buffer, rangeEnd: Buffer): Error | undefined {
    if (!this.store.isEnabled()) return undefined;
    let ai: AuthInfo | undefined;
    try {
      ai = this.authInfo(call);
    } catch (e) {
      return e as Error;
    }
    return this.store.isRangePermitted(ai ?? { username: '', revision: 0 }, key, rangeEnd);
  }

  /**
   * For the calls etcd keeps to the root role (Maintenance's Defragment, Snapshot, Hash, HashKV; Cluster's member
   * changes: etcd's authMaintenanceServer and checkMembershipOperationPermission).
   */
  checkAdmin(call: CallContext | undefined): Error | undefined {
    if (!this.store.isEnabled()) return undefined;
    try {
      return this.store.isAdminPermitted(this.authInfo(call));
    } catch (e) {
      return e as Error;
    }
  }

  /** For the Lease service (LeaseRevoke, a Put with a lease): may this user write every key attached to the lease? */
  checkLeaseKeys(ai: AuthInfo | undefined, keys: Iterable<Buffer>): Error | undefined {
    if (!this.store.isEnabled()) return undefined;
    for (const k of keys) {
      const e = this.store.isPutPermitted(ai, k);
      if (e) return e;
    }
    return undefined;
  }
}
