/**
 * The v3 KV benchmark with etcd's own load generator (`benchmark` of etcd's tools/benchmark, as in etcd's
 * performance docs): Debian's etcd and ours, single-node and durable, each on a fresh data dir, and per cell both
 * (etcd first in odd pairs, ours first in even ones): `put` (8-byte sequential keys, 256-byte values) and `range` of
 * one key, linearizable and serializable, at 1 conn/1 client, 16/16 and 100/1000; lease-keepalive; watch (one
 * writer, 1000 watchers of its key: events/s) and watch-latency (put to event, 100 watchers); watch with 100,000
 * watchers open, for each server's RSS with them; and last `put-auth` (the same puts as user root with auth enabled,
 * each server on its default simple token). Prints req/s (events/s for watch) and p50/p99 of both and the ratio
 * ours/etcd, the server's CPU per request (per event for watch), then the RSS of each server after the runs and the
 * size of its data dir.
 *
 *   npm run bench:v3
 *   BENCH_V3_TOTAL=2 npm run bench:v3        # twice the requests per cell (the default takes a few seconds each)
 *   BENCH_V3_PAIRS=3 npm run bench:v3        # 3 alternating pairs (fresh servers each), medians and median ratio
 *   BENCH_V3_CELLS='put|lease'             # only the rows whose names match ('^put-auth' for the auth rows only)
 *   BENCH_V3_CELLS='lease|watch'           # keep-alives and watch: events/s, server CPU per event, RSS with 100k watchers
 *   BENCH_V3_CELL_WARMUP=0 npm run bench:v3  # no unmeasured run of each put/range cell before it (default: one of the same size)
 *   ETCD_BENCHMARK=/path/to/benchmark        # default /var/tmp/etcd-bench/benchmark (../shared/etcd-tools/build-etcd-benchmark.sh)
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuMs, peakRss, rssBytes as rss } from './proc';
import { freePort } from './cluster';
import { NODE_FLAGS } from '../server/node-flags';

export const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';
export const ETCDCTL = process.env.ETCDCTL ?? '/usr/bin/etcdctl';
export const BENCHMARK = process.env.ETCD_BENCHMARK ?? '/var/tmp/etcd-bench/benchmark';
export const OURS = path.join(__dirname, '../server/main.js');
/** The key the range cells read (put once, 256 bytes, before any range). */
const RANGE_KEY = 'bench-range-key';

interface Cell {
  name: string;
  args: string[];
  /** Requests at BENCH_V3_TOTAL=1: a few seconds on a small machine. */
  total: number;
  /** Run with auth enabled (user root:pass, each server's default simple token), after every cell without. */
  auth?: boolean;
  /** the flag that sets that count (default --total; watch's is --put-total) */
  totalFlag?: string;
  /** what the server does per request, for its CPU per unit: a put to a key N watchers watch is N events */
  unitsPer?: number;
  /** the part of the report to read (watch prints its creation summary, then its events summary) */
  section?: string;
  /** the server's RSS is taken when this appears in the benchmark's output (all watchers open, no event yet) */
  rssAt?: string;
  /** Unmeasured requests of the same shape right before the measured run, on each server (see CELL_WARMUP). */
  warm?: number;
}

/**
 * How much of a put or range cell is run unmeasured right before it, on each server alike (BENCH_V3_CELL_WARMUP,
 * default 1: the cell runs twice and the second run is measured; 0 turns it off). The start's warm-up runs at 16
 * clients; a cell at another concurrency takes other paths (at one client the WAL writes each entry from the event
 * loop), and V8 compiles them as they first run. Measured at put 1/1 without it (the packets on loopback): the
 * client waited over 0.8 ms to send its next request 43 times in the cell's first second, 2-4 times a second from
 * its fourth (etcd: 2-6 throughout), while the server's own time per request stayed at etcd's. So the cell's p99 was
 * ours' first seconds on that path, not its steady state.
 */
const CELL_WARMUP = Number(process.env.BENCH_V3_CELL_WARMUP ?? 1);

