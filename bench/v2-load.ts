/**
 * v2 keys API load: `connections` keep-alive connections each issue requests back to back, bounded by a time limit.
 * Reports throughput and latency percentiles. The load generator is `wrk` (Debian's package, C, epoll), which
 * outruns both servers on this machine; a Node generator of our own measured etcd's GET at 64 connections at 19,595
 * req/s where wrk measures 46,676: it was measuring itself. The Node generator is kept only for what wrk cannot do
 * (client certificates) and for BENCH_LOAD=node; every result says which generator made it and how much of a core
 * the generator used, so a saturated generator shows.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';

export const WRK = process.env.WRK ?? '/usr/bin/wrk';
/** The bench's Lua scripts for wrk (in the source tree: bench/wrk/, next to dist/bench/ two levels up). */
const WRK_SCRIPTS = [path.join(__dirname, 'wrk'), path.join(__dirname, '../../bench/wrk')].find((d) => existsSync(d)) ?? path.join(__dirname, 'wrk');

export type Workload = 'put' | 'get';

export interface LoadOptions {
  endpoint: string;
  workload: Workload;
  connections: number;
  /** Stop after this many requests in all (the Node generator; wrk is bounded by time alone)... */
  maxRequests: number;
  /**
   * A fixed amount of work (PUT only): the run ends after about this many answers, or at maxSeconds if that comes
   * first (wrk: its script interrupts it at the count, and wrk ends within its 0.1 s check of the signal; the Node
   * generator: exactly). Two servers then do the same writes, as etcd's own benchmark does with --total.
   */
  requests?: number;
  /** ...or after this long, whichever comes first. */
  maxSeconds: number;
  valueSize: number;
  /** For https:// endpoints: client certificate, key and CA. */
  tls?: https.AgentOptions;
  /** 'node' when the load must stop at an exact request count (wrk stops at a time). */
  generator?: 'node';
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50ms: number;
  p99ms: number;
  /** Which program made the load, and the CPU it used as a fraction of one core over the run (wrk only). */
  generator: 'wrk' | 'node';
  generatorCpu?: number;
  /** The server's CPU time per request (µs), when the caller measured it (steadier than req/s on a shared machine). */
  serverCpuUs?: number;
}

/** Above this share of a core per wrk thread, the generator may be the bottleneck, and the result says so. */
export const SATURATED = 0.9;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return sorted[i];
}

function request(agent: http.Agent, url: URL, method: string, body: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method,
        agent,
        headers: body !== undefined ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } : undefined,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The load, by wrk when it is installed and can do it (no client certificates), else by the Node generator. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (!o.tls && o.generator !== 'node' && process.env.BENCH_LOAD !== 'node' && existsSync(WRK)) return runWrk(o);
  return runNode(o);
}

/** Parses a duration wrk prints ("812.00us", "1.39ms", "2.01s", "1.00m") into milliseconds. */
export function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`wrk printed a latency this bench cannot read: ${text}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

/** What wrk printed (with --latency) and the `times` of the shell that ran it, as a LoadResult. */
export function parseWrk(out: string): LoadResult {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const pct = (p: number) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)$`, 'm').exec(out);
    if (!m) throw new Error(`wrk printed no ${p}th percentile:\n${out}`);
    return wrkMs(m[1]);
  };
  const requests = num(/(\d+) requests in/);
  const seconds = wrkMs(/requests in ([\d.]+\w+),/.exec(out)?.[1] ?? '0s') / 1000;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  // `times` prints the shell's own user/system times, then its children's: the last line is wrk's.
  const times = [...out.matchAll(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/gm)].pop();
  const cpu = times ? Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]) : undefined;
  return {
    requests,
    errors,
    seconds,
    throughput: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: pct(50),
    p99ms: pct(99),
    generator: 'wrk',
    generatorCpu: cpu !== undefined && seconds > 0 ? cpu / seconds : undefined,
  };
}

let runs = 0;

/** One wrk run: BENCH_WRK_THREADS threads (default 1: on 2 cores a second thread takes CPU from the server). */
async function runWrk(o: LoadOptions): Promise<LoadResult> {
  const base = o.endpoint.replace(/\/+$/, '');
  const threads = Math.min(o.connections, Number(process.env.BENCH_WRK_THREADS ?? 1));
  if (o.workload === 'get') await request(new http.Agent(), new URL(`${base}/v2/keys/bench-get`), 'PUT', `value=${'v'.repeat(o.valueSize)}`);
  if (o.requests !== undefined && o.workload !== 'put') throw new Error('a fixed request count is for PUT loads only');
  const script = o.workload === 'put' ? ['-s', path.join(WRK_SCRIPTS, 'v2-put.lua'), base, '--', String(o.valueSize), `${process.pid}-${++runs}`, String(o.requests ? Math.ceil(o.requests / threads) : 0)] : ['-s', path.join(WRK_SCRIPTS, 'v2-get.lua'), base, '--', 'bench-get'];
  const args = ['-t', String(threads), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(o.maxSeconds))}s`, '--latency', '--timeout', '10s', ...script];
  const out = await new Promise<string>((resolve, reject) => {
    // `times` after wrk: the CPU wrk used, to tell when the load generator itself is the bottleneck.
    const child = spawn('/bin/sh', ['-c', '"$0" "$@"; s=$?; times; exit $s', WRK, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c) => (text += c));
    child.stderr.on('data', (c) => (text += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}:\n${text}`))));
  });
  const r = parseWrk(out);
  if (r.generatorCpu !== undefined && r.generatorCpu / threads > SATURATED) console.log(`(wrk used ${(r.generatorCpu * 100).toFixed(0)}% of a core with ${threads} thread(s): it may be the bottleneck; try BENCH_WRK_THREADS=2)`);
  return r;
}

