/**
 * etcdctl v3's `check perf` and `check datascale`, as etcd 3.4's: the same workloads (clients, rate, duration, key
 * and value sizes per --load), the same progress bar, result lines and exit codes, and the keys written under
 * --prefix deleted afterwards (then --auto-compact and --auto-defrag). `check perf` writes at a limited rate for a
 * minute and judges throughput, slowest request and stddev; `check datascale` writes a fixed number of keys as fast
 * as its clients go and reports how much the server's process_resident_memory_bytes (its /metrics) grew.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { prefixEnd } from '../../api/v3client/concurrency';
import { CallError, type V3Client } from './client';
import type { FlagSpec } from '../../pkg/pflag';
import type { Command, Ctx } from './main';
import { goQuote } from './printer';
import { ProgressBar } from './progress-bar';

/** What the commands need of etcdctl's main. */
export interface CheckHelpers {
  /** Applies ETCDCTL_* and --user (etcdctl does when it builds the client) and checks -w. */
  format(ctx: Ctx): void;
  /** A client of the command's endpoints (or of these, one dialed for a Maintenance call). */
  client(ctx: Ctx, endpoints?: string[], dialed?: boolean): Promise<V3Client>;
  /** The command's endpoints (--endpoints, or --discovery-srv's). */
  endpoints(ctx: Ctx): Promise<string[]>;
  fail(code: number, message: string): Error;
  exit(code: number): Error;
}

const EXIT_ERROR = 1;
const EXIT_INVALID_INPUT = 3;
const EXIT_BAD_FEATURE = 4;

/** etcdctl's workloads: a rate limit (writes/s), concurrent clients, seconds. */
const PERF: Record<string, { limit: number; clients: number; duration: number }> = {
  s: { limit: 150, clients: 50, duration: 60 },
  m: { limit: 1000, clients: 200, duration: 60 },
  l: { limit: 8000, clients: 500, duration: 60 },
  xl: { limit: 15000, clients: 1000, duration: 60 },
};
/** etcdctl's datascale workloads: keys to write, bytes per key and value, concurrent clients. */
const DATASCALE: Record<string, { limit: number; kvSize: number; clients: number }> = {
  s: { limit: 10000, kvSize: 1024, clients: 50 },
  m: { limit: 100000, kvSize: 1024, clients: 200 },
  l: { limit: 1000000, kvSize: 1024, clients: 500 },
  xl: { limit: 3000000, kvSize: 1024, clients: 1000 },
};
const LOAD_ALIAS: Record<string, string> = { s: 's', small: 's', m: 'm', medium: 'm', l: 'l', large: 'l', xl: 'xl', xLarge: 'xl' };

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });
const compactFlags = (): FlagSpec[] => [
  { name: 'auto-compact', kind: 'bool', def: 'false', usage: 'Compact storage with last revision after test is finished.' },
  { name: 'auto-defrag', kind: 'bool', def: 'false', usage: 'Defragment storage after test is finished.' },
];

/** clientv3's WithPrefix: the prefix's range, the whole key space for "". */
function prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
  const key = Buffer.from(prefix);
  return key.length === 0 ? { key: Buffer.from([0]), rangeEnd: Buffer.from([0]) } : { key, rangeEnd: prefixEnd(key) };
}

/** golang.org/x/time/rate's Limiter with a burst of 1: one token per 1/rate s, a late caller catching up one token. */
class Limiter {
  private tokens = 1;
  private last = performance.now();

  constructor(private readonly perSec: number) {}

  /** Takes a token, waiting for it; false (nothing taken) if it would come after the deadline. */
  async wait(deadline: number): Promise<boolean> {
    const now = performance.now();
    const tokens = Math.min(1, this.tokens + ((now - this.last) * this.perSec) / 1000) - 1;
    const waitMs = tokens < 0 ? (-tokens * 1000) / this.perSec : 0;
    if (now + waitMs > deadline) return false;
    this.last = now;
    this.tokens = tokens;
    // below a timer's resolution the debt is kept (tokens < 0), so the rate holds on average
    await new Promise<void>((resolve) => (waitMs >= 1 ? setTimeout(resolve, waitMs) : setImmediate(resolve)));
    return true;
  }
}

/** A Go channel of this capacity between one producer and the workers: put waits while it is full. */
class Channel<T> {
  private readonly items: T[] = [];
  private closed = false;
  private readonly takers: ((v: T | undefined) => void)[] = [];
  private readonly putters: (() => void)[] = [];

  constructor(private readonly cap: number) {}

  async put(v: T): Promise<void> {
    const taker = this.takers.shift();
    if (taker) return taker(v);
    while (this.items.length >= this.cap) await new Promise<void>((resolve) => this.putters.push(resolve));
    this.items.push(v);
  }

