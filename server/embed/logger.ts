/**
 * The member's logger, winston underneath, writing what etcd 3.4 writes so that people and tools that read etcd's
 * output read ours (etcd's e2e suite waits for lines containing `enabled capabilities for version` and `published`):
 * - --logger=capnslog (3.4's default): `2006-01-02 15:04:05.000000 I | etcdserver: message` lines, local time, with
 *   capnslog's level letters and per-package levels (--log-package-levels);
 * - --logger=zap: one JSON object a line with zap's field names (level, ts, msg, then the fields).
 * A log call names its package with the meta field `pkg` (child loggers carry it); `capnslog` in the meta is the
 * whole capnslog text where etcd words a line differently in its two loggers.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as winston from 'winston';

const MESSAGE = Symbol.for('message');

export interface LogSettings {
  logger: 'capnslog' | 'zap';
  /** default, stderr, stdout, or (zap) file paths. */
  outputs: string[];
  /** etcd's --log-level: debug, info, warn, error, panic, fatal. */
  level: string;
  /** capnslog package name (or `*`) to capnslog level number. */
  packageLevels?: Map<string, number>;
}

/** capnslog's level numbers: CRITICAL -1, ERROR 0, WARNING 1, NOTICE 2, INFO 3, DEBUG 4, TRACE 5. */
const LEVEL_OF_ETCD: Record<string, number> = { debug: 4, info: 3, warn: 1, error: 0, panic: -1, fatal: -1 };
const LEVEL_OF_WINSTON: Record<string, number> = { error: 0, warn: 1, info: 3, http: 3, verbose: 4, debug: 4, silly: 5 };
const WINSTON_OF_LEVEL = ['error', 'warn', 'warn', 'info', 'debug', 'silly'];
const LETTERS = ['C', 'E', 'W', 'N', 'I', 'D', 'T'];
const ZAP_LEVELS: Record<string, string> = { error: 'error', warn: 'warn', info: 'info', http: 'info', verbose: 'debug', debug: 'debug', silly: 'debug' };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** Now, with microseconds (capnslog prints them). */
function now(): { d: Date; micros: number } {
  const ms = performance.timeOrigin + performance.now();
  return { d: new Date(Math.floor(ms)), micros: Math.floor((ms % 1000) * 1000) };
}

/** Go's `2006-01-02 15:04:05.000000` in local time. */
function capnslogTime(): string {
  const { d, micros } = now();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(micros, 6)}`;
}

/** zap's ISO8601 encoder: `2006-01-02T15:04:05.000Z0700` in local time. */
function zapTime(): string {
  const { d } = now();
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${zone}`;
}

/** The fields of a log call: its meta without winston's and ours (pkg, capnslog); errors as their message. */
function fields(info: winston.Logform.TransformableInfo): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(info)) {
    if (k === 'level' || k === 'message' || k === 'pkg' || k === 'capnslog') continue;
    out.push([k, v instanceof Error ? v.message : v]);
  }
  return out;
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

function capnslogFormat(threshold: (pkg: string) => number): winston.Logform.Format {
  return winston.format((info) => {
    const level = LEVEL_OF_WINSTON[info.level] ?? 3;
    const pkg = typeof info.pkg === 'string' ? info.pkg : 'etcdserver';
    if (level > threshold(pkg)) return false;
    let text: string;
    if (typeof info.capnslog === 'string') text = info.capnslog;
    else {
      const f = fields(info);
      text = String(info.message) + (f.length > 0 ? ` (${f.map(([k, v]) => `${k}=${show(v)}`).join(', ')})` : '');
    }
    (info as Record<string | symbol, unknown>)[MESSAGE] = `${capnslogTime()} ${LETTERS[level + 1]} | ${pkg}: ${text}`;
    return info;
  })();
}

function zapFormat(threshold: number): winston.Logform.Format {
  return winston.format((info) => {
    if ((LEVEL_OF_WINSTON[info.level] ?? 3) > threshold) return false;
    const out: Record<string, unknown> = { level: ZAP_LEVELS[info.level] ?? info.level, ts: zapTime(), msg: String(info.message) };
    for (const [k, v] of fields(info)) if (!(k in out)) out[k] = v;
    (info as Record<string | symbol, unknown>)[MESSAGE] = JSON.stringify(out);
    return info;
  })();
}

/** A log output that cannot be opened (the start stops, as etcd's does). */
export class LogOutputError extends Error {}

/** The files each logger appends to, to be flushed and closed before the process exits. */
const openFiles = new WeakMap<winston.Logger, fs.WriteStream[]>();

function transportFor(output: string, files: fs.WriteStream[]): winston.transport {
  if (output === 'stdout') return new winston.transports.Console({ stderrLevels: [] });
  if (output === 'default' || output === 'stderr') return new winston.transports.Console({ stderrLevels: Object.keys(LEVEL_OF_WINSTON) });
  // As zap: the file is created if missing (0666 less the umask) and appended to; one that cannot be opened stops the
  // start (opened here, once, before the member starts).
  let fd: number;
  try {
    fd = fs.openSync(output, 'a', 0o666);
  } catch (err) {
    const why = (err as Error).message.replace(/^[A-Z]+: /, '').replace(/, open '.*'$/, '');
    throw new LogOutputError(`open sink ${JSON.stringify(output)}: open ${output}: ${why}`);
  }
  const stream = fs.createWriteStream(output, { fd });
  stream.on('error', (err) => process.stderr.write(`etcd: cannot write the log to ${output}: ${err.message}\n`));
  files.push(stream);
  return new winston.transports.Stream({ stream });
}

/** Flushes and closes the log files of a logger made by makeLogger (stderr and stdout need nothing). */
export async function closeLogOutputs(logger: winston.Logger): Promise<void> {
  const files = openFiles.get(logger) ?? [];
  await Promise.all(files.map((f) => new Promise<void>((resolve) => f.end(() => resolve()))));
}

/** The member's logger, as --logger, --log-outputs, --log-level and --log-package-levels say. */
export function makeLogger(s: LogSettings): winston.Logger {
  const global = LEVEL_OF_ETCD[s.level] ?? 3;
  const pkgLevels = s.packageLevels ?? new Map<string, number>();
  const all = pkgLevels.get('*');
  const threshold = (pkg: string): number => pkgLevels.get(pkg) ?? all ?? global;
  // winston drops what no package would print before any formatting; the format applies each package's level.
  const most = Math.max(all ?? global, ...pkgLevels.values());
  const files: fs.WriteStream[] = [];
  const logger = winston.createLogger({
    levels: winston.config.npm.levels,
    level: s.logger === 'zap' ? WINSTON_OF_LEVEL[Math.max(0, global)] : WINSTON_OF_LEVEL[Math.max(0, Math.min(5, most))],
    format: s.logger === 'zap' ? zapFormat(global) : capnslogFormat(threshold),
    transports: s.outputs.map((o) => transportFor(o, files)),
  });
  openFiles.set(logger, files);
  return logger;
}
