/**
 * Debian's etcdctl (ETCDCTL_API=2) against OUR server and against the REAL etcd: the same command sequence must
 * print the same stdout and stderr and exit with the same codes (member IDs, URLs and ports normalised).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const REAL_ETCDCTL = '/usr/bin/etcdctl';

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

/** memberId: for normalising; base: the store's index before the first command (the real etcd's v2 store already
 * holds its membership, so its indexes are higher by a constant), index values are compared relative to it. */
type Server = RunningEtcd & { memberId: string; base: number };

const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '2' };
delete env.ETCDCTL_ENDPOINTS;

function etcdctl(args: string[], s: Server): Outcome {
  const r = spawnSync(REAL_ETCDCTL, ['--endpoints', s.clientURL, ...args], { env, encoding: 'utf8', timeout: 20000 });
  return normalize({ stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 }, s);
}

function normalize(o: Outcome, s: Server): Outcome {
  const rel = (v: string) => `${Number(v) - s.base}`;
  const n = (t: string) =>
    t
      .split(s.clientURL).join('<URL>').split(s.peerURL).join('<PEER>').split(s.memberId).join('<ID>')
      .replace(/"expiration":"[^"]+"/g, '"expiration":"<T>"')
      .replace(/("(?:createdIndex|modifiedIndex|index)":)(\d+)/g, (_m, k: string, v: string) => k + rel(v))
      .replace(/^((?:Created-|Modified-)?Index: )(\d+)$/gm, (_m, k: string, v: string) => k + rel(v))
      .replace(/ \[(\d+)\]$/gm, (_m, v: string) => ` [${rel(v)}]`);
  return { stdout: n(o.stdout), stderr: n(o.stderr), code: o.code };
}

async function describe(e: RunningEtcd): Promise<Server> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  const memberId = ((await res.json()) as { members: { id: string }[] }).members[0].id;
  const keys = await fetch(`${e.clientURL}/v2/keys/`);
  return { ...e, memberId, base: Number(keys.headers.get('x-etcd-index')) };
}

async function watchers(s: Server): Promise<number> {
  const res = await fetch(`${s.clientURL}/v2/stats/store`);
  return ((await res.json()) as { watchers: number }).watchers;
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 20));
  }
}

const children = new Set<ChildProcess>();

