/**
 * Restart time with a long WAL, side by side with Debian's etcd (issue 18): a single-node member of each, on a fresh
 * data dir, takes N puts (etcd's `benchmark`, 256-byte values; --snapshot-count above N, so every entry stays in
 * the WAL and none in a snapshot), is killed with SIGKILL and started again on its data dir; measured from the
 * spawn to the first answered serializable get (Debian's etcdctl, polled) and to the first /health true. Pairs
 * alternate etcd and ours; medians and the ratio etcd/ours (≥ 1.0: ours is as fast or faster).
 *
 *   npm run build && node dist/bench/restart.js
 *   BENCH_RESTART_ENTRIES=100000 BENCH_RESTART_PAIRS=3 node dist/bench/restart.js
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './cluster';
import { BENCHMARK, ETCDCTL, OURS, REAL_ETCD, healthy, median, run } from './v3';
import { NODE_FLAGS } from '../server/node-flags';

interface Server {
  name: 'etcd' | 'ours';
  command: string;
  args: string[];
}

const ENTRIES = Number(process.env.BENCH_RESTART_ENTRIES ?? 100000);
const PAIRS = Number(process.env.BENCH_RESTART_PAIRS ?? 3);

/** Whether a serializable get answers (exit 0) within a short deadline. */
function getOnce(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(ETCDCTL, [`--endpoints=${endpoint}`, '--dial-timeout=1s', '--command-timeout=1s', 'get', 'k', '--consistency=s'], { env: { ...process.env, ETCDCTL_API: '3' } }, (err) => resolve(!err));
  });
}

async function until(what: string, fn: () => Promise<boolean>, proc: ChildProcess, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (proc.exitCode !== null) throw new Error(`${what}: the server exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function once(server: Server): Promise<{ getMs: number; healthMs: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bench-restart-${server.name}-`));
  const [cport, pport] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${cport}`;
  const peer = `http://127.0.0.1:${pport}`;
  const endpoint = `127.0.0.1:${cport}`;
  const args = [
    ...server.args,
    '--data-dir', path.join(dir, 'data'), '--snapshot-count', String(ENTRIES * 2),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
  ];
  let proc = spawn(server.command, args, { stdio: 'ignore' });
  try {
    await until(`${server.name} to start`, () => healthy(url), proc);
    await run(BENCHMARK, [`--endpoints=${endpoint}`, '--conns=16', '--clients=64', 'put', '--key-size=8', '--sequential-keys', '--val-size=256', `--total=${ENTRIES}`], 600_000);
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    const t0 = performance.now();
    proc = spawn(server.command, args, { stdio: 'ignore' });
    await until(`${server.name} to answer a get`, () => getOnce(endpoint), proc);
    const getMs = performance.now() - t0;
    await until(`${server.name} to be healthy`, () => healthy(url), proc);
    const healthMs = performance.now() - t0;
    return { getMs, healthMs };
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const servers: Server[] = [
    { name: 'etcd', command: REAL_ETCD, args: [] },
    { name: 'ours', command: process.execPath, args: [...NODE_FLAGS, OURS] },
  ];
  const got: Record<string, { getMs: number; healthMs: number }[]> = { etcd: [], ours: [] };
  for (let p = 0; p < PAIRS; p++) {
    for (const s of p % 2 === 0 ? servers : [...servers].reverse()) {
      const r = await once(s);
      got[s.name].push(r);
      console.log(`pair ${p + 1} ${s.name}: first get ${r.getMs.toFixed(0)} ms, healthy ${r.healthMs.toFixed(0)} ms`);
    }
  }
  const m = (n: string, k: 'getMs' | 'healthMs') => median(got[n].map((r) => r[k]));
  console.log(`\nrestart after ${ENTRIES} entries in the WAL (median of ${PAIRS}) | etcd ms | ours ms | etcd/ours`);
  for (const k of ['getMs', 'healthMs'] as const) {
    console.log(`${k === 'getMs' ? 'first serializable get' : 'first /health true'} | ${m('etcd', k).toFixed(0)} | ${m('ours', k).toFixed(0)} | ${(m('etcd', k) / m('ours', k)).toFixed(2)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
