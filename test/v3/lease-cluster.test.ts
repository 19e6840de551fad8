/**
 * Leases end to end on our members: a 3-member cluster where expiry is the leader's and revocation goes through the
 * log (every member deletes the keys at the same revision), followers forward keep-alives and TimeToLive to the
 * leader, a lease kept alive across 20 kill -9 of the leader never loses its keys while a watch moved from member to
 * member gets every write once and in order, and leases survive a restart of the
 * whole cluster; and the lease APIs of Python's etcd3 and the npm etcd3 clients against a member.
 */
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import {
  KVClient, LeaseClient, WatchClient, WatchRequest, type WatchResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseLeasesResponse, LeaseRevokeRequest, LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse, PutRequest, RangeRequest, RangeResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { V3Client } from '../../server/etcdctl/v3/client';
import { Event_EventType, type Event } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';

jest.setTimeout(300_000);

let c: TestCluster | undefined;
const opened: grpc.Client[] = [];
afterEach(async () => {
  for (const x of opened.splice(0)) x.close();
  await c?.stop();
  c = undefined;
});

const b = (s: string) => Buffer.from(s);
const target = (m: MemberSlot) => m.clientURL.replace('http://', '');

function clients(m: MemberSlot): { lease: LeaseClient; kv: KVClient } {
  const lease = new LeaseClient(target(m), grpc.credentials.createInsecure());
  const kv = new KVClient(target(m), grpc.credentials.createInsecure());
  opened.push(lease, kv);
  return { lease, kv };
}

type Cb<Res> = (err: grpc.ServiceError | null, res: Res) => void;
function call<Req, Res>(client: grpc.Client, method: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: Cb<Res>) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

const grant = (m: MemberSlot, ID: bigint, TTL: bigint) => { const { lease } = clients(m); return call<LeaseGrantRequest, LeaseGrantResponse>(lease, lease.leaseGrant, LeaseGrantRequest.fromPartial({ ID, TTL })); };
const revoke = (m: MemberSlot, ID: bigint) => { const { lease } = clients(m); return call(lease, lease.leaseRevoke, LeaseRevokeRequest.fromPartial({ ID })); };
const ttl = (m: MemberSlot, ID: bigint) => { const { lease } = clients(m); return call<LeaseTimeToLiveRequest, LeaseTimeToLiveResponse>(lease, lease.leaseTimeToLive, LeaseTimeToLiveRequest.fromPartial({ ID, keys: true })); };
const leases = (m: MemberSlot) => { const { lease } = clients(m); return call<object, LeaseLeasesResponse>(lease, lease.leaseLeases, {}); };
const put = (m: MemberSlot, key: string, lease: bigint) => { const { kv } = clients(m); return call(kv, kv.put, PutRequest.fromPartial({ key: b(key), value: b('v'), lease })); };
/** A serializable read of the prefix on this member (what it has applied), at a revision (0: current). */
const range = (m: MemberSlot, prefix: string, revision = 0n) => {
  const { kv } = clients(m);
  const end = b(prefix);
  end[end.length - 1]++;
  return call<RangeRequest, RangeResponse>(kv, kv.range, RangeRequest.fromPartial({ key: b(prefix), rangeEnd: end, revision, serializable: true }));
};
const keysOf = (r: RangeResponse) => r.kvs.map((kv) => kv.key.toString());

/** A keep-alive client as etcdctl's (clientv3's loop), over every member: it moves on when its member dies. */
function keepAliveOver(members: MemberSlot[], id: bigint): { renewals: () => number; stop: () => Promise<void> } {
  const client = new V3Client({
    endpoints: members.map((m) => m.clientURL), commandTimeoutMs: 5000, keepAliveTimeMs: 2000, keepAliveTimeoutMs: 6000,
    insecureTransport: true, insecureSkipVerify: false, cert: '', key: '', cacert: '', warn: () => undefined,
  });
  let renewals = 0;
  let stopped = false;
  const done = client.keepAlive(id, () => {
    renewals++;
    return !stopped;
  });
  return {
    renewals: () => renewals,
    stop: async () => {
      stopped = true;
      await done;
      client.close();
    },
  };
}

test('3 members: the leader expires a lease, every member deletes its keys at the same revision; followers forward keep-alive and TimeToLive', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const [f1, f2] = c.members.filter((m) => m !== leader);
  expect((await grant(f1, 0x10n, 3n)).TTL).toBe(3n);
  expect((await grant(f2, 0x20n, 600n)).ID).toBe(0x20n);
  for (const k of ['e/b', 'e/a', 'e/c']) await put(f2, k, 0x10n);
  await put(f1, 'e/kept', 0x20n);
  await put(leader, 'e/plain', 0n);
  // TimeToLive through a follower is the leader's answer (a follower's leases never expire: it would say 9223372036)
  const t = await ttl(f1, 0x10n);
  expect([t.grantedTTL, t.TTL <= 3n && t.TTL >= 1n, t.keys.map(String)]).toEqual([3n, true, ['e/a', 'e/b', 'e/c']]);
  // a keep-alive through a follower renews at the leader
  const ka = new V3Client({ endpoints: [f2.clientURL], commandTimeoutMs: 5000, keepAliveTimeMs: 2000, keepAliveTimeoutMs: 6000, insecureTransport: true, insecureSkipVerify: false, cert: '', key: '', cacert: '', warn: () => undefined });
  expect((await ka.keepAliveOnce(0x10n)).TTL).toBe(3n);
  await expect(ka.keepAliveOnce(0x99n)).rejects.toThrow('etcdserver: requested lease not found');
  ka.close();

  const gone = await eventually('the lease to expire on the leader', async () => {
    const r = await range(leader, 'e/');
    return keysOf(r).includes('e/a') ? undefined : r.header!.revision;
  });
  for (const m of c.members) {
    // every member: at one revision the three keys are there, at the next they are not
    const now = await eventually(`${m.name} to apply the revocation`, async () => {
      const r = await range(m, 'e/');
      return r.header!.revision >= gone ? r : undefined;
    });
    expect([m.name, keysOf(now)]).toEqual([m.name, ['e/kept', 'e/plain']]);
    expect([m.name, keysOf(await range(m, 'e/', gone - 1n))]).toEqual([m.name, ['e/a', 'e/b', 'e/c', 'e/kept', 'e/plain']]);
    expect([m.name, keysOf(await range(m, 'e/', gone))]).toEqual([m.name, ['e/kept', 'e/plain']]);
    expect((await leases(m)).leases.map((l) => l.ID)).toEqual([0x20n]);
  }
  expect((await ttl(f2, 0x10n)).TTL).toBe(-1n);
  // every member counts the grants and revocations it applied; expiries and renewals are the leader's alone
  const metric = async (m: MemberSlot, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await request(m.clientURL, 'GET', '/metrics')).body)?.[1]);
  for (const m of c.members) {
    expect([m.name, await metric(m, 'etcd_debugging_lease_granted_total'), await metric(m, 'etcd_debugging_lease_revoked_total')]).toEqual([m.name, 2, 1]);
  }
  const sum = async (name: string) => (await Promise.all(c!.members.map((m) => metric(m, name)))).reduce((x, y) => x + y, 0);
  expect(await sum('etcd_debugging_server_lease_expired_total')).toBe(1);
  expect(await sum('etcd_debugging_lease_renewed_total')).toBe(1);
});

