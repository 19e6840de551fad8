/**
 * The checks on a whole v3 history: the watch history (every event once, in revision order, no revision missing
 * across reconnects, every watcher the same, each event's prev_kv, create_revision and version following from the
 * one before), every acknowledged write in it at its revision and nothing in it that no client sent; linearizability
 * of every register (P-compositional, the v3 key model); header revisions that never go back in real time across
 * all keys; no acknowledged write lost at the end; leases whose keys never go before the lease expired or was revoked
 * and do go once it expired. Pure functions of what was recorded, so that a saved run can be checked again offline.
 */
import { checkOperations, minimise } from './linearizability/checker';
import { KVInput, KVOp, KVOutput, describeKV, explainKV, kvModel, kvShrink, prepareKV, resolveDeletes, revisionsOf } from './linearizability/kv';
import { V3Op, WatchEventSeen, WatcherLog, outcomeV3 } from './history-v3';
import type { LinearizabilityReport } from './checks';

export interface FinalKV {
  key: string;
  value: string;
  mod: number;
  create: number;
  version: number;
  lease: string;
}

/** What a fault injector did, for the lease checks (ms since t0). */
export interface FaultWindow {
  at: number;
  healedAt?: number;
}

export interface V3Recorded {
  ops: V3Op[];
  /** The negative control's operations (their writes are in the watch history too). */
  controlOps: V3Op[];
  watchers: WatcherLog[];
  /** The watchers start after startRev; the run ends with the write at endRev. */
  startRev: number;
  endRev: number;
  /** Every v3 key at endRev (a linearizable Range at that revision), and the keys present at startRev. */
  final: FinalKV[];
  initial: FinalKV[];
  t0: number;
  faults: FaultWindow[];
}

const CREATES = new Set(['put', 'uput', 'lput']);
const lineOf = (e: Pick<WatchEventSeen, 'rev' | 'key' | 'type' | 'value'>) => `${e.rev} ${e.type} ${e.key}${e.type === 'put' ? `=${JSON.stringify(e.value)}` : ''}`;

/**
 * The watch history, from every watcher's events up to endRev: each watcher on its own (order, duplicates, gaps,
 * prev_kv/create/version), then all against the first. Returns the events of the revisions in order (one list for
 * all watchers: the union) and the violations.
 */
