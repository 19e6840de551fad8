/**
 * Our etcdctl against Debian's real etcdctl (ETCDCTL_API=2), each driving its own fresh real etcd through the same
 * sequence of commands: stdout, stderr and exit codes must be the same.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IO, run } from '../../server/etcdctl/main';
import { RunningEtcd, startRealEtcd } from '../support/real-etcd';

const REAL_ETCDCTL = '/usr/bin/etcdctl';

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

function normalize(o: Outcome, e: RunningEtcd & { memberId: string }): Outcome {
  // The two servers listen on different ports (so their member IDs differ too), and expiration times differ by
  // a few milliseconds.
  const n = (s: string) =>
    s.split(e.clientURL).join('<URL>').split(e.peerURL).join('<PEER>').split(e.memberId).join('<ID>').replace(/"expiration":"[^"]+"/g, '"expiration":"<T>"');
  return { stdout: n(o.stdout), stderr: n(o.stderr), code: o.code };
}

async function memberIdOf(e: RunningEtcd): Promise<string> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  return ((await res.json()) as { members: { id: string }[] }).members[0].id;
}

/** A listing without --sort comes in the server's (Go map) order: compare it as a set of lines. */
function unordered(o: Outcome): Outcome {
  return { ...o, stdout: o.stdout.split('\n').sort().join('\n') };
}

function realEtcdctl(args: string[], endpoint: string, stdin = ''): Outcome {
  const r = spawnSync(REAL_ETCDCTL, args, { env: { ...process.env, ETCDCTL_API: '2', ETCDCTL_ENDPOINTS: endpoint }, input: stdin, encoding: 'utf8', timeout: 20000 });
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

async function ourEtcdctl(args: string[], endpoint: string, stdin = ''): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const io: IO = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), readStdin: () => stdin };
  const code = await run(args, { ETCDCTL_API: '2', ETCDCTL_ENDPOINTS: endpoint }, io);
  return { stdout, stderr, code };
}

