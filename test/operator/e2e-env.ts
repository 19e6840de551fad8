/**
 * What the operator's end-to-end tests share: the test API server, the process kubelet running every member pod as a
 * real etcd process (test/support/kube/process-kubelet.ts), the built operator with in-cluster addressing, and the
 * checks a user relies on (the members list, /health, every written key through every member), per EtcdCluster.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KubeApiServer, type KObj } from '../support/kube/api-server';
import { ProcessKubelet, ETCD_MAIN } from '../support/kube/process-kubelet';
import { JobController } from '../support/kube/job-controller';
import { waitFor } from '../support/kube/kubelet';
import { request } from '../support/http';
import { checkBuild, OperatorProcess } from './operator-process';

export const LEASE_NS = 'etcd-operator';
export const REPO = 'ts-etcd/etcd';

export interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}
export interface ClusterStatus {
  phase?: string;
  readyMembers?: number;
  members?: { name: string; id: string; ready: boolean }[];
  currentVersion?: string;
  conditions?: { type: string; status: string; reason: string }[];
}
export type PodRun = ReturnType<ProcessKubelet['list']>[number];

export class E2EEnv {
  api!: KubeApiServer;
  kubelet!: ProcessKubelet;
  jobs!: JobController;
  op!: OperatorProcess;
  /** Per cluster: every key written so far and its value. */
  private readonly written = new Map<string, Map<string, string>>();

  constructor(readonly ns: string) {}

  /** The API server, the kubelet and the operator (`identity`, its flags after the common ones). */
  async start(identity: string, operatorArgs: string[]): Promise<void> {
    checkBuild();
    if (!fs.existsSync(ETCD_MAIN)) throw new Error(`${ETCD_MAIN} is missing: run npx tsc -p tsconfig.json`);
    this.api = new KubeApiServer();
    await this.api.start();
    this.api.store.create('namespaces', undefined, { metadata: { name: this.ns } });
    this.api.store.create('namespaces', undefined, { metadata: { name: LEASE_NS } });
    this.kubelet = new ProcessKubelet(this.api);
    this.kubelet.start();
    this.jobs = new JobController(this.api);
    this.jobs.start();
    this.op = new OperatorProcess(identity, ['--server', this.api.url, '--lease-namespace', LEASE_NS, ...operatorArgs], this.kubelet.dnsEnv());
    await this.op.ready();
  }

  /** Stops everything; with `dump` (a failed test, or OPERATOR_TEST_LOGS set) writes what happened to a file first. */
  async stop(dump: boolean, tag: string): Promise<void> {
    if (dump || process.env.OPERATOR_TEST_LOGS) {
      const out = {
        kubelet: this.kubelet?.events,
        events: this.api?.store.list('events', this.ns).map((e) => ({ at: e.lastTimestamp, type: e.type, reason: e.reason, message: e.message })),
        pods: this.kubelet?.list(),
        logs: this.kubelet?.allLogs(),
        operator: this.op?.lines.slice(-300),
      };
      const file = process.env.OPERATOR_TEST_LOGS ?? `${os.tmpdir()}/operator-${tag}-${process.pid}.json`;
      fs.writeFileSync(file, JSON.stringify(out, null, 1));
      process.stderr.write(`operator ${tag}: logs in ${file}\n`);
    }
    await this.op?.kill('SIGKILL');
    this.jobs?.stop();
    await this.kubelet?.stop();
    await this.api?.stop();
  }

  etcdCluster(name: string): KObj {
    return this.api.store.get('etcdclusters', this.ns, name) as KObj;
  }
  status(name: string): ClusterStatus {
    return (this.etcdCluster(name)?.status ?? {}) as ClusterStatus;
  }
  patchSpec(name: string, spec: Record<string, unknown>): void {
    this.api.store.patch('etcdclusters', this.ns, name, 'application/merge-patch+json', { spec });
  }
  /** The cluster's pods as the kubelet runs them. */
  pods(name: string): PodRun[] {
    return this.kubelet.list().filter((p) => p.ns === this.ns && p.name.startsWith(`${name}-`));
  }
  /** The directory a PersistentVolumeClaim's volume is on this "node". */
  claimDir(claim: string): string {
    return path.join(this.kubelet.root, 'pvc', `${this.ns}_${claim}`);
  }
  clientURL(pod: string): string {
    return `http://${this.kubelet.ipOf(this.ns, pod) as string}:2379`;
  }
  keys(name: string): Map<string, string> {
    let m = this.written.get(name);
    if (!m) this.written.set(name, (m = new Map()));
    return m;
  }

  async members(base: string): Promise<Member[]> {
    const r = await request(base, 'GET', '/v2/members', { timeoutMs: 2000 });
    if (r.status !== 200) throw new Error(`GET /v2/members: ${r.status} ${r.body}`);
    return (JSON.parse(r.body) as { members: Member[] }).members;
  }

  /**
   * Whether a member says it is healthy; undefined when nothing listens or the connection breaks (the member is
   * down). A slow answer is not a dead member: a busy test worker can take a while to read what came back, so it
   * counts as not healthy, not as down.
   */
  async healthy(base: string, timeoutMs = 1000): Promise<boolean | undefined> {
    try {
      const r = await request(base, 'GET', '/health', { timeoutMs });
      return r.status === 200 && (JSON.parse(r.body) as { health: string }).health === 'true';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' ? undefined : false;
    }
  }

  async put(cluster: string, base: string, key: string, value: string): Promise<void> {
    const r = await request(base, 'PUT', `/v2/keys/${key}`, { form: `value=${encodeURIComponent(value)}`, timeoutMs: 3000 });
    if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${key} via ${base}: ${r.status} ${r.body}`);
    this.keys(cluster).set(key, value);
  }

  async get(base: string, key: string): Promise<string | undefined> {
    const r = await request(base, 'GET', `/v2/keys/${key}?quorum=true`, { timeoutMs: 3000 });
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET ${key} via ${base}: ${r.status} ${r.body}`);
    return (JSON.parse(r.body) as { node: { value: string } }).node.value;
  }

  /** A write that tries every member in turn until one takes it, within `ms` (what a client with all endpoints does). */
  async putAnywhere(cluster: string, key: string, value: string, ms = 5000): Promise<number> {
    const start = Date.now();
    let last: unknown;
    for (let attempt = 0; attempt < 200 && Date.now() - start < ms; attempt++) {
      const ps = this.pods(cluster);
      const p = ps[attempt % Math.max(1, ps.length)];
      if (p) {
        try {
          await this.put(cluster, p.clientURL, key, value);
          return Date.now() - start;
        } catch (e) {
          last = e;
        }
      }
      await new Promise((r) => setTimeout(r, 50)); // back off before the next member
    }
    throw new Error(`write ${key} did not succeed within ${ms} ms: ${(last as Error | undefined)?.message}`);
  }

  /** The cluster as everyone sees it is `size` started, healthy members that are exactly the pods; returns them. */
  async converged(cluster: string, size: number, version?: string, ms = 45_000): Promise<Member[]> {
    return waitFor(
      `${size} healthy members${version ? ` at ${version}` : ''}`,
      async () => {
        const ps = this.pods(cluster);
        if (ps.length !== size || !ps.every((p) => p.alive && p.ready)) return undefined;
        if (version && !ps.every((p) => p.image === `${REPO}:${version}`)) return undefined;
        const views = await Promise.all(ps.map((p) => this.members(p.clientURL)));
        for (const v of views) {
          if (v.length !== size || v.some((m) => m.name === '' || m.clientURLs.length === 0)) return undefined;
          if ([...v.map((m) => m.name)].sort().join() !== ps.map((p) => p.name).sort().join()) return undefined;
        }
        const health = await Promise.all(ps.map((p) => this.healthy(p.clientURL)));
        if (!health.every((h) => h === true)) return undefined;
        const st = this.status(cluster);
        if (st.phase !== 'Running' || st.readyMembers !== size) return undefined;
        if (version && st.currentVersion !== version) return undefined;
        return views[0];
      },
      ms,
      100,
    );
  }

  /** Every key written to the cluster, read (quorum) through every member. */
  async everyKeyEverywhere(cluster: string): Promise<void> {
    for (const p of this.pods(cluster)) {
      for (const [k, v] of this.keys(cluster)) expect({ key: k, via: p.name, value: await this.get(p.clientURL, k) }).toEqual({ key: k, via: p.name, value: v });
    }
  }
}
