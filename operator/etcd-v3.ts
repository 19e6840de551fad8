/**
 * The operator's view of an etcd cluster over the v3 gRPC API (our generated clients, @grpc/grpc-js): the Cluster
 * service (MemberList, MemberAdd as a learner, MemberPromote, MemberRemove), Maintenance (Status, Defragment,
 * MoveLeader, Snapshot with its SHA-256 trailer checked) and a health check as `etcdctl endpoint health` makes it.
 *
 * A client is one session: it keeps a channel per member URL while it lives (the reconciler makes one per reconcile
 * and closes it), so a member that comes back under a new address is dialed afresh next time. How a member's client
 * URL is reached is pluggable (`Endpoints`): in the cluster it is the member's DNS name under the headless Service;
 * tests and out-of-cluster runs map pods to other URLs with templates.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  ClusterClient,
  DefragmentRequest,
  KVClient,
  MaintenanceClient,
  MemberAddRequest,
  MemberListRequest,
  MemberPromoteRequest,
  MemberRemoveRequest,
  MoveLeaderRequest,
  RangeRequest,
  SnapshotRequest,
  StatusRequest,
  type Member,
  type SnapshotResponse,
  type StatusResponse,
} from '../server/api/v3rpc/pb/etcdserverpb/rpc';
import type { EtcdClusterSpec } from './api/types';
import { advertiseClientURL, clientScheme, clientServiceURL } from './api/naming';
import type { MemberView } from './planner';

export interface Endpoints {
  /** The client URL of one member pod. */
  member(cluster: string, namespace: string, pod: string, spec: EtcdClusterSpec): string;
  /** The cluster's client Service URL. */
  service(cluster: string, namespace: string, spec: EtcdClusterSpec): string;
}

/** In-cluster DNS: `<pod>.<cluster>.<ns>.svc:2379` and `<cluster>-client.<ns>.svc:2379`. */
export const dnsEndpoints: Endpoints = {
  member: (cluster, ns, pod, spec) => advertiseClientURL(cluster, ns, pod, spec),
  service: (cluster, ns, spec) => clientServiceURL(cluster, ns, spec),
};

/** Templates with {pod}, {cluster}, {namespace}, {scheme}: e.g. `http://{pod}.{cluster}.{namespace}.svc:9000`. */
export function templateEndpoints(memberTemplate: string, serviceTemplate?: string): Endpoints {
  const fill = (t: string, v: Record<string, string>): string => t.replace(/\{(\w+)\}/g, (m, k: string) => v[k] ?? m);
  return {
    member: (cluster, namespace, pod, spec) => fill(memberTemplate, { cluster, namespace, pod, scheme: clientScheme(spec) }),
    service: (cluster, namespace, spec) =>
      serviceTemplate
        ? fill(serviceTemplate, { cluster, namespace, scheme: clientScheme(spec) })
        : clientServiceURL(cluster, namespace, spec),
  };
}

export interface TLSMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}
export function tlsFromFiles(f: { caFile?: string; certFile?: string; keyFile?: string }): TLSMaterial {
  return {
    ca: f.caFile ? fs.readFileSync(f.caFile) : undefined,
    cert: f.certFile ? fs.readFileSync(f.certFile) : undefined,
    key: f.keyFile ? fs.readFileSync(f.keyFile) : undefined,
  };
}

/** A failed call: etcd's message (`etcdserver: ...`) or the transport's, with the gRPC code. */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

/** etcd's answer to a promotion of a learner that has not caught up yet (retry later). */
export const LEARNER_NOT_READY = 'etcdserver: can only promote a learner member which is in sync with leader';

/** What Maintenance.Status says about one member. */
export interface MemberStatusView {
  /** This member's ID (hex, as the members list gives it). */
  id: string;
  /** The leader's ID as this member knows it ('0': none). */
  leader: string;
  isLearner: boolean;
  raftIndex: bigint;
  raftAppliedIndex: bigint;
  raftTerm: bigint;
  revision: bigint;
  dbSize: bigint;
  dbSizeInUse: bigint;
  /** Active alarms and other errors ("memberID:... alarm:NOSPACE"). */
  errors: string[];
}

/** A snapshot as it arrived: its size (with the digest), and the SHA-256 the member sent and we checked. */
export interface SnapshotResult {
  size: number;
  sha256: string;
}

const SHA256_SIZE = 32;

