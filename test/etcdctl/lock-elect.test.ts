/**
 * `etcdctl lock` and `elect` side by side, with real contenders: the same scenario run by Debian's etcdctl against
 * Debian's etcd (the reference), by our etcdctl against Debian's etcd, by Debian's etcdctl against ours and by ours
 * against ours, each on a fresh member; every process's stdout, stderr and exit code must be the same once the
 * servers' IDs and the leases they chose (named by order of appearance) are put aside. The scenario: a holder and a
 * waiter (the waiter answered only once the holder, interrupted, unlocked), a command run under the lock with its
 * ETCD_LOCK_* variables, -w json, a waiter that gives up ("context canceled"), an election with an observer that
 * sees every leader and value in order. Then with Debian's etcdctl against ours: a holder killed with -9 keeps the
 * lock until its session's lease expires; and Python's etcd3 `lock()` with two contenders.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KVClient, LeaseClient, RangeRequest, type RangeResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { eventually } from '../support/cluster';
import { startOurEtcd, startRealEtcd, type RunningEtcd } from '../support/real-etcd';

jest.setTimeout(300_000);

const REAL_ETCDCTL = '/usr/bin/etcdctl';
const OUR_ETCDCTL = path.join(__dirname, '..', '..', 'dist', 'server', 'etcdctl', 'main.js');

type Ctl = 'debian' | 'ours';

/** A running etcdctl (or any command): its output so far, its exit. */
interface Proc {
  name: string;
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | string>;
}

function start(name: string, cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('latin1')));
  const exited = new Promise<number | string>((resolve) => child.on('close', (code, sig) => resolve(code ?? String(sig))));
  return { name, child, out: () => out, err: () => err, exited };
}

function etcdctl(ctl: Ctl, endpoint: string, name: string, args: string[]): Proc {
  const full = [`--endpoints=${endpoint}`, ...args];
  return ctl === 'debian' ? start(name, REAL_ETCDCTL, full) : start(name, process.execPath, [OUR_ETCDCTL, ...full]);
}

/** Waits until the process has written `n` lines to stdout. */
const lines = (p: Proc, n: number) => eventually(`${p.name} to print ${n} lines`, async () => (p.out().split('\n').length > n ? true : undefined), 30_000);

/** The server's KV, for the number of contenders' keys under a prefix. */
function kvOf(e: RunningEtcd): { count(prefix: string): Promise<bigint>; range(prefix: string): Promise<RangeResponse>; close(): void; lease: LeaseClient } {
  const target = e.clientURL.replace('http://', '');
  const kv = new KVClient(target, grpc.credentials.createInsecure());
  const lease = new LeaseClient(target, grpc.credentials.createInsecure(), { channelOverride: kv.getChannel() as grpc.Channel });
  const range = (prefix: string) => new Promise<RangeResponse>((resolve, reject) => {
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    kv.range(RangeRequest.fromPartial({ key: Buffer.from(prefix), rangeEnd: end }), (err, r) => (err ? reject(err) : resolve(r!)));
  });
  return { range, count: async (prefix) => (await range(prefix)).count, close: () => kv.close(), lease };
}

const waitKeys = (kv: ReturnType<typeof kvOf>, prefix: string, n: bigint) =>
  eventually(`${n} keys under ${prefix}`, async () => ((await kv.count(prefix)) === n ? true : undefined), 30_000);

/** One process's outcome, normalized: the servers' IDs and the leases (by order of first appearance) named. */
class Transcript {
  readonly entries: string[] = [];
  private readonly leases: string[] = [];

  constructor(private readonly ids: string[]) {}

  private lease(hex: string): string {
    if (!this.leases.includes(hex)) this.leases.push(hex);
    return `<LEASE${this.leases.indexOf(hex) + 1}>`;
  }

  async add(p: Proc): Promise<void> {
    const code = await p.exited;
    const norm = (s: string): string => {
      let t = s;
      for (const [i, id] of this.ids.entries()) t = t.split(id).join(`<ID${i}>`);
      t = t.replace(/\/([0-9a-f]{10,16})\b/g, (_m, hex: string) => `/${this.lease(hex)}`);
      t = t.replace(/"(lease|Lease)" ?: ?(\d{10,})/g, (_m, f: string, dec: string) => `"${f}":${this.lease(BigInt(dec).toString(16))}`);
      // json shows keys in base64
      t = t.replace(/"key":"([A-Za-z0-9+/=]+)"/g, (_m, b64: string) => `"key":${JSON.stringify(norm(Buffer.from(b64, 'base64').toString('latin1')))}`);
      return t;
    };
    this.entries.push(`${p.name}: exit ${code}\nstdout:\n${norm(p.out())}stderr:\n${norm(p.err())}`);
  }
}

async function idsOf(e: RunningEtcd): Promise<string[]> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  const member = ((await res.json()) as { members: { id: string }[] }).members[0].id;
  return [BigInt(`0x${res.headers.get('x-etcd-cluster-id')!}`).toString(), BigInt(`0x${member}`).toString()];
}

