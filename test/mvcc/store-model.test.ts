/**
 * The MVCC store against a plain model of etcd's semantics: seeded random puts, deletes, multi-op txns,
 * compactions and restarts, with batches committing in between; after each step a random range at a random
 * revision (current, past, compacted or future) must answer as the model does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MvccStore } from '../../server/mvcc/store';

interface Version {
  rev: number;
  value: string | undefined; // undefined: tombstone
  create: number;
  version: number;
  lease: bigint;
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['a', 'a\0', 'a\0b', 'ab', 'b', 'b\x01', 'c', 'ca', 'd', '\xff', '\xff\xff', 'z\0'].map((k) => Buffer.from(k, 'latin1'));
const kstr = (k: Buffer) => k.toString('latin1');

test.each([1, 2, 3, 4, 5, 6])('random operations answer as the model does (seed %i)', async (seed) => {
  const rnd = mulberry32(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
  const dir = mkdtempSync(path.join(tmpdir(), 'mvcc-model-'));
  let s = MvccStore.open(dir, { batchInterval: 1, batchLimit: 7 });
  const hist = new Map<string, Version[]>();
  let rev = 1; // as etcd's: a new store is at revision 1
  let compacted = -1; // and has no compaction (a compaction at 0 or 1 is accepted)
  let index = 0;
  const live = (k: string, at: number): Version | undefined => {
    const h = hist.get(k) ?? [];
    let v: Version | undefined;
    for (const x of h) if (x.rev <= at) v = x;
    return v && v.value !== undefined ? v : undefined;
  };
  const inRange = (k: Buffer, key: Buffer, end: Buffer | undefined) =>
    end === undefined ? k.equals(key) : Buffer.compare(k, key) >= 0 && (end.length === 0 || Buffer.compare(k, end) < 0);

  try {
    for (let step = 0; step < 400; step++) {
      const r = rnd();
      if (r < 0.03) {
        await s.close();
        s = MvccStore.open(dir, { batchInterval: 1, batchLimit: 7 });
        expect([s.rev(), s.compactRev(), s.consistentIndex()]).toEqual([rev, compacted, index]);
      } else if (r < 0.08) {
        await new Promise((res) => setTimeout(res, 3)); // let batches commit
      } else if (r < 0.12 && rev > compacted) {
        const at = compacted + 1 + Math.floor(rnd() * (rev - compacted));
        await s.compact(at, ++index);
        compacted = at;
      } else {
        // a txn of 1-3 ops on distinct keys (what etcd's duplicate-key check allows)
        const t = s.write(++index);
        const used = new Set<string>();
        let changed = false;
        const n = 1 + Math.floor(rnd() * 3);
        for (let i = 0; i < n; i++) {
          const k = pick(KEYS);
          if (used.has(kstr(k))) continue;
          used.add(kstr(k));
          const main = rev + 1;
          if (rnd() < 0.7) {
            const value = `v${step}.${i}`;
            const lease = BigInt(Math.floor(rnd() * 3));
            t.put(k, Buffer.from(value), lease);
            const prev = live(kstr(k), Infinity);
            const h = hist.get(kstr(k)) ?? [];
            h.push({ rev: main, value, create: prev ? prev.create : main, version: prev ? prev.version + 1 : 1, lease });
            hist.set(kstr(k), h);
            changed = true;
          } else if (live(kstr(k), Infinity)) {
            expect(t.deleteRange(k, undefined)).toBe(1);
            hist.get(kstr(k))!.push({ rev: main, value: undefined, create: 0, version: 0, lease: 0n });
            changed = true;
          } else {
            expect(t.deleteRange(k, undefined)).toBe(0);
          }
        }
        t.end();
        if (changed) rev++;
      }

      // a random read, checked against the model
      const key = pick(KEYS);
      const form = rnd();
      const end = form < 0.3 ? undefined : form < 0.5 ? Buffer.alloc(0) : pick(KEYS);
      const at = rnd() < 0.5 ? 0 : Math.floor(rnd() * (rev + 2));
      const limit = rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 0;
      const readAt = at === 0 ? rev : at;
      let got: string[] | string;
      try {
        const res = s.range(key, end, { rev: at, limit });
        got = [`count=${res.count} rev=${res.rev}`, ...res.kvs.map((kv) => `${kstr(kv.key)}=${kv.value}@${kv.modRevision}/${kv.createRevision}/${kv.version}/${kv.lease}`)];
      } catch (e) {
        got = (e as Error).message;
      }
      let want: string[] | string;
      if (readAt > rev) want = 'mvcc: required revision is a future revision';
      else if (readAt < compacted) want = 'mvcc: required revision has been compacted';
      else {
        const keys = KEYS.filter((k) => inRange(k, key, end) && live(kstr(k), readAt)).sort(Buffer.compare);
        const kvs = keys.map((k) => {
          const v = live(kstr(k), readAt)!;
          return `${kstr(k)}=${v.value}@${v.rev}/${v.create}/${v.version}/${v.lease}`;
        });
        want = [`count=${kvs.length} rev=${rev}`, ...(limit ? kvs.slice(0, limit) : kvs)];
      }
      expect([step, got]).toEqual([step, want]);
    }
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('counts stay exact when one batch puts and deletes a key that a later txn writes again; limited ranges leak no LMDB reader', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mvcc-count-'));
  // Tiny batches committing all the time, so keys are rewritten while their batch is in flight or just committed.
  const s = MvccStore.open(dir, { batchInterval: 1, batchLimit: 7 });
  const rnd = mulberry32(12345);
  const pick = (n: number) => Math.floor(rnd() * n);
  const live = new Set<string>();
  const wrong: string[] = [];
  let index = 0;
  try {
    // 20,000 steps with a limited range every 10th: over LMDB's 126 reader slots many times if each leaked one.
    for (let step = 0; step < 20000 && wrong.length < 5; step++) {
      const k = `k${pick(30)}`;
      const r = pick(10);
      if (r < 5 || r === 7) {
        const t = s.write(++index);
        if (r < 5) {
          t.put(Buffer.from(k), Buffer.from(`v${step}`), 0n);
          live.add(k);
        } else {
          t.deleteRange(Buffer.from(k), undefined);
          live.delete(k);
        }
        t.end();
      } else if (r === 6) s.flushSync();
      else {
        const counted = s.range(Buffer.from('k'), Buffer.from('l'), { countOnly: true }).count;
        const limited = s.range(Buffer.from('k'), Buffer.from('l'), { limit: 1 }).count;
        if (counted !== live.size || limited !== live.size) wrong.push(`step ${step}: ${counted}/${limited}, want ${live.size}`);
      }
      if (pick(3) === 0) await new Promise((res) => (pick(2) ? setImmediate(res) : setTimeout(res, pick(3))));
    }
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
  expect(wrong).toEqual([]);
});
