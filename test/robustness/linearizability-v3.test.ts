/**
 * The v3 key model of the linearizability checker on hand-made histories, linearizable and not (a stale read, a lost
 * write, a Txn that succeeded on a stale revision, revisions that go back), then against a brute-force checker on
 * thousands of random small histories of a key among others (revisions with gaps), pruned and bounded or not.
 */
import { Verdict, checkOperations, minimise } from './linearizability/checker';
import { KVInput, KVOp, KVOutput, boundKV, explainKV, kvModel, kvShrink, prepareKV, pruneKV, resolveDeletes, revisionsOf } from './linearizability/kv';
import { bruteForce as bruteForceOn } from './linearizability/brute-force';
import { prng } from './prng';

const U = Infinity;

function get(client: number, call: number, ret: number, value: string | null | undefined, mod = 0, rev = mod): KVOp {
  return { client, call, ret, input: { op: 'get' }, output: value === undefined ? undefined : { op: 'get', value, mod, rev } };
}
function put(client: number, call: number, ret: number, value: string, rev?: number, prev: [string, number] | null = null): KVOp {
  return { client, call, ret, input: { op: 'put', value }, output: rev === undefined ? undefined : { op: 'put', prev: prev?.[0] ?? null, prevMod: prev?.[1] ?? 0, rev } };
}
/** A txn: if mod_revision == expectRev then put(value); ok undefined: no answer; a failure says what it found. */
function cas(client: number, call: number, ret: number, expectRev: number, value: string, ok: boolean | undefined, rev = 0, found: [string, number] | null = null): KVOp {
  const output: KVOutput | undefined = ok === undefined ? undefined : ok ? { op: 'cas', ok, rev } : { op: 'cas', ok, current: found?.[0] ?? null, mod: found?.[1] ?? 0, rev };
  return { client, call, ret, input: { op: 'cas', value, expectRev }, output };
}
function del(client: number, call: number, ret: number, rev?: number, prev: [string, number] | null = null): KVOp {
  return { client, call, ret, input: { op: 'del' }, output: rev === undefined ? undefined : { op: 'del', prev: prev?.[0] ?? null, prevMod: prev?.[1] ?? 0, rev } };
}
const verdict = (ops: KVOp[]): Verdict => checkOperations(kvModel(revisionsOf(ops)), ops).verdict;