export function checkWatchers(r: Pick<V3Recorded, 'watchers' | 'startRev' | 'endRev' | 'initial' | 't0'>): { log: WatchEventSeen[]; violations: string[] } {
  const violations: string[] = [];
  const union = new Map<string, WatchEventSeen>();
  const lists: string[][] = [];
  for (const w of r.watchers) {
    const name = `watcher ${w.watcher}`;
    const evs = w.events.filter((e) => e.rev <= r.endRev);
    const seenAt = new Set<string>();
    const state = new Map<string, { value: string; mod: number; create: number; version: number } | null>(r.initial.map((k) => [k.key, k]));
    const bad: string[] = [];
    for (let i = 0; i < evs.length; i++) {
      const e = evs[i];
      const id = `${e.rev} ${e.key}`;
      const session = sessionOf(w, e.at);
      if (i > 0 && e.rev < evs[i - 1].rev) bad.push(`${name}: revision ${e.rev} (${e.key}) came after ${evs[i - 1].rev} (session ${session})`);
      if (seenAt.has(id)) {
        bad.push(`${name}: the event at revision ${e.rev} on ${e.key} was delivered twice (again in session ${session})`);
        continue;
      }
      seenAt.add(id);
      if (!union.has(id)) union.set(id, e);
      if (e.rev <= r.startRev) bad.push(`${name}: an event at revision ${e.rev}, before the watch's start revision ${r.startRev + 1}`);
      // What the key was before, as the events so far (and the keys at the start) show it.
      const before = state.has(e.key) ? state.get(e.key) : undefined;
      if (before !== undefined) {
        const prev = e.prev === null ? null : `${JSON.stringify(e.prev.value)}@${e.prev.mod}`;
        const want = before === null ? null : `${JSON.stringify(before.value)}@${before.mod}`;
        if (prev !== want) bad.push(`${name}: ${lineOf(e)} has prev_kv ${prev ?? 'none'}, the key was ${want ?? 'absent'}`);
      }
      if (e.type === 'put') {
        const create = before ? before.create : e.rev;
        const version = before ? before.version + 1 : 1;
        if (before !== undefined && (e.create !== create || e.version !== version)) bad.push(`${name}: ${lineOf(e)} has create_revision ${e.create} and version ${e.version}, not ${create} and ${version}`);
        state.set(e.key, { value: e.value, mod: e.rev, create: e.create, version: e.version });
      } else state.set(e.key, null);
    }
    // Every revision after the start, up to the end, made by some write (every write is under the watched prefix).
    const revs = new Set(evs.map((e) => e.rev));
    const gaps: string[] = [];
    for (let rev = r.startRev + 1; rev <= r.endRev; rev++) {
      if (revs.has(rev)) continue;
      let to = rev;
      while (to + 1 <= r.endRev && !revs.has(to + 1)) to++;
      const after = w.sessions.filter((s) => s.from > rev - 1 && s.from <= to + 1).map((s) => `a session on ${s.member} from ${s.from}`);
      gaps.push(`${rev === to ? `revision ${rev}` : `revisions ${rev}..${to}`}${after.length ? ` (${after.join(', ')})` : ''}`);
      rev = to;
    }
    if (gaps.length) bad.push(`${name}: no event for ${gaps.slice(0, 10).join('; ')}${gaps.length > 10 ? ` and ${gaps.length - 10} more gaps` : ''}`);
    violations.push(...bad.slice(0, 20));
    if (bad.length > 20) violations.push(`${name}: ${bad.length - 20} more watch violations`);
    lists.push(evs.map(lineOf));
  }
  // Every watcher saw the same events in the same order.
  for (let i = 1; i < lists.length; i++) {
    const [a, b] = [lists[0], lists[i]];
    const k = a.findIndex((x, j) => x !== b[j]);
    if (k >= 0 || a.length !== b.length) {
      const at = k >= 0 ? k : Math.min(a.length, b.length);
      violations.push(`watcher ${r.watchers[i].watcher} differs from watcher ${r.watchers[0].watcher} at event ${at}: ${b[at] ?? 'nothing'} where the other has ${a[at] ?? 'nothing'}`);
    }
  }
  const log = [...union.values()].sort((a, b) => a.rev - b.rev || (a.key < b.key ? -1 : 1));
  return { log, violations };
}

function sessionOf(w: WatcherLog, at: number): string {
  const i = w.sessions.findIndex((s) => s.opened <= at && (s.closed === undefined || at <= s.closed));
  return i < 0 ? '?' : `${i} on ${w.sessions[i].member} from ${w.sessions[i].from}`;
}

/**
 * Every acknowledged write is in the watch history at the revision it answered, as written; every value in it was
 * sent by a client (a request refused before it left, a compare that failed, a put whose lease was gone do not
 * count); keys written once are written once and never deleted; deletes of registers are explained (see
 * checkRegistersV3), of lease keys checked by checkLeases.
 */
export function checkWrites(ops: V3Op[], log: WatchEventSeen[], o: { uniquePrefix: string; leasePrefix: string; registerPrefix: string; startRev: number; endRev: number }): string[] {
  const out: string[] = [];
  const at = new Map<number, WatchEventSeen[]>();
  for (const e of log) at.set(e.rev, [...(at.get(e.rev) ?? []), e]);
  const sent = new Map<string, V3Op>();
  for (const op of ops) {
    const oc = outcomeV3(op);
    if (op.value === undefined || oc === 'refused') continue;
    if (oc === 'failed') continue;
    sent.set(`${op.key}\u0000${op.value}`, op);
  }
  for (const op of ops) {
    const oc = outcomeV3(op);
    if (op.rev === undefined || op.rev <= o.startRev || op.rev > o.endRev) continue;
    const evs = at.get(op.rev) ?? [];
    const writes = oc === 'ok' && (CREATES.has(op.kind) || (op.kind === 'cas' && op.succeeded));
    if (writes && !evs.some((e) => e.type === 'put' && e.key === op.key && e.value === op.value)) {
      out.push(`lost write: ${op.kind} ${op.key}=${JSON.stringify(op.value)} was acknowledged at revision ${op.rev} via ${op.member} (op #${op.id}); the watch history has ${evs.map(lineOf).join(', ') || 'nothing'} there`);
    }
    if (oc === 'ok' && op.kind === 'del' && op.prev!.value !== null && !evs.some((e) => e.type === 'delete' && e.key === op.key)) {
      out.push(`lost delete: ${op.key} was deleted at revision ${op.rev} via ${op.member} (op #${op.id}); the watch history has ${evs.map(lineOf).join(', ') || 'nothing'} there`);
    }
  }
  const puts = new Map<string, number>();
  for (const e of log) {
    if (e.type === 'put') {
      const by = sent.get(`${e.key}\u0000${e.value}`);
      if (!by) out.push(`never written: ${lineOf(e)} was sent by no client (or by a request that certainly failed)`);
      puts.set(e.key, (puts.get(e.key) ?? 0) + 1);
    } else if (e.key.startsWith(o.uniquePrefix)) out.push(`a key written once was deleted: ${lineOf(e)}`);
    else if (!e.key.startsWith(o.registerPrefix) && !e.key.startsWith(o.leasePrefix)) out.push(`a key nobody deletes was deleted: ${lineOf(e)}`);
  }
  for (const [key, n] of puts) if (key.startsWith(o.uniquePrefix) && n > 1) out.push(`a key written once was written ${n} times: ${key}`);
  return out;
}

