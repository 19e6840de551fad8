/**
 * Snapshots of the built server are encoded over several turns of the event loop while it goes on applying writes
 * (issue 19). Under a concurrent load of fresh keys, overwrites and deletes with a low --snapshot-count, the newest
 * snapshot on disk must hold exactly the v2 store at its index — every write at or before it, none after — and a
 * restart from it and the WAL must give the store the server had.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { PART_MEMBERSHIP, PART_V2STORE, PART_V3, decodeSnapshotData } from '../../server/etcdserver/snapshot-data';
import { Snapshotter } from '../../server/snap/snapshotter';
import { StoreNode } from '../../server/store/node';
import { decodeStore } from '../../server/store/snapshot';
import { RunningEtcd, startOurEtcd } from '../support/real-etcd';
import { readLoad, request } from './load';

let root: string;
const running = new Set<RunningEtcd>();

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'etcd-snapshot-turns-'));
});
afterAll(async () => {
  await Promise.all([...running].map((e) => e.stop()));
  rmSync(root, { recursive: true, force: true });
});

/** One acknowledged write: the key under /load, its value after the write (undefined: deleted), at store index. */
interface Write {
  key: string;
  value: string | undefined;
  index: number;
}

/**
 * `clients` clients: most writes are fresh keys (the store grows, so later snapshots take several slices), the
 * others overwrite or delete one of a few hot keys (nodes that change while a snapshot is encoded).
 */
async function load(url: string, writes: number, clients: number): Promise<Write[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const acked: Write[] = [];
  let next = 0;
  const client = async (): Promise<void> => {
    while (next < writes) {
      const n = next++;
      const hot = n % 5 === 0;
      const key = hot ? `load/hot/${n % 37}` : `load/fresh/${n}`;
      const del = hot && n % 3 === 0;
      const a = await request(`${url}/v2/keys/${key}`, del ? 'DELETE' : 'PUT', del ? undefined : `value=v${n}`, agent);
      if (del && a.status === 404) continue;
      if (a.status >= 300) throw new Error(`${key}: ${a.status} ${a.body}`);
      const node = (JSON.parse(a.body) as { node: { modifiedIndex: number } }).node;
      acked.push({ key, value: del ? undefined : `v${n}`, index: node.modifiedIndex });
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    agent.destroy();
  }
  return acked;
}

/** The keys under /load in a decoded store, with value and modifiedIndex. */
function keysOf(root: StoreNode): Map<string, string> {
  const out = new Map<string, string>();
  const stack: { n: StoreNode; p: string }[] = [{ n: root, p: '' }];
  while (stack.length > 0) {
    const { n, p } = stack.pop()!;
    if (!n.isDir) out.set(p.slice(1), `${n.value}@${n.modifiedIndex}`);
    else for (const c of n.children!.values()) stack.push({ n: c, p: `${p}/${c.name}` });
  }
  for (const k of out.keys()) if (!k.startsWith('load/')) out.delete(k);
  return out;
}

/** What the acknowledged writes made of the keys by store index `at`. */
function stateAt(writes: Write[], at: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const w of [...writes].sort((a, b) => a.index - b.index)) {
    if (w.index > at) break;
    if (w.value === undefined) out.delete(w.key);
    else out.set(w.key, `${w.value}@${w.index}`);
  }
  return out;
}

test('the newest snapshot is the store at its index, with no write from after it, and a restart from it gives the same store', async () => {
  const dir = path.join(root, 'data');
  const e = await startOurEtcd(dir, ['--snapshot-count', '3000']);
  running.add(e);
  const writes = await load(e.clientURL, 24000, 32);
  const before = await readLoad(e.clientURL);
  const snap = await new Snapshotter(path.join(dir, 'member', 'snap')).loadNewest();
  expect(snap).toBeDefined();
  // A snapshot of a large store (many slices of encoding), taken well into the load.
  expect(snap!.metadata.index).toBeGreaterThan(15000);
  const store = decodeStore(decodeSnapshotData(snap!.data, new Set([PART_MEMBERSHIP, PART_V2STORE, PART_V3])).get(PART_V2STORE)!);
  const inSnapshot = keysOf(store.root);
  expect(inSnapshot.size).toBeGreaterThan(10000);
  // Writes acknowledged after the snapshot's index exist (the load went on past it), and none is in it.
  expect(writes.some((w) => w.index > store.index)).toBe(true);
  const want = stateAt(writes, store.index);
  expect([...inSnapshot].filter(([k, v]) => want.get(k) !== v)).toEqual([]);
  expect([...want].filter(([k]) => !inSnapshot.has(k))).toEqual([]);

  await e.stop();
  running.delete(e);
  const again = await startOurEtcd(dir, ['--snapshot-count', '3000'], { client: Number(new URL(e.clientURL).port), peer: Number(new URL(e.peerURL).port) });
  running.add(again);
  const after = await readLoad(again.clientURL);
  // (The member publishes its attributes again as it starts, as etcd does: a write to the store's hidden /0.)
  expect(after.etcdIndex).toBeGreaterThanOrEqual(before.etcdIndex);
  expect(after.nodes).toEqual(before.nodes);
  // And the live store had every acknowledged write.
  const last = stateAt(writes, Infinity);
  expect(new Map([...after.nodes].map(([k, a]) => [k, `${a.value}@${a.modifiedIndex}`]))).toEqual(last);
}, 180_000);
