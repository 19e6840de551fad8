/**
 * Snapshot save and restore of a large keyspace, side by side with Debian's etcd: a single-node member of each, on a
 * fresh data dir under /var/tmp with --quota-backend-bytes raised to 4 GiB, is filled with the same data (etcd's
 * `benchmark` put, sequential 8-byte keys, 64 KiB values, 1 GiB in all by default; its time and the member's CPU
 * time) and a marker key; then
 *
 *   save     Debian's `etcdctl snapshot save` against it (the member's peak RSS and CPU time during the save, the
 *            file's size);
 *   restore  the server's own etcdctl (/usr/bin/etcdctl for etcd, dist/server/etcdctl/main.js for ours) restores the
 *            file into a new data dir (its peak RSS, from /usr/bin/time);
 *   start    the restored member is started on that dir, timed from the spawn to the first serializable get that
 *            returns the marker; then the restored keyspace must hold as many keys as the original.
 *
 * Pairs alternate etcd and ours; medians and the ratio etcd/ours of the times (≥ 1.0: ours is as fast or faster).
 * Each member's files are removed as soon as they are not needed, so one server's data is on disk at a time.
 *
 *   npm run bench:snapshot
 *   BENCH_SNAPSHOT_MB=64 npm run bench:snapshot          # a small keyspace, to check the run
 *   BENCH_SNAPSHOT_PAIRS=3 BENCH_SNAPSHOT_VAL=65536 npm run bench:snapshot
 *   BENCH_SNAPSHOT_DIR=/var/tmp                           # where the data dirs and snapshot files go
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './cluster';
import { cpuMs, peakRss } from './proc';
import { BENCHMARK, ETCDCTL, SERVERS, checkPrograms, dirSize, mb, median, memberArgs, run, start, type Server } from './v3';

const MB = Number(process.env.BENCH_SNAPSHOT_MB ?? 1024);
const VAL = Number(process.env.BENCH_SNAPSHOT_VAL ?? 65536);
const PAIRS = Number(process.env.BENCH_SNAPSHOT_PAIRS ?? 1);
const TMP = process.env.BENCH_SNAPSHOT_DIR ?? '/var/tmp';
const QUOTA = String(4 * 1024 * 1024 * 1024);
const OUR_ETCDCTL = path.join(__dirname, '../server/etcdctl/main.js');
const MARKER = 'bench-snapshot-marker';

/** Each server's own etcdctl, for restore. */
const ctl: Record<string, string[]> = { etcd: [ETCDCTL], ours: [process.execPath, OUR_ETCDCTL] };

interface Result {
  fillS: number;
  /** the member's CPU time (user + system) during the fill and during the save, s */
  fillCpuS: number;
  saveCpuS: number;
  dataDirBytes: number;
  saveS: number;
  fileBytes: number;
  /** the member's peak RSS while it sent the snapshot */
  savePeakRss: number;
  restoreS: number;
  restorePeakRss: number;
  /** from the spawn of the restored member to the first get that returns the marker */
  startS: number;
  startPeakRss: number;
}

/** Resets a process's peak RSS (VmHWM) to its current RSS, so that the next reading covers only what follows. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Runs a command under /usr/bin/time: its wall time (s) and peak RSS (bytes). */
async function timed(cmd: string[], timeoutMs: number): Promise<{ s: number; peakRss: number }> {
  const out = path.join(os.tmpdir(), `bench-snapshot-time-${process.pid}`);
  const t0 = performance.now();
  await run('/usr/bin/time', ['-o', out, '-f', '%M', ...cmd], timeoutMs);
  const s = (performance.now() - t0) / 1000;
  const kb = Number(readFileSync(out, 'utf8').trim().split('\n').pop());
  rmSync(out, { force: true });
  return { s, peakRss: kb * 1024 };
}

/** The value a serializable get of the marker returns ('' when it fails or finds none). */
function getMarker(endpoint: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(ETCDCTL, [`--endpoints=${endpoint}`, '--dial-timeout=1s', '--command-timeout=2s', 'get', MARKER, '--consistency=s', '--print-value-only'], (err, stdout) => resolve(err ? '' : stdout.trim()));
  });
}

/** How many keys the member holds (the count of a range over all keys, which a limit does not cut). */
async function countKeys(endpoint: string): Promise<number> {
  const out = await run(ETCDCTL, [`--endpoints=${endpoint}`, '--command-timeout=60s', 'get', '', '--from-key', '--limit=1', '-w', 'json'], 120000);
  return Number((JSON.parse(out) as { count?: number }).count ?? 0);
}

