/**
 * End to end, a cluster with persistent volumes (spec.storage): the built operator, the test API server and real
 * member processes (test/operator/e2e-env.ts). A member's data lives on its PersistentVolumeClaim (a directory of
 * the process kubelet that outlives the member's pods), so losing pods — 2 of 3, or all of them, or every node shut
 * down under them — must bring the same members back on their own data: same names, same member IDs, every key,
 * and no membership change on the way (none could commit without a quorum anyway).
 */
import { E2EEnv, type Member } from './e2e-env';

const NS = 'vol';
const NAME = 'db';

jest.setTimeout(90_000);

const env = new E2EEnv(NS);
let failed = false;

beforeAll(async () => {
  await env.start('e2e-volumes-operator', ['--resync', '2s', '--orphan-grace', '2s', '--failed-member-timeout', '20s', '--log-level', 'debug']);
});
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});
afterAll(() => env.stop(failed, 'e2e-volumes'));

const events = (): { reason: string; message: string }[] => env.api.store.list('events', NS).map((e) => ({ reason: e.reason as string, message: e.message as string }));
const ids = (ms: Member[]): string[] => ms.map((m) => `${m.name}=${m.id}`).sort();
let original: string[] = [];
let n = 0;

/** Writes `count` more keys through the members in turn. */
async function write(count: number): Promise<void> {
  const ps = env.pods(NAME);
  for (let i = 0; i < count; i++, n++) await env.put(NAME, ps[i % ps.length].clientURL, `vol/k${n}`, `v${n}`);
}

/** Back: the same three members (names and IDs) on their data, every key through every member, and writable. */
async function backWithEverything(since: number): Promise<void> {
  const ms = await env.converged(NAME, 3, undefined, 60_000);
  expect(ids(ms)).toEqual(original);
  await env.everyKeyEverywhere(NAME);
  await write(3);
  await env.everyKeyEverywhere(NAME);
  // no membership change on the way, only pods given back
  const reasons = events().slice(since).map((e) => e.reason);
  expect(reasons).toContain('RecreatingMemberPod');
  expect(reasons.filter((r) => /^(AddingMember|RemovingMember|ReplacingFailedMember|RemovingForeignMember|Bootstrapping)$/.test(r))).toEqual([]);
}

test('a 3-member cluster with persistent volumes comes up; keys written', async () => {
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME },
    spec: {
      size: 3,
      version: '3.4.34',
      storage: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } },
      etcd: { heartbeatInterval: 50, electionTimeout: 500 },
    },
  });
  original = ids(await env.converged(NAME, 3));
  expect(env.api.store.list('persistentvolumeclaims', NS).map((p) => p.metadata.name).sort()).toEqual([`${NAME}-0-data`, `${NAME}-1-data`, `${NAME}-2-data`]);
  await write(12);
  await env.everyKeyEverywhere(NAME);
});

test('2 of 3 pods deleted (quorum lost): both come back on their volumes, same members, every key', async () => {
  const since = events().length;
  const t0 = Date.now();
  for (const p of env.pods(NAME).slice(1)) env.api.store.delete('pods', NS, p.name);
  await backWithEverything(since);
  // eslint-disable-next-line no-console
  console.log(`2 of 3 pods deleted: back in ${Date.now() - t0} ms`);
});

test('every pod deleted: the cluster comes back with all its keys (not AllMembersLost)', async () => {
  const since = events().length;
  const t0 = Date.now();
  for (const p of env.pods(NAME)) env.api.store.delete('pods', NS, p.name);
  await backWithEverything(since);
  expect(events().slice(since).map((e) => e.reason)).not.toContain('AllMembersLost');
  // eslint-disable-next-line no-console
  console.log(`all 3 pods deleted: back in ${Date.now() - t0} ms with ${env.keys(NAME).size} keys`);
});

test('every node shut down gracefully (pods Succeeded, one Failed): each pod is replaced on its volume', async () => {
  const since = events().length;
  const t0 = Date.now();
  const ps = env.pods(NAME);
  await Promise.all(ps.map((p, i) => env.kubelet.end(NS, p.name, i === 0 ? 'Failed' : 'Succeeded')));
  await backWithEverything(since);
  const recycled = events().slice(since).filter((e) => e.reason === 'RecyclingMemberPod').map((e) => e.message);
  expect(recycled).toHaveLength(3);
  // the volumes are the same claims as before, never deleted
  expect(env.api.store.list('persistentvolumeclaims', NS).map((p) => p.metadata.name).sort()).toEqual([`${NAME}-0-data`, `${NAME}-1-data`, `${NAME}-2-data`]);
  // eslint-disable-next-line no-console
  console.log(`all 3 pods ended: back in ${Date.now() - t0} ms`);
});

test("the operator's writes fit the CRD's schema (nothing pruned, no API warning)", () => {
  expect(env.api.warnings).toEqual([]);
});
