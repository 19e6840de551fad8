/**
 * The linearizability checker on hand-made histories of the v2 register, linearizable and not, then against a
 * brute-force checker (every order that respects real time) on thousands of random small histories.
 */
import { Verdict, checkOperations, checkPartitions, minimise } from './linearizability/checker';
import { RegisterInput, RegisterOp, RegisterOutput, boundUnknowns, prepare, pruneUnknowns, registerModel, registerShrink, valuesSeen } from './linearizability/register';
import { bruteForce as bruteForceOn } from './linearizability/brute-force';
import { prng } from './prng';

const model = registerModel();
const U = Infinity;

function get(client: number, call: number, ret: number, value: string | null | undefined): RegisterOp {
  return { client, call, ret, input: { op: 'get' }, output: value === undefined ? undefined : { op: 'get', value } };
}
function set(client: number, call: number, ret: number, value: string, prev: string | null | undefined): RegisterOp {
  return { client, call, ret, input: { op: 'set', value }, output: prev === undefined ? undefined : { op: 'set', prev } };
}
function cas(client: number, call: number, ret: number, expect: string, value: string, ok: boolean | undefined, current?: string | null): RegisterOp {
  const output: RegisterOutput | undefined = ok === undefined ? undefined : ok ? { op: 'cas', ok } : { op: 'cas', ok, current: current! };
  return { client, call, ret, input: { op: 'cas', expect, value }, output };
}
const verdict = (ops: RegisterOp[]): Verdict => checkOperations(model, ops).verdict;

