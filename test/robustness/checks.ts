/**
 * The checks on a whole history: linearizability of every register (P-compositional, one key at a time), the
 * indexes every answer showed (one value per index, one index per value), no acknowledged write lost and nothing
 * present that was never written, TTL keys neither gone early nor left behind. Pure functions of the history and of
 * what the final reads saw, so that a saved history can be checked again offline.
 */
import { CheckOptions, Verdict, checkPartitions, minimise } from './linearizability/checker';
import { RegisterInput, RegisterOp, RegisterOutput, describe, prepare, registerModel, registerShrink } from './linearizability/register';
import { NodeSeen, RecordedOp, outcome } from './history';

export const REGISTER_PREFIX = '/reg/';

export interface LinearizabilityReport {
  verdict: Verdict;
  keys: number;
  /** Operations given to the checker (after pruning), and the search steps it took, over all keys. */
  ops: number;
  steps: number;
  illegal: string[];
  unknown: string[];
  checkMs: number;
  /** For each illegal key: a small fragment that is still illegal, one line per operation. */
  minimal: { key: string; lines: string[] }[];
}

/** The register operations of a history, per key, as the checker takes them; and what the indexes say. */
export function registerHistories(ops: RecordedOp[], isRegister = (key: string) => key.startsWith(REGISTER_PREFIX)): {
  partitions: Map<string, RegisterOp[]>;
  indexKnown: Map<string, Set<string>>;
  source: Map<RegisterInput, RecordedOp>;
  violations: string[];
} {
  const violations: string[] = [];
  // Every (key, value, modifiedIndex) an answer showed.
  const indexOf = new Map<string, Map<string, number>>();
  const byIndex = new Map<number, { key: string; value: string | null }>();
  const saw = (key: string, n: NodeSeen | null | undefined, op: RecordedOp) => {
    if (!n || n.value === null) return;
    const m = indexOf.get(key) ?? new Map<string, number>();
    indexOf.set(key, m);
    const had = m.get(n.value);
    if (had !== undefined && had !== n.modifiedIndex) violations.push(`${key}: value ${JSON.stringify(n.value)} answered with modifiedIndex ${had} and ${n.modifiedIndex} (op #${op.id})`);
    m.set(n.value, n.modifiedIndex);
    const other = byIndex.get(n.modifiedIndex);
    if (other && (other.key !== key || other.value !== n.value)) {
      violations.push(`index ${n.modifiedIndex} names two writes: ${other.key}=${JSON.stringify(other.value)} and ${key}=${JSON.stringify(n.value)} (op #${op.id})`);
    }
    byIndex.set(n.modifiedIndex, { key, value: n.value });
  };
  for (const op of ops) {
    const o = outcome(op);
    if (o !== 'ok' && o !== 'failed') continue;
    saw(op.key, op.node, op);
    saw(op.key, op.prev, op);
    if (o === 'ok' && op.value !== undefined && op.kind !== 'get' && op.kind !== 'ttl-get' && op.node?.value !== op.value) {
      violations.push(`${op.key}: a write of ${JSON.stringify(op.value)} answered the node ${JSON.stringify(op.node)} (op #${op.id})`);
    }
  }
  const partitions = new Map<string, RegisterOp[]>();
  const source = new Map<RegisterInput, RecordedOp>();
  for (const op of ops) {
    if (!isRegister(op.key) || (op.kind !== 'get' && op.kind !== 'set' && op.kind !== 'cas')) continue;
    const o = outcome(op);
    if (o === 'refused') continue;
    const input: RegisterInput = op.kind === 'get' ? { op: 'get' } : op.kind === 'set' ? { op: 'set', value: op.value! } : { op: 'cas', value: op.value!, expect: op.expect!, prevIndex: op.prevIndex };
    let output: RegisterOutput | undefined;
    if (o === 'ok') {
      if (op.kind === 'get') output = { op: 'get', value: op.node?.value ?? null };
      else if (op.kind === 'set') output = { op: 'set', prev: op.prev?.value ?? null };
      else output = { op: 'cas', ok: true };
    } else if (o === 'failed') {
      output = failedCompare(op, byIndex);
      if (!output) {
        violations.push(`${op.key}: a failed compare-and-swap whose cause does not parse: ${JSON.stringify(op.cause)} (op #${op.id})`);
        continue;
      }
    }
    const rop: RegisterOp = { client: op.client, call: op.call, ret: output === undefined ? Infinity : op.ret!, input, output };
    source.set(input, op);
    const list = partitions.get(op.key) ?? [];
    list.push(rop);
    partitions.set(op.key, list);
  }
  const indexKnown = new Map([...indexOf].map(([k, m]) => [k, new Set(m.keys())]));
  return { partitions, indexKnown, source, violations };
}

/** What a failed compare found: its cause is etcd's "[expected != current]" (value or index), 404 for no key. */
function failedCompare(op: RecordedOp, byIndex: Map<number, { key: string; value: string | null }>): RegisterOutput | undefined {
  if (op.errorCode === 100) return { op: 'cas', ok: false, current: null };
  const m = /^\[(.*) != (.*)\]$/.exec(op.cause ?? '');
  if (!m) return undefined;
  if (op.prevIndex === undefined) return { op: 'cas', ok: false, current: m[2] };
  const index = Number(m[2]);
  const named = byIndex.get(index);
  if (named && named.key === op.key) return { op: 'cas', ok: false, current: named.value };
  return { op: 'cas', ok: false, unmappedIndex: index };
}

