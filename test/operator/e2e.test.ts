/**
 * End to end: the built operator against the test API server, with a kubelet that runs every member Pod as a real
 * process of our etcd (test/support/kube/process-kubelet.ts) on its own 127.0.0.N. Nothing is faked on the etcd side:
 * members bootstrap, join through the members API, replicate, restart and get upgraded as real processes, and both
 * the members and the operator find each other under the cluster's DNS names (`<pod>.<cluster>.<ns>.svc`, through
 * the kubelet's DNS), i.e. the operator runs with its default, in-cluster addressing.
 *
 * One cluster goes through: size 3 (writes through members, reads through others) → 5 through learners (the v3
 * members list shows each new member as a learner, then promoted; writes keep succeeding) → 3 (every key kept, the
 * members list matches the pods) → a member's process killed with SIGKILL (the cluster heals, data intact) → a member
 * pod deleted with its data (the operator replaces the member) → a version change (the members are restarted one at a
 * time, at most one down at any moment, writes keep succeeding).
 */
import { request } from '../support/http';
import { EtcdV3 } from '../../operator/etcd-v3';
import { E2EEnv, REPO, type ClusterStatus, type Member, type PodRun } from './e2e-env';

const NS = 'demo';
const NAME = 'e2e';

jest.setTimeout(60_000);

const env = new E2EEnv(NS);
let failed = false;

beforeAll(async () => {
  await env.start('e2e-operator', [
    '--lease-duration', '3s',
    '--renew-deadline', '2s',
    '--retry-period', '250ms',
    '--resync', '2s',
    '--orphan-grace', '2s',
    '--failed-member-timeout', '20s',
    '--log-level', 'debug',
  ]);
});

afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});

afterAll(() => env.stop(failed, 'e2e'));

// ---- helpers (this file's one cluster) ----

const status = (): ClusterStatus => env.status(NAME);
const patchSpec = (spec: Record<string, unknown>): void => env.patchSpec(NAME, spec);
const pods = (): PodRun[] => env.pods(NAME);
const clientURL = (pod: string): string => env.clientURL(pod);
const members = (base: string): Promise<Member[]> => env.members(base);
const healthy = (base: string, timeoutMs?: number): Promise<boolean | undefined> => env.healthy(base, timeoutMs);
const put = (base: string, key: string, value: string): Promise<void> => env.put(NAME, base, key, value);
const get = (base: string, key: string): Promise<string | undefined> => env.get(base, key);
const putAnywhere = (key: string, value: string, ms?: number): Promise<number> => env.putAnywhere(NAME, key, value, ms);
const converged = (size: number, version?: string, ms?: number): Promise<Member[]> => env.converged(NAME, size, version, ms);
const everyKeyEverywhere = (): Promise<void> => env.everyKeyEverywhere(NAME);

// ---- the cluster's life ----

test('size 3: the operator brings up three real members; writes through one member are read through the others', async () => {
  const t0 = Date.now();
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME },
    spec: { size: 3, version: '3.4.34', repository: REPO, etcd: { heartbeatInterval: 50, electionTimeout: 500 } },
  });
  const ms = await converged(3);
  expect(ms.map((m) => m.name).sort()).toEqual([`${NAME}-0`, `${NAME}-1`, `${NAME}-2`]);
  // the members advertise their in-cluster DNS names, and every pod has its own address
  for (const m of ms) {
    expect(m.peerURLs).toEqual([`http://${m.name}.${NAME}.${NS}.svc:2380`]);
    expect(m.clientURLs).toEqual([`http://${m.name}.${NAME}.${NS}.svc:2379`]);
  }
  expect(new Set(pods().map((p) => p.ip)).size).toBe(3);
  expect(pods().every((p) => /^127\.0\.0\.\d+$/.test(p.ip))).toBe(true);

  const ps = pods();
  for (let i = 0; i < 9; i++) await put(ps[i % 3].clientURL, `e2e/a${i}`, `v${i}`);
  for (let i = 0; i < 9; i++) expect(await get(ps[(i + 1) % 3].clientURL, `e2e/a${i}`)).toBe(`v${i}`);
  // eslint-disable-next-line no-console
  console.log(`size 3 ready and checked in ${Date.now() - t0} ms`);
});