  /** The next item, undefined once closed and drained. */
  take(): Promise<T | undefined> {
    if (this.items.length > 0) {
      const v = this.items.shift()!;
      this.putters.shift()?.();
      return Promise.resolve(v);
    }
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.takers.push(resolve));
  }

  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t(undefined);
  }
}

/** pkg/report's Stats over the results: requests/s of the successful ones, their slowest and stddev, the errors. */
class Report {
  private readonly lats: number[] = [];
  readonly errors = new Map<string, number>();
  private readonly start = performance.now();

  result(err: string | undefined, seconds: number): void {
    if (err !== undefined) this.errors.set(err, (this.errors.get(err) ?? 0) + 1);
    else this.lats.push(seconds);
  }

  stats(): { rps: number; slowest: number; stddev: number } {
    const total = (performance.now() - this.start) / 1000;
    const n = this.lats.length;
    let sum = 0;
    let slowest = 0;
    for (const l of this.lats) {
      sum += l;
      if (l > slowest) slowest = l;
    }
    const avg = sum / n;
    let dev = 0;
    for (const l of this.lats) dev += (l - avg) * (l - avg);
    return { rps: n / total, slowest, stddev: Math.sqrt(dev / n) };
  }
}

/** Go's binary.PutVarint of a random non-negative int63 into the first bytes of a key-sized buffer. */
function randomKey(prefix: Buffer, size: number): Buffer {
  const k = Buffer.alloc(prefix.length + size);
  prefix.copy(k);
  let ux = (randomBytes(8).readBigUInt64BE() >> 1n) << 1n; // zigzag of a non-negative n is 2n
  let i = prefix.length;
  while (ux >= 0x80n) {
    k[i++] = Number(ux & 0x7fn) | 0x80;
    ux >>= 7n;
  }
  k[i] = Number(ux);
  return k;
}

/** Go's %f. */
const f6 = (x: number): string => (Number.isNaN(x) ? 'NaN' : x.toFixed(6));