/** Linearizability of every register of the history; an illegal key is cut down to a fragment a human can read. */
export function checkRegisters(ops: RecordedOp[], o: CheckOptions & { t0?: number; minimiseMs?: number; isRegister?: (key: string) => boolean } = {}): { report: LinearizabilityReport; violations: string[] } {
  const h = registerHistories(ops, o.isRegister);
  const start = Date.now();
  const prepared = new Map([...h.partitions].map(([k, list]) => [k, prepare(list)]));
  const model = (key: string) => {
    const known = h.indexKnown.get(key) ?? new Set<string>();
    return registerModel((v) => known.has(v));
  };
  const r = checkPartitions(model, prepared, { timeoutMs: o.timeoutMs ?? 120000, maxSteps: o.maxSteps });
  const report: LinearizabilityReport = {
    verdict: r.verdict,
    keys: r.results.length,
    ops: r.results.reduce((n, p) => n + p.ops.length, 0),
    steps: r.results.reduce((n, p) => n + p.steps, 0),
    illegal: r.results.filter((p) => p.verdict === 'illegal').map((p) => p.partition),
    unknown: r.results.filter((p) => p.verdict === 'unknown').map((p) => p.partition),
    checkMs: Date.now() - start,
    minimal: [],
  };
  for (const key of report.illegal) {
    const small = minimise(model(key), h.partitions.get(key)!, registerShrink, { timeoutMs: o.minimiseMs ?? 30000 });
    // Each op as it was recorded; one whose answer the fragment did not need to stay illegal says so.
    const original = new Map(h.partitions.get(key)!.map((op) => [op.input, op]));
    const lines = small.ops.map((op) => {
      const rec = h.source.get(op.input);
      const weakened = op.output === undefined && original.get(op.input)?.output !== undefined ? ' (its answer is not needed)' : '';
      return `${describe(original.get(op.input) ?? op, o.t0)}${rec ? ` via ${rec.member}, op #${rec.id}` : ''}${weakened}`;
    });
    report.minimal.push({ key, lines });
  }
  const violations = [...h.violations];
  for (const m of report.minimal) violations.push(`${m.key} is not linearizable; a smallest illegal fragment:\n    ${m.lines.join('\n    ')}`);
  for (const key of report.unknown) violations.push(`${key}: the linearizability search gave up (time or steps), verdict unknown`);
  return { report, violations };
}

/** A leaf of a recursive GET's tree. */
export interface Leaf {
  key: string;
  value: string;
  modifiedIndex: number;
}

/** The leaves of a v2 GET ?recursive=true answer's node. */
export function leaves(node: { key?: string; dir?: boolean; value?: string; modifiedIndex?: number; nodes?: unknown[] } | undefined): Leaf[] {
  if (!node) return [];
  if (!node.dir) return node.key !== undefined ? [{ key: node.key, value: node.value ?? '', modifiedIndex: node.modifiedIndex ?? 0 }] : [];
  return (node.nodes ?? []).flatMap((n) => leaves(n as typeof node));
}

/**
 * No acknowledged write lost: every key written once and acknowledged is there with the value and index it was
 * acknowledged with. Nothing present that was never written: every key and value present was sent by a client (a
 * write refused by a stopped listener never left, so it does not count).
 */
export function checkFinalKeys(ops: RecordedOp[], present: Leaf[], o: { uniquePrefix: string; ttlPrefix: string }): { lost: string[]; phantom: string[] } {
  const lost: string[] = [];
  const phantom: string[] = [];
  const sent = new Map<string, Set<string>>();
  for (const op of ops) {
    if (op.value === undefined || outcome(op) === 'refused') continue;
    const s = sent.get(op.key) ?? new Set<string>();
    s.add(op.value);
    sent.set(op.key, s);
  }
  const here = new Map(present.map((l) => [l.key, l]));
  for (const op of ops) {
    if (op.kind !== 'put' || outcome(op) !== 'ok') continue;
    const l = here.get(op.key);
    if (!l) lost.push(`${op.key}: acknowledged with index ${op.node?.modifiedIndex} (op #${op.id}), missing at the end`);
    else if (l.value !== op.value || l.modifiedIndex !== op.node?.modifiedIndex) {
      lost.push(`${op.key}: acknowledged as ${JSON.stringify(op.value)} at index ${op.node?.modifiedIndex} (op #${op.id}), found ${JSON.stringify(l.value)} at ${l.modifiedIndex}`);
    }
  }
  for (const l of present) {
    if (!sent.get(l.key)?.has(l.value)) phantom.push(`${l.key}=${JSON.stringify(l.value)} (index ${l.modifiedIndex}) was never written by a client`);
    else if (l.key.startsWith(o.ttlPrefix)) phantom.push(`${l.key}: a TTL key still there at the end (index ${l.modifiedIndex})`);
  }
  return { lost, phantom };
}

/**
 * A TTL key must be there for its whole TTL: the expiry time is the receiving member's clock when the write arrived
 * plus the TTL (on this same machine, so no earlier than when the client sent it plus the TTL), so a quorum read
 * answered before then must find the key with its value.
 */
export function checkTTLReads(ops: RecordedOp[]): string[] {
  const puts = new Map(ops.filter((op) => op.kind === 'ttl-put').map((op) => [op.id, op]));
  const out: string[] = [];
  for (const get of ops) {
    if (get.kind !== 'ttl-get' || outcome(get) !== 'ok' || get.of === undefined) continue;
    const put = puts.get(get.of);
    if (!put || outcome(put) !== 'ok' || get.wallRet === undefined) continue;
    const expiresNoEarlier = put.wall + put.ttl! * 1000;
    if (get.wallRet >= expiresNoEarlier) continue;
    if (get.node?.value !== put.value) {
      out.push(`${put.key}: written with ttl=${put.ttl} (op #${put.id}), a quorum read answered ${get.wallRet - put.wall} ms after the write was sent found ${JSON.stringify(get.node?.value ?? null)} (op #${get.id})`);
    }
  }
  return out;
}
