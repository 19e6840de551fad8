/**
 * The KV service's answers to invalid and borderline requests side by side with Debian's etcd 3.4 (same
 * --max-txn-ops and --max-request-bytes): the same gRPC code and message for every request etcd refuses, and the
 * same requests let through (ours reaches its backend where etcd executes them).
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serverError, toGRPCError } from '../../server/api/v3rpc/errors';
import type { KVBackend } from '../../server/api/v3rpc/kv';
import {
  Compare, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, KVClient, PutRequest,
  PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { startRealEtcd, type RunningEtcd } from '../support/real-etcd';
import { promiseKV, startV3, type PromiseKV, type RunningV3 } from '../support/v3-server';

const MAX_TXN_OPS = 4;
const MAX_REQUEST_BYTES = 64 * 1024;

const b = (s: string) => Buffer.from(s);
const put = (key: string, value = 'v') => RequestOp.fromPartial({ requestPut: { key: b(key), value: b(value) } });
const del = (key: string, rangeEnd = '') => RequestOp.fromPartial({ requestDeleteRange: { key: b(key), rangeEnd: b(rangeEnd) } });
const get = (key: string) => RequestOp.fromPartial({ requestRange: { key: b(key) } });
const txn = (success: RequestOp[], failure: RequestOp[] = [], compare: Compare[] = []) => TxnRequest.fromPartial({ success, failure, compare });
const nested = (success: RequestOp[], failure: RequestOp[] = []) => RequestOp.fromPartial({ requestTxn: txn(success, failure) });
const many = (n: number, op = get) => Array.from({ length: n }, (_, i) => op(`k${i}`));

type Case = [string, (kv: PromiseKV) => Promise<unknown>];

const cases: Case[] = [
  ['range, empty key', (kv) => kv.range(RangeRequest.fromPartial({}))],
  ['range, empty key with range_end', (kv) => kv.range(RangeRequest.fromPartial({ rangeEnd: b('z') }))],
  ['put, empty key', (kv) => kv.put(PutRequest.fromPartial({ value: b('x') }))],
  ['put, ignore_value with a value', (kv) => kv.put(PutRequest.fromPartial({ key: b('k'), value: b('x'), ignoreValue: true }))],
  ['put, ignore_lease with a lease', (kv) => kv.put(PutRequest.fromPartial({ key: b('k'), lease: 5n, ignoreLease: true }))],
  ['delete, empty key', (kv) => kv.deleteRange(DeleteRangeRequest.fromPartial({ rangeEnd: b('\0') }))],
  ['txn, compare with an empty key', (kv) => kv.txn(txn([], [], [Compare.fromPartial({ version: 0n })]))],
  ['txn, empty op', (kv) => kv.txn(txn([RequestOp.fromPartial({})]))],
  ['txn, nested empty key', (kv) => kv.txn(txn([nested([], [del('')])]))],
  ['txn, too many success ops', (kv) => kv.txn(txn(many(MAX_TXN_OPS + 1)))],
  ['txn, too many failure ops', (kv) => kv.txn(txn([], many(MAX_TXN_OPS + 1)))],
  ['txn, too many compares', (kv) => kv.txn(txn([], [], Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => Compare.fromPartial({ key: b(`c${i}`) }))))],
  ['txn, nested over what the parent leaves', (kv) => kv.txn(txn([get('a'), nested(many(3))]))],
  ['txn, nested within what the parent leaves', (kv) => kv.txn(txn([get('a'), nested(many(2))]))],
  ['txn, exactly max ops', (kv) => kv.txn(txn(many(MAX_TXN_OPS, (k) => put(k)), many(MAX_TXN_OPS)))],
  ['txn, put twice', (kv) => kv.txn(txn([put('a'), put('a')]))],
  ['txn, put and delete the key', (kv) => kv.txn(txn([put('a'), del('a')]))],
  ['txn, put inside a deleted range', (kv) => kv.txn(txn([put('b'), del('a', 'c')]))],
  ['txn, put at the end of a deleted range', (kv) => kv.txn(txn([put('c'), del('a', 'c')]))],
  ['txn, put after a from-key delete', (kv) => kv.txn(txn([put('b'), del('a', '\0')]))],
  ['txn, put beside a nested put of the key', (kv) => kv.txn(txn([put('a'), nested([put('a')])]))],
  ['txn, nested success and failure put the key', (kv) => kv.txn(txn([nested([put('a')], [put('a')])]))],
  ['txn, two nested txns put the key', (kv) => kv.txn(txn([nested([put('x')]), nested([], [put('x')])]))],
  ['txn, nested delete and a put', (kv) => kv.txn(txn([nested([del('a', 'z')]), put('m')]))],
  ['txn, the key in both top branches', (kv) => kv.txn(txn([put('a')], [put('a')]))],
  ['txn, the same key read twice', (kv) => kv.txn(txn([get('a'), get('a'), put('a')]))],
  ['a value over --max-request-bytes + 512 KiB', (kv) => kv.put(PutRequest.fromPartial({ key: b('big'), value: Buffer.alloc(MAX_REQUEST_BYTES + 512 * 1024 + 10) }))],
];

/** The outcome of a call, as compared: refused with a code and message, or let through. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    const err = e as grpc.ServiceError;
    // The message of a transport-level refusal is the gRPC library's own wording, which no client matches on.
    if (err.code === grpc.status.RESOURCE_EXHAUSTED && /larger than max/i.test(err.details)) return `${grpc.status[err.code]}: larger than max`;
    return `${grpc.status[err.code]}: ${err.details}`;
  }
}

describe('KV validation side by side with Debian\'s etcd 3.4', () => {
  let dir: string;
  let real: RunningEtcd;
  let realClient: KVClient;
  let ours: RunningV3;
  const accepted: KVBackend = {
    range: async () => RangeResponse.fromPartial({}),
    put: async () => PutResponse.fromPartial({}),
    deleteRange: async () => DeleteRangeResponse.fromPartial({}),
    txn: async () => TxnResponse.fromPartial({}),
    compact: async () => CompactionResponse.fromPartial({}),
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'v3-validation-'));
    real = await startRealEtcd(dir, ['--max-txn-ops', String(MAX_TXN_OPS), '--max-request-bytes', String(MAX_REQUEST_BYTES)]);
    realClient = new KVClient(real.clientURL.replace('http://', ''), grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    ours = await startV3(accepted, { maxTxnOps: MAX_TXN_OPS, maxRequestBytes: MAX_REQUEST_BYTES });
  });

  afterAll(async () => {
    realClient?.close();
    await ours?.close();
    await real?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the same answer to every case', async () => {
    const realKV = promiseKV(realClient);
    const theirs: Record<string, string> = {};
    const mine: Record<string, string> = {};
    for (const [name, run] of cases) {
      theirs[name] = await outcome(run(realKV));
      mine[name] = await outcome(run(ours.kv));
    }
    expect(mine).toEqual(theirs);
    // Not vacuous: etcd refused most of these and let some through.
    expect(Object.values(theirs).filter((o) => o === 'accepted').length).toBeGreaterThanOrEqual(5);
    expect(Object.values(theirs).filter((o) => o.startsWith('INVALID_ARGUMENT')).length).toBeGreaterThanOrEqual(15);
  });

  test('Compact of a future revision: etcd\'s code and message come from the store, and map the same way', async () => {
    const theirs = await outcome(promiseKV(realClient).compact(CompactionRequest.fromPartial({ revision: 1000n })));
    const mapped = toGRPCError(serverError('futureRev'));
    expect(theirs).toBe(`${grpc.status[mapped.code]}: ${mapped.details}`);
  });

  test('malformed bytes and unknown methods: the same gRPC codes', async () => {
    const codes = async (address: string) => {
      const raw = new grpc.Client(address, grpc.credentials.createInsecure());
      const send = (p: string, bytes: Buffer) => new Promise<string>((resolve) =>
        raw.makeUnaryRequest(p, (x: Buffer) => x, (x: Buffer) => x, bytes, (err) => resolve(err ? grpc.status[err.code] : 'OK')));
      try {
        return {
          badVarint: await send('/etcdserverpb.KV/Put', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
          truncated: await send('/etcdserverpb.KV/Range', Buffer.from([0x0a, 0x7f, 0x61])),
          badWireType: await send('/etcdserverpb.KV/Txn', Buffer.from([0x0f])),
          unknownMethod: await send('/etcdserverpb.KV/Nope', Buffer.alloc(0)),
          unknownService: await send('/etcdserverpb.Nope/Range', Buffer.alloc(0)),
        };
      } finally {
        raw.close();
      }
    };
    expect(await codes(ours.address)).toEqual(await codes(real.clientURL.replace('http://', '')));
  });
});
