/**
 * Test helpers for the Ignition transpiler: run it, check every spec-3 output with Debian's real
 * `ignition-validate`, and assert errors with their line and column.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { transpile, TranspileError, type Diagnostic, type TranspileOptions, type TranspileResult } from '../../ignition';

export const IGNITION_VALIDATE = '/usr/bin/ignition-validate';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ct-test-${prefix}-`));
}

/**
 * Runs ignition-validate on the config and fails the test unless it accepts it. A missing binary is a failure
 * (install the Debian package `ignition`), never a skip.
 */
export function expectValidIgnition(config: object): void {
  if (!fs.existsSync(IGNITION_VALIDATE)) {
    throw new Error(`${IGNITION_VALIDATE} is missing: install the Debian package "ignition" (apt-get install -y ignition)`);
  }
  const dir = tempDir('validate');
  try {
    const file = path.join(dir, 'config.ign');
    fs.writeFileSync(file, JSON.stringify(config));
    const r = spawnSync(IGNITION_VALIDATE, [file], { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0 || r.stdout.trim() !== '' || r.stderr.trim() !== '') {
      throw new Error(`ignition-validate rejected the config (exit ${r.status}):\n${r.stdout}${r.stderr}\n${JSON.stringify(config, null, 2)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs ignition-validate on one config without blocking; rejects (with the config) unless it accepts it. */
async function validateAsync(config: object, dir: string, index: number): Promise<void> {
  const file = path.join(dir, `config-${index}.ign`);
  await fs.promises.writeFile(file, JSON.stringify(config));
  const r = await new Promise<{ status: number | null; out: string }>((resolve, reject) =>
    execFile(IGNITION_VALIDATE, [file], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ status: err ? (err.code as number) : 0, out: `${stdout}${stderr}` });
    }),
  );
  if (r.status !== 0 || r.out.trim() !== '') {
    throw new Error(`ignition-validate rejected the config (exit ${r.status}):\n${r.out}\n${JSON.stringify(config, null, 2)}`);
  }
}

/**
 * `expectValidIgnition` for many configs: ignition-validate runs on each, a few at a time (the machine may be busy
 * with other tests, and one process per config one after the other would take seconds).
 */
export async function expectAllValidIgnition(configs: readonly object[], concurrency = 4): Promise<void> {
  if (!fs.existsSync(IGNITION_VALIDATE)) {
    throw new Error(`${IGNITION_VALIDATE} is missing: install the Debian package "ignition" (apt-get install -y ignition)`);
  }
  const dir = tempDir('validate-all');
  try {
    let next = 0;
    const failures: unknown[] = [];
    // Each worker takes the next config until none is left or one was rejected; all are waited for before the
    // directory goes.
    const worker = async (): Promise<void> => {
      while (next < configs.length && failures.length === 0) {
        const i = next++;
        await validateAsync(configs[i], dir, i).catch((err: unknown) => void failures.push(err));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, configs.length) }, worker));
    if (failures.length > 0) throw failures[0];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Transpiles and, for spec 3 output, checks the result with ignition-validate. */
export function transpileValid(yaml: string, options: TranspileOptions = {}): TranspileResult {
  const result = transpile(yaml, options);
  const version = (result.config as { ignition?: { version?: string } }).ignition?.version;
  if (version?.startsWith('3.')) expectValidIgnition(result.config);
  return result;
}

/** Transpiles expecting failure; returns the diagnostics. */
export function transpileErrors(yaml: string, options: TranspileOptions = {}): Diagnostic[] {
  try {
    transpile(yaml, options);
  } catch (e) {
    if (e instanceof TranspileError) return e.diagnostics;
    throw e;
  }
  throw new Error('expected the config to be rejected');
}

/** Asserts that transpiling fails with an error containing `text` at the given line and column. */
export function expectErrorAt(yaml: string, text: string, line: number, column: number, options: TranspileOptions = {}): Diagnostic {
  const diags = transpileErrors(yaml, options);
  // The thrown report carries the warnings too: look among the errors first.
  const hit = diags.find((d) => d.severity === 'error' && d.message.includes(text)) ?? diags.find((d) => d.message.includes(text));
  if (!hit) throw new Error(`no error containing ${JSON.stringify(text)}; got:\n${diags.map((d) => d.message).join('\n')}`);
  expect(hit.severity).toBe('error');
  expect(hit.pos).toEqual({ line, column });
  return hit;
}

/** Strips the common indentation of a template literal, so configs can be written inline. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '');
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

interface V3Unit {
  name: string;
  enabled?: boolean;
  mask?: boolean;
  contents?: string;
  dropins?: { name: string; contents?: string }[];
}

interface V3File {
  path: string;
  mode?: number;
  overwrite?: boolean;
  contents?: { source?: string; compression?: string; verification?: { hash?: string } };
  append?: { source: string }[];
}

/** The parts of a spec-3 config the tests look at. */
export interface V3Config {
  ignition: { version: string; config?: { merge?: { source: string }[] }; timeouts?: Record<string, number> };
  storage?: {
    files?: V3File[];
    directories?: { path: string; mode?: number }[];
    links?: { path: string; target: string; hard?: boolean }[];
    filesystems?: Record<string, unknown>[];
    disks?: { device: string; partitions?: Record<string, unknown>[] }[];
    raid?: Record<string, unknown>[];
  };
  systemd?: { units?: V3Unit[] };
  passwd?: { users?: Record<string, unknown>[]; groups?: Record<string, unknown>[] };
}

export function unitOf(config: object, name: string): V3Unit {
  const unit = (config as V3Config).systemd?.units?.find((u) => u.name === name);
  if (!unit) throw new Error(`no unit ${name}`);
  return unit;
}

export function dropinOf(config: object, unit: string, dropin: string): string {
  const d = unitOf(config, unit).dropins?.find((x) => x.name === dropin);
  if (d?.contents === undefined) throw new Error(`no drop-in ${dropin} in ${unit}`);
  return d.contents;
}

export function fileOf(config: object, filePath: string): V3File {
  const f = (config as V3Config).storage?.files?.find((x) => x.path === filePath);
  if (!f) throw new Error(`no file ${filePath}`);
  return f;
}

/** Decodes a data URL (percent-encoded or base64). */
export function decodeDataUrl(source: string): Buffer {
  const m = /^data:([^,]*),(.*)$/s.exec(source);
  if (!m) throw new Error(`not a data URL: ${source}`);
  if (m[1].endsWith(';base64')) return Buffer.from(m[2], 'base64');
  const bytes: number[] = [];
  for (let i = 0; i < m[2].length; i++) {
    if (m[2][i] === '%') {
      bytes.push(Number.parseInt(m[2].slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(m[2].charCodeAt(i));
    }
  }
  return Buffer.from(bytes);
}

export function fileText(config: object, filePath: string): string {
  const source = fileOf(config, filePath).contents?.source;
  if (source === undefined) throw new Error(`file ${filePath} has no contents`);
  return decodeDataUrl(source).toString('utf8');
}

/** The Container Linux Config of the README: three etcd members. */
/** The Container Linux Config shown in the README (its first ```yaml block), read from the README itself. */
export const README_EXAMPLE = ((): string => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no ```yaml block: the Container Linux Config example is missing');
  return block[1];
})();

/** A systemd service drop-in as systemd reads it: the [Service] environment and the command ExecStart= runs. */
export interface ServiceDropin {
  /** From `Environment=` lines, in order. */
  environment: Record<string, string>;
  /** The last non-empty `ExecStart=`, split into words (quotes removed, escapes resolved, variables not expanded). */
  execStart: string[];
}

/** Splits a unit file value into words as systemd does: whitespace between words, "..." and '...' with C escapes. */
export function systemdWords(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (i < value.length && /\s/.test(value[i])) i++;
    if (i >= value.length) break;
    let word = '';
    while (i < value.length && !/\s/.test(value[i])) {
      const quote = value[i] === '"' || value[i] === "'" ? value[i] : undefined;
      if (quote === undefined) {
        word += value[i++];
        continue;
      }
      i++;
      while (i < value.length && value[i] !== quote) {
        if (value[i] !== '\\') {
          word += value[i++];
          continue;
        }
        const c = value[i + 1];
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f' };
        if (c === 'u') {
          word += String.fromCharCode(Number.parseInt(value.slice(i + 2, i + 6), 16));
          i += 6;
        } else if (c !== undefined && simple[c] !== undefined) {
          word += simple[c];
          i += 2;
        } else {
          throw new Error(`unsupported escape \\${c ?? ''} in ${value}`);
        }
      }
      if (i >= value.length) throw new Error(`unterminated quote in ${value}`);
      i++;
    }
    words.push(word);
  }
  return words;
}

/** Reads a drop-in: backslash-newline continues a line; `ExecStart=` with no value resets the command. */
export function parseServiceDropin(text: string): ServiceDropin {
  const environment: Record<string, string> = {};
  let execStart: string[] = [];
  let section = '';
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'Service' || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1);
    if (key === 'Environment') {
      for (const w of systemdWords(value)) environment[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
    } else if (key === 'ExecStart') {
      execStart = systemdWords(value);
    }
  }
  return { environment, execStart };
}

/** Expands `$NAME` words (to their whitespace-separated words; none when unset) and `${NAME}`, as ExecStart= does. */
export function expandExecWords(words: string[], env: Record<string, string | undefined>): string[] {
  return words.flatMap((w) => {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (whole) return (env[whole[1]] ?? '').split(/\s+/).filter((x) => x !== '');
    return [w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? '')];
  });
}

/** One line of ignition-validate's report: "error at $.storage.files.0.path, line 1 col 40: path not absolute". */
export interface ValidateEntry {
  severity: 'error' | 'warning';
  /** "$.storage.files.0.path" */
  path: string;
  message: string;
}

/** Runs ignition-validate on the config and returns what it reports (exit status checked against the report). */
export async function ignitionValidateReport(config: object): Promise<ValidateEntry[]> {
  if (!fs.existsSync(IGNITION_VALIDATE)) {
    throw new Error(`${IGNITION_VALIDATE} is missing: install the Debian package "ignition" (apt-get install -y ignition)`);
  }
  const dir = tempDir('validate-report');
  try {
    const file = path.join(dir, 'config.ign');
    await fs.promises.writeFile(file, JSON.stringify(config));
    const { status, out } = await new Promise<{ status: number; out: string }>((resolve, reject) =>
      execFile(IGNITION_VALIDATE, [file], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ status: err ? (err.code as number) : 0, out: `${stdout}${stderr}` });
      }),
    );
    const entries = out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((line): ValidateEntry => {
        const m = /^(error|warning) at (\$[^,:]*)(?:, line \d+ col \d+)?: (.*)$/.exec(line);
        if (!m) throw new Error(`unexpected ignition-validate output: ${line}`);
        return { severity: m[1] as 'error' | 'warning', path: m[2], message: m[3] };
      });
    expect(status === 0).toBe(!entries.some((e) => e.severity === 'error'));
    return entries;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
