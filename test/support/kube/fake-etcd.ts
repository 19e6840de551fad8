/**
 * A stand-in for the etcd clusters the operator manages — NOT etcd (no Raft, no data): one gRPC server on 127.0.0.1
 * serving the v3 Cluster (MemberList, MemberAdd, MemberPromote, MemberRemove), Maintenance (Status) and KV (Range,
 * for health) services for every member pod and every client Service, told apart by the `:authority` the operator
 * dials (`<pod>.<cluster>.<ns>.svc:PORT`, `<cluster>-client.<ns>.svc:PORT`), names its DNS file resolves to 127.0.0.1
 * (test/support/kube/cluster-dns.js, preloaded into the operator). Answers and errors are etcd 3.4's.
 *
 * It checks what real etcd would refuse, and records what a careful operator must never do (`violations`):
 *  - a member starting with `--initial-cluster-state new` in a cluster that has members, or `existing` without
 *    having been added, or with an `--initial-cluster` whose peer URLs differ from the members list → the start fails;
 *  - adding a voting member (the operator adds learners), adding while another added member has not started yet,
 *    promoting or removing when that would leave fewer healthy voters than the quorum, removing the leader while
 *    others exist.
 * A learner is in sync with the leader (promotable) once it has run for `learnerSyncMs`; before that MemberPromote
 * answers etcd's "can only promote a learner member which is in sync with leader" (counted in `promoteRefusals`).
 * The operator reaches it with `--member-url-template` / `--service-url-template` (the templates below).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ClusterService, KVService, MaintenanceService, type Member, type ResponseHeader } from '../../../server/api/v3rpc/pb/etcdserverpb/rpc';
import type { Journal } from './api-server';
import { DNS_SHIM } from './process-kubelet';

export interface FakeMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

interface ClusterState {
  members: FakeMember[];
  leaderId?: string;
  /** pod name → running (its etcd process up) */
  running: Set<string>;
  /** pod name → when its process started */
  startedAt: Map<string, number>;
}

type Handler = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void;
const fail = (code: grpc.status, details: string): grpc.ServiceError => Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

const quorum = (n: number): number => Math.floor(n / 2) + 1;

export class FakeEtcd {
  port = 0;
  readonly violations: string[] = [];
  readonly startFailures: string[] = [];
  promoteRefusals = 0;
  private readonly clusters = new Map<string, ClusterState>();
  private server?: grpc.Server;
  private nextId = 0x1000;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-etcd-'));
  readonly dnsFile = path.join(this.dir, 'cluster-dns.json');
  private readonly names = new Set<string>();

  constructor(
    private readonly journal: Journal,
    /** A started learner is in sync with the leader after this long. */
    readonly learnerSyncMs = 300,
  ) {
    this.writeDns();
  }

