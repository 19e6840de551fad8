import { ConfChange, ConfChangeType } from '../../raft';
import { Cluster, Member, MembershipError } from '../../membership/cluster';
import { decodeMembershipOp } from '../entry';
import { Applier, ApplyContext, ApplyResult } from './applier';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;

/** The context of a configuration change entry: the member it concerns and the request that proposed it. */
export interface ConfChangeContext {
  requestId?: number;
  member: Member;
  promote?: boolean;
  /**
   * The context's version: 1 since membership is recorded in the v2 store as etcd records it. The first release
   * wrote none, and its conf changes are applied as it applied them (no record), so every member ends alike.
   */
  v?: number;
}

/** The version of the conf change contexts this release writes. */
export const CONF_CHANGE_CONTEXT_VERSION = 1;

/** What the membership applier changes besides the cluster: the peer transport and etcd's /0 records. */
export interface MembershipHost {
  localId(): string;
  /** The cluster as of the last applied entry (replaced by a snapshot). */
  cluster(): Cluster;
  addPeer?(id: string, peerURLs: string[]): void;
  removePeer?(id: string): void;
  /** etcd's records of membership in the v2 store (/0/...), which move the store's index as etcd's. */
  record?(op: 'create' | 'set' | 'update' | 'delete', path: string, value?: string): void;
  /** A record's value (undefined: none). */
  readRecord?(path: string): string | undefined;
  log: Log;
}

const memberKey = (id: string): string => `/0/members/${id}`;
/** etcd's RaftAttributes as JSON: {"peerURLs":[...]} and isLearner only when true. */
const raftAttributes = (m: Member): string => JSON.stringify(m.isLearner ? { peerURLs: m.peerURLs, isLearner: true } : { peerURLs: m.peerURLs });

/** major.minor, as etcd names cluster versions in its logs (version.Cluster). */
export const clusterVersionName = (v: string): string => v.split('.').slice(0, 2).join('.');

/**
 * Membership changes: configuration changes (members added, promoted, removed) and the membership entries
 * (EntryKind.Membership: a member's published attributes, its new peer URLs, the cluster version).
 */
export class MembershipApplier implements Applier {
  readonly versions = [1];

  constructor(private readonly host: MembershipHost) {}

  apply(payload: Uint8Array, ctx: ApplyContext): ApplyResult {
    const h = this.host;
    const cluster = h.cluster();
    // The first release's entries recorded nothing in the v2 store.
    const record = ctx.legacy ? undefined : h.record;
    const op = decodeMembershipOp(payload);
    switch (op.op) {
      case 'attributes':
        // A member removed meanwhile: etcd ignores its attributes too.
        if (!cluster.has(op.id)) return {};
        cluster.updateAttributes(op.id, op.name, op.clientURLs);
        record?.('set', `${memberKey(op.id)}/attributes`, JSON.stringify({ name: op.name, clientURLs: op.clientURLs }));
        return {};
      case 'peerURLs':
        try {
          cluster.validateUpdate(op.id, op.peerURLs);
        } catch (err) {
          if (err instanceof MembershipError) return { error: err };
          throw err;
        }
        cluster.updatePeerURLs(op.id, op.peerURLs);
        record?.('update', `${memberKey(op.id)}/raftAttributes`, raftAttributes(cluster.get(op.id)!));
        h.addPeer?.(op.id, op.peerURLs);
        return {};
      case 'clusterVersion': {
        const before = cluster.version;
        cluster.version = op.version;
        record?.('set', '/0/version', op.version);
        // etcd's words (membership.SetVersion, api.UpdateCapability): tools wait for these lines.
        if (before === undefined) h.log('info', `set the initial cluster version to ${clusterVersionName(op.version)}`, { pkg: 'etcdserver/membership' });
        else h.log('info', `updated the cluster version from ${clusterVersionName(before)} to ${clusterVersionName(op.version)}`, { pkg: 'etcdserver/membership' });
        if (before === undefined || before !== op.version) this.enabledCapabilities(op.version);
        return {};
      }
      default:
        throw new Error(`membership entry: unknown operation ${(op as { op: string }).op}`);
    }
  }

  /** etcd logs this when a cluster version takes effect: when it is set, and when a member starts with one. */
  enabledCapabilities(version: string): void {
    this.host.log('info', 'enabled capabilities for version', { pkg: 'etcdserver/api', 'cluster-version': clusterVersionName(version), capnslog: `enabled capabilities for version ${clusterVersionName(version)}` });
  }

  /**
   * Applies a committed configuration change to the cluster (Raft's own configuration is the server's). What is
   * recorded in the v2 store follows the store's own records, not the cluster: a joining member starts with the
   * cluster its peers told it and an empty store, and replaying the log must record what the others recorded.
   */
  applyConfChange(cc: ConfChange, ctx: ConfChangeContext | undefined): ApplyResult {
    const h = this.host;
    const cluster = h.cluster();
    const record = ctx?.v === undefined ? undefined : h.record;
    const path = `${memberKey(cc.nodeId)}/raftAttributes`;
    const recorded = record ? h.readRecord?.(path) : undefined;
    const member = (learner: boolean): Member => ({ ...(cluster.get(cc.nodeId) ?? ctx!.member), isLearner: learner });
    try {
      switch (cc.type) {
        case ConfChangeType.AddNode:
          if (cluster.get(cc.nodeId)?.isLearner) cluster.promote(cc.nodeId);
          else if (ctx && !cluster.has(cc.nodeId)) cluster.add(ctx.member);
          if (record && ctx && recorded === undefined) record('create', path, raftAttributes(member(false)));
          else if (record && recorded !== undefined && (JSON.parse(recorded) as { isLearner?: boolean }).isLearner) record('update', path, raftAttributes(member(false)));
          if (ctx) h.addPeer?.(cc.nodeId, cluster.get(cc.nodeId)?.peerURLs ?? ctx.member.peerURLs);
          break;
        case ConfChangeType.AddLearnerNode:
          if (ctx && !cluster.has(cc.nodeId)) cluster.add({ ...ctx.member, isLearner: true });
          if (record && ctx && recorded === undefined) record('create', path, raftAttributes(member(true)));
          if (ctx) h.addPeer?.(cc.nodeId, ctx.member.peerURLs);
          break;
        case ConfChangeType.RemoveNode:
          if (cluster.has(cc.nodeId)) cluster.remove(cc.nodeId);
          if (record && recorded !== undefined) {
            record('delete', memberKey(cc.nodeId));
            record('create', `/0/removed_members/${cc.nodeId}`, '');
          }
          if (cc.nodeId !== h.localId()) h.removePeer?.(cc.nodeId);
          break;
      }
    } catch (err) {
      if (err instanceof MembershipError) return { error: err };
      throw err;
    }
    return {};
  }
}

/** The context a configuration change entry carries (JSON), or undefined when it has none or it does not parse. */
export function parseConfChangeContext(cc: ConfChange): ConfChangeContext | undefined {
  if (!cc.context) return undefined;
  try {
    return JSON.parse(Buffer.from(cc.context).toString()) as ConfChangeContext;
  } catch {
    return undefined;
  }
}