describe('the checker on hand-made histories of a v3 key', () => {
  test('a sequential history that is right, reads that overlap a write and see either value, revisions with gaps (other keys)', () => {
    expect(verdict([put(0, 0, 1, 'a', 2), get(0, 2, 3, 'a', 2, 5), put(1, 4, 5, 'b', 7, ['a', 2]), get(1, 6, 7, 'b', 7, 9)])).toBe('ok');
    const base = [put(0, 0, 1, 'a', 2), put(0, 10, 20, 'b', 6, ['a', 2])];
    // One read sees b, the other, called after it but overlapping, does not yet: allowed when its revision is older.
    expect(verdict([...base, get(1, 11, 15, 'b', 6, 6), get(2, 13, 19, 'a', 2, 5)])).toBe('ok');
    expect(verdict([...base, get(1, 11, 15, 'a', 2, 4), get(2, 13, 19, 'b', 6, 7)])).toBe('ok');
  });

  test('a stale read: an older value, or the right value at a revision below one already answered', () => {
    expect(verdict([put(0, 0, 1, 'a', 2), put(0, 2, 3, 'b', 3, ['a', 2]), get(1, 4, 5, 'a', 2, 2)])).toBe('illegal');
    // The old value at the current revision is no better: b's revision 3 is at or below it.
    expect(verdict([put(0, 0, 1, 'a', 2), put(0, 2, 3, 'b', 3, ['a', 2]), get(1, 4, 5, 'a', 2, 3)])).toBe('illegal');
    // Two reads overlapping the write, one after the other: new then old.
    expect(verdict([put(0, 0, 1, 'a', 2), put(0, 10, 20, 'b', 6, ['a', 2]), get(1, 11, 12, 'b', 6, 6), get(2, 13, 19, 'a', 2, 5)])).toBe('illegal');
    // The header revision goes back along real time, even with the right value.
    expect(verdict([put(0, 0, 1, 'a', 2), get(1, 2, 3, 'a', 2, 9), get(1, 4, 5, 'a', 2, 8)])).toBe('illegal');
    // A read at a revision below the value's own.
    expect(verdict([put(0, 0, 1, 'a', 5), get(1, 2, 3, 'a', 5, 4)])).toBe('illegal');
    // A value with another mod_revision than it was written at.
    expect(verdict([put(0, 0, 1, 'a', 5), get(1, 2, 3, 'a', 4, 6)])).toBe('illegal');
  });

  test('a lost write: acknowledged, then replaced as if it had not happened, or read past', () => {
    expect(verdict([put(0, 0, 1, 'a', 2), put(1, 2, 3, 'b', 3, ['a', 2]), put(2, 4, 5, 'c', 4, ['a', 2])])).toBe('illegal');
    expect(verdict([put(0, 0, 1, 'a', 2), put(1, 2, 3, 'b', 3, ['a', 2]), get(2, 10, 11, 'a', 2, 4)])).toBe('illegal');
    // An acknowledged delete, then the deleted value again.
    expect(verdict([put(0, 0, 1, 'a', 2), del(1, 2, 3, 3, ['a', 2]), get(2, 4, 5, 'a', 2, 3)])).toBe('illegal');
    expect(verdict([put(0, 0, 1, 'a', 2), del(1, 2, 3, 3, ['a', 2]), get(2, 4, 5, null, 0, 3)])).toBe('ok');
    // Concurrent writes land in either order, each seen once; two writes cannot share a revision.
    expect(verdict([put(0, 0, 1, 'a', 2), put(1, 2, 5, 'b', 4, ['c', 3]), put(2, 2, 5, 'c', 3, ['a', 2]), get(0, 6, 7, 'b', 4, 4)])).toBe('ok');
    expect(verdict([put(0, 0, 1, 'a', 2), put(1, 2, 5, 'b', 3, ['c', 3]), put(2, 2, 5, 'c', 3, ['a', 2])])).toBe('illegal');
    // A delete of nothing makes no revision; a delete of a value makes one above the last.
    expect(verdict([del(0, 0, 1, 1), put(0, 2, 3, 'a', 2), del(1, 4, 5, 2, ['a', 2])])).toBe('illegal');
  });

  test('a Txn that succeeded on a stale revision, or failed on the revision it expected', () => {
    const a = put(0, 0, 1, 'a', 2);
    const b = put(0, 2, 3, 'b', 3, ['a', 2]);
    expect(verdict([a, b, cas(1, 4, 5, 2, 'c', true, 4)])).toBe('illegal');
    expect(verdict([a, b, cas(1, 4, 5, 3, 'c', true, 4), get(2, 6, 7, 'c', 4, 4)])).toBe('ok');
    // Two compares on one revision, concurrent: one wins, the other fails and says what it found.
    expect(verdict([a, cas(1, 2, 5, 2, 'b', true, 3), cas(2, 3, 6, 2, 'c', true, 4)])).toBe('illegal');
    expect(verdict([a, cas(1, 2, 5, 2, 'b', true, 3), cas(2, 3, 6, 2, 'c', false, 3, ['b', 3])])).toBe('ok');
    // A compare that failed though it found the revision it expected.
    expect(verdict([a, cas(1, 2, 3, 2, 'b', false, 2, ['a', 2])])).toBe('illegal');
    // mod_revision 0 is an absent key: a create succeeds once, and fails after a value is there.
    expect(verdict([cas(0, 0, 1, 0, 'a', true, 2), cas(1, 2, 3, 0, 'b', false, 2, ['a', 2])])).toBe('ok');
    expect(verdict([cas(0, 0, 1, 0, 'a', true, 2), cas(1, 2, 3, 0, 'b', true, 3)])).toBe('illegal');
    // A success answers a new revision; a failure the current one or later.
    expect(verdict([a, cas(1, 2, 3, 2, 'b', true, 2)])).toBe('illegal');
    expect(verdict([a, get(1, 2, 3, 'a', 2, 6), cas(1, 4, 5, 0, 'b', false, 5, ['a', 2])])).toBe('illegal');
  });

  test('an operation without an answer may have happened, or not, but not twice nor undone', () => {
    const a = put(0, 0, 1, 'a', 2);
    // The timed-out write of b was seen (at its revision): it happened.
    expect(verdict([a, put(1, 2, U, 'b'), get(2, 10, 11, 'b', 3, 3)])).toBe('ok');
    // Or not seen: it did not happen (or after everything).
    expect(verdict([a, put(1, 2, U, 'b'), get(2, 10, 11, 'a', 2, 3)])).toBe('ok');
    // Seen, then unseen.
    expect(verdict([a, put(1, 2, U, 'b'), get(2, 10, 11, 'b', 3, 3), get(2, 12, 13, 'a', 2, 3)])).toBe('illegal');
    // Seen at a revision below one answered before it was sent.
    expect(verdict([a, get(1, 2, 3, 'a', 2, 7), put(1, 4, U, 'b'), get(2, 10, 11, 'b', 5, 8)])).toBe('illegal');
    // A compare without an answer takes effect only from the revision it expects.
    expect(verdict([a, cas(1, 2, U, 2, 'b', undefined), get(2, 10, 11, 'b', 3, 3)])).toBe('ok');
    expect(verdict([a, put(0, 2, 3, 'x', 3, ['a', 2]), cas(1, 4, U, 2, 'b', undefined), get(2, 10, 11, 'b', 4, 4)])).toBe('illegal');
    // A delete without an answer: either way.
    expect(verdict([a, del(1, 2, U), get(2, 10, 11, null, 0, 3)])).toBe('ok');
    expect(verdict([a, del(1, 2, U), get(2, 10, 11, 'a', 2, 3)])).toBe('ok');
    expect(verdict([a, del(1, 2, U), get(2, 10, 11, null, 0, 3), get(2, 12, 13, 'a', 2, 3)])).toBe('illegal');
  });

  test('deletes without an answer are resolved by the revisions the watch shows the key deleted at', () => {
    const a = put(0, 0, 1, 'a', 2);
    const h = [a, del(1, 2, U), del(2, 3, U), get(2, 10, 11, null, 0, 4), put(0, 12, 13, 'b', 5), del(0, 14, 15, 6, ['b', 5])];
    // The watch shows deletes at 3 (one of the two without an answer) and 6 (the answered one).
    const r = resolveDeletes(h, [3, 6]);
    expect(r.unexplained).toEqual([]);
    expect(r.ops.filter((op) => op.input.op === 'del').map((op) => op.input)).toEqual([{ op: 'del' }, { op: 'del', at: 3 }]);
    expect(verdict(r.ops)).toBe('ok');
    // The delete at 3 came before the read at revision 4 returned (bounded there), and no read can see "a" after it.
    expect(verdict([...r.ops, get(1, 11.5, 11.8, 'a', 2, 2)])).toBe('illegal');
    // No delete without an answer took effect: they go, and a read of none needs a delete that happened.
    expect(resolveDeletes(h.slice(0, 3), []).ops).toEqual([a]);
    expect(verdict(resolveDeletes([a, del(1, 2, U), get(2, 10, 11, null, 0, 4)], []).ops)).toBe('illegal');
    // A delete at a revision no delete sent can account for.
    expect(resolveDeletes([a, get(2, 10, 11, null, 0, 4)], [3]).unexplained).toEqual([3]);
  });

  test('the memoised search takes 3,000 operations of 12 clients with timeouts in well under a second; a stale read among them is found and explained by 3 operations', () => {
    const sim = simulate(prng(3), { clients: 12, ops: 3000, unknown: 0.04 });
    const h = resolveDeletes(sim.ops, sim.deleteRevs).ops;
    const revs = revisionsOf(h);
    const prepared = prepareKV(revs)(h);
    const t = Date.now();
    expect(checkOperations(kvModel(revs), prepared, { timeoutMs: 20000 }).verdict).toBe('ok');
    expect(Date.now() - t).toBeLessThan(5000);
    // A read, after some acknowledged write returned, of the value that write replaced, at the write's revision.
    const w = h.filter((op) => op.output?.op === 'put' && op.output.prev !== null)[400];
    const o = w.output as Extract<KVOutput, { op: 'put' }>;
    const stale = get(99, w.ret + 0.01, w.ret + 0.02, o.prev, o.prevMod, o.rev);
    const bad = [...h, stale];
    const r = checkOperations(kvModel(revs), prepareKV(revs)(bad), { timeoutMs: 20000 });
    expect(r.verdict).toBe('illegal');
    // Explained by three operations: the read, the write it missed, and the write of the value it saw (and the
    // deletes between their revisions, if any).
    const small = explainKV(prepareKV(revs)(bad), revs, r.stuckAt!)!;
    expect(small).toContain(stale);
    expect(small).toContain(w);
    const rest = small.filter((op) => op !== stale && op !== w && op.input.op !== 'del');
    expect(rest.map((op) => op.input)).toEqual([{ op: 'put', value: o.prev }]);
    expect(small.length).toBeLessThanOrEqual(4);
  });

  test('the search matches a brute-force checker on 3,000 random small histories, pruned and bounded or not', () => {
    const rnd = prng(33);
    const counts = { ok: 0, illegal: 0 };
    for (let i = 0; i < 3000; i++) {
      const sim = simulate(rnd, { clients: 3, ops: 2 + Math.floor(rnd() * 6), unknown: 0.25 });
      const h = rnd() < 0.5 ? resolveDeletes(sim.ops, sim.deleteRevs).ops : sim.ops;
      if (rnd() < 0.6) corrupt(rnd, h);
      const revs = revisionsOf(h);
      const model = kvModel(revs);
      const want = bruteForce(h);
      const got = checkOperations(model, h).verdict;
      if (got !== want) throw new Error(`checker says ${got}, brute force ${want}, for ${JSON.stringify(h)}`);
      expect(checkOperations(model, pruneKV(h, revs)).verdict).toBe(want);
      expect(checkOperations(model, boundKV(h, revs)).verdict).toBe(want);
      expect(checkOperations(model, prepareKV(revs)(h)).verdict).toBe(want);
      if (want === 'illegal') {
        expect(bruteForce(minimise(model, h, kvShrink(revs)).ops, revs)).toBe('illegal');
        const r = checkOperations(model, h);
        const small = explainKV(h, revs, r.stuckAt!);
        if (small) expect(bruteForce(small, revs)).toBe('illegal');
      }
      counts[want]++;
    }
    expect(counts.ok).toBeGreaterThan(800);
    expect(counts.illegal).toBeGreaterThan(800);
  });
});

