/**
 * The Lock and Election services side by side with Debian's etcd 3.4: the same requests, in the same order, on a
 * fresh member of each, answer the same (responses with their header revisions, or the same gRPC code and message),
 * and leave the same keys: locks taken at once and after a wait (the waiter answered when the holder unlocks, or its
 * lease is revoked), a waiter that gives up (its key deleted), leases chosen by the server for callers that name
 * none, campaigns, proclamations, resignations, the observer's stream in order, etcd's errors, and auth (every
 * request of the recipes is the caller's). Leases the servers choose differ: they are compared by their order.
 */
import * as grpc from '@grpc/grpc-js';
import {
  AuthClient, KVClient, LeaseClient, LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, RangeRequest,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { Permission_Type } from '../../server/api/v3rpc/pb/authpb/auth';
import { LockClient, LockRequest, UnlockRequest } from '../../server/api/v3rpc/pb/v3lockpb/v3lock';
import { CampaignRequest, ElectionClient, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest, type LeaderKey } from '../../server/api/v3rpc/pb/v3electionpb/v3election';
import { eventually } from '../support/cluster';
import { sideBySide, type SideBase } from '../support/side-by-side';

jest.setTimeout(120_000);

const b = (s: string) => Buffer.from(s);

interface Side extends SideBase {
  kv: KVClient;
  lease: LeaseClient;
  lock: LockClient;
  election: ElectionClient;
  auth: AuthClient;
  /** the server's leases (those it chose) by the order they were first seen: compared by that order */
  labels: Map<bigint, string>;
}

/** The lease IDs this test gives (the same on both sides): not relabelled. */
const GIVEN = new Set([0x100n, 0x200n, 0x300n, 0x400n, 0x500n]);

function label(s: Side, id: bigint): string | bigint {
  if (id === 0n || GIVEN.has(id)) return id;
  let l = s.labels.get(id);
  if (!l) s.labels.set(id, (l = `lease#${s.labels.size + 1}`));
  return l;
}

/** A response without the header's ids and term; keys `<name>/<lease hex>` and leases by their label. */
function normalize(s: Side, v: unknown, field = ''): unknown {
  if (Array.isArray(v)) return v.map((x) => normalize(s, x));
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    const str = Buffer.from(v).toString();
    const m = /^(.*\/)(-?[0-9a-f]+)$/.exec(str);
    if (!m) return str;
    const id = BigInt(m[2].startsWith('-') ? `-0x${m[2].slice(1)}` : `0x${m[2]}`);
    return `${m[1]}${GIVEN.has(id) ? m[2] : label(s, id)}`;
  }
  if (typeof v === 'bigint' && (field === 'lease' || field === 'ID')) return label(s, v);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'header') out.revision = (x as { revision: bigint } | undefined)?.revision;
      else out[k] = normalize(s, x, k);
    }
    return out;
  }
  return v;
}

