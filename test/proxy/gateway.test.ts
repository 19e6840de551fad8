/**
 * `etcd gateway start`, the L4 TCP proxy: its texts and refusals byte for byte as Debian's etcd 3.4's; the picking
 * of endpoints (SRV priorities and weights, round robin); and, run for real, Debian's etcdctl (v3 gRPC) and v2 HTTP
 * through our gateway and through Debian's to our server, with a dead endpoint set aside and brought back.
 */
import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TCPProxy } from '../../server/proxy/tcpproxy';
import { eventually } from '../support/cluster';
import { OUR_ETCD, REAL_ETCD, freePort, startOurEtcd, type RunningEtcd } from '../support/real-etcd';

jest.setTimeout(120_000);

describe('etcd gateway texts, side by side with Debian etcd 3.4', () => {
  const cases = [
    ['gateway'], ['gateway', '-h'], ['gateway', 'bogus'], ['gateway', 'start', '-h'], ['gateway', 'start', '--bogus'],
    ['gateway', 'start', '--retry-delay=xx'], ['gateway', 'start', '--listen-addr=nohostport'], ['gateway', 'start', '--endpoints=bad'],
    ['gateway', 'start', '--endpoints=127.0.0.1:1', '--listen-addr=127.0.0.1:1'],
    ['gateway', 'start', '--endpoints=http://127.0.0.1:1,localhost:2', '--listen-addr=localhost:2'],
    ['gateway', '--endpoints=127.0.0.1:3', 'start', '--listen-addr=127.0.0.1:3'], ['gateway', '--bogus', 'start'], ['gateway', '--listen-addr', 'x', 'start'],
  ];
  test.each(cases.map((c) => [c.join(' '), c]))('etcd %s', (_name, args) => {
    const ours = spawnSync(process.execPath, [OUR_ETCD, ...args], { encoding: 'utf8', timeout: 20000 });
    const theirs = spawnSync(REAL_ETCD, args, { encoding: 'utf8', timeout: 20000 });
    expect({ status: ours.status, stdout: ours.stdout, stderr: ours.stderr }).toEqual({ status: theirs.status, stdout: theirs.stdout, stderr: theirs.stderr });
  });
});

describe("the gateway's choice of endpoint", () => {
  const proxy = (eps: [number, number, number][], randoms: number[] = []) =>
    new TCPProxy({ endpoints: eps.map(([port, priority, weight]) => ({ host: '127.0.0.1', port, priority, weight })), monitorIntervalMs: 1000, log: () => undefined, randomInt: (n) => (randoms.shift() ?? 0) % n });
  test('round robin without weights; by weight within the best priority; a lower priority only when needed', () => {
    const rr = proxy([[1, 0, 0], [2, 0, 0], [3, 0, 0]]);
    expect([1, 2, 3, 4].map(() => rr.pick()!.port)).toEqual([1, 2, 3, 1]);
    // Priority 1 beats 2; weights 10 and 30: a draw of 5 lands on the first, 25 on the second.
    const w = proxy([[9, 2, 50], [1, 1, 10], [2, 1, 30]], [0, 5, 0, 25]);
    expect([w.pick()!.port, w.pick()!.port]).toEqual([1, 2]);
  });
});

describe('etcd gateway start, run for real', () => {
  let dir: string;
  let server: RunningEtcd;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-'));
    server = await startOurEtcd(path.join(dir, 'data'));
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A gateway (ours or Debian's) in front of `endpoints`; resolves with its address and its stderr so far. */
  async function gateway(bin: 'ours' | 'etcd', endpoints: string[], retryDelay: string): Promise<{ addr: string; log: () => string }> {
    const addr = `127.0.0.1:${await freePort()}`;
    // Flags before the subcommand, as etcd's own e2e test runs it.
    const args = ['gateway', `--endpoints=${endpoints.join(',')}`, 'start', `--listen-addr=${addr}`, `--retry-delay=${retryDelay}`];
    const p = bin === 'ours' ? spawn(process.execPath, [OUR_ETCD, ...args]) : spawn(REAL_ETCD, args);
    procs.push(p);
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    await eventually('the gateway to be ready', async () => (log.includes('ready to proxy client requests') ? true : undefined));
    return { addr, log: () => log };
  }

  const etcdctl = (addr: string, ...args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile('/usr/bin/etcdctl', [`--endpoints=${addr}`, '--dial-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
    );

  test.each(['ours', 'etcd'] as const)("%s gateway: etcdctl and v2 HTTP through it; a dead endpoint set aside, then brought back", async (bin) => {
    const deadPort = await freePort();
    const live = server.clientURL.replace('http://', '');
    const gw = await gateway(bin, [`127.0.0.1:${deadPort}`, `http://${live}`], '500ms');
    // Every new connection: round robin from the dead endpoint, which is set aside on its refusal.
    for (let i = 0; i < 4; i++) expect(await etcdctl(gw.addr, 'put', `k${bin}${i}`, `v${i}`)).toBe('OK\n');
    expect(await etcdctl(gw.addr, 'get', '--prefix', `k${bin}`, '--print-value-only')).toBe('v0\nv1\nv2\nv3\n');
    const res = await fetch(`http://${gw.addr}/v2/keys/`);
    expect(res.status).toBe(200);
    expect(gw.log()).toMatch(new RegExp(`"msg":"deactivated endpoint","address":"127.0.0.1:${deadPort}"`));
    // The endpoint answers again: after the retry delay it is used again.
    const back = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => back.listen(deadPort, '127.0.0.1', () => r()));
    try {
      await eventually('the endpoint activated again', async () => (/"msg":"activated","address":"127\.0\.0\.1:\d+"/.test(gw.log()) ? true : undefined));
    } finally {
      back.close();
    }
  });
});
