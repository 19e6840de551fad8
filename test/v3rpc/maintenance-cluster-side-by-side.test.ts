/**
 * The Maintenance and Cluster services side by side with Debian's etcd 3.4.23: the same requests, in the same order,
 * to a fresh Debian etcd and a fresh member of ours (both with a small --quota-backend-bytes); answers compared
 * field by field once each server's member and cluster IDs (and what is the backend's own: sizes, hashes, the version)
 * are put aside, and errors by gRPC code and message.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AlarmRequest, AlarmRequest_AlarmAction as Action, AlarmType, ClusterClient, DefragmentRequest, HashKVRequest, HashRequest, KVClient,
  MaintenanceClient, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
  MoveLeaderRequest, PutRequest, DeleteRangeRequest, RangeRequest, CompactionRequest, SnapshotRequest, SnapshotResponse, StatusRequest,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { decodeKeyValue } from '../../server/etcdserver/etcd-backend';
import { BoltReader } from '../../server/mvcc/bbolt/reader';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(120_000);

const QUOTA = 1024 * 1024;

interface Side {
  name: string;
  proc: RunningEtcd;
  kv: KVClient;
  m: MaintenanceClient;
  c: ClusterClient;
  member: bigint;
  cluster: bigint;
}

let dir: string;
let sides: Side[] = [];

async function side(name: string, proc: RunningEtcd): Promise<Side> {
  const target = new URL(proc.clientURL).host;
  const creds = grpc.credentials.createInsecure();
  const s: Side = { name, proc, kv: new KVClient(target, creds), m: new MaintenanceClient(target, creds), c: new ClusterClient(target, creds), member: 0n, cluster: 0n };
  const list = await call(s.c, s.c.memberList, MemberListRequest.fromPartial({}));
  s.member = list.header!.memberId;
  s.cluster = list.header!.clusterId;
  return s;
}

/** A unary call as a promise (the generated clients' methods are overloaded, so the answer is typed by the caller). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function call<Res = any>(client: grpc.Client, m: (...args: any[]) => grpc.ClientUnaryCall, req: unknown): Promise<Res> {
  return new Promise((resolve, reject) => m.call(client, req, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

/** A response as compared: bigints as text, the side's IDs and URLs named, the fields given replaced by their type. */
function norm(s: Side, v: unknown, own: string[] = []): unknown {
  return JSON.parse(JSON.stringify(v, (k, x) => {
    if (own.includes(k) && x !== undefined) return `<${typeof x}>`;
    // Members come sorted by ID, which differ between the two: by peer URL instead.
    if (k === 'members' && Array.isArray(x)) return [...x].sort((a, b) => (String(a.peerURLs) < String(b.peerURLs) ? -1 : 1));
    if (typeof x === 'bigint') return x === s.member ? '<MEMBER>' : x === s.cluster ? '<CLUSTER>' : x.toString();
    if (typeof x === 'string') return x.split(s.member.toString()).join('<MEMBER>').split(s.proc.clientURL).join('<CLIENT>').split(s.proc.peerURL).join('<PEER>');
    return x;
  }));
}

/** The same call on both sides: normalized answers, or `code: message` of the refusals. */
async function both<Res>(fn: (s: Side) => Promise<Res>, own: string[] = []): Promise<unknown[]> {
  return Promise.all(sides.map(async (s) => {
    try {
      return norm(s, await fn(s), own);
    } catch (e) {
      const err = e as grpc.ServiceError;
      return `${grpc.status[err.code]}: ${err.details}`;
    }
  }));
}

async function same<Res>(fn: (s: Side) => Promise<Res>, own: string[] = []): Promise<unknown> {
  const [ours, real] = await both(fn, own);
  expect(ours).toEqual(real);
  return ours;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'maint-sbs-'));
  const args = ['--quota-backend-bytes', String(QUOTA)];
  const [ours, real] = await Promise.all([startOurEtcd(path.join(dir, 'ours'), args), startRealEtcd(path.join(dir, 'real'), args)]);
  sides = [await side('ours', ours), await side('etcd', real)];
});

afterAll(async () => {
  for (const s of sides) {
    s.kv.close();
    s.m.close();
    s.c.close();
    await s.proc.stop();
  }
  rmSync(dir, { recursive: true, force: true });
});