type Unary<Req> = (req: Req, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

/** A unary call: its normalized answer or "CODE: message"; the raw answer too, and the call (to cancel). */
function call<Req>(s: Side, client: grpc.Client, method: Unary<Req>, req: Req, md = new grpc.Metadata()): { done: Promise<unknown>; raw: Promise<unknown>; call: grpc.ClientUnaryCall; settled: () => boolean } {
  let settled = false;
  let c!: grpc.ClientUnaryCall;
  const raw = new Promise<unknown>((resolve) => {
    c = method.call(client, req, md, (err, res) => {
      settled = true;
      resolve(err ? `${grpc.status[err.code]}: ${err.details}` : res);
    });
  });
  return { done: raw.then((r) => (typeof r === 'string' ? r : normalize(s, r))), raw, call: c, settled: () => settled };
}

describe("Lock and Election side by side with Debian's etcd 3.4", () => {
  const { sides, same } = sideBySide<Side>(
    'concur',
    (base, target) => {
      const kv = new KVClient(target, grpc.credentials.createInsecure());
      const shared = { channelOverride: kv.getChannel() as grpc.Channel };
      return {
        ...base, kv, labels: new Map(),
        lease: new LeaseClient(target, grpc.credentials.createInsecure(), shared),
        lock: new LockClient(target, grpc.credentials.createInsecure(), shared),
        election: new ElectionClient(target, grpc.credentials.createInsecure(), shared),
        auth: new AuthClient(target, grpc.credentials.createInsecure(), shared),
      };
    },
    (s) => s.kv.close(),
  );

  const grant = (s: Side, ID: bigint, TTL = 60n) => call(s, s.lease, s.lease.leaseGrant, LeaseGrantRequest.fromPartial({ ID, TTL })).done;
  const revoke = (s: Side, ID: bigint) => call(s, s.lease, s.lease.leaseRevoke, LeaseRevokeRequest.fromPartial({ ID })).done;
  const lockCall = (s: Side, name: string, lease: bigint, md?: grpc.Metadata) => call(s, s.lock, s.lock.lock, LockRequest.fromPartial({ name: b(name), lease }), md);
  const unlock = (s: Side, key: Buffer | string) => call(s, s.lock, s.lock.unlock, UnlockRequest.fromPartial({ key: typeof key === 'string' ? b(key) : key })).done;
  /** Every key under a prefix, normalized (the range's header too). */
  const keys = (s: Side, prefix: string) => call(s, s.kv, s.kv.range, RangeRequest.fromPartial({ key: b(prefix), rangeEnd: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) })).done;
  const count = async (s: Side, prefix: string) => ((await keys(s, prefix)) as { count: bigint }).count;
  const campaignCall = (s: Side, name: string, lease: bigint, value: string, md?: grpc.Metadata) =>
    call(s, s.election, s.election.campaign, CampaignRequest.fromPartial({ name: b(name), lease, value: b(value) }), md);
  const proclaimCall = (s: Side, leader: LeaderKey | undefined, value: string) => call(s, s.election, s.election.proclaim, ProclaimRequest.fromPartial({ leader, value: b(value) })).done;
  const resignCall = (s: Side, leader: LeaderKey | undefined) => call(s, s.election, s.election.resign, ResignRequest.fromPartial({ leader })).done;
  const leaderCall = (s: Side, name: string, md?: grpc.Metadata) => call(s, s.election, s.election.leader, LeaderRequest.fromPartial({ name: b(name) }), md).done;

  /** Waits until `n` keys are under the prefix on that side (a waiter's key is there once its Txn is applied). */
  const keysUnder = (s: Side, prefix: string, n: bigint) => eventually(`${n} keys under ${prefix} on ${s.name}`, async () => ((await count(s, prefix)) === n ? true : undefined));

  test('a free lock at once; the same lease again holds it again; a second lease waits until the holder unlocks', async () => {
    await same((s) => grant(s, 0x100n));
    await same((s) => grant(s, 0x200n));
    const first = (await same((s) => lockCall(s, 'lk', 0x100n).done)) as { key: string };
    expect(first).toEqual({ revision: 2n, key: 'lk/100' });
    // the same lease: the same key, held already (no write)
    expect(await same((s) => lockCall(s, 'lk', 0x100n).done)).toEqual({ revision: 2n, key: 'lk/100' });
    const waiting = sides().map((s) => lockCall(s, 'lk', 0x200n));
    await Promise.all(sides().map((s) => keysUnder(s, 'lk/', 2n)));
    // the waiter's key is there and the holder's too: still waiting (the Range below is a round trip after it)
    await same((s) => keys(s, 'lk/'));
    expect(waiting.map((w) => w.settled())).toEqual([false, false]);
    expect(await same((s) => unlock(s, 'lk/100'))).toEqual({ revision: 4n });
    const got = await Promise.all(waiting.map((w) => w.done));
    expect(got[1]).toEqual(got[0]);
    expect(got[1]).toEqual({ revision: 4n, key: 'lk/200' });
  });

  test('a waiter answered when the holder\'s lease is revoked; one that gives up leaves no key', async () => {
    await same((s) => grant(s, 0x300n));
    // lk is held by 0x200's key: 0x300 waits for it
    const waiting = sides().map((s) => lockCall(s, 'lk', 0x300n));
    await Promise.all(sides().map((s) => keysUnder(s, 'lk/', 2n)));
    await same((s) => revoke(s, 0x200n));
    const got = await Promise.all(waiting.map((w) => w.done));
    expect(got[1]).toEqual(got[0]);
    expect(got[1]).toMatchObject({ key: 'lk/300' });
    // 0x100 waits behind 0x300, then its client cancels: the waiter's key goes, the holder's stays
    const quitter = sides().map((s) => lockCall(s, 'lk', 0x100n));
    await Promise.all(sides().map((s) => keysUnder(s, 'lk/', 2n)));
    for (const q of quitter) q.call.cancel();
    expect((await Promise.all(quitter.map((q) => q.done)))).toEqual(['CANCELLED: Cancelled on client', 'CANCELLED: Cancelled on client']);
    await Promise.all(sides().map((s) => keysUnder(s, 'lk/', 1n)));
    expect(await same((s) => keys(s, 'lk/'))).toMatchObject({ kvs: [{ key: 'lk/300', lease: 0x300n }] });
  });

  test('a lock without a lease gets one of 60 s from the server; etcd\'s errors', async () => {
    const r = (await same((s) => lockCall(s, 'free', 0n).done)) as { key: string };
    expect(r.key).toBe('free/lease#1');
    const kv = (await same((s) => keys(s, 'free/'))) as { kvs: { lease: string }[] };
    expect(kv.kvs[0].lease).toBe('lease#1');
    const ttls = await Promise.all(sides().map(async (s) => {
      const id = [...s.labels.entries()].find(([, l]) => l === 'lease#1')![0];
      return call(s, s.lease, s.lease.leaseTimeToLive, { ID: id, keys: true }).done;
    }));
    for (const t of ttls) expect(t).toMatchObject({ grantedTTL: 60n, keys: ['free/lease#1'] });
    expect(await same((s) => lockCall(s, 'free', 0x999n).done)).toBe('UNKNOWN: etcdserver: requested lease not found');
    expect(await same((s) => unlock(s, ''))).toBe('UNKNOWN: etcdserver: key is not provided');
    // an unlock of a key that is not there: just the header
    expect(await same((s) => unlock(s, 'free/nothing'))).toEqual({ revision: expect.any(BigInt) });
    expect(await same((s) => lockCall(s, '', 0x100n).done)).toEqual({ revision: expect.any(BigInt), key: '/100' });
    // auth is off, but a token that is none is refused all the same (etcd reads it); an observer so refused just ends
    const bad = new grpc.Metadata();
    bad.set('token', 'nonsense');
    expect(await same((s) => lockCall(s, 'free', 0x100n, bad).done)).toBe('UNKNOWN: etcdserver: invalid auth token');
    expect(await same((s) => leaderCall(s, 'free', bad))).toBe('UNKNOWN: etcdserver: invalid auth token');
    expect(await same((s) => new Promise((resolve) => {
      const stream = s.election.observe(LeaderRequest.fromPartial({ name: b('free') }), bad);
      stream.on('data', () => resolve('data'));
      stream.on('error', (err: grpc.ServiceError) => resolve(`${grpc.status[err.code]}: ${err.details}`));
      stream.on('end', () => resolve('end'));
    }))).toBe('end');
  });

  test('an election: no leader, a campaign, a second campaign waits, proclamations, the observer, resignation', async () => {
    await same((s) => grant(s, 0x400n));
    await same((s) => grant(s, 0x500n));
    expect(await same((s) => leaderCall(s, 'el'))).toBe('UNKNOWN: election: no leader');
    // the observer, from before there is a leader
    const observed = sides().map((s) => {
      const out: unknown[] = [];
      const stream = s.election.observe(LeaderRequest.fromPartial({ name: b('el') }));
      stream.on('data', (r: LeaderResponse) => out.push(normalize(s, r)));
      stream.on('error', () => undefined);
      return { out, stream };
    });
    const won = await Promise.all(sides().map((s) => campaignCall(s, 'el', 0x400n, 'v1').raw)) as { leader: LeaderKey }[];
    expect(normalize(sides()[1], won[1])).toEqual(normalize(sides()[0], won[0]));
    expect(normalize(sides()[1], won[1])).toMatchObject({ leader: { name: 'el', key: 'el/400', lease: 0x400n } });
    expect(await same((s) => leaderCall(s, 'el'))).toMatchObject({ kv: { key: 'el/400', value: 'v1' } });
    // the same lease campaigns again with another value: proclaimed, and it leads at once
    expect(await same((s) => campaignCall(s, 'el', 0x400n, 'v2').done)).toMatchObject({ leader: { key: 'el/400', rev: won[1].leader.rev } });
    const second = sides().map((s) => campaignCall(s, 'el', 0x500n, 'w1'));
    await Promise.all(sides().map((s) => keysUnder(s, 'el/', 2n)));
    await same((s) => keys(s, 'el/'));
    expect(second.map((w) => w.settled())).toEqual([false, false]);
    expect(await same((s, i = sides().indexOf(s)) => proclaimCall(s, won[i].leader, 'v3'))).toEqual({ revision: expect.any(BigInt) });
    // errors: a stale revision, no leader key, a leader key without a key
    expect(await same((s, i = sides().indexOf(s)) => proclaimCall(s, { ...won[i].leader, rev: 1n }, 'x'))).toBe('UNKNOWN: election: not leader');
    expect(await same((s) => proclaimCall(s, undefined, 'x'))).toBe('UNKNOWN: "leader" field must be provided');
    expect(await same((s) => resignCall(s, undefined))).toBe('UNKNOWN: "leader" field must be provided');
    expect(await same((s) => proclaimCall(s, { name: b('el'), key: Buffer.alloc(0), rev: 0n, lease: 0x400n }, 'x'))).toBe('UNKNOWN: etcdserver: key is not provided');
    // a resignation with a stale revision deletes nothing; the real one hands over to the waiting campaign
    expect(await same((s, i = sides().indexOf(s)) => resignCall(s, { ...won[i].leader, rev: 1n }))).toEqual({ revision: expect.any(BigInt) });
    expect(await same((s, i = sides().indexOf(s)) => resignCall(s, won[i].leader))).toEqual({ revision: expect.any(BigInt) });
    const next = await Promise.all(second.map((w) => w.done));
    expect(next[1]).toEqual(next[0]);
    expect(next[1]).toMatchObject({ leader: { key: 'el/500', lease: 0x500n } });
    expect(await same((s) => leaderCall(s, 'el'))).toMatchObject({ kv: { key: 'el/500', value: 'w1' } });
    // the observer saw every leader and value in order, with the same headers
    await Promise.all(observed.map((o) => eventually('the observer to see the second leader', async () => (o.out.length >= 4 ? true : undefined))));
    for (const o of observed) o.stream.cancel();
    // the same keys and values in the same order; each header at or past its key's revision (a response caught up
    // from history has the store's revision then, and when a watcher catches up is each server's own timing)
    type Seen = { revision: bigint; kv: { modRevision: bigint } };
    for (const o of observed) for (const r of o.out as Seen[]) expect(r.revision).toBeGreaterThanOrEqual(r.kv.modRevision);
    expect(observed[1].out.map((r) => (r as Seen).kv)).toEqual(observed[0].out.map((r) => (r as Seen).kv));
    expect(observed[1].out.map((r) => (r as { kv: { key: string; value: string } }).kv)).toMatchObject([
      { key: 'el/400', value: 'v1' }, { key: 'el/400', value: 'v2' }, { key: 'el/400', value: 'v3' }, { key: 'el/500', value: 'w1' },
    ]);
    // an observer of an election with a leader starts from it; a campaign without a lease gets one from the server
    const fresh = await same((s) => campaignCall(s, 'el2', 0n, 'z').done);
    expect(fresh).toMatchObject({ leader: { name: 'el2', lease: expect.stringMatching(/^lease#/) } });
  });

  test('auth: every request of the recipes is the caller\'s', async () => {
    const authCall = (s: Side, m: string, req: unknown, md?: grpc.Metadata) =>
      call(s, s.auth, (s.auth as unknown as Record<string, Unary<unknown>>)[m], req, md).raw;
    const setup = async (s: Side): Promise<void> => {
      await authCall(s, 'userAdd', { name: 'root', password: 'rootpw', options: { noPassword: false } });
      await authCall(s, 'userGrantRole', { user: 'root', role: 'root' });
      await authCall(s, 'userAdd', { name: 'u', password: 'upw', options: { noPassword: false } });
      await authCall(s, 'roleAdd', { name: 'r' });
      await authCall(s, 'roleGrantPermission', { name: 'r', perm: { permType: Permission_Type.READWRITE, key: b('mine'), rangeEnd: b('minf') } });
      await authCall(s, 'userGrantRole', { user: 'u', role: 'r' });
      expect(await authCall(s, 'authEnable', {})).toMatchObject({ header: expect.anything() });
    };
    await Promise.all(sides().map(setup));
    const tokens = await Promise.all(sides().map(async (s) => {
      const r = (await authCall(s, 'authenticate', { name: 'u', password: 'upw' })) as { token: string };
      const md = new grpc.Metadata();
      md.set('token', r.token);
      return md;
    }));
    const md = (s: Side) => tokens[sides().indexOf(s)];
    expect(await same((s) => lockCall(s, 'mine', 0x100n, md(s)).done)).toMatchObject({ key: 'mine/100' });
    expect(await same((s) => lockCall(s, 'yours', 0x100n, md(s)).done)).toBe('UNKNOWN: etcdserver: permission denied');
    expect(await same((s) => lockCall(s, 'mine', 0x100n).done)).toBe('UNKNOWN: etcdserver: user name is empty');
    const bad = new grpc.Metadata();
    bad.set('token', 'nonsense');
    expect(await same((s) => lockCall(s, 'mine', 0x100n, bad).done)).toBe('UNKNOWN: etcdserver: invalid auth token');
    expect(await same((s) => campaignCall(s, 'yours', 0x100n, 'v', md(s)).done)).toBe('UNKNOWN: etcdserver: permission denied');
    expect(await same((s) => leaderCall(s, 'yours', md(s)))).toBe('UNKNOWN: etcdserver: permission denied');
    expect(await same((s) => campaignCall(s, 'mine-el', 0x300n, 'v', md(s)).done)).toMatchObject({ leader: { key: 'mine-el/300' } });
    // an observer that may not read the election: its stream just ends
    const ends = await Promise.all(sides().map((s) => new Promise<unknown>((resolve) => {
      const out: unknown[] = [];
      const stream = s.election.observe(LeaderRequest.fromPartial({ name: b('yours') }), md(s));
      stream.on('data', (r) => out.push(r));
      stream.on('error', (err: grpc.ServiceError) => resolve(`${grpc.status[err.code]}: ${err.details}`));
      stream.on('end', () => resolve(out));
    })));
    expect(ends[1]).toEqual(ends[0]);
    expect(ends[1]).toEqual([]);
  });

  test('the lease list: the servers granted the same leases for the callers that named none', async () => {
    const root = await Promise.all(sides().map(async (s) => {
      const r = (await call(s, s.auth, s.auth.authenticate, { name: 'root', password: 'rootpw' }).raw) as { token: string };
      const m = new grpc.Metadata();
      m.set('token', r.token);
      return m;
    }));
    const lists = await Promise.all(sides().map((s, i) => call(s, s.lease, s.lease.leaseLeases, LeaseLeasesRequest.fromPartial({}), root[i]).raw));
    const labelled = lists.map((l, i) => (l as { leases: { ID: bigint }[] }).leases.map((x) => label(sides()[i], x.ID)).map(String).sort());
    expect(labelled[1]).toEqual(labelled[0]);
  });
});