describe('the checker on hand-made v2 register histories', () => {
  test('a sequential history that is right, and reads that overlap a write and see either value', () => {
    expect(verdict([set(0, 0, 1, 'a', null), get(0, 2, 3, 'a'), set(1, 4, 5, 'b', 'a'), get(1, 6, 7, 'b')])).toBe('ok');
    // Two reads overlap the write of b and each other: one sees it, the other not yet, whichever was called first.
    const base = [set(0, 0, 1, 'a', null), set(0, 10, 20, 'b', 'a')];
    expect(verdict([...base, get(1, 11, 15, 'b'), get(2, 13, 19, 'a')])).toBe('ok');
    expect(verdict([...base, get(1, 11, 15, 'a'), get(2, 13, 19, 'b')])).toBe('ok');
    // An operation called at the very instant another returned overlaps it (no clock orders them).
    expect(verdict([set(0, 0, 1, 'a', null), set(0, 2, 3, 'b', 'a'), get(1, 3, 4, 'a')])).toBe('ok');
    expect(verdict([set(0, 0, 1, 'a', null), set(0, 2, 3, 'b', 'a'), get(1, 3.001, 4, 'a')])).toBe('illegal');
  });

  test('a stale read: a value read after a later write was acknowledged (sequentially consistent, not linearizable)', () => {
    // Client 2's read could be ordered before b by a checker that ignores real time: it must not be.
    expect(verdict([set(0, 0, 1, 'a', null), set(0, 2, 3, 'b', 'a'), get(2, 4, 5, 'a')])).toBe('illegal');
    // New then old: two reads, one after the other, both overlapping the write.
    expect(verdict([set(0, 0, 1, 'a', null), set(0, 10, 20, 'b', 'a'), get(1, 11, 12, 'b'), get(2, 13, 19, 'a')])).toBe('illegal');
  });

  test('a lost write: acknowledged, then gone (the next write replaced an older value; a final read misses it)', () => {
    expect(verdict([set(0, 0, 1, 'a', null), set(1, 2, 3, 'b', 'a'), set(2, 4, 5, 'c', 'a')])).toBe('illegal');
    expect(verdict([set(0, 0, 1, 'a', null), set(1, 2, 3, 'b', 'a'), get(2, 10, 11, 'a')])).toBe('illegal');
    // Concurrent writes may land in either order, but each is seen once.
    expect(verdict([set(0, 0, 1, 'a', null), set(1, 2, 5, 'b', 'c'), set(2, 2, 5, 'c', 'a'), get(0, 6, 7, 'b')])).toBe('ok');
  });

  test('a compare-and-swap that succeeded twice from the same value', () => {
    const init = set(0, 0, 1, 'a', null);
    expect(verdict([init, cas(1, 2, 5, 'a', 'b', true), cas(2, 3, 6, 'a', 'c', true)])).toBe('illegal');
    // One wins, the other fails and says what it found.
    expect(verdict([init, cas(1, 2, 5, 'a', 'b', true), cas(2, 3, 6, 'a', 'c', false, 'b'), get(0, 7, 8, 'b')])).toBe('ok');
    // A failed compare that found the expected value is wrong, and so is one that found a value never current then.
    expect(verdict([init, cas(1, 2, 5, 'a', 'b', false, 'a')])).toBe('illegal');
    expect(verdict([init, set(0, 2, 3, 'x', 'a'), cas(1, 4, 5, 'a', 'b', false, 'a')])).toBe('illegal');
    expect(verdict([init, cas(1, 2, 3, 'z', 'b', false, null)])).toBe('illegal');
    expect(verdict([cas(1, 2, 3, 'z', 'b', false, null)])).toBe('ok');
  });

  test('an operation without an answer may have happened, or not, but not twice nor undone', () => {
    const init = set(0, 0, 1, 'a', null);
    // The timed-out write of b was seen: it happened.
    expect(verdict([init, set(1, 2, U, 'b', undefined), get(2, 10, 11, 'b')])).toBe('ok');
    // Or it was not seen: it did not happen (or happened after everything).
    expect(verdict([init, set(1, 2, U, 'b', undefined), get(2, 10, 11, 'a')])).toBe('ok');
    // Seen, then unseen: once a write happened, its effect stays until the next write.
    expect(verdict([init, set(1, 2, U, 'b', undefined), get(2, 10, 11, 'b'), get(2, 12, 13, 'a')])).toBe('illegal');
    // It cannot have happened before it was sent.
    expect(verdict([init, get(2, 3, 4, 'b'), set(1, 5, U, 'b', undefined)])).toBe('illegal');
    // A compare-and-swap without an answer takes effect only from the expected value.
    expect(verdict([init, cas(1, 2, U, 'a', 'b', undefined), get(2, 10, 11, 'b')])).toBe('ok');
    expect(verdict([init, set(0, 2, 3, 'x', 'a'), cas(1, 4, U, 'a', 'b', undefined), get(2, 10, 11, 'b')])).toBe('illegal');
  });

  test('a compare that failed on an index nobody saw found a value whose index nobody saw', () => {
    const indexKnown = (v: string) => v !== 'b';
    const m = registerModel(indexKnown);
    const failed: RegisterOp = { client: 3, call: 10, ret: 11, input: { op: 'cas', expect: 'a', value: 'c', prevIndex: 7 }, output: { op: 'cas', ok: false, unmappedIndex: 9 } };
    const a = set(0, 0, 1, 'a', null);
    expect(checkOperations(m, [a, set(1, 2, U, 'b', undefined), failed]).verdict).toBe('ok');
    expect(checkOperations(m, [a, set(1, 2, 3, 'x', 'a'), failed]).verdict).toBe('illegal');
    // Pruning keeps the unanswered write there: it is the only write that can explain the compare.
    expect(checkOperations(m, pruneUnknowns([a, set(1, 2, U, 'b', undefined), failed])).verdict).toBe('ok');
  });

  test('keys are checked apart (P-compositionality): the illegal key is named, the others pass', () => {
    const parts = new Map<string, RegisterOp[]>([
      ['/k1', [set(0, 0, 1, 'a', null), get(1, 2, 3, 'a')]],
      ['/k2', [set(0, 0, 1, 'x', null), set(0, 2, 3, 'y', 'x'), get(1, 4, 5, 'x')]],
    ]);
    const r = checkPartitions(() => model, parts);
    expect(r.verdict).toBe('illegal');
    expect(r.results.map((p) => [p.partition, p.verdict])).toEqual([['/k1', 'ok'], ['/k2', 'illegal']]);
    const bad = r.results[1];
    // The search linearized the two writes and could not place the read before its return.
    expect(bad.longest).toBe(2);
    expect(bad.stuckAt).toBe(2);
  });

  test('memoisation: 3,000 operations of 12 concurrent clients, with timeouts, are checked in well under a second; one stale read among them is found and cut down to 3 operations', () => {
    // Unanswered writes nobody saw are pruned, the others end where their value was first seen (each would otherwise
    // stay open to the end, and the search try every subset of them); both are checked against the brute force below.
    const h = prepare(simulate(prng(7), { clients: 12, ops: 3000, unknown: 0.05 }));
    const t = Date.now();
    const r = checkOperations(model, h, { timeoutMs: 20000 });
    expect(r.verdict).toBe('ok');
    expect(Date.now() - t).toBeLessThan(5000);
    // One stale read in the middle is found, and cut down to it, the write it missed and the writes of both values.
    const stale = staleReadIn(h);
    const r2 = checkOperations(model, stale.ops, { timeoutMs: 20000 });
    expect(r2.verdict).toBe('illegal');
    const small = minimise(model, stale.ops, registerShrink, { timeoutMs: 20000 });
    expect(checkOperations(model, small.ops).verdict).toBe('illegal');
    // The read, the write it missed, and the write of the value it saw (whose answer is not needed).
    expect(small.ops).toHaveLength(3);
    const origin = small.from.map((i) => stale.ops[i]);
    expect(origin).toContain(stale.read);
    expect(origin).toContain(stale.missed);
    const first = small.ops[origin.findIndex((op) => op !== stale.read && op !== stale.missed)];
    expect(first.input).toEqual({ op: 'set', value: (stale.read.output as { value: string }).value });
    expect(first.output).toBeUndefined();
  });

  test('the search matches a brute-force checker on 3,000 random small histories, pruned or not', () => {
    const rnd = prng(18);
    const counts = { ok: 0, illegal: 0 };
    for (let i = 0; i < 3000; i++) {
      const h = simulate(rnd, { clients: 3, ops: 2 + Math.floor(rnd() * 6), unknown: 0.25 });
      if (rnd() < 0.6) corrupt(rnd, h);
      const want = bruteForce(h);
      const got = checkOperations(model, h).verdict;
      if (got !== want) throw new Error(`checker says ${got}, brute force ${want}, for ${JSON.stringify(h)}`);
      expect(checkOperations(model, pruneUnknowns(h)).verdict).toBe(want);
      expect(checkOperations(model, boundUnknowns(h)).verdict).toBe(want);
      expect(checkOperations(model, prepare(h)).verdict).toBe(want);
      // What the minimiser keeps of an illegal history is illegal by brute force too: it only weakened it.
      if (want === 'illegal') expect(bruteForce(minimise(model, h, registerShrink).ops)).toBe('illegal');
      counts[want]++;
    }
    // Both kinds are well represented, so neither "always ok" nor "always illegal" passes.
    expect(counts.ok).toBeGreaterThan(800);
    expect(counts.illegal).toBeGreaterThan(800);
  });
});