/** Starts an etcdctl that runs until it exits by itself or is killed (watch). */
function startEtcdctl(args: string[], s: Server): { out: () => string; done: Promise<Outcome>; proc: ChildProcess } {
  const p = spawn(REAL_ETCDCTL, ['--endpoints', s.clientURL, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Outcome>((resolve) =>
    p.once('close', (code, sig) => {
      children.delete(p);
      resolve(normalize({ stdout, stderr, code: code ?? (sig === 'SIGTERM' ? -15 : -1) }, s));
    }),
  );
  return { out: () => stdout, done, proc: p };
}

let dir: string;
let real: Server;
let ours: Server;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'debian-etcdctl-'));
  const [r, o] = await Promise.all([startRealEtcd(path.join(dir, 'real')), startOurEtcd(path.join(dir, 'ours'))]);
  real = await describe(r);
  ours = await describe(o);
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all([real?.stop(), ours?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Without --sort, ls lists in the server's map order: compare the lines as a set. */
const unordered = (o: Outcome): Outcome => ({ ...o, stdout: o.stdout.split('\n').sort().join('\n') });

function compare(steps: string[][]): string[] {
  const diffs: string[] = [];
  for (const args of steps) {
    let r = etcdctl(args, real);
    let o = etcdctl(args, ours);
    if (args.includes('ls') && !args.includes('--sort')) {
      r = unordered(r);
      o = unordered(o);
    }
    if (JSON.stringify(r) !== JSON.stringify(o)) {
      diffs.push(`etcdctl ${args.join(' ')}\n  real: ${JSON.stringify(r)}\n  ours: ${JSON.stringify(o)}`);
    }
  }
  return diffs;
}

test('set/get/mk/mkdir/ls/rm/rmdir/update print the same and exit the same against our server as against etcd', () => {
  const steps = [
    ['set', '/a', '1'],
    ['get', '/a'],
    ['mk', '/a', '2'],
    ['mk', '/b', 'two'],
    ['mkdir', '/d'],
    ['mkdir', '/d'],
    ['mkdir', '/a'],
    ['set', '/d/x', 'ex'],
    ['set', '/d/sub/y', 'why'],
    ['set', '/d', 'not-a-file'],
    ['get', '/d'],
    ['ls'],
    ['ls', '/d'],
    ['ls', '--recursive'],
    ['ls', '--recursive', '-p', '/d'],
    ['ls', '--sort', '--recursive', '/'],
    ['ls', '/missing'],
    ['update', '/a', '3'],
    ['update', '/nope', '1'],
    ['update', '/d', 'x'],
    ['get', '/a'],
    ['-o', 'json', 'get', '/a'],
    ['-o', 'extended', 'get', '/b'],
    // One JSON line: the children come in the server's map order unless sorted.
    ['-o', 'json', 'ls', '--sort', '/d'],
    ['rm', '/a'],
    ['get', '/a'],
    ['rm', '/a'],
    ['rmdir', '/d'],
    ['rm', '/d'],
    ['rm', '/d/x'],
    ['rmdir', '/d/sub'],
    ['rm', '/d/sub/y'],
    ['rmdir', '/d/sub'],
    ['rmdir', '/d'],
    ['rmdir', '/b'],
    ['ls', '--recursive'],
    ['get'],
    ['rm'],
  ];
  expect(compare(steps)).toEqual([]);
});

test('member list and cluster-health print the same (IDs and URLs normalised)', () => {
  const diffs = compare([['member', 'list'], ['cluster-health'], ['-o', 'json', 'cluster-health']]);
  expect(diffs).toEqual([]);
  // Normalisation must not hide an empty answer.
  expect(etcdctl(['member', 'list'], ours).stdout).toBe('<ID>: name=default peerURLs=<PEER> clientURLs=<URL> isLeader=true\n');
});

test('watch returns the change made by a concurrent set, as with etcd', async () => {
  const results: Outcome[] = [];
  for (const s of [real, ours]) {
    const w = startEtcdctl(['watch', '/w'], s);
    await waitFor('the watch to be registered', async () => (await watchers(s)) >= 1);
    expect(etcdctl(['set', '/w', 'changed'], s).code).toBe(0);
    results.push(await w.done);
  }
  expect(results[1]).toEqual(results[0]);
  expect(results[0]).toEqual({ stdout: 'changed\n', stderr: '', code: 0 });
});

test('watch --forever --recursive sees every one of a bounded burst of concurrent sets, as with etcd', async () => {
  const N = 24;
  const seen: string[][] = [];
  for (const s of [real, ours]) {
    const w = startEtcdctl(['watch', '--forever', '--recursive', '/burst'], s);
    await waitFor('the watch to be registered', async () => (await watchers(s)) >= 1);
    const sets = Array.from({ length: N }, (_, i) => {
      const p = startEtcdctl(['set', `/burst/k${i}`, `v${i}`], s);
      return p.done;
    });
    for (const r of await Promise.all(sets)) expect(r).toMatchObject({ code: 0, stderr: '' });
    await waitFor(`${N} events from watch --forever`, () => w.out().split('\n').filter((l) => l.startsWith('[set]')).length >= N);
    w.proc.kill('SIGTERM');
    const out = (await w.done).stdout;
    // Each event prints "[set] /burst/kI" and then the value; the sets are concurrent, so compare as a set.
    const lines = out.split('\n').filter((l) => l !== '');
    const events: string[] = [];
    for (let i = 0; i + 1 < lines.length; i += 2) events.push(`${lines[i]} ${lines[i + 1]}`);
    seen.push(events.sort());
  }
  expect(seen[0]).toHaveLength(N);
  expect(seen[1]).toEqual(seen[0]);
});
