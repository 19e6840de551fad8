/**
 * A seeded fuzz test of the v2 store's apply and snapshots (STORE_FUZZ_SEED picks another seed). Random sequences
 * of v2 writes — deep keys (up to thousands of levels), long names, many children, hidden names, directories, TTLs,
 * refreshes, compare-and-swap/delete with right and wrong conditions, recursive deletes, expiry — are applied to a
 * store. At checkpoints its snapshot is recovered into a new store (and into one that holds other data); the copy
 * must read the same (every key written, the whole tree, the watch history, the stats, its own snapshot byte for
 * byte) and from then on both get the same operations and must give the same results, expiry included. Bounded in
 * operations and time. A save in turns (the server's snapshots) gets random writes between its slices: it must still
 * be the state at its start, and that state plus those writes must be the live store.
 */
import { V2Error, V2Event, V2Store, eventJSON } from '../../server/store';
import { prng } from '../raft/simulation';

const SEED = Number(process.env.STORE_FUZZ_SEED ?? 20261204) >>> 0;
const OPS_PER_RUN = 1200;
const RUNS = 4;
const RUN_MS = 6000;

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Few names, so that operations meet each other's keys; '_h' is hidden from listings. */
const NAMES = ['a', 'b', 'c', 'd', '_h', 'x y', 'ü', 'n0'];

class Gen {
  /** Every path written so far (read back from both stores when they are compared). */
  readonly written = new Set<string>();
  /** Paths made thousands of levels deep. */
  deepPaths = 0;
  /** The store's clock and the leader's clock carried in the log: the same for every copy. */
  now = Date.UTC(2026, 11, 4, 12, 0, 0);

  constructor(readonly r: Rand) {}

  path(): string {
    const r = this.r;
    const c = r();
    if (c < 0.04) {
      // Deep: past where recursion (or JSON.stringify of the nested answer) would overflow the stack.
      const depth = pick(r, [70, 300, 1500, 3000]);
      if (depth >= 1500) this.deepPaths++;
      const parts = Array.from({ length: depth }, () => (r() < 0.97 ? 'a' : pick(r, NAMES)));
      return `/deep/${parts.join('/')}`;
    }
    if (c < 0.07) return `/long/${pick(r, NAMES)}/${'L'.repeat(int(r, 200, 20000))}`;
    if (c < 0.12) return `/wide/${int(r, 0, 400)}`;
    const depth = int(r, 1, 4);
    return '/' + Array.from({ length: depth }, () => pick(r, NAMES)).join('/');
  }

  /** A path written before (or a directory on its way), or a new one. */
  existing(): string {
    const r = this.r;
    if (this.written.size > 0 && r() < 0.7) {
      const all = [...this.written];
      const p = all[int(r, 0, all.length - 1)];
      // Sometimes a directory on the way to it.
      if (r() < 0.3) {
        const cut = p.lastIndexOf('/');
        if (cut > 0) return p.slice(0, cut);
      }
      return p;
    }
    return this.path();
  }

  ttl(): { expireTime: number; refresh?: boolean } {
    const r = this.r;
    if (r() < 0.7) return { expireTime: 0 };
    return { expireTime: this.now + int(r, 1, 8) * 1000 + int(r, 0, 2) * 250 };
  }
}

type Op = { name: string; run: (s: V2Store) => V2Event | void };

