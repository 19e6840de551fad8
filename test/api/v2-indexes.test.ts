/**
 * v2 indexes as etcd's, side by side with Debian's etcd: etcd keeps membership and the cluster version in its v2
 * store (/0/members/<id>/raftAttributes at each member's conf change, /0/members/<id>/attributes at each publish,
 * /0/version when the leader sets the cluster version), so a fresh member's X-Etcd-Index is not 0 and its first
 * write does not get index 1. Clients rely on the absolute numbers (`etcdctl watch --after-index=1 foo`).
 * Both servers are waited for on the log lines etcd's own e2e suite waits for.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually } from '../support/cluster';
import { request } from '../support/http';
import { RunningEtcd, freePort, spawnOurEtcd, spawnRealEtcd } from '../support/real-etcd';

type Spawn = typeof spawnOurEtcd;
let root: string;
const running = new Set<RunningEtcd>();
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'v2-indexes-'));
});
afterAll(async () => {
  await Promise.all([...running].map((e) => e.stop()));
  rmSync(root, { recursive: true, force: true });
});

interface Slot {
  name: string;
  clientURL: string;
  peerURL: string;
  dataDir: string;
}

async function slots(kind: string, n: number): Promise<Slot[]> {
  const out: Slot[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ name: `m${i}`, clientURL: `http://127.0.0.1:${await freePort()}`, peerURL: `http://127.0.0.1:${await freePort()}`, dataDir: path.join(root, `${kind}-${n}-${i}`) });
  }
  return out;
}

async function launch(spawn: Spawn, s: Slot, all: Slot[]): Promise<RunningEtcd> {
  const e = await spawn(
    ['--name', s.name, '--data-dir', s.dataDir, '--enable-v2=true', '--listen-client-urls', s.clientURL, '--advertise-client-urls', s.clientURL,
      '--listen-peer-urls', s.peerURL, '--initial-advertise-peer-urls', s.peerURL, '--initial-cluster-token', 'indexes',
      '--initial-cluster', all.map((x) => `${x.name}=${x.peerURL}`).join(','), '--initial-cluster-state', 'new'],
    s,
    { wait: false },
  );
  running.add(e);
  return e;
}

/** etcd's e2e readiness: this member published, and (on some member) the cluster version was set. */
async function settled(members: RunningEtcd[]): Promise<void> {
  await eventually('every member to publish and the cluster version to be set', async () => {
    const outs = members.map((m) => m.output());
    const ok = outs.every((o) => /published/.test(o) && /enabled capabilities for version 3\.4/.test(o)) && outs.some((o) => /set (the )?initial cluster version/.test(o));
    return ok || undefined;
  }, 30000);
}

async function index(url: string): Promise<number> {
  const r = await request(url, 'GET', '/v2/keys/');
  expect(r.status).toBe(200);
  return Number(r.headers['x-etcd-index']);
}

/** What a client sees of the indexes: every member's X-Etcd-Index, the first write's index, a watch from index 1. */
async function observe(members: RunningEtcd[]): Promise<{ before: number[]; write: number; watched: unknown }> {
  const before = [];
  for (const m of members) before.push(await index(m.clientURL));
  const w = await request(members[0].clientURL, 'PUT', '/v2/keys/foo', { form: 'value=bar' });
  const write = (JSON.parse(w.body) as { node: { modifiedIndex: number } }).node.modifiedIndex;
  const watched = JSON.parse((await request(members[members.length - 1].clientURL, 'GET', '/v2/keys/foo?wait=true&waitIndex=1')).body) as unknown;
  return { before, write, watched };
}

async function run(spawn: Spawn, kind: string, n: number): Promise<{ fresh: Awaited<ReturnType<typeof observe>>; restarted: number[] }> {
  const ss = await slots(kind, n);
  let members = await Promise.all(ss.map((s) => launch(spawn, s, ss)));
  await settled(members);
  const fresh = await observe(members);
  // A restart: etcd publishes again (one more index per member); the cluster version stays.
  await Promise.all(members.map(async (m) => {
    await m.signal('SIGTERM');
    running.delete(m);
  }));
  members = await Promise.all(ss.map((s) => launch(spawn, s, ss)));
  await eventually('every member to publish again', async () => (members.every((m) => /published/.test(m.output())) ? true : undefined), 30000);
  await eventually('the same index on every member', async () => {
    const got = await Promise.all(members.map((m) => index(m.clientURL)));
    return got.every((g) => g === got[0]) ? true : undefined;
  });
  const restarted = await Promise.all(members.map((m) => index(m.clientURL)));
  await Promise.all(members.map(async (m) => {
    await m.stop();
    running.delete(m);
  }));
  return { fresh, restarted };
}

test('a fresh single member: X-Etcd-Index 3, the first write 4, watch from index 1 sees it; after a restart, as etcd', async () => {
  const real = await run(spawnRealEtcd, 'real', 1);
  const ours = await run(spawnOurEtcd, 'ours', 1);
  expect(real.fresh.before).toEqual([3]);
  expect(real.fresh.write).toBe(4);
  expect(ours).toEqual(real);
});

test('a fresh 3-member cluster: every member answers the same indexes as etcd, fresh and after a restart', async () => {
  const real = await run(spawnRealEtcd, 'real', 3);
  const ours = await run(spawnOurEtcd, 'ours', 3);
  expect(ours).toEqual(real);
});