export function checkCommands(h: CheckHelpers): Record<string, Command> {
  /** Makes the workload's clients, as etcdctl makes one per concurrent writer. */
  const clientsOf = async (ctx: Ctx, n: number): Promise<V3Client[]> => {
    const clients: V3Client[] = [];
    for (let i = 0; i < n; i++) clients.push(await h.client(ctx));
    return clients;
  };

  const failed = (err: unknown): Error => (err instanceof CallError ? h.fail(EXIT_ERROR, err.message) : (err as Error));

  /** Refuses a prefix that already holds keys (etcdctl's check before writing). */
  const checkEmpty = async (ctx: Ctx, c: V3Client, prefix: string, timeoutMs: number): Promise<void> => {
    let r;
    try {
      r = await c.call((kv) => kv.range, RangeRequest.fromPartial({ ...prefixRange(prefix), limit: 1n }), timeoutMs);
    } catch (err) {
      throw failed(err);
    }
    if (r.kvs.length > 0) throw h.fail(EXIT_INVALID_INPUT, `prefix ${goQuote(Buffer.from(prefix))} has keys. Delete with etcdctl del --prefix ${prefix} first`);
  };

  /** Workers taking puts off the channel until it closes, each result reported as it ends. */
  const runWorkers = (clients: V3Client[], requests: Channel<PutRequest>, report: Report, done?: () => void): Promise<void[]> =>
    Promise.all(clients.map(async (c) => {
      for (let op = await requests.take(); op !== undefined; op = await requests.take()) {
        const st = performance.now();
        let err: string | undefined;
        try {
          await c.call((kv) => kv.put, op, Infinity);
        } catch (e) {
          if (!(e instanceof CallError)) throw e;
          err = e.message;
        }
        report.result(err, (performance.now() - st) / 1000);
        done?.();
      }
    }));

  /** The keys deleted, then --auto-compact at the delete's revision and --auto-defrag of each endpoint. */
  const cleanUp = async (ctx: Ctx, c: V3Client, prefix: string, timeoutMs: number | undefined): Promise<void> => {
    let rev: bigint;
    try {
      rev = (await c.call((kv) => kv.deleteRange, DeleteRangeRequest.fromPartial(prefixRange(prefix)), timeoutMs ?? Infinity)).header!.revision;
    } catch (err) {
      throw failed(err);
    }
    if (ctx.flags.values.get('auto-compact') === true) {
      ctx.io.stdout(`Compacting with revision ${rev}\n`);
      try {
        await c.call((kv) => kv.compact, CompactionRequest.fromPartial({ revision: rev, physical: true }), 30_000);
      } catch (err) {
        throw failed(err);
      }
      ctx.io.stdout(`Compacted with revision ${rev}\n`);
    }
    if (ctx.flags.values.get('auto-defrag') === true) {
      for (const ep of await h.endpoints(ctx)) {
        ctx.io.stdout(`Defragmenting ${goQuote(Buffer.from(ep))}\n`);
        const d = await h.client(ctx, [ep], true);
        try {
          await d.rpc('maintenance', 'defragment', DefragmentRequest.fromPartial({}), 30_000);
        } catch (err) {
          throw failed(err);
        } finally {
          d.close();
        }
        ctx.io.stdout(`Defragmented ${goQuote(Buffer.from(ep))}\n`);
      }
    }
  };

  const loadOf = (ctx: Ctx): string => {
    const load = ctx.flags.values.get('load') as string;
    const model = Object.hasOwn(LOAD_ALIAS, load) ? LOAD_ALIAS[load] : undefined;
    if (model === undefined) throw h.fail(EXIT_BAD_FEATURE, `unknown load option ${load}`);
    return model;
  };

  const perf = async (ctx: Ctx): Promise<void> => {
    const cfg = PERF[loadOf(ctx)];
    const prefix = ctx.flags.values.get('prefix') as string;
    h.format(ctx);
    const clients = await clientsOf(ctx, cfg.clients);
    let bar: ProgressBar | undefined;
    let barTimer: NodeJS.Timeout | undefined;
    try {
      await checkEmpty(ctx, clients[0], prefix, cfg.duration * 1000);
      const prefixBytes = Buffer.from(prefix);
      const value = Buffer.alloc(1024);
      const b = (bar = new ProgressBar(cfg.duration, (s) => ctx.io.stdout(s)).start());
      // the bar moves once a second for the duration, on a schedule that does not drift, so it ends before the
      // writes (whose minute starts after it) and its last line comes before the results
      const barStart = Date.now();
      let ticks = 0;
      let barDone!: () => void;
      const barFinished = new Promise<void>((resolve) => (barDone = resolve));
      const tick = (): void => {
        b.add(1);
        if (++ticks < cfg.duration) barTimer = setTimeout(tick, barStart + (ticks + 1) * 1000 - Date.now());
        else {
          b.finish();
          barDone();
        }
      };
      barTimer = setTimeout(tick, 1000);
      const report = new Report();
      const requests = new Channel<PutRequest>(cfg.clients);
      const workers = runWorkers(clients, requests, report);
      const limit = new Limiter(cfg.limit);
      const deadline = performance.now() + cfg.duration * 1000;
      while (await limit.wait(deadline)) await requests.put(PutRequest.fromPartial({ key: randomKey(prefixBytes, 256), value }));
      requests.close();
      await workers;
      const s = report.stats();
      await cleanUp(ctx, clients[0], prefix, 30_000);
      await barFinished;
      let ok = true;
      const out = (l: string) => ctx.io.stdout(`${l}\n`);
      if (report.errors.size !== 0) {
        out('FAIL: too many errors');
        for (const [k, v] of report.errors) out(`FAIL: ERROR(${k}) -> ${v}`);
        ok = false;
      }
      if (s.rps / cfg.limit <= 0.9) {
        out(`FAIL: Throughput too low: ${Math.trunc(s.rps) + 1} writes/s`);
        ok = false;
      } else out(`PASS: Throughput is ${Math.trunc(s.rps) + 1} writes/s`);
      if (s.slowest > 0.5) {
        out(`Slowest request took too long: ${f6(s.slowest)}s`);
        ok = false;
      } else out(`PASS: Slowest request took ${f6(s.slowest)}s`);
      if (s.stddev > 0.1) {
        out(`Stddev too high: ${f6(s.stddev)}s`);
        ok = false;
      } else out(`PASS: Stddev is ${f6(s.stddev)}s`);
      out(ok ? 'PASS' : 'FAIL');
      if (!ok) throw h.exit(EXIT_ERROR);
    } finally {
      clearTimeout(barTimer);
      bar?.stop();
      for (const c of clients) c.close();
    }
  };

  const datascale = async (ctx: Ctx): Promise<void> => {
    const cfg = DATASCALE[loadOf(ctx)];
    const prefix = ctx.flags.values.get('prefix') as string;
    h.format(ctx);
    const clients = await clientsOf(ctx, cfg.clients);
    let bar: ProgressBar | undefined;
    try {
      const eps = await h.endpoints(ctx);
      await checkEmpty(ctx, clients[0], prefix, Infinity);
      const out = (l: string) => ctx.io.stdout(`${l}\n`);
      const before = await memoryMetrics(ctx, eps[0]);
      if (before === 0) {
        out('FAIL: Could not read process_resident_memory_bytes before the put operations.');
        throw h.exit(EXIT_ERROR);
      }
      out(`Start data scale check for work load [${cfg.limit} key-value pairs, ${cfg.kvSize} bytes per key-value, ${cfg.clients} concurrent clients].`);
      const b = (bar = new ProgressBar(cfg.limit, (s) => ctx.io.stdout(s)).start());
      const report = new Report();
      const requests = new Channel<PutRequest>(cfg.clients);
      const workers = runWorkers(clients, requests, report, () => b.add(1));
      const prefixBytes = Buffer.from(prefix);
      const value = Buffer.alloc(512);
      for (let i = 0; i < cfg.limit; i++) await requests.put(PutRequest.fromPartial({ key: randomKey(prefixBytes, 512), value }));
      requests.close();
      await workers;
      b.finish();
      const after = await memoryMetrics(ctx, eps[0]);
      if (after === 0) {
        out('FAIL: Could not read process_resident_memory_bytes after the put operations.');
        throw h.exit(EXIT_ERROR);
      }
      await cleanUp(ctx, clients[0], prefix, undefined);
      if (report.errors.size !== 0) {
        out('FAIL: too many errors');
        for (const [k, v] of report.errors) out(`FAIL: ERROR(${k}) -> ${v}`);
        throw h.exit(EXIT_ERROR);
      }
      out(`PASS: Approximate system memory used : ${((after - before) / (1024 * 1024)).toFixed(2)} MB.`);
    } finally {
      bar?.stop();
      for (const c of clients) c.close();
    }
  };

  return {
    check: {
      use: 'check <subcommand>',
      short: 'commands for checking properties of the etcd cluster',
      flags: [help('check')],
      subcommands: {
        perf: {
          use: 'perf [options]',
          short: 'Check the performance of the etcd cluster',
          flags: [
            { name: 'load', kind: 'string', def: 's', usage: "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)" },
            { name: 'prefix', kind: 'string', def: '/etcdctl-check-perf/', usage: "The prefix for writing the performance check's keys." },
            ...compactFlags(),
            help('perf'),
          ],
          run: perf,
        },
        datascale: {
          use: 'datascale [options]',
          short: 'Check the memory usage of holding data for different workloads on a given server endpoint.',
          long: 'If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.',
          flags: [
            { name: 'load', kind: 'string', def: 's', usage: "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)" },
            { name: 'prefix', kind: 'string', def: '/etcdctl-check-datascale/', usage: "The prefix for writing the datascale check's keys." },
            ...compactFlags(),
            help('datascale'),
          ],
          run: datascale,
        },
      },
    },
  };
}