/** The next random operation; reading `a` (the first store) only to choose conditions that sometimes hold. */
function nextOp(g: Gen, a: V2Store): Op {
  const r = g.r;
  const c = r();
  const value = r() < 0.05 ? 'v'.repeat(int(r, 1000, 50000)) : `v${int(r, 0, 30)}`;
  if (c < 0.28) {
    const p = g.path();
    const dir = r() < 0.15;
    const ttl = g.ttl();
    g.written.add(p);
    return { name: `set ${p.length} ${dir}`, run: (s) => s.set(p, dir, dir ? '' : value, ttl) };
  }
  if (c < 0.4) {
    const p = g.path();
    const dir = r() < 0.2;
    const unique = r() < 0.3;
    const ttl = g.ttl();
    if (!unique) g.written.add(p);
    return { name: `create ${p.length} ${dir} ${unique}`, run: (s) => {
      const e = s.create(p, dir, dir ? '' : value, unique, ttl);
      g.written.add(e.node.key!);
      return e;
    } };
  }
  if (c < 0.48) {
    const p = g.existing();
    const refresh = r() < 0.3;
    const ttl = { ...g.ttl(), refresh };
    if (refresh && ttl.expireTime === 0) ttl.expireTime = g.now + 5000;
    return { name: `update ${p.length} refresh=${refresh}`, run: (s) => s.update(p, refresh ? '' : value, ttl) };
  }
  if (c < 0.56) {
    const p = g.existing();
    const refresh = r() < 0.2;
    const expireTime = g.now + int(r, 1, 5) * 1000;
    return { name: `set refresh ${p.length}`, run: (s) => s.set(p, false, '', { expireTime, refresh }) };
  }
  if (c < 0.68) {
    const p = g.existing();
    let prevValue = '';
    let prevIndex = 0;
    try {
      const cur = a.get(p, false, false).node;
      if (r() < 0.6) prevValue = r() < 0.8 ? cur.value ?? '' : 'nope';
      if (r() < 0.6 || prevValue === '') prevIndex = r() < 0.8 ? cur.modifiedIndex ?? 0 : int(r, 1, 1000);
    } catch {
      prevIndex = int(r, 1, 1000);
    }
    const ttl = g.ttl();
    if (r() < 0.5) return { name: `cas ${p.length}`, run: (s) => s.compareAndSwap(p, prevValue, prevIndex, value, ttl) };
    return { name: `cad ${p.length}`, run: (s) => s.compareAndDelete(p, prevValue, prevIndex) };
  }
  if (c < 0.8) {
    const p = r() < 0.1 ? pick(r, ['/deep', '/long', '/wide', '/a', '/_h']) : g.existing();
    const recursive = r() < 0.5;
    const dir = r() < 0.5;
    return { name: `delete ${p.length} dir=${dir} recursive=${recursive}`, run: (s) => s.delete(p, dir, recursive) };
  }
  if (c < 0.9) {
    // Time passes; the leader's SYNC expires what is due.
    g.now += int(r, 0, 3000);
    const cutoff = g.now;
    return { name: `expire ${cutoff}`, run: (s) => s.deleteExpiredKeys(cutoff) };
  }
  const p = r() < 0.2 ? '/' : g.existing();
  const recursive = r() < 0.5;
  const sorted = r() < 0.5;
  return { name: `get ${p.length} ${recursive} ${sorted}`, run: (s) => s.get(p, recursive, sorted) };
}

/** An operation's result as text: its answer (as a client would get it, with the store index) or its error. */
function outcome(s: V2Store, op: Op): string {
  try {
    const e = op.run(s);
    if (!e) return `ok ${s.currentIndex}`;
    const text = eventJSON(e);
    // The answers written field by field (one key and the one before it, store/event.ts) are JSON.stringify's text.
    if (text !== JSON.stringify(e)) throw new Error(`eventJSON: ${text}\nJSON.stringify: ${JSON.stringify(e)}`);
    return `${text} ${e.etcdIndex} ${e.refresh} ${s.currentIndex}`;
  } catch (err) {
    if (!(err instanceof V2Error)) throw err;
    return `error ${JSON.stringify(err.toJSON())} ${s.currentIndex}`;
  }
}

function history(s: V2Store): string {
  return s.hub.history.toJSON().map((e) => `${JSON.stringify(e)}${e.refresh ? ' refresh' : ''}`).join('\n');
}

/** Everything a client can read, and the snapshot itself: the two stores must agree on all of it. */
function expectSame(a: V2Store, b: V2Store, g: Gen, where: string): void {
  const ctx = `${where} (seed ${SEED})`;
  expect([ctx, b.currentIndex]).toEqual([ctx, a.currentIndex]);
  // (Sorted here; the creation order of every directory is in the snapshot compared below.)
  expect([ctx, eventJSON(b.get('/', true, true)) === eventJSON(a.get('/', true, true))]).toEqual([ctx, true]);
  for (const p of g.written) {
    const read = (s: V2Store) => {
      try {
        return eventJSON(s.get(p, false, false));
      } catch (err) {
        return JSON.stringify((err as V2Error).toJSON());
      }
    };
    expect([ctx, p.length, read(b)]).toEqual([ctx, p.length, read(a)]);
  }
  expect([ctx, history(b)]).toEqual([ctx, history(a)]);
  // Reads are not replicated: each member counts its own (the test reads `a` more to choose its operations).
  b.stats.getsSuccess = a.stats.getsSuccess;
  b.stats.getsFail = a.stats.getsFail;
  expect([ctx, b.statsJSON()]).toEqual([ctx, a.statsJSON()]);
  expect([ctx, b.hasTTLKeys()]).toEqual([ctx, a.hasTTLKeys()]);
  expect(b.save().equals(a.save())).toBe(true);
}

