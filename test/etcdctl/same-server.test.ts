/**
 * Our etcdctl and Debian's real etcdctl (ETCDCTL_API=2) side by side against the SAME server of ours, so that their
 * outputs can be compared byte for byte: member add / update / remove and a refused member add, exec-watch (its
 * --after-index and the ETCD_WATCH_* environment of the command), and watch --forever.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestCluster } from '../support/cluster';
import { RunningEtcd, freePort, startOurEtcd } from '../support/real-etcd';

const REAL_ETCDCTL = '/usr/bin/etcdctl';
const OUR_ETCDCTL = path.join(__dirname, '../../dist/server/etcdctl/main.js');
const TOOLS = { real: [REAL_ETCDCTL], ours: [process.execPath, OUR_ETCDCTL] } as const;
type Tool = keyof typeof TOOLS;

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

function env(endpoint: string): NodeJS.ProcessEnv {
  return { ...process.env, ETCDCTL_API: '2', ETCDCTL_ENDPOINTS: endpoint };
}

/**
 * Runs an etcdctl to its end (bounded). Asynchronously: the peer proxies of a TestCluster run in this process and
 * must keep forwarding meanwhile.
 */
function etcdctl(tool: Tool, args: string[], endpoint: string): Promise<Outcome> {
  const [cmd, ...pre] = TOOLS[tool];
  return new Promise((resolve) => {
    execFile(cmd, [...pre, ...args], { env: env(endpoint), encoding: 'utf8', timeout: 20000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ stdout, stderr, code });
    });
  });
}

/** Both etcdctls, one after the other, against the same endpoint. */
async function both(args: string[], endpoint: string): Promise<{ real: Outcome; ours: Outcome }> {
  const real = await etcdctl('real', args, endpoint);
  return { real, ours: await etcdctl('ours', args, endpoint) };
}

const children = new Set<ChildProcess>();

/** An etcdctl that runs until it exits by itself or is killed (watch, exec-watch). */
function startEtcdctl(tool: Tool, args: string[], endpoint: string): { out: () => string; err: () => string; done: Promise<Outcome>; proc: ChildProcess } {
  const [cmd, ...pre] = TOOLS[tool];
  const p = spawn(cmd, [...pre, ...args], { env: env(endpoint), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Outcome>((resolve) =>
    p.once('close', (code) => {
      children.delete(p);
      resolve({ stdout, stderr, code: code ?? -1 });
    }),
  );
  return { out: () => stdout, err: () => stderr, done, proc: p };
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 20)); // poll the condition
  }
}

/** `p`, or a failure after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function watchers(endpoint: string): Promise<number> {
  const res = await fetch(`${endpoint}/v2/stats/store`);
  return ((await res.json()) as { watchers: number }).watchers;
}

/**
 * Waits until the watches of commands killed by an earlier test are gone (the server drops a watch when it sees
 * the connection close, a moment after the kill), so that a count taken now is not lowered later.
 */
async function noWatchersLeft(endpoint: string): Promise<number> {
  await waitFor('the watches of earlier commands to be dropped', async () => (await watchers(endpoint)) === 0);
  return 0;
}

