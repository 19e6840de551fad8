/**
 * End to end, backups and restores (test/operator/e2e-env.ts: the built operator, the test API server, real member
 * processes; the Job controller of test/support/kube runs backup Jobs, whose pods the process kubelet runs as the
 * operator image's `etcd-operator backup`): a cluster takes v3 writes; a one-off EtcdBackup puts a snapshot on a
 * claim, its status saying the time, revision, size and SHA-256 (checked against the file); the cluster is deleted; a
 * new EtcdCluster with spec.restore is seeded from the snapshot (an init container running etcdctl snapshot restore
 * per member) and serves every key at the same revision. A scheduled EtcdBackup keeps only `retention` snapshots.
 * spec.defragment defragments the members one at a time, the leader last.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KVClient, RangeRequest, PutRequest, DeleteRangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { promiseKV, type PromiseKV } from '../support/v3-server';
import { waitFor } from '../support/kube/kubelet';
import { E2EEnv, LEASE_NS } from './e2e-env';
import { checkRBAC } from './rbac-check';
import type { KObj } from '../support/kube/api-server';

const NS = 'bk';
const SRC = 'src';
const DST = 'dst';
const CLAIM = 'backups';

jest.setTimeout(120_000);

const env = new E2EEnv(NS);
let failed = false;
const clients: KVClient[] = [];

beforeAll(async () => {
  await env.start('e2e-backup-operator', ['--resync', '2s', '--orphan-grace', '2s', '--failed-member-timeout', '20s', '--log-level', 'debug']);
  env.api.store.create('persistentvolumeclaims', NS, { metadata: { name: CLAIM }, spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } } } });
});
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});
afterAll(async () => {
  for (const c of clients) c.close();
  await env.stop(failed, 'e2e-backup');
});

const kv = (pod: string, cluster: string): PromiseKV => {
  const p = env.pods(cluster).find((x) => x.name === pod);
  if (!p) throw new Error(`no pod ${pod}`);
  const c = new KVClient(`${p.ip}:2379`, grpc.credentials.createInsecure());
  clients.push(c);
  return promiseKV(c);
};
interface Backup {
  status?: {
    phase?: string;
    lastBackup?: { file: string; time: string; revision: number; size: number; sha256: string; member: string; job: string };
    backups?: { file: string }[];
    succeeded?: number;
    active?: string[];
  };
}
const backup = (name: string): Backup => env.api.store.get('etcdbackups', NS, name) as Backup;
const events = (kind: string, name: string): string[] =>
  env.api.store
    .list('events', NS)
    .filter((e) => (e.involvedObject as { kind: string; name: string }).kind === kind && (e.involvedObject as { name: string }).name === name)
    .map((e) => e.reason as string);

/** What the source cluster holds: every key and value written, and its revision after the last write. */
const written = new Map<string, string>();
let lastRevision = 0;

test('a 3-member cluster takes v3 writes (puts, overwrites, deletes)', async () => {
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: SRC },
    spec: { size: 3, version: '3.4.34', etcd: { heartbeatInterval: 50, electionTimeout: 500 } },
  });
  await env.converged(SRC, 3);
  const c = kv(`${SRC}-1`, SRC);
  for (let i = 0; i < 40; i++) {
    const r = await c.put(PutRequest.fromPartial({ key: Buffer.from(`k/${i}`), value: Buffer.from(`v${i}`) }));
    written.set(`k/${i}`, `v${i}`);
    lastRevision = Number(r.header?.revision);
  }
  for (let i = 0; i < 10; i++) {
    const r = await c.put(PutRequest.fromPartial({ key: Buffer.from(`k/${i}`), value: Buffer.from(`again${i}`) }));
    written.set(`k/${i}`, `again${i}`);
    lastRevision = Number(r.header?.revision);
  }
  const d = await c.deleteRange(DeleteRangeRequest.fromPartial({ key: Buffer.from('k/39') }));
  written.delete('k/39');
  lastRevision = Number(d.header?.revision);
  expect(lastRevision).toBe(52); // a new store is at 1; 50 puts and a delete
});

