/**
 * What Kubernetes' apiserver does to etcd (k8s.io/apiserver/pkg/storage/etcd3: store.go, compact.go, its lease
 * manager), done against Debian's etcd 3.4 and ours, each a fresh member, with the same results: objects created
 * by a Txn on mod_revision = 0 (AlreadyExists answered by the else branch), updated by a Txn comparing mod_revision
 * (a stale one gets the current object back and the update is retried from it), deleted the same way; lists by
 * pages with limit and a continue key, every page at the first page's revision (a write between pages is not seen);
 * a watch of the prefix from the list's revision + 1 with prev_kv and progress notifications, which sees that write
 * and everything after, then idle progress notifications at the store's revision; events written with a lease,
 * deleted with it (DELETE events with their previous values); the compactor's Txn on its compact_rev_key, a
 * stale compactor refused, compaction; a list or a watch at a compacted revision.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  Compare, Compare_CompareResult, Compare_CompareTarget, CompactionRequest, LeaseClient, LeaseGrantRequest, LeaseRevokeRequest,
  LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, RangeRequest, RequestOp, TxnRequest, type TxnResponse, type WatchResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import type { KeyValue } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';
import { connect, describe as describeResponse, TestWatchStream, type WatchConn } from '../support/watch-client';

jest.setTimeout(120_000);

const b = (s: string) => Buffer.from(s);
const PODS = '/registry/pods/';
const EVENTS = '/registry/events/';
/** k8s.io/apiserver's compactRevKey */
const COMPACT_KEY = 'compact_rev_key';
/** the lease the "apiserver" writes its events with (given, so that it is the same on both) */
const EVENT_LEASE = 0x7e57n;

/** clientv3.GetPrefixRangeEnd */
function prefixEnd(p: string): Buffer {
  const e = b(p);
  e[e.length - 1]++;
  return e;
}

const modRev = (key: string, rev: bigint): Compare => Compare.fromPartial({ key: b(key), target: Compare_CompareTarget.MOD, result: Compare_CompareResult.EQUAL, modRevision: rev });
const put = (key: string, value: string, lease = 0n): RequestOp => RequestOp.fromPartial({ requestPut: { key: b(key), value: b(value), lease } });
const get = (key: string): RequestOp => RequestOp.fromPartial({ requestRange: { key: b(key) } });

const kvLine = (kv: KeyValue) => `${kv.key}=${kv.value} c${kv.createRevision} m${kv.modRevision} v${kv.version}${kv.lease ? ` l${kv.lease}` : ''}`;

interface Side {
  name: string;
  etcd: RunningEtcd;
  conn: WatchConn;
  lease: LeaseClient;
}

/** A progress notification: no events, neither created nor canceled. */
const isProgress = (r: WatchResponse) => !r.events.length && !r.created && !r.canceled && r.compactRevision === 0n;

