/**
 * The etcdserverpb.Cluster service (etcd's v3rpc/member.go): MemberList, MemberAdd (as a learner too),
 * MemberRemove, MemberUpdate and MemberPromote over the member's membership, which applies etcd's strict
 * reconfiguration checks; failures are etcd's gRPC errors. Headers carry the cluster, member and term, no revision,
 * as etcd's ClusterServer fills them.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
  MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
} from './pb/etcdserverpb/rpc';
import { ErrGRPCMemberBadURLs, toGRPCError } from './errors';
import type { HeaderProvider } from './kv';
import { unaryMethod, type UnaryHandler } from './service';

/** A member as the cluster keeps it: its ID in hex, as etcd prints IDs. */
export interface ClusterMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** What the service asks of the member; failures are thrown as etcd's server and membership errors. */
export interface ClusterBackend {
  members(): ClusterMember[];
  /** Adds a member with these (valid) peer URLs; resolves with it and the members once the change is applied. */
  addMember(peerURLs: string[], isLearner: boolean): Promise<{ member: ClusterMember; members: ClusterMember[] }>;
  removeMember(id: string): Promise<ClusterMember[]>;
  updateMember(id: string, peerURLs: string[]): Promise<ClusterMember[]>;
  promoteMember(id: string): Promise<ClusterMember[]>;
  /** What is wrong with a peer URL as etcd's types.NewURLs sees it (undefined: nothing). */
  urlProblem(url: string): string | undefined;
}

const toPb = (m: ClusterMember): PbMember => ({ ID: BigInt('0x' + m.id), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner });
const hex = (id: bigint): string => id.toString(16);

function header(p: HeaderProvider): ResponseHeader {
  return { clusterId: p.clusterId(), memberId: p.memberId(), revision: 0n, raftTerm: p.raftTerm() };
}

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toGRPCError(err);
  }
}

export function clusterService(b: ClusterBackend, p: HeaderProvider): { definition: grpc.ServiceDefinition; handlers: Record<string, UnaryHandler<any, any>> } {
  return {
    definition: {
      MemberAdd: unaryMethod('/etcdserverpb.Cluster/MemberAdd', MemberAddRequest, MemberAddResponse),
      MemberRemove: unaryMethod('/etcdserverpb.Cluster/MemberRemove', MemberRemoveRequest, MemberRemoveResponse),
      MemberUpdate: unaryMethod('/etcdserverpb.Cluster/MemberUpdate', MemberUpdateRequest, MemberUpdateResponse),
      MemberList: unaryMethod('/etcdserverpb.Cluster/MemberList', MemberListRequest, MemberListResponse),
      MemberPromote: unaryMethod('/etcdserverpb.Cluster/MemberPromote', MemberPromoteRequest, MemberPromoteResponse),
    },
    handlers: {
      MemberAdd: async (r: MemberAddRequest): Promise<MemberAddResponse> => {
        const urls = r.peerURLs.map((u) => u.trim());
        if (urls.length === 0 || urls.some((u) => b.urlProblem(u) !== undefined)) throw ErrGRPCMemberBadURLs;
        const { member, members } = await mapped(() => b.addMember(urls, r.isLearner));
        // The new member as etcd answers it: its ID, peer URLs and learner flag (no name or client URLs yet).
        return { header: header(p), member: { ID: BigInt('0x' + member.id), name: '', peerURLs: member.peerURLs, clientURLs: [], isLearner: member.isLearner }, members: members.map(toPb) };
      },
      MemberRemove: async (r: MemberRemoveRequest): Promise<MemberRemoveResponse> => {
        const members = await mapped(() => b.removeMember(hex(r.ID)));
        return { header: header(p), members: members.map(toPb) };
      },
      MemberUpdate: async (r: MemberUpdateRequest): Promise<MemberUpdateResponse> => {
        // etcd 3.4 takes any text here and then panics applying it; a URL that would not parse is refused.
        if (r.peerURLs.length === 0 || r.peerURLs.some((u) => b.urlProblem(u) !== undefined)) throw ErrGRPCMemberBadURLs;
        const members = await mapped(() => b.updateMember(hex(r.ID), r.peerURLs));
        return { header: header(p), members: members.map(toPb) };
      },
      MemberList: async (): Promise<MemberListResponse> => ({ header: header(p), members: b.members().map(toPb) }),
      MemberPromote: async (r: MemberPromoteRequest): Promise<MemberPromoteResponse> => {
        const members = await mapped(() => b.promoteMember(hex(r.ID)));
        return { header: header(p), members: members.map(toPb) };
      },
    },
  };
}