async function once(server: Server, pair: number): Promise<Result> {
  const total = Math.max(1, Math.round((MB * 1024 * 1024) / VAL));
  const work = mkdtempSync(path.join(TMP, `bench-snapshot-${server.name}-`));
  let restored: ChildProcess | undefined;
  try {
    const r = await start(server, { warm: false, tmp: work, args: ['--quota-backend-bytes', QUOTA] });
    const file = path.join(work, 'snapshot.db');
    let save: { s: number; peakRss: number };
    let fillS: number;
    let fillCpuS: number;
    let saveCpuS: number;
    let keys: number;
    let dataDirBytes: number;
    try {
      const t0 = performance.now();
      const cpu0 = cpuMs(r.proc.pid!);
      await run(BENCHMARK, [`--endpoints=${r.endpoint}`, '--conns=16', '--clients=16', 'put', '--key-size=8', '--sequential-keys', `--val-size=${VAL}`, `--total=${total}`], 3_600_000);
      fillS = (performance.now() - t0) / 1000;
      fillCpuS = (cpuMs(r.proc.pid!) - cpu0) / 1000;
      await run(ETCDCTL, [`--endpoints=${r.endpoint}`, 'put', MARKER, `pair-${pair}`], 60000);
      keys = await countKeys(r.endpoint);
      dataDirBytes = dirSize(r.dataDir).allocated;
      resetPeak(r.proc.pid!);
      const cpu1 = cpuMs(r.proc.pid!);
      save = await timed([ETCDCTL, `--endpoints=${r.endpoint}`, 'snapshot', 'save', file], 3_600_000);
      save.peakRss = peakRss(r.proc.pid!);
      saveCpuS = (cpuMs(r.proc.pid!) - cpu1) / 1000;
    } finally {
      r.proc.kill('SIGKILL');
      rmSync(r.dataDir, { recursive: true, force: true });
    }
    const fileBytes = statSync(file).size;

    const dataDir = path.join(work, 'restored');
    const restore = await timed(
      [...ctl[server.name], 'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'default', '--initial-cluster', `default=${r.peer}`, '--initial-advertise-peer-urls', r.peer],
      3_600_000,
    );
    rmSync(file, { force: true });

    const url = `http://127.0.0.1:${await freePort()}`;
    const endpoint = url.slice('http://'.length);
    const t0 = performance.now();
    restored = spawn(server.command, [...server.args, '--quota-backend-bytes', QUOTA, ...memberArgs(dataDir, url, r.peer)], { stdio: 'ignore' });
    const deadline = Date.now() + 600_000;
    while ((await getMarker(endpoint)) !== `pair-${pair}`) {
      if (restored.exitCode !== null) throw new Error(`${server.name}: the restored member exited with ${restored.exitCode}`);
      if (Date.now() > deadline) throw new Error(`${server.name}: the restored member did not answer the marker`);
      await new Promise((res) => setTimeout(res, 10));
    }
    const startS = (performance.now() - t0) / 1000;
    const startPeakRss = peakRss(restored.pid!);
    const after = await countKeys(endpoint);
    if (after !== keys) throw new Error(`${server.name}: ${keys} keys saved, ${after} restored`);
    return { fillS, fillCpuS, saveCpuS, dataDirBytes, saveS: save.s, fileBytes, savePeakRss: save.peakRss, restoreS: restore.s, restorePeakRss: restore.peakRss, startS, startPeakRss };
  } finally {
    restored?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  checkPrograms([['our etcdctl (npm run build)', OUR_ETCDCTL], ['GNU time', '/usr/bin/time']]);
  const got: Record<string, Result[]> = { etcd: [], ours: [] };
  const load0 = os.loadavg();
  for (let p = 0; p < PAIRS; p++) {
    for (const s of p % 2 === 0 ? SERVERS : [...SERVERS].reverse()) {
      const r = await once(s, p + 1);
      got[s.name].push(r);
      console.error(
        `pair ${p + 1} ${s.name}: fill ${r.fillS.toFixed(1)} s (member CPU ${r.fillCpuS.toFixed(1)} s, data dir ${mb(r.dataDirBytes)}), save ${r.saveS.toFixed(2)} s (member CPU ${r.saveCpuS.toFixed(1)} s, ${mb(r.fileBytes)}, member peak RSS ${mb(r.savePeakRss)}), ` +
          `restore ${r.restoreS.toFixed(2)} s (peak RSS ${mb(r.restorePeakRss)}), start to first read ${r.startS.toFixed(2)} s (peak RSS ${mb(r.startPeakRss)})`,
      );
    }
  }
  const m = (n: string, k: keyof Result) => median(got[n].map((r) => r[k]));
  const fmt = (load: number[]) => load.map((x) => x.toFixed(2)).join(' ');
  console.log('');
  console.log(`snapshot of ${MB} MiB (${Math.round((MB * 1024 * 1024) / VAL)} puts of ${VAL} bytes), single node; ${PAIRS} alternating pair(s), medians`);
  console.log(`(${os.cpus().length} cores, node ${process.version}; load average before ${fmt(load0)}, after ${fmt(os.loadavg())})`);
  console.log(`${'step'.padEnd(34)} ${'etcd'.padStart(10)} ${'ours'.padStart(10)}  etcd/ours`);
  const row = (label: string, k: keyof Result, unit: 's' | 'MB') => {
    const [e, o] = [m('etcd', k), m('ours', k)];
    const f = (x: number) => (unit === 's' ? `${x.toFixed(2)} s` : mb(x));
    console.log(`${label.padEnd(34)} ${f(e).padStart(10)} ${f(o).padStart(10)}  ${(e / o).toFixed(2)}`);
  };
  row('fill (benchmark put, 16/16)', 'fillS', 's');
  row('member CPU during the fill', 'fillCpuS', 's');
  row('data dir after the fill', 'dataDirBytes', 'MB');
  row('snapshot save (Debian etcdctl)', 'saveS', 's');
  row('member CPU during the save', 'saveCpuS', 's');
  row('snapshot file', 'fileBytes', 'MB');
  row('member peak RSS during save', 'savePeakRss', 'MB');
  row('snapshot restore (own etcdctl)', 'restoreS', 's');
  row('restore peak RSS', 'restorePeakRss', 'MB');
  row('restored member: spawn to a read', 'startS', 's');
  row('restored member peak RSS then', 'startPeakRss', 'MB');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
