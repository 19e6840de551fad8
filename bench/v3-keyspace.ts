/**
 * Debian's etcd and ours side by side under etcd's own load generator: for each (one after the other), a single durable
 * member on a fresh data dir and random 127.0.0.1 ports, `benchmark put` of N sequential 8-byte keys with 256-byte
 * values, then its req/s, RSS, data-dir size (du -sh, du --apparent-size), and after SIGTERM and a restart on the same
 * data dir the time from spawn to the first answered serializable `etcdctl get k --consistency=s` (polled every 50 ms),
 * plus RSS right after that restart.
 * `npx tsc -p tsconfig.json && node dist/bench/v3-keyspace.js [N] [etcd|ours ...]` (N defaults to 1,000,000; both
 * servers unless named). BENCHMARK overrides /var/tmp/etcd-bench/benchmark, REAL_ETCD /usr/bin/etcd.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { createServer } from 'net';
import { loadavg, tmpdir } from 'os';
import * as path from 'path';
import { NODE_FLAGS } from '../server/node-flags';

const BENCHMARK = process.env.BENCHMARK ?? '/var/tmp/etcd-bench/benchmark';
const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';
const OURS = path.join(__dirname, '..', 'server', 'main.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const rssMB = (pid: number): number => Math.round(Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)]).toString().trim()) / 1024);
const du = (...a: string[]): string => execFileSync('du', [...a]).toString().split('\t')[0];

async function measure(name: 'etcd' | 'ours', n: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(tmpdir(), `v3-keyspace-${name}-`));
  const [cp, pp] = [await freePort(), await freePort()];
  const ep = `127.0.0.1:${cp}`;
  const flags = [
    '--data-dir', dir, '--listen-client-urls', `http://${ep}`, '--advertise-client-urls', `http://${ep}`,
    '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`,
    '--initial-cluster', `default=http://127.0.0.1:${pp}`,
  ];
  const [cmd, args] = name === 'etcd' ? [REAL_ETCD, flags] : [process.execPath, [...NODE_FLAGS, OURS, ...flags]];
  /** Spawns the member and waits for a serializable get to answer; returns the process and ms since spawn. */
  const start = async (): Promise<{ p: ChildProcess; ms: number }> => {
    const t = performance.now();
    const p = spawn(cmd, args, { stdio: 'ignore' });
    for (;;) {
      const r = spawnSync('etcdctl', [`--endpoints=${ep}`, 'get', 'k', '--consistency=s'], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: 'ignore',
      });
      if (r.status === 0) return { p, ms: performance.now() - t };
      if (p.exitCode !== null) throw new Error(`${name} exited with ${p.exitCode}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const stop = (p: ChildProcess): Promise<unknown> => {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    return exited;
  };
  const first = await start();
  const benchArgs = [
    '600', BENCHMARK, `--endpoints=${ep}`, '--conns=100', '--clients=1000', 'put', '--key-size=8', '--sequential-keys',
    '--key-space-size=1000000', `--total=${n}`, '--val-size=256',
  ];
  const load = spawnSync('timeout', benchArgs, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = load.stdout ?? '';
  const reqPerSec = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const res = {
    server: name,
    total: n,
    benchmarkExit: load.status,
    reqPerSec,
    loadAvg: loadavg().map((x) => x.toFixed(2)).join(' '),
    rssAfterLoadMB: rssMB(first.p.pid!),
    duSh: du('-sh', dir),
    duApparent: du('-sh', '--apparent-size', dir),
    /** Where the bytes are: member/wal, member/snap (etcd's bbolt db), member/v3 (our LMDB). */
    duMember: Object.fromEntries(
      readdirSync(path.join(dir, 'member')).map((e) => [e, du('-sh', '--apparent-size', path.join(dir, 'member', e))]),
    ),
  };
  await stop(first.p);
  const again = await start();
  const out2 = { ...res, restartToFirstGetMs: Math.round(again.ms), rssAfterRestartMB: rssMB(again.p.pid!) };
  await stop(again.p);
  rmSync(dir, { recursive: true, force: true });
  if (!Number.isFinite(reqPerSec)) console.error(out.slice(-2000), load.stderr?.slice(-2000));
  return out2;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  const which = (process.argv.length > 3 ? process.argv.slice(3) : ['etcd', 'ours']) as ('etcd' | 'ours')[];
  for (const name of which) console.log(JSON.stringify(await measure(name, n)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