  async start(): Promise<number> {
    this.server = new grpc.Server();
    const cluster: Record<string, Handler> = {
      memberList: (call, cb) => this.serve(call, cb, (c, self) => this.refuseLearner(self) ?? { header: this.header(c, self), members: c.members.map(toPb) }),
      memberAdd: (call, cb) => this.serve(call, cb, (c, self) => this.add(c, self, call.request as { peerURLs: string[]; isLearner: boolean })),
      memberPromote: (call, cb) => this.serve(call, cb, (c, self) => this.promote(c, self, (call.request as { ID: bigint }).ID.toString(16))),
      memberRemove: (call, cb) => this.serve(call, cb, (c, self) => this.remove(c, self, (call.request as { ID: bigint }).ID.toString(16))),
      memberUpdate: (_call, cb) => cb(fail(grpc.status.UNIMPLEMENTED, 'not in the fake')),
    };
    const maintenance: Record<string, Handler> = {
      status: (call, cb) =>
        this.serve(call, cb, (c, self) => ({
          header: this.header(c, self),
          version: '3.4.0',
          dbSize: 20480n,
          dbSizeInUse: 16384n,
          leader: this.hasQuorum(c) && c.leaderId ? BigInt(`0x${c.leaderId}`) : 0n,
          raftIndex: 10n,
          raftTerm: 2n,
          raftAppliedIndex: 10n,
          errors: [],
          isLearner: self.isLearner,
        })),
    };
    for (const m of ['alarm', 'defragment', 'hash', 'hashKV', 'moveLeader', 'snapshot', 'downgrade']) maintenance[m] ??= (_call, cb) => cb(fail(grpc.status.UNIMPLEMENTED, 'not in the fake'));
    const kv: Record<string, Handler> = {
      range: (call, cb) =>
        this.serve(call, cb, (c, self) => {
          const refused = this.refuseLearner(self);
          if (refused) return refused;
          if (!this.hasQuorum(c)) throw fail(grpc.status.UNAVAILABLE, 'etcdserver: request timed out');
          return { header: this.header(c, self), kvs: [], more: false, count: 0n };
        }),
    };
    for (const m of ['put', 'deleteRange', 'txn', 'compact']) kv[m] = (_call, cb) => cb(fail(grpc.status.UNIMPLEMENTED, 'not in the fake'));
    this.server.addService(ClusterService, cluster as never);
    this.server.addService(MaintenanceService, maintenance as never);
    this.server.addService(KVService, kv as never);
    this.port = await new Promise<number>((resolve, reject) => this.server?.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))));
    return this.port;
  }
  async stop(): Promise<void> {
    this.server?.forceShutdown();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
  get memberTemplate(): string {
    return `http://{pod}.{cluster}.{namespace}.svc:${this.port}`;
  }
  get serviceTemplate(): string {
    return `http://{cluster}-client.{namespace}.svc:${this.port}`;
  }
  /** What the operator's environment needs to resolve the templates' names (to 127.0.0.1). */
  dnsEnv(): Record<string, string> {
    return { TEST_CLUSTER_DNS_FILE: this.dnsFile, NODE_OPTIONS: `--require ${DNS_SHIM}` };
  }

  cluster(ns: string, cluster: string): ClusterState {
    const k = `${ns}/${cluster}`;
    let c = this.clusters.get(k);
    if (!c) {
      c = { members: [], running: new Set(), startedAt: new Map() };
      this.clusters.set(k, c);
    }
    return c;
  }
  members(ns: string, cluster: string): FakeMember[] {
    return this.cluster(ns, cluster).members.map((m) => ({ ...m }));
  }
  leaderName(ns: string, cluster: string): string | undefined {
    const c = this.cluster(ns, cluster);
    return c.members.find((m) => m.id === c.leaderId)?.name;
  }

  /** Started, running voters. */
  private healthy(c: ClusterState): number {
    return this.voters(c).filter((m) => m.name !== '' && c.running.has(m.name)).length;
  }
  private voters(c: ClusterState): FakeMember[] {
    return c.members.filter((m) => !m.isLearner);
  }
  private hasQuorum(c: ClusterState): boolean {
    return this.healthy(c) >= quorum(this.voters(c).length);
  }

  /** The kubelet starts a member's etcd with these flags; true when etcd would come up. */
  startMember(ns: string, cluster: string, pod: string, args: string[]): boolean {
    const flag = (n: string): string | undefined => args.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);
    const c = this.cluster(ns, cluster);
    const state = flag('initial-cluster-state');
    const self = flag('initial-advertise-peer-urls') ?? '';
    const initial = (flag('initial-cluster') ?? '').split(',').filter((x) => x !== '').map((x) => x.split('=') as [string, string]);
    const fail = (why: string): boolean => {
      this.startFailures.push(`${pod}: ${why}`);
      this.journal.add(`etcd start-failed ${pod}: ${why}`);
      return false;
    };
    if (flag('name') !== pod) return fail(`--name ${flag('name')} is not the pod name`);
    if (flag('initial-cluster-token') !== cluster) return fail(`--initial-cluster-token ${flag('initial-cluster-token')}`);
    if (!initial.some(([n, u]) => n === pod && u === self)) return fail(`--initial-cluster does not contain ${pod}=${self}`);
    const existing = c.members.find((m) => m.peerURLs.includes(self));
    this.resolve(`${pod}.${cluster}.${ns}.svc`, `${cluster}-client.${ns}.svc`);
    if (existing && existing.name === pod) {
      // a restart (same data dir: container restart, image change)
      c.running.add(pod);
      c.startedAt.set(pod, Date.now());
      this.journal.add(`etcd restart ${pod}`);
      return true;
    }
    if (state === 'new') {
      if (c.members.length > 0) return fail('--initial-cluster-state new, but the cluster has members');
      if (initial.length !== 1) return fail(`a seed with ${initial.length} initial members`);
      const m: FakeMember = { id: (this.nextId++).toString(16), name: pod, peerURLs: [self], clientURLs: [`http://${pod}:2379`], isLearner: false };
      c.members.push(m);
      c.leaderId = m.id;
      c.running.add(pod);
      c.startedAt.set(pod, Date.now());
      this.journal.add(`etcd start ${pod} new`);
      return true;
    }
    if (state !== 'existing') return fail(`--initial-cluster-state ${state}`);
    if (!existing) return fail('not in the members list (was it added?)');
    const want = new Set(c.members.flatMap((m) => m.peerURLs));
    const got = new Set(initial.map(([, u]) => u));
    if (want.size !== got.size || [...want].some((u) => !got.has(u))) return fail(`--initial-cluster peer URLs ${[...got].join(',')} differ from the members ${[...want].join(',')}`);
    for (const [n, u] of initial) {
      const m = c.members.find((x) => x.peerURLs.includes(u));
      if (m && m.name !== '' && m.name !== n) return fail(`--initial-cluster names ${u} ${n}, the member is ${m.name}`);
    }
    existing.name = pod;
    existing.clientURLs = [`http://${pod}:2379`];
    c.running.add(pod);
    c.startedAt.set(pod, Date.now());
    if (!c.leaderId && !existing.isLearner) c.leaderId = existing.id;
    this.journal.add(`etcd start ${pod} existing`);
    return true;
  }

  /** The member's process stopped (pod deleted, container restarting). */
  stopMember(ns: string, cluster: string, pod: string): void {
    const c = this.cluster(ns, cluster);
    if (!c.running.delete(pod)) return;
    this.journal.add(`etcd stop ${pod}`);
    const leader = c.members.find((m) => m.id === c.leaderId);
    if (leader && leader.name === pod) {
      const next = this.voters(c).find((m) => m.name !== '' && c.running.has(m.name));
      c.leaderId = next && this.hasQuorum(c) ? next.id : undefined;
    }
  }

  // ---- the gRPC side ----

  /**
   * One call to the member (or Service) the authority names: refused as by a stopped process when it does not run;
   * `answer` gives the response or throws a ServiceError.
   */
  private serve(call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>, answer: (c: ClusterState, self: FakeMember) => unknown): void {
    const host = call.getHost().replace(/:\d+$/, '');
    const parts = host.split('.');
    let c: ClusterState | undefined;
    let self: FakeMember | undefined;
    if (parts.length === 4 && parts[3] === 'svc') {
      // <pod>.<cluster>.<ns>.svc: that member, while its process runs
      const [pod, cluster, ns] = parts;
      c = this.cluster(ns, cluster);
      self = c.running.has(pod) ? c.members.find((m) => m.name === pod) : undefined;
    } else if (parts.length === 3 && parts[2] === 'svc' && parts[0].endsWith('-client')) {
      // the client Service: any running voter
      c = this.cluster(parts[1], parts[0].slice(0, -'-client'.length));
      const cc = c;
      self = this.voters(cc).find((m) => m.name !== '' && cc.running.has(m.name));
    }
    if (!c || !self) return cb(fail(grpc.status.UNAVAILABLE, `connection refused (${host})`));
    try {
      cb(null, answer(c, self));
    } catch (e) {
      cb(e as grpc.ServiceError);
    }
  }

  private header(c: ClusterState, self: FakeMember): ResponseHeader {
    return { clusterId: 0xc1n, memberId: BigInt(`0x${self.id}`), revision: 1n, raftTerm: 2n };
  }

  private refuseLearner(self: FakeMember): undefined {
    if (self.isLearner) throw fail(grpc.status.UNAVAILABLE, 'etcdserver: rpc not supported for learner');
    return undefined;
  }

  private add(c: ClusterState, self: FakeMember, req: { peerURLs: string[]; isLearner: boolean }): unknown {
    if (!this.hasQuorum(c)) throw fail(grpc.status.UNAVAILABLE, 'etcdserver: request timed out');
    const peerURLs = req.peerURLs;
    if (c.members.some((x) => x.peerURLs.some((u) => peerURLs.includes(u)))) throw fail(grpc.status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists');
    if (req.isLearner && c.members.some((x) => x.isLearner)) throw fail(grpc.status.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster');
    if (!req.isLearner) this.violations.push(`added ${peerURLs} as a voting member (learners first)`);
    const unstarted = c.members.filter((x) => x.name === '');
    if (unstarted.length > 0) this.violations.push(`added ${peerURLs} while ${unstarted.map((x) => x.peerURLs[0]).join(',')} had not started`);
    const mem: FakeMember = { id: (this.nextId++).toString(16), name: '', peerURLs, clientURLs: [], isLearner: req.isLearner };
    c.members.push(mem);
    this.journal.add(`etcd add ${peerURLs[0]} ${mem.id}${mem.isLearner ? ' learner' : ''}`);
    return { header: this.header(c, self), member: toPb(mem), members: c.members.map(toPb) };
  }

  private promote(c: ClusterState, self: FakeMember, id: string): unknown {
    if (!this.hasQuorum(c)) throw fail(grpc.status.UNAVAILABLE, 'etcdserver: request timed out');
    const m = c.members.find((x) => x.id === id);
    if (!m) throw fail(grpc.status.NOT_FOUND, 'etcdserver: member not found');
    if (!m.isLearner) throw fail(grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
    const started = m.name !== '' ? c.startedAt.get(m.name) : undefined;
    if (started === undefined || !c.running.has(m.name) || Date.now() - started < this.learnerSyncMs) {
      this.promoteRefusals++;
      throw fail(grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader');
    }
    const n = this.voters(c).length;
    if (this.healthy(c) + 1 < quorum(n + 1)) this.violations.push(`promoted ${m.name} with ${this.healthy(c)} healthy of ${n}: quorum of ${n + 1} lost`);
    m.isLearner = false;
    this.journal.add(`etcd promote ${m.name} ${m.id}`);
    return { header: this.header(c, self), members: c.members.map(toPb) };
  }

  private remove(c: ClusterState, self: FakeMember, id: string): unknown {
    if (!this.hasQuorum(c)) throw fail(grpc.status.UNAVAILABLE, 'etcdserver: request timed out');
    const victim = c.members.find((x) => x.id === id);
    if (!victim) throw fail(grpc.status.NOT_FOUND, 'etcdserver: member not found');
    if (!victim.isLearner) {
      const n = this.voters(c).length;
      const healthyAfter = this.healthy(c) - (victim.name !== '' && c.running.has(victim.name) ? 1 : 0);
      if (healthyAfter < quorum(n - 1)) this.violations.push(`removed ${victim.name || victim.id} leaving ${healthyAfter} healthy of ${n - 1}`);
      if (victim.id === c.leaderId && n > 1) this.violations.push(`removed the leader ${victim.name}`);
    }
    c.members = c.members.filter((x) => x !== victim);
    if (victim.name) c.running.delete(victim.name);
    if (victim.id === c.leaderId) c.leaderId = this.voters(c).find((x) => x.name !== '' && c.running.has(x.name))?.id;
    this.journal.add(`etcd remove ${victim.name || victim.peerURLs[0]} ${victim.id}`);
    return { header: this.header(c, self), members: c.members.map(toPb) };
  }

  /** Makes names resolvable (to 127.0.0.1) for the operator. */
  private resolve(...names: string[]): void {
    const before = this.names.size;
    for (const n of names) this.names.add(n);
    if (this.names.size !== before) this.writeDns();
  }
  private writeDns(): void {
    const hosts = Object.fromEntries([...this.names].map((n) => [n, ['127.0.0.1']]));
    const tmp = `${this.dnsFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ hosts }));
    fs.renameSync(tmp, this.dnsFile);
  }
}

function toPb(m: FakeMember): Member {
  return { ID: BigInt(`0x${m.id}`), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}