const b = (x: string) => Buffer.from(x);
const put = (s: Side, k: string, v: string | Buffer) => call(s.kv, s.kv.put, PutRequest.fromPartial({ key: b(k), value: typeof v === 'string' ? b(v) : v }));
const alarm = (s: Side, action: Action, type = AlarmType.NOSPACE, memberID = s.member) => call(s.m, s.m.alarm, AlarmRequest.fromPartial({ action, alarm: type, memberID }));

test('Status: the member leads, its indexes and term, no errors; the backend\'s sizes and version are its own', async () => {
  for (let i = 0; i < 3; i++) await Promise.all(sides.map((s) => put(s, `k${i}`, 'v')));
  const st = await same((s) => call(s.m, s.m.status, StatusRequest.fromPartial({})), ['version', 'dbSize', 'dbSizeInUse', 'raftIndex', 'raftAppliedIndex']);
  expect(st).toMatchObject({ header: { clusterId: '<CLUSTER>', memberId: '<MEMBER>', revision: '4', raftTerm: '2' }, leader: '<MEMBER>', raftTerm: '2', errors: [], isLearner: false });
  for (const s of sides) {
    const r = await call(s.m, s.m.status, StatusRequest.fromPartial({}));
    expect(r.raftAppliedIndex).toBe(r.raftIndex);
    expect(r.dbSizeInUse).toBeLessThanOrEqual(r.dbSize);
    expect(r.dbSize).toBeGreaterThan(0n);
  }
});

test('Hash and HashKV: headers at the current revision, compaction revisions, and errors for compacted and future revisions', async () => {
  await same((s) => call(s.m, s.m.hash, HashRequest.fromPartial({})), ['hash']);
  await same((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 0n })), ['hash']);
  await same((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 2n })), ['hash']);
  await same((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 99n })));
  await same((s) => call(s.kv, s.kv.compact, CompactionRequest.fromPartial({ revision: 3n, physical: true })));
  await same((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 2n })));
  await same((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 3n })), ['hash']);
  // The hash moves with the data, the same way on both.
  const [o1, r1] = sides.map((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 4n })));
  const [o2, r2] = sides.map((s) => call(s.m, s.m.hashKv, HashKVRequest.fromPartial({ revision: 4n })));
  expect([(await o1).hash === (await o2).hash, (await r1).hash === (await r2).hash]).toEqual([true, true]);
});

test('Alarm: GET, ACTIVATE, DEACTIVATE through the log, answered without a header; a NOSPACE alarm refuses puts, not deletes', async () => {
  await same((s) => alarm(s, Action.GET, AlarmType.NONE));
  await same((s) => alarm(s, Action.DEACTIVATE));
  await same((s) => alarm(s, Action.ACTIVATE));
  await same((s) => alarm(s, Action.ACTIVATE)); // again: the alarm that is there
  await same((s) => alarm(s, Action.GET, AlarmType.NOSPACE));
  await same((s) => alarm(s, Action.GET, AlarmType.CORRUPT));
  const st = await same((s) => call(s.m, s.m.status, StatusRequest.fromPartial({})), ['version', 'dbSize', 'dbSizeInUse', 'raftIndex', 'raftAppliedIndex']);
  expect((st as { errors: string[] }).errors).toEqual(['memberID:<MEMBER> alarm:NOSPACE ']);
  await same((s) => put(s, 'refused', 'x'));
  await same((s) => call(s.kv, s.kv.deleteRange, DeleteRangeRequest.fromPartial({ key: b('k0') })));
  await same((s) => call(s.kv, s.kv.range, RangeRequest.fromPartial({ key: b('k1') })));
  await same((s) => alarm(s, Action.DEACTIVATE));
  await same((s) => alarm(s, Action.GET, AlarmType.NONE));
  await same((s) => put(s, 'allowed', 'x'));
  // Another member's alarm.
  await same((s) => alarm(s, Action.ACTIVATE, AlarmType.NOSPACE, 12345n));
  await same((s) => alarm(s, Action.DEACTIVATE, AlarmType.NOSPACE, 12345n));
  // An action etcd does not know: etcd 3.4.23 applies it as nothing and then panics encoding its nil answer
  // (the process ends); ours answers an empty response and goes on.
  expect(await alarm(sides[0], 7 as Action)).toEqual({ header: undefined, alarms: [] });
  expect(norm(sides[0], await alarm(sides[0], Action.GET, AlarmType.NONE))).toEqual({ alarms: [] });
});