/**
 * etcdctl's endpointMemoryMetrics: process_resident_memory_bytes from the endpoint's /metrics (https with --cert and
 * --key when the endpoint says so); 0, with etcdctl's line on stdout, when it cannot be read.
 */
async function memoryMetrics(ctx: Ctx, host: string): Promise<number> {
  const key = 'process_resident_memory_bytes';
  if (!host.startsWith('http://') && !host.startsWith('https://')) host = `http://${host}`;
  const url = `${host}/metrics`;
  const out = (l: string) => ctx.io.stdout(`${l}\n`);
  let body: string;
  try {
    body = await new Promise<string>((resolve, reject) => {
      const onRes = (res: http.IncomingMessage): void => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (b += c));
        res.on('end', () => resolve(b));
        res.on('error', reject);
      };
      if (url.startsWith('https://')) {
        const read = (n: string) => fs.readFileSync(ctx.flags.values.get(n) as string);
        let cert: Buffer;
        let keyPem: Buffer;
        try {
          cert = read('cert');
          keyPem = read('key');
        } catch (err) {
          out(`client certificate error: ${(err as Error).message}`);
          return resolve('\0');
        }
        https.get(url, { cert, key: keyPem, rejectUnauthorized: ctx.flags.values.get('insecure-skip-tls-verify') !== true }, onRes).on('error', reject);
      } else http.get(url, onRes).on('error', reject);
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    const why = e.code === 'ECONNREFUSED' ? `dial tcp ${e.address}:${e.port}: connect: connection refused` : e.message;
    out(`fetch error: Get ${JSON.stringify(url)}: ${why}`);
    return 0;
  }
  if (body === '\0') return 0;
  const line = body.split('\n').find((l) => l.startsWith(key));
  const value = line?.slice(key.length).trim() ?? '';
  if (value === '') {
    out(`could not find: ${key}`);
    return 0;
  }
  const n = Number(value);
  if (Number.isNaN(n) && value !== 'NaN') {
    out(`parse error: strconv.ParseFloat: parsing ${JSON.stringify(value)}: invalid syntax`);
    return 0;
  }
  return n;
}
