/**
 * The benchmark: the same v2 load (PUT of fresh keys, GET of one key; 1, 16 and 64 connections) against Debian's
 * real etcd and against ours, one after the other on this machine, with throughput and p50/p99 latency for both
 * and the ratio ours/etcd. Each server is single-node and durable (fsync on), with a fresh data dir.
 *
 *   npm run bench                     # the whole matrix: 3 alternating pairs (BENCH_PAIRS), 5 s a cell (BENCH_SECONDS)
 *   BENCH_SECONDS=10 npm run bench    # longer single-node cells
 *   BENCH_CLUSTER_ROUNDS=5 BENCH_FAILOVERS=3 npm run bench   # 3-member rounds (default 3) and failovers per round
 *   BENCH_CLUSTER_REQUESTS=200000 npm run bench   # writes per 3-member row, the same for both (see cluster.ts)
 *   BENCH_CLUSTER=0 npm run bench     # without the 3-member case
 *   BENCH_SINGLE=0 npm run bench      # only the 3-member case
 * Every server gets 1 s of unmeasured load after it starts (BENCH_WARMUP_SECONDS, see v2-load.ts), and each cell 1 s
 * of its own load, unmeasured, right before it (BENCH_CELL_WARMUP_SECONDS).
 * After each one-connection cell, bench/one-connection.c runs the same load timed by the client itself
 * (BENCH_ONE_CONNECTION=0 skips it).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createCertificate } from '../server/tls/pki';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { NODE_FLAGS } from '../server/node-flags';
import { ClusterBenchResult, benchCluster, freePort } from './cluster';
import { cpuMs, rssBytes } from './proc';
import { LoadResult, OneConnectionResult, WRK, Workload, runLoad, runOneConnection, warmUp } from './v2-load';

interface Server {
  name: string;
  command: string;
  args: string[];
}

const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';
const OURS = path.join(__dirname, '../server/main.js');

function healthy(url: string, tls?: BenchPKI): Promise<boolean> {
  return new Promise((resolve) => {
    (tls ? https : http)
      .get(`${url}/health`, tls ? tls.agentOptions : {}, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
      })
      .on('error', () => resolve(false));
  });
}

async function start(server: Server, dataDir: string, tls?: BenchPKI, warm = true): Promise<{ url: string; proc: ChildProcess }> {
  const [cport, pport] = [await freePort(), await freePort()];
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${cport}`;
  const peer = `http://127.0.0.1:${pport}`;
  const proc = spawn(
    server.command,
    [
      ...server.args,
      '--data-dir', dataDir, '--enable-v2=true',
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
      ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.caFile, '--client-cert-auth'] : []),
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 30000;
  while (!(await healthy(url, tls))) {
    if (proc.exitCode !== null) throw new Error(`${server.name} exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${server.name} did not become healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (warm) await warmUp(url, tls?.agentOptions);
  return { url, proc };
}

const fmt = (n: number, d = 0) => n.toFixed(d).padStart(9);

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made for this run. */
interface BenchPKI {
  caFile: string;
  serverCert: string;
  serverKey: string;
  agentOptions: https.AgentOptions;
}

function makePKI(dir: string): BenchPKI {
  const day = 86400_000;
  const window = { notBefore: new Date(Date.now() - day), notAfter: new Date(Date.now() + day) };
  const ca = createCertificate({ subject: { commonName: 'bench-ca' }, isCA: true, ...window });
  const server = createCertificate({ subject: { commonName: 'bench-server' }, issuer: ca, hosts: ['127.0.0.1'], ...window });
  const client = createCertificate({ subject: { commonName: 'bench-client' }, issuer: ca, ...window });
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  return {
    caFile: file('ca.crt', ca.certPem),
    serverCert: file('server.crt', server.certPem),
    serverKey: file('server.key', server.keyPem),
    agentOptions: { ca: ca.certPem, cert: client.certPem, key: client.keyPem },
  };
}

const rssMiB = (pid: number) => rssBytes(pid) / 1048576;

