/**
 * What a snapshot costs the requests being served (issue 19): our server, single node and durable, under PUT of fresh
 * v2 keys at 64 connections (wrk), with --snapshot-count lowered so that several snapshots are taken during a run,
 * against the same load with snapshots out of reach. For each: wrk's p99 and max latency, the server's largest
 * event-loop delay (perf_hooks, through the bench/loop-lag.ts preload), its CPU time per request, and the snapshots
 * it saved (from its log). The store grows through the run, so the last snapshots are of the largest store.
 *
 *   npm run build && node dist/bench/snapshot-lag.js
 *   BENCH_LAG_SECONDS=20 BENCH_LAG_SNAPSHOT_COUNT=20000 BENCH_LAG_ROUNDS=3 node dist/bench/snapshot-lag.js
 *   BENCH_LAG_PREFILL=100000 …     # first fill the store with this many keys (wrk, unmeasured)
 *   BENCH_LAG_SERVERS=old=/tmp/old/dist/server/main.js,new=dist/server/main.js …   # builds compared, in alternation
 *   BENCH_LAG_NO_SNAPSHOT=0 …      # without the runs that take no snapshot
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './cluster';
import { NODE_FLAGS } from '../server/node-flags';
import { cpuMs } from './proc';
import { healthy, median } from './v3';
import { WRK, runLoad, warmUp } from './v2-load';

/** The builds measured (name=path of main.js), one after the other in each round: ours by default. */
const SERVERS = (process.env.BENCH_LAG_SERVERS ?? `ours=${path.join(__dirname, '../server/main.js')}`).split(',').map((s) => {
  const [name, main] = s.split('=');
  return { name, main: path.resolve(main) };
});
const PRELOAD = path.join(__dirname, 'loop-lag.js');
const SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 20);
const SNAPSHOT_COUNT = Number(process.env.BENCH_LAG_SNAPSHOT_COUNT ?? 20000);
const ROUNDS = Number(process.env.BENCH_LAG_ROUNDS ?? 3);
const PREFILL = Number(process.env.BENCH_LAG_PREFILL ?? 0);

interface Lag {
  seq: number;
  maxMs: number;
  p99Ms: number;
}

/** The server's event-loop delay since the last call (the preload answers SIGUSR2 by writing its file). */
async function lagWindow(proc: ChildProcess, file: string, last: number): Promise<Lag> {
  proc.kill('SIGUSR2');
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const l = JSON.parse(readFileSync(file, 'utf8')) as Lag;
      if (l.seq > last) return l;
    } catch {
      // not written yet, or half written
    }
    if (Date.now() > deadline) throw new Error('the server did not report its event-loop delay');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Row {
  p50: number;
  p99: number;
  rps: number;
  lagMax: number;
  lagP99: number;
  cpuUs: number;
  snapshots: number;
}

async function once(main: string, snapshotCount: number): Promise<Row> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-snaplag-'));
  const [cport, pport] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${cport}`;
  const peer = `http://127.0.0.1:${pport}`;
  const lagFile = path.join(dir, 'lag.json');
  const proc = spawn(
    process.execPath,
    [...NODE_FLAGS, '-r', PRELOAD, main, '--data-dir', path.join(dir, 'data'), '--enable-v2=true', '--snapshot-count', String(snapshotCount),
      '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOOP_LAG_FILE: lagFile } },
  );
  let saved = 0;
  let log = '';
  proc.stderr!.on('data', (c: Buffer) => {
    log += c.toString();
    const lines = log.split('\n');
    log = lines.pop()!;
    for (const l of lines) if (l.includes('saved snapshot')) saved++;
  });
  try {
    const deadline = Date.now() + 30000;
    while (!(await healthy(url))) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error('our server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    await warmUp(url);
    if (PREFILL > 0) {
      // Unmeasured: wrk at 64 connections until the store holds PREFILL keys (wrk is bounded by time alone).
      let keys = 0;
      while (keys < PREFILL) keys += (await runLoad({ endpoint: url, workload: 'put', connections: 64, maxRequests: 1e9, maxSeconds: 5, valueSize: 64 })).requests;
    }
    const l0 = await lagWindow(proc, lagFile, 0);
    const saved0 = saved;
    const cpu0 = cpuMs(proc.pid!);
    const r = await runLoad({ endpoint: url, workload: 'put', connections: 64, maxRequests: 1e9, maxSeconds: SECONDS, valueSize: 64 });
    const cpu = cpuMs(proc.pid!) - cpu0;
    const l = await lagWindow(proc, lagFile, l0.seq);
    if (r.errors > 0) throw new Error(`${r.errors} errors`);
    return { p50: r.p50ms, p99: r.p99ms, rps: r.throughput, lagMax: l.maxMs, lagP99: l.p99Ms, cpuUs: (cpu * 1000) / r.requests, snapshots: saved - saved0 };
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found: apt-get install -y wrk`);
  for (const s of SERVERS) if (!existsSync(s.main)) throw new Error(`${s.main} is not built`);
  const counts = [
    { name: `--snapshot-count ${SNAPSHOT_COUNT}`, count: SNAPSHOT_COUNT },
    ...(process.env.BENCH_LAG_NO_SNAPSHOT === '0' ? [] : [{ name: 'no snapshot in the run', count: 100_000_000 }]),
  ];
  const cases = SERVERS.flatMap((s) => counts.map((c) => ({ name: `${s.name}, ${c.name}`, main: s.main, count: c.count })));
  const rows = new Map<string, Row[]>(cases.map((c) => [c.name, []]));
  for (let i = 0; i < ROUNDS; i++) for (const c of cases) rows.get(c.name)!.push(await once(c.main, c.count));
  console.log(`v2 PUT of fresh keys, 64 connections (wrk), ${SECONDS} s a run${PREFILL ? ` after ${PREFILL} keys` : ''}, medians of ${ROUNDS} rounds (${os.cpus().length} cores, node ${process.version})`);
  console.log('case                                     |    req/s  p50 ms  p99 ms | loop lag max ms  p99 ms | CPU us/req | snapshots');
  for (const [name, rs] of rows) {
    const m = (f: (r: Row) => number, d = 1) => median(rs.map(f)).toFixed(d);
    console.log(`${name.padEnd(41)}| ${m((r) => r.rps, 0).padStart(8)} ${m((r) => r.p50).padStart(7)} ${m((r) => r.p99).padStart(7)} | ${m((r) => r.lagMax).padStart(15)} ${m((r) => r.lagP99).padStart(7)} | ${m((r) => r.cpuUs, 0).padStart(10)} | ${m((r) => r.snapshots, 0).padStart(9)}`);
    console.log(`${''.padEnd(41)}  each run: p99 ${rs.map((r) => r.p99.toFixed(0)).join(', ')}; lag max ${rs.map((r) => r.lagMax.toFixed(0)).join(', ')}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
