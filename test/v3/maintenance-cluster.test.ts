/**
 * Maintenance and Cluster on a three-member cluster of ours, driven by Debian's etcdctl (v3): HashKV equal on every
 * member, leadership moved, members added (a learner too, promoted through a follower) and removed through the v3
 * API, and the quota alarm under a bounded write load: it trips, writes stop with etcd's error while reads go on,
 * and compaction, defragmentation and disarm bring writes back with the data intact.
 */
import { execFile } from 'node:child_process';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';
import { explainFailure } from '../support/real-etcd';
import * as grpc from '@grpc/grpc-js';
import { LeaseClient, LeaseKeepAliveRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { connect, TestWatchStream } from '../support/watch-client';

jest.setTimeout(240_000);

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

/** Runs a test body; a failure says how each member ended and what it logged last. */
async function explained(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const procs = (c?.members ?? []).filter((m) => m.proc).map((m) => ({ name: m.name, proc: m.proc! }));
    await explainFailure(procs, () => Promise.reject(err));
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(endpoints: MemberSlot | MemberSlot[], args: string[]): Promise<Run> {
  const eps = (Array.isArray(endpoints) ? endpoints : [endpoints]).map((m) => m.clientURL).join(',');
  return new Promise((resolve) => {
    execFile('/usr/bin/etcdctl', [`--endpoints=${eps}`, '--command-timeout=15s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function ok(m: MemberSlot | MemberSlot[], args: string[]): Promise<string> {
  const r = await etcdctl(m, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

interface EpStatus {
  Endpoint: string;
  Status: { header: { member_id: string; revision: number; raft_term: number }; leader: string; raftIndex: number; raftAppliedIndex: number; dbSize: number; errors?: string[]; isLearner?: boolean };
}

/** etcdctl's JSON, with the 64-bit IDs (JSON numbers JSON.parse would round) kept as decimal strings. */
const parse = <T>(text: string): T => JSON.parse(text.replace(/":(\d{16,})/g, '":"$1"')) as T;
const status = async (m: MemberSlot | MemberSlot[], cluster = false): Promise<EpStatus[]> => parse<EpStatus[]>(await ok(m, ['endpoint', 'status', '-w', 'json', ...(cluster ? ['--cluster'] : [])]));
const hex = (n: string) => BigInt(n).toString(16);

/** Member IDs by name, from the simple output. */
async function memberIds(m: MemberSlot): Promise<Map<string, string>> {
  const out = await ok(m, ['member', 'list']);
  return new Map(out.trim().split('\n').map((l) => l.split(', ')).map(([id, , name]) => [name, id]));
}

test('three members: HashKV equal on every member, endpoint status, move-leader, members added and removed through the v3 API', () => explained(async () => {
  c = await TestCluster.start(3);
  const all = c.members;
  for (let i = 0; i < 20; i++) await ok(all[i % 3], ['put', `k${i}`, `v${i}`]);
  await ok(all[0], ['del', 'k3']);
  await ok(all[1], ['compaction', '10']);
  // Every member at the same revision: the same hash.
  const hashes = await eventually('every member to hash the same revision', async () => {
    const r = parse<{ HashKV: { header: { revision: number }; hash: number; compact_revision: number } }[]>(await ok(all, ['endpoint', 'hashkv', '-w', 'json']));
    return r.every((x) => x.HashKV.header.revision === r[0].HashKV.header.revision) ? r : undefined;
  });
  expect(new Set(hashes.map((h) => h.HashKV.hash)).size).toBe(1);
  expect(hashes.map((h) => [h.HashKV.header.revision, h.HashKV.compact_revision])).toEqual([[22, 10], [22, 10], [22, 10]]);
  const table = await ok(all[0], ['endpoint', 'hashkv', '--cluster', '-w', 'table']);
  expect(table.split('\n').filter((l) => l.startsWith('| http')).map((l) => l.split('|')[2].trim())).toEqual(hashes.map((h) => String(h.HashKV.hash)));

  // endpoint status --cluster: one leader, seen alike by all.
  const leader = await c.waitForLeader();
  const ids = await memberIds(leader);
  const st = await status(leader, true);
  expect(st).toHaveLength(3);
  const leaders = new Set(st.map((s) => hex(s.Status.leader)));
  expect([...leaders]).toEqual([ids.get(leader.name)]);

  // move-leader: from the leader to a follower; asked of a follower alone, etcdctl finds no leader among its endpoints.
  const follower = all.find((m) => m !== leader)!;
  const target = ids.get(follower.name)!;
  expect(await ok(leader, ['move-leader', target])).toBe(`Leadership transferred from ${ids.get(leader.name)} to ${target}\n`);
  expect(await c.waitForLeader()).toBe(follower);
  const fromFollower = await etcdctl(leader, ['move-leader', target]);
  expect([fromFollower.code, fromFollower.stderr]).toEqual([128, expect.stringContaining('no leader endpoint given at')]);
  const unknown = await etcdctl(follower, ['move-leader', 'abcdef']);
  expect(unknown.stderr).toContain('etcdserver: bad leader transferee');

  // member add through the v3 API, then the member starts and serves the same data.
  const slot = await c.newSlot('m3');
  const added = await eventually('member add to be accepted (strict reconfiguration check)', async () => {
    const r = await etcdctl(follower, ['member', 'add', 'm3', `--peer-urls=${slot.peerURL}`]);
    if (r.code !== 0 && r.stderr.includes('etcdserver: unhealthy cluster')) return undefined;
    return r;
  });
  expect(added.stdout).toMatch(/^Member [ 0-9a-f]{16} added to cluster [ 0-9a-f]{16}\n\nETCD_NAME="m3"\nETCD_INITIAL_CLUSTER=".*m3=http.*"\nETCD_INITIAL_ADVERTISE_PEER_URLS="http:\/\/127\.0\.0\.1:\d+"\nETCD_INITIAL_CLUSTER_STATE="existing"\n$/);
  const initial = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added.stdout)![1];
  await c.launch(slot, ['--initial-cluster', initial, '--initial-cluster-state', 'existing']);
  expect(await ok(slot, ['get', 'k7', '--print-value-only'])).toBe('v7\n');
  const list = await ok(slot, ['member', 'list', '-w', 'table']);
  expect(list.split('\n').filter((l) => / started /.test(l))).toHaveLength(4);

  // member remove of m3: the others go on with 3.
  const id3 = (await memberIds(follower)).get('m3')!;
  expect(await ok(follower, ['member', 'remove', id3])).toMatch(new RegExp(`^Member +${id3} removed from cluster +[0-9a-f]+\n$`));
  await eventually('m3 to stop', async () => (await slot.proc!.exited, true));
  expect((await ok(follower, ['member', 'list'])).trim().split('\n')).toHaveLength(3);
  const again = await etcdctl(follower, ['member', 'remove', id3]);
  expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('Error: etcdserver: member not found')]);
}));

test('a learner: added with --learner, receives the data, refuses writes, is promoted through a follower, then votes', () => explained(async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const follower = c.members.find((m) => m !== leader)!;
  for (let i = 0; i < 5; i++) await ok(leader, ['put', `a${i}`, `${i}`]);
  const slot = await c.newSlot('learner');
  const added = await eventually('learner add to be accepted', async () => {
    const r = await etcdctl(follower, ['member', 'add', 'learner', '--learner', `--peer-urls=${slot.peerURL}`]);
    if (r.code !== 0 && r.stderr.includes('etcdserver: unhealthy cluster')) return undefined;
    return r;
  });
  expect(added.stdout).toMatch(/^Member [ 0-9a-f]{16} added to cluster [ 0-9a-f]{16}\n/);
  const id = /Member +([0-9a-f]+) added/.exec(added.stdout)![1];
  // A second learner is refused while this one is there.
  const second = await etcdctl(follower, ['member', 'add', 'l2', '--learner', '--peer-urls=http://127.0.0.1:1']);
  expect(second.stderr).toContain('Error: etcdserver: too many learner members in cluster');
  const initial = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added.stdout)![1];
  await c.launch(slot, ['--initial-cluster', initial, '--initial-cluster-state', 'existing']);
  expect(await ok(slot, ['get', 'a3', '--consistency=s', '--print-value-only'])).toBe('3\n');
  const learnerStatus = await status(slot);
  expect(learnerStatus[0].Status.isLearner).toBe(true);
  const refused = await etcdctl(slot, ['put', 'x', 'y', '--command-timeout=2s']);
  expect(refused.stderr).toContain('etcdserver: rpc not supported for learner');
  // Lease and Auth calls too, and every stream (etcd 3.4's unary and stream interceptors).
  for (const args of [['lease', 'grant', '60'], ['lease', 'list'], ['auth', 'enable'], ['user', 'list']]) {
    const r = await etcdctl(slot, [...args, '--command-timeout=2s']);
    expect([args, r.stderr]).toEqual([args, expect.stringContaining('etcdserver: rpc not supported for learner')]);
  }
  const conn = connect(slot.clientURL);
  try {
    const w = new TestWatchStream(conn.watchClient);
    w.create({ key: Buffer.from('a0') });
    await eventually('the watch stream to be refused', async () => w.error);
    expect([w.error!.code, w.error!.details]).toEqual([grpc.status.UNAVAILABLE, 'etcdserver: rpc not supported for learner']);
    const lease = new LeaseClient(slot.clientURL.replace(/^http:\/\//, ''), grpc.credentials.createInsecure());
    const ka = lease.leaseKeepAlive();
    const kaError = await new Promise<grpc.ServiceError>((resolve) => {
      ka.on('error', resolve);
      ka.write(LeaseKeepAliveRequest.fromPartial({ ID: 1n }));
    });
    lease.close();
    expect([kaError.code, kaError.details]).toEqual([grpc.status.UNAVAILABLE, 'etcdserver: rpc not supported for learner']);
  } finally {
    conn.close();
  }
  // so are the Lock and Election services (etcd's interceptors gate every service), here through the gateway
  const lockRefused = await fetch(`${slot.clientURL}/v3/lock/lock`, { method: 'POST', body: JSON.stringify({ name: 'bGs=' }) });
  const learnerError = 'etcdserver: rpc not supported for learner';
  expect([lockRefused.status, await lockRefused.json()]).toEqual([503, { error: learnerError, message: learnerError, code: 14 }]);
  const observeRefused = await fetch(`${slot.clientURL}/v3/election/observe`, { method: 'POST', body: JSON.stringify({ name: 'ZWw=' }) });
  expect(JSON.parse(await observeRefused.text())).toMatchObject({ error: { grpc_code: 14, message: learnerError } });
  expect(await ok(leader, ['member', 'list'])).toContain(`${id}, started, learner, ${slot.peerURL}, ${slot.clientURL}, true`);
  // Promoted through a follower, which asks the leader (only the leader knows whether the learner is in sync).
  await eventually('the learner to be promoted', async () => {
    const r = await etcdctl(follower, ['member', 'promote', id]);
    if (r.stderr.includes('in sync with leader')) return undefined;
    expect([r.stdout, r.stderr]).toEqual([expect.any(String), '']);
    expect(r.stdout).toMatch(new RegExp(`^Member +${id} promoted in cluster +[0-9a-f]+\n$`));
    return true;
  });
  expect(await ok(leader, ['member', 'list'])).toContain(`${id}, started, learner, ${slot.peerURL}, ${slot.clientURL}, false`);
  expect(await ok(slot, ['put', 'from', 'promoted'])).toBe('OK\n');
  expect((await status(slot))[0].Status.isLearner).toBeUndefined();
  const again = await etcdctl(leader, ['member', 'promote', id]);
  expect(again.stderr).toContain('Error: etcdserver: can only promote a learner member');
}));

test('the quota alarm under a bounded write load: trips, refuses writes, serves reads; compaction, defrag and disarm restore writes', () => explained(async () => {
  const quota = 2 * 1024 * 1024;
  c = await TestCluster.start(3, { args: ['--quota-backend-bytes', String(quota)] });
  const all = c.members;
  const value = 'x'.repeat(20 * 1024);
  // Four writers, each up to 60 keys of 20 KiB (4.8 MB in all, over twice the quota), until refused.
  const accepted: string[] = [];
  const refusals = new Set<string>();
  await Promise.all(all.concat(all[0]).map(async (m, w) => {
    for (let i = 0; i < 60; i++) {
      const r = await etcdctl(m, ['put', `load/${w}/${i}`, value]);
      if (r.code === 0) accepted.push(`load/${w}/${i}`);
      else {
        refusals.add(r.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? r.stderr);
        break;
      }
    }
  }));
  expect([...refusals]).toEqual(['Error: etcdserver: mvcc: database space exceeded']);
  expect(accepted.length).toBeGreaterThan(20);
  // Every member holds the alarm and reports it; reads and deletes go on.
  for (const m of all) expect(await ok(m, ['alarm', 'list'])).toMatch(/^(memberID:\d+ alarm:NOSPACE \n)+$/);
  const st = await status(all, false);
  for (const s of st) expect(s.Status.errors?.some((e) => e.endsWith('alarm:NOSPACE '))).toBe(true);
  const count = async (m: MemberSlot) => Number(parse<{ count?: number }>(await ok(m, ['get', 'load/', '--prefix', '--keys-only', '-w', 'json'])).count ?? 0);
  for (const m of all) expect(await count(m)).toBe(accepted.length);
  expect((await etcdctl(all[1], ['put', 'more', 'x'])).stderr).toContain('Error: etcdserver: mvcc: database space exceeded');
  // Lease grants too (etcd's quota check on LeaseGrant and its capped applier).
  expect((await etcdctl(all[2], ['lease', 'grant', '60'])).stderr).toContain('Error: failed to grant lease (etcdserver: mvcc: database space exceeded)');
  // Make room: delete half the keys, compact, defragment every member; still refused until disarmed.
  const half = accepted.slice(0, Math.floor(accepted.length / 2));
  for (const k of half) await ok(all[2], ['del', k]);
  const rev = (await status(all[0]))[0].Status.header.revision;
  await ok(all[0], ['compaction', '--physical', String(rev)]);
  const before = (await status(all, false)).map((s) => s.Status.dbSize);
  const defragged = (await ok(all[0], ['defrag', '--cluster'])).split('\n').filter((l) => l).sort();
  expect(defragged).toEqual(all.map((m) => `Finished defragmenting etcd member[${m.clientURL}]`).sort());
  const after = (await status(all, false)).map((s) => s.Status.dbSize);
  after.forEach((size, i) => expect(size).toBeLessThan(before[i]));
  expect((await etcdctl(all[0], ['put', 'more', 'x'])).stderr).toContain('database space exceeded');
  await ok(all[0], ['alarm', 'disarm']);
  expect(await ok(all[1], ['alarm', 'list'])).toBe('');
  expect(await ok(all[1], ['put', 'more', 'x'])).toBe('OK\n');
  // The data is intact: what was not deleted is there, with its value, on every member.
  for (const m of all) {
    await eventually(`${m.name} to apply the last put`, async () => ((await ok(m, ['get', 'more', '--consistency=s', '--print-value-only'])) === 'x\n' ? true : undefined));
    expect(await count(m)).toBe(accepted.length - half.length);
    const kept = accepted[accepted.length - 1];
    expect(await ok(m, ['get', kept, '--print-value-only'])).toBe(`${value}\n`);
  }
  const health = await etcdctl(all[0], ['endpoint', 'health', '--cluster']);
  expect([health.code, health.stdout + health.stderr]).toEqual([0, expect.stringMatching(/^(http:\/\/127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = .*\n){3}$/)]);
}));
