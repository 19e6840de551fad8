/**
 * A v3 key as a sequential object for the checker: its value and mod_revision, and the store's revision as far as
 * the operations on this key show it. Every write puts a value no other write puts, so a value names the write that
 * made it, and so does its mod_revision.
 *
 * - get (a linearizable Range) answers the value and mod_revision (none and 0 when absent) and the header revision;
 * - put (with prev_kv) answers what it replaced and its own revision;
 * - cas is a Txn: if mod_revision(key) == expectRev then put, else range the key; it answers whether the compare
 *   held and, when not, what it found (a mod_revision of 0 is an absent key, as etcd compares it);
 * - del (DeleteRange with prev_kv) answers what it deleted (none when nothing was there).
 *
 * The header revisions order everything: along a linearization they never go down, a write that creates a revision
 * answers one above every revision before it, and a read or a failed compare answers one no lower than the last.
 * A read answered at revision r with mod_revision m therefore says that no write of this key had a revision in
 * (m, r]. An operation whose outcome is unknown may have happened (at the revision its value was seen with, when it
 * was seen) or not.
 */
import { Model, Operation, Shrink, checkOperations } from './checker';

export type KVInput =
  | { op: 'get' }
  | { op: 'put'; value: string }
  | { op: 'cas'; value: string; expectRev: number }
  /** `at`: for a delete without an answer, the revision the watch history shows it took effect at (see resolveDeletes). */
  | { op: 'del'; at?: number };

export type KVOutput =
  | { op: 'get'; value: string | null; mod: number; rev: number }
  | { op: 'put'; prev: string | null; prevMod: number; rev: number }
  | { op: 'cas'; ok: true; rev: number }
  | { op: 'cas'; ok: false; current: string | null; mod: number; rev: number }
  | { op: 'del'; prev: string | null; prevMod: number; rev: number };

export type KVOp = Operation<KVInput, KVOutput>;

export interface KVState {
  value: string | null;
  /** The key's mod_revision (0: absent; -1: a value written without an answer that nobody saw, so unknown). */
  mod: number;
  /** The highest revision an operation linearized so far answered (or wrote). */
  rev: number;
}

/**
 * What the whole history says of one key's values: the revision each value was written at (every answer that shows
 * a value shows its mod_revision), and the value at each revision.
 */
export interface KVRevisions {
  modOf(value: string): number | undefined;
  valueAt(rev: number): string | null | undefined;
}

/** The revisions shown by the answers of these operations. */
export function revisionsOf(ops: readonly KVOp[]): KVRevisions {
  const mods = new Map<string, number>();
  const values = new Map<number, string | null>([[0, null]]);
  const saw = (v: string | null, m: number) => {
    if (v === null) return;
    if (!mods.has(v)) mods.set(v, m);
    if (!values.has(m)) values.set(m, v);
  };
  for (const op of ops) {
    const o = op.output;
    if (!o) continue;
    if (o.op === 'get') saw(o.value, o.mod);
    else if (o.op === 'put' || o.op === 'del') saw(o.prev, o.prevMod);
    else if (!o.ok) saw(o.current, o.mod);
    if (op.input.op === 'put' || (op.input.op === 'cas' && o.op === 'cas' && o.ok)) saw(op.input.value, o.rev);
  }
  return { modOf: (v) => mods.get(v), valueAt: (r) => values.get(r) };
}

/** The model; `revs` gives the revision of a write whose own answer is unknown (from the answers that saw it). */
export function kvModel(revs: KVRevisions): Model<KVState, KVInput, KVOutput> {
  /** A write without an answer that took effect: at the revision its value was seen with, above all before it. */
  const unknownWrite = (s: KVState, value: string): KVState | undefined => {
    const m = revs.modOf(value);
    if (m === undefined) return { value, mod: -1, rev: s.rev };
    return m > s.rev ? { value, mod: m, rev: m } : undefined;
  };
  const sees = (s: KVState, value: string | null, mod: number) => value === s.value && mod === s.mod;
  return {
    init: () => ({ value: null, mod: 0, rev: 0 }),
    key: (s) => `${s.value === null ? '\u0000' : s.value}\u0001${s.mod}\u0001${s.rev}`,
    step(s, input, output) {
      switch (input.op) {
        case 'get':
          if (output === undefined) return s;
          return output.op === 'get' && sees(s, output.value, output.mod) && output.rev >= s.rev ? { ...s, rev: output.rev } : undefined;
        case 'put':
          if (output === undefined) return unknownWrite(s, input.value);
          return output.op === 'put' && sees(s, output.prev, output.prevMod) && output.rev > s.rev ? { value: input.value, mod: output.rev, rev: output.rev } : undefined;
        case 'cas': {
          const holds = s.mod === input.expectRev;
          if (output === undefined) return holds ? unknownWrite(s, input.value) : s;
          if (output.op !== 'cas') return undefined;
          if (output.ok) return holds && output.rev > s.rev ? { value: input.value, mod: output.rev, rev: output.rev } : undefined;
          return !holds && sees(s, output.current, output.mod) && output.rev >= s.rev ? { ...s, rev: output.rev } : undefined;
        }
        case 'del':
          // A delete of nothing makes no revision; one that deleted a value makes the next.
          if (output === undefined) {
            if (input.at === undefined) return { value: null, mod: 0, rev: s.rev };
            // (Not asking for a value to be there: the minimiser's fragments, cut at an instant, must stay legal.)
            return input.at > s.rev ? { value: null, mod: 0, rev: input.at } : undefined;
          }
          if (output.op !== 'del' || !sees(s, output.prev, output.prevMod)) return undefined;
          if (s.value === null ? output.rev < s.rev : output.rev <= s.rev) return undefined;
          return { value: null, mod: 0, rev: output.rev };
      }
    },
  };
}

