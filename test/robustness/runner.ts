/**
 * A robustness run: a 3-member cluster of our etcd on 127.0.0.1, concurrent v2 clients for a bounded time and
 * number of operations, faults injected from a seed, then every check on the whole history. The same seed replays
 * the same choices (workload, faults, their targets and timings); the timings of a real cluster vary, so a replay
 * retraces a failure's schedule rather than its exact interleaving.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';
import { Leaf, LinearizabilityReport, REGISTER_PREFIX, checkFinalKeys, checkRegisters, checkTTLReads, leaves } from './checks';
import { FAULT_KINDS, FaultInjector, FaultKind, FaultRecord } from './faults';
import { HistoryRecorder, OpKind, RecordedOp, outcome } from './history';
import { between, pick, prng } from './prng';
import { V3Report, V3Recorded, checkV3 } from './checks-v3';
import { V3Recorder } from './history-v3';
import { V3Options, V3Workload, V3_LEASE, V3_REG, V3_UNIQ, staleReadControlV3 } from './workload-v3';

export const UNIQUE_PREFIX = '/uniq/';
export const TTL_PREFIX = '/ttl/';
export const CONTROL_KEY = '/ctl/stale';

export interface RunOptions {
  seed: number;
  /** How long the clients run, and at most how many operations they send. */
  durationMs: number;
  maxOps: number;
  clients: number;
  registers: number;
  /** The v2 workload (clients, registers, TTL keys above), and the v3 one (false: none). */
  v2: boolean;
  v3: V3Options | false;
  faults: readonly FaultKind[];
  /** TTL keys in the workload. */
  ttl: boolean;
  /** A client gives up on a request after this long (its outcome is then unknown). */
  requestTimeoutMs: number;
  /** Run the negative control (stale reads from a partitioned follower must be caught) at the end. */
  control: boolean;
  /** Where the history and the members' logs are saved: always when given, else on failure under the temp dir. */
  outDir?: string;
  log: (line: string) => void;
}

export const DEFAULTS: Omit<RunOptions, 'seed' | 'log'> = {
  durationMs: 40000,
  maxOps: 100000,
  clients: 6,
  registers: 4,
  v2: true,
  v3: { clients: 4, registers: 3, leaseClients: 2, watchers: 2, requestTimeoutMs: 4000 },
  faults: FAULT_KINDS,
  ttl: true,
  requestTimeoutMs: 4000,
  control: true,
};

export interface RunReport {
  seed: number;
  /** Operations by kind and by outcome. */
  ops: { total: number; byKind: Record<string, number>; byOutcome: Record<string, number> };
  faults: { total: number; byKind: Record<string, number>; list: FaultRecord[] };
  linearizability?: LinearizabilityReport;
  lostWrites: string[];
  phantomWrites: string[];
  /** Every finding, as text; empty when the run passed. */
  violations: string[];
  /** The negative control: the stale-read history and the checker's verdict on it (it must be 'illegal'). */
  control?: { verdict: string; reads: number; staleReads: number; minimal: string[] };
  /** The v3 workload's figures, its negative control (serializable reads on a cut-off follower) and the members' HashKV. */
  v3?: V3Report & { control?: { verdict: string; reads: number; staleReads: number; minimal: string[] }; members?: { rev: number; hashes: string[] } };
  /** Where the history and logs were written. */
  saved?: string;
  elapsedMs: number;
}

/** The whole of a saved run: enough to check it again (`--check FILE`). */
export interface SavedRun {
  options: Omit<RunOptions, 'log'>;
  t0: number;
  ops: RecordedOp[];
  controlOps: RecordedOp[];
  faults: FaultRecord[];
  /** What the final reads found (all keys, once everything had settled). */
  present: Leaf[];
  /** The v3 workload's history. */
  v3?: V3Recorded;
}

