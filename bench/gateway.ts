/**
 * The v3 JSON gateway (grpc-gateway's POST /v3/kv/put and /v3/kv/range) under `wrk`, side by side with Debian's
 * etcd: both single-node and durable on fresh data dirs (bench/v3.ts's start), per cell both servers, the order
 * alternating from pair to pair, fresh servers each pair; medians and the median ratio ours/etcd. `put` sends
 * sequential 8-character keys and 256-byte values, `range` reads one key (linearizable), at 1, 16 and 64 connections
 * (bench/wrk/gateway.lua makes the requests and reports wrk's counts, percentiles and its own CPU time).
 *
 * Checks each run: wrk saw no non-2xx answer and no socket error, every put it counted answered was applied (the
 * server's revision moved at least as far), and wrk was not the bottleneck (its CPU time against wall time per
 * thread, flagged above 90%). Also prints each server's CPU per request, steadier than req/s on a shared machine.
 *
 *   npm run bench:gateway
 *   BENCH_GATEWAY_SECONDS=10 BENCH_GATEWAY_PAIRS=5 npm run bench:gateway
 *   BENCH_GATEWAY_CELLS='put 64'      # only the rows whose names match
 *   BENCH_GATEWAY_THREADS=2           # wrk threads (default 1, at most the connections)
 *   WRK=/path/to/wrk                  # default /usr/bin/wrk
 */
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuMs, rssBytes as rss } from './proc';
import { ETCDCTL, SERVERS, checkPrograms, median, mb, run, start, stop, type Running } from './v3';

const WRK = process.env.WRK ?? '/usr/bin/wrk';
/** The Lua script stays in the source tree (tsc copies no .lua into dist/). */
const SCRIPT = path.join(__dirname, '../../bench/wrk/gateway.lua');
/** bench/v3.ts's start puts this key (256 bytes) before any load. */
const RANGE_KEY = 'bench-range-key';
const SECONDS = Number(process.env.BENCH_GATEWAY_SECONDS ?? 5);
const PAIRS = Number(process.env.BENCH_GATEWAY_PAIRS ?? 3);
const THREADS = Number(process.env.BENCH_GATEWAY_THREADS ?? 1);

interface Cell {
  name: string;
  op: 'put' | 'range';
  conns: number;
}

function cells(): Cell[] {
  const out: Cell[] = [];
  for (const op of ['put', 'range'] as const) for (const conns of [1, 16, 64]) out.push({ name: `${op} ${conns}`, op, conns });
  const only = process.env.BENCH_GATEWAY_CELLS ? new RegExp(process.env.BENCH_GATEWAY_CELLS) : undefined;
  return only ? out.filter((c) => only.test(c.name)) : out;
}

/** What bench/wrk/gateway.lua's done() prints. */
interface WrkResult {
  requests: number;
  duration_us: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
  connect: number;
  read: number;
  write: number;
  /** answers with a status above 399 */
  status: number;
  timeout: number;
  /** wrk's own CPU time, user + system, in 1/100 s */
  cpu_ticks: number;
  threads: number;
}

interface Measured {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** non-2xx answers and socket errors */
  errors: number;
  /** wrk's CPU time over wall time, per thread (1 = saturated) */
  wrkLoad: number;
  /** the server's CPU time per request, us */
  cpuUs: number;
  /** puts wrk counted answered that the server's revision does not account for (0 expected) */
  missing: number;
}

function runWrk(url: string, op: string, conns: number, seconds: number): Promise<WrkResult> {
  const threads = Math.max(1, Math.min(THREADS, conns));
  const args = [`-t${threads}`, `-c${conns}`, `-d${seconds}s`, '--timeout', '10s', '-s', SCRIPT, url];
  return new Promise((resolve, reject) => {
    execFile('timeout', ['-k', '5', String(seconds + 60), WRK, ...args], { env: { ...process.env, WRK_OP: op, WRK_RANGE_KEY: RANGE_KEY } }, (err, stdout, stderr) => {
      const line = /^WRK_RESULT (.*)$/m.exec(stdout);
      if (err || !line) reject(new Error(`wrk ${args.join(' ')}: ${err?.message ?? 'no result'}\n${stdout.slice(-1000)}${stderr.slice(-1000)}`));
      else resolve(JSON.parse(line[1]) as WrkResult);
    });
  });
}

/** The store's revision, from a serializable get's header (Debian's etcdctl, JSON output). */
async function revision(r: Running): Promise<number> {
  const out = await run(ETCDCTL, [`--endpoints=${r.endpoint}`, 'get', RANGE_KEY, '--consistency=s', '-w', 'json'], 30000);
  return Number((JSON.parse(out) as { header: { revision: number } }).header.revision);
}

function post(url: string, body: object): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Before measuring: the gateway answers the script's requests as meant (a put lands, the range finds its key). */
async function checkGateway(r: Running): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const put = await post(`${r.url}/v3/kv/put`, { key: b64('gateway-check'), value: b64('v') });
  const got = await post(`${r.url}/v3/kv/range`, { key: b64(RANGE_KEY) });
  const kvs = (JSON.parse(got.body) as { kvs?: { value: string }[] }).kvs;
  if (put.status !== 200 || got.status !== 200 || kvs?.[0]?.value !== b64('v'.repeat(256))) {
    throw new Error(`${r.server.name}: the gateway answered put ${put.status} ${put.body}, range ${got.status} ${got.body.slice(0, 200)}`);
  }
}

