/** The MVCC store on LMDB: etcd's revisions, versions, generations, past reads, compaction, restart. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MvccStore } from '../../server/mvcc/store';
import { ErrCompacted, ErrFutureRev } from '../../server/mvcc/errors';

const b = (s: string) => Buffer.from(s);
let dir: string;
let s: MvccStore;
let index = 0;

function put(key: string, value: string, lease = 0n): number {
  const t = s.write(++index);
  t.put(b(key), b(value), lease);
  t.end();
  return s.rev();
}

function del(key: string, end?: string): number {
  const t = s.write(++index);
  const n = t.deleteRange(b(key), end === undefined ? undefined : b(end));
  t.end();
  return n;
}

/** key=value@mod/create/version for each kv, so one assertion shows the whole result */
function get(key: string, end?: string, rev?: number, limit?: number): string[] {
  return s
    .range(b(key), end === undefined ? undefined : b(end), { rev, limit })
    .kvs.map((kv) => `${kv.key}=${kv.value}@${kv.modRevision}/${kv.createRevision}/${kv.version}`);
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mvcc-'));
  s = MvccStore.open(dir, { batchInterval: 5 });
  index = 0;
});

afterEach(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('each write txn is one revision; create, mod and version follow the key across generations', () => {
  expect(s.rev()).toBe(1); // as etcd's: a new store is at revision 1, its first write is revision 2
  expect(put('a', '1')).toBe(2);
  expect(put('a', '2')).toBe(3);
  expect(put('b', '1')).toBe(4);
  expect(get('a')).toEqual(['a=2@3/2/2']);
  expect(del('a')).toBe(1);
  expect(s.rev()).toBe(5);
  expect(get('a')).toEqual([]);
  expect(put('a', '3')).toBe(6);
  expect(get('a')).toEqual(['a=3@6/6/1']); // a new generation starts at version 1
  expect(del('nothing')).toBe(0);
  expect(s.rev()).toBe(6); // a delete of nothing writes no revision
});

test('a new store answers as a new etcd: empty at revision 1, compactions at 0 and 1 accepted, revision 2 in the future', async () => {
  expect(s.compactRev()).toBe(-1); // etcd's HashKV reports compact_revision -1 before the first compaction
  expect(s.range(b('a'), Buffer.alloc(0), { rev: 1 })).toEqual({ kvs: [], count: 0, rev: 1 });
  expect(() => s.range(b('a'), undefined, { rev: 2 })).toThrow(ErrFutureRev);
  const h = await s.hashKV(1);
  expect([h.rev, h.compactRev]).toEqual([1, -1]);
  expect(await s.hashKV(0)).toEqual(h);
  await expect(s.hashKV(2)).rejects.toThrow(ErrFutureRev);
  expect(() => s.compact(2, ++index)).toThrow(ErrFutureRev);
  await s.compact(0, ++index);
  expect(s.compactRev()).toBe(0);
  expect(() => s.compact(0, ++index)).toThrow(ErrCompacted);
  await s.compact(1, ++index);
  expect(() => s.compact(1, ++index)).toThrow(ErrCompacted);
  expect(s.range(b('a'), Buffer.alloc(0), { rev: 1 })).toEqual({ kvs: [], count: 0, rev: 1 }); // rev = compaction
  await expect(s.hashKV(1)).rejects.toThrow(ErrCompacted);
  expect((await s.hashKV(0)).compactRev).toBe(1);
  expect(put('a', '1')).toBe(2);
  await s.close();
  s = MvccStore.open(dir);
  expect([s.rev(), s.compactRev(), s.consistentIndex()]).toEqual([2, 1, index]);
});

test('an empty store reopens at revision 1 with no compaction', async () => {
  s.setConsistentIndex(++index); // an entry that writes nothing is committed alone
  await s.close();
  s = MvccStore.open(dir);
  expect([s.rev(), s.compactRev(), s.consistentIndex()]).toEqual([1, -1, 1]);
  expect(put('a', '1')).toBe(2);
});

test('a restart whose first batch writes no revision keeps the revision', async () => {
  put('a', '1');
  put('a', '2');
  await s.close();
  // the first batch after opening holds only a consistent index, then only a compaction
  s = MvccStore.open(dir);
  s.setConsistentIndex(++index);
  await s.close();
  s = MvccStore.open(dir);
  expect([s.rev(), s.consistentIndex()]).toEqual([3, index]);
  await s.compact(2, ++index);
  await s.close();
  s = MvccStore.open(dir);
  expect([s.rev(), s.compactRev(), s.consistentIndex()]).toEqual([3, 2, index]);
  expect(put('a', '3')).toBe(4);
  expect(get('a')).toEqual(['a=3@4/2/3']);
});

test('ops of one txn share the main revision and see each other', () => {
  const t = s.write(++index);
  t.put(b('x'), b('1'), 0n);
  t.put(b('y'), b('1'), 0n);
  expect(t.range(b('x'), undefined).kvs.map((kv) => `${kv.value}`)).toEqual(['1']);
  t.put(b('x'), b('2'), 7n);
  expect(t.deleteRange(b('y'), undefined)).toBe(1);
  t.end();
  expect(s.rev()).toBe(2);
  const [x] = s.range(b('x'), undefined).kvs;
  expect([x.modRevision, x.createRevision, x.version, x.lease, `${x.value}`]).toEqual([2n, 2n, 2n, 7n, '2']);
  expect(get('y')).toEqual([]);
});

test('ranges: single key, [key, end), from key, all keys; limit keeps the count of every match', () => {
  for (const k of ['a', 'ab', 'b', 'b\0', 'c', '\u00ff']) put(k, k);
  const keys = (end: string | undefined, key = 'a', limit?: number) =>
    s.range(b(key), end === undefined ? undefined : b(end), { limit }).kvs.map((kv) => kv.key.toString('latin1'));
  expect(keys(undefined)).toEqual(['a']);
  expect(keys('b')).toEqual(['a', 'ab']);
  expect(keys('c', 'b')).toEqual(['b', 'b\0']);
  expect(keys('', 'b')).toEqual(['b', 'b\0', 'c', '\u00ff'].map((k) => Buffer.from(k).toString('latin1')));
  expect(keys('', '\0').length).toBe(6);
  const r = s.range(b('a'), Buffer.alloc(0), { limit: 2 });
  expect([r.kvs.length, r.count, r.rev]).toEqual([2, 6, 7]);
  const c = s.range(b('a'), Buffer.alloc(0), { countOnly: true });
  expect([c.kvs.length, c.count]).toEqual([0, 6]);
  expect(s.keyCount()).toBe(6);
  const ko = s.range(b('a'), b('b'), { keysOnly: true });
  expect(ko.kvs.map((kv) => kv.value.length)).toEqual([0, 0]);
});

test('reads at a past revision see each key as it was, tombstones included', () => {
  put('a', '1'); // 2
  put('b', '1'); // 3
  put('a', '2'); // 4
  del('b'); // 5
  put('c', '1'); // 6
  expect(get('a', '', 1)).toEqual([]); // the new store's revision: nothing yet
  expect(get('a', '', 2)).toEqual(['a=1@2/2/1']);
  expect(get('a', '', 3)).toEqual(['a=1@2/2/1', 'b=1@3/3/1']);
  expect(get('a', '', 4)).toEqual(['a=2@4/2/2', 'b=1@3/3/1']);
  expect(get('a', '', 5)).toEqual(['a=2@4/2/2']);
  expect(get('b', undefined, 4)).toEqual(['b=1@3/3/1']);
  expect(s.range(b('a'), Buffer.alloc(0), { rev: 4, countOnly: true }).count).toBe(2);
  expect(s.range(b('a'), Buffer.alloc(0), { rev: 4 }).rev).toBe(6); // the header carries the current revision
  expect(() => s.range(b('a'), undefined, { rev: 7 })).toThrow(ErrFutureRev);
});

test('a write txn reading at its begin revision does not see its own writes', () => {
  put('a', '1');
  const t = s.write(++index);
  t.put(b('a'), b('2'), 0n);
  expect(t.range(b('a'), undefined, { rev: 2 }).kvs.map((kv) => `${kv.value}`)).toEqual(['1']);
  expect(t.range(b('a'), undefined).kvs.map((kv) => `${kv.value}`)).toEqual(['2']);
  t.end();
  expect(get('a')).toEqual(['a=2@3/2/2']);
});

test('compaction keeps the last version at or before rev of each key, drops tombstoned keys, refuses old or future revisions', async () => {
  put('a', '1'); // 2
  put('a', '2'); // 3
  put('b', '1'); // 4
  del('b'); // 5
  put('a', '3'); // 6
  put('c', '1'); // 7
  expect(s.compactRev()).toBe(-1);
  await s.compact(5, ++index);
  expect(s.compactRev()).toBe(5);
  expect(() => s.range(b('a'), undefined, { rev: 4 })).toThrow(ErrCompacted);
  expect(get('a', '', 5)).toEqual(['a=2@3/2/2']);
  expect(get('a', '', 6)).toEqual(['a=3@6/2/3']);
  expect(() => s.compact(5, ++index)).toThrow(ErrCompacted);
  expect(() => s.compact(4, ++index)).toThrow(ErrCompacted);
  expect(() => s.compact(8, ++index)).toThrow(ErrFutureRev);
  // what was removed is gone from the engine, not only hidden: the kv records left are a@3, a@6, c@7
  const kv = (s as any).kv;
  expect([...kv.getKeys()].length).toBe(3);
  await s.compact(7, ++index);
  expect(get('a', '')).toEqual(['a=3@6/2/3', 'c=1@7/7/1']);
  expect([...kv.getKeys()].length).toBe(2);
});

test('a restart keeps data, revision, compaction and consistent index, without replaying anything', async () => {
  put('a', '1');
  put('b', '2');
  put('a', '3');
  await s.compact(3, ++index);
  del('b');
  const t = s.write(++index); // an entry that writes nothing still moves the consistent index
  t.end();
  const ci = s.consistentIndex();
  expect(ci).toBe(index);
  await s.close();
  s = MvccStore.open(dir);
  expect([s.rev(), s.compactRev(), s.consistentIndex()]).toEqual([5, 3, ci]);
  expect(get('a', '')).toEqual(['a=3@4/2/2']);
  expect(get('a', '', 4)).toEqual(['a=3@4/2/2', 'b=2@3/3/1']);
  expect(() => s.range(b('a'), undefined, { rev: 2 })).toThrow(ErrCompacted);
  expect(put('b', 'x')).toBe(6);
  expect(get('b')).toEqual(['b=x@6/6/1']);
});

test('writes are readable at once and reach LMDB in batches, reads merging both', async () => {
  for (let i = 0; i < 50; i++) put(`k${String(i).padStart(2, '0')}`, `${i}`);
  await new Promise<void>((resolve) => {
    const poll = () => ((s as any).latestBuf.size === 0 ? resolve() : setTimeout(poll, 2));
    poll();
  });
  // now committed; buffer some more writes and deletes over them
  put('k10', 'new');
  del('k11');
  put('k105', 'x');
  const keys = s.range(b('k09'), b('k12')).kvs.map((kv) => `${kv.key}=${kv.value}`);
  expect(keys).toEqual(['k09=9', 'k10=new', 'k105=x']);
  expect(s.range(b('k'), b('l'), { countOnly: true }).count).toBe(50);
  expect(s.range(b('k09'), b('k12'), { limit: 1 }).count).toBe(3);
  expect(s.keyCount()).toBe(50);
  expect(s.dbSize()).toBeGreaterThan(0);
  expect(s.dbSizeInUse()).toBeLessThanOrEqual(s.dbSize());
});

test('snapshot and restore carry the whole store', async () => {
  put('a', '1');
  put('b', '2');
  const file = path.join(dir, 'snap.db');
  await s.snapshot(file);
  put('c', '3');
  const other = path.join(dir, 'restored');
  MvccStore.restore(other, file);
  const r = MvccStore.open(other);
  expect(r.range(b('a'), Buffer.alloc(0)).kvs.map((kv) => `${kv.key}`)).toEqual(['a', 'b']);
  expect([r.rev(), r.consistentIndex()]).toEqual([3, 2]);
  await r.close();
});

test('hashKV: equal for equal histories, different once a version differs; compacted/future revisions refused', async () => {
  const other = MvccStore.open(path.join(dir, 'other'), { batchInterval: 5 });
  try {
    const both = (fn: (st: MvccStore) => void) => {
      fn(s);
      fn(other);
    };
    let i = 0;
    const write = (st: MvccStore, k: string, v: string | undefined) => {
      const t = st.write(++i);
      if (v === undefined) t.deleteRange(b(k), undefined);
      else t.put(b(k), b(v), 0n);
      t.end();
    };
    both((st) => {
      i = 0;
      write(st, 'a', '1');
      write(st, 'a', '2');
      write(st, 'b', '1');
      write(st, 'b', undefined);
      write(st, 'c', '1');
    });
    expect(await s.hashKV(0)).toEqual(await other.hashKV(0));
    expect(await s.hashKV(0)).toEqual({ hash: expect.any(Number), rev: 6, compactRev: -1 });
    expect((await s.hashKV(4)).hash).toBe((await other.hashKV(4)).hash);
    expect((await s.hashKV(4)).hash).not.toBe((await s.hashKV(5)).hash);
    expect((await s.hashKV(1)).hash).not.toBe((await s.hashKV(2)).hash); // the empty store's revision, then a@2
    const before = await s.hashKV(6);
    await s.compact(4, 100);
    // the hash covers what compaction left; members compacted alike hash alike (etcd compares at equal compactRev)
    expect((await s.hashKV(6)).hash).not.toBe(before.hash);
    expect((await other.hashKV(6)).hash).toBe(before.hash);
    await other.compact(4, 100);
    expect(await other.hashKV(6)).toEqual(await s.hashKV(6));
    const compacted = await s.hashKV(6);
    expect([compacted.rev, compacted.compactRev]).toEqual([6, 4]);
    await expect(s.hashKV(4)).rejects.toThrow(ErrCompacted);
    await expect(s.hashKV(7)).rejects.toThrow(ErrFutureRev);
    const t = other.write(++i);
    t.put(b('c'), b('X'), 0n);
    t.end();
    expect((await other.hashKV(6)).hash).toBe(compacted.hash);
    expect((await other.hashKV(7)).hash).not.toBe(compacted.hash);
  } finally {
    await other.close();
  }
});

test("dump() is dumpSync()'s bytes, a consistent view while writes go on between its steps, and loads into another store", async () => {
  for (let i = 0; i < 12_000; i++) put(`k${String(i).padStart(5, '0')}`, `v${i}`);
  del('k00001');
  const before = s.dumpSync();
  const gathering = s.dump();
  // Writes land while dump() yields (it does every few thousand entries): they must not show in it.
  let writes = 0;
  const writer = (async () => {
    for (let i = 0; i < 50; i++) {
      put(`late${i}`, 'x');
      writes++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  const dump = await gathering;
  await writer;
  expect(writes).toBe(50);
  expect(dump.equals(before)).toBe(true);
  const other = MvccStore.open(path.join(dir, 'other'), { batchInterval: 5 });
  try {
    other.loadSync(dump);
    expect([other.rev(), other.range(b('k'), b('l')).count]).toEqual([12_002, 11_999]);
    expect(other.range(b('late0'), undefined).count).toBe(0);
  } finally {
    await other.close();
  }
});
