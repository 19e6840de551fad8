/**
 * The operator (the built `etcd-operator` process) against the test API server of test/support/kube, with a fake
 * kubelet running the member pods and a v3 Cluster/Maintenance stand-in (FakeEtcd, over gRPC) in place of etcd: fast,
 * and strict about the order and safety of the operator's membership calls (learners first, quorum kept); the
 * end-to-end tests with real member processes are test/operator/e2e*.test.ts.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { KubeApiServer, type KObj } from '../support/kube/api-server';
import { FakeEtcd } from '../support/kube/fake-etcd';
import { FakeKubelet, waitFor } from '../support/kube/kubelet';
import { request } from '../support/http';
import { checkBuild, OperatorProcess } from './operator-process';
import { checkRBAC as checkRBACIn } from './rbac-check';

const NS = 'demo';
const LEASE_NS = 'etcd-operator';
const CLUSTER_LABEL = 'etcd.ts-etcd.io/cluster';

interface Env {
  api: KubeApiServer;
  etcd: FakeEtcd;
  kubelet: FakeKubelet;
  ops: OperatorProcess[];
}

async function setup(): Promise<Env> {
  checkBuild();
  const api = new KubeApiServer();
  await api.start();
  const etcd = new FakeEtcd(api.journal);
  await etcd.start();
  const kubelet = new FakeKubelet(api, etcd);
  kubelet.start();
  api.store.create('namespaces', undefined, { metadata: { name: NS } });
  api.store.create('namespaces', undefined, { metadata: { name: LEASE_NS } });
  return { api, etcd, kubelet, ops: [] };
}

function operator(env: Env, identity: string, extra: string[] = []): OperatorProcess {
  const op = new OperatorProcess(identity, [
    '--server', env.api.url,
    '--member-url-template', env.etcd.memberTemplate,
    '--service-url-template', env.etcd.serviceTemplate,
    '--lease-namespace', LEASE_NS,
    '--lease-duration', '3s',
    '--renew-deadline', '2s',
    '--retry-period', '250ms',
    '--resync', '3s',
    '--orphan-grace', '2s',
    '--log-level', 'debug',
    ...extra,
  ], env.etcd.dnsEnv());
  env.ops.push(op);
  return op;
}

async function teardown(env: Env): Promise<void> {
  if (process.env.OPERATOR_TEST_LOGS) {
    fs.writeFileSync(process.env.OPERATOR_TEST_LOGS, JSON.stringify({ journal: env.api.journal.entries, ops: env.ops.map((o) => ({ id: o.identity, lines: o.lines })) }, null, 1));
  }
  await Promise.all(env.ops.map((o) => o.kill('SIGKILL')));
  env.kubelet.stopAll();
  await env.etcd.stop();
  await env.api.stop();
}

const cluster = (env: Env, name: string): KObj => env.api.store.get('etcdclusters', NS, name) as KObj;
interface St {
  phase?: string;
  ready?: string;
  readyMembers?: number;
  size?: number;
  leader?: string;
  members?: { name: string; id: string; ready: boolean }[];
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason: string }[];
  clientURL?: string;
  currentVersion?: string;
}
const status = (o: KObj): St => (o.status ?? {}) as St;
const cond = (o: KObj, type: string): { status: string; reason: string } | undefined => status(o).conditions?.find((c) => c.type === type);

/** Converged: n members ready at the current generation, as the status and the members list agree. */
async function converged(env: Env, name: string, n: number, version?: string, timeoutMs = 30_000): Promise<KObj> {
  return waitFor(
    `${name} to converge at ${n} members`,
    () => {
      const c = cluster(env, name);
      const s = status(c);
      const ok =
        s.phase === 'Running' &&
        s.readyMembers === n &&
        s.size === n &&
        s.observedGeneration === c.metadata.generation &&
        cond(c, 'Available')?.status === 'True' &&
        cond(c, 'Progressing')?.status === 'False' &&
        env.etcd.members(NS, name).length === n &&
        env.api.store.list('pods', NS, [{ key: CLUSTER_LABEL, op: 'eq', value: name }]).length === n &&
        (version === undefined || s.currentVersion === version);
      return ok ? c : undefined;
    },
    timeoutMs,
  );
}