test('size 3 → 5 through learners (seen as learners, then promoted) with writes going on → 3; every key kept', async () => {
  const t0 = Date.now();
  const before = new Set((await members(pods()[0].clientURL)).map((m) => m.id));
  // watch the v3 members list (what the operator reads) and keep writing while the cluster grows
  let stop = false;
  const seen = new Map<string, { name: string; learnerSeen: boolean; voterAfterLearner: boolean }>();
  const watcher = (async () => {
    const etcd = new EtcdV3();
    try {
      for (let i = 0; i < 5000 && !stop; i++) {
        for (const p of pods()) {
          try {
            for (const m of await etcd.members(p.clientURL)) {
              const s0 = seen.get(m.id) ?? { name: m.name, learnerSeen: false, voterAfterLearner: false };
              if (m.name) s0.name = m.name;
              if (m.isLearner) s0.learnerSeen = true;
              else if (s0.learnerSeen) s0.voterAfterLearner = true;
              seen.set(m.id, s0);
            }
            break;
          } catch {
            // a learner answers no MemberList, or the member is starting: ask the next
          }
        }
        await new Promise((r) => setTimeout(r, 30)); // sampling period
      }
    } finally {
      etcd.close();
    }
  })();
  const writeLatencies: number[] = [];
  const writer = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      writeLatencies.push(await putAnywhere(`e2e/grow${i}`, `g${i}`, 5000));
      await new Promise((r) => setTimeout(r, 25)); // pace the writes
    }
  })();
  patchSpec({ size: 5 });
  let five: Member[];
  try {
    five = await converged(5);
  } finally {
    stop = true;
    await Promise.all([watcher, writer]);
  }
  expect(five.filter((m) => before.has(m.id))).toHaveLength(3);
  // each of the two new members was a learner first, then a voter
  const added = [...seen].filter(([id]) => !before.has(id)).map(([, v]) => v);
  expect(added.map((v) => ({ name: v.name, learnerSeen: v.learnerSeen, voterAfterLearner: v.voterAfterLearner })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
    five.filter((m) => !before.has(m.id)).map((m) => ({ name: m.name, learnerSeen: true, voterAfterLearner: true })).sort((a, b) => a.name.localeCompare(b.name)),
  );
  const reasons = env.api.store.list('events', NS).map((e) => e.reason as string);
  expect(reasons.filter((r) => r === 'PromotingMember').length).toBeGreaterThanOrEqual(2);
  // no write failed while the cluster grew (each within its bound), and all are there
  expect(writeLatencies.length).toBeGreaterThan(5);
  const ps = pods();
  for (let i = 0; i < 5; i++) await put(ps[i].clientURL, `e2e/b${i}`, `w${i}`);
  await everyKeyEverywhere();
  const t5 = Date.now();

  patchSpec({ size: 3 });
  const three = await converged(3);
  expect(three.map((m) => m.name).sort()).toEqual(pods().map((p) => p.name).sort());
  expect((status().members ?? []).map((m) => m.name).sort()).toEqual(pods().map((p) => p.name).sort());
  await everyKeyEverywhere();
  // eslint-disable-next-line no-console
  console.log(`3 → 5 through learners in ${t5 - t0} ms (${writeLatencies.length} writes meanwhile, slowest ${Math.max(...writeLatencies)} ms), 5 → 3 in ${Date.now() - t5} ms`);
});

test("killing a member's process (SIGKILL, the leader) leads to a healed cluster with every key", async () => {
  const t0 = Date.now();
  const base = pods()[0].clientURL;
  const leader = JSON.parse((await request(base, 'GET', '/v2/members/leader', { timeoutMs: 2000 })).body) as Member;
  const victim = pods().find((p) => p.name === leader.name);
  expect(victim).toBeDefined();
  const ids = (await members(base)).map((m) => m.id).sort();
  const pid = env.kubelet.signal(NS, victim!.name, 'SIGKILL');
  expect(pid).toBe(victim!.pid);

  // the survivors keep taking writes meanwhile (a write forwarded to the dead leader may wait out its timeout)
  const duringKill = await putAnywhere('e2e/during-kill', 'yes', 10_000);
  const healed = await converged(3);
  const healedIn = Date.now() - t0;
  const after = pods().find((p) => p.name === victim!.name);
  // healed either by the kubelet restarting the container (same member, same data) or by the operator replacing it
  if (after) {
    expect(after.pid).not.toBe(pid);
    expect(after.restartCount).toBeGreaterThanOrEqual(1);
    expect(healed.map((m) => m.id).sort()).toEqual(ids);
  }
  await everyKeyEverywhere();
  await put(clientURL(healed[0].name), 'e2e/after-kill', 'yes');
  expect(await get(clientURL(healed[healed.length - 1].name), 'e2e/after-kill')).toBe('yes');
  // eslint-disable-next-line no-console
  console.log(`healed after SIGKILL of the leader ${victim!.name} in ${healedIn} ms (a write meanwhile took ${duringKill} ms)`);
});