/** The register operations of a v3 history, per key, as the checker takes them. */
export function registerHistoriesV3(ops: V3Op[], isRegister: (key: string) => boolean): { partitions: Map<string, KVOp[]>; source: Map<KVInput, V3Op> } {
  const partitions = new Map<string, KVOp[]>();
  const source = new Map<KVInput, V3Op>();
  for (const op of ops) {
    if (!isRegister(op.key) || (op.kind !== 'get' && op.kind !== 'put' && op.kind !== 'cas' && op.kind !== 'del')) continue;
    const oc = outcomeV3(op);
    if (oc === 'refused') continue;
    const input: KVInput = op.kind === 'get' ? { op: 'get' } : op.kind === 'put' ? { op: 'put', value: op.value! } : op.kind === 'cas' ? { op: 'cas', value: op.value!, expectRev: op.expectRev! } : { op: 'del' };
    let output: KVOutput | undefined;
    if (oc === 'ok' || oc === 'failed') {
      const rev = op.rev!;
      if (op.kind === 'get') output = { op: 'get', value: op.kv!.value, mod: op.kv!.mod, rev };
      else if (op.kind === 'put') output = { op: 'put', prev: op.prev!.value, prevMod: op.prev!.mod, rev };
      else if (op.kind === 'del') output = { op: 'del', prev: op.prev!.value, prevMod: op.prev!.mod, rev };
      else output = op.succeeded ? { op: 'cas', ok: true, rev } : { op: 'cas', ok: false, current: op.kv!.value, mod: op.kv!.mod, rev };
    }
    const kop: KVOp = { client: op.client, call: op.call, ret: output === undefined ? Infinity : op.ret!, input, output };
    source.set(input, op);
    partitions.set(op.key, [...(partitions.get(op.key) ?? []), kop]);
  }
  return { partitions, source };
}

/**
 * Linearizability of every register key; deletes without an answer resolved by the watch history's deletes of that
 * key (a delete no client sent is a violation). An illegal key is explained by the few operations that show it, or
 * cut down by the minimiser.
 */