const POINTS = [
  { conns: 1, clients: 1 },
  { conns: 16, clients: 16 },
  { conns: 100, clients: 1000 },
];

function cells(): Cell[] {
  const out: Cell[] = [];
  const putTotal = [5000, 20000, 40000];
  const rangeTotal = [8000, 25000, 40000];
  POINTS.forEach((p, i) => {
    const conn = [`--conns=${p.conns}`, `--clients=${p.clients}`];
    // etcd's performance docs: put --key-size=8 --sequential-keys --val-size=256.
    out.push({ name: `put ${p.conns}/${p.clients}`, args: [...conn, 'put', '--key-size=8', '--sequential-keys', '--val-size=256'], total: putTotal[i], warm: putTotal[i] * CELL_WARMUP });
  });
  for (const c of ['l', 's']) {
    POINTS.forEach((p, i) => {
      out.push({ name: `range-${c} ${p.conns}/${p.clients}`, args: [`--conns=${p.conns}`, `--clients=${p.clients}`, 'range', RANGE_KEY, `--consistency=${c}`], total: rangeTotal[i], warm: rangeTotal[i] * CELL_WARMUP });
    });
  }
  // Keep-alives of one lease per client (etcd's lease-keepalive: grant, then keep-alive requests on a stream).
  out.push({ name: 'lease-keepalive 10/100', args: ['--conns=10', '--clients=100', 'lease-keepalive'], total: 40000 });
  // etcd's watch: 10 streams of 100 watchers of one key and one writer, every put an event to each of the 1000;
  // events/s and the server's CPU per event (the latencies of this report are the client's own, not the server's).
  const events = 'Watch events received summary';
  const watch = ['watch', '--put-rate=1000000', '--key-size=32'];
  out.push({ name: 'watch 10x100/1key', args: ['--conns=1', '--clients=1', ...watch, '--streams=10', '--watch-per-stream=100', '--watched-key-total=1'], total: 200, totalFlag: '--put-total', unitsPer: 1000, section: events });
  // etcd's watch-latency: put to the key 100 clients watch, then wait for all; latency put to event (per event).
  out.push({ name: 'watch-latency 10/100', args: ['--conns=10', '--clients=100', 'watch-latency', '--put-rate=200'], total: 1000, unitsPer: 100 });
  // 100,000 open watchers (1000 streams of 100, on 1000 keys over 20 connections): RSS with them all created, then
  // 1000 puts of 100 events each.
  out.push({ name: 'watch 1000x100 (RSS)', args: ['--conns=20', '--clients=20', ...watch, '--streams=1000', '--watch-per-stream=100', '--watched-key-total=1000', '--sequential-keys', '--key-space-size=1000'], total: 1000, totalFlag: '--put-total', unitsPer: 100, section: events, rssAt: 'Watch creation summary' });
  // Put as root with auth on: every request carries the token its connection got from Authenticate (last, since
  // auth stays on once enabled).
  POINTS.forEach((p, i) => {
    out.push({ name: `put-auth ${p.conns}/${p.clients}`, args: [`--conns=${p.conns}`, `--clients=${p.clients}`, 'put', '--key-size=8', '--sequential-keys', '--val-size=256'], total: putTotal[i], warm: putTotal[i] * CELL_WARMUP, auth: true });
  });
  // BENCH_V3_CELLS: a regular expression choosing rows by name.
  const only = process.env.BENCH_V3_CELLS ? new RegExp(process.env.BENCH_V3_CELLS) : undefined;
  return only ? out.filter((c) => only.test(c.name)) : out;
}

export interface Server {
  name: string;
  command: string;
  args: string[];
}

export interface Running {
  server: Server;
  proc: ChildProcess;
  /** host:port of the client listener */
  endpoint: string;
  /** http://host:port of the client listener */
  url: string;
  /** http://host:port of the peer listener */
  peer: string;
  dataDir: string;
  dir: string;
  /** Whether auth has been enabled (root:pass), so that `benchmark` must log in. */
  auth?: boolean;
}