/** The Node generator: for client certificates, which wrk cannot present, and BENCH_LOAD=node. */
async function runNode(o: LoadOptions): Promise<LoadResult> {
  const agent = o.endpoint.startsWith('https:') ? new https.Agent({ keepAlive: true, maxSockets: o.connections, ...o.tls }) : new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const base = o.endpoint.replace(/\/+$/, '');
  const value = 'v'.repeat(o.valueSize);
  const putBody = `value=${value}`;
  // GET reads one key, written first.
  if (o.workload === 'get') await request(agent, new URL(`${base}/v2/keys/bench-get`), 'PUT', putBody);
  const maxRequests = Math.min(o.maxRequests, o.requests ?? Infinity);
  const latencies = new Float64Array(maxRequests);
  let issued = 0;
  let done = 0;
  let errors = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(o.maxSeconds * 1e9));
  const run = `${process.pid}-${Date.now()}`;
  const worker = async (conn: number): Promise<void> => {
    for (;;) {
      if (issued >= maxRequests || process.hrtime.bigint() >= deadline) return;
      const n = issued++;
      const t0 = process.hrtime.bigint();
      try {
        const status =
          o.workload === 'put'
            ? await request(agent, new URL(`${base}/v2/keys/bench/${run}/${conn}/${n}`), 'PUT', putBody)
            : await request(agent, new URL(`${base}/v2/keys/bench-get`), 'GET', undefined);
        if (status >= 300) errors++;
      } catch {
        errors++;
      }
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: o.connections }, (_, i) => worker(i)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  const sorted = latencies.subarray(0, done).sort();
  return { requests: done, errors, seconds, throughput: done / seconds, p50ms: percentile(sorted, 50), p99ms: percentile(sorted, 99), generator: 'node' };
}

/**
 * Load that is not measured, run on every server right after it starts (etcd and ours alike): a server that was
 * just started is measured in its steady state, not in its first second (Node compiles hot code as it runs; a Go
 * binary does not need to). BENCH_WARMUP_SECONDS (default 1; 0 turns it off).
 */
export async function warmUp(endpoint: string, tls?: https.AgentOptions): Promise<void> {
  const seconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
  if (!(seconds > 0)) return;
  await runLoad({ endpoint, workload: 'put', connections: 16, maxRequests: 50000, maxSeconds: seconds, valueSize: 64, tls });
  await runLoad({ endpoint, workload: 'get', connections: 16, maxRequests: 50000, maxSeconds: seconds / 2, valueSize: 64, tls });
}

/** A closed-loop run at one connection timed by the client itself (bench/one-connection.c). */
export interface OneConnectionResult {
  requests: number;
  throughput: number;
  meanUs: number;
  p50us: number;
  p99us: number;
  p999us: number;
}

let oneConnectionBinary: Promise<string | undefined> | undefined;

/** bench/one-connection.c, compiled once per run with the system's C compiler; undefined when there is none. */
function oneConnection(): Promise<string | undefined> {
  oneConnectionBinary ??= new Promise((resolve) => {
    const src = [path.join(__dirname, 'one-connection.c'), path.join(__dirname, '../../bench/one-connection.c')].find((f) => existsSync(f));
    if (!src) return resolve(undefined);
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-one-')), 'one-connection');
    const cc = spawn(process.env.CC ?? 'cc', ['-O2', '-o', out, src], { stdio: 'ignore' });
    cc.on('error', () => resolve(undefined));
    cc.on('close', (code) => resolve(code === 0 ? out : undefined));
  });
  return oneConnectionBinary;
}

/**
 * One connection, one request at a time, each timed from its write to the end of its answer with the monotonic
 * clock: a cross-check of wrk's latencies at one connection. undefined when no C compiler is there.
 */
export async function runOneConnection(endpoint: string, workload: Workload, seconds: number): Promise<OneConnectionResult | undefined> {
  const bin = await oneConnection();
  if (!bin) return undefined;
  const url = new URL(endpoint);
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(bin, [url.port, String(seconds), workload, `one-${process.pid}-${++runs}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c) => (text += c));
    child.stderr.on('data', (c) => (text += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`one-connection exited with ${code}:\n${text}`))));
  });
  const m = /ONE_RESULT (\{.*\})/.exec(out);
  if (!m) throw new Error(`one-connection printed no result:\n${out}`);
  const j = JSON.parse(m[1]) as { requests: number; seconds: number; mean_us: number; p50_us: number; p99_us: number; p999_us: number };
  return { requests: j.requests, throughput: j.requests / j.seconds, meanUs: j.mean_us, p50us: j.p50_us, p99us: j.p99_us, p999us: j.p999_us };
}