interface CellSamples {
  etcd: LoadResult[];
  ours: LoadResult[];
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const maxRequests = Number(process.env.BENCH_MAX_REQUESTS ?? 1000000);
  const servers: Server[] = [];
  if (existsSync(REAL_ETCD)) servers.push({ name: 'etcd', command: REAL_ETCD, args: [] });
  else console.log(`(${REAL_ETCD} not found: apt-get install -y etcd-server)`);
  if (existsSync(OURS)) servers.push({ name: 'ours', command: process.execPath, args: [...NODE_FLAGS, OURS] });
  else console.log('(our server is not built: npm run build)');
  if (!existsSync(WRK)) console.log(`(${WRK} not found: apt-get install -y wrk; the Node load generator is used instead, and saturates before etcd does)`);
  const pairs = Number(process.env.BENCH_PAIRS ?? 3);
  const cellWarmUp = Number(process.env.BENCH_CELL_WARMUP_SECONDS ?? 1);
  const cells: { workload: Workload; connections: number }[] = [];
  for (const workload of ['put', 'get'] as Workload[]) for (const connections of [1, 16, 64]) cells.push({ workload, connections });
  const key = (c: { workload: Workload; connections: number }) => `${c.workload}/${c.connections}`;

  // Alternating pairs: etcd then ours, each on a fresh data dir, every cell; the table shows medians and the
  // median of the pairs' ratios (one pair is within the noise of a small machine shared with other work).
  const single = process.env.BENCH_SINGLE !== '0';
  const results = new Map<string, CellSamples>(cells.map((c) => [key(c), { etcd: [], ours: [] }]));
  // The cross-check at one connection (bench/one-connection.c).
  const oneConn = new Map<Workload, { etcd: OneConnectionResult[]; ours: OneConnectionResult[] }>([
    ['put', { etcd: [], ours: [] }],
    ['get', { etcd: [], ours: [] }],
  ]);
  for (let pair = 0; pair < (single ? pairs : 0); pair++) {
    for (const server of servers) {
      const dir = mkdtempSync(path.join(os.tmpdir(), `bench-${server.name}-`));
      const { url, proc } = await start(server, path.join(dir, 'data'));
      try {
        for (const c of cells) {
          // The cell's own load first, unmeasured (BENCH_CELL_WARMUP_SECONDS, default 1; 0 turns it off): the
          // start's warm-up runs at 16 connections, and at one connection the server takes other paths, which V8
          // compiles as they first run.
          if (cellWarmUp > 0) await runLoad({ endpoint: url, workload: c.workload, connections: c.connections, maxRequests, maxSeconds: cellWarmUp, valueSize: 64 });
          const cpu0 = cpuMs(proc.pid!);
          const r = await runLoad({ endpoint: url, workload: c.workload, connections: c.connections, maxRequests, maxSeconds: seconds, valueSize: 64 });
          r.serverCpuUs = ((cpuMs(proc.pid!) - cpu0) * 1000) / Math.max(1, r.requests);
          results.get(key(c))![server.name as 'etcd' | 'ours'].push(r);
          // Right after wrk's cell at one connection, the same load timed by the client (the server in the same state).
          if (c.connections === 1 && process.env.BENCH_ONE_CONNECTION !== '0') {
            const one = await runOneConnection(url, c.workload, seconds);
            if (one) oneConn.get(c.workload)![server.name as 'etcd' | 'ours'].push(one);
          }
        }
      } finally {
        proc.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  // Memory: RSS idle (2 s after the first healthy answer, no warm-up) and after 100,000 keys of 100 bytes.
  const memory = new Map<string, { idle: number; loaded: number }>();
  const keys = Number(process.env.BENCH_MEMORY_KEYS ?? 100000);
  for (const server of single && keys > 0 ? servers : []) {
    const dir = mkdtempSync(path.join(os.tmpdir(), `bench-mem-${server.name}-`));
    const { url, proc } = await start(server, path.join(dir, 'data'), undefined, false);
    try {
      await new Promise((r) => setTimeout(r, 2000));
      const idle = rssMiB(proc.pid!);
      const fill = await runLoad({ endpoint: url, workload: 'put', connections: 16, maxRequests: keys, maxSeconds: 600, valueSize: 100, generator: 'node' });
      if (fill.requests !== keys || fill.errors > 0) throw new Error(`${server.name}: ${fill.requests} puts, ${fill.errors} errors`);
      await new Promise((r) => setTimeout(r, 2000));
      memory.set(server.name, { idle, loaded: rssMiB(proc.pid!) });
    } finally {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // The https variant: client TLS with client-certificate authentication, PUT at 64 connections (the Node
  // generator: wrk presents no client certificate).
  const tlsResults = new Map<string, LoadResult>();
  if (process.env.BENCH_TLS !== '0') {
    const pkiDir = mkdtempSync(path.join(os.tmpdir(), 'bench-pki-'));
    const pki = makePKI(pkiDir);
    for (const server of single ? servers : []) {
      const dir = mkdtempSync(path.join(os.tmpdir(), `bench-tls-${server.name}-`));
      const { url, proc } = await start(server, path.join(dir, 'data'), pki);
      try {
        tlsResults.set(server.name, await runLoad({ endpoint: url, workload: 'put', connections: 64, maxRequests, maxSeconds: seconds, valueSize: 64, tls: pki.agentOptions }));
      } finally {
        proc.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }
    rmSync(pkiDir, { recursive: true, force: true });
  }

  // The 3-member case runs in alternating rounds (etcd, ours, etcd, ours, ...), as the single-node pairs.
  const clusters = new Map<string, ClusterBenchResult[]>();
  if (process.env.BENCH_CLUSTER !== '0') {
    const rounds = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
    const failovers = Number(process.env.BENCH_FAILOVERS ?? 3);
    for (let i = 0; i < rounds; i++) {
      for (const server of servers) {
        const r = await benchCluster(server.command, server.args, { failovers });
        clusters.set(server.name, [...(clusters.get(server.name) ?? []), r]);
      }
    }
  }

  if (single) {
    const gen = [...results.values()].flatMap((s) => [...s.etcd, ...s.ours]);
    const busiest = Math.max(0, ...gen.map((r) => r.generatorCpu ?? 0));
    console.log(`v2 keys API, single node, durable, 64-byte values, ${seconds}s per cell, ${pairs} alternating pairs (${os.cpus().length} cores, node ${process.version})`);
    console.log(`load generator: ${gen[0]?.generator ?? '-'}${gen[0]?.generator === 'wrk' ? `, at most ${(busiest * 100).toFixed(0)}% of a core in any cell` : ''}; medians of the pairs`);
    console.log('workload conns |   server    req/s   p50 ms   p99 ms  errors  CPU us/req |  ratio ours/etcd (median of pairs) [pairs]');
    for (const c of cells) {
      const s = results.get(key(c))!;
      for (const name of ['etcd', 'ours'] as const) {
        const rs = s[name];
        if (rs.length === 0) continue;
        const ratios = name === 'ours' && s.etcd.length === rs.length ? rs.map((r, i) => r.throughput / s.etcd[i].throughput) : [];
        const ratio = ratios.length ? `${median(ratios).toFixed(2)}x [${ratios.map((x) => x.toFixed(2)).join(', ')}]` : '';
        const errors = rs.reduce((a, r) => a + r.errors, 0);
        console.log(`${c.workload.padEnd(8)} ${String(c.connections).padStart(5)} | ${name.padStart(8)} ${fmt(median(rs.map((r) => r.throughput)))} ${fmt(median(rs.map((r) => r.p50ms)), 2)} ${fmt(median(rs.map((r) => r.p99ms)), 2)} ${String(errors).padStart(7)} ${fmt(median(rs.map((r) => r.serverCpuUs ?? NaN)))}    | ${ratio}`);
      }
    }
    if (oneConn.get('put')!.ours.length > 0) {
      console.log('');
      console.log('one connection, one request at a time, timed by the client with the monotonic clock (bench/one-connection.c): a cross-check of wrk\'s latencies above');
      console.log('workload       |   server    req/s   p50 ms   p99 ms p99.9 ms    mean ms |  ratio ours/etcd (median of pairs) [pairs]');
      for (const [w, s] of oneConn) {
        for (const name of ['etcd', 'ours'] as const) {
          const rs = s[name];
          if (rs.length === 0) continue;
          const ratios = name === 'ours' && s.etcd.length === rs.length ? rs.map((r, i) => r.throughput / s.etcd[i].throughput) : [];
          const ratio = ratios.length ? `${median(ratios).toFixed(2)}x [${ratios.map((x) => x.toFixed(2)).join(', ')}]` : '';
          const ms = (f: (r: OneConnectionResult) => number) => fmt(median(rs.map(f)) / 1000, 2);
          console.log(`${w.padEnd(8)}     1 | ${name.padStart(8)} ${fmt(median(rs.map((r) => r.throughput)))} ${ms((r) => r.p50us)} ${ms((r) => r.p99us)} ${ms((r) => r.p999us)} ${ms((r) => r.meanUs)}  | ${ratio}`);
        }
      }
    }
    if (memory.size) {
      console.log('');
      console.log(`RSS (MiB): idle 2 s after start, and after ${keys} keys of 100 bytes`);
      const e = memory.get('etcd');
      for (const [name, m] of memory) {
        const ratio = name === 'ours' && e ? `  (${(m.idle / e.idle).toFixed(2)}x / ${(m.loaded / e.loaded).toFixed(2)}x etcd's)` : '';
        console.log(`${name.padStart(8)} ${fmt(m.idle, 1)} ${fmt(m.loaded, 1)}${ratio}`);
      }
    }
    if (tlsResults.size) {
      console.log('');
      console.log('https with client certificates (--client-cert-auth), PUT, 64 connections (Node load generator)');
      const etcdTLS = tlsResults.get('etcd');
      for (const [name, r] of tlsResults) {
        const ratio = name === 'ours' && etcdTLS ? `${(r.throughput / etcdTLS.throughput).toFixed(2)}x` : '';
        console.log(`put-tls     64 | ${name.padStart(8)} ${fmt(r.throughput)} ${fmt(r.p50ms, 2)} ${fmt(r.p99ms, 2)} ${String(r.errors).padStart(7)} | ${ratio}`);
      }
    }
  }
  printClusters(clusters);
}

function printClusters(clusters: Map<string, ClusterBenchResult[]>): void {
  if (clusters.size === 0) return;
  const etcd = clusters.get('etcd');
  const rounds = Math.max(...[...clusters.values()].map((rs) => rs.length));
  console.log('');
  console.log(`3 members on 127.0.0.1 (heartbeat 100 ms, election 1000 ms), PUT, 64 connections, the same writes for both servers in each row, ${rounds} alternating rounds`);
  console.log('case            |   server   writes    req/s   p50 ms   p99 ms  errors  CPU us/write (3 members)  snapshots (3 members) |  ratio ours/etcd');
  const cases = [
    ['via leader', (r: ClusterBenchResult) => r.viaLeader, (r: ClusterBenchResult) => r.cpuUsViaLeader, (r: ClusterBenchResult) => r.snapshotsViaLeader],
    ['via follower', (r: ClusterBenchResult) => r.viaFollower, (r: ClusterBenchResult) => r.cpuUsViaFollower, (r: ClusterBenchResult) => r.snapshotsViaFollower],
  ] as const;
  for (let i = 0; i < rounds; i++) {
    for (const [label, pick, cpuOf, snapshotsOf] of cases) {
      for (const [name, rs] of clusters) {
        const x = rs[i] && pick(rs[i]);
        if (!x) continue;
        const ratio = name === 'ours' && etcd?.[i] ? `${(x.throughput / pick(etcd[i]).throughput).toFixed(2)}x` : '';
        console.log(`${`${label} #${i + 1}`.padEnd(15)} | ${name.padStart(8)} ${fmt(x.requests)} ${fmt(x.throughput)} ${fmt(x.p50ms, 2)} ${fmt(x.p99ms, 2)} ${String(x.errors).padStart(7)} ${fmt(cpuOf(rs[i]))}                 ${fmt(snapshotsOf(rs[i]))}              | ${ratio}`);
      }
    }
  }
  const ours = clusters.get('ours');
  if (etcd && ours) {
    for (const [label, pick] of cases) {
      const ratios = ours.map((r, i) => pick(r).throughput / pick(etcd[i]).throughput);
      const p99 = (rs: ClusterBenchResult[]) => median(rs.map((r) => pick(r).p99ms)).toFixed(2);
      console.log(`${label}: median ratio ours/etcd ${median(ratios).toFixed(2)}x  [${ratios.map((x) => x.toFixed(2)).join(', ')}]; median p99 ours ${p99(ours)} ms, etcd ${p99(etcd)} ms`);
    }
  }
  const etcdFailover = etcd ? median(etcd.flatMap((r) => r.failoverSamples)) : undefined;
  for (const [name, rs] of clusters) {
    const samples = rs.flatMap((r) => r.failoverSamples);
    const m = median(samples);
    const ratio = name === 'ours' && etcdFailover ? `  (${(m / etcdFailover).toFixed(2)}x etcd's time)` : '';
    console.log(`failover: kill -9 leader -> first successful write: ${name.padStart(5)} median ${m.toFixed(0).padStart(6)} ms${ratio}  [${samples.map((x) => x.toFixed(0)).join(', ')}]`);
  }
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
