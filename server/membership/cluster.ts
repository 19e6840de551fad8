import { clusterId, memberId, parseId } from './ids';

/** A member of the cluster, as etcd keeps it. A member without a name has not started (published) yet. */
export interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export type MembershipErrorKind = 'IDRemoved' | 'IDExists' | 'IDNotFound' | 'PeerURLExists' | 'MemberNotLearner' | 'TooManyLearners';

const MESSAGES: Record<MembershipErrorKind, string> = {
  IDRemoved: 'membership: ID removed',
  IDExists: 'membership: ID exists',
  IDNotFound: 'membership: ID not found',
  PeerURLExists: 'membership: peerURL exists',
  MemberNotLearner: 'membership: can only promote a learner member',
  TooManyLearners: 'membership: too many learner members in cluster',
};

/** A membership change etcd refuses; the message is etcd's. */
export class MembershipError extends Error {
  constructor(readonly kind: MembershipErrorKind) {
    super(MESSAGES[kind]);
    this.name = 'MembershipError';
  }
}

/** etcd allows one learner at a time. */
export const MAX_LEARNERS = 1;

function byId(a: Member, b: Member): number {
  const x = parseId(a.id);
  const y = parseId(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

function clone(m: Member): Member {
  return { ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] };
}

/**
 * The members of the cluster and the IDs removed from it (never to return). Every member changes it the same way,
 * by applying committed configuration changes, so it is part of the replicated state (and of snapshots).
 */
export class Cluster {
  private readonly members = new Map<string, Member>();
  private readonly removed = new Set<string>();
  /** The cluster version the leader set through the log ("3.4.0"); undefined until then (etcd's "not_decided"). */
  version: string | undefined;

  constructor(readonly id: string) {}

  /** The cluster a new bootstrap forms from --initial-cluster and --initial-cluster-token. */
  static fromInitialCluster(initial: { name: string; peerURLs: string[] }[], token: string): Cluster {
    const members = initial.map((m) => ({ id: memberId(m.peerURLs, token), name: m.name, peerURLs: [...m.peerURLs].sort(), clientURLs: [], isLearner: false }));
    const seen = new Set<string>();
    for (const m of members) {
      if (seen.has(m.id)) throw new Error(`member ${m.name} has the same ID (${m.id}) as another member of the initial cluster`);
      seen.add(m.id);
    }
    const c = new Cluster(clusterId(members.map((m) => m.id)));
    for (const m of members) c.members.set(m.id, m);
    return c;
  }

  /** Members sorted by ID, as etcd lists them. */
  list(): Member[] {
    return [...this.members.values()].sort(byId).map(clone);
  }

  get(id: string): Member | undefined {
    const m = this.members.get(id);
    return m ? clone(m) : undefined;
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  /** Whether a member is a learner (no copy made: asked on every client request). */
  isLearner(id: string): boolean {
    return this.members.get(id)?.isLearner ?? false;
  }

  isRemoved(id: string): boolean {
    return this.removed.has(id);
  }

  votingMembers(): Member[] {
    return this.list().filter((m) => !m.isLearner);
  }

  memberByName(name: string): Member | undefined {
    return this.list().find((m) => m.name === name);
  }

  // ---- validation of a proposed change (before it goes to the log, and again when it is applied) ----

  validateAdd(m: Member): void {
    if (this.removed.has(m.id)) throw new MembershipError('IDRemoved');
    if (this.members.has(m.id)) throw new MembershipError('IDExists');
    const urls = new Set([...this.members.values()].flatMap((x) => x.peerURLs));
    if (m.peerURLs.some((u) => urls.has(u))) throw new MembershipError('PeerURLExists');
    if (m.isLearner && [...this.members.values()].filter((x) => x.isLearner).length + 1 > MAX_LEARNERS) {
      throw new MembershipError('TooManyLearners');
    }
  }

  validatePromote(id: string): void {
    if (this.removed.has(id)) throw new MembershipError('IDRemoved');
    const m = this.members.get(id);
    if (!m) throw new MembershipError('IDNotFound');
    if (!m.isLearner) throw new MembershipError('MemberNotLearner');
  }

  validateRemove(id: string): void {
    if (this.removed.has(id)) throw new MembershipError('IDRemoved');
    if (!this.members.has(id)) throw new MembershipError('IDNotFound');
  }

  validateUpdate(id: string, peerURLs: string[]): void {
    if (this.removed.has(id)) throw new MembershipError('IDRemoved');
    if (!this.members.has(id)) throw new MembershipError('IDNotFound');
    const urls = new Set([...this.members.values()].filter((x) => x.id !== id).flatMap((x) => x.peerURLs));
    if (peerURLs.some((u) => urls.has(u))) throw new MembershipError('PeerURLExists');
  }

  // ---- etcd's strict reconfiguration checks: never a change that leaves fewer started members than a quorum ----

  isReadyToAddVotingMember(): boolean {
    let nmembers = 1;
    let nstarted = 0;
    for (const m of this.votingMembers()) {
      if (m.name !== '') nstarted++;
      nmembers++;
    }
    if (nstarted === 1 && nmembers === 2) return true; // growing a one-member cluster
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  isReadyToRemoveVotingMember(id: string): boolean {
    let nmembers = 0;
    let nstarted = 0;
    for (const m of this.votingMembers()) {
      if (m.id === id) continue;
      if (m.name !== '') nstarted++;
      nmembers++;
    }
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  isReadyToPromoteMember(): boolean {
    let nmembers = 1;
    let nstarted = 1;
    for (const m of this.votingMembers()) {
      if (m.name !== '') nstarted++;
      nmembers++;
    }
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  // ---- applying committed changes ----

  add(m: Member): void {
    this.validateAdd(m);
    this.members.set(m.id, clone(m));
  }

  promote(id: string): void {
    this.validatePromote(id);
    this.members.get(id)!.isLearner = false;
  }

  remove(id: string): void {
    this.validateRemove(id);
    this.members.delete(id);
    this.removed.add(id);
  }

  updatePeerURLs(id: string, peerURLs: string[]): void {
    this.validateUpdate(id, peerURLs);
    this.members.get(id)!.peerURLs = [...peerURLs];
  }

  /** A started member publishes its name and client URLs (through the log). */
  updateAttributes(id: string, name: string, clientURLs: string[]): void {
    const m = this.members.get(id);
    if (!m) return; // removed meanwhile: etcd ignores it too
    m.name = name;
    m.clientURLs = [...clientURLs];
  }

  // ---- snapshots ----

  toJSON(): { id: string; members: Member[]; removed: string[]; version?: string } {
    const j: { id: string; members: Member[]; removed: string[]; version?: string } = { id: this.id, members: this.list(), removed: [...this.removed].sort() };
    if (this.version !== undefined) j.version = this.version;
    return j;
  }

  static fromJSON(j: { id: string; members: Member[]; removed: string[]; version?: string }): Cluster {
    const c = new Cluster(j.id);
    if (typeof j.version === 'string') c.version = j.version;
    for (const m of j.members) c.members.set(m.id, clone(m));
    for (const id of j.removed) c.removed.add(id);
    return c;
  }
}

/** The v2 members API's view of a member: {id, name, peerURLs, clientURLs}. */
export function v2Member(m: Member): { id: string; name: string; peerURLs: string[]; clientURLs: string[] } {
  return { id: m.id, name: m.name, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] };
}

/** A member added at runtime gets an ID from its peer URLs and the time of the addition (no token), as in etcd. */
export function newRuntimeMember(peerURLs: string[], nowMs: number, isLearner = false): Member {
  return { id: memberId(peerURLs, '', Math.floor(nowMs / 1000)), name: '', peerURLs: [...peerURLs].sort(), clientURLs: [], isLearner };
}