/** Member IDs: etcd's uint64, written as the v2 members API writes them (hex, no padding). */
export const hexId = (id: bigint): string => id.toString(16);
export const idOfHex = (hex: string): bigint => BigInt(`0x${hex}`);

function memberView(m: Member): MemberView {
  return { id: hexId(m.ID), name: m.name, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs], isLearner: m.isLearner };
}

interface Conn {
  cluster: ClusterClient;
  maintenance: MaintenanceClient;
  kv: KVClient;
}

export class EtcdV3 {
  private readonly conns = new Map<string, Conn>();
  private creds?: grpc.ChannelCredentials;

  constructor(
    private readonly tls: TLSMaterial = {},
    private readonly timeoutMs = 3000,
  ) {}

  /** Closes every channel of this session. */
  close(): void {
    for (const c of this.conns.values()) c.kv.close();
    this.conns.clear();
  }

  async members(url: string): Promise<MemberView[]> {
    const r = await this.unary<Conn['cluster'], MemberListRequest, { members: Member[] }>(url, (c) => c.cluster, 'memberList', MemberListRequest.fromPartial({}));
    return r.members.map(memberView);
  }

  async status(url: string): Promise<MemberStatusView> {
    const r = await this.unary<Conn['maintenance'], StatusRequest, StatusResponse>(url, (c) => c.maintenance, 'status', StatusRequest.fromPartial({}));
    return {
      id: hexId(r.header?.memberId ?? 0n),
      leader: hexId(r.leader),
      isLearner: r.isLearner,
      raftIndex: r.raftIndex,
      raftAppliedIndex: r.raftAppliedIndex,
      raftTerm: r.raftTerm,
      revision: r.header?.revision ?? 0n,
      dbSize: r.dbSize,
      dbSizeInUse: r.dbSizeInUse,
      errors: [...r.errors],
    };
  }

