/**
 * A data dir written by the release before log entries had an envelope (test/fixtures/v0-data-dir, made by its
 * make.sh with that release's build) starts with this build and serves every key it had: from its snapshot and the
 * WAL after it, and from the WAL alone (every kind of entry that release wrote replays). Then this build's own
 * entries and snapshots go on top, and a restart serves everything again.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunningEtcd, freePort, spawnOurEtcd } from '../support/real-etcd';
import { request } from '../support/http';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'v0-data-dir');
interface Node {
  key?: string;
  value?: string;
  dir?: boolean;
  ttl?: number;
  expiration?: string;
  nodes?: Node[];
  modifiedIndex?: number;
  createdIndex?: number;
}

let root: string;
const running = new Set<RunningEtcd>();
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'etcd-upgrade-'));
});
afterAll(async () => {
  await Promise.all([...running].map((e) => e.stop()));
  rmSync(root, { recursive: true, force: true });
});

/** The fixture's data dir, copied (the test writes to it). */
function copyFixture(name: string): string {
  const dir = path.join(root, name);
  cpSync(path.join(FIXTURE, 'data'), dir, { recursive: true });
  return dir;
}

async function start(dataDir: string, extra: string[] = []): Promise<RunningEtcd> {
  const clientURL = `http://127.0.0.1:${await freePort()}`;
  const peerURL = `http://127.0.0.1:${await freePort()}`;
  const e = await spawnOurEtcd(
    ['--name', 'fixture', '--data-dir', dataDir, '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL, '--listen-peer-urls', peerURL,
      '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `fixture=${peerURL}`, '--initial-cluster-token', 'fixture-token', ...extra],
    { clientURL, peerURL, dataDir },
  );
  running.add(e);
  return e;
}

async function stop(e: RunningEtcd): Promise<void> {
  expect(await e.signal('SIGTERM')).toBe(0);
  running.delete(e);
}

/** Every key of a listing with what must survive (the TTL left changes with time; its expiration does not). */
function keys(n: Node, out = new Map<string, Node>()): Map<string, Node> {
  for (const c of n.nodes ?? []) {
    out.set(c.key!, { key: c.key, value: c.value, dir: c.dir, expiration: c.expiration, modifiedIndex: c.modifiedIndex, createdIndex: c.createdIndex });
    keys(c, out);
  }
  return out;
}

async function listing(e: RunningEtcd): Promise<Map<string, Node>> {
  const r = await request(e.clientURL, 'GET', '/v2/keys/?recursive=true&sorted=true');
  expect(r.status).toBe(200);
  return keys((JSON.parse(r.body) as { node: Node }).node);
}

const expected = keys((JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as { node: Node }).node);

async function expectEveryKey(e: RunningEtcd, more: Map<string, Node> = new Map()): Promise<void> {
  const want = new Map([...expected, ...more]);
  expect(await listing(e)).toEqual(want);
  for (const [key, n] of want) {
    if (n.dir) continue;
    const r = await request(e.clientURL, 'GET', `/v2/keys${key}`);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { node: Node }).node).toMatchObject({ key, value: n.value, modifiedIndex: n.modifiedIndex });
  }
}

test('the fixture has what the test relies on', () => {
  expect(expected.size).toBeGreaterThan(10);
  expect(expected.get('/k1')?.value).toBe('swapped');
  expect(expected.has('/k2')).toBe(false);
});

test('a data dir of the previous release (snapshot + WAL) starts and serves every key; new writes, snapshots and restarts go on top', async () => {
  const dir = copyFixture('with-snapshot');
  let e = await start(dir, ['--snapshot-count', '10']);
  await expectEveryKey(e);
  // New entries (in the envelope) after the old ones, and enough of them for a snapshot in the new container.
  const more = new Map<string, Node>();
  for (let i = 0; i < 15; i++) {
    const r = await request(e.clientURL, 'PUT', `/v2/keys/new${i}`, { form: `value=n${i}` });
    expect(r.status).toBe(201);
    const n = (JSON.parse(r.body) as { node: Node }).node;
    expect(n.modifiedIndex).toBeGreaterThan(18); // after every index of the old data
    more.set(`/new${i}`, { key: `/new${i}`, value: `n${i}`, modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
  }
  await stop(e);
  e = await start(dir, ['--snapshot-count', '10']);
  // It restarted from a snapshot this build wrote.
  expect(Number(/snapshot=(\d+)/.exec(e.output())?.[1])).toBeGreaterThan(30);
  await expectEveryKey(e, more);
  await stop(e);
});

test('the previous release\'s WAL alone (every kind of entry it wrote) replays and serves every key', async () => {
  const dir = copyFixture('wal-only');
  rmSync(path.join(dir, 'member', 'snap'), { recursive: true });
  const e = await start(dir);
  expect(e.output()).toMatch(/snapshot=0\b/);
  await expectEveryKey(e);
  await stop(e);
});
