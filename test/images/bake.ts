/**
 * docker-bake.hcl as `docker buildx bake --print` would resolve it (buildx is not packaged for this Debian, so it
 * cannot run here): parsed with a real HCL parser (@cdktf/hcl2json, HashiCorp's HCL compiled to WebAssembly), then
 * variables (defaults, overridden by environment variables of the same name), `${VAR}` interpolation, target
 * inheritance and groups resolved. Anything else in an expression (functions, conditionals...) is refused, so a
 * test fails rather than guessing what buildx would make of it.
 */
import { parse } from '@cdktf/hcl2json';
import * as fs from 'fs';

export interface BakeTarget {
  name: string;
  context: string;
  dockerfile: string;
  platforms: string[];
  tags: string[];
  args: Record<string, string>;
  labels: Record<string, string>;
  target?: string;
}

export interface BakePlan {
  variables: Record<string, string>;
  groups: Record<string, string[]>;
  targets: Record<string, BakeTarget>;
}

type Block = Record<string, unknown>;
type Blocks = Record<string, Block[]>;

const TARGET_ATTRS = new Set(['inherits', 'context', 'dockerfile', 'platforms', 'tags', 'args', 'labels', 'target']);

/** Merges a block's repeated definitions (HCL allows a block name more than once; later attributes win). */
function merged(blocks: Block[] | undefined): Block {
  return Object.assign({}, ...(blocks ?? []));
}

export async function loadBake(file: string, env: Record<string, string | undefined> = process.env): Promise<BakePlan> {
  const json = (await parse(file, fs.readFileSync(file, 'utf8'))) as Record<string, Blocks | undefined>;
  for (const key of Object.keys(json)) {
    if (!['variable', 'group', 'target'].includes(key)) throw new Error(`${file}: unexpected top-level ${key}`);
  }
  const variables: Record<string, string> = {};
  for (const [name, blocks] of Object.entries(json.variable ?? {})) {
    const v = merged(blocks);
    const def = v.default ?? '';
    if (typeof def !== 'string') throw new Error(`variable ${name}: default must be a string`);
    variables[name] = env[name] !== undefined ? (env[name] as string) : def;
  }
  // Variables may refer to one another.
  const resolving = new Set<string>();
  const varValue = (name: string): string => {
    if (!(name in variables)) throw new Error(`undefined variable ${name}`);
    if (resolving.has(name)) throw new Error(`variable ${name} refers to itself`);
    resolving.add(name);
    const v = interpolate(variables[name]);
    resolving.delete(name);
    return v;
  };
  const interpolate = (s: string): string =>
    s.replace(/\$\{([^}]*)\}/g, (_m, expr: string) => {
      const name = expr.trim();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsupported expression \${${expr}} (only \${VARIABLE} is resolved)`);
      return varValue(name);
    });
  for (const name of Object.keys(variables)) variables[name] = varValue(name);

  const rawTargets = json.target ?? {};
  const targets: Record<string, BakeTarget> = {};
  const resolveTarget = (name: string, seen: string[] = []): Block => {
    if (seen.includes(name)) throw new Error(`target inheritance cycle: ${[...seen, name].join(' -> ')}`);
    const own = merged(rawTargets[name]);
    if (!rawTargets[name]) throw new Error(`undefined target ${name}`);
    for (const k of Object.keys(own)) if (!TARGET_ATTRS.has(k)) throw new Error(`target ${name}: unsupported attribute ${k}`);
    let out: Block = {};
    for (const parent of (own.inherits as string[] | undefined) ?? []) {
      const p = resolveTarget(parent, [...seen, name]);
      out = { ...out, ...p, args: { ...(out.args as object), ...(p.args as object) }, labels: { ...(out.labels as object), ...(p.labels as object) } };
    }
    return { ...out, ...own, args: { ...(out.args as object), ...(own.args as object) }, labels: { ...(out.labels as object), ...(own.labels as object) } };
  };
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw new Error(`${what} must be a string, got ${JSON.stringify(v)}`);
    return interpolate(v);
  };
  const strs = (v: unknown, what: string): string[] => {
    if (!Array.isArray(v)) throw new Error(`${what} must be a list, got ${JSON.stringify(v)}`);
    return v.map((x, i) => str(x, `${what}[${i}]`));
  };
  const map = (v: unknown, what: string): Record<string, string> =>
    Object.fromEntries(Object.entries((v ?? {}) as Record<string, unknown>).map(([k, x]) => [k, str(x, `${what}.${k}`)]));
  for (const name of Object.keys(rawTargets)) {
    const t = resolveTarget(name);
    targets[name] = {
      name,
      context: t.context === undefined ? '.' : str(t.context, `${name}.context`),
      dockerfile: t.dockerfile === undefined ? 'Dockerfile' : str(t.dockerfile, `${name}.dockerfile`),
      platforms: t.platforms === undefined ? [] : strs(t.platforms, `${name}.platforms`),
      tags: t.tags === undefined ? [] : strs(t.tags, `${name}.tags`),
      args: map(t.args, `${name}.args`),
      labels: map(t.labels, `${name}.labels`),
      ...(t.target !== undefined ? { target: str(t.target, `${name}.target`) } : {}),
    };
  }
  const groups: Record<string, string[]> = {};
  for (const [name, blocks] of Object.entries(json.group ?? {})) groups[name] = strs(merged(blocks).targets ?? [], `group ${name}.targets`);
  return { variables, groups, targets };
}

/** The targets a bake of `name` (a group or a target) builds, groups expanded, in order, without repeats. */
export function expand(plan: BakePlan, name: string, seen: string[] = []): string[] {
  if (seen.includes(name)) throw new Error(`group cycle: ${[...seen, name].join(' -> ')}`);
  if (plan.groups[name]) {
    const out: string[] = [];
    for (const t of plan.groups[name]) for (const x of expand(plan, t, [...seen, name])) if (!out.includes(x)) out.push(x);
    return out;
  }
  if (plan.targets[name]) return [name];
  throw new Error(`no target or group named ${name}`);
}