test('a one-off EtcdBackup: a snapshot on the claim, its time, revision, size and SHA-256 in the status', async () => {
  const t0 = Date.now();
  env.api.store.create('etcdbackups', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'once' },
    spec: { clusterName: SRC, storage: { persistentVolumeClaim: { claimName: CLAIM } } },
  });
  const b = await waitFor('the backup to succeed', () => (backup('once').status?.phase === 'Succeeded' ? backup('once') : undefined), 60_000, 100);
  const last = b.status?.lastBackup;
  expect(last).toBeDefined();
  expect(last?.revision).toBe(lastRevision);
  expect(last?.file).toMatch(/^once-\d{8}T\d{6}Z\.db$/);
  // the file on the claim is what the status says: its size, and the SHA-256 of the store (its last 32 bytes)
  const data = fs.readFileSync(path.join(env.claimDir(CLAIM), last!.file));
  expect(data.length).toBe(last?.size);
  const digest = createHash('sha256').update(data.subarray(0, data.length - 32)).digest('hex');
  expect(last?.sha256).toBe(digest);
  expect(data.subarray(data.length - 32).toString('hex')).toBe(digest);
  expect(Math.abs(Date.parse(last!.time) - Date.now())).toBeLessThan(120_000);
  // from a healthy member, a follower rather than the leader
  const leader = (env.status(SRC) as { leader?: string }).leader;
  expect(last?.member).toMatch(new RegExp(`^${SRC}-\\d$`));
  expect(last?.member).not.toBe(leader);
  expect(b.status?.backups?.map((x) => x.file)).toEqual([last?.file]);
  expect(events('EtcdBackup', 'once')).toEqual(expect.arrayContaining(['BackupStarted', 'BackupSucceeded']));
  // the operator's metric of the last success
  const ts = await env.op.metric('etcd_operator_backup_last_success_timestamp_seconds', 'backup="once"');
  expect(ts).toBe(Date.parse(last!.time) / 1000);
  expect(await env.op.metric('etcd_operator_backup_last_revision', 'backup="once"')).toBe(lastRevision);
  expect(await env.op.metric('etcd_operator_backups_total', 'result="succeeded"')).toBeGreaterThanOrEqual(1);
  // eslint-disable-next-line no-console
  console.log(`one-off backup of revision ${last?.revision} (${last?.size} bytes) from ${last?.member} in ${Date.now() - t0} ms`);
});

test('the cluster is deleted; a new one restored from the backup serves every key at the same revision', async () => {
  const srcMembers = await env.members(env.pods(SRC)[0].clientURL);
  env.api.store.delete('etcdclusters', NS, SRC);
  await waitFor('the source cluster to be gone', () => env.pods(SRC).length === 0, 30_000);

  const t0 = Date.now();
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: DST },
    spec: { size: 3, version: '3.4.34', etcd: { heartbeatInterval: 50, electionTimeout: 500 }, restore: { backupName: 'once' } },
  });
  const ms = await env.converged(DST, 3, undefined, 60_000);
  expect(ms.map((m) => m.name).sort()).toEqual([`${DST}-0`, `${DST}-1`, `${DST}-2`]);
  // a new cluster: new members (IDs), not the old ones
  expect(ms.filter((m) => srcMembers.some((s) => s.id === m.id))).toEqual([]);
  const file = backup('once').status?.lastBackup?.file;
  expect((env.status(DST) as { restoredFrom?: unknown }).restoredFrom).toEqual({ backup: 'once', file, revision: lastRevision, sha256: backup('once').status?.lastBackup?.sha256 });
  // each member was seeded by its init container (etcdctl snapshot restore), then started
  const inits = env.kubelet.events.filter((e) => e.kind === 'started' && e.pod.startsWith(`${NS}/${DST}-`) && (e.detail ?? '').startsWith('init restore:'));
  expect(inits.map((e) => e.pod).sort()).toEqual([`${NS}/${DST}-0`, `${NS}/${DST}-1`, `${NS}/${DST}-2`]);
  expect(inits[0].detail).toMatch(new RegExp(`snapshot restore \\S+/${file} --name=${DST}-\\d --initial-cluster=${DST}-0=http://${DST}-0\\.${DST}\\.${NS}\\.svc:2380,`));

  // every key, through every member (linearizable reads), at the revision of the snapshot
  for (const p of env.pods(DST)) {
    const r = await kv(p.name, DST).range(RangeRequest.fromPartial({ key: Buffer.from('k/'), rangeEnd: Buffer.from('k0') }));
    const got = new Map(r.kvs.map((x) => [x.key.toString(), x.value.toString()]));
    expect({ via: p.name, keys: Object.fromEntries([...got].sort()) }).toEqual({ via: p.name, keys: Object.fromEntries([...written].sort()) });
    expect({ via: p.name, revision: Number(r.header?.revision) }).toEqual({ via: p.name, revision: lastRevision });
  }
  // and it takes writes from there
  const w = await kv(`${DST}-0`, DST).put(PutRequest.fromPartial({ key: Buffer.from('after'), value: Buffer.from('restore') }));
  expect(Number(w.header?.revision)).toBe(lastRevision + 1);
  expect(events('EtcdCluster', DST).filter((r) => r === 'RestoringMember')).toHaveLength(3);
  // eslint-disable-next-line no-console
  console.log(`restored 3 members from ${file} and serving in ${Date.now() - t0} ms`);
});

