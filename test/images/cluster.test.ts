/**
 * A 3-member cluster of etcd containers on one network, members finding each other by network alias: writes
 * through one member are read through the others, the leader is killed (SIGKILL), the two left elect a new one and
 * keep serving, and the killed member, restarted, catches up.
 *
 * Runs only once the server takes a multi-member --initial-cluster: while the compiled server still refuses one
 * ("a cluster of more than one member needs the peer transport"), the cluster tests are skipped with a notice.
 * The network-alias check below runs regardless.
 */
import './engine-env';
import * as fs from 'fs';
import * as path from 'path';
import { GenericContainer, Network, StartedNetwork, StartedTestContainer, Wait } from 'testcontainers';
import { buildTestImage, buildTestInputs, clusterMemberFlags, podman, removeImages, REPO, RUN_ID, singleMemberFlags, startContainer, testRef, TestInputs } from './support';

jest.setTimeout(120_000);

const REFUSAL = 'a cluster of more than one member needs the peer transport';
const serverMain = path.join(REPO, 'dist/server/main.js');
/** True while the compiled server refuses multi-member clusters (the peer transport not yet landed). */
const clusteringRefused = fs.existsSync(serverMain) && fs.readFileSync(serverMain, 'utf8').includes(REFUSAL);
if (clusteringRefused) console.warn(`cluster.test.ts: SKIPPING the 3-member cluster tests: dist/server/main.js still says "${REFUSAL}"`);

const IMAGE = testRef('etcd-cluster');
let inputs: TestInputs | undefined;
let network: StartedNetwork | undefined;

beforeAll(async () => {
  inputs = await buildTestInputs();
  await buildTestImage('etcd', IMAGE, inputs);
  network = await new Network().start();
}, 300_000);

afterAll(async () => {
  await network?.stop().catch(() => undefined);
  await removeImages([IMAGE, ...(inputs ? [inputs.app, inputs.base] : [])]);
}, 120_000);

/**
 * A member's client URL: its address on the test network (rootful podman routes the host to it), which does not
 * depend on the port forwarding that podman rewrites when another container on the network is killed.
 */
const urlOf = (c: StartedTestContainer): string => `http://${c.getIpAddress(network!.getName())}:2379`;
/** Every request bounded: a member that does not answer must fail the check, not hang the test. */
const fetch = (url: string, init: RequestInit = {}): Promise<Response> => globalThis.fetch(url, { ...init, signal: AbortSignal.timeout(5000) });

function member(alias: string, command: string[]): GenericContainer {
  return new GenericContainer(IMAGE)
    .withNetwork(network!)
    .withNetworkAliases(alias)
    .withCommand(command)
    .withExposedPorts(2379, 2380)
    .withWaitStrategy(Wait.forHttp('/health', 2379).forStatusCode(200))
    .withStartupTimeout(90_000);
}

test('containers on the network reach each other by alias', async () => {
  const a = await startContainer(member(`alias-a-${RUN_ID}`, singleMemberFlags('a')));
  try {
    const b = await startContainer(member(`alias-b-${RUN_ID}`, singleMemberFlags('b')));
    try {
      const res = await a.exec(['node', '-e', `fetch('http://alias-b-${RUN_ID}:2379/health').then(r=>r.text()).then(t=>{console.log(t);process.exit(0)},e=>{console.error(e);process.exit(1)})`]);
      expect(res.exitCode).toBe(0);
      expect(JSON.parse(res.output.trim())).toEqual({ health: 'true' });
    } finally {
      await b.stop({ timeout: 10_000 });
    }
  } finally {
    await a.stop({ timeout: 10_000 });
  }
});