test('--quota-backend-bytes: a put past the quota raises NOSPACE and is refused; compaction, defragment and disarm let writes in again', async () => {
  const value = Buffer.alloc(100 * 1024, 'x');
  const outcomes = await Promise.all(sides.map(async (s) => {
    // etcd sees its size grow at each backend commit (every 100 ms): quick puts may pass the quota before it does.
    for (let i = 0; i < 400; i++) {
      try {
        await put(s, `big${i}`, value);
      } catch (e) {
        return { refused: `${grpc.status[(e as grpc.ServiceError).code]}: ${(e as grpc.ServiceError).details}`, alarms: norm(s, await alarm(s, Action.GET, AlarmType.NONE)) };
      }
    }
    return { refused: 'never' };
  }));
  expect(outcomes[0]).toEqual(outcomes[1]);
  expect(outcomes[0]).toEqual({ refused: 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded', alarms: { alarms: [{ memberID: '<MEMBER>', alarm: AlarmType.NOSPACE }] } });
  for (const s of sides) {
    const del = await call(s.kv, s.kv.deleteRange, DeleteRangeRequest.fromPartial({ key: b('big'), rangeEnd: b('bih') }));
    await call(s.kv, s.kv.compact, CompactionRequest.fromPartial({ revision: del.header!.revision, physical: true }));
  }
  await same((s) => call(s.m, s.m.defragment, DefragmentRequest.fromPartial({})));
  await same((s) => put(s, 'still', 'refused'));
  await same((s) => alarm(s, Action.DEACTIVATE));
  await same((s) => put(s, 'after', 'disarm'), ['header']);
  for (const s of sides) expect((await call(s.m, s.m.status, StatusRequest.fromPartial({}))).dbSize).toBeLessThan(BigInt(QUOTA));
});

test('Snapshot: 32 KiB chunks counting down the bytes remaining, then the SHA-256 of them all; the same buckets and entries', async () => {
  const files: Record<string, string> = {};
  for (const s of sides) {
    const msgs: SnapshotResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      const st = s.m.snapshot(SnapshotRequest.fromPartial({}));
      st.on('data', (r: SnapshotResponse) => msgs.push(r));
      st.on('end', resolve);
      st.on('error', reject);
    });
    const data = msgs.slice(0, -1);
    const total = data.reduce((n, r) => n + r.blob.length, 0);
    expect([s.name, total % 4096]).toEqual([s.name, 0]);
    let left = total;
    for (const r of data) {
      expect(r.blob.length).toBe(Math.min(32 * 1024, left));
      left -= r.blob.length;
      expect(r.remainingBytes).toBe(BigInt(left));
      expect(r.header).toBeUndefined();
    }
    const sha = createHash('sha256').update(Buffer.concat(data.map((r) => r.blob))).digest();
    expect(msgs[msgs.length - 1]).toEqual({ header: undefined, remainingBytes: 0n, blob: sha });
    files[s.name] = path.join(dir, `${s.name}.snapshot.db`);
    writeFileSync(files[s.name], Buffer.concat(data.map((r) => r.blob)));
  }
  // Both are etcd's backend: the same buckets; the leases, alarms, auth and cluster entries byte for byte (the same
  // requests made them); the same live keys and values in the key bucket (their revisions differ: the quota test
  // wrote until each backend was full); meta and members hold each member's own.
  const read = (file: string) => {
    const r = BoltReader.open(file);
    try {
      const root = r.root();
      return [...root.entries()].map((b) => {
        const entries = [...root.open(b).entries()];
        if (`${b.key}` === 'key') {
          const live = new Map<string, string>();
          for (const e of entries) {
            const kv = decodeKeyValue(e.value, 'test');
            if (e.key.length === 18) live.delete(`${kv.key}`);
            else live.set(`${kv.key}`, kv.value.toString('hex'));
          }
          return [`${b.key}`, [...live]];
        }
        const own = ['meta', 'members'].includes(`${b.key}`);
        return [`${b.key}`, own ? [] : entries.map((e) => [e.key.toString('hex'), e.value.toString('hex')])];
      });
    } finally {
      r.close();
    }
  };
  const [ours, real] = sides.map((s) => read(files[s.name]));
  expect(ours).toEqual(real);
  expect(ours.map(([name]) => name)).toEqual(['alarm', 'auth', 'authRoles', 'authUsers', 'cluster', 'key', 'lease', 'members', 'members_removed', 'meta']);
});

