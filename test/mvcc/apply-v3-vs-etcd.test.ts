/**
 * The v3 applier side by side with Debian's etcd 3.4: the same Put/Range/DeleteRange/Txn/Compact sequence goes to
 * etcd over gRPC and to our applier; responses (and errors) must match field for field, revisions included (both
 * start at revision 1, the first write is revision 2), with the header's cluster, member and term left out.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  CompactionRequest,
  CompactionResponse,
  Compare_CompareResult as R,
  Compare_CompareTarget as T,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeRequest_SortOrder as Order,
  RangeRequest_SortTarget as By,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { toGRPCError } from '../../server/api/v3rpc/errors';
import { V3Applier } from '../../server/etcdserver/apply-v3';
import { MvccStore } from '../../server/mvcc/store';
import { RunningEtcd, startRealEtcd } from '../support/real-etcd';

const b = (s: string) => Buffer.from(s);
const ALL = Buffer.from([0]);

type Kind = 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact';
const codecs: Record<Kind, [any, any]> = {
  Range: [RangeRequest, RangeResponse],
  Put: [PutRequest, PutResponse],
  DeleteRange: [DeleteRangeRequest, DeleteRangeResponse],
  Txn: [TxnRequest, TxnResponse],
  Compact: [CompactionRequest, CompactionResponse],
};


/** Header ids dropped, numbers as numbers, bytes as text: what must be equal. */
function normalize(v: any): any {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('latin1');
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map((x) => normalize(x));
  if (v && typeof v === 'object') {
    const o: any = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'clusterId' || k === 'memberId' || k === 'raftTerm' || x === undefined) continue;
      o[k] = normalize(x);
    }
    return o;
  }
  return v;
}

