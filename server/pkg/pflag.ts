/**
 * Command-line flags as cobra over spf13/pflag parses them (etcdctl v3, etcd gateway): --name=value, --name value, -w value,
 * -wvalue, booleans without a value, flags anywhere among the arguments, "--" ending them; pflag's error messages;
 * Go's syntax for integers, booleans and durations; and the flag tables of etcdctl's usage text.
 */
import { goParseBool, goParseDuration } from './go-compat';

export type FlagKind = 'bool' | 'string' | 'int64' | 'duration' | 'stringSlice';

export interface FlagSpec {
  name: string;
  short?: string;
  kind: FlagKind;
  /** The default as etcdctl shows it (Go's DefValue). */
  def: string;
  usage: string;
}

export type FlagValue = string | boolean | bigint | number | string[];

/** A flag's parse error (cobra prints it with the command's usage). */
export class FlagError extends Error {}

/** strconv.ParseInt(s, 0, 64), with its error text. */
export function parseGoInt64(s: string): bigint {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+(?:_?[0-9a-fA-F]+)*|0[bB][01]+|0[oO]?[0-7]+|[1-9][0-9]*|0)$/.exec(s);
  if (!m) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  let digits = m[2].replace(/_/g, '');
  if (/^0[0-7]/.test(digits)) digits = `0o${digits.slice(1)}`;
  else if (/^0[oO]/.test(digits)) digits = `0o${digits.slice(2)}`;
  const v = BigInt(digits) * (m[1] === '-' ? -1n : 1n);
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  return v;
}

export function convert(spec: FlagSpec, raw: string): FlagValue {
  switch (spec.kind) {
    case 'bool': {
      const b = goParseBool(raw);
      if (b === undefined) throw new Error(`strconv.ParseBool: parsing ${JSON.stringify(raw)}: invalid syntax`);
      return b;
    }
    case 'int64':
      return parseGoInt64(raw);
    case 'duration':
      return goParseDuration(raw);
    case 'stringSlice':
      return raw === '' ? [] : raw.split(',');
    default:
      return raw;
  }
}

function flagName(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
}

export interface Parsed {
  values: Map<string, FlagValue>;
  /** Flags given on the command line (pflag's Changed). */
  changed: Set<string>;
  args: string[];
}

/** Parses argv against the specs (pflag's interspersed parsing); values of flags not given are their defaults. */
export function parseFlags(argv: string[], specs: FlagSpec[]): Parsed {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const values = new Map<string, FlagValue>();
  const changed = new Set<string>();
  const args: string[] = [];
  const set = (spec: FlagSpec, raw: string) => {
    let v: FlagValue;
    try {
      v = convert(spec, raw);
    } catch (err) {
      throw new FlagError(`invalid argument ${JSON.stringify(raw)} for "${flagName(spec)}" flag: ${(err as Error).message}`);
    }
    // A string slice given twice accumulates, as pflag's does.
    if (spec.kind === 'stringSlice' && changed.has(spec.name)) v = [...(values.get(spec.name) as string[]), ...(v as string[])];
    values.set(spec.name, v);
    changed.add(spec.name);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const body = a.slice(2);
      if (body.startsWith('-') || body.startsWith('=')) throw new FlagError(`bad flag syntax: ${a}`);
      const eq = body.indexOf('=');
      const name = eq >= 0 ? body.slice(0, eq) : body;
      const spec = byName.get(name);
      if (!spec) throw new FlagError(`unknown flag: --${name}`);
      if (eq >= 0) set(spec, body.slice(eq + 1));
      else if (spec.kind === 'bool') set(spec, 'true');
      else if (i + 1 < argv.length) set(spec, argv[++i]);
      else throw new FlagError(`flag needs an argument: ${a}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      const shorts = a.slice(1);
      for (let j = 0; j < shorts.length; j++) {
        const c = shorts[j];
        const spec = byShort.get(c);
        if (!spec) throw new FlagError(`unknown shorthand flag: '${c}' in ${a}`);
        if (shorts[j + 1] === '=') {
          set(spec, shorts.slice(j + 2));
          break;
        }
        if (spec.kind === 'bool') {
          set(spec, 'true');
          continue;
        }
        if (j + 1 < shorts.length) set(spec, shorts.slice(j + 1));
        else if (i + 1 < argv.length) set(spec, argv[++i]);
        else throw new FlagError(`flag needs an argument: '${c}' in ${a}`);
        break;
      }
      continue;
    }
    args.push(a);
  }
  for (const s of specs) if (!values.has(s.name)) values.set(s.name, convert(s, s.kind === 'stringSlice' ? s.def.replace(/^\[|\]$/g, '') : s.def));
  return { values, changed, args };
}

/** The flag table of etcdctl's usage text, aligned as Go's tabwriter (tab width 8, padding 1, tabs) aligns it. */
export function flagTable(specs: FlagSpec[]): string {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const left = sorted.map((s) => {
    const head = s.short ? `  -${s.short}, --${s.name}` : `      --${s.name}`;
    const def = s.kind === 'string' ? JSON.stringify(s.def) : s.def;
    return s.kind === 'bool' ? `${head}[=${def}]` : `${head}=${def}`;
  });
  const width = Math.ceil((Math.max(...left.map((l) => l.length)) + 1) / 8) * 8;
  return sorted.map((s, i) => `${left[i]}${'\t'.repeat(width / 8 - Math.floor(left[i].length / 8))}${s.usage}\n`).join('');
}

/** The type name pflag shows after a flag in cobra's default usage ("" for a bool). */
const VARNAMES: Record<FlagKind, string> = { bool: '', string: 'string', int64: 'int', duration: 'duration', stringSlice: 'strings' };

/**
 * cobra's default "Flags:" table (pflag's FlagUsages): `  -h, --help` or `      --name type`, the usages aligned three
 * spaces after the longest, and `(default …)` where the default is not the zero value. For `etcd gateway`.
 */
export function cobraFlagUsages(specs: FlagSpec[]): string {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const left = sorted.map((s) => `${s.short ? `  -${s.short}, --${s.name}` : `      --${s.name}`}${VARNAMES[s.kind] ? ` ${VARNAMES[s.kind]}` : ''}`);
  const width = Math.max(...left.map((l) => l.length));
  return sorted
    .map((s, i) => {
      const zero = s.def === '' || s.def === 'false' || s.def === '[]' || s.def === '0' || s.def === '0s';
      const def = zero ? '' : s.kind === 'string' ? ` (default ${JSON.stringify(s.def)})` : ` (default ${s.def})`;
      return `${left[i].padEnd(width)}   ${s.usage}${def}\n`;
    })
    .join('');
}
