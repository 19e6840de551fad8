import { Cluster } from './cluster';

/**
 * etcd's strict reconfiguration check (--strict-reconfig-check): never a membership change that could leave the
 * cluster without a quorum of started, connected members. The server applies it before proposing a change; the
 * members API only maps its error to an answer.
 */

/** etcd's HealthInterval: how long peers must have been connected before a reconfiguration is allowed. */
export const HEALTH_INTERVAL_MS = 5000;

/** etcd's ErrUnhealthy: the check refused the change (the members API answers 500). */
export class UnhealthyClusterError extends Error {
  constructor() {
    super('etcdserver: unhealthy cluster');
    this.name = 'UnhealthyClusterError';
  }
}

/** Whether this member's stream with a peer has been up since `since` (performance.now() ms); itself: yes. */
export type ConnectedSince = (id: string, since: number) => boolean;

/** Adding a voting member: enough started members, and this member connected to every voter for HEALTH_INTERVAL_MS. */
export function checkAddVotingMember(cluster: Cluster, connectedSince: ConnectedSince, now: number): void {
  const since = now - HEALTH_INTERVAL_MS;
  // The new member counts toward the quorum before it runs.
  if (!cluster.isReadyToAddVotingMember() || !cluster.votingMembers().every((m) => connectedSince(m.id, since))) throw new UnhealthyClusterError();
}

/** Removing a voting member: enough started members stay, and this member is connected to a quorum of them. */
export function checkRemoveVotingMember(cluster: Cluster, id: string, connectedSince: ConnectedSince, now: number): void {
  if (!cluster.isReadyToRemoveVotingMember(id)) throw new UnhealthyClusterError();
  const staying = cluster.votingMembers().filter((m) => m.id !== id);
  const since = now - HEALTH_INTERVAL_MS;
  const active = staying.filter((m) => connectedSince(m.id, since)).length;
  if (active < Math.floor(staying.length / 2) + 1) throw new UnhealthyClusterError();
}