test('a scheduled EtcdBackup (@every 3s, retention 2): runs on schedule, keeps the 2 newest snapshots, cleans its Jobs', async () => {
  env.api.store.create('etcdbackups', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'every' },
    spec: { clusterName: DST, storage: { persistentVolumeClaim: { claimName: CLAIM } }, schedule: '@every 3s', retention: 2 },
  });
  const onClaim = (): string[] => fs.readdirSync(env.claimDir(CLAIM)).filter((f) => f.startsWith('every-')).sort();
  const b = await waitFor('4 successful runs', () => ((backup('every').status?.succeeded ?? 0) >= 4 ? backup('every') : undefined), 90_000, 200);
  // the claim holds the 2 newest, and the status lists exactly those (the one-off's snapshot is not touched)
  await waitFor('the status to list what is on the claim', () => JSON.stringify(backup('every').status?.backups?.map((x) => x.file)) === JSON.stringify(onClaim()));
  expect(onClaim()).toHaveLength(2);
  expect(onClaim()).toContain(backup('every').status?.lastBackup?.file);
  expect(fs.existsSync(path.join(env.claimDir(CLAIM), backup('once').status?.lastBackup?.file as string))).toBe(true);
  expect(b.status?.lastBackup?.revision).toBeGreaterThanOrEqual(lastRevision + 1);
  // finished Jobs are cleaned up, the last 3 successful kept: after 4 runs or more, 3 complete Jobs at most means the
  // operator deleted one (4 Jobs alone does not: the 4th run's status may be written before any deletion); and
  // deleting the EtcdBackup takes its Jobs along
  const complete = (j: KObj): boolean =>
    ((j.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Complete' && c.status === 'True');
  await waitFor('old Jobs deleted', () => env.api.store.list('jobs', NS).filter((j) => j.metadata.name?.startsWith('every-') && complete(j)).length <= 3);
  env.api.store.delete('etcdbackups', NS, 'every');
  await waitFor('its Jobs garbage-collected', () => env.api.store.list('jobs', NS).every((j) => !j.metadata.name?.startsWith('every-')));
});

test('scheduled defragmentation: every member in turn, followers first, the leader last; the data intact', async () => {
  const leader = (env.status(DST) as { leader?: string }).leader as string;
  const since = env.api.store.list('events', NS).length;
  // the first run is due 2 s after the cluster's creation: now
  env.patchSpec(DST, { defragment: { schedule: '@every 2s' } });
  const st = await waitFor('a defragmentation run to complete', () => {
    const d = (env.status(DST) as { defragment?: { lastCompletionTime?: string } }).defragment;
    return d?.lastCompletionTime ? d : undefined;
  }, 60_000, 100);
  expect(st.lastCompletionTime).toBeDefined();
  const runs = env.api.store
    .list('events', NS)
    .slice(since)
    .filter((e) => e.reason === 'Defragmenting' && (e.involvedObject as { name: string }).name === DST)
    .map((e) => e.message as string);
  const first = runs.slice(0, 3).map((m) => /defragmenting member ([a-z]+-\d+)/.exec(m)?.[1]);
  const followers = [`${DST}-0`, `${DST}-1`, `${DST}-2`].filter((n) => n !== leader);
  expect(first).toEqual([...followers, leader]);
  for (const m of runs.slice(0, 3)) expect(m).toMatch(/its store \d+ → \d+ bytes \(\d+ in use\)$/);
  env.patchSpec(DST, { defragment: null });
  await waitFor('status.defragment gone with the spec', () => (env.status(DST) as { defragment?: unknown }).defragment === undefined);
  // the data is as it was, on every member
  for (const p of env.pods(DST)) {
    const r = await kv(p.name, DST).range(RangeRequest.fromPartial({ key: Buffer.from('k/'), rangeEnd: Buffer.from('k0') }));
    expect({ via: p.name, n: r.kvs.length }).toEqual({ via: p.name, n: written.size });
  }
});

test("the operator's writes fit the CRDs' schemas (nothing pruned, no API warning), and its requests the RBAC it has", () => {
  expect(env.api.warnings).toEqual([]);
  expect(checkRBAC(env.api, NS, LEASE_NS)).toEqual(
    expect.arrayContaining(['batch|jobs|create', 'batch|jobs|delete', 'batch|jobs|list', 'batch|jobs|watch', 'etcd.ts-etcd.io|etcdbackups|get', 'etcd.ts-etcd.io|etcdbackups/status|update', '|pods|list']),
  );
});