/**
 * One key of a store driven by concurrent clients, among writes to other keys (which take revisions too): each
 * operation takes effect at a random instant between its call and return and answers what it saw then. Clients
 * compare with revisions they saw, or with 0.
 */
function simulate(rnd: () => number, o: { clients: number; ops: number; unknown: number }): { ops: KVOp[]; deleteRevs: number[] } {
  type Pending = { op: KVOp; at: number; happens: boolean };
  const pending: Pending[] = [];
  const clock = Array.from({ length: o.clients }, () => rnd() * 3);
  const seenRevs = [0];
  for (let n = 0; n < o.ops; n++) {
    const c = Math.floor(rnd() * o.clients);
    const call = clock[c];
    const ret = call + 0.5 + rnd() * 5;
    clock[c] = ret + rnd() * 2;
    const r = rnd();
    let input: KVInput;
    if (r < 0.35) input = { op: 'get' };
    else if (r < 0.6) input = { op: 'put', value: `v${n}` };
    else if (r < 0.85) input = { op: 'cas', value: `v${n}`, expectRev: seenRevs[Math.floor(rnd() * seenRevs.length)] };
    else input = { op: 'del' };
    const unknown = rnd() < o.unknown;
    pending.push({ op: { client: c, call, ret: unknown ? U : ret, input }, at: call + rnd() * (ret - call), happens: !unknown || rnd() < 0.5 });
  }
  let value: string | null = null;
  let mod = 0;
  let rev = 1;
  const deleteRevs: number[] = [];
  for (const p of [...pending].sort((a, b) => a.at - b.at)) {
    // Writes to other keys in between.
    if (rnd() < 0.3) rev += 1 + Math.floor(rnd() * 2);
    if (!p.happens) continue;
    const i = p.op.input;
    let out: KVOutput;
    if (i.op === 'get') out = { op: 'get', value, mod, rev };
    else if (i.op === 'put') {
      out = { op: 'put', prev: value, prevMod: mod, rev: ++rev };
      [value, mod] = [i.value, rev];
    } else if (i.op === 'cas') {
      if (mod === i.expectRev) {
        out = { op: 'cas', ok: true, rev: ++rev };
        [value, mod] = [i.value, rev];
      } else out = { op: 'cas', ok: false, current: value, mod, rev };
    } else {
      out = { op: 'del', prev: value, prevMod: mod, rev: value === null ? rev : ++rev };
      if (value !== null) deleteRevs.push(rev);
      [value, mod] = [null, 0];
    }
    if (mod > 0) seenRevs.push(mod);
    if (p.op.ret !== U) p.op.output = out;
  }
  return { ops: pending.map((p) => p.op), deleteRevs };
}

