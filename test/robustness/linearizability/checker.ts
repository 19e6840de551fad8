/**
 * A linearizability checker: the Wing-Gong search with Lowe's memoisation, as porcupine runs it (P-compositional:
 * each partition of a history, e.g. each key, is checked on its own).
 *
 * The history becomes a list of call and return events in time order. The search walks it from the front: at a call,
 * it tries to linearize that operation now (the model must accept its output from the current state); at a return,
 * the operation that returns there was not linearized in time, so it backtracks to the last choice and tries the next
 * call instead. A (set of linearized operations, model state) pair already explored is never explored again — the
 * memoisation that keeps the search polynomial on real histories. An operation whose outcome is unknown (a client
 * timeout) returns at infinity: it may be linearized anywhere after its call, including after everything else, which
 * is the same as never having happened.
 */

export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after an operation with this input and output runs in state `s`, or undefined when that output cannot
   * come from `s`. `output` is undefined when the outcome is unknown: then the step must be allowed.
   */
  step(s: S, input: I, output: O | undefined): S | undefined;
  /** A string that is equal for equal states (memoisation). */
  key(s: S): string;
}

export interface Operation<I, O> {
  /** Who issued it (for printing only). */
  client: number | string;
  input: I;
  output?: O;
  /** When the client sent it and got its answer, on one monotonic clock; `ret` is Infinity when it never got one. */
  call: number;
  ret: number;
}

export type Verdict = 'ok' | 'illegal' | 'unknown';

export interface CheckResult {
  verdict: Verdict;
  /** Search steps taken. */
  steps: number;
  /**
   * For an illegal history: how many operations the longest linearization found holds, and the operation (index)
   * whose return the search could not pass from there.
   */
  longest?: number;
  stuckAt?: number;
}

export interface CheckOptions {
  /** Give up (verdict 'unknown') after this many ms or steps. */
  timeoutMs?: number;
  maxSteps?: number;
}

const NIL = -1;