/** Debian's etcd and ours, as every side-by-side benchmark starts them. */
export const SERVERS: Server[] = [
  { name: 'etcd', command: REAL_ETCD, args: [] },
  { name: 'ours', command: process.execPath, args: [...NODE_FLAGS, OURS] },
];

/** Fails early, saying how to get it, when a program a benchmark needs is missing. */
export function checkPrograms(extra: [string, string][] = []): void {
  for (const [what, p] of [['Debian etcd', REAL_ETCD], ['etcdctl', ETCDCTL], ["etcd's benchmark (../shared/etcd-tools/build-etcd-benchmark.sh)", BENCHMARK], ['our server (npm run build)', OURS], ...extra]) {
    if (!existsSync(p)) throw new Error(`${what} not found at ${p}`);
  }
}

/** What one `benchmark` run printed: throughput, latencies in ms, errors. */
export interface BenchResult {
  rps: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** the server's CPU time per request (user + system), filled in by the caller */
  cpuUs?: number;
  /** the server's RSS before the run and at the cell's rssAt (bytes) */
  rssBefore?: number;
  rssAt?: number;
}

/** Parses the report of etcd's pkg/report: "Requests/sec:", "Average:", "  50.0% in 0.0012 secs.", error counts. */
export function parseReport(out: string): BenchResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  let errors = 0;
  const errSection = out.split('Error distribution:')[1];
  if (errSection) for (const m of errSection.matchAll(/^\s*\[(\d+)\]/gm)) errors += Number(m[1]);
  return {
    rps: num(/Requests\/sec:\s*([\d.]+)/),
    // (with --precise, a latency under 0.1 ms prints as 9.8e-05)
    avgMs: num(/Average:\s*([\d.]+(?:e-?\d+)?) secs/) * 1000,
    p50Ms: num(/^\s*50(?:\.0+)?% in ([\d.]+(?:e-?\d+)?) secs/m) * 1000,
    p99Ms: num(/^\s*99(?:\.0+)?% in ([\d.]+(?:e-?\d+)?) secs/m) * 1000,
    errors,
  };
}

/** Runs cmd to its end; onMarker is called once when marker first appears in its output. */
export function run(cmd: string, args: string[], timeoutMs: number, marker?: string, onMarker?: () => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('timeout', ['-k', '5', String(Math.ceil(timeoutMs / 1000)), cmd, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
    if (!marker || !onMarker) return;
    let tail = '';
    const watch = (chunk: Buffer | string): void => {
      const seen = tail + chunk.toString();
      tail = seen.slice(-marker.length);
      if (!seen.includes(marker)) return;
      child.stdout?.off('data', watch);
      onMarker();
    };
    child.stdout?.on('data', watch);
  });
}

export function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    http
      .get(`${url}/health`, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
      })
      .on('error', () => resolve(false));
  });
}

/** The flags of a single member named `default` (etcd's default name) on a data dir, a client URL and a peer URL. */
export function memberArgs(dataDir: string, url: string, peer: string): string[] {
  return [
    '--data-dir', dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
  ];
}

/**
 * Starts a single-node durable member on a fresh data dir under /tmp (or `opts.tmp`), waits for /health; unless
 * `opts.warm` is false, puts the range key and gives it unmeasured load so that it starts warm.
 */