/**
 * A watch of the whole keyspace that goes on through the members in turn, as a client's retry does: when its stream
 * fails it opens a new one on the next member from the revision after the last event it got.
 */
function watchOver(members: MemberSlot[]): { events: Event[]; reopened: () => number; caughtUp: (rev: bigint) => boolean; stop: () => void } {
  const events: Event[] = [];
  let next = 1n;
  let turn = 0;
  let reopened = 0;
  let stopped = false;
  let current: { client: WatchClient; call: grpc.ClientDuplexStream<WatchRequest, WatchResponse> } | undefined;
  const open = (): void => {
    if (stopped) return;
    const m = members[turn++ % members.length];
    const client = new WatchClient(target(m), grpc.credentials.createInsecure());
    const call = client.watch();
    current = { client, call };
    let failed = false;
    const fail = (): void => {
      if (failed) return;
      failed = true;
      client.close();
      reopened++;
      // a client's backoff before it dials the next member
      if (!stopped) setTimeout(open, 50);
    };
    call.on('data', (r: WatchResponse) => {
      for (const ev of r.events) {
        events.push(ev);
        next = ev.kv!.modRevision + 1n;
      }
      if (r.canceled) fail();
    });
    call.on('error', fail);
    call.on('end', fail);
    call.write(WatchRequest.fromPartial({ createRequest: { key: Buffer.from([0]), rangeEnd: Buffer.from([0]), startRevision: next } }));
  };
  open();
  return {
    events,
    reopened: () => reopened,
    caughtUp: (rev) => next > rev,
    stop: () => {
      stopped = true;
      current?.call.cancel();
      current?.client.close();
    },
  };
}