const podArgs = (env: Env, pod: string): string[] => ((env.api.store.get('pods', NS, pod)?.spec as { containers: { args: string[] }[] }).containers[0].args);
const flag = (args: string[], name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const peer = (pod: string, c = 'ex'): string => `http://${pod}.${c}.${NS}.svc:2380`;
const events = (env: Env): { reason: string; type: string; involvedObject: { name: string; uid: string }; message: string }[] =>
  env.api.store.list('events', NS) as never;

/** The text exposition of /metrics as samples: name, labels (as written), value. */
interface Sample {
  name: string;
  labels: string;
  value: number;
}
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m) out.push({ name: m[1], labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}
const value = (ss: Sample[], name: string, labels = ''): number | undefined => ss.find((x) => x.name === name && x.labels === labels)?.value;

/** `promtool check metrics` on an exposition (stdin): its exit code and what it said. */
function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
    p.stdin.end(text);
  });
}

const checkRBAC = (env: Env): string[] => checkRBACIn(env.api, NS, LEASE_NS);

describe('etcd-operator against the test API server', () => {
  let env: Env;
  let op: OperatorProcess;
  beforeAll(async () => {
    env = await setup();
    op = operator(env, 'op-a');
    await op.ready();
    await waitFor('op-a to lead', () => (env.api.store.get('leases', LEASE_NS, 'etcd-operator')?.spec as { holderIdentity?: string } | undefined)?.holderIdentity === 'op-a');
  });
  afterAll(() => teardown(env));

  test('an EtcdCluster of 3: the seed, then one member at a time (added as a learner, its pod with the full initial cluster, promoted)', async () => {
    env.api.store.create('etcdclusters', NS, { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'ex' }, spec: { size: 3, version: '3.4.34', etcd: { heartbeatInterval: 100, electionTimeout: 1000, snapshotCount: 5000 } } });
    const c = await converged(env, 'ex', 3);
    expect(env.etcd.violations).toEqual([]);
    expect(env.etcd.startFailures).toEqual([]);

    // the order: seed pod → started → add ex-1 (learner) → pod ex-1 → started → promoted → add ex-2 (learner) → ...
    const j = env.api.journal;
    const seq = [
      /^ADDED pods\/demo\/ex-0$/,
      /^etcd start ex-0 new$/,
      /^etcd add http:\/\/ex-1\.\S+ \w+ learner$/,
      /^ADDED pods\/demo\/ex-1$/,
      /^etcd start ex-1 existing$/,
      /^etcd promote ex-1 /,
      /^etcd add http:\/\/ex-2\.\S+ \w+ learner$/,
      /^ADDED pods\/demo\/ex-2$/,
      /^etcd start ex-2 existing$/,
      /^etcd promote ex-2 /,
    ].map((re) => j.indexOf(re));
    expect(seq.every((x) => x >= 0)).toBe(true);
    expect([...seq].sort((a, b) => a - b)).toEqual(seq);

    // the flags
    const a0 = podArgs(env, 'ex-0');
    expect(a0).toEqual(
      expect.arrayContaining([
        '--name=ex-0',
        '--data-dir=/var/lib/etcd',
        '--listen-client-urls=http://0.0.0.0:2379',
        `--advertise-client-urls=http://ex-0.ex.${NS}.svc:2379`,
        '--listen-peer-urls=http://0.0.0.0:2380',
        `--initial-advertise-peer-urls=${peer('ex-0')}`,
        `--initial-cluster=ex-0=${peer('ex-0')}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=ex',
        '--heartbeat-interval=100',
        '--election-timeout=1000',
        '--snapshot-count=5000',
      ]),
    );
    expect(flag(podArgs(env, 'ex-1'), 'initial-cluster-state')).toBe('existing');
    expect(flag(podArgs(env, 'ex-1'), 'initial-cluster')).toBe(`ex-0=${peer('ex-0')},ex-1=${peer('ex-1')}`);
    expect(flag(podArgs(env, 'ex-2'), 'initial-cluster')).toBe(`ex-0=${peer('ex-0')},ex-1=${peer('ex-1')},ex-2=${peer('ex-2')}`);

    // services, PDB, owner references
    const uid = c.metadata.uid;
    const headless = env.api.store.get('services', NS, 'ex') as KObj;
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const client = env.api.store.get('services', NS, 'ex-client') as KObj;
    expect(client.spec).toMatchObject({ type: 'ClusterIP', ports: [{ port: 2379 }] });
    const pdb = env.api.store.get('poddisruptionbudgets', NS, 'ex') as KObj;
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1 });
    const pods = env.api.store.list('pods', NS);
    for (const o of [headless, client, pdb, ...pods]) {
      expect(o.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'EtcdCluster', name: 'ex', uid, controller: true, blockOwnerDeletion: true })]);
    }
    for (const p of pods) expect((p.spec as { subdomain: string; hostname: string })).toMatchObject({ subdomain: 'ex', hostname: p.metadata.name });

    // status and conditions
    const s = status(c);
    expect(s).toMatchObject({ phase: 'Running', ready: '3/3', leader: 'ex-0', clientURL: `http://ex-client.${NS}.svc:2379`, currentVersion: '3.4.34' });
    expect(s.members?.map((m) => [m.name, m.ready, /^[0-9a-f]+$/.test(m.id)])).toEqual([['ex-0', true, true], ['ex-1', true, true], ['ex-2', true, true]]);
    expect(cond(c, 'Available')).toMatchObject({ status: 'True', reason: 'QuorumHealthy' });
    expect(cond(c, 'Progressing')).toMatchObject({ status: 'False', reason: 'ReconcileComplete' });
    expect(cond(c, 'Degraded')).toMatchObject({ status: 'False' });

    // the printer columns of the CRD all show something
    const crd = yaml.loadAll(fs.readFileSync(path.join(__dirname, '../../manifests/01-crd.yaml'), 'utf8'))[0] as { spec: { versions: { additionalPrinterColumns: { name: string; jsonPath: string }[] }[] } };
    for (const col of crd.spec.versions[0].additionalPrinterColumns) {
      const v = col.jsonPath.split('.').filter((x) => x).reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], c);
      expect([col.name, v === undefined || v === '' ? 'empty' : 'set']).toEqual([col.name, 'set']);
    }

    // events for every action
    const reasons = events(env).filter((e) => e.involvedObject.uid === uid).map((e) => e.reason);
    expect(reasons.filter((r) => r === 'Bootstrapping')).toHaveLength(1);
    expect(reasons.filter((r) => r === 'AddingMember')).toHaveLength(2);
    expect(reasons.filter((r) => r === 'CreatingMemberPod')).toHaveLength(2);
    expect(reasons.filter((r) => r === 'PromotingMember')).toHaveLength(2);
    // a learner is promoted only once etcd finds it in sync: the first tries were refused, and retried
    expect(env.etcd.promoteRefusals).toBeGreaterThan(0);
    const created = events(env).filter((e) => e.involvedObject.uid === uid && e.reason === 'Created').map((e) => e.message).sort();
    expect(created).toEqual(['created PodDisruptionBudget ex', 'created Service ex', 'created Service ex-client', 'created Service ex-metrics']);
  });

  test('an owned Service changed by hand is brought back to what the EtcdCluster asks, with an event', async () => {
    const svc = env.api.store.get('services', NS, 'ex-client') as KObj;
    (svc.spec as { type: string }).type = 'NodePort';
    env.api.store.update('services', NS, 'ex-client', svc);
    await waitFor('the client Service restored', () => ((env.api.store.get('services', NS, 'ex-client') as KObj).spec as { type: string }).type === 'ClusterIP', 20_000);
    await waitFor('an Updated event', () => events(env).some((e) => e.reason === 'Updated' && e.message.includes('Service ex-client')));
  });

  test('/metrics: a reconcile increments the reconcile counter and histogram, actions are counted by kind, and promtool accepts it', async () => {
    const get = async (): Promise<{ text: string; ss: Sample[] }> => {
      const r = await request(op.metricsURL, 'GET', '/metrics');
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      return { text: r.body, ss: samples(r.body) };
    };
    const before = await get();
    const ok0 = value(before.ss, 'etcd_operator_reconciles_total', '{result="ok"}') ?? 0;
    const count0 = value(before.ss, 'etcd_operator_reconcile_duration_seconds_count') ?? 0;
    // the converge of the last test took reconciles, timed, and its actions are counted by kind (as its events were)
    expect(ok0).toBeGreaterThan(0);
    expect(count0).toBeGreaterThan(0);
    expect(value(before.ss, 'etcd_operator_actions_total', '{action="bootstrap"}')).toBe(1);
    expect(value(before.ss, 'etcd_operator_actions_total', '{action="addMember"}')).toBe(2);
    expect(value(before.ss, 'etcd_operator_actions_total', '{action="createPod"}')).toBe(2);
    expect(value(before.ss, 'etcd_operator_actions_total', '{action="promoteMember"}')).toBe(2);
    expect(value(before.ss, 'etcd_operator_is_leader')).toBe(1);

    // a change to the EtcdCluster (a watch event) makes one more reconcile: the counter and the histogram move with it
    env.api.store.patch('etcdclusters', NS, 'ex', 'application/merge-patch+json', { metadata: { annotations: { 'example.com/poke': '1' } } });
    const after = await waitFor('the reconcile counter and histogram to move', async () => {
      const m = await get();
      return (value(m.ss, 'etcd_operator_reconciles_total', '{result="ok"}') ?? 0) > ok0 && (value(m.ss, 'etcd_operator_reconcile_duration_seconds_count') ?? 0) > count0 ? m : undefined;
    });
    const ok1 = value(after.ss, 'etcd_operator_reconciles_total', '{result="ok"}') as number;
    const errors1 = value(after.ss, 'etcd_operator_reconciles_total', '{result="error"}') ?? 0;
    const count1 = value(after.ss, 'etcd_operator_reconcile_duration_seconds_count') as number;
    // every reconcile, ok or failed, is timed once (give or take the two workers' reconciles in flight)
    expect(Math.abs(count1 - (ok1 + errors1))).toBeLessThanOrEqual(2);
    expect(value(after.ss, 'etcd_operator_reconcile_errors_total') ?? 0).toBe(errors1);
    expect(value(after.ss, 'etcd_operator_reconcile_duration_seconds_bucket', '{le="+Inf"}')).toBe(count1);
    // nothing to do for an annotation: no new action
    expect(value(after.ss, 'etcd_operator_actions_total', '{action="bootstrap"}')).toBe(1);

    const checked = await promtool(after.text);
    expect([checked.code, checked.output]).toEqual([0, '']);
    // promtool does reject what breaks the conventions (so the check above is a real one)
    const bad = await promtool(`${after.text}# HELP etcd_operator_bogus_total A gauge named like a counter.\n# TYPE etcd_operator_bogus_total gauge\netcd_operator_bogus_total 1\n`);
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(/etcd_operator_bogus_total/);
  });

  test('3 → 5 → 3: one member at a time; members API remove before the pod is deleted; a 409 on the status is re-read', async () => {
    // another writer touches the object just before the operator's first status write: a genuine 409
    let injected = 0;
    env.api.beforeWrite = (w) => {
      if (injected === 0 && w.method === 'PUT' && w.rt.plural === 'etcdclusters' && w.subresource === 'status') {
        injected++;
        env.api.store.patch('etcdclusters', NS, 'ex', 'application/merge-patch+json', { metadata: { annotations: { 'example.com/other-writer': 'was here' } } });
      }
    };
    env.api.store.patch('etcdclusters', NS, 'ex', 'application/merge-patch+json', { spec: { size: 5 } });
    await converged(env, 'ex', 5);
    env.api.beforeWrite = undefined;
    expect(injected).toBe(1);
    expect(env.etcd.violations).toEqual([]);
    const statusWrites = env.api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/etcdclusters/ex/status'));
    const conflictAt = env.api.requests.findIndex((r) => r.method === 'PUT' && r.path.endsWith('/etcdclusters/ex/status') && r.status === 409);
    expect(conflictAt).toBeGreaterThanOrEqual(0);
    // after the 409: a fresh GET, then a successful write
    const after = env.api.requests.slice(conflictAt + 1);
    const reread = after.findIndex((r) => r.method === 'GET' && r.path.endsWith('/etcdclusters/ex'));
    expect(reread).toBeGreaterThanOrEqual(0);
    expect(after.slice(reread).some((r) => r.method === 'PUT' && r.path.endsWith('/etcdclusters/ex/status') && r.status === 200)).toBe(true);
    expect(statusWrites.length).toBeGreaterThan(1);
    // the other writer's change survived (re-read, not overwritten)
    expect(cluster(env, 'ex').metadata.annotations?.['example.com/other-writer']).toBe('was here');
    expect(await op.metric('etcd_operator_api_conflicts_total')).toBeGreaterThanOrEqual(1);
    expect((env.api.store.get('poddisruptionbudgets', NS, 'ex') as KObj).spec).toMatchObject({ maxUnavailable: 2 });

    const j = env.api.journal;
    // growing: every add waits for the previous learner to start and be promoted
    const adds = j.entries.filter((e) => /^etcd add http:\/\/ex-[34]\./.test(e.what));
    expect(adds).toHaveLength(2);
    expect(j.entries.findIndex((e) => e.what === 'etcd start ex-3 existing')).toBeLessThan(j.entries.findIndex((e) => /^etcd promote ex-3 /.test(e.what)));
    expect(j.entries.findIndex((e) => /^etcd promote ex-3 /.test(e.what))).toBeLessThan(j.entries.indexOf(adds[1]));

    const mark = j.entries.length;
    env.api.store.patch('etcdclusters', NS, 'ex', 'application/merge-patch+json', { spec: { size: 3 } });
    await converged(env, 'ex', 3);
    expect(env.etcd.violations).toEqual([]);
    const tail = j.entries.slice(mark).map((e) => e.what);
    const at = (re: RegExp): number => tail.findIndex((w) => re.test(w));
    // the newest non-leader first, members API remove, then the pod
    expect(at(/^etcd remove ex-4 /)).toBeGreaterThanOrEqual(0);
    expect(at(/^etcd remove ex-4 /)).toBeLessThan(at(/^DELETE \/api\/v1\/namespaces\/demo\/pods\/ex-4 200$/));
    expect(at(/^DELETE \/api\/v1\/namespaces\/demo\/pods\/ex-4 200$/)).toBeLessThan(at(/^etcd remove ex-3 /));
    expect(at(/^etcd remove ex-3 /)).toBeLessThan(at(/^DELETE \/api\/v1\/namespaces\/demo\/pods\/ex-3 200$/));
    expect(tail.filter((w) => /^etcd (add|remove)/.test(w))).toHaveLength(2);
    expect((env.api.store.get('poddisruptionbudgets', NS, 'ex') as KObj).spec).toMatchObject({ maxUnavailable: 1 });
  });

  test('rolling upgrade: one member at a time, followers first, the leader last, each back before the next', async () => {
    const mark = env.api.journal.entries.length;
    env.api.store.patch('etcdclusters', NS, 'ex', 'application/merge-patch+json', { spec: { version: '3.4.35' } });
    const c = await converged(env, 'ex', 3, '3.4.35');
    const tail = env.api.journal.entries.slice(mark).map((e) => e.what).filter((w) => /^etcd (stop|restart)/.test(w));
    expect(tail).toEqual(['etcd stop ex-1', 'etcd restart ex-1', 'etcd stop ex-2', 'etcd restart ex-2', 'etcd stop ex-0', 'etcd restart ex-0']);
    for (const p of env.api.store.list('pods', NS)) expect((p.spec as { containers: { image: string }[] }).containers[0].image).toBe('ts-etcd/etcd:3.4.35');
    expect(events(env).filter((e) => e.reason === 'UpgradingMember')).toHaveLength(3);
    expect(status(c).members?.every((m) => m.ready)).toBe(true);
    expect(env.etcd.violations).toEqual([]);
  });

  test('a member whose pod is lost (emptyDir) is removed and replaced by a new member', async () => {
    const mark = env.api.journal.entries.length;
    const oldId = env.etcd.members(NS, 'ex').find((m) => m.name === 'ex-2')?.id;
    expect(oldId).toBeDefined();
    env.api.store.delete('pods', NS, 'ex-2');
    // the name comes back (the lowest free ordinal), as a new member with a new ID and an empty data dir
    await waitFor('the replacement', () => env.etcd.members(NS, 'ex').some((m) => m.name === 'ex-2' && m.id !== oldId));
    await converged(env, 'ex', 3);
    const tail = env.api.journal.entries.slice(mark).map((e) => e.what);
    const i = (re: RegExp): number => tail.findIndex((w) => re.test(w));
    expect(i(new RegExp(`^etcd remove ex-2 ${oldId}$`))).toBeGreaterThanOrEqual(0);
    expect(i(/^etcd remove ex-2 /)).toBeLessThan(i(/^etcd add http:\/\/ex-2\./));
    expect(i(/^etcd add http:\/\/ex-2\./)).toBeLessThan(i(/^ADDED pods\/demo\/ex-2$/));
    expect(i(/^ADDED pods\/demo\/ex-2$/)).toBeLessThan(i(/^etcd start ex-2 existing$/));
    expect(events(env).some((e) => e.reason === 'ReplacingFailedMember')).toBe(true);
    expect(env.etcd.violations).toEqual([]);
    expect(env.etcd.startFailures).toEqual([]);
  });

  test('quorum lost: Degraded with a reason, and no action until it is back', async () => {
    const mark = env.api.journal.entries.length;
    env.kubelet.crash(NS, 'ex-1');
    env.kubelet.crash(NS, 'ex-2');
    const c = await waitFor('Degraded', () => {
      const o = cluster(env, 'ex');
      return status(o).phase === 'Degraded' && cond(o, 'Degraded')?.reason === 'QuorumLost' ? o : undefined;
    });
    expect(cond(c, 'Available')).toMatchObject({ status: 'False', reason: 'QuorumLost' });
    await waitFor('a warning event', () => events(env).some((e) => e.type === 'Warning' && e.reason === 'QuorumLost'));
    // a few more reconciles (resync, pod events) and still no membership change, no pod touched
    const before = await op.metric('etcd_operator_reconciles_total');
    await waitFor('more reconciles', async () => (await op.metric('etcd_operator_reconciles_total')) >= before + 2, 20_000);
    const acted = env.api.journal.entries.slice(mark).map((e) => e.what).filter((w) => /^etcd (add|remove)|^(POST|DELETE) \/api\/v1\/namespaces\/demo\/pods/.test(w));
    expect(acted).toEqual([]);
    env.kubelet.recover(NS, 'ex-1');
    env.kubelet.recover(NS, 'ex-2');
    await converged(env, 'ex', 3);
    expect(cond(cluster(env, 'ex'), 'Degraded')).toMatchObject({ status: 'False' });
  });

  test('every member lost (pods gone, nothing answers): Failed with AllMembersLost, and never a new empty seed', async () => {
    env.api.store.create('etcdclusters', NS, { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'lost' }, spec: { size: 1, version: '3.4.34' } });
    await converged(env, 'lost', 1);
    const mark = env.api.journal.entries.length;
    env.kubelet.crash(NS, 'lost-0');
    env.api.store.delete('pods', NS, 'lost-0');
    const c = await waitFor('Failed', () => {
      const o = cluster(env, 'lost');
      return status(o).phase === 'Failed' && cond(o, 'Degraded')?.reason === 'AllMembersLost' ? o : undefined;
    });
    // The status keeps the membership it last saw (none of it ready): the cluster stays known as bootstrapped.
    expect(status(c).members?.map((m) => ({ name: m.name, ready: m.ready }))).toEqual([{ name: 'lost-0', ready: false }]);
    // More reconciles (resyncs) later: still Failed, and no pod was created to seed a new, empty cluster.
    const before = await op.metric('etcd_operator_reconciles_total');
    await waitFor('more reconciles', async () => (await op.metric('etcd_operator_reconciles_total')) >= before + 3, 20_000);
    expect(status(cluster(env, 'lost')).phase).toBe('Failed');
    const created = env.api.journal.entries.slice(mark).map((e) => e.what).filter((w) => /^POST \/api\/v1\/namespaces\/demo\/pods/.test(w));
    expect(created).toEqual([]);
    expect(env.api.store.list('pods', NS, [{ key: CLUSTER_LABEL, op: 'eq', value: 'lost' }])).toEqual([]);
    env.api.store.delete('etcdclusters', NS, 'lost');
  });

  test('RBAC: every API request the operator made is in operator/rbac.ts and granted by manifests/02-rbac.yaml', () => {
    const seen = checkRBAC(env);
    // what the scenarios above drove (so the check covers the operator's writes, not only its reads)
    expect(seen).toEqual(
      expect.arrayContaining([
        'etcd.ts-etcd.io|etcdclusters|get', 'etcd.ts-etcd.io|etcdclusters|list', 'etcd.ts-etcd.io|etcdclusters|watch', 'etcd.ts-etcd.io|etcdclusters/status|update',
        '|pods|list', '|pods|watch', '|pods|create', '|pods|get', '|pods|update', '|pods|delete', '|persistentvolumeclaims|delete',
        '|services|get', '|services|create', 'policy|poddisruptionbudgets|get', 'policy|poddisruptionbudgets|create', 'policy|poddisruptionbudgets|update',
        '|events|create', 'coordination.k8s.io|leases|get', 'coordination.k8s.io|leases|create', 'coordination.k8s.io|leases|update',
      ]),
    );
  });

  test("every EtcdCluster write the operator made fits the CRD's schema: nothing pruned, no API warning", () => {
    expect(env.api.requests.some((r) => r.method === 'PUT' && r.path.endsWith('/status') && r.status === 200)).toBe(true);
    expect(env.api.warnings).toEqual([]);
  });

  test('deleting the EtcdCluster garbage-collects everything it owns, and the operator re-creates nothing', async () => {
    const before = await op.metric('etcd_operator_reconciles_total');
    env.api.store.delete('etcdclusters', NS, 'ex');
    const owned = (): KObj[] => ['pods', 'services', 'poddisruptionbudgets'].flatMap((r) => env.api.store.list(r, NS, [{ key: CLUSTER_LABEL, op: 'eq', value: 'ex' }]));
    await waitFor('garbage collection', () => owned().length === 0);
    // the DELETED watch event makes the operator look once more: it must find nothing to do
    await waitFor('the reconcile of the deleted cluster', async () => (await op.metric('etcd_operator_reconciles_total')) > before);
    await waitFor('garbage collection of anything a racing reconcile wrote', () => owned().length === 0);
    expect(owned()).toEqual([]);
  });
});