/** The scenario, on a fresh member, with one etcdctl: every process's normalized outcome in order. */
async function scenario(server: 'debian' | 'ours', ctl: Ctl): Promise<string[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `lock-${server}-${ctl}-`));
  const e = await (server === 'debian' ? startRealEtcd : startOurEtcd)(dir);
  const kv = kvOf(e);
  const ep = e.clientURL.replace('http://', '');
  const run = (name: string, args: string[]) => etcdctl(ctl, ep, name, args);
  const t = new Transcript(await idsOf(e));
  const procs: Proc[] = [];
  const track = (p: Proc) => (procs.push(p), p);
  try {
    // a holder, a waiter: the waiter holds only once the holder, interrupted, has unlocked
    const holder = track(run('holder', ['lock', 'L']));
    await lines(holder, 2);
    const waiter = track(run('waiter', ['lock', 'L']));
    await waitKeys(kv, 'L/', 2n);
    expect(waiter.out()).toBe('');
    holder.child.kill('SIGINT');
    await t.add(holder);
    await lines(waiter, 2);
    // a command under the lock, after the waiter (terminated) lets go; its variables
    const cmd = track(run('command', ['lock', 'L', '--', 'sh', '-c', 'echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"; exit 3']));
    await waitKeys(kv, 'L/', 2n);
    expect(cmd.out()).toBe('');
    waiter.child.kill('SIGTERM');
    await t.add(waiter);
    await t.add(cmd);
    await t.add(track(run('missing command', ['lock', 'L', 'no-such-command-here'])));
    // -w json and -w fields of the key held
    for (const w of ['json', 'fields']) {
      const j = track(run(`-w ${w}`, ['-w', w, 'lock', `J${w}`]));
      await lines(j, 1);
      j.child.kill('SIGINT');
      await t.add(j);
    }
    // a waiter that gives up on a signal: its key goes
    const q1 = track(run('q holder', ['lock', 'Q']));
    await lines(q1, 2);
    const q2 = track(run('q quitter', ['lock', 'Q']));
    await waitKeys(kv, 'Q/', 2n);
    q2.child.kill('SIGINT');
    await t.add(q2);
    await waitKeys(kv, 'Q/', 1n);
    q1.child.kill('SIGINT');
    await t.add(q1);
    // an election: an observer, a leader, a candidate that waits and leads once the leader resigns
    const observer = track(run('observer', ['elect', '-l', 'E']));
    const a = track(run('leader', ['elect', 'E', 'p1']));
    await lines(a, 2);
    await lines(observer, 2);
    const b = track(run('candidate', ['elect', 'E', 'p2']));
    await waitKeys(kv, 'E/', 2n);
    expect(b.out()).toBe('');
    a.child.kill('SIGINT');
    await t.add(a);
    await lines(b, 2);
    await lines(observer, 4);
    b.child.kill('SIGTERM');
    await t.add(b);
    await waitKeys(kv, 'E/', 0n);
    observer.child.kill('SIGINT');
    await t.add(observer);
    // a candidate that gives up while it waits, behind a leader; the json of an observer
    const c1 = track(run('c leader', ['elect', 'C', 'x']));
    await lines(c1, 2);
    const c2 = track(run('c quitter', ['elect', 'C', 'y']));
    await waitKeys(kv, 'C/', 2n);
    c2.child.kill('SIGINT');
    await t.add(c2);
    await waitKeys(kv, 'C/', 1n);
    const cj = track(run('c observer json', ['-w', 'json', 'elect', '-l', 'C']));
    await lines(cj, 1);
    cj.child.kill('SIGINT');
    await t.add(cj);
    c1.child.kill('SIGINT');
    await t.add(c1);
    return t.entries;
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
    kv.close();
    await e.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("lock and elect: Debian's etcdctl and ours, against Debian's etcd and ours, byte for byte", async () => {
  const reference = await scenario('debian', 'debian');
  // the reference says what the scenario is about
  expect(reference[0]).toMatch(/^holder: exit 0\nstdout:\nL\/<LEASE1>\n\nstderr:\n$/);
  expect(reference).toContain('command: exit 1\nstdout:\nkey=L/<LEASE3> rev=6\nstderr:\nError: exit status 3\n');
  expect(reference).toContain('q quitter: exit 1\nstdout:\nstderr:\nError: context canceled\n');
  expect(reference.find((e) => e.startsWith('observer:'))).toBe('observer: exit 0\nstdout:\nE/<LEASE7>\np1\nE/<LEASE8>\np2\nstderr:\n');
  for (const [server, ctl] of [['debian', 'ours'], ['ours', 'debian'], ['ours', 'ours']] as const) {
    expect({ server, ctl, transcript: await scenario(server, ctl) }).toEqual({ server, ctl, transcript: reference });
  }
});

describe("with Debian's etcdctl and Python's etcd3 against our member", () => {
  let e: RunningEtcd;
  let dir: string;
  let kv: ReturnType<typeof kvOf>;
  const procs: Proc[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lock-ours-'));
    e = await startOurEtcd(dir);
    kv = kvOf(e);
  });

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    kv.close();
    await e.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a holder killed with -9 keeps the lock until its lease expires; then the waiter holds it', async () => {
    const ep = e.clientURL.replace('http://', '');
    const holder = etcdctl('debian', ep, 'holder', ['lock', '--ttl', '3', 'K']);
    procs.push(holder);
    await lines(holder, 2);
    const waiter = etcdctl('debian', ep, 'waiter', ['lock', 'K']);
    procs.push(waiter);
    await waitKeys(kv, 'K/', 2n);
    const held = (await kv.range('K/')).kvs.find((k) => holder.out().startsWith(k.key.toString()))!;
    expect(held).toBeDefined();
    holder.child.kill('SIGKILL');
    await holder.exited;
    const killedAt = Date.now();
    // while the holder's lease lives, its key stays and the waiter waits
    const ttl = await new Promise<bigint>((resolve, reject) => kv.lease.leaseTimeToLive({ ID: held.lease, keys: false }, (err, r) => (err ? reject(err) : resolve(r!.TTL))));
    expect(ttl).toBeGreaterThan(0n);
    expect(waiter.out()).toBe('');
    await lines(waiter, 2);
    // the waiter got it once the lease expired (3 s, less what it had run since its last renewal) and the key went
    expect(Date.now() - killedAt).toBeGreaterThan(1000);
    const now = await kv.range('K/');
    expect(now.kvs.map((k) => k.key.toString())).toEqual([waiter.out().split('\n')[0]]);
    waiter.child.kill('SIGINT');
    expect(await waiter.exited).toBe(0);
    await waitKeys(kv, 'K/', 0n);
  });

  test('elect -l observes the leaders in order as each one resigns and the next is elected', async () => {
    const ep = e.clientURL.replace('http://', '');
    const observer = etcdctl('debian', ep, 'observer', ['elect', '-l', 'V']);
    procs.push(observer);
    const leaders: Proc[] = [];
    for (const v of ['a', 'b', 'c']) {
      const p = etcdctl('debian', ep, `leader ${v}`, ['elect', 'V', v]);
      procs.push(p);
      leaders.push(p);
      await waitKeys(kv, 'V/', BigInt(leaders.length));
    }
    await lines(leaders[0], 2);
    leaders[0].child.kill('SIGINT');
    await lines(leaders[1], 2);
    leaders[1].child.kill('SIGTERM');
    await lines(leaders[2], 2);
    await lines(observer, 6);
    const seen = observer.out().split('\n');
    expect([seen[1], seen[3], seen[5]]).toEqual(['a', 'b', 'c']);
    expect([seen[0], seen[2], seen[4]]).toEqual(leaders.map((p) => p.out().split('\n')[0]));
    leaders[2].child.kill('SIGINT');
    observer.child.kill('SIGINT');
    expect(await Promise.all([leaders[0].exited, leaders[1].exited, leaders[2].exited, observer.exited])).toEqual([0, 0, 0, 0]);
  });

  test("Python's etcd3 lock(): the second contender acquires once the first releases, or once its lease expires", () => {
    const port = new URL(e.clientURL).port;
    // (Debian's python3-etcd3 with its tenacity cannot wait in acquire(): acquire(timeout=0) is tried, and the
    // waiting is its own, on a watch of the lock key, as acquire's would be)
    const script = `
import etcd3, threading, time
c = etcd3.client(host='127.0.0.1', port=${port})
first = c.lock('py', ttl=60)
print('first', first.acquire(timeout=0), first.is_acquired())
second = c.lock('py', ttl=60)
print('second at once', second.acquire(timeout=0))
events = []
ready = threading.Event()
def wait():
    it, cancel = c.watch('/locks/py')
    ready.set()
    events.append(type(next(it)).__name__)
    cancel()
t = threading.Thread(target=wait)
t.start()
ready.wait()
print('first released', first.release())
t.join()
print('second saw', events, 'and acquires', second.acquire(timeout=0), second.is_acquired(), first.is_acquired())
print('released', second.release())
# a holder whose lease expires (never refreshed): the next one gets the lock once it has
third = c.lock('py2', ttl=2)
print('third', third.acquire(timeout=0))
fourth = c.lock('py2', ttl=60)
t0 = time.time()
while not fourth.acquire(timeout=0):
    assert time.time() - t0 < 30
    c.watch_once('/locks/py2', timeout=5)
print('fourth after the lease', time.time() - t0 > 0.5, third.is_acquired())
fourth.release()
`;
    const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 90_000 });
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout.split('\n')).toEqual([
      'first True True', 'second at once False', 'first released True', "second saw ['DeleteEvent'] and acquires True True False",
      'released True', 'third True', 'fourth after the lease True False', '',
    ]);
  });
});