export async function start(server: Server, opts: { warm?: boolean; tmp?: string; args?: string[] } = {}): Promise<Running> {
  const dir = mkdtempSync(path.join(opts.tmp ?? os.tmpdir(), `bench-v3-${server.name}-`));
  const dataDir = path.join(dir, 'data');
  const [cport, pport] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${cport}`;
  const peer = `http://127.0.0.1:${pport}`;
  const proc = spawn(
    server.command,
    [...server.args, ...(opts.args ?? []), ...memberArgs(dataDir, url, peer)],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 30000;
  while (!(await healthy(url))) {
    if (proc.exitCode !== null) throw new Error(`${server.name} exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${server.name} did not become healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const endpoint = `127.0.0.1:${cport}`;
  if (opts.warm === false) return { server, proc, endpoint, url, peer, dataDir, dir };
  // The key the range cells read, then unmeasured load so that both start warm (JIT, connections, file growth).
  await run(ETCDCTL, [`--endpoints=${endpoint}`, 'put', RANGE_KEY, 'v'.repeat(256)], 30000);
  await run(BENCHMARK, [`--endpoints=${endpoint}`, '--conns=16', '--clients=16', 'put', '--key-size=8', '--sequential-keys', '--val-size=256', '--total=2000'], 120000);
  await run(BENCHMARK, [`--endpoints=${endpoint}`, '--conns=16', '--clients=16', 'range', RANGE_KEY, '--total=2000'], 120000);
  return { server, proc, endpoint, url, peer, dataDir, dir };
}

/** The user the auth cells log in as. */
export const ROOT = 'root:pass';

/** Adds user root and enables auth with Debian's etcdctl (which grants root the root role, as etcd's docs do). */
export async function enableAuth(r: Running): Promise<void> {
  await run(ETCDCTL, [`--endpoints=${r.endpoint}`, 'user', 'add', ROOT], 60000);
  await run(ETCDCTL, [`--endpoints=${r.endpoint}`, 'auth', 'enable'], 60000);
  r.auth = true;
}

export function stop(r: Running): void {
  r.proc.kill('SIGKILL');
  rmSync(r.dir, { recursive: true, force: true });
}

/** A directory's apparent size and its allocated size (as du), in bytes. */
export function dirSize(p: string): { apparent: number; allocated: number } {
  const st = lstatSync(p);
  if (!st.isDirectory()) return { apparent: st.size, allocated: st.blocks * 512 };
  let apparent = 0;
  let allocated = st.blocks * 512;
  for (const name of readdirSync(p)) {
    const s = dirSize(path.join(p, name));
    apparent += s.apparent;
    allocated += s.allocated;
  }
  return { apparent, allocated };
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const scale = Number(process.env.BENCH_V3_TOTAL ?? 1);
  const pairs = Number(process.env.BENCH_V3_PAIRS ?? 1);
  checkPrograms();
  const servers = SERVERS;
  const matrix = cells();
  const results = new Map<string, BenchResult[]>();
  const memory: string[] = [];
  console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (let pair = 0; pair < pairs; pair++) {
    const running: Running[] = [];
    try {
      for (const s of servers) running.push(await start(s));
      // Which server goes first in each cell alternates from pair to pair.
      const order = pair % 2 === 0 ? running : [...running].reverse();
      for (const cell of matrix) {
        const total = Math.max(1, Math.round(cell.total * scale));
        for (const r of order) {
          if (cell.auth && !r.auth) await enableAuth(r);
          const args = [`--endpoints=${r.endpoint}`, '--precise', ...(cell.auth ? [`--user=${ROOT}`] : []), ...cell.args, `${cell.totalFlag ?? '--total'}=${total}`];
          const warm = Math.round((cell.warm ?? 0) * scale);
          if (warm > 0) {
            await run(BENCHMARK, args.map((a) => (a === `--total=${total}` ? `--total=${warm}` : a)), Math.max(120000, warm * 20)).catch((err: Error) =>
              console.error(`${r.server.name} ${cell.name} (warm-up): ${err.message.split('\n')[0]}`),
            );
          }
          let res: BenchResult;
          const cpu0 = cpuMs(r.proc.pid!);
          const rssBefore = rss(r.proc.pid!);
          let rssAt: number | undefined;
          try {
            const out = await run(BENCHMARK, args, Math.max(120000, total * 20), cell.rssAt, () => (rssAt = rss(r.proc.pid!)));
            res = parseReport(cell.section ? out.split(cell.section)[1] ?? '' : out);
          } catch (err) {
            console.error(`${r.server.name} ${cell.name}: ${(err as Error).message.split('\n')[0]}`);
            res = { rps: NaN, avgMs: NaN, p50Ms: NaN, p99Ms: NaN, errors: NaN };
          }
          const key = `${r.server.name}/${cell.name}`;
          results.set(key, [...(results.get(key) ?? []), res]);
          // The server's CPU per request: less at the mercy of a shared machine's load than req/s.
          const cpuUs = ((cpuMs(r.proc.pid!) - cpu0) * 1000) / (total * (cell.unitsPer ?? 1));
          res.cpuUs = cpuUs;
          if (cell.rssAt) Object.assign(res, { rssBefore, rssAt: rssAt ?? NaN });
          const mem = cell.rssAt ? `, RSS ${mb(rssBefore)} before, ${mb(rssAt ?? NaN)} with the watchers open` : '';
          process.stderr.write(`pair ${pair + 1} ${cell.name.padEnd(18)} ${r.server.name}: ${res.rps.toFixed(0)} ${cell.unitsPer ? 'events' : 'req'}/s p50 ${res.p50Ms.toFixed(2)} ms p99 ${res.p99Ms.toFixed(2)} ms, server CPU ${cpuUs.toFixed(cell.unitsPer ? 1 : 0)} us/${cell.unitsPer ? 'event' : 'req'}${res.errors ? `, errors ${res.errors}` : ''}${mem}\n`);
        }
      }
      for (const r of running) {
        const d = dirSize(r.dataDir);
        memory.push(`pair ${pair + 1} ${r.server.name.padEnd(4)}: RSS ${mb(rss(r.proc.pid!))}, data dir ${mb(d.allocated)} allocated (${mb(d.apparent)} apparent)`);
      }
    } finally {
      for (const r of running) stop(r);
    }
  }

  const cell = (r: BenchResult[] | undefined) => {
    if (!r) return '-'.padStart(26);
    const errors = r.reduce((a, x) => a + (x.errors || 0), 0);
    return `${median(r.map((x) => x.rps)).toFixed(0).padStart(7)} (${median(r.map((x) => x.p50Ms)).toFixed(2)}/${median(r.map((x) => x.p99Ms)).toFixed(2)})${errors ? ` err ${errors}` : ''}`.padStart(26);
  };
  console.log('');
  console.log(`etcd's benchmark, v3 gRPC, single node, durable; ${pairs} alternating pair(s), medians; BENCH_V3_TOTAL=${scale}`);
  console.log(`(${os.cpus().length} cores, node ${process.version}; load average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  console.log(`${'row'.padEnd(20)} ${'etcd req/s (p50/p99 ms)'.padStart(26)} ${'ours req/s (p50/p99 ms)'.padStart(26)}  ours/etcd`);
  for (const c of matrix) {
    const e = results.get(`etcd/${c.name}`);
    const o = results.get(`ours/${c.name}`);
    const ratios = (o ?? []).map((x, i) => x.rps / (e?.[i]?.rps ?? NaN));
    const ratio = median(ratios);
    const spread = pairs > 1 ? `  [${ratios.map((x) => x.toFixed(2)).join(', ')}]` : '';
    console.log(`${c.name.padEnd(20)} ${cell(e)} ${cell(o)}  ${Number.isNaN(ratio) ? '-' : `${ratio.toFixed(2)}x`}${spread}`);
  }
  console.log('');
  console.log(`server CPU per request or event (user + system, us, medians, etcd/ours): ${matrix.map((c) => `${c.name} ${['etcd', 'ours'].map((n) => median((results.get(`${n}/${c.name}`) ?? []).map((x) => x.cpuUs ?? NaN)).toFixed(c.unitsPer ? 1 : 0)).join('/')}`).join('; ')}`);
  for (const c of matrix.filter((x) => x.rssAt)) {
    const at = (n: string, f: 'rssBefore' | 'rssAt') => mb(median((results.get(`${n}/${c.name}`) ?? []).map((x) => x[f] ?? NaN)));
    console.log(`${c.name}: RSS before / with the watchers open (medians): ${['etcd', 'ours'].map((n) => `${n} ${at(n, 'rssBefore')} / ${at(n, 'rssAt')}`).join('; ')}`);
  }
  console.log('');
  for (const line of memory) console.log(line);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