test('3 members, 20 kill -9 of the leader under writes: a kept-alive lease never loses its keys, a watch across members gets every write once, in order; a lease left alone expires', async () => {
  c = await TestCluster.start(3);
  const first = await c.waitForLeader();
  await grant(first, 0x1n, 5n);
  await grant(first, 0x2n, 3n);
  for (let i = 0; i < 5; i++) await put(first, `kept/${i}`, 0x1n);
  await put(first, 'free/0', 0x2n);
  const ka = keepAliveOver(c.members, 0x1n);
  const watch = watchOver(c.members);
  // One writer, bounded in count, through the members in turn: what was acknowledged (with its revision), and
  // what failed (it may or may not have been applied).
  const acked = new Map<string, bigint>();
  const unknown = new Set<string>();
  let writing = true;
  const writer = (async () => {
    for (let n = 0; writing && n < 20_000; n++) {
      const m = c!.members[n % 3];
      const key = `w/${String(n).padStart(5, '0')}`;
      if (!m.proc) continue;
      try {
        const r = (await put(m, key, 0n)) as { header?: { revision: bigint } };
        acked.set(key, r.header!.revision);
      } catch {
        unknown.add(key);
      }
    }
  })();
  try {
    for (let kill = 0; kill < 20; kill++) {
      const leader = await c.waitForLeader();
      const before = ka.renewals();
      const acks = acked.size;
      await c.kill(leader);
      const next = await c.waitForLeader();
      // renewed through the new leader, and writes acknowledged, after the kill
      await eventually('a renewal and writes after the kill', async () => (ka.renewals() > before + 1 && acked.size > acks + 10 ? true : undefined));
      expect([kill, keysOf(await range(next, 'kept/'))]).toEqual([kill, ['kept/0', 'kept/1', 'kept/2', 'kept/3', 'kept/4']]);
      await c.restart(leader);
    }
    writing = false;
    await writer;
    // the lease left alone expires once leaders stop changing; the kept one is still there
    await eventually('the lease not kept alive to expire', async () => ((await range(c!.members[0], 'free/')).kvs.length === 0 ? true : undefined));
    for (const m of c.members) {
      await eventually(`${m.name} to apply the expiry`, async () => ((await range(m, 'free/')).kvs.length === 0 ? true : undefined));
      expect([m.name, (await range(m, 'kept/')).kvs.length]).toEqual([m.name, 5]);
    }
    const last = (await range(c.members[0], 'free/')).header!.revision;
    await eventually('the watch to catch up', async () => (watch.caughtUp(last) ? true : undefined));
  } finally {
    writing = false;
    await writer;
    watch.stop();
    await ka.stop();
  }
  expect(watch.reopened()).toBeGreaterThanOrEqual(1);
  // What the moving watch got is the history, event for event: a watch from revision 1 on one member at the end.
  const whole = watchOver([c.members[0]]);
  const last = watch.events[watch.events.length - 1].kv!.modRevision;
  await eventually('a watch of the whole history', async () => (whole.caughtUp(last) ? true : undefined));
  whole.stop();
  const line = (e: Event) => `${e.kv!.modRevision} ${e.type} ${e.kv!.key}`;
  expect(watch.events.map(line)).toEqual(whole.events.map(line));
  // The watch: revisions strictly increasing (nothing repeated, nothing out of order), every acknowledged write at
  // its revision, nothing that was not written; the kept keys never deleted, the free one deleted once.
  const revs = watch.events.map((e) => e.kv!.modRevision);
  expect(revs.every((r, i) => i === 0 || r > revs[i - 1])).toBe(true);
  const seen = new Map(watch.events.filter((e) => e.type === Event_EventType.PUT).map((e) => [e.kv!.key.toString(), e.kv!.modRevision]));
  for (const [k, rev] of acked) expect([k, seen.get(k)]).toEqual([k, rev]);
  for (const k of seen.keys()) if (k.startsWith('w/')) expect([k, acked.has(k) || unknown.has(k)]).toEqual([k, true]);
  const deletes = watch.events.filter((e) => e.type === Event_EventType.DELETE).map((e) => e.kv!.key.toString());
  expect(deletes).toEqual(['free/0']);
  expect(acked.size).toBeGreaterThan(200);
  // no member ever lost a kept key: each has every version of them from their puts on, never a delete
  for (const m of c.members) {
    const r = await range(m, 'kept/');
    expect(r.kvs.map((kv) => kv.version)).toEqual([1n, 1n, 1n, 1n, 1n]);
  }
});