  /**
   * Whether a member is healthy, as `etcdctl endpoint health` decides it and /health does: it knows a leader, has
   * no alarm, and (a voting member) gets a quorum's answer to a linearizable read ("permission denied" is an answer).
   * A learner serves no linearizable read: it is healthy when it answers Status with a leader and no alarm.
   */
  async health(url: string, status?: MemberStatusView): Promise<boolean> {
    try {
      const s = status ?? (await this.status(url));
      if (s.leader === '0' || s.errors.length > 0) return false;
      if (s.isLearner) return true;
      await this.unary<Conn['kv'], RangeRequest, unknown>(url, (c) => c.kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('health'), limit: 1n }));
      return true;
    } catch (e) {
      return e instanceof EtcdError && e.message === 'etcdserver: permission denied';
    }
  }

  /** MemberAdd; `learner`: the new member receives the log and does not vote until promoted. */
  async addMember(url: string, peerURL: string, learner: boolean): Promise<MemberView> {
    const r = await this.unary<Conn['cluster'], MemberAddRequest, { member?: Member }>(url, (c) => c.cluster, 'memberAdd', MemberAddRequest.fromPartial({ peerURLs: [peerURL], isLearner: learner }));
    if (!r.member) throw new EtcdError(`add member ${peerURL}: no member in the answer`);
    return memberView(r.member);
  }

  /**
   * MemberPromote: true when promoted, false while the learner is not in sync with the leader yet (etcd's
   * LEARNER_NOT_READY: the caller tries again later). Other refusals throw.
   */
  async promoteMember(url: string, id: string): Promise<boolean> {
    try {
      await this.unary(url, (c) => c.cluster, 'memberPromote', MemberPromoteRequest.fromPartial({ ID: idOfHex(id) }), this.timeoutMs * 3);
      return true;
    } catch (e) {
      if (e instanceof EtcdError && e.message === LEARNER_NOT_READY) return false;
      throw e;
    }
  }

  /** MemberRemove; a member already gone counts as removed. */
  async removeMember(url: string, id: string): Promise<void> {
    try {
      await this.unary(url, (c) => c.cluster, 'memberRemove', MemberRemoveRequest.fromPartial({ ID: idOfHex(id) }));
    } catch (e) {
      if (e instanceof EtcdError && e.message === 'etcdserver: member not found') return;
      throw e;
    }
  }

  /** Defragment one member (it stays serving; this can take a while on a big store). */
  async defragment(url: string, timeoutMs = 60_000): Promise<void> {
    await this.unary(url, (c) => c.maintenance, 'defragment', DefragmentRequest.fromPartial({}), timeoutMs);
  }

  /** MoveLeader, asked of the current leader: the leadership goes to `targetId`. */
  async moveLeader(leaderURL: string, targetId: string): Promise<void> {
    await this.unary(leaderURL, (c) => c.maintenance, 'moveLeader', MoveLeaderRequest.fromPartial({ targetID: idOfHex(targetId) }), this.timeoutMs * 3);
  }

  /**
   * Maintenance.Snapshot from one member: every byte to `sink` as it arrives (the store, then its SHA-256, as etcd
   * sends it, so the file is what `etcdctl snapshot restore` takes). The digest is checked against the bytes before
   * it: a mismatch, a short stream or a stream without a digest is an error.
   */
  snapshot(url: string, sink: (chunk: Buffer) => void, timeoutMs?: number): Promise<SnapshotResult> {
    const c = this.conn(url);
    const hash = createHash('sha256');
    // the last 32 bytes seen are held back from the hash: they are the digest when the stream ends
    let tail = Buffer.alloc(0);
    let size = 0;
    return new Promise((resolve, reject) => {
      const st = c.maintenance.snapshot(SnapshotRequest.fromPartial({}), new grpc.Metadata(), timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs });
      let failed = false;
      st.on('data', (r: SnapshotResponse) => {
        if (failed) return;
        try {
          const blob = Buffer.from(r.blob);
          sink(blob);
          size += blob.length;
          const both = Buffer.concat([tail, blob]);
          const keep = Math.min(SHA256_SIZE, both.length);
          hash.update(both.subarray(0, both.length - keep));
          tail = Buffer.from(both.subarray(both.length - keep));
        } catch (e) {
          failed = true;
          st.cancel();
          reject(e);
        }
      });
      st.on('error', (e: grpc.ServiceError) => {
        if (!failed) reject(toEtcdError(e, `snapshot from ${url}`));
        failed = true;
      });
      st.on('end', () => {
        if (failed) return;
        // etcd's hasChecksum: a bolt file is whole pages (512 bytes at least), then the 32-byte digest
        if (size % 512 !== SHA256_SIZE) return reject(new EtcdError(`snapshot from ${url}: no SHA-256 at its end (${size} bytes)`));
        const want = hash.digest();
        if (!want.equals(tail)) return reject(new EtcdError(`snapshot from ${url}: SHA-256 mismatch (sent ${tail.toString('hex')}, data hashes to ${want.toString('hex')})`));
        resolve({ size, sha256: want.toString('hex') });
      });
    });
  }

  private conn(url: string): Conn {
    let c = this.conns.get(url);
    if (c) return c;
    const u = new URL(url);
    const secure = u.protocol === 'https:';
    if (secure) this.creds ??= grpc.credentials.createSsl(this.tls.ca ?? null, this.tls.key ?? null, this.tls.cert ?? null);
    const creds = secure ? (this.creds as grpc.ChannelCredentials) : grpc.credentials.createInsecure();
    const options: grpc.ClientOptions = {
      // no TXT lookups for service configs (cluster DNS has none), and a fresh lookup whenever a connection fails
      'grpc.service_config_disable_resolution': 1,
      'grpc.dns_min_time_between_resolutions_ms': 500,
      // this session's own connections, closed with it (the global pool keeps idle ones up to 10 s, and a member being
      // stopped waits for its client connections to close)
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
    };
    const kv = new KVClient(u.host, creds, options);
    const shared = { ...options, channelOverride: kv.getChannel() as grpc.Channel };
    c = { kv, cluster: new ClusterClient(u.host, creds, shared), maintenance: new MaintenanceClient(u.host, creds, shared) };
    this.conns.set(url, c);
    return c;
  }

  private unary<C, Req, Res>(url: string, pick: (c: Conn) => C, method: string, req: Req, timeoutMs = this.timeoutMs): Promise<Res> {
    const client = pick(this.conn(url)) as unknown as Record<string, (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void>;
    return new Promise((resolve, reject) => {
      client[method].call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(toEtcdError(err, `${method} ${url}`)) : resolve(res as Res)));
    });
  }
}

/** etcd's own errors keep their text ("etcdserver: ..."); transport failures say where. */
function toEtcdError(e: grpc.ServiceError, what: string): EtcdError {
  const details = e.details ?? e.message;
  if (details.startsWith('etcdserver: ')) return new EtcdError(details, e.code);
  return new EtcdError(`${what}: ${grpc.status[e.code] ?? e.code} ${details}`, e.code);
}
