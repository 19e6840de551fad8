/**
 * The MVCC store's maintenance: defragmentation (space given back, data intact, served while it runs), the backend
 * hash (etcd's Maintenance.Hash), database sizes, snapshots and the meta values of other parts (alarms).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MvccStore } from '../../server/mvcc/store';

const b = (s: string) => Buffer.from(s);
let dir: string;
let s: MvccStore;
let index = 0;

function put(st: MvccStore, key: string, value: string | Buffer): void {
  const t = st.write(++index);
  t.put(b(key), typeof value === 'string' ? b(value) : value, 0n);
  t.end();
}

function del(st: MvccStore, key: string, end?: string): void {
  const t = st.write(++index);
  t.deleteRange(b(key), end === undefined ? undefined : b(end));
  t.end();
}

const all = (st: MvccStore, rev?: number) => st.range(b(''), Buffer.alloc(0), { rev }).kvs.map((kv) => `${kv.key}=${kv.value.length}@${kv.modRevision}`);

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mvcc-maint-'));
  s = MvccStore.open(dir, { batchInterval: 5 });
  index = 0;
});

afterEach(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const big = Buffer.alloc(2000, 7);

test('after deletes and a compaction, defrag gives the free pages back to the file system and keeps every version', async () => {
  for (let i = 0; i < 2000; i++) put(s, `k${String(i).padStart(5, '0')}`, big);
  del(s, 'k00100', 'k01999');
  put(s, 'after', 'x');
  await s.compact(s.rev() - 1, ++index);
  s.flushSync();
  const before = { size: s.dbSize(), inUse: s.dbSizeInUse(), file: statSync(path.join(dir, 'data.mdb')).size, keys: all(s), hash: await s.hashKV(0) };
  expect(before.size).toBe(before.file);
  expect(before.inUse).toBeLessThan(before.size / 4);
  await s.defrag();
  const file = statSync(path.join(dir, 'data.mdb')).size;
  expect(s.dbSize()).toBe(file);
  expect(file).toBeLessThan(before.size / 4);
  expect(s.dbSizeInUse()).toBeLessThanOrEqual(s.dbSize());
  expect(all(s)).toEqual(before.keys);
  expect(await s.hashKV(0)).toEqual(before.hash);
  // It goes on from there, and the defragmented file is what a restart opens.
  put(s, 'later', 'y');
  const rev = s.rev();
  await s.close();
  s = MvccStore.open(dir, { batchInterval: 5 });
  expect(s.rev()).toBe(rev);
  expect(all(s)).toEqual([...before.keys, `later=1@${rev}`].sort());
  expect(readdirSync(dir).filter((n) => n.startsWith('defrag.'))).toEqual([]);
});

test('writes and reads go on while a defragmentation runs; batches committed meanwhile reach the copy', async () => {
  // Enough keys for the copy to take several chunks, each a turn of the event loop.
  for (let i = 0; i < 30000; i++) put(s, `a${String(i).padStart(5, '0')}`, 'v');
  let done = false;
  const running = s.defrag().then(() => (done = true));
  // Once the copy is being made (its directory is there):
  while (!readdirSync(dir).some((n) => n.startsWith('defrag.'))) await new Promise((r) => setImmediate(r));
  // Applied while the copy is made: readable at once from the write buffer.
  put(s, 'during1', 'x');
  expect(all(s)).toContain(`during1=1@${s.rev()}`);
  // A read at a past revision commits the buffer synchronously, into the environment being copied.
  expect(all(s, s.rev() - 1)).toHaveLength(30000);
  put(s, 'during2', 'y');
  expect(done).toBe(false);
  await running;
  put(s, 'after', 'z');
  const want = all(s);
  expect(want).toHaveLength(30003);
  const rev = s.rev();
  const ci = s.consistentIndex();
  await s.close();
  s = MvccStore.open(dir, { batchInterval: 5 });
  expect([s.rev(), s.consistentIndex()]).toEqual([rev, ci]);
  expect(all(s)).toEqual(want);
});

test('two defragmentations in a row, and hashes and snapshots waiting for one, all complete', async () => {
  for (let i = 0; i < 500; i++) put(s, `k${i}`, big);
  const first = s.defrag();
  const hash = s.hashKV(0);
  const second = s.defrag();
  const file = path.join(dir, 'snap.db');
  const snap = s.snapshot(file);
  await Promise.all([first, second, snap]);
  expect((await hash).rev).toBe(501);
  expect(statSync(file).size % 4096).toBe(0);
});

test('hash: equal on stores that applied the same writes at other indexes, different when data differs', async () => {
  const other = MvccStore.open(path.join(dir, 'other'), { batchInterval: 5 });
  try {
    for (const st of [s, other]) {
      put(st, 'a', '1');
      put(st, 'b', '2');
      del(st, 'a');
      index += 10; // another member's log has other entries between
    }
    await s.compact(3, ++index);
    await other.compact(3, ++index + 5);
    const h = await s.hash();
    expect(h.rev).toBe(4);
    expect(await other.hash()).toEqual(h);
    await s.defrag();
    expect(await s.hash()).toEqual(h); // the same data, however it is laid out
    put(other, 'c', '3');
    expect((await other.hash()).hash).not.toBe(h.hash);
  } finally {
    await other.close();
  }
});

test('meta values are committed with their entry, carried by dumps and kept by defragmentation', async () => {
  put(s, 'x', '1');
  s.putMetaValue('alarms', b('A'), ++index);
  expect(s.consistentIndex()).toBe(index);
  s.flushSync();
  expect(s.readMetaValue('alarms')).toEqual(b('A'));
  expect(() => s.putMetaValue('consistentIndex', b('x'), ++index)).toThrow(/store's own/);
  const other = MvccStore.open(path.join(dir, 'other'));
  try {
    other.loadSync(s.dumpSync());
    expect(other.readMetaValue('alarms')).toEqual(b('A'));
  } finally {
    await other.close();
  }
  await s.defrag();
  expect(s.readMetaValue('alarms')).toEqual(b('A'));
});

test('a snapshot file is the whole database, pages up to the last used one', async () => {
  for (let i = 0; i < 100; i++) put(s, `k${i}`, 'v');
  const file = path.join(dir, 'snap.db');
  await s.snapshot(file);
  const size = statSync(file).size;
  expect(size % 4096).toBe(0);
  expect(size).toBe(s.dbSize());
  const other = path.join(dir, 'restored');
  MvccStore.restore(other, file);
  const r = MvccStore.open(other);
  expect(all(r)).toEqual(all(s));
  await r.close();
});

test('defragmentations one after another under a steady write load leave every write in place', async () => {
  const value = Buffer.alloc(20_000, 3);
  for (let i = 0; i < 200; i++) put(s, `w${i}`, value);
  let writing = true;
  const writer = (async () => {
    let n = 0;
    while (writing) {
      put(s, `w${n % 200}`, value);
      n++;
      await new Promise((r) => setImmediate(r));
    }
    return n;
  })();
  for (let r = 0; r < 15; r++) {
    await s.defrag();
    await new Promise((res) => setTimeout(res, 5));
  }
  writing = false;
  const writes = await writer;
  expect(writes).toBeGreaterThan(15);
  const rev = s.rev();
  expect(rev).toBe(1 + 200 + writes);
  const live = all(s);
  await s.close();
  s = MvccStore.open(dir, { batchInterval: 5 });
  expect([s.rev(), all(s)]).toEqual([rev, live]);
});

test('a snapshot view is one read transaction: writes applied while it is read are not in it, and a defragmentation waits for it', async () => {
  for (let i = 0; i < 3000; i++) put(s, `v${String(i).padStart(5, '0')}`, 'x');
  const rev = s.rev();
  let defragDone = false;
  let defrag: Promise<void> | undefined;
  const seen = await s.withSnapshotView(async (view) => {
    expect([view.rev, view.consistentIndex]).toEqual([rev, index]);
    let n = 0;
    for (const { rev: r } of view.versions()) {
      n++;
      expect(r.length).toBe(16);
      if (n === 1000) {
        // Writes and a defragmentation asked for in the middle of the walk.
        for (let i = 0; i < 100; i++) put(s, `during${i}`, 'y');
        s.flushSync();
        defrag = s.defrag().then(() => {
          defragDone = true;
        });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(defragDone).toBe(false);
    return n;
  });
  expect(seen).toBe(3000);
  await defrag;
  expect(s.rev()).toBe(rev + 100);
  expect(all(s)).toHaveLength(3100);
});

test('importData: versions kept at their revisions (tombstones, several per revision), the live keys and their leases, the current revision', async () => {
  const to = path.join(dir, 'imported');
  const v = (main: number, sub: number, key: string, value: string, create: number, version: number, lease = 0n, tombstone = false) => ({ main, sub, key: b(key), value: b(value), create, version, lease, tombstone });
  const { rev } = await MvccStore.importData(to, {
    versions: [v(5, 0, 'a', '1', 5, 1), v(6, 0, 'a', '2', 5, 2, 7n), v(6, 1, 'b', 'x', 6, 1, 7n), v(8, 0, 'b', '', 0, 0, 0n, true), v(9, 0, 'c', 'z', 9, 1)],
    leases: [{ id: 7n, ttl: 30, remainingTTL: 0 }],
    metaValues: [['alarms', b('A')]],
    finishedCompactRev: 12,
    scheduledCompactRev: 12,
    consistentIndex: 3,
  });
  expect(rev).toBe(12); // the compaction is later than the last version, as etcd's restore takes it
  const r = MvccStore.open(to);
  try {
    expect([r.rev(), r.compactRev(), r.consistentIndex()]).toEqual([12, 12, 3]);
    expect(r.range(b(''), Buffer.alloc(0)).kvs.map((kv) => [`${kv.key}`, `${kv.value}`, Number(kv.createRevision), Number(kv.modRevision), Number(kv.version), kv.lease])).toEqual([['a', '2', 5, 6, 2, 7n], ['c', 'z', 9, 9, 1, 0n]]);
    expect(r.loadLeases()).toEqual([{ lease: { id: 7n, ttl: 30, remainingTTL: 0 }, keys: [b('a')] }]);
    expect(r.readMetaValue('alarms')).toEqual(b('A'));
    const t = r.write(4);
    t.put(b('d'), b('new'), 0n);
    t.end();
    expect(r.rev()).toBe(13);
  } finally {
    await r.close();
  }
  await expect(MvccStore.importData(to, { versions: [], leases: [], metaValues: [], finishedCompactRev: undefined, scheduledCompactRev: undefined, consistentIndex: 1 })).rejects.toThrow('holds a store already');
  const other = path.join(dir, 'out-of-order');
  await expect(MvccStore.importData(other, { versions: [v(5, 0, 'a', '1', 5, 1), v(4, 0, 'b', '1', 4, 1)], leases: [], metaValues: [], finishedCompactRev: undefined, scheduledCompactRev: undefined, consistentIndex: 1 })).rejects.toThrow('revision 4/0 out of order');
});