/** The apiserver's storage calls against one member; what each answered, as lines. */
async function apiserver(s: Side): Promise<{ log: string[]; watch: TestWatchStream }> {
  const log: string[] = [];
  const kv = s.conn.kv;
  const txn = (r: Partial<TxnRequest>): Promise<TxnResponse> => kv.txn(TxnRequest.fromPartial(r));
  const lease = <Req, Res>(m: (req: Req, cb: (e: grpc.ServiceError | null, r?: Res) => void) => unknown, req: Req) =>
    new Promise<Res>((resolve, reject) => m.call(s.lease, req, (e, r) => (e ? reject(e) : resolve(r!))));
  const failed = async (p: Promise<unknown>) => p.then(() => 'no error', (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);

  // Create: only if the key has never been written (mod_revision 0); else AlreadyExists from the else branch's read.
  const create = async (key: string, value: string, leaseId = 0n): Promise<void> => {
    const r = await txn({ compare: [modRev(key, 0n)], success: [put(key, value, leaseId)], failure: [get(key)] });
    log.push(`create ${key}: ${r.succeeded ? 'created' : `exists ${kvLine(r.responses[0].responseRange!.kvs[0])}`} @${r.header!.revision}`);
  };
  for (const n of ['a', 'b', 'c', 'd', 'e']) await create(`${PODS}${n}`, `pod-${n}-v1`);
  await create(`${PODS}a`, 'again');

  // GuaranteedUpdate: from a cached (stale) object, the Txn fails and answers the current one; retried from it.
  const update = async (key: string, cached: { rev: bigint; value: string }, value: (cur: string) => string): Promise<void> => {
    let rev = cached.rev;
    let cur = cached.value;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await txn({ compare: [modRev(key, rev)], success: [put(key, value(cur))], failure: [get(key)] });
      if (r.succeeded) {
        log.push(`update ${key}: attempt ${attempt} @${r.header!.revision}`);
        return;
      }
      const now = r.responses[0].responseRange!.kvs[0];
      log.push(`update ${key}: conflict at ${rev}, current ${kvLine(now)}`);
      rev = now.modRevision;
      cur = now.value.toString();
    }
    throw new Error('update did not converge');
  };
  await update(`${PODS}b`, { rev: 2n, value: 'stale' }, (cur) => `${cur}+status`);
  await update(`${PODS}b`, { rev: 7n, value: 'pod-b-v1+status' }, (cur) => `${cur}+label`);

  // List in pages of 2 at the first page's revision; a write between pages is not in the list.
  const list: string[] = [];
  let listRev = 0n;
  let key = b(PODS);
  for (let page = 1; ; page++) {
    const r = await kv.range(RangeRequest.fromPartial({ key, rangeEnd: prefixEnd(PODS), limit: 2n, revision: listRev }));
    if (page === 1) listRev = r.header!.revision;
    list.push(`page ${page} @${r.header!.revision}: ${r.kvs.map(kvLine).join(', ')} more=${r.more} count=${r.count}`);
    if (page === 1) await create(`${PODS}f`, 'pod-f-v1');
    if (!r.more) break;
    key = Buffer.concat([r.kvs[r.kvs.length - 1].key, Buffer.from([0])]);
  }
  log.push(...list);

  // Watch the prefix from the list's revision + 1, with prev_kv and progress notifications.
  const watch = new TestWatchStream(s.conn.watchClient);
  watch.create({ key: b('/registry/'), rangeEnd: prefixEnd('/registry/'), startRevision: listRev + 1n, prevKv: true, progressNotify: true });
  // it catches up with the write made while listing first (etcd does that every 100 ms: before it has, a compaction
  // past the watch's start would cancel it, as a compaction every few minutes in Kubernetes never does)
  await watch.until((got) => got.some((r) => r.events.length > 0), 'the watch to catch up');

  // Events, with a lease of their own (as the apiserver's lease manager attaches them); a delete with a precondition.
  await lease(s.lease.leaseGrant, LeaseGrantRequest.fromPartial({ ID: EVENT_LEASE, TTL: 3600n }));
  await create(`${EVENTS}e1`, 'event-1', EVENT_LEASE);
  await create(`${EVENTS}e2`, 'event-2', EVENT_LEASE);
  const ttl = await lease<LeaseTimeToLiveRequest, LeaseTimeToLiveResponse>(s.lease.leaseTimeToLive, LeaseTimeToLiveRequest.fromPartial({ ID: EVENT_LEASE, keys: true }));
  log.push(`lease keys: ${ttl.keys.map(String).sort().join(', ')} granted ${ttl.grantedTTL}`);
  const c = (await kv.range(RangeRequest.fromPartial({ key: b(`${PODS}c`) }))).kvs[0];
  for (const rev of [c.modRevision + 1n, c.modRevision]) {
    const r = await txn({ compare: [modRev(`${PODS}c`, rev)], success: [RequestOp.fromPartial({ requestDeleteRange: { key: b(`${PODS}c`), prevKv: true } })], failure: [get(`${PODS}c`)] });
    log.push(`delete ${PODS}c if m${rev}: ${r.succeeded ? `deleted ${r.responses[0].responseDeleteRange!.prevKvs.map(kvLine)}` : 'precondition failed'} @${r.header!.revision}`);
  }
  const revoked = await lease<LeaseRevokeRequest, { header?: { revision: bigint } }>(s.lease.leaseRevoke, LeaseRevokeRequest.fromPartial({ ID: EVENT_LEASE }));
  log.push(`events' lease revoked @${revoked.header!.revision}`);

  // The compactor: the first one to bump compact_rev_key's version compacts; one with a stale version does not.
  const compactor = async (t: bigint, rev: bigint): Promise<bigint> => {
    const r = await txn({
      compare: [Compare.fromPartial({ key: b(COMPACT_KEY), target: Compare_CompareTarget.VERSION, result: Compare_CompareResult.EQUAL, version: t })],
      success: [put(COMPACT_KEY, String(rev))],
      failure: [get(COMPACT_KEY)],
    });
    if (!r.succeeded) {
      const now = r.responses[0].responseRange!.kvs[0];
      log.push(`compactor t=${t}: lost to another, version ${now.version} value ${now.value} @${r.header!.revision}`);
      return now.version;
    }
    await kv.compact(CompactionRequest.fromPartial({ revision: rev, physical: true }));
    log.push(`compactor t=${t}: compacted at ${rev} @${r.header!.revision}`);
    return t + 1n;
  };
  const t1 = await compactor(0n, listRev);
  await compactor(0n, listRev + 1n);
  await compactor(t1, listRev + 2n);
  log.push(`list at the compacted ${listRev}: ${await failed(kv.range(RangeRequest.fromPartial({ key: b(PODS), rangeEnd: prefixEnd(PODS), limit: 2n, revision: listRev })))}`);
  const cur = (await kv.range(RangeRequest.fromPartial({ key: b(PODS), rangeEnd: prefixEnd(PODS) }))).header!.revision;
  log.push(`store at ${cur}`);
  // A watch from a compacted revision: told the compaction, and canceled (a reflector lists again).
  const old = new TestWatchStream(s.conn.watchClient);
  old.create({ key: b(PODS), rangeEnd: prefixEnd(PODS), startRevision: listRev, prevKv: true });
  await old.until((got) => got.some((r) => r.compactRevision !== 0n), 'the compacted watch');
  log.push(...old.got.map(describeResponse).map((l) => `old watch: ${l}`));
  old.close();
  // the prefix watch saw every change from the list's revision on: its events, then idle progress at the store's revision
  await watch.until((got) => got.filter((r) => r.events.length).flatMap((r) => r.events).length >= 6, 'the watch to see every change');
  await watch.until((got) => got.some((r) => isProgress(r) && r.header!.revision === cur), 'an idle progress notification at the store\'s revision');
  log.push(...watch.got.filter((r) => !isProgress(r)).map(describeResponse).map((l) => `watch: ${l}`));
  return { log, watch };
}

