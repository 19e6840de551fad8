/**
 * The member's side of the v3 Cluster service: the membership the v2 members API changes, through the same server
 * methods (strict reconfiguration checks, the log, etcd's errors).
 */
import type { ClusterBackend } from '../api/v3rpc/cluster';
import { urlProblem } from '../config';
import { newRuntimeMember } from '../membership/cluster';
import type { EtcdServer } from './server';

export function v3ClusterBackend(server: EtcdServer, now: () => number): ClusterBackend {
  return {
    members: () => server.cluster.list(),
    addMember: async (peerURLs, isLearner) => {
      const member = newRuntimeMember(peerURLs, now(), isLearner);
      const members = await server.addMember(member);
      return { member, members };
    },
    removeMember: (id) => server.removeMember(id),
    updateMember: (id, peerURLs) => server.updateMember(id, peerURLs),
    promoteMember: (id) => server.promoteMember(id),
    urlProblem,
  };
}
