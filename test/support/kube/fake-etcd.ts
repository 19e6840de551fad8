/**
 * A stand-in for the etcd members API of the clusters the operator manages — NOT etcd (no Raft, no data): one HTTP
 * server on 127.0.0.1 serving `/<namespace>/<pod>/...` for every member pod and `/<namespace>/<cluster>-client/...`
 * for the client Service, with /health, /v2/members (GET, POST, DELETE /<id>) and /v2/members/leader as etcd 3.4
 * answers them. It exists until real multi-member etcd processes can run under the operator (clustering).
 *
 * It checks what real etcd would refuse, and records what a careful operator must never do (`violations`):
 *  - a member starting with `--initial-cluster-state new` in a cluster that has members, or `existing` without
 *    having been added, or with an `--initial-cluster` whose peer URLs differ from the members list → the start fails;
 *  - adding a member while another added member has not started yet, adding or removing when that would leave
 *    fewer healthy members than the quorum of the new size (1 → 2 excepted), removing the leader while others exist.
 * The operator reaches it with `--member-url-template http://127.0.0.1:PORT/{namespace}/{pod}`.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Journal } from './api-server';

export interface FakeMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

interface ClusterState {
  members: FakeMember[];
  leaderId?: string;
  /** pod name → running (its etcd process up) */
  running: Set<string>;
}

const quorum = (n: number): number => Math.floor(n / 2) + 1;

export class FakeEtcd {
  url = '';
  readonly violations: string[] = [];
  readonly startFailures: string[] = [];
  private readonly clusters = new Map<string, ClusterState>();
  private server?: http.Server;
  private nextId = 0x1000;
  /** Make the next members-API calls fail with this status (e.g. 500 as etcd's strict reconfig check does). */
  failNext: { method: string; status: number; count: number } | undefined;

  constructor(private readonly journal: Journal) {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
  get memberTemplate(): string {
    return `${this.url}/{namespace}/{pod}`;
  }
  get serviceTemplate(): string {
    return `${this.url}/{namespace}/{cluster}-client`;
  }

  cluster(ns: string, cluster: string): ClusterState {
    const k = `${ns}/${cluster}`;
    let c = this.clusters.get(k);
    if (!c) {
      c = { members: [], running: new Set() };
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

  private healthy(c: ClusterState): number {
    return c.members.filter((m) => m.name !== '' && c.running.has(m.name)).length;
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
    if (existing && existing.name === pod) {
      // a restart (same data dir: container restart, image change)
      c.running.add(pod);
      this.journal.add(`etcd restart ${pod}`);
      return true;
    }
    if (state === 'new') {
      if (c.members.length > 0) return fail('--initial-cluster-state new, but the cluster has members');
      if (initial.length !== 1) return fail(`a seed with ${initial.length} initial members`);
      const m: FakeMember = { id: (this.nextId++).toString(16), name: pod, peerURLs: [self], clientURLs: [`http://${pod}:2379`] };
      c.members.push(m);
      c.leaderId = m.id;
      c.running.add(pod);
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
    if (!c.leaderId) c.leaderId = existing.id;
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
      const next = c.members.find((m) => m.name !== '' && c.running.has(m.name));
      c.leaderId = next && this.healthy(c) >= quorum(c.members.length) ? next.id : undefined;
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const ch of req) chunks.push(ch as Buffer);
    const body = Buffer.concat(chunks).toString();
    const send = (code: number, b?: unknown): void => {
      res.writeHead(code, { 'Content-Type': 'application/json' }).end(b === undefined ? '' : JSON.stringify(b));
    };
    const parts = (req.url ?? '/').split('?')[0].split('/').filter((p) => p !== '');
    const [ns, target, ...rest] = parts;
    const path = '/' + rest.join('/');
    // which cluster: a pod "<cluster>-<n>" or the service "<cluster>-client"
    const m = /^(.*)-(client|\d+)$/.exec(target ?? '');
    if (!ns || !m) return send(404, { message: 'unknown target' });
    const clusterName = m[1];
    const c = this.cluster(ns, clusterName);
    const viaService = m[2] === 'client';
    // a pod's URL answers only while its etcd runs; the Service answers while any member runs
    const up = viaService ? c.members.some((x) => x.name !== '' && c.running.has(x.name)) : c.running.has(target);
    if (!up) {
      req.socket.destroy();
      return;
    }
    const hasQuorum = this.healthy(c) >= quorum(c.members.length);
    const method = req.method ?? 'GET';
    if (this.failNext && this.failNext.method === method && this.failNext.count > 0 && path.startsWith('/v2/members')) {
      this.failNext.count--;
      return send(this.failNext.status, { message: 'injected failure' });
    }
    if (method === 'GET' && path === '/health') return send(hasQuorum ? 200 : 503, { health: hasQuorum ? 'true' : 'false' });
    if (method === 'GET' && path === '/v2/members') return send(200, { members: c.members });
    if (method === 'GET' && path === '/v2/members/leader') {
      const l = c.members.find((x) => x.id === c.leaderId);
      return l && hasQuorum ? send(200, l) : send(503, { message: 'During election' });
    }
    if (method === 'POST' && path === '/v2/members') {
      if (!hasQuorum) return send(500, { message: 'etcdserver: request timed out' });
      const peerURLs = (JSON.parse(body) as { peerURLs: string[] }).peerURLs;
      if (c.members.some((x) => x.peerURLs.some((u) => peerURLs.includes(u)))) return send(409, { message: 'etcdserver: Peer URLs already exists' });
      const unstarted = c.members.filter((x) => x.name === '');
      if (unstarted.length > 0) this.violations.push(`added ${peerURLs} while ${unstarted.map((x) => x.peerURLs[0]).join(',')} had not started`);
      const n = c.members.length;
      if (n >= 2 && this.healthy(c) < quorum(n + 1)) this.violations.push(`added ${peerURLs} with ${this.healthy(c)} healthy of ${n}: quorum of ${n + 1} lost`);
      const mem: FakeMember = { id: (this.nextId++).toString(16), name: '', peerURLs, clientURLs: [] };
      c.members.push(mem);
      this.journal.add(`etcd add ${peerURLs[0]} ${mem.id}`);
      return send(201, mem);
    }
    const del = /^\/v2\/members\/([0-9a-f]+)$/.exec(path);
    if (method === 'DELETE' && del) {
      if (!hasQuorum) return send(500, { message: 'etcdserver: request timed out' });
      const victim = c.members.find((x) => x.id === del[1]);
      if (!victim) return send(404, { message: `No such member: ${del[1]}` });
      const n = c.members.length;
      const healthyAfter = this.healthy(c) - (victim.name !== '' && c.running.has(victim.name) ? 1 : 0);
      if (healthyAfter < quorum(n - 1)) this.violations.push(`removed ${victim.name || victim.id} leaving ${healthyAfter} healthy of ${n - 1}`);
      if (victim.id === c.leaderId && n > 1) this.violations.push(`removed the leader ${victim.name}`);
      c.members = c.members.filter((x) => x !== victim);
      if (victim.name) c.running.delete(victim.name);
      if (victim.id === c.leaderId) c.leaderId = c.members.find((x) => x.name !== '' && c.running.has(x.name))?.id;
      this.journal.add(`etcd remove ${victim.name || victim.peerURLs[0]} ${victim.id}`);
      return send(204);
    }
    return send(404, { message: `not found: ${method} ${path}` });
  }
}