/**
 * A register driven by concurrent clients: each operation takes effect at a random instant between its call and
 * return, and answers what it saw then. A client that gets no answer may have had its write happen or not.
 */
function simulate(rnd: () => number, o: { clients: number; ops: number; unknown: number }): RegisterOp[] {
  type Pending = { op: RegisterOp; at: number; happens: boolean };
  const pending: Pending[] = [];
  const clock = Array.from({ length: o.clients }, () => rnd() * 3);
  const written: string[] = [];
  for (let n = 0; n < o.ops; n++) {
    const c = Math.floor(rnd() * o.clients);
    const call = clock[c];
    const ret = call + 0.5 + rnd() * 5;
    clock[c] = ret + rnd() * 2;
    const r = rnd();
    let input: RegisterInput;
    if (r < 0.4) input = { op: 'get' };
    else if (r < 0.7 || written.length === 0) input = { op: 'set', value: `v${n}` };
    else input = { op: 'cas', value: `v${n}`, expect: written[Math.floor(rnd() * written.length)] };
    if (input.op !== 'get') written.push(input.value);
    const unknown = rnd() < o.unknown;
    pending.push({ op: { client: c, call, ret: unknown ? U : ret, input }, at: call + rnd() * (ret - call), happens: !unknown || rnd() < 0.5 });
  }
  let state: string | null = null;
  for (const p of [...pending].sort((a, b) => a.at - b.at)) {
    if (!p.happens) continue;
    const i = p.op.input;
    let out: RegisterOutput;
    if (i.op === 'get') out = { op: 'get', value: state };
    else if (i.op === 'set') {
      out = { op: 'set', prev: state };
      state = i.value;
    } else if (state === i.expect) {
      out = { op: 'cas', ok: true };
      state = i.value;
    } else out = { op: 'cas', ok: false, current: state };
    if (p.op.ret !== U) p.op.output = out;
  }
  return pending.map((p) => p.op);
}

/** Changes one answer to another plausible one (which may or may not still be linearizable). */
function corrupt(rnd: () => number, h: RegisterOp[]): void {
  const answered = h.filter((op) => op.output !== undefined);
  if (answered.length === 0) return;
  const op = answered[Math.floor(rnd() * answered.length)];
  const values: (string | null)[] = [null, ...h.flatMap((x) => (x.input.op === 'get' ? [] : [x.input.value]))];
  const other = values[Math.floor(rnd() * values.length)];
  const out = op.output!;
  if (out.op === 'get') op.output = { op: 'get', value: other };
  else if (out.op === 'set') op.output = { op: 'set', prev: other };
  else op.output = out.ok ? { op: 'cas', ok: false, current: other } : { op: 'cas', ok: true };
}

/** The brute-force reference on the register model. */
const bruteForce = (h: RegisterOp[]) => bruteForceOn(model, h);

/** The history plus one read, after some acknowledged write returned, of the value that write replaced. */
function staleReadIn(h: RegisterOp[]): { ops: RegisterOp[]; read: RegisterOp; missed: RegisterOp } {
  const sets = h.filter((op) => op.input.op === 'set' && op.output?.op === 'set' && op.output.prev !== null);
  const w = sets[sets.length >> 1];
  const old = valuesSeen(w)[0];
  const read = get(99, w.ret + 0.01, w.ret + 0.02, old);
  return { ops: [...h, read], read, missed: w };
}