/** The values an operation's answer (or, for a compare, its expected revision) shows were current at some point. */
export function kvValuesSeen(op: KVOp, revs: KVRevisions): (string | null)[] {
  const o = op.output;
  if (op.input.op === 'cas' && (o === undefined || (o.op === 'cas' && o.ok))) {
    // A compare that held (or may have) saw the value at the revision it expects.
    const v = revs.valueAt(op.input.expectRev);
    return v === undefined ? [] : [v];
  }
  if (!o) return [];
  if (o.op === 'get') return [o.value];
  if (o.op === 'put' || o.op === 'del') return [o.prev];
  if (o.op === 'cas' && !o.ok) return [o.current];
  return [];
}

function written(op: KVOp): string | undefined {
  return op.input.op === 'put' || op.input.op === 'cas' ? op.input.value : undefined;
}

/**
 * Deletes without an answer, resolved by the revisions at which the key was deleted (its DELETE events in the watch
 * history, which the watch checks hold to every acknowledged write): each revision no answered delete accounts for
 * was made by one of them, so it becomes one delete at that revision, called when the first of them was (no later
 * than the one that made it); the others deleted nothing or never happened, and go. Without that, every delete
 * without an answer could have happened anywhere after its call, which makes the search on an illegal history
 * exponential in their number (etcd's robustness tests patch their histories from the watch the same way).
 * Returns the revisions no delete sent by a client can account for.
 */
export function resolveDeletes(ops: KVOp[], deleteRevs: readonly number[]): { ops: KVOp[]; unexplained: number[] } {
  const answered = new Set(ops.flatMap((op) => (op.output?.op === 'del' && op.output.prev !== null ? [op.output.rev] : [])));
  const open = ops.filter((op) => op.input.op === 'del' && op.output === undefined);
  const left = [...new Set(deleteRevs)].filter((r) => !answered.has(r)).sort((a, b) => a - b);
  const rest = ops.filter((op) => !(op.input.op === 'del' && op.output === undefined));
  if (open.length === 0) return { ops: rest, unexplained: left };
  const first = open.reduce((a, b) => (b.call < a.call ? b : a));
  const made = left.slice(0, open.length).map((at): KVOp => ({ client: first.client, call: first.call, ret: Infinity, input: { op: 'del', at } }));
  return { ops: [...rest, ...made], unexplained: left.slice(open.length) };
}

/**
 * Drops what cannot change the verdict (as the v2 register's pruneUnknowns, whose argument carries over): reads
 * without an answer, and writes without an answer whose value no answer saw and no compare expects. Where such a
 * write happened in a linearization, taking it out leaves one: nothing read its value or revision, so until the next
 * write only operations without an answer could follow it. Deletes without an answer stay.
 */
export function pruneKV(ops: KVOp[], revs: KVRevisions): KVOp[] {
  const known = ops.filter((op) => !(op.input.op === 'get' && op.output === undefined));
  const seen = new Set<string | null>();
  for (const op of known) for (const v of kvValuesSeen(op, revs)) seen.add(v);
  return known.filter((op) => op.output !== undefined || op.input.op === 'del' || seen.has(written(op)!));
}

/**
 * A write (or a resolved delete) without an answer whose revision m is known took effect after every operation
 * answered below m was called, and before any answered at m or later returned: the model linearizes it after the
 * ones and before the others, so its call is moved up to the latest of those calls, and its return from infinity
 * to the earliest of those returns. The search no longer carries it along the whole history.
 */
export function boundKV(ops: KVOp[], revs: KVRevisions): KVOp[] {
  const answered = ops.filter((op) => op.output !== undefined);
  const byRet = [...answered].sort((a, b) => a.ret - b.ret);
  return ops.map((op) => {
    if (op.output !== undefined) return op;
    const v = written(op);
    const m = v !== undefined ? revs.modOf(v) : op.input.op === 'del' ? op.input.at : undefined;
    if (m === undefined) return op;
    let call = op.call;
    for (const x of answered) if (x.output!.rev < m && x.call > call) call = x.call;
    const by = byRet.find((x) => x.output!.rev >= m);
    const ret = by && by.ret >= call ? by.ret : op.ret;
    return call === op.call && ret === op.ret ? op : { ...op, call, ret };
  });
}