test('MoveLeader: to itself is done, to an unknown member is refused', async () => {
  await same((s) => call(s.m, s.m.moveLeader, MoveLeaderRequest.fromPartial({ targetID: s.member })));
  await same((s) => call(s.m, s.m.moveLeader, MoveLeaderRequest.fromPartial({ targetID: 42n })));
});

test('Cluster: list, and refusals of bad URLs, unknown members, promoting a voter; a learner added, not promotable until in sync, removed', async () => {
  await same((s) => call(s.c, s.c.memberList, MemberListRequest.fromPartial({})));
  await same((s) => call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: ['ftp://x:1'] })));
  await same((s) => call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: [] })));
  await same((s) => call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: ['http://127.0.0.1:1/path'] })));
  await same((s) => call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: [new URL(s.proc.peerURL).href.replace(/\/$/, '')] })));
  await same((s) => call(s.c, s.c.memberRemove, MemberRemoveRequest.fromPartial({ ID: 42n })));
  await same((s) => call(s.c, s.c.memberUpdate, MemberUpdateRequest.fromPartial({ ID: 42n, peerURLs: ['http://127.0.0.1:2'] })));
  await same((s) => call(s.c, s.c.memberPromote, MemberPromoteRequest.fromPartial({ ID: 42n })));
  await same((s) => call(s.c, s.c.memberPromote, MemberPromoteRequest.fromPartial({ ID: s.member })));
  const learners = new Map<string, bigint>();
  await same(async (s) => {
    const r = await call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: ['http://127.0.0.1:3'], isLearner: true }));
    learners.set(s.name, r.member!.ID);
    return r;
  }, ['ID']);
  await same((s) => call(s.c, s.c.memberAdd, MemberAddRequest.fromPartial({ peerURLs: ['http://127.0.0.1:4'], isLearner: true })));
  await same((s) => call(s.c, s.c.memberList, MemberListRequest.fromPartial({})), ['ID']);
  await same((s) => call(s.c, s.c.memberPromote, MemberPromoteRequest.fromPartial({ ID: learners.get(s.name)! })));
  await same((s) => call(s.c, s.c.memberUpdate, MemberUpdateRequest.fromPartial({ ID: learners.get(s.name)!, peerURLs: [s.proc.peerURL] })));
  // Updating a learner's peer URLs: etcd 3.4 replaces its Raft attributes whole, so the member list says it is no
  // longer a learner while Raft still has it as one (a bug etcd 3.5 fixed); ours keeps it a learner.
  const [ours, real] = await both((s) => call(s.c, s.c.memberUpdate, MemberUpdateRequest.fromPartial({ ID: learners.get(s.name)!, peerURLs: ['http://127.0.0.1:5'] })), ['ID']);
  const learnerOf = (r: unknown) => (r as { members: { peerURLs: string[]; isLearner: boolean }[] }).members.find((m) => m.peerURLs[0] === 'http://127.0.0.1:5');
  expect([learnerOf(ours)?.isLearner, learnerOf(real)?.isLearner]).toEqual([true, false]);
  expect({ ...(ours as object), members: [] }).toEqual({ ...(real as object), members: [] });
  await same((s) => call(s.c, s.c.memberRemove, MemberRemoveRequest.fromPartial({ ID: learners.get(s.name)! })));
  await same((s) => call(s.c, s.c.memberRemove, MemberRemoveRequest.fromPartial({ ID: learners.get(s.name)! })));
  await same((s) => call(s.c, s.c.memberList, MemberListRequest.fromPartial({})));
});