test.each(Array.from({ length: RUNS }, (_, k) => k))(`random v2 operations, snapshots and recoveries agree (seed ${SEED}, run %i)`, (run) => {
  const g = new Gen(prng(SEED + run));
  const clock = () => g.now;
  const a = new V2Store(clock);
  let b: V2Store | undefined;
  const started = Date.now();
  let checkpoints = 0;
  for (let k = 0; k < OPS_PER_RUN && Date.now() - started < RUN_MS; k++) {
    const op = nextOp(g, a);
    const ra = outcome(a, op);
    if (b) {
      const rb = outcome(b, op);
      if (rb !== ra) throw new Error(`seed ${SEED} run ${run} op ${k} (${op.name}) differs after recovery:\n${ra.slice(0, 500)}\n${rb.slice(0, 500)}`);
    }
    if (k % 150 === 149) {
      checkpoints++;
      const snap = a.save();
      // Into a fresh store, or over one that holds other data and a watcher (which the recovery ends).
      const c = new V2Store(clock);
      if (g.r() < 0.5) {
        c.set('/other/data', false, 'x', { expireTime: g.now + 1000 });
        c.watch('/other', true, true, 0);
      }
      c.recover(snap);
      expectSame(a, c, g, `run ${run}, op ${k}`);
      if (b) expectSame(a, b, g, `run ${run}, op ${k} (copy recovered earlier)`);
      b = c;
    }
  }
  expect(checkpoints).toBeGreaterThanOrEqual(3);
  // The run did reach the deep keys it is meant to exercise.
  expect(g.deepPaths).toBeGreaterThan(0);
});

test(`a snapshot cut short or altered is refused as a whole, and the store keeps its state (seed ${SEED})`, () => {
  const g = new Gen(prng(SEED ^ 0x5eed));
  const a = new V2Store(() => g.now);
  for (let k = 0; k < 300; k++) outcome(a, nextOp(g, a));
  const snap = a.save();
  const r = g.r;
  let refused = 0;
  for (let k = 0; k < 200; k++) {
    const bad = Buffer.from(snap);
    const how = k % 3;
    let data: Buffer;
    if (how === 0) data = bad.subarray(0, int(r, 0, bad.length - 1));
    else if (how === 1) {
      for (let i = 0; i < 3; i++) bad[int(r, 0, bad.length - 1)] = pick(r, [0x0a, 0x22, 0x5b, 0x7d, 0x2c, 0x31, 0x2f]);
      data = bad;
    } else data = Buffer.concat([bad, Buffer.from(pick(r, ['\n', '[1,"x",1,1,0]\n', '{}', 'x']))]);
    const s = new V2Store(() => g.now);
    s.set('/kept', false, 'yes', { expireTime: 0 });
    const before = s.save();
    try {
      s.recover(data);
    } catch (err) {
      refused++;
      expect((err as Error).message).toMatch(/^store: /);
      expect(s.save().equals(before)).toBe(true);
    }
  }
  expect(refused).toBeGreaterThan(100);
});

test.each([0, 1, 2])(`a save in turns is the state at its start, whatever random writes come between its slices (seed ${SEED}, run %i)`, async (run) => {
  const g = new Gen(prng((SEED + 7919 * (run + 1)) >>> 0));
  const a = new V2Store(() => g.now);
  // Created first, so encoded first: the random keys after it are still to be encoded when the writes come.
  for (let i = 0; i < 3000; i++) a.set(`/bulk/${i}`, false, `b${i}`, { expireTime: 0 });
  for (let k = 0; k < 600; k++) outcome(a, nextOp(g, a));
  const before = a.save();
  // Each write with the clock it ran at: answers (and so the watch history) show the TTL left at that time.
  const writes: { op: Op; now: number }[] = [];
  let done = false;
  // Slices of 0 ms: a few hundred nodes each, with writes between every two.
  const saving = a.saveInTurns(0).then((chunks) => {
    done = true;
    return Buffer.concat(chunks);
  });
  let rounds = 0;
  await new Promise<void>((resolve) => {
    const writer = () => {
      if (done) return resolve();
      rounds++;
      for (let j = 0; j < 8; j++) {
        const op = nextOp(g, a);
        outcome(a, op);
        writes.push({ op, now: g.now });
      }
      setImmediate(writer);
    };
    setImmediate(writer);
  });
  const snap = await saving;
  expect(rounds).toBeGreaterThan(5);
  expect(a.saving).toBe(false);
  // The writes changed the store, and none of them is in the save.
  expect(a.save().equals(before)).toBe(false);
  expect(snap.equals(before)).toBe(true);
  // Recovered and given the same writes (a restart: the snapshot, then the log after it), it is the live store.
  let now = 0;
  const b = new V2Store(() => now);
  b.recover(snap);
  for (const w of writes) {
    now = w.now;
    outcome(b, w.op);
  }
  now = g.now;
  expectSame(a, b, g, `save in turns, run ${run}`);
});