/** Checks one history (one partition) against the model. */
export function checkOperations<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], o: CheckOptions = {}): CheckResult {
  const n = ops.length;
  if (n === 0) return { verdict: 'ok', steps: 0 };
  // Events: 2i is the call of op i, 2i+1 its return. Sorted by time; at equal times calls come first, so operations
  // that touch at one instant count as concurrent (the permissive reading, as porcupine's).
  const order = Array.from({ length: 2 * n }, (_, e) => e);
  const time = (e: number) => ((e & 1) === 0 ? ops[e >> 1].call : ops[e >> 1].ret);
  order.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    return (a & 1) - (b & 1);
  });
  for (const op of ops) if (!(op.ret >= op.call)) throw new Error(`an operation returns before its call: ${JSON.stringify(op)}`);
  // A doubly-linked list of events; the head sentinel is 2n.
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(NIL);
  const prev = new Int32Array(2 * n + 1).fill(NIL);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  const unlink = (e: number) => {
    next[prev[e]] = next[e];
    if (next[e] !== NIL) prev[next[e]] = prev[e];
  };
  const relink = (e: number) => {
    next[prev[e]] = e;
    if (next[e] !== NIL) prev[next[e]] = e;
  };
  /** Takes op i's call and return out of the list (linearized). */
  const lift = (i: number) => {
    unlink(2 * i);
    unlink(2 * i + 1);
  };
  /** Puts them back, in the reverse order (each keeps its own prev/next while out). */
  const unlift = (i: number) => {
    relink(2 * i + 1);
    relink(2 * i);
  };

  // The linearized set, for memoisation, in a form that stays small however long the history: the operations with
  // an answer numbered in call order, all linearized below a frontier `f` plus a few above it (no more than ran
  // concurrently), and apart the ones without an answer (few, once prepared) that are linearized.
  const finite = ops.map((_, i) => i).filter((i) => ops[i].ret !== Infinity).sort((a, b) => ops[a].call - ops[b].call);
  const rank = new Int32Array(n).fill(NIL);
  finite.forEach((i, r) => (rank[i] = r));
  const done = new Uint8Array(finite.length + 1);
  let f = 0;
  const above = new Set<number>();
  const endless = new Set<number>();
  const mark = (i: number) => {
    const r = rank[i];
    if (r === NIL) return void endless.add(i);
    done[r] = 1;
    if (r !== f) return void above.add(r);
    while (done[f]) {
      above.delete(f);
      f++;
    }
  };
  const unmark = (i: number) => {
    const r = rank[i];
    if (r === NIL) return void endless.delete(i);
    done[r] = 0;
    if (r > f) return void above.delete(r);
    for (let k = r + 1; k < f; k++) above.add(k);
    f = r;
  };
  const seen = new Set<string>();
  /** Records (linearized set, state); false when it was already explored. */
  const remember = (stateKey: string): boolean => {
    const k = `${f}/${above.size ? [...above].sort((a, b) => a - b).join(',') : ''}/${endless.size ? [...endless].sort((a, b) => a - b).join(',') : ''}/${stateKey}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  };

  const stack: { op: number; state: S }[] = [];
  let state = model.init();
  let longest = 0;
  let stuckAt = 0;
  let steps = 0;
  const deadline = o.timeoutMs !== undefined ? Date.now() + o.timeoutMs : Infinity;
  const maxSteps = o.maxSteps ?? Infinity;
  let e = next[HEAD];
  while (next[HEAD] !== NIL) {
    if (++steps > maxSteps || ((steps & 0xfff) === 0 && Date.now() > deadline)) return { verdict: 'unknown', steps };
    if ((e & 1) === 0) {
      const i = e >> 1;
      const s2 = model.step(state, ops[i].input, ops[i].output);
      if (s2 !== undefined) {
        mark(i);
        if (remember(model.key(s2))) {
          stack.push({ op: i, state });
          state = s2;
          lift(i);
          e = next[HEAD];
          continue;
        }
        unmark(i);
      }
      e = next[e];
    } else {
      // A return before its call was linearized: undo the last choice and try the call after it.
      if (stack.length >= longest) {
        longest = stack.length;
        stuckAt = e >> 1;
      }
      if (stack.length === 0) return { verdict: 'illegal', steps, longest, stuckAt };
      const top = stack.pop()!;
      state = top.state;
      unmark(top.op);
      unlift(top.op);
      e = next[2 * top.op];
    }
  }
  return { verdict: 'ok', steps };

}

export interface PartitionResult<I, O> extends CheckResult {
  partition: string;
  ops: Operation<I, O>[];
}

/**
 * P-compositionality: a history of independent objects (keys) is linearizable if and only if each object's
 * sub-history is. Checks each partition; the overall verdict is the worst one.
 */
export function checkPartitions<S, I, O>(
  model: (partition: string) => Model<S, I, O>,
  partitions: Map<string, Operation<I, O>[]>,
  o: CheckOptions = {},
): { verdict: Verdict; results: PartitionResult<I, O>[] } {
  const results: PartitionResult<I, O>[] = [];
  for (const [partition, ops] of partitions) results.push({ partition, ops, ...checkOperations(model(partition), ops, o) });
  const verdict: Verdict = results.some((r) => r.verdict === 'illegal') ? 'illegal' : results.some((r) => r.verdict === 'unknown') ? 'unknown' : 'ok';
  return { verdict, results };
}

/** How the minimiser may take information out of a history without making an illegal one look illegal by mistake. */
export interface Shrink<I, O> {
  /**
   * A weaker form of `op` (every linearization of the history stays one when `op` is replaced by it), null to drop
   * it (when dropping is such a weakening), or undefined when it has no weaker form. For a read: null; for a write
   * with an answer: the same write without one (returning at infinity).
   */
  weaken(op: Operation<I, O>): Operation<I, O> | null | undefined;
  /** A verdict-preserving simplification run before each check (e.g. dropping writes nobody saw that had no answer). */
  prepare?(ops: Operation<I, O>[]): Operation<I, O>[];
}

/**
 * A small sub-history that is still not linearizable, for a human to read. Only weakenings are applied (see Shrink),
 * so whatever remains illegal proves the whole history illegal: first everything called after some instant is cut
 * (what was still running then loses its answer), by bisection; then runs of operations, halving down to single ones,
 * are weakened while the rest stays illegal. Returns the fragment and, for each of its ops, the index of the
 * operation of `ops` it comes from (weakened or not).
 */
export function minimise<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  shrink: Shrink<I, O>,
  o: { timeoutMs?: number } = {},
): { ops: Operation<I, O>[]; from: number[] } {
  type Item = { op: Operation<I, O>; from: number };
  const deadline = Date.now() + (o.timeoutMs ?? 20000);
  const prep = shrink.prepare ?? ((x: Operation<I, O>[]) => x);
  const illegal = (items: Item[]) => checkOperations(model, prep(items.map((x) => x.op)), { maxSteps: 5_000_000 }).verdict === 'illegal';
  /** The weakest form of an op (null: dropped). */
  const weakest = (op: Operation<I, O>): Operation<I, O> | null => {
    let cur: Operation<I, O> | null = op;
    for (let guard = 0; cur !== null && guard < 8; guard++) {
      const w: Operation<I, O> | null | undefined = shrink.weaken(cur);
      if (w === undefined) break;
      cur = w;
    }
    return cur;
  };
  let cur: Item[] = ops.map((op, from) => ({ op, from })).sort((a, b) => a.op.call - b.op.call);
  // Everything called up to the k-th call, with what had not returned by then weakened.
  const cut = (k: number): Item[] => {
    const t = cur[k - 1].op.call;
    const out: Item[] = [];
    for (const x of cur.slice(0, k)) {
      if (x.op.ret <= t) out.push(x);
      else {
        const w = weakest(x.op);
        if (w) out.push({ op: w, from: x.from });
      }
    }
    return out;
  };
  let lo = 1;
  let hi = cur.length;
  while (lo < hi && Date.now() < deadline) {
    const mid = (lo + hi) >> 1;
    if (illegal(cut(mid))) hi = mid;
    else lo = mid + 1;
  }
  if (hi < cur.length && illegal(cut(hi))) cur = cut(hi);
  // Weaken runs of ops, latest first, halving the run length down to single ops, until nothing more can go.
  const weakenRun = (items: Item[], at: number, len: number): Item[] | undefined => {
    let changed = false;
    const out = items.slice(0, at);
    for (const x of items.slice(at, at + len)) {
      const w = shrink.weaken(x.op);
      if (w === undefined) out.push(x);
      else {
        changed = true;
        if (w) out.push({ op: w, from: x.from });
      }
    }
    return changed ? [...out, ...items.slice(at + len)] : undefined;
  };
  for (let len = Math.max(1, cur.length >> 1); len >= 1 && Date.now() < deadline; len >>= 1) {
    let changed = true;
    while (changed && Date.now() < deadline) {
      changed = false;
      for (let at = Math.max(0, cur.length - len); at >= 0 && Date.now() < deadline; at = at === 0 ? -1 : Math.max(0, at - len)) {
        const sub = weakenRun(cur, at, len);
        if (sub && illegal(sub)) {
          cur = sub;
          changed = true;
        }
      }
    }
  }
  // What the checker was given: the prepared fragment, each op traced back to where it came from (by its input,
  // which weakening and preparing carry over).
  const final = prep(cur.map((x) => x.op));
  const origin = new Map(cur.map((x) => [x.op.input, x.from]));
  return { ops: final, from: final.map((op) => origin.get(op.input) ?? -1) };
}