test('3 members: leases and their keys survive a kill -9 of every member; the new leader gives them a fresh TTL', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  await grant(leader, 0x7fffffffffffffffn, 60n);
  await grant(leader, 0x5n, 30n);
  await put(leader, 'r/a', 0x7fffffffffffffffn);
  await put(leader, 'r/b', 0x7fffffffffffffffn);
  await put(leader, 'r/c', 0x5n);
  for (const m of c.members) await c.kill(m);
  for (const m of c.members) void c.restart(m, false);
  await eventually('all members back', async () => (c!.members.every((m) => m.proc) ? true : undefined));
  const now = await c.waitForLeader();
  for (const m of c.members) {
    await eventually(`${m.name} to serve`, async () => ((await leases(m)).leases.length === 2 ? true : undefined));
    expect((await leases(m)).leases.map((l) => l.ID).sort()).toEqual([0x5n, 0x7fffffffffffffffn]);
  }
  const t = await eventually('the new leader to promote its lessor', async () => {
    const r = await ttl(now, 0x7fffffffffffffffn);
    return r.TTL < 100n ? r : undefined;
  });
  // a fresh TTL: the whole 60 s plus an election timeout, less the time since
  expect([t.grantedTTL, t.TTL >= 55n && t.TTL <= 60n, t.keys.map(String)]).toEqual([60n, true, ['r/a', 'r/b']]);
  await revoke(c.members[1], 0x7fffffffffffffffn);
  for (const m of c.members) {
    await eventually(`${m.name} to apply the revocation`, async () => (keysOf(await range(m, 'r/')).join() === 'r/c' ? true : undefined));
  }
});

test('3 members: a member that catches up by snapshot has the leases and their keys, and revokes them as the others do', async () => {
  c = await TestCluster.start(3, { args: ['--snapshot-count', '20', '--experimental-snapshot-catchup-entries', '10'] });
  const leader = await c.waitForLeader();
  const behind = c.members.find((m) => m !== leader)!;
  await c.kill(behind);
  await grant(leader, 0x77n, 600n);
  for (let i = 0; i < 30; i++) await put(leader, `s/${String(i).padStart(2, '0')}`, i % 3 ? 0x77n : 0n);
  await c.restart(behind);
  await eventually(`${behind.name} to get a snapshot`, async () => (/received a snapshot/.test(behind.proc!.output()) ? true : undefined));
  await eventually(`${behind.name} to have the lease`, async () => ((await leases(behind)).leases.map((l) => l.ID).join() === '119' ? true : undefined));
  await revoke(leader, 0x77n);
  const want = keysOf(await range(leader, 's/'));
  expect(want).toHaveLength(10);
  await eventually(`${behind.name} to revoke the lease's keys`, async () => (keysOf(await range(behind, 's/')).join() === want.join() ? true : undefined));
  expect((await range(behind, 's/')).header!.revision).toBe((await range(leader, 's/')).header!.revision);
});

test("Python's etcd3 client: lease grant, put with a lease, refresh, TimeToLive, revoke", async () => {
  c = await TestCluster.start(1);
  const [m] = c.members;
  const port = new URL(m.clientURL).port;
  const script = `
import etcd3
c = etcd3.client(host='127.0.0.1', port=${port})
lease = c.lease(120)
print('granted', lease.ttl, lease.id > 0)
c.put('/py/leased', 'v', lease=lease)
c.put('/py/other', 'w', lease=lease)
v, meta = c.get('/py/leased')
print('attached', meta.lease_id == lease.id)
print('refresh', [r.TTL for r in lease.refresh()])
print('info', lease.granted_ttl, 115 <= lease.remaining_ttl <= 120, sorted(k.decode() for k in lease.keys))
lease.revoke()
print('revoked', c.get('/py/leased')[0], c.get('/py/other')[0], lease.remaining_ttl)
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toBe("granted 120 True\nattached True\nrefresh [120]\ninfo 120 True ['/py/leased', '/py/other']\nrevoked None None -1\n");
});

test('the npm etcd3 client: a lease with keys, keepalive, revoke; a lease it does not keep alive expires', async () => {
  c = await TestCluster.start(1);
  const [m] = c.members;
  const client = new Etcd3({ hosts: m.clientURL });
  try {
    const lease = client.lease(60);
    const id = await lease.grant();
    await lease.put('/js/a').value('1');
    await lease.put('/js/b').value('2');
    expect((await client.get('/js/a').exec()).kvs[0].lease).toBe(id);
    expect((await lease.keepaliveOnce()).TTL).toBe('60');
    await lease.revoke();
    expect(await client.getAll().prefix('/js/').strings()).toEqual({});

    const short = client.lease(1, { autoKeepAlive: false });
    await short.grant();
    await short.put('/js/short').value('x');
    await eventually('the short lease to expire', async () => ((await client.get('/js/short').string()) === null ? true : undefined));
    // our answer to a keep-alive of a lease that is gone, TTL 0, is what the client reads as gone
    await expect(short.keepaliveOnce()).rejects.toThrow(/is expired or revoked/);
  } finally {
    client.close();
  }
});
