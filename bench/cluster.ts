/**
 * The 3-member case: a cluster of one implementation on 127.0.0.1 (default heartbeat 100 ms, election 1000 ms),
 * v2 PUT load through the leader and through a follower, and the failover time: from kill -9 of the leader to the
 * first write that succeeds through a survivor.
 *
 * Each load row is a fixed amount of work, the same for both servers (BENCH_CLUSTER_REQUESTS writes, default
 * 100,000, at 64 connections; BENCH_CLUSTER_MAX_SECONDS bounds a row, default 60), after a warm-up of
 * BENCH_CLUSTER_WARMUP_REQUESTS writes (default 10,000) through the leader. A member snapshots every 100,000 entries
 * (--snapshot-count's default, etcd's and ours), and a snapshot sets the p99 of the seconds it falls in (tens of ms on
 * both servers here): rows of a fixed duration gave the faster server more writes and so more snapshots. With the
 * same writes, each row holds the same snapshots for both; the snapshots each member saved during a row are
 * counted from its log and printed with the row.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuMs } from './proc';
import { LoadResult, runLoad } from './v2-load';

export interface ClusterBenchResult {
  viaLeader: LoadResult;
  viaFollower: LoadResult;
  /** CPU time of the three members together per write (µs), through the leader and through a follower. */
  cpuUsViaLeader: number;
  cpuUsViaFollower: number;
  /** Snapshots the three members saved during each row, all together (from their logs). */
  snapshotsViaLeader: number;
  snapshotsViaFollower: number;
  /** The median of the failover samples, and the samples (ms). */
  failoverMs: number;
  failoverSamples: number[];
}

interface Member {
  name: string;
  clientURL: string;
  peerURL: string;
  proc: ChildProcess;
  /** Snapshots saved, from the member's log (etcd: "saved snapshot at index N"; ours: "saved snapshot (index=N)"). */
  snapshots: number;
}

const WARMUP_REQUESTS = Number(process.env.BENCH_CLUSTER_WARMUP_REQUESTS ?? 10000);
const ROW_REQUESTS = Number(process.env.BENCH_CLUSTER_REQUESTS ?? 100000);
const ROW_MAX_SECONDS = Number(process.env.BENCH_CLUSTER_MAX_SECONDS ?? 60);

/** A free port on 127.0.0.1 (for the bench's servers). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function getJSON(url: string, timeoutMs = 1000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(b) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function putOnce(url: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const body = 'value=failover';
    const req = http.request(`${url}/v2/keys/failover-probe`, {
      method: 'PUT',
      timeout: timeoutMs,
      agent: false,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve((res.statusCode ?? 500) < 300));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end(body);
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function leaderOf(members: Member[]): Promise<Member> {
  return until(
    'a leader',
    async () => {
      const views = await Promise.all(members.map((m) => getJSON(`${m.clientURL}/v2/stats/self`)));
      const i = views.findIndex((v) => (v.body as { state: string }).state === 'StateLeader');
      const lead = (views[0].body as { leaderInfo: { leader: string } }).leaderInfo.leader;
      if (i < 0 || views.some((v) => (v.body as { leaderInfo: { leader: string } }).leaderInfo.leader !== lead)) return undefined;
      return members[i];
    },
    30000,
  );
}

export async function benchCluster(command: string, prefixArgs: string[], o: { failovers: number }): Promise<ClusterBenchResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-cluster-'));
  const members: Member[] = [];
  const specs = [];
  for (let i = 0; i < 3; i++) specs.push({ name: `b${i}`, clientURL: `http://127.0.0.1:${await freePort()}`, peerURL: `http://127.0.0.1:${await freePort()}` });
  const initial = specs.map((s) => `${s.name}=${s.peerURL}`).join(',');
  try {
    const launch = (s: Omit<Member, 'proc'>): ChildProcess => {
      const proc = spawn(
        command,
        [
          ...prefixArgs,
          '--name', s.name, '--data-dir', path.join(dir, s.name), '--enable-v2=true',
          '--listen-client-urls', s.clientURL, '--advertise-client-urls', s.clientURL,
          '--listen-peer-urls', s.peerURL, '--initial-advertise-peer-urls', s.peerURL,
          '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'bench',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      // Both servers log to stderr, a line per saved snapshot; a line split across chunks is joined first.
      let partial = '';
      proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const line of lines) if (/saved snapshot/.test(line)) s.snapshots++;
      });
      return proc;
    };
    for (const spec of specs) {
      const m = { ...spec, snapshots: 0 } as Member;
      m.proc = launch(m);
      members.push(m);
    }
    await until('a healthy cluster', async () => ((await Promise.all(members.map((m) => getJSON(`${m.clientURL}/health`)))).every((h) => h.status === 200) ? true : undefined), 30000);
    const leader = await leaderOf(members);
    const follower = members.find((m) => m !== leader)!;
    const load = { workload: 'put' as const, maxRequests: Infinity, maxSeconds: ROW_MAX_SECONDS, valueSize: 64 };
    await runLoad({ ...load, endpoint: leader.clientURL, connections: 16, requests: WARMUP_REQUESTS });
    const cpu = () => members.reduce((sum, m) => sum + cpuMs(m.proc.pid!), 0);
    const snapshots = () => members.reduce((sum, m) => sum + m.snapshots, 0);
    let [c0, s0] = [cpu(), snapshots()];
    const viaLeader = await runLoad({ ...load, endpoint: leader.clientURL, connections: 64, requests: ROW_REQUESTS });
    const cpuUsViaLeader = ((cpu() - c0) * 1000) / Math.max(1, viaLeader.requests);
    const snapshotsViaLeader = snapshots() - s0;
    [c0, s0] = [cpu(), snapshots()];
    const viaFollower = await runLoad({ ...load, endpoint: follower.clientURL, connections: 64, requests: ROW_REQUESTS });
    const cpuUsViaFollower = ((cpu() - c0) * 1000) / Math.max(1, viaFollower.requests);
    const snapshotsViaFollower = snapshots() - s0;
    // Failover, several times (election timeouts are randomized): kill -9 the leader, probe the survivors every
    // 10 ms until a write succeeds (bounded), then restart the killed member on its data and wait for health.
    const samples: number[] = [];
    for (let round = 0; round < o.failovers; round++) {
      const current = await leaderOf(members);
      const survivors = members.filter((m) => m !== current);
      const killedAt = performance.now();
      current.proc.kill('SIGKILL');
      let firstSuccess = 0;
      const probes: Promise<void>[] = [];
      for (let i = 0; i < 2000 && firstSuccess === 0 && performance.now() - killedAt < 20000; i++) {
        const target = survivors[i % survivors.length];
        probes.push(
          putOnce(target.clientURL, 3000).then((ok) => {
            if (ok && firstSuccess === 0) firstSuccess = performance.now();
          }),
        );
        await new Promise((r) => setTimeout(r, 10));
      }
      await Promise.all(probes);
      if (firstSuccess === 0) throw new Error('no write succeeded within 20 s of killing the leader');
      samples.push(firstSuccess - killedAt);
      if (current.proc.exitCode === null && current.proc.signalCode === null) await new Promise((r) => current.proc.once('exit', r));
      current.proc = launch(current);
      await until('the killed member back', async () => ((await getJSON(`${current.clientURL}/health`)).status === 200 ? true : undefined), 30000);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    return { viaLeader, viaFollower, cpuUsViaLeader, cpuUsViaFollower, snapshotsViaLeader, snapshotsViaFollower, failoverMs: sorted[Math.floor(sorted.length / 2)], failoverSamples: samples };
  } finally {
    for (const m of members) m.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