export function checkRegistersV3(ops: V3Op[], log: WatchEventSeen[] | undefined, o: { isRegister: (key: string) => boolean; t0?: number; timeoutMs?: number; minimiseMs?: number }): { report: LinearizabilityReport; violations: string[] } {
  const h = registerHistoriesV3(ops, o.isRegister);
  const start = Date.now();
  const violations: string[] = [];
  const report: LinearizabilityReport = { verdict: 'ok', keys: 0, ops: 0, steps: 0, illegal: [], unknown: [], checkMs: 0, minimal: [] };
  for (const [key, raw] of h.partitions) {
    let list = raw;
    if (log) {
      const r = resolveDeletes(raw, log.filter((e) => e.key === key && e.type === 'delete').map((e) => e.rev));
      list = r.ops;
      for (const rev of r.unexplained) violations.push(`${key}: deleted at revision ${rev}, by no delete a client sent`);
    }
    const revs = revisionsOf(list);
    const model = kvModel(revs);
    const prepared = prepareKV(revs)(list);
    const res = checkOperations(model, prepared, { timeoutMs: o.timeoutMs ?? 120000 });
    report.keys++;
    report.ops += prepared.length;
    report.steps += res.steps;
    if (res.verdict === 'unknown') {
      report.unknown.push(key);
      violations.push(`${key}: the linearizability search gave up (time or steps), verdict unknown`);
    }
    if (res.verdict !== 'illegal') continue;
    report.illegal.push(key);
    const small = explainKV(prepared, revs, res.stuckAt!) ?? minimise(model, list, kvShrink(revs), { timeoutMs: o.minimiseMs ?? 30000 }).ops;
    // Each op as it was recorded; one whose answer the fragment did not need to stay illegal says so.
    const original = new Map(list.map((op) => [op.input, op]));
    const lines = small.map((op) => {
      const rec = h.source.get(op.input);
      const was = original.get(op.input);
      const weakened = op.output === undefined && was?.output !== undefined ? ' (its answer is not needed)' : '';
      return `${describeKV(was ?? op, o.t0)}${rec ? ` via ${rec.member}, op #${rec.id}` : ''}${weakened}`;
    });
    report.minimal.push({ key, lines });
    violations.push(`${key} is not linearizable; ${small.length < list.length ? 'a small illegal fragment' : 'its history'}:\n    ${lines.join('\n    ')}`);
  }
  report.verdict = report.illegal.length ? 'illegal' : report.unknown.length ? 'unknown' : 'ok';
  report.checkMs = Date.now() - start;
  return { report, violations };
}

/**
 * Header revisions never go back in real time: an operation called after another returned answers a revision at
 * least as high (a linearizable read sees every write acknowledged before it was sent), and a write that makes a
 * revision answers a higher one. Across every key, so a stale member shows even where no key's history does.
 */
export function checkRevisionOrder(ops: V3Op[], o: { t0?: number } = {}): string[] {
  const answered = ops.filter((op) => op.rev !== undefined && op.ret !== null && op.error === undefined && op.kind !== 'grant' && op.kind !== 'keepalive' && op.kind !== 'revoke');
  const byRet = [...answered].sort((a, b) => a.ret! - b.ret!);
  const byCall = [...answered].sort((a, b) => a.call - b.call);
  const out: string[] = [];
  let i = 0;
  let top: V3Op | undefined;
  for (const x of byCall) {
    while (i < byRet.length && byRet[i].ret! < x.call) {
      if (!top || byRet[i].rev! > top.rev!) top = byRet[i];
      i++;
    }
    if (!top) continue;
    const makes = CREATES.has(x.kind) || (x.kind === 'cas' && x.succeeded) || (x.kind === 'del' && x.prev?.value !== null);
    if (x.rev! < top.rev! || (makes && x.rev! <= top.rev!)) {
      const t = (v: number) => (v - (o.t0 ?? 0)).toFixed(1);
      out.push(`revision went back: ${x.kind} ${x.key} via ${x.member} (op #${x.id}, sent at ${t(x.call)} ms) answered revision ${x.rev}, after ${top.kind} ${top.key} via ${top.member} (op #${top.id}) had answered ${top.rev} at ${t(top.ret!)} ms`);
      if (out.length >= 10) break;
    }
  }
  return out;
}

/**
 * The end state: every v3 key at the end revision is what the watch history makes of the keys at the start (no
 * acknowledged write lost, nothing else there), and every key written once and acknowledged is there as it was
 * acknowledged.
 */
export function checkFinalV3(ops: V3Op[], log: WatchEventSeen[], initial: FinalKV[], final: FinalKV[], o: { uniquePrefix: string }): string[] {
  const out: string[] = [];
  const state = new Map(initial.map((k) => [k.key, k]));
  for (const e of log) {
    if (e.type === 'delete') state.delete(e.key);
    else state.set(e.key, { key: e.key, value: e.value, mod: e.rev, create: e.create, version: e.version, lease: e.lease });
  }
  const here = new Map(final.map((k) => [k.key, k]));
  const show = (k: FinalKV | undefined) => (k ? `${JSON.stringify(k.value)}@${k.mod} (created ${k.create}, version ${k.version}${k.lease !== '0' ? `, lease ${k.lease}` : ''})` : 'absent');
  for (const key of new Set([...state.keys(), ...here.keys()])) {
    const [want, got] = [state.get(key), here.get(key)];
    if (show(want) !== show(got)) out.push(`end state: ${key} is ${show(got)}, the watch history makes it ${show(want)}`);
  }
  for (const op of ops) {
    if (op.kind !== 'uput' || outcomeV3(op) !== 'ok') continue;
    const k = here.get(op.key);
    if (!k || k.value !== op.value || k.mod !== op.rev) out.push(`lost write: ${op.key}=${JSON.stringify(op.value)} acknowledged at revision ${op.rev} (op #${op.id}), at the end ${show(k)}`);
  }
  return out.slice(0, 30);
}

