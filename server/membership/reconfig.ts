import { Cluster } from './cluster';

/**
 * etcd's strict reconfiguration check (--strict-reconfig-check): never a membership change that could leave the
 * cluster without a quorum of started, connected members. The server applies it before proposing a change; the
 * members APIs only map its errors to their answers (v2: 500; v3: etcd's gRPC errors).
 */

/** etcd's HealthInterval: how long peers must have been connected before a reconfiguration is allowed. */
export const HEALTH_INTERVAL_MS = 5000;

/** etcd's ErrUnhealthy: this member is not connected to enough of the others (the v2 members API answers 500). */
export class UnhealthyClusterError extends Error {
  constructor() {
    super('etcdserver: unhealthy cluster');
    this.name = 'UnhealthyClusterError';
  }
}

/** etcd's ErrNotEnoughStartedMembers: too few members have started for the change to keep a quorum. */
export class NotEnoughStartedMembersError extends Error {
  constructor() {
    super('etcdserver: re-configuration failed due to not enough started members');
    this.name = 'NotEnoughStartedMembersError';
  }
}

/** Whether this member's stream with a peer has been up since `since` (performance.now() ms); itself: yes. */
export type ConnectedSince = (id: string, since: number) => boolean;

/**
 * Adding a member (etcd's mayAddMember): a voter needs enough started members (the new one counts toward the
 * quorum before it runs); voter or learner, this member must have been connected to every voter for
 * HEALTH_INTERVAL_MS.
 */
export function checkAddMember(cluster: Cluster, isLearner: boolean, connectedSince: ConnectedSince, now: number): void {
  if (!isLearner && !cluster.isReadyToAddVotingMember()) throw new NotEnoughStartedMembersError();
  const since = now - HEALTH_INTERVAL_MS;
  if (!cluster.votingMembers().every((m) => connectedSince(m.id, since))) throw new UnhealthyClusterError();
}

/** Adding a voting member (the check above, for a voter). */
export function checkAddVotingMember(cluster: Cluster, connectedSince: ConnectedSince, now: number): void {
  checkAddMember(cluster, false, connectedSince, now);
}

/**
 * Removing a voting member (etcd's mayRemoveMember): enough started members stay; a member that is down (no stream
 * with it now) is not part of the active quorum and may go; otherwise this member must be connected to a quorum of
 * those staying. `isActive` (optional) says whether a stream with a peer is up now.
 */
export function checkRemoveVotingMember(cluster: Cluster, id: string, connectedSince: ConnectedSince, now: number, self?: string, isActive?: (id: string) => boolean): void {
  if (!cluster.isReadyToRemoveVotingMember(id)) throw new NotEnoughStartedMembersError();
  if (isActive && id !== self && !isActive(id)) return;
  const staying = cluster.votingMembers().filter((m) => m.id !== id);
  const since = now - HEALTH_INTERVAL_MS;
  const active = staying.filter((m) => connectedSince(m.id, since)).length;
  if (active < Math.floor(staying.length / 2) + 1) throw new UnhealthyClusterError();
}

/** Promoting a learner (etcd's mayPromoteMember, after the learner is found in sync): enough started members. */
export function checkPromoteMember(cluster: Cluster): void {
  if (!cluster.isReadyToPromoteMember()) throw new NotEnoughStartedMembersError();
}