let etcd: RunningEtcd;
let client: grpc.Client;
let dir: string;
let store: MvccStore;
let applier: V3Applier;
let index = 0;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'apply-v3-'));
  etcd = await startRealEtcd(path.join(dir, 'etcd'));
  client = new grpc.Client(etcd.clientURL.replace('http://', ''), grpc.credentials.createInsecure());
  store = MvccStore.open(path.join(dir, 'ours'));
  applier = new V3Applier(store);
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function callEtcd(kind: Kind, req: any): Promise<{ resp?: any; err?: string }> {
  const [Req, Resp] = codecs[kind];
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/etcdserverpb.KV/${kind}`,
      (m: any) => Buffer.from(Req.encode(m).finish()),
      (buf: Buffer) => Resp.decode(buf),
      req,
      (err, resp) => resolve(err ? { err: `${err.code} ${err.details}` } : { resp }),
    );
  });
}

async function callOurs(kind: Kind, req: any): Promise<{ resp?: any; err?: string }> {
  try {
    let resp: any;
    if (kind === 'Range') resp = applier.range(req);
    else if (kind === 'Put') resp = applier.put(++index, req);
    else if (kind === 'DeleteRange') resp = applier.deleteRange(++index, req);
    else if (kind === 'Txn') resp = applier.txn(++index, req);
    else {
      const c = applier.compaction(++index, req);
      if (req.physical) await c.physical;
      resp = c.resp;
    }
    // what goes on the wire: encode and decode, as etcd's answer was
    const [, Resp] = codecs[kind];
    return { resp: Resp.decode(Resp.encode(resp).finish()) };
  } catch (e) {
    return { err: `${toGRPCError(e).code} ${toGRPCError(e).details}` }; // as the service layer maps it
  }
}

test('the same requests get the same answers from etcd and from our applier', async () => {
  // both sides are new stores at revision 1: revisions in requests are base + n, the nth write's revision
  const base = 1;
  const steps: [Kind, (base: number) => any][] = [
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, revision: 1n })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), revision: 2n })],
    ['Compact', () => CompactionRequest.fromPartial({ revision: 0n })],
    ['Compact', () => CompactionRequest.fromPartial({ revision: 2n })],
    ['Compact', () => CompactionRequest.fromPartial({ revision: 1n, physical: true })],
    ['Compact', () => CompactionRequest.fromPartial({ revision: 1n })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, revision: 1n })],
    ['Put', () => PutRequest.fromPartial({ key: b('a'), value: b('1') })],
    ['Put', () => PutRequest.fromPartial({ key: b('a'), value: b('2'), prevKv: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('b'), value: b('zz') })],
    ['Put', () => PutRequest.fromPartial({ key: b('c'), value: b('y') })],
    ['Put', () => PutRequest.fromPartial({ key: b('c'), value: b('x'), prevKv: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('d\0e'), value: b('') })],
    ['Put', () => PutRequest.fromPartial({ key: b('a'), value: b('3') })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a') })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, limit: 2n })],
    ['Range', () => RangeRequest.fromPartial({ key: ALL, rangeEnd: ALL, countOnly: true })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: b('d'), keysOnly: true })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, sortOrder: Order.DESCEND, sortTarget: By.MOD })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, sortTarget: By.VERSION, limit: 2n })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, sortOrder: Order.DESCEND, sortTarget: By.VALUE, keysOnly: true })],
    ['Range', () => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, sortOrder: Order.ASCEND, sortTarget: By.CREATE, limit: 1n })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, minModRevision: BigInt(base + 3), maxModRevision: BigInt(base + 5) })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, minCreateRevision: BigInt(base + 2), limit: 1n })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, revision: BigInt(base + 3) })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('c'), revision: BigInt(base + 4) })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), revision: BigInt(base + 100) })],
    ['Range', () => RangeRequest.fromPartial({ key: b('c'), rangeEnd: b('a') })],
    ['DeleteRange', () => DeleteRangeRequest.fromPartial({ key: b('b'), prevKv: true })],
    ['DeleteRange', () => DeleteRangeRequest.fromPartial({ key: b('nothing') })],
    ['DeleteRange', () => DeleteRangeRequest.fromPartial({ key: b('c'), rangeEnd: b('e'), prevKv: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('b'), value: b('again') })],
    ['Put', () => PutRequest.fromPartial({ key: b('b'), lease: 5n })],
    ['Put', () => PutRequest.fromPartial({ key: b('missing'), ignoreValue: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('b'), ignoreValue: true, prevKv: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('b'), value: b('v'), ignoreLease: true })],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          compare: [{ key: b('a'), target: T.VERSION, result: R.EQUAL, version: 3n }],
          success: [
            { requestPut: { key: b('a'), value: b('4'), prevKv: true } },
            { requestRange: { key: b('a') } },
            { requestDeleteRange: { key: b('b') } },
          ],
          failure: [{ requestRange: { key: b('b') } }],
        }),
    ],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          compare: [{ key: b('zz'), target: T.VALUE, result: R.NOT_EQUAL, value: b('q') }],
          success: [{ requestPut: { key: b('s'), value: b('s') } }],
          failure: [
            { requestPut: { key: b('f'), value: b('f') } },
            {
              requestTxn: {
                compare: [{ key: b('zz'), target: T.CREATE, result: R.EQUAL, createRevision: 0n }],
                success: [{ requestRange: { key: b('a'), rangeEnd: ALL } }, { requestPut: { key: b('g'), value: b('g') } }],
              },
            },
          ],
        }),
    ],
    [
      'Txn',
      (base) =>
        TxnRequest.fromPartial({
          compare: [{ key: b('a'), rangeEnd: ALL, target: T.MOD, result: R.LESS, modRevision: BigInt(base + 100) }],
          success: [{ requestRange: { key: b('a'), rangeEnd: ALL, countOnly: true } }],
        }),
    ],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          compare: [{ key: b('a'), rangeEnd: b('g'), target: T.LEASE, result: R.GREATER, lease: 0n }],
          success: [{ requestPut: { key: b('never'), value: b('') } }],
          failure: [{ requestPut: { key: b('h'), value: b('h') } }, { requestRange: { key: b('h') } }],
        }),
    ],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          success: [{ requestPut: { key: b('x'), value: b('1'), lease: 9n } }],
        }),
    ],
    ['Txn', () => TxnRequest.fromPartial({ success: [{ requestRange: { key: b('a') } }] })],
    ['Put', () => PutRequest.fromPartial({ key: b('p/1'), value: b('one'), prevKv: true })],
    ['Put', () => PutRequest.fromPartial({ key: b('p/2'), value: b('two') })],
    ['Put', () => PutRequest.fromPartial({ key: b('p0'), value: b('past the prefix') })],
    ['Range', () => RangeRequest.fromPartial({ key: b('p/'), rangeEnd: b('p0') })],
    ['Range', () => RangeRequest.fromPartial({ key: b('p/'), rangeEnd: b('p0'), countOnly: true, limit: 1n })],
    ['Range', () => RangeRequest.fromPartial({ key: b('p/'), rangeEnd: b('p0'), limit: 5n, sortOrder: Order.DESCEND })],
    ['Range', () => RangeRequest.fromPartial({ key: b('p/'), rangeEnd: b('p0'), limit: -1n })],
    ['Put', () => PutRequest.fromPartial({ key: b('p/2'), ignoreLease: true, value: b('2b'), prevKv: true })],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          compare: [
            { key: b('p/'), rangeEnd: b('p0'), target: T.VALUE, result: R.GREATER, value: b('2') },
            { key: b('p/1'), target: T.VALUE, result: R.LESS, value: b('p') },
          ],
          success: [{ requestDeleteRange: { key: b('p/'), rangeEnd: b('p0'), prevKv: true } }, { requestRange: { key: b('p'), rangeEnd: ALL } }],
          failure: [{ requestRange: { key: b('p/'), rangeEnd: b('p0') } }],
        }),
    ],
    [
      'Txn',
      () =>
        TxnRequest.fromPartial({
          compare: [{ key: b('p/'), rangeEnd: b('p0'), target: T.VERSION, result: R.EQUAL, version: 0n }],
          success: [
            {
              requestTxn: {
                compare: [{ key: b('p0'), target: T.VERSION, result: R.GREATER, version: 5n }],
                success: [{ requestPut: { key: b('never'), value: b('') } }],
                failure: [
                  { requestPut: { key: b('p/3'), value: b('three') } },
                  { requestTxn: { failure: [{ requestRange: { key: b('p/3') } }], success: [{ requestRange: { key: b('p/'), rangeEnd: b('p0') } }] } },
                ],
              },
            },
            { requestRange: { key: b('p/3'), keysOnly: true } },
          ],
        }),
    ],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('p'), rangeEnd: b('q'), maxCreateRevision: BigInt(base + 30), sortTarget: By.CREATE, sortOrder: Order.DESCEND })],
    ['DeleteRange', () => DeleteRangeRequest.fromPartial({ key: b('p'), rangeEnd: ALL, prevKv: true })],
    ['Compact', (base) => CompactionRequest.fromPartial({ revision: BigInt(base + 4), physical: true })],
    ['Compact', (base) => CompactionRequest.fromPartial({ revision: BigInt(base + 3) })],
    ['Compact', (base) => CompactionRequest.fromPartial({ revision: BigInt(base + 1000) })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, revision: BigInt(base + 3) })],
    ['Range', (base) => RangeRequest.fromPartial({ key: b('a'), rangeEnd: ALL, revision: BigInt(base + 4) })],
    ['Txn', (base) => TxnRequest.fromPartial({ success: [{ requestRange: { key: b('a'), revision: BigInt(base + 2) } }] })],
    ['Txn', (base) => TxnRequest.fromPartial({ success: [{ requestRange: { key: b('a'), revision: BigInt(base + 500) } }] })],
    ['DeleteRange', () => DeleteRangeRequest.fromPartial({ key: ALL, rangeEnd: ALL })],
    ['Range', () => RangeRequest.fromPartial({ key: ALL, rangeEnd: ALL })],
  ];
  const mismatches: string[] = [];
  for (const [i, [kind, make]] of steps.entries()) {
    const e = await callEtcd(kind, make(base));
    const o = await callOurs(kind, make(base));
    const en = JSON.stringify(normalize(e));
    const on = JSON.stringify(normalize(o));
    if (process.env.SHOW) console.log(i, en);
    if (en !== on) mismatches.push(`step ${i} ${kind}:\n  etcd ${en}\n  ours ${on}`);
  }
  expect(mismatches).toEqual([]);
});