/**
 * Leases. A lease's expiry is no earlier than TTL after any renewal was sent (the grant, or a keep-alive answered
 * with a TTL: the leader refreshed it between send and answer, and a new leader's lessor starts every lease with its
 * whole TTL and more), so its keys must not go before the latest of those, unless a revoke was sent before. When they
 * went is bounded from above by the first answer that showed a revision at or past their delete (any member's
 * header revision is one it had applied) and by the watchers' receipt of the delete. And once renewals stop, the
 * keys must go: within twice the TTL (a leader change in between restarts the TTL, plus an election timeout) and a
 * few seconds of the expiry loop and its proposal, where no fault was injected meanwhile; and by the end, in any case.
 */
export function checkLeases(r: Pick<V3Recorded, 'ops' | 'final' | 'faults' | 't0'>, log: WatchEventSeen[], watchers: WatcherLog[], o: { leasePrefix: string; graceMs?: number }): string[] {
  const out: string[] = [];
  const grace = o.graceMs ?? 3000;
  const t = (v: number) => `${((v - r.t0) / 1000).toFixed(3)} s`;
  const answered = r.ops.filter((op) => op.rev !== undefined && op.ret !== null && op.error === undefined).sort((a, b) => a.ret! - b.ret!);
  const linearizable = answered.filter((op) => op.kind !== 'grant' && op.kind !== 'keepalive' && op.kind !== 'revoke');
  /** The earliest time an answer showed revision `rev` or later (applied by then). */
  const shownBy = (rev: number) => answered.find((op) => op.rev! >= rev);
  const received = new Map<string, number>();
  for (const w of watchers) for (const e of w.events) {
    const id = `${e.rev} ${e.key}`;
    received.set(id, Math.min(received.get(id) ?? Infinity, e.at));
  }
  const deletes = new Map(log.filter((e) => e.type === 'delete').map((e) => [e.key, e]));
  const written = new Set(log.filter((e) => e.type === 'put').map((e) => e.key));
  const byLease = new Map<string, V3Op[]>();
  for (const op of r.ops) if (op.lease !== undefined && op.lease !== '0') byLease.set(op.lease, [...(byLease.get(op.lease) ?? []), op]);
  for (const [lease, ops] of byLease) {
    const grant = ops.find((op) => op.kind === 'grant' && outcomeV3(op) === 'ok');
    if (!grant) continue;
    const renewals = ops.filter((op) => (op.kind === 'grant' || op.kind === 'keepalive') && outcomeV3(op) === 'ok' && op.grantedTTL! > 0);
    const last = renewals.reduce((a, x) => (x.call + x.grantedTTL! * 1000 > a.call + a.grantedTTL! * 1000 ? x : a));
    const expiresNoEarlier = last.call + last.grantedTTL! * 1000;
    const revoke = ops.filter((op) => op.kind === 'revoke' && outcomeV3(op) !== 'refused').sort((a, b) => a.call - b.call)[0];
    const keys = ops.filter((op) => op.kind === 'lput' && outcomeV3(op) !== 'refused' && outcomeV3(op) !== 'failed');
    for (const put of keys) {
      const del = deletes.get(put.key);
      if (!del) continue;
      const by = shownBy(del.rev);
      const goneBy = Math.min(by?.ret ?? Infinity, received.get(`${del.rev} ${put.key}`) ?? Infinity);
      const allowed = Math.min(expiresNoEarlier, revoke?.call ?? Infinity);
      // A few ms for the clocks' rounding (the lessor's is Date.now()).
      if (goneBy < allowed - 5) {
        out.push(`lease ${lease} (TTL ${last.grantedTTL} s): its key ${put.key} was deleted at revision ${del.rev}, seen by ${t(goneBy)}${by && by.ret! <= goneBy ? ` (op #${by.id} via ${by.member} answered revision ${by.rev})` : ' (by a watcher)'}, before the lease could expire at ${t(expiresNoEarlier)} (${last.kind} op #${last.id} via ${last.member} sent at ${t(last.call)}, answered TTL ${last.grantedTTL})${revoke ? `; revoked at ${t(revoke.call)}` : ''}`);
      }
    }
    // Gone in time once renewals stopped: every renewal answered, no fault from the last one to the deadline.
    const made = keys.filter((put) => written.has(put.key));
    if (revoke || made.length === 0) continue;
    const sent = ops.filter((op) => op.kind === 'keepalive' || op.kind === 'grant');
    if (sent.some((op) => op.ret === null || op.error !== undefined)) continue;
    const lastSent = Math.max(...sent.map((op) => op.ret!));
    const deadline = lastSent + 2 * last.grantedTTL! * 1000 + 500 + grace;
    const quiet = r.faults.every((f) => r.t0 + (f.healedAt ?? Infinity) < lastSent - 1000 || r.t0 + f.at > deadline);
    if (!quiet) continue;
    for (const put of made) {
      const del = deletes.get(put.key);
      // Still there at the deadline: an answer below the delete's revision to a read sent after it.
      const laterStill = linearizable.filter((op) => op.call > deadline && (del === undefined || op.rev! < del.rev)).sort((a, b) => a.call - b.call)[0];
      if (laterStill) out.push(`lease ${lease} (TTL ${last.grantedTTL} s, last renewed ${t(lastSent)}): its key ${put.key} was still there at ${t(laterStill.call)} (op #${laterStill.id} answered revision ${laterStill.rev}${del ? `, the key went at ${del.rev}` : ''}), past ${t(deadline)}`);
    }
  }
  for (const k of r.final) if (k.key.startsWith(o.leasePrefix)) out.push(`lease key still there at the end: ${k.key} (lease ${k.lease}, revision ${k.mod})`);
  return out.slice(0, 30);
}

export interface V3Report {
  ops: { total: number; byKind: Record<string, number>; byOutcome: Record<string, number> };
  linearizability: LinearizabilityReport;
  watch: { watchers: number; sessions: number; events: number; revisions: number };
  leases: { granted: number; keepAlives: number; keys: number; expired: number; revoked: number };
}

/** Every v3 check on a recorded run. */
export function checkV3(r: V3Recorded, o: { registerPrefix: string; uniquePrefix: string; leasePrefix: string }): { report: V3Report; violations: string[] } {
  const w = checkWatchers(r);
  const violations = [...w.violations];
  violations.push(...checkWrites([...r.ops, ...r.controlOps], w.log, { ...o, startRev: r.startRev, endRev: r.endRev }));
  const lin = checkRegistersV3(r.ops, w.log, { isRegister: (key) => key.startsWith(o.registerPrefix), t0: r.t0 });
  violations.push(...lin.violations);
  violations.push(...checkRevisionOrder(r.ops, { t0: r.t0 }));
  violations.push(...checkFinalV3(r.ops, w.log, r.initial, r.final, o));
  violations.push(...checkLeases(r, w.log, r.watchers, o));
  const count = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});
  const revoked = new Set(r.ops.filter((op) => op.kind === 'revoke' && outcomeV3(op) === 'ok').map((op) => op.lease));
  const leaseOf = new Map(r.ops.filter((op) => op.kind === 'lput').map((op) => [op.key, op.lease]));
  const leaseDeletes = w.log.filter((e) => e.type === 'delete' && e.key.startsWith(o.leasePrefix));
  const report: V3Report = {
    ops: { total: r.ops.length, byKind: count(r.ops.map((op) => op.kind)), byOutcome: count(r.ops.map(outcomeV3)) },
    linearizability: lin.report,
    watch: { watchers: r.watchers.length, sessions: r.watchers.reduce((n, x) => n + x.sessions.length, 0), events: r.watchers.reduce((n, x) => n + x.events.length, 0), revisions: r.endRev - r.startRev },
    leases: {
      granted: r.ops.filter((op) => op.kind === 'grant' && outcomeV3(op) === 'ok').length,
      keepAlives: r.ops.filter((op) => op.kind === 'keepalive' && outcomeV3(op) === 'ok').length,
      keys: w.log.filter((e) => e.type === 'put' && e.key.startsWith(o.leasePrefix)).length,
      expired: leaseDeletes.filter((e) => !revoked.has(leaseOf.get(e.key))).length,
      revoked: revoked.size,
    },
  };
  return { report, violations };
}