/** Runs one seeded robustness run; never throws for a finding (they are in `violations`). */
export async function runRobustness(o: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const log = o.log;
  const rnd = prng(o.seed);
  log(`robustness run: seed ${o.seed}, ${o.durationMs / 1000} s, at most ${o.maxOps} ops, ${o.v2 ? `v2: ${o.clients} clients` : 'no v2'}, ${o.v3 ? `v3: ${o.v3.clients} clients, ${o.v3.leaseClients} lease clients, ${o.v3.watchers} watchers` : 'no v3'}, faults: ${o.faults.join(', ') || 'none'}`);
  const cluster = await TestCluster.start(3, { args: ['--snapshot-count', '300', '--experimental-snapshot-catchup-entries', '100'] });
  const recorder = new HistoryRecorder(o.requestTimeoutMs);
  const controlRecorder = new HistoryRecorder(o.requestTimeoutMs);
  const t0 = performance.now();
  const injector = new FaultInjector(cluster, prng(o.seed ^ 0x5eed), o.faults, t0, log);
  const violations: string[] = [];
  let present: Leaf[] = [];
  let control: RunReport['control'];
  const outputs = new Map<string, string>();
  const v3 = o.v3 ? new V3Workload(cluster.members, o.v3, prng((o.seed ^ 0x33c0ffee) >>> 0), log) : undefined;
  const v3control = new V3Recorder();
  let v3rec: V3Recorded | undefined;
  const v3extra: Pick<NonNullable<RunReport['v3']>, 'control' | 'members'> = {};
  try {
    if (v3) await v3.start();
    // Every register starts with a value (written before any fault), so compares always have one to expect.
    for (let k = 0; k < (o.v2 ? o.registers : 0); k++) {
      await eventually(`register ${k} to be written`, async () => (outcome(await recorder.run(-1, pick(rnd, cluster.members), 'set', `${REGISTER_PREFIX}${k}`, 'PUT', { value: `init.${k}` }, { value: `init.${k}` })) === 'ok' ? true : undefined));
    }
    const end = performance.now() + o.durationMs;
    let sent = 0;
    const budget = () => performance.now() < end && sent++ < o.maxOps;
    const clients = o.v2 ? Array.from({ length: o.clients }, (_, c) => client(c, prng((o.seed + 0x9e3779b1 * (c + 1)) >>> 0), recorder, cluster.members, o, budget)) : [];
    const faults = injector.run(end).catch((err: Error) => {
      violations.push(`liveness: ${err.message}`);
    });
    await Promise.all([...clients, v3?.run(budget, o.seed), faults]);
    log(`workload done: ${recorder.ops.length + (v3?.rec.ops.length ?? 0)} ops, ${injector.done.length} faults; healing and checking`);
    await injector.release();
    await injector.waitForAgreement('once every fault was healed').catch((err: Error) => violations.push(`liveness: ${err.message}`));

    if (v3) {
      if (o.control) {
        v3extra.control = await staleReadControlV3(cluster, injector, v3, v3control, log, t0);
        if (v3extra.control.verdict !== 'illegal') violations.push(`v3 negative control: serializable reads from a partitioned follower were judged ${v3extra.control.verdict} (${v3extra.control.reads} reads, ${v3extra.control.staleReads} stale)`);
        await injector.waitForAgreement('after the v3 negative control').catch((err: Error) => violations.push(`liveness: ${err.message}`));
      }
      const fin = await v3.finish(4000);
      violations.push(...fin.violations.map((v) => `v3: ${v}`));
      const agree = await v3.membersAgree();
      violations.push(...agree.violations.map((v) => `v3: ${v}`));
      v3extra.members = { rev: agree.rev, hashes: agree.hashes };
      v3rec = {
        ops: v3.rec.ops, controlOps: v3control.ops, watchers: v3.watchers.map((w) => w.log), startRev: v3.startRev, endRev: fin.endRev,
        final: fin.final, initial: v3.initial, t0, faults: injector.done.map((f) => ({ at: f.at, healedAt: f.healedAt })),
      };
    }

    // Final reads: every register (as operations of the history), then the TTL keys gone, then all keys.
    for (let k = 0; k < (o.v2 ? o.registers : 0); k++) {
      await eventually(`a final read of register ${k}`, async () => (outcome(await recorder.run(-2, pick(rnd, cluster.members), 'get', `${REGISTER_PREFIX}${k}`, 'GET', { quorum: true }, { quorum: true })) === 'ok' ? true : undefined), 60000).catch((err: Error) => violations.push(`liveness: ${err.message}`));
    }
    const ttlPuts = recorder.ops.filter((op) => op.kind === 'ttl-put');
    if (ttlPuts.length > 0) {
      const lastExpiry = Math.max(...ttlPuts.map((op) => op.wall + op.ttl! * 1000));
      await eventually('every TTL key to expire', async () => ((await listKeys(cluster.members[0], TTL_PREFIX, true)).length === 0 ? true : undefined), Math.max(0, lastExpiry - Date.now()) + 30000).catch(() => undefined);
    }
    if (o.control && o.v2) {
      control = await staleReadControl(cluster, injector, controlRecorder, log, t0);
      if (control.verdict !== 'illegal') violations.push(`negative control: stale reads from a partitioned follower were judged ${control.verdict} (${control.reads} reads, ${control.staleReads} stale)`);
    }
    present = await listKeys(cluster.members[0], '/', true);
    violations.push(...(await storesEqual(cluster)));
  } catch (err) {
    violations.push(`run: ${(err as Error).stack ?? (err as Error).message}`);
  } finally {
    await v3?.stopWatchers(0, 0).catch(() => undefined);
    v3?.close();
    await injector.release().catch(() => undefined);
    for (const m of cluster.members) outputs.set(m.name, injector.output(m));
    await cluster.stop();
  }

  // The checks on the whole history.
  const ops = recorder.ops;
  const lin = checkRegisters(ops, { t0 });
  violations.push(...lin.violations);
  const keys = checkFinalKeys([...ops, ...controlRecorder.ops], present, { uniquePrefix: UNIQUE_PREFIX, ttlPrefix: TTL_PREFIX });
  violations.push(...keys.lost.map((l) => `lost write: ${l}`), ...keys.phantom.map((p) => `never written: ${p}`));
  violations.push(...checkTTLReads(ops).map((t) => `TTL: ${t}`));
  let v3report: RunReport['v3'];
  if (v3rec) {
    const r3 = checkV3(v3rec, { registerPrefix: V3_REG, uniquePrefix: V3_UNIQ, leasePrefix: V3_LEASE });
    violations.push(...r3.violations.map((v) => `v3: ${v}`));
    v3report = { ...r3.report, ...v3extra };
  }

  const report: RunReport = {
    seed: o.seed,
    ops: { total: ops.length, byKind: count(ops.map((op) => op.kind)), byOutcome: count(ops.map(outcome)) },
    faults: { total: injector.done.length, byKind: count(injector.done.map((f) => f.kind)), list: injector.done },
    linearizability: lin.report,
    lostWrites: keys.lost,
    phantomWrites: keys.phantom,
    violations,
    control,
    v3: v3report,
    elapsedMs: Date.now() - started,
  };
  if (o.outDir || violations.length > 0) {
    const dir = o.outDir ?? path.join(os.tmpdir(), `ts-etcd-robustness-${o.seed}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    const { log: _log, ...options } = o;
    const saved: SavedRun = { options, t0, ops, controlOps: controlRecorder.ops, faults: injector.done, present, v3: v3rec };
    writeFileSync(path.join(dir, 'history.json'), JSON.stringify(saved));
    writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report, null, 2));
    for (const [name, out] of outputs) writeFileSync(path.join(dir, `${name}.log`), out);
    report.saved = dir;
  }
  return report;
}

/** One client: a seeded sequence of operations, each to a member picked at random, until the budget runs out. */
async function client(c: number, rnd: () => number, h: HistoryRecorder, members: MemberSlot[], o: RunOptions, budget: () => boolean): Promise<void> {
  /** What this client last saw of each register (value and index), for its compares. */
  const known = new Map<string, { value: string; index: number }>();
  const learn = (op: RecordedOp) => {
    if (op.node?.value) known.set(op.key, { value: op.node.value, index: op.node.modifiedIndex });
    else if (outcome(op) === 'failed') known.delete(op.key);
  };
  let n = 0;
  while (budget()) {
    const m = pick(rnd, members);
    const r = rnd();
    const reg = `${REGISTER_PREFIX}${between(rnd, 0, o.registers - 1)}`;
    const value = `c${c}.${n++}`;
    let op: RecordedOp;
    // A quarter register reads, a tenth sets, a fifth compares (a read instead while this client has seen no value
    // of that register), 30% keys written once, 15% TTL keys (or keys written once without TTLs).
    if (r < 0.25 || (r < 0.55 && r >= 0.35 && !known.has(reg))) {
      op = await h.run(c, m, 'get', reg, 'GET', { quorum: true }, { quorum: true });
    } else if (r < 0.35) {
      op = await h.run(c, m, 'set', reg, 'PUT', { value }, { value });
    } else if (r < 0.55) {
      const k = known.get(reg)!;
      // Half the compares by value, half by index.
      op = rnd() < 0.5
        ? await h.run(c, m, 'cas', reg, 'PUT', { value, prevValue: k.value }, { value, prevValue: k.value, expect: k.value })
        : await h.run(c, m, 'cas', reg, 'PUT', { value, prevIndex: k.index }, { value, prevIndex: k.index, expect: k.value });
    } else if (r < 0.85 || !o.ttl) {
      op = await h.run(c, m, 'put', `${UNIQUE_PREFIX}c${c}.${n}`, 'PUT', { value }, { value });
    } else {
      const ttl = between(rnd, 1, 3);
      const key = `${TTL_PREFIX}c${c}.${n}`;
      const put = await h.run(c, m, 'ttl-put', key, 'PUT', { value, ttl }, { value, ttl });
      if (outcome(put) === 'ok') op = await h.run(c, pick(rnd, members), 'ttl-get', key, 'GET', { quorum: true }, { quorum: true, of: put.id });
      else op = put;
    }
    learn(op);
  }
}

/**
 * The negative control: a follower cut off from the others goes on answering reads without quorum=true from its
 * own, stale store, while writes through the leader commit on the majority. Its reads, made after a write was
 * acknowledged, return the value before it: the checker must call that history illegal.
 */
async function staleReadControl(c: TestCluster, injector: FaultInjector, h: HistoryRecorder, log: (l: string) => void, t0: number): Promise<NonNullable<RunReport['control']>> {
  const leader = await eventually('a leader for the negative control', () => injector.leader());
  const follower = c.members.find((m) => m !== leader)!;
  const first = await h.run(0, leader, 'set', CONTROL_KEY, 'PUT', { value: 'ctl.0' }, { value: 'ctl.0' });
  if (outcome(first) !== 'ok') throw new Error(`negative control: the first write failed: ${first.error}`);
  await eventually('the follower to hold the first value', async () => {
    const a = await request(follower.clientURL, 'GET', `/v2/keys${CONTROL_KEY}`);
    return a.status === 200 && (JSON.parse(a.body) as { node: { value: string } }).node.value === 'ctl.0' ? true : undefined;
  });
  c.partition([follower]);
  try {
    let acked: number | undefined;
    let staleAfterAck = 0;
    const deadline = performance.now() + 30000;
    const writer = (async () => {
      for (let i = 1; i <= 5 && performance.now() < deadline; i++) {
        const w = await h.run(0, leader, 'set', CONTROL_KEY, 'PUT', { value: `ctl.${i}` }, { value: `ctl.${i}` });
        if (outcome(w) === 'ok') acked ??= w.ret!;
      }
    })();
    // Reads until at least two were sent after a write was acknowledged (and the writer is done).
    const reader = (async () => {
      let reads = 0;
      while (performance.now() < deadline && (staleAfterAck < 2 || reads < 10)) {
        const sentAt = performance.now();
        await h.run(1, follower, 'get', CONTROL_KEY, 'GET', { quorum: false }, { quorum: false });
        reads++;
        if (acked !== undefined && sentAt > acked) staleAfterAck++;
      }
    })();
    await Promise.all([writer, reader]);
  } finally {
    c.heal();
  }
  const lin = checkRegisters(h.ops, { t0, isRegister: (key) => key === CONTROL_KEY });
  const reads = h.ops.filter((op) => op.kind === 'get');
  const staleReads = reads.filter((op) => op.node?.value === 'ctl.0').length;
  const minimal = lin.report.minimal[0]?.lines ?? [];
  log(`negative control: ${reads.length} reads from the cut-off follower ${follower.name} without quorum, ${staleReads} of the first value: ${lin.report.verdict}${minimal.length ? `; fragment:\n    ${minimal.join('\n    ')}` : ''}`);
  return { verdict: lin.report.verdict, reads: reads.length, staleReads, minimal };
}

/** Every leaf under `prefix`, as a member answers a recursive GET (quorum or local). */
async function listKeys(m: MemberSlot, prefix: string, quorum: boolean): Promise<Leaf[]> {
  const a = await request(m.clientURL, 'GET', `/v2/keys${prefix}?recursive=true&sorted=true${quorum ? '&quorum=true' : ''}`, { timeoutMs: 30000 });
  if (a.status === 404) return [];
  if (a.status !== 200) throw new Error(`GET ${prefix} via ${m.name}: ${a.status} ${a.body}`);
  return leaves((JSON.parse(a.body) as { node: Parameters<typeof leaves>[0] }).node);
}

/**
 * Every member ends with the same store: once all have applied up to the same index, their whole trees (read
 * locally from each) are equal. Waits (polling) for them to reach one index; a difference then is a violation.
 */
async function storesEqual(c: TestCluster): Promise<string[]> {
  type View = { index: string; body: string };
  const views = async (): Promise<View[]> =>
    Promise.all(c.members.map(async (m) => {
      const a = await request(m.clientURL, 'GET', '/v2/keys/?recursive=true&sorted=true', { timeoutMs: 30000 });
      return { index: String(a.headers['x-etcd-index']), body: a.body };
    }));
  let last: View[] = [];
  try {
    await eventually('every member at the same index with the same store', async () => {
      last = await views();
      return last.every((v) => v.index === last[0].index && v.body === last[0].body) ? true : undefined;
    }, 60000);
    return [];
  } catch {
    if (last.length === 0 || last.some((v) => v.index !== last[0].index)) return [`stores: the members did not reach one index within 60 s (${last.map((v, i) => `${c.members[i].name} at ${v.index}`).join(', ')})`];
    const trees = last.map((v) => new Map(leaves((JSON.parse(v.body) as { node: Parameters<typeof leaves>[0] }).node).map((l) => [l.key, `${l.value}@${l.modifiedIndex}`])));
    const diffs: string[] = [];
    for (const key of new Set(trees.flatMap((t) => [...t.keys()]))) {
      const vs = trees.map((t) => t.get(key) ?? 'absent');
      if (vs.some((v) => v !== vs[0])) diffs.push(`${key}: ${vs.map((v, i) => `${c.members[i].name} ${v}`).join(', ')}`);
    }
    return [`stores differ at index ${last[0].index}: ${diffs.slice(0, 20).join('; ') || 'same leaves, different trees'}`];
  }
}

function count(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** The report in a few lines (what the script and the CI test print). */
export function summary(r: RunReport): string {
  const lin = r.linearizability;
  const lines = [
    `seed ${r.seed}: ${r.violations.length === 0 ? 'PASS' : 'FAIL'} in ${(r.elapsedMs / 1000).toFixed(0)} s`,
    `  ops ${r.ops.total} (${fmt(r.ops.byKind)}); outcomes ${fmt(r.ops.byOutcome)}`,
    `  faults ${r.faults.total} (${fmt(r.faults.byKind)})`,
    lin ? `  linearizability: ${lin.verdict} on ${lin.keys} registers (${lin.ops} ops checked, ${lin.steps} steps, ${lin.checkMs} ms)` : '  linearizability: not checked',
    `  lost writes ${r.lostWrites.length}, never-written keys ${r.phantomWrites.length}`,
  ];
  if (r.control) lines.push(`  negative control (non-quorum reads on a cut-off follower): ${r.control.verdict === 'illegal' ? 'caught' : 'NOT caught'} (${r.control.staleReads}/${r.control.reads} stale reads)`);
  const v3 = r.v3;
  if (v3) {
    const l = v3.linearizability;
    lines.push(
      `  v3 ops ${v3.ops.total} (${fmt(v3.ops.byKind)}); outcomes ${fmt(v3.ops.byOutcome)}`,
      `  v3 linearizability: ${l.verdict} on ${l.keys} registers (${l.ops} ops checked, ${l.steps} steps, ${l.checkMs} ms)`,
      `  v3 watch: ${v3.watch.events} events to ${v3.watch.watchers} watchers over ${v3.watch.revisions} revisions, ${v3.watch.sessions} sessions`,
      `  v3 leases: ${v3.leases.granted} granted, ${v3.leases.keepAlives} keep-alives answered, ${v3.leases.keys} keys, ${v3.leases.expired} expired, ${v3.leases.revoked} revoked`,
    );
    if (v3.members) lines.push(`  v3 members at revision ${v3.members.rev}: ${v3.members.hashes.every((h) => h === v3.members!.hashes[0]) ? `one HashKV (${v3.members.hashes[0]})` : 'HashKV differs'}`);
    if (v3.control) lines.push(`  v3 negative control (serializable reads on a cut-off follower): ${v3.control.verdict === 'illegal' ? 'caught' : 'NOT caught'} (${v3.control.staleReads}/${v3.control.reads} stale reads)`);
  }
  for (const v of r.violations) lines.push(`  VIOLATION ${v}`);
  if (r.saved) lines.push(`  history and logs saved in ${r.saved}`);
  return lines.join('\n');
}

function fmt(o: Record<string, number>): string {
  return Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ');
}