(clusteringRefused ? describe.skip : describe)('a 3-member cluster of containers', () => {
  const names = ['etcd-0', 'etcd-1', 'etcd-2'].map((n) => `${n}-${RUN_ID}`);
  let members: StartedTestContainer[] = [];

  beforeAll(async () => {
    const token = `cluster-${RUN_ID}`;
    // All three start together: a member is healthy only once a quorum has elected a leader.
    const started = await Promise.allSettled(names.map((n) => startContainer(member(n, clusterMemberFlags(n, names, token)))));
    members = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }, 180_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.stop({ timeout: 10_000 }).catch(() => undefined)));
  }, 60_000);

  const put = async (m: StartedTestContainer, key: string, value: string): Promise<Response> =>
    fetch(`${urlOf(m)}/v2/keys/${key}`, { method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `value=${value}` });
  const get = async (m: StartedTestContainer, key: string): Promise<{ status: number; value?: string }> => {
    const r = await fetch(`${urlOf(m)}/v2/keys/${key}?quorum=true`);
    const body = (await r.json()) as { node?: { value?: string } };
    return { status: r.status, value: body.node?.value };
  };
  const leaderIndex = async (ms: StartedTestContainer[]): Promise<number> => {
    for (let i = 0; i < ms.length; i++) if ((await fetch(`${urlOf(ms[i])}/v2/stats/leader`).catch(() => undefined))?.status === 200) return i;
    return -1;
  };
  async function eventually<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const v = await f();
        if (v !== undefined) return v;
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
  }

  test('the members list shows all three, and a write through one is read through the others', async () => {
    const list = (await (await fetch(`${urlOf(members[0])}/v2/members`)).json()) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] };
    expect(list.members.map((m) => m.name).sort()).toEqual([...names].sort());
    for (const m of list.members) expect(m.peerURLs).toEqual([`http://${m.name}:2380`]);
    expect((await put(members[0], 'greeting', 'hello')).status).toBe(201);
    for (const m of members) expect(await get(m, 'greeting')).toEqual({ status: 200, value: 'hello' });
  });

  test('the leader killed: the two left elect another, keep serving, and the killed one catches up on restart', async () => {
    const li = await eventually('a leader', async () => ((await leaderIndex(members)) >= 0 ? leaderIndex(members) : undefined));
    const killed = members[li];
    const rest = members.filter((_, i) => i !== li);
    await podman(['kill', '--signal', 'KILL', killed.getId()], 30_000);

    // A new leader among the two, and writes go through either of them.
    try {
      await eventually('a new leader among the survivors', async () => ((await leaderIndex(rest)) >= 0 ? true : undefined));
    } catch (err) {
      // What each survivor says from inside its container, and its last log lines: enough to tell a member that
      // cannot elect from a port mapping that stopped answering.
      const views = await Promise.all(
        rest.map(async (m) => {
          const inside = await podman(['exec', m.getId(), 'node', '-e', "fetch('http://127.0.0.1:2379/v2/stats/self').then(r=>r.text()).then(console.log,e=>console.log(String(e)))"], 20_000).then((r) => r.stdout, (e: Error) => e.message);
          const logs = await podman(['logs', '--tail', '25', m.getId()], 20_000).then((r) => r.stdout + r.stderr, (e: Error) => e.message);
          return `${m.getId().slice(0, 12)} inside: ${inside.trim()}\n${logs}`;
        }),
      );
      throw new Error(`${(err as Error).message}\n${views.join('\n---\n')}`);
    }
    await eventually('a write after the failover', async () => ((await put(rest[0], 'after', 'failover')).status === 201 ? true : undefined));
    expect(await get(rest[1], 'after')).toEqual({ status: 200, value: 'failover' });
    for (const m of rest) expect(await (await fetch(`${urlOf(m)}/health`)).json()).toEqual({ health: 'true' });

    // The killed member comes back from its data directory and catches up.
    await killed.restart({ timeout: 10_000 });
    await eventually('the restarted member to catch up', async () => {
      const r = await fetch(`${urlOf(killed)}/v2/keys/after`).catch(() => undefined);
      if (r?.status !== 200) return undefined;
      return ((await r.json()) as { node: { value: string } }).node.value === 'failover' ? true : undefined;
    }, 60_000);
  });
});