let dir: string;
let sides: Side[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-storage-'));
  const args = ['--experimental-watch-progress-notify-interval=300ms'];
  const [real, ours] = await Promise.all([startRealEtcd(path.join(dir, 'etcd'), args), startOurEtcd(path.join(dir, 'ours'), args)]);
  sides = [['etcd', real], ['ours', ours]].map(([name, etcd]) => {
    const conn = connect((etcd as RunningEtcd).clientURL);
    const lease = new LeaseClient((etcd as RunningEtcd).clientURL.replace('http://', ''), grpc.credentials.createInsecure());
    return { name: name as string, etcd: etcd as RunningEtcd, conn, lease };
  });
});

afterAll(async () => {
  for (const s of sides) {
    s.conn.close();
    s.lease.close();
  }
  await Promise.all(sides.map((s) => s.etcd.stop()));
  rmSync(dir, { recursive: true, force: true });
});

test("a Kubernetes apiserver's storage calls answer the same on Debian's etcd and ours", async () => {
  const [theirs, ours] = await Promise.all(sides.map(apiserver));
  try {
    expect(ours.log).toEqual(theirs.log);
    // what the run went through, on the reference
    expect(theirs.log).toEqual(expect.arrayContaining([
      `create ${PODS}a: exists ${PODS}a=pod-a-v1 c2 m2 v1 @6`,
      `update ${PODS}b: conflict at 2, current ${PODS}b=pod-b-v1 c3 m3 v1`,
      `update ${PODS}b: attempt 2 @7`,
      `page 1 @8: ${PODS}a=pod-a-v1 c2 m2 v1, ${PODS}b=pod-b-v1+status+label c3 m8 v3 more=true count=5`,
      // at the first page's revision: without f, created meanwhile (the header says the store's revision)
      `page 3 @9: ${PODS}e=pod-e-v1 c6 m6 v1 more=false count=1`,
      `delete ${PODS}c if m5: precondition failed @11`,
      `compactor t=0: compacted at 8 @14`,
      `compactor t=0: lost to another, version 1 value 8 @14`,
      `compactor t=1: compacted at 10 @15`,
      'old watch: id=0 rev=0 canceled compact=10',
      `list at the compacted 8: OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted`,
    ]));
    expect(theirs.log.filter((l) => l.startsWith('watch: ')).join('\n')).toContain(`DELETE ${PODS}c= c0 m12 v0 prev(${PODS}c=pod-c-v1 c4 m4 v1)`);
  } finally {
    for (const r of [theirs, ours]) r.watch.close();
  }
});