/** Changes one answer to another plausible one (which may or may not still be linearizable). */
function corrupt(rnd: () => number, h: KVOp[]): void {
  const answered = h.filter((op) => op.output !== undefined);
  if (answered.length === 0) return;
  const op = answered[Math.floor(rnd() * answered.length)];
  const out = op.output!;
  const kvs: [string | null, number][] = [[null, 0], ...h.flatMap((x): [string, number][] => (x.output && (x.input.op === 'put' || x.input.op === 'cas') && 'rev' in x.output ? [[x.input.value, x.output.rev]] : []))];
  const [v, m] = kvs[Math.floor(rnd() * kvs.length)];
  const which = rnd();
  if (which < 0.3) {
    op.output = { ...out, rev: Math.max(0, out.rev + (rnd() < 0.5 ? -1 : 1) * (1 + Math.floor(rnd() * 3))) };
  } else if (out.op === 'get') op.output = { ...out, value: v, mod: m };
  else if (out.op === 'put' || out.op === 'del') op.output = { ...out, prev: v, prevMod: m };
  else op.output = out.ok ? { op: 'cas', ok: false, current: v, mod: m, rev: out.rev } : { op: 'cas', ok: true, rev: out.rev };
}

/** The brute-force reference on the KV model of the history's revisions. */
const bruteForce = (h: KVOp[], revs = revisionsOf(h)) => bruteForceOn(kvModel(revs), h);
