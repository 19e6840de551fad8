/**
 * Watch in a 3-member cluster: a watch on a follower sees every write made through the leader, in order, at the
 * leader's revisions; etcdctl's watch (Debian's and ours) and the npm etcd3 client, given two members, go on through
 * the other one when the member they watch on is killed, with no event lost or repeated; and a member that loses
 * its leader ends require-leader watches with etcd's error.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PutRequest, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { Etcd3, type IKeyValue } from 'etcd3';
import { TestCluster, type MemberSlot } from '../support/cluster';
import { request } from '../support/http';
import { connect, TestWatchStream, eventLine } from '../support/watch-client';

jest.setTimeout(240_000);

const b = (s: string) => Buffer.from(s);
const OUR_ETCDCTL = path.join(__dirname, '..', '..', 'dist', 'server', 'etcdctl', 'main.js');

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

test('a watch on a follower sees every write made through the leader, in order, at the same revisions', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const follower = c.members.find((m) => m !== leader)!;
  const onLeader = connect(leader.clientURL);
  const onFollower = connect(follower.clientURL);
  try {
    const w = new TestWatchStream(onFollower.watchClient);
    w.create({ key: b('c/'), rangeEnd: b('c0'), prevKv: true });
    await w.until((got) => got.length === 1, 'created');
    const revs: bigint[] = [];
    // 200 writes, 20 at a time, some to the same keys
    for (let i = 0; i < 200; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => onLeader.kv.put(PutRequest.fromPartial({ key: b(`c/${(i + j) % 37}`), value: b(`v${i + j}`) }))));
      revs.push(...batch.map((r) => r.header!.revision));
    }
    await w.until((got) => got.reduce((n, r) => n + r.events.length, 0) >= 200, 'every event');
    const events = w.got.flatMap((r) => r.events);
    expect(events.map((e) => e.kv!.modRevision)).toEqual([...revs].sort((x, y) => (x < y ? -1 : 1)));
    // each event is the value the leader wrote at that revision, with the previous one
    const byRev = new Map(events.map((e) => [e.kv!.modRevision, e]));
    const last = (await onLeader.kv.range(RangeRequest.fromPartial({ key: b('c/'), rangeEnd: b('c0') }))).kvs;
    for (const kv of last) expect(eventLine(byRev.get(kv.modRevision)!)).toContain(`PUT ${kv.key}=${kv.value} c${kv.createRevision} m${kv.modRevision} v${kv.version}`);
    expect(events.filter((e) => e.prevKv).length).toBe(200 - 37);
    w.close();
  } finally {
    onLeader.close();
    onFollower.close();
  }
});

/** etcdctl watch on two members; the one it watches on is killed while writes go on through a third. */
async function failover(ctl: string[]): Promise<void> {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const [first, second] = c.members.filter((m) => m !== leader);
  const writer = connect(leader.clientURL);
  try {
    const p = spawn(ctl[0], [...ctl.slice(1), `--endpoints=${first.clientURL},${second.clientURL}`, 'watch', '--prefix', 'f/'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const lines = () => out.split('\n').length - 1;
    const until = async (n: number) => {
      for (const deadline = Date.now() + 60000; lines() < n; ) {
        if (Date.now() > deadline || p.exitCode !== null) throw new Error(`watch output stopped at ${lines()} lines (want ${n}):\n${out}\nstderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 20)); // etcdctl prints as events come
      }
    };
    // the first write once the watch is there (its output says so), then 50, then the first member dies
    const put = (i: number) => writer.kv.put(PutRequest.fromPartial({ key: b(`f/${i}`), value: b(`v${i}`) }));
    let i = 0;
    for (const deadline = Date.now() + 30000; lines() === 0; ) {
      if (Date.now() > deadline) throw new Error(`no event: ${err}`);
      await put(i++);
      await new Promise((r) => setTimeout(r, 100)); // until etcdctl's watch is created
    }
    // writes made before the watch existed are not its events: it starts at the first one it printed
    const from = Number(out.split('\n')[1].slice(2));
    for (; i < 50; i++) await put(i);
    await until(3 * (50 - from));
    // the member its stream is on
    const streams = async (m: MemberSlot) => Number(/^etcd_debugging_mvcc_watch_stream_total (\S+)$/m.exec((await request(m.clientURL, 'GET', '/metrics')).body)?.[1]);
    const on = (await streams(first)) > 0 ? first : second;
    expect(await streams(on)).toBe(1);
    await c.kill(on);
    for (; i < 100; i++) await put(i);
    await until(3 * (100 - from));
    p.kill('SIGTERM');
    // every event from there, once, in order
    const keys = out.split('\n').filter((_, j) => j % 3 === 1);
    expect(keys).toEqual(Array.from({ length: 100 - from }, (_, k) => `f/${from + k}`));
  } finally {
    writer.close();
  }
}

test("Debian's etcdctl watch goes on through another member when its member is killed, nothing lost or repeated", async () => {
  await failover(['/usr/bin/etcdctl']);
});

test('our etcdctl watch goes on through another member when its member is killed, nothing lost or repeated', async () => {
  await failover([process.execPath, OUR_ETCDCTL]);
});

test('the npm etcd3 client, given two members, watches on through the other one when its member is killed, nothing lost or repeated', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const [first, second] = c.members.filter((m) => m !== leader);
  const writer = connect(leader.clientURL);
  const client = new Etcd3({ hosts: [first.clientURL, second.clientURL] });
  try {
    const keys: string[] = [];
    const w = await client.watch().prefix('n/').create();
    w.on('put', (kv: IKeyValue) => keys.push(kv.key.toString()));
    const put = (i: number) => writer.kv.put(PutRequest.fromPartial({ key: b(`n/${i}`), value: b(`v${i}`) }));
    const until = async (n: number) => {
      for (const deadline = Date.now() + 60000; keys.length < n; ) {
        if (Date.now() > deadline) throw new Error(`${keys.length} events of ${n}: ${keys.join(' ')}`);
        await new Promise((r) => setTimeout(r, 20)); // events arrive on the watch stream
      }
    };
    for (let i = 0; i < 50; i++) await put(i);
    await until(50);
    const streams = async (m: MemberSlot) => Number(/^etcd_debugging_mvcc_watch_stream_total (\S+)$/m.exec((await request(m.clientURL, 'GET', '/metrics')).body)?.[1]);
    const on = (await streams(first)) > 0 ? first : second;
    expect(await streams(on)).toBe(1);
    await c.kill(on);
    for (let i = 50; i < 100; i++) await put(i);
    await until(100);
    expect(keys).toEqual(Array.from({ length: 100 }, (_, i) => `n/${i}`));
    await w.cancel();
  } finally {
    client.close();
    writer.close();
  }
});

test("a member without a leader ends require-leader watches with etcd's no leader error, as etcdctl (Debian's and ours) reports it", async () => {
  c = await TestCluster.start(3);
  await c.waitForLeader();
  const [m, ...others] = c.members;
  const run = (ctl: string[]) => {
    const p = spawn(ctl[0], [...ctl.slice(1), `--endpoints=${m.clientURL}`, 'watch', 'k'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return { exited: new Promise<{ code: number | null; err: string }>((resolve) => p.on('exit', (code) => resolve({ code, err }))), kill: () => p.kill('SIGKILL') };
  };
  const procs = [run(['/usr/bin/etcdctl']), run([process.execPath, OUR_ETCDCTL])];
  try {
    // both watching (two streams on the member)
    const streams = async () => Number(/^etcd_debugging_mvcc_watch_stream_total (\S+)$/m.exec((await request(m.clientURL, 'GET', '/metrics')).body)?.[1]);
    for (const deadline = Date.now() + 20000; (await streams()) < 2; ) {
      if (Date.now() > deadline) throw new Error('the watches never started');
      await new Promise((r) => setTimeout(r, 50)); // etcdctl connects
    }
    for (const o of others) await c.kill(o);
    const [theirs, ours] = await Promise.all(procs.map((p) => p.exited));
    expect(theirs).toEqual({ code: 5, err: 'watch was canceled (etcdserver: no leader)\nError: watch is canceled by the server\n' });
    expect(ours).toEqual(theirs);
  } finally {
    for (const p of procs) p.kill();
  }
});
