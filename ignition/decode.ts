/**
 * Decoders from positioned YAML nodes to typed values.
 *
 * A decoder checks the shape of one node (type, allowed keys, value constraints), reports every problem with the
 * node's line and column, and returns the typed value — or `undefined` when the node is unusable. Object decoders
 * remember where each key and value sits (see `posOf`) so that later stages can still point at the source.
 */
import type { Report } from './diagnostics';
import type { MappingYNode, Position, YNode } from './yaml-positions';

export const POS = Symbol('positions');

export interface Positions {
  /** Where the mapping itself starts. */
  node: Position;
  /** Where each present key's value starts. */
  values: Record<string, Position>;
}

export interface Positioned {
  readonly [POS]: Positions;
}

/** `path` names the node in messages, e.g. `storage.files[2].mode`. */
export type Decoder<T> = (node: YNode, report: Report, path: string) => T | undefined;

export type Infer<D> = D extends Decoder<infer T> ? T : never;

type Fields = Record<string, Decoder<unknown>>;

/** The decoded object: required keys are present, the others optional; plus the positions. */
export type ObjectOf<F extends Fields, R extends keyof F = never> = { [K in R]: Infer<F[K]> } & {
  [K in Exclude<keyof F, R>]?: Infer<F[K]>;
} & Positioned;

/** The positions of a decoded object or list (a list's are keyed by index), when it has them. */
export function positionsOf(value: unknown): Positions | undefined {
  return value !== null && typeof value === 'object' ? (value as Partial<Positioned>)[POS] : undefined;
}

/** Position of the value of `key` in a decoded object, or of the object itself when the key is absent. */
export function posOf(obj: Positioned, key?: string): Position {
  const p = obj[POS];
  return (key !== undefined && p.values[key]) || p.node;
}

function describe(node: YNode): string {
  if (node.kind !== 'scalar') return `a ${node.kind}`;
  if (node.value === null) return 'null';
  return `${typeof node.value} ${JSON.stringify(node.plain ? node.text : node.value)}`;
}

function mismatch(report: Report, node: YNode, path: string, expected: string): undefined {
  report.error(`${path}: expected ${expected}, found ${describe(node)}`, node.pos);
  return undefined;
}

/**
 * A string. Plain scalars are taken as written, so `version: 3.4` or `name: 1` are the strings "3.4" and "1"
 * (go-yaml behaves the same for string fields in ct).
 */
export const str: Decoder<string> = (node, report, path) => {
  if (node.kind !== 'scalar' || node.value === null) return mismatch(report, node, path, 'a string');
  return node.plain ? node.text : String(node.value);
};

const YAML11_OCTAL = /^0[0-7]+$/;

/** An integer. A plain `0644` is octal, as in YAML 1.1 (ct's go-yaml), since CLC file modes are written that way. */
export const int: Decoder<number> = (node, report, path) => {
  if (node.kind === 'scalar' && node.plain && YAML11_OCTAL.test(node.text)) return Number.parseInt(node.text, 8);
  if (node.kind !== 'scalar' || typeof node.value !== 'number' || !Number.isSafeInteger(node.value)) {
    return mismatch(report, node, path, 'an integer');
  }
  return node.value;
};

export const bool: Decoder<boolean> = (node, report, path) => {
  if (node.kind !== 'scalar' || typeof node.value !== 'boolean') return mismatch(report, node, path, 'a boolean');
  return node.value;
};

/** A list; it remembers where each (usable) item is, keyed by its index in the result (see `positionsOf`). */
export function list<T>(item: Decoder<T>): Decoder<T[]> {
  return (node, report, path) => {
    if (node.kind !== 'sequence') return mismatch(report, node, path, 'a list');
    const out: T[] = [];
    const values: Record<string, Position> = {};
    node.items.forEach((n, i) => {
      const v = item(n, report, `${path}[${i}]`);
      if (v === undefined) return;
      values[out.length] = n.pos;
      out.push(v);
    });
    Object.defineProperty(out, POS, { value: { node: node.pos, values }, enumerable: false });
    return out;
  };
}