/** What the checker is given for one key: pruned, then bounded. */
export function prepareKV(revs: KVRevisions): (ops: KVOp[]) => KVOp[] {
  return (ops) => boundKV(pruneKV(ops, revs), revs);
}

/**
 * How the minimiser weakens: reads, failed compares and deletes of nothing go; writes lose their answers, and so do
 * deletes, which keep the revision they answered.
 */
export function kvShrink(revs: KVRevisions): Shrink<KVInput, KVOutput> {
  return {
    weaken(op) {
      if (op.output === undefined) return op.input.op === 'get' ? null : undefined;
      if (op.input.op === 'get' || (op.output.op === 'cas' && !op.output.ok)) return null;
      if (op.output.op === 'del') return op.output.prev === null ? null : { ...op, input: { op: 'del', at: op.output.rev }, output: undefined, ret: Infinity };
      return { ...op, output: undefined, ret: Infinity };
    },
    prepare: prepareKV(revs),
  };
}

/**
 * A handful of operations that are not linearizable by themselves, found around the one the search could not get
 * past (`stuck`, an index into `ops`): that operation alone, then with each other one (the nearest in time first),
 * every other operation weakened as the minimiser weakens it (reads go, writes lose their answers and then go when
 * nobody saw their values, deletes keep only their revisions) and the deletes outside the revisions the fragment
 * spans left out (they can go first or last). For a stale read or a lost write that is the read or write, the write
 * it missed and the write of what it saw. Only weakenings, so an illegal fragment proves the history illegal;
 * undefined when none was found (the minimiser's turn).
 */
export function explainKV(ops: readonly KVOp[], revs: KVRevisions, stuck: number, o: { timeoutMs?: number } = {}): KVOp[] | undefined {
  const model = kvModel(revs);
  const shrink = kvShrink(revs);
  const weakest = (op: KVOp): KVOp | null => {
    let cur: KVOp | null = op;
    for (let guard = 0; cur !== null && guard < 4; guard++) {
      const w: KVOp | null | undefined = shrink.weaken(cur);
      if (w === undefined) break;
      cur = w;
    }
    return cur;
  };
  const weakened = ops.map(weakest);
  const deadline = Date.now() + (o.timeoutMs ?? 10000);
  const s = ops[stuck];
  const near = ops.filter((x) => x !== s).sort((a, b) => Math.abs(a.ret - s.call) - Math.abs(b.ret - s.call));
  for (const x of [undefined, ...near]) {
    if (Date.now() > deadline) break;
    const keep = new Set<KVOp>(x ? [s, x] : [s]);
    const frag = prepareKV(revs)(ops.flatMap((op, i) => (keep.has(op) ? [op] : weakened[i] ? [weakened[i]!] : [])));
    const revOf = (op: KVOp): number | undefined => (op.output ? op.output.rev : written(op) !== undefined ? revs.modOf(written(op)!) : undefined);
    const spanned = frag.flatMap((op) => (op.input.op === 'del' && op.output === undefined ? [] : [revOf(op) ?? NaN])).filter((r) => !Number.isNaN(r));
    const lo = Math.min(...spanned);
    const hi = Math.max(...spanned);
    const small = frag.filter((op) => !(op.input.op === 'del' && op.input.at !== undefined && op.output === undefined && (op.input.at < lo || op.input.at > hi)));
    if (checkOperations(model, small, { maxSteps: 200000 }).verdict === 'illegal') return small.sort((a, b) => a.call - b.call);
  }
  return undefined;
}

/** One operation, as a line a human reads. */
export function describeKV(op: KVOp, t0 = 0): string {
  const i = op.input;
  const call = i.op === 'get' ? 'get()' : i.op === 'put' ? `put(${q(i.value)})` : i.op === 'del' ? `delete()${i.at !== undefined ? ` (the watch shows a delete at revision ${i.at})` : ''}` : `txn(if mod_revision == ${i.expectRev} then put(${q(i.value)}) else get())`;
  const o = op.output;
  const kv = (v: string | null, m: number) => (v === null ? 'none' : `${q(v)}@${m}`);
  const answer =
    o === undefined ? 'no answer (outcome unknown)'
      : o.op === 'get' ? `${kv(o.value, o.mod)}, revision ${o.rev}`
      : o.op === 'put' ? `revision ${o.rev}, prev ${kv(o.prev, o.prevMod)}`
      : o.op === 'del' ? `revision ${o.rev}, deleted ${kv(o.prev, o.prevMod)}`
      : o.ok ? `succeeded, revision ${o.rev}`
      : `failed, found ${kv(o.current, o.mod)}, revision ${o.rev}`;
  const ret = op.ret === Infinity ? '∞' : (op.ret - t0).toFixed(1);
  return `[${(op.call - t0).toFixed(1)} .. ${ret} ms] client ${op.client}: ${call} -> ${answer}`;
}

function q(v: string): string {
  return JSON.stringify(v);
}
