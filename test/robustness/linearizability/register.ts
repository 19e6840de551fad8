/**
 * The v2 register: one key of the v2 keys API, as a sequential object for the checker. Every write puts a value no
 * other write puts, so a value names the write that made it; a modifiedIndex names it too, and a compare by
 * prevIndex is a compare with the value written at that index.
 *
 * - get (with quorum=true) answers the value, or none (404);
 * - set answers the value it replaced (etcd's prevNode), so a set is also a read: a write lost in between shows;
 * - compare-and-swap (prevValue, or prevIndex) succeeds only from the expected value; a failed one answers the
 *   current value (or index) in its cause, `[expected != current]`, or 404 when there is no value.
 */
import { Model, Operation, Shrink } from './checker';

export type RegisterInput =
  | { op: 'get' }
  | { op: 'set'; value: string }
  /** `expect` is the value the compare wants (for prevIndex: the value written at that index). */
  | { op: 'cas'; value: string; expect: string; prevIndex?: number };

export type RegisterOutput =
  | { op: 'get'; value: string | null }
  | { op: 'set'; prev: string | null }
  | { op: 'cas'; ok: true }
  /** A failed compare and the value it found (null: no key). */
  | { op: 'cas'; ok: false; current: string | null }
  /** A failed compare by prevIndex that found an index whose value no operation ever saw with it. */
  | { op: 'cas'; ok: false; unmappedIndex: number };

export type RegisterOp = Operation<RegisterInput, RegisterOutput>;

/**
 * The model. `indexKnown(v)` says whether some answer showed value v with its modifiedIndex: a compare that failed on
 * an index no answer ever named must have found a value whose index nobody saw.
 */
export function registerModel(indexKnown: (value: string) => boolean = () => true): Model<string | null, RegisterInput, RegisterOutput> {
  return {
    init: () => null,
    key: (s) => (s === null ? '\u0000' : s),
    step(s, input, output) {
      switch (input.op) {
        case 'get':
          if (output === undefined) return s;
          return output.op === 'get' && output.value === s ? s : undefined;
        case 'set':
          if (output === undefined) return input.value;
          return output.op === 'set' && output.prev === s ? input.value : undefined;
        case 'cas':
          if (output === undefined) return s === input.expect ? input.value : s;
          if (output.op !== 'cas') return undefined;
          if (output.ok) return s === input.expect ? input.value : undefined;
          if (s === input.expect) return undefined;
          if ('current' in output) return output.current === s ? s : undefined;
          return s !== null && !indexKnown(s) ? s : undefined;
      }
    },
  };
}

/** The values an operation's answer (or its compare) shows it saw. */
export function valuesSeen(op: RegisterOp): (string | null)[] {
  const out = op.output;
  if (op.input.op === 'cas' && (out === undefined || (out.op === 'cas' && out.ok))) return out ? [op.input.expect] : [];
  if (!out) return [];
  if (out.op === 'get') return [out.value];
  if (out.op === 'set') return [out.prev];
  if (out.op === 'cas' && !out.ok && 'current' in out) return [out.current];
  return [];
}

function written(op: RegisterOp): string | undefined {
  return op.input.op === 'get' ? undefined : op.input.value;
}

/**
 * Drops what cannot change the verdict, so that timeouts do not blow up the search: reads without an answer, and
 * writes without an answer whose value no operation saw. Such a write can be put after everything (it may not have
 * happened); and where it did happen in a linearization, taking it out leaves one too: nothing read its value, so
 * until the next write only answerless compares could follow it, and those may go after everything as well (unless
 * one compares with its value: then it is kept). That needs every failed compare to say what it found: on a key with a compare that failed on an index no answer named
 * (so maybe on such a write), nothing is dropped but the reads.
 */
export function pruneUnknowns(ops: RegisterOp[]): RegisterOp[] {
  const known = ops.filter((op) => !(op.input.op === 'get' && op.output === undefined));
  if (known.some((op) => op.output?.op === 'cas' && !op.output.ok && 'unmappedIndex' in op.output)) return known;
  const seen = new Set<string | null>();
  for (const op of known) {
    for (const v of valuesSeen(op)) seen.add(v);
    // An answerless compare from that value may have taken effect, and its value be seen.
    if (op.input.op === 'cas' && op.output === undefined) seen.add(op.input.expect);
  }
  return known.filter((op) => op.output !== undefined || seen.has(written(op)!));
}

/**
 * A write without an answer whose value some answer showed happened before that answer returned: its return is
 * moved there from infinity. Nothing a linearization may do changes (it had to come before the op that saw its value,
 * hence before anything called after that one returned), but the search no longer carries it to the end.
 */
export function boundUnknowns(ops: RegisterOp[]): RegisterOp[] {
  const seenBy = new Map<string, number>();
  for (const op of ops) {
    for (const v of valuesSeen(op)) if (v !== null) seenBy.set(v, Math.min(seenBy.get(v) ?? Infinity, op.ret));
  }
  return ops.map((op) => {
    if (op.output !== undefined || op.input.op === 'get') return op;
    const ret = seenBy.get(op.input.value);
    return ret !== undefined && ret >= op.call && ret < op.ret ? { ...op, ret } : op;
  });
}

/** What the checker is given for one key: pruned, then bounded. */
export function prepare(ops: RegisterOp[]): RegisterOp[] {
  return boundUnknowns(pruneUnknowns(ops));
}

/** How the minimiser weakens register ops: reads and failed compares go, writes lose their answers. */
export const registerShrink: Shrink<RegisterInput, RegisterOutput> = {
  weaken(op) {
    if (op.output === undefined) return op.input.op === 'get' ? null : undefined;
    if (op.input.op === 'get' || (op.output.op === 'cas' && !op.output.ok)) return null;
    return { ...op, output: undefined, ret: Infinity };
  },
  prepare,
};

/** One operation, as a line a human reads. */
export function describe(op: RegisterOp, t0 = 0): string {
  const i = op.input;
  const call = i.op === 'get' ? 'get()' : i.op === 'set' ? `set(${q(i.value)})` : `cas(${i.prevIndex !== undefined ? `prevIndex=${i.prevIndex} (${q(i.expect)})` : `prevValue=${q(i.expect)}`} -> ${q(i.value)})`;
  const o = op.output;
  const answer =
    o === undefined ? 'no answer (outcome unknown)'
      : o.op === 'get' ? q(o.value)
      : o.op === 'set' ? `ok, prev ${q(o.prev)}`
      : o.ok ? 'ok'
      : 'current' in o ? `compare failed, found ${q(o.current)}`
      : `compare failed, found index ${o.unmappedIndex} (value never seen)`;
  const ret = op.ret === Infinity ? '∞' : (op.ret - t0).toFixed(1);
  return `[${(op.call - t0).toFixed(1)} .. ${ret} ms] client ${op.client}: ${call} -> ${answer}`;
}

function q(v: string | null): string {
  return v === null ? 'none' : JSON.stringify(v);
}