export const strList = list(str);

/** Adds a check of the decoded value; the check reports problems itself and returns false to drop the value. */
export function refine<T>(d: Decoder<T>, check: (value: T, report: Report, path: string, pos: Position) => boolean): Decoder<T> {
  return (node, report, path) => {
    const v = d(node, report, path);
    if (v === undefined) return undefined;
    return check(v, report, path, node.pos) ? v : undefined;
  };
}

/** A string restricted to some values. */
export function oneOf<const V extends string>(values: readonly V[], opts: { ignoreCase?: boolean } = {}): Decoder<V> {
  return (node, report, path) => {
    const s = str(node, report, path);
    if (s === undefined) return undefined;
    const probe = opts.ignoreCase ? s.toLowerCase() : s;
    const hit = values.find((v) => v === probe);
    if (hit === undefined) {
      report.error(`${path}: must be one of ${values.map((v) => `"${v}"`).join(', ')}, found "${s}"`, node.pos);
    }
    return hit;
  };
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

function suggestion(key: string, known: string[]): string {
  const normalized = key.replace(/-/g, '_');
  const best = known
    .map((k) => ({ k, d: k === normalized ? 0 : editDistance(key, k) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= 2 ? ` (did you mean "${best.k}"?)` : '';
}

/** Reports keys of a mapping that are not in `known`; returns false when there were any. */
export function checkKeys(node: MappingYNode, known: string[], report: Report, path: string): boolean {
  let ok = true;
  const where = path === '' ? 'at the top level' : `in ${path}`;
  for (const e of node.entries) {
    if (!known.includes(e.key)) {
      report.error(`unknown key "${e.key}" ${where}${suggestion(e.key, known)}`, e.keyPos);
      ok = false;
    }
  }
  return ok;
}

export interface ObjectOptions<F extends Fields, R extends keyof F> {
  required?: readonly R[];
  /** Extra checks across fields, after each field decoded. */
  check?: (obj: ObjectOf<F, R>, report: Report, path: string) => void;
}

/** A mapping with a fixed set of keys; unknown keys and missing required keys are errors. Null values count as absent. */
export function object<F extends Fields, R extends keyof F & string = never>(
  fields: F,
  opts: ObjectOptions<F, R> = {},
): Decoder<ObjectOf<F, R>> {
  const known = Object.keys(fields);
  return (node, report, path) => {
    if (node.kind !== 'mapping') return mismatch(report, node, path || 'config', 'a mapping');
    checkKeys(node, known, report, path);
    const out: Record<string, unknown> = {};
    const values: Record<string, Position> = {};
    const nulls = new Set<string>();
    for (const e of node.entries) {
      if (!Object.hasOwn(fields, e.key)) continue;
      const d = fields[e.key];
      values[e.key] = e.value.pos;
      if (e.value.kind === 'scalar' && e.value.value === null) {
        nulls.add(e.key);
        continue;
      }
      const v = d(e.value, report, path ? `${path}.${e.key}` : e.key);
      if (v !== undefined) out[e.key] = v;
    }
    let complete = true;
    for (const r of opts.required ?? []) {
      if (r in out) continue;
      complete = false;
      if (nulls.has(r)) report.error(`${path ? `${path}.` : ''}${r}: must not be empty`, values[r]);
      else if (!(r in values)) report.error(`${path || 'config'}: missing required key "${r}"`, node.pos);
      // otherwise the field's decoder has reported why it is unusable
    }
    Object.defineProperty(out, POS, { value: { node: node.pos, values }, enumerable: false });
    if (!complete) return undefined;
    const obj = out as ObjectOf<F, R>;
    opts.check?.(obj, report, path);
    return obj;
  };
}