test('a deleted member pod (its emptyDir gone with it) is replaced by a new member; every key kept', async () => {
  const t0 = Date.now();
  const base = pods()[0].clientURL;
  const leader = JSON.parse((await request(base, 'GET', '/v2/members/leader', { timeoutMs: 2000 })).body) as Member;
  const victim = pods().find((p) => p.name !== leader.name)!;
  const before = await members(base);
  const victimId = before.find((m) => m.name === victim.name)!.id;
  env.api.store.delete('pods', NS, victim.name);

  const healed = await converged(3);
  // the lost member was removed from the cluster and a new member (a new pod name, a new ID) took its place
  expect(healed.map((m) => m.id)).not.toContain(victimId);
  expect(healed.map((m) => m.name)).not.toContain(victim.name);
  expect(healed.filter((m) => before.some((b) => b.id === m.id))).toHaveLength(2);
  await everyKeyEverywhere();
  // eslint-disable-next-line no-console
  console.log(`deleted pod ${victim.name} replaced by ${healed.map((m) => m.name).filter((n) => !before.some((b) => b.name === n)).join()} in ${Date.now() - t0} ms`);
});

test('a version change rolls the members one at a time; writes keep succeeding', async () => {
  const t0 = Date.now();
  const ids = (await members(pods()[0].clientURL)).map((m) => m.id).sort();
  const fromEvent = env.kubelet.events.length;

  // sample every member's /health and keep writing while the roll goes on (both bounded by `stop` and a count)
  let stop = false;
  const samples: { at: number; noAnswer: string[]; unhealthy: string[] }[] = [];
  const sampler = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      const ps = pods();
      const h = await Promise.all(ps.map(async (p) => ({ name: p.name, h: await healthy(p.clientURL, 500) })));
      samples.push({ at: Date.now(), noAnswer: h.filter((x) => x.h === undefined).map((x) => x.name), unhealthy: h.filter((x) => x.h !== true).map((x) => x.name) });
      await new Promise((r) => setTimeout(r, 50)); // sampling period
    }
  })();
  const writeLatencies: number[] = [];
  const writer = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      writeLatencies.push(await putAnywhere(`e2e/roll${i}`, `r${i}`, 5000));
      await new Promise((r) => setTimeout(r, 25)); // pace the writes
    }
  })();

  patchSpec({ version: '3.4.35' });
  try {
    await converged(3, '3.4.35');
  } finally {
    stop = true;
    await Promise.all([sampler, writer]);
  }

  // the same members, upgraded in place (the kubelet restarted each container on its volume)
  expect((await members(pods()[0].clientURL)).map((m) => m.id).sort()).toEqual(ids);
  expect(pods().every((p) => p.restartCount >= 1)).toBe(true);

  // one at a time: each member is back (ready on the new image) before the next one is stopped
  const ev = env.kubelet.events.slice(fromEvent);
  const stops = ev.filter((e) => e.kind === 'stopping');
  expect(stops.map((e) => e.pod).sort()).toEqual(pods().map((p) => `${NS}/${p.name}`).sort());
  for (let i = 0; i < stops.length; i++) {
    const back = ev.find((e) => e.kind === 'ready' && e.pod === stops[i].pod && e.image === `${REPO}:3.4.35` && e.at >= stops[i].at);
    expect(back).toBeDefined();
    if (i + 1 < stops.length) expect(back!.at).toBeLessThanOrEqual(stops[i + 1].at);
  }
  // each container stopped for the upgrade exited by itself on SIGTERM (the kubelet never had to SIGKILL it)
  for (const st of stops) {
    const exit = ev.find((e) => e.kind === 'exited' && e.pod === st.pod && e.at >= st.at);
    expect({ pod: st.pod, exit: exit?.detail }).toEqual({ pod: st.pod, exit: 'code 0 signal null' });
  }
  // at most one member down at any sampled moment
  expect(samples.length).toBeGreaterThan(10);
  expect(Math.max(...samples.map((s) => s.noAnswer.length))).toBeLessThanOrEqual(1);
  const maxUnhealthy = Math.max(...samples.map((s) => s.unhealthy.length));
  if (maxUnhealthy > 1) {
    // with a member restarting, another member may briefly say unhealthy (e.g. while a leader is being elected)
    const t = samples[0].at;
    // eslint-disable-next-line no-console
    console.log(`samples with more than one unhealthy: ${JSON.stringify(samples.filter((s) => s.unhealthy.length > 1).map((s) => ({ ...s, at: s.at - t })))}; stops at ${JSON.stringify(stops.map((e) => e.at - t))}`);
  }

  // every write of the roll succeeded (each within its 5 s bound), and all of them are there
  expect(writeLatencies.length).toBeGreaterThan(10);
  await everyKeyEverywhere();
  // eslint-disable-next-line no-console
  console.log(
    `rolled 3 members in ${Date.now() - t0} ms; ${samples.length} health samples (max ${maxUnhealthy} not healthy at once, ` +
      `max ${Math.max(...samples.map((s) => s.noAnswer.length))} not answering); ${writeLatencies.length} writes, slowest ${Math.max(...writeLatencies)} ms`,
  );
});

test("the operator's writes fit the CRD's schema (nothing pruned, no API warning)", () => {
  expect(env.api.warnings).toEqual([]);
});