/** Sets a key through the HTTP API; resolves to the new modifiedIndex. */
async function setKey(endpoint: string, key: string, value: string): Promise<number> {
  const res = await fetch(`${endpoint}/v2/keys${key}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: `value=${encodeURIComponent(value)}`,
  });
  expect(res.status).toBeLessThan(300);
  return ((await res.json()) as { node: { modifiedIndex: number } }).node.modifiedIndex;
}

interface Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

async function members(endpoint: string): Promise<Member[]> {
  const res = await fetch(`${endpoint}/v2/members`);
  return ((await res.json()) as { members: Member[] }).members;
}

let dir: string;
let server: RunningEtcd;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-same-server-'));
  server = await startOurEtcd(path.join(dir, 'ours'));
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('exec-watch --after-index I runs the command for the events after I, with the ETCD_WATCH_* environment real etcdctl sets', async () => {
  const ep = server.clientURL;
  const i1 = await setKey(ep, '/ew', 'v1');
  const i2 = await setKey(ep, '/ew', 'v2');
  const i3 = await setKey(ep, '/ew', 'v3');
  // One echo per event (one write, so lines of concurrent commands cannot interleave): every ETCD_WATCH_* variable.
  const script = 'echo "$(env | grep ^ETCD_WATCH_ | sort | tr "\\n" " ")"';
  const runs = (['real', 'ours'] as const).map((t) => startEtcdctl(t, ['exec-watch', '--after-index', String(i1), 'sh', '-c', script, '/ew'], ep));
  const lines = (o: string) => o.split('\n').filter((l) => l !== '').sort();
  await waitFor('both to run the command for the two events in history', () => runs.every((r) => lines(r.out()).length >= 2));
  // And for a new event, once both watch again.
  const i4 = await setKey(ep, '/ew', 'v4');
  await waitFor('both to run the command for the new event', () => runs.every((r) => r.out().includes(`MODIFIED_INDEX=${i4} `)));
  for (const r of runs) r.proc.kill('SIGKILL');
  const [real, ours] = await Promise.all(runs.map((r) => r.done));
  const expected = [
    [i2, 'v2'],
    [i3, 'v3'],
    [i4, 'v4'],
  ].map(([i, v]) => `ETCD_WATCH_ACTION=set ETCD_WATCH_KEY=/ew ETCD_WATCH_MODIFIED_INDEX=${i} ETCD_WATCH_VALUE=${v} `);
  expect(lines(real.stdout)).toEqual(expected.sort());
  expect(lines(ours.stdout)).toEqual(lines(real.stdout));
  expect(ours.stderr).toBe(real.stderr);
});

test('exec-watch KEY -- CMD ARG takes its key from the last argument, as Debian\'s etcdctl parses it', async () => {
  const ep = server.clientURL;
  // urfave/cli 1.22 consumes the "--": the key is the last argument, "/ewkey", and the command "/not-a-command /ew".
  const before = await noWatchersLeft(ep);
  const runs = (['real', 'ours'] as const).map((t) => startEtcdctl(t, ['exec-watch', '/not-a-command', '--', '/ew', '/ewkey'], ep));
  await waitFor('both watches to be registered', async () => (await watchers(ep)) >= before + 2);
  await setKey(ep, '/ewkey', 'x');
  const [real, ours] = await Promise.all(runs.map((r) => within(r.done, 15000, 'exec-watch to exit')));
  expect(real).toEqual({ stdout: '', stderr: 'fork/exec /not-a-command: no such file or directory', code: 1 });
  expect(ours).toEqual(real);
});

test('watch --forever prints two successive changes, as the real etcdctl does', async () => {
  const ep = server.clientURL;
  const before = await noWatchersLeft(ep);
  const runs = (['real', 'ours'] as const).map((t) => startEtcdctl(t, ['watch', '--forever', '/wf'], ep));
  await waitFor('both watches to be registered', async () => (await watchers(ep)) >= before + 2);
  await setKey(ep, '/wf', 'first');
  await waitFor('both to print the first change', () => runs.every((r) => r.out() === 'first\n'));
  await setKey(ep, '/wf', 'second');
  await waitFor('both to print the second change', () => runs.every((r) => r.out() === 'first\nsecond\n'));
  for (const r of runs) r.proc.kill('SIGKILL');
  const [real, ours] = await Promise.all(runs.map((r) => r.done));
  expect(ours.stdout).toBe('first\nsecond\n');
  expect(ours.stdout).toBe(real.stdout);
  expect(ours.stderr).toBe(real.stderr);
});

test('the root node and an unsupported -o print as with the real etcdctl against our server', async () => {
  const ep = server.clientURL;
  await setKey(ep, '/root-check', 'v');
  for (const args of [['-o', 'extended', 'ls', '--recursive', '--sort', '/'], ['-o', 'json', 'ls', '--sort', '/'], ['get', '/'], ['-o', 'bogus', 'get', '/root-check']]) {
    const { real, ours } = await both(args, ep);
    expect({ args, ...ours }).toEqual({ args, ...real });
  }
  expect(await etcdctl('ours', ['get', '/'], ep)).toEqual({ stdout: '', stderr: ': is a directory\n', code: 1 });
});

test('member update changes the peer URL member list shows; bad peer URLs are refused with the client\'s own text', async () => {
  const ep = server.clientURL;
  const [self] = await members(ep);
  const [p1, p2] = [await freePort(), await freePort()];
  const ours = await etcdctl('ours', ['member', 'update', self.id, `http://127.0.0.1:${p1}`], ep);
  expect(ours).toEqual({ stdout: `Updated member with ID ${self.id} in cluster\n`, stderr: '', code: 0 });
  expect((await members(ep))[0].peerURLs).toEqual([`http://127.0.0.1:${p1}`]);
  const list = await both(['member', 'list'], ep);
  expect(list.ours).toEqual({ stdout: `${self.id}: name=default peerURLs=http://127.0.0.1:${p1} clientURLs=${ep} isLeader=true\n`, stderr: '', code: 0 });
  expect(list.ours).toEqual(list.real);
  // The real etcdctl's update prints the same.
  expect(await etcdctl('real', ['member', 'update', self.id, `http://127.0.0.1:${p2}`], ep)).toEqual({ stdout: `Updated member with ID ${self.id} in cluster\n`, stderr: '', code: 0 });
  expect((await etcdctl('ours', ['member', 'list'], ep)).stdout).toContain(` peerURLs=http://127.0.0.1:${p2} `);
  for (const args of [
    ['member', 'add', 'n1', 'http://x'],
    ['member', 'update', self.id, 'http://x'],
    ['member', 'update', self.id, 'http://127.0.0.1:1/p'],
    ['member', 'update', 'ffffffffffffffff', 'http://127.0.0.1:1'],
  ]) {
    const r = await both(args, ep);
    expect({ args, ...r.ours }).toEqual({ args, ...r.real });
  }
  expect(await etcdctl('ours', ['member', 'add', 'n1', 'http://x'], ep)).toEqual({ stdout: '', stderr: 'URL address does not have the form "host:port": http://x\n', code: 1 });
});