describe('two operator replicas with leader election', () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup();
  });
  afterAll(() => teardown(env));

  test('only the lease holder reconciles; when it dies the other takes over', async () => {
    const a = operator(env, 'op-a');
    const b = operator(env, 'op-b');
    await Promise.all([a.ready(), b.ready()]);
    const holder = async (): Promise<string | undefined> => (env.api.store.get('leases', LEASE_NS, 'etcd-operator')?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
    const first = await waitFor('a lease holder', holder);
    const [leader, standby] = first === 'op-a' ? [a, b] : [b, a];
    env.api.store.create('etcdclusters', NS, { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'le' }, spec: { size: 3 } });
    await converged(env, 'le', 3);
    expect(await leader.metric('etcd_operator_reconciles_total')).toBeGreaterThan(0);
    expect(await leader.metric('etcd_operator_is_leader')).toBe(1);
    expect(await standby.metric('etcd_operator_reconciles_total')).toBe(0);
    expect(await standby.metric('etcd_operator_is_leader')).toBe(0);
    // every write came from the leader
    const writers = new Set(env.api.requests.filter((r) => r.method !== 'GET' && !r.path.includes('/leases')).map((r) => r.userAgent));
    expect([...writers]).toEqual([`etcd-operator/${leader.identity}`]);

    await leader.kill('SIGKILL'); // no release: the standby must wait for the lease to expire
    env.api.store.patch('etcdclusters', NS, 'le', 'application/merge-patch+json', { spec: { size: 1 } });
    await waitFor('the standby to take the lease', async () => (await holder()) === standby.identity, 20_000);
    await converged(env, 'le', 1);
    expect(await standby.metric('etcd_operator_reconciles_total')).toBeGreaterThan(0);
    expect((env.api.store.get('leases', LEASE_NS, 'etcd-operator')?.spec as { leaseTransitions: number }).leaseTransitions).toBeGreaterThanOrEqual(1);
    expect(env.etcd.violations).toEqual([]);
  });

  test('/healthz answers', async () => {
    const op = env.ops.find((o) => o.running) as OperatorProcess;
    const r = await request(op.metricsURL, 'GET', '/healthz');
    expect(r.status).toBe(200);
  });

  test('RBAC: both replicas asked only for what operator/rbac.ts and manifests/02-rbac.yaml grant', () => {
    expect(checkRBAC(env)).toEqual(expect.arrayContaining(['coordination.k8s.io|leases|update', '|pods|delete']));
  });
});