describe('etcdctl (v2) is output-compatible with etcd 3.4 etcdctl', () => {
  let dir: string;
  let forReal: RunningEtcd & { memberId: string };
  let forOurs: RunningEtcd & { memberId: string };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-compat-'));
    const [a, b] = await Promise.all([startRealEtcd(path.join(dir, 'a')), startRealEtcd(path.join(dir, 'b'))]);
    forReal = { ...a, memberId: await memberIdOf(a) };
    forOurs = { ...b, memberId: await memberIdOf(b) };
  });
  afterAll(async () => {
    await Promise.all([forReal?.stop(), forOurs?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const steps: (string[] | { args: string[]; stdin: string })[] = [
    ['set', '/message', 'Hello'],
    ['get', '/message'],
    ['-o', 'json', 'get', '/message'],
    ['-o', 'extended', 'get', '/message'],
    ['mk', '/message', 'again'],
    ['mk', '/new', 'v'],
    ['mkdir', '/dir'],
    ['mkdir', '/dir'],
    ['setdir', '/dir2'],
    ['set', '/dir/a', '1'],
    ['set', '/dir/_hidden', 'h'],
    ['get', '/dir'],
    ['ls'],
    ['ls', '--recursive', '-p'],
    ['ls', '--sort', '/'],
    // The root node, whose key and indexes the server leaves out: printed as the Go client's zero values.
    ['-o', 'extended', 'ls', '--recursive', '--sort', '/'],
    ['-o', 'json', 'ls', '--sort', '/'],
    ['get', '/'],
    ['-o', 'extended', 'get', '/'],
    // An unsupported -o: reported per response on stderr, and the command still succeeds.
    ['-o', 'bogus', 'get', '/dir/a'],
    ['-o', 'bogus', 'set', '/bogus-output', 'v'],
    ['-o', 'bogus', 'ls', '/dir'],
    ['-o', 'bogus', 'get', '/nokey'],
    ['-o', 'json', 'ls', '/dir'],
    ['-o', 'extended', 'ls', '/dir'],
    ['update', '/message', 'World'],
    ['update', '/nokey', 'v'],
    ['get', '/nokey'],
    ['-o', 'json', 'get', '/nokey'],
    ['set', '--ttl', '100', '/t', 'v'],
    ['-o', 'json', 'set', '/dir/a', '2'],
    ['-o', 'extended', 'set', '/dir/a', '3'],
    ['set', '--swap-with-value', 'Bad', '/message', 'X'],
    ['set', '--swap-with-value', 'World', '/message', 'Swapped'],
    ['set', '--swap-with-index', '1', '/message', 'X'],
    ['set', '/flags-after', 'v', '--ttl', '50'],
    ['mk', '--in-order', '/queue', 'job1'],
    ['ls', '/queue'],
    ['rm', '/dir'],
    ['rm', '--dir', '/dir'],
    ['rm', '--recursive', '/dir'],
    ['rmdir', '/dir2'],
    ['rm', '/message'],
    ['-o', 'json', 'rm', '/new'],
    ['updatedir', '/dir2'],
    ['rm', '--with-value', 'nope', '/t'],
    ['get'],
    ['set', '/onlykey'],
    { args: ['set', '/fromstdin'], stdin: 'piped' },
    ['get', '/fromstdin'],
    ['ls', '/nodir'],
    ['member', 'list'],
    ['member', 'remove'],
    ['member', 'remove', 'ffffffffffffffff'],
    ['member', 'add', 'only-name'],
    ['cluster-health'],
    ['watch'],
    ['--no-sync', '--endpoints', 'http://127.0.0.1:1', 'get', '/x'],
    ['--endpoints', 'http://127.0.0.1:1', 'get', '/x'],
    ['set', '--bogus', '/k', 'v'],
    // Usage errors and help: the message, then the command's own help (not the global one).
    ['set', '--ttl', 'abc', '/x', 'y'],
    ['watch', '--after-index', 'x', '/w'],
    ['rm', '-r', '--recursive', '/x'],
    ['get', '--help'],
    ['rmdir', '-h'],
    ['help', 'set'],
    ['help', 'exec-watch'],
    ['help', 'member'],
    ['help', 'bogus'],
    ['member'],
    ['member', '--help'],
    ['member', '--bogus'],
    ['member', 'bogus'],
    ['member', 'list', '--bogus'],
    ['member', 'help', 'add'],
    ['member', 'update', '--help'],
    // Flags after arguments are moved before them, each with the argument that follows it (urfave/cli 1.22).
    ['get', '/dir/a', '--sort', '/fromstdin'],
    // exec-watch: "--" is consumed by the flag parser, so "/k --" is one argument short.
    ['exec-watch', '/k', '--'],
    ['exec-watch', '/k'],
    // Peer URLs are checked by the client before anything is sent.
    ['member', 'add', 'n1', 'http://x'],
    ['member', 'add', 'n1', '127.0.0.1:2380'],
    ['member', 'add', 'n1', 'ftp://127.0.0.1:2380'],
    ['member', 'update', 'ffffffffffffffff', 'http://127.0.0.1:2380/path'],
    ['member', 'update', 'ffffffffffffffff', 'http://127.0.0.1:2380'],
  ];

  test('the same command sequence gives the same output and exit codes', async () => {
    const diffs: string[] = [];
    for (const step of steps) {
      const args = Array.isArray(step) ? step : step.args;
      const stdin = Array.isArray(step) ? '' : step.stdin;
      // Whole outputs, usage errors included (the command's help after the message).
      let real = normalize(realEtcdctl(args, forReal.clientURL, stdin), forReal);
      let ours = normalize(await ourEtcdctl(args, forOurs.clientURL, stdin), forOurs);
      if (args[0] === 'ls' && !args.includes('--sort')) {
        real = unordered(real);
        ours = unordered(ours);
      }
      if (JSON.stringify(real) !== JSON.stringify(ours)) {
        diffs.push(`etcdctl ${args.join(' ')}\n  real: ${JSON.stringify(real)}\n  ours: ${JSON.stringify(ours)}`);
      }
    }
    expect(diffs).toEqual([]);
  });

  test('watch and watch --recursive print the same event', async () => {
    const cases = [['watch', '/w'], ['-o', 'extended', 'watch', '--recursive', '/wr']];
    for (const args of cases) {
      const key = args[args.length - 1] === '/w' ? '/w' : '/wr/k';
      const realProc = spawn(REAL_ETCDCTL, args, { env: { ...process.env, ETCDCTL_API: '2', ETCDCTL_ENDPOINTS: forReal.clientURL } });
      let realOut = '';
      realProc.stdout.on('data', (d) => (realOut += d));
      const realDone = new Promise<number>((r) => realProc.on('exit', (c) => r(c ?? -1)));
      const oursDone = ourEtcdctl(args, forOurs.clientURL);
      // The watchers are waiting once the servers report them.
      for (const ep of [forReal.clientURL, forOurs.clientURL]) await waitForWatchers(ep, 1);
      expect(realEtcdctl(['set', key, 'val'], forReal.clientURL).code).toBe(0);
      expect((await ourEtcdctl(['set', key, 'val'], forOurs.clientURL)).code).toBe(0);
      const [realCode, ours] = await Promise.all([realDone, oursDone]);
      expect(ours.code).toBe(realCode);
      expect(ours.stdout).toBe(realOut);
    }
  });
});

/** Waits until the server's store counts n watchers (from /v2/stats/store), polling. */
async function waitForWatchers(endpoint: string, n: number): Promise<void> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const res = await fetch(`${endpoint}/v2/stats/store`);
    const stats = (await res.json()) as { watchers: number };
    if (stats.watchers >= n) return;
    if (Date.now() > deadline) throw new Error(`no watcher registered on ${endpoint}`);
    await new Promise<void>((r) => setTimeout(r, 20)); // poll the server's watcher count
  }
}

describe('the etcdctl binary', () => {
  const bin = path.join(__dirname, '../../dist/server/etcdctl/main.js');
  let dir: string;
  let etcd: RunningEtcd;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-bin-'));
    etcd = await startRealEtcd(path.join(dir, 'd'));
  });
  afterAll(async () => {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('built by npm run build, it sets and gets a key as `etcdctl set /message Hello` does', () => {
    const runBin = (...args: string[]) => spawnSync(process.execPath, [bin, '--endpoints', etcd.clientURL, ...args], { env: { ...process.env, ETCDCTL_API: '2' }, encoding: 'utf8', timeout: 20000 });
    const set = runBin('set', '/message', 'Hello');
    expect(set.stderr).toBe('');
    expect(set.stdout).toBe('Hello\n');
    expect(set.status).toBe(0);
    expect(runBin('get', '/message').stdout).toBe('Hello\n');
    const missing = runBin('get', '/missing');
    expect(missing.status).toBe(4);
    expect(missing.stderr).toMatch(/^Error: {2}100: Key not found \(\/missing\) \[\d+\]\n$/);
  });
});