// Last on this server: a second member that never starts costs the one-member cluster its quorum.
test('member add prints the new member\'s ETCD_* settings; once quorum is lost, a refused add prints the Go client\'s cluster error', async () => {
  const ep = server.clientURL;
  const newPeer = `http://127.0.0.1:${await freePort()}`;
  const added = await etcdctl('ours', ['member', 'add', 'n1', newPeer], ep);
  const after = await members(ep);
  const created = after.find((m) => m.peerURLs.includes(newPeer));
  expect(created).toBeDefined();
  expect(after).toHaveLength(2);
  const conf = after.flatMap((m) => m.peerURLs.map((u) => `${m.id === created!.id ? 'n1' : m.name}=${u}`)).join(',');
  expect(added).toEqual({
    stdout: `Added member named n1 with ID ${created!.id} to cluster\n\nETCD_NAME="n1"\nETCD_INITIAL_CLUSTER="${conf}"\nETCD_INITIAL_CLUSTER_STATE="existing"\n`,
    stderr: '',
    code: 0,
  });
  expect(conf).toContain(`n1=${newPeer}`);
  expect(conf).toContain('default=http://127.0.0.1:');
  // The server answers the next add with HTTP 500; the Go client makes that a ClusterError.
  const refused = await both(['member', 'add', 'n2', `http://127.0.0.1:${await freePort()}`], ep);
  expect(refused.real).toEqual({ stdout: '', stderr: `client: etcd cluster is unavailable or misconfigured; error #0: client: etcd member ${ep} has no leader\n\n`, code: 1 });
  expect(refused.ours).toEqual(refused.real);
});

test('member remove removes a member (our etcdctl and the real one, each removing a follower of a 3-member cluster)', async () => {
  // Without the strict reconfiguration check, which (as etcd's) refuses a removal until peers have been connected
  // for 5 s: the subject here is etcdctl, not that check.
  const cluster = await TestCluster.start(3, { args: ['--strict-reconfig-check=false'] });
  try {
    const outcomes: Record<Tool, { id: string; out: Outcome }> = {} as never;
    for (const tool of ['real', 'ours'] as const) {
      const leader = await cluster.waitForLeader();
      const victim = cluster.running().find((m) => m !== leader)!;
      const out = await etcdctl(tool, ['member', 'remove', victim.id!], leader.clientURL);
      outcomes[tool] = { id: victim.id!, out };
      expect({ tool, ...out }).toEqual({ tool, stdout: `Removed member ${victim.id} from cluster\n`, stderr: '', code: 0 });
      await cluster.kill(victim);
      await waitFor(`${victim.name} to be gone from member list`, async () => !(await members(leader.clientURL)).some((m) => m.id === victim.id));
    }
    for (const tool of ['real', 'ours'] as const) {
      expect(outcomes[tool].out).toEqual({ stdout: `Removed member ${outcomes[tool].id} from cluster\n`, stderr: '', code: 0 });
    }
    const leader = await cluster.waitForLeader();
    const left = await members(leader.clientURL);
    expect(left.map((m) => m.id)).toEqual([leader.id]);
    const list = await both(['member', 'list'], leader.clientURL);
    expect(list.ours).toEqual(list.real);
    expect(list.ours.stdout.split('\n').filter((l) => l !== '')).toHaveLength(1);
  } finally {
    await cluster.stop();
  }
});