async function measure(r: Running, cell: Cell): Promise<Measured> {
  const rev0 = cell.op === 'put' ? await revision(r) : 0;
  const cpu0 = cpuMs(r.proc.pid!);
  const w = await runWrk(r.url, cell.op, cell.conns, SECONDS);
  const cpu = cpuMs(r.proc.pid!) - cpu0;
  const ok = w.requests - w.status;
  const applied = cell.op === 'put' ? (await revision(r)) - rev0 : ok;
  return {
    rps: ok / (w.duration_us / 1e6),
    p50Ms: w.p50_us / 1000,
    p99Ms: w.p99_us / 1000,
    errors: w.status + w.connect + w.read + w.write + w.timeout,
    wrkLoad: (w.cpu_ticks * 10) / (w.duration_us / 1000) / w.threads,
    cpuUs: (cpu * 1000) / Math.max(1, w.requests),
    missing: Math.max(0, ok - applied),
  };
}

async function main(): Promise<void> {
  checkPrograms([['wrk', WRK], ['bench/wrk/gateway.lua', SCRIPT]]);
  const matrix = cells();
  const results = new Map<string, Measured[]>();
  const memory: string[] = [];
  const loadBefore = os.loadavg();
  for (let pair = 0; pair < PAIRS; pair++) {
    const running: Running[] = [];
    try {
      for (const s of SERVERS) running.push(await start(s));
      for (const r of running) {
        await checkGateway(r);
        // Unmeasured gateway load, so that both start warm on this path too (ours: the JIT).
        await runWrk(r.url, 'put', 16, 1);
        await runWrk(r.url, 'range', 16, 1);
      }
      const order = pair % 2 === 0 ? running : [...running].reverse();
      for (const cell of matrix) {
        for (const r of order) {
          let m: Measured;
          try {
            m = await measure(r, cell);
          } catch (err) {
            console.error(`${r.server.name} ${cell.name}: ${(err as Error).message.split('\n')[0]}`);
            m = { rps: NaN, p50Ms: NaN, p99Ms: NaN, errors: NaN, wrkLoad: NaN, cpuUs: NaN, missing: NaN };
          }
          const key = `${r.server.name}/${cell.name}`;
          results.set(key, [...(results.get(key) ?? []), m]);
          process.stderr.write(
            `pair ${pair + 1} ${cell.name.padEnd(9)} ${r.server.name}: ${m.rps.toFixed(0)} req/s p50 ${m.p50Ms.toFixed(2)} ms p99 ${m.p99Ms.toFixed(2)} ms, ` +
              `server CPU ${m.cpuUs.toFixed(0)} us/req, wrk CPU ${(m.wrkLoad * 100).toFixed(0)}%/thread` +
              `${m.errors ? `, errors ${m.errors}` : ''}${m.missing ? `, ${m.missing} answered puts not applied` : ''}\n`,
          );
        }
      }
      for (const r of running) memory.push(`pair ${pair + 1} ${r.server.name.padEnd(4)}: RSS ${mb(rss(r.proc.pid!))}`);
    } finally {
      for (const r of running) stop(r);
    }
  }

  const col = (r: Measured[] | undefined) => {
    if (!r) return '-'.padStart(26);
    return `${median(r.map((x) => x.rps)).toFixed(0).padStart(7)} (${median(r.map((x) => x.p50Ms)).toFixed(2)}/${median(r.map((x) => x.p99Ms)).toFixed(2)})`.padStart(26);
  };
  const fmt = (load: number[]) => load.map((x) => x.toFixed(2)).join(' ');
  console.log('');
  console.log(`wrk against the v3 JSON gateway, single node, durable; ${PAIRS} alternating pair(s) of ${SECONDS} s, medians`);
  console.log(`(${os.cpus().length} cores, node ${process.version}, wrk ${Math.max(1, THREADS)} thread(s); load average before ${fmt(loadBefore)}, after ${fmt(os.loadavg())})`);
  console.log(`${'row'.padEnd(10)} ${'etcd req/s (p50/p99 ms)'.padStart(26)} ${'ours req/s (p50/p99 ms)'.padStart(26)}  ours/etcd  server CPU us/req etcd/ours  wrk CPU/thread max  errors  unapplied`);
  const all = (xs: Measured[], k: keyof Measured) => xs.map((x) => x[k]);
  for (const c of matrix) {
    const e = results.get(`etcd/${c.name}`) ?? [];
    const o = results.get(`ours/${c.name}`) ?? [];
    const ratios = o.map((x, i) => x.rps / (e[i]?.rps ?? NaN));
    const ratio = median(ratios);
    const spread = PAIRS > 1 ? ` [${ratios.map((x) => x.toFixed(2)).join(', ')}]` : '';
    const cpu = `${median(all(e, 'cpuUs')).toFixed(0)}/${median(all(o, 'cpuUs')).toFixed(0)}`;
    const wrkMax = Math.max(...all([...e, ...o], 'wrkLoad'));
    const errors = [...e, ...o].reduce((a, x) => a + x.errors, 0);
    const missing = [...e, ...o].reduce((a, x) => a + x.missing, 0);
    console.log(
      `${c.name.padEnd(10)} ${col(e)} ${col(o)}  ${`${ratio.toFixed(2)}x`.padStart(9)}  ${cpu.padStart(25)}  ${`${(wrkMax * 100).toFixed(0)}%${wrkMax > 0.9 ? ' SATURATED' : ''}`.padStart(18)}  ${String(errors).padStart(6)}  ${String(missing).padStart(9)}${spread}`,
    );
  }
  console.log('');
  for (const line of memory) console.log(line);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
