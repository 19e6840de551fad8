/**
 * The KV service over a real grpc-js server and client on 127.0.0.1: etcd's request validation (refused before the
 * backend is reached), etcd's gRPC codes and messages for the backend's errors, the response header, the message
 * size limit, malformed bytes and unknown methods (a clear error, the server keeps serving), and the metrics.
 */
import * as grpc from '@grpc/grpc-js';
import { ServerErrors, serverError } from '../../server/api/v3rpc/errors';
import type { KVBackend } from '../../server/api/v3rpc/kv';
import {
  Compare, Compare_CompareTarget, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
  PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { HealthCheckResponse, HealthCheckResponse_ServingStatus, HealthClient } from '../../server/api/v3rpc/pb/grpc/health/v1/health';
import { TEST_HEADER, refusingBackend, startV3, type RunningV3 } from '../support/v3-server';

const b = (s: string) => Buffer.from(s);
const put = (key: string, value = 'v') => RequestOp.fromPartial({ requestPut: { key: b(key), value: b(value) } });
const del = (key: string, rangeEnd = '') => RequestOp.fromPartial({ requestDeleteRange: { key: b(key), rangeEnd: b(rangeEnd) } });
const get = (key: string) => RequestOp.fromPartial({ requestRange: { key: b(key) } });
const txn = (success: RequestOp[], failure: RequestOp[] = [], compare: Compare[] = []) => TxnRequest.fromPartial({ success, failure, compare });
const nested = (success: RequestOp[], failure: RequestOp[] = []) => RequestOp.fromPartial({ requestTxn: txn(success, failure) });

async function expectStatus(p: Promise<unknown>, code: grpc.status, details: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code, details });
}

describe('request validation: etcd\'s errors, before the backend is reached', () => {
  const backend = refusingBackend();
  let s: RunningV3;
  beforeAll(async () => { s = await startV3(backend, { maxTxnOps: 4 }); });
  afterAll(() => s.close());
  afterEach(() => expect(backend.calls).toEqual([]));

  const invalid = grpc.status.INVALID_ARGUMENT;
  const range = (r: Partial<RangeRequest>) => s.kv.range(RangeRequest.fromPartial(r));
  const doPut = (r: Partial<PutRequest>) => s.kv.put(PutRequest.fromPartial(r));
  const doTxn = (r: TxnRequest) => s.kv.txn(r);

  test('an empty key in Range, Put, DeleteRange, a txn compare or a txn op', async () => {
    await expectStatus(range({}), invalid, 'etcdserver: key is not provided');
    await expectStatus(range({ rangeEnd: b('\0') }), invalid, 'etcdserver: key is not provided');
    await expectStatus(doPut({ value: b('x') }), invalid, 'etcdserver: key is not provided');
    await expectStatus(s.kv.deleteRange(DeleteRangeRequest.fromPartial({})), invalid, 'etcdserver: key is not provided');
    await expectStatus(doTxn(txn([], [], [Compare.fromPartial({ target: Compare_CompareTarget.VERSION, version: 0n })])), invalid, 'etcdserver: key is not provided');
    await expectStatus(doTxn(txn([get('')])), invalid, 'etcdserver: key is not provided');
    await expectStatus(doTxn(txn([], [del('')])), invalid, 'etcdserver: key is not provided');
    await expectStatus(doTxn(txn([nested([put('')])])), invalid, 'etcdserver: key is not provided');
  });

  test('ignore_value with a value, ignore_lease with a lease', async () => {
    await expectStatus(doPut({ key: b('k'), value: b('x'), ignoreValue: true }), invalid, 'etcdserver: value is provided');
    await expectStatus(doPut({ key: b('k'), lease: 1n, ignoreLease: true }), invalid, 'etcdserver: lease is provided');
    await expectStatus(doTxn(txn([RequestOp.fromPartial({ requestPut: { key: b('k'), lease: 5n, ignoreLease: true } })])), invalid, 'etcdserver: lease is provided');
  });

  test('an op with no request in it is "key not found"', async () => {
    await expectStatus(doTxn(txn([RequestOp.fromPartial({})])), invalid, 'etcdserver: key not found');
  });

  test('--max-txn-ops: compares, success and failure each count; a nested txn gets what its parent leaves', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => get(`k${i}`));
    await expectStatus(doTxn(txn(many(5))), invalid, 'etcdserver: too many operations in txn request');
    await expectStatus(doTxn(txn([], many(5))), invalid, 'etcdserver: too many operations in txn request');
    const compares = Array.from({ length: 5 }, (_, i) => Compare.fromPartial({ key: b(`c${i}`), version: 0n }));
    await expectStatus(doTxn(txn([], [], compares)), invalid, 'etcdserver: too many operations in txn request');
    // 2 ops at the top leave 2 for the nested txn: 3 is too many there, though 3 is within the limit of 4.
    await expectStatus(doTxn(txn([get('a'), nested(many(3))])), invalid, 'etcdserver: too many operations in txn request');
  });

  test('duplicate keys in a txn branch, also across nested txns and against deleted ranges', async () => {
    const dup = 'etcdserver: duplicate key given in txn request';
    await expectStatus(doTxn(txn([put('a'), put('a')])), invalid, dup);
    await expectStatus(doTxn(txn([], [put('a'), put('a')])), invalid, dup);
    await expectStatus(doTxn(txn([put('a'), del('a')])), invalid, dup);
    await expectStatus(doTxn(txn([put('b'), del('a', 'c')])), invalid, dup);
    await expectStatus(doTxn(txn([put('a'), nested([put('a')])])), invalid, dup);
    await expectStatus(doTxn(txn([del('a', 'z'), nested([], [put('m')])])), invalid, dup);
    await expectStatus(doTxn(txn([nested([put('x')]), nested([], [put('x')])])), invalid, dup);
    await expectStatus(doTxn(txn([nested([del('x')]), put('x')])), invalid, dup);
    await expectStatus(doTxn(txn([nested([nested([put('deep')])]), put('deep')])), invalid, dup);
  });
});

describe('requests etcd accepts reach the backend', () => {
  const seen: string[] = [];
  const ok = <T>(name: string, empty: { fromPartial(o: object): T }) => async () => {
    seen.push(name);
    return empty.fromPartial({});
  };
  const backend: KVBackend = {
    range: ok('range', RangeResponse),
    put: ok('put', PutResponse),
    deleteRange: ok('deleteRange', DeleteRangeResponse),
    txn: ok('txn', TxnResponse),
    compact: ok('compact', CompactionResponse),
  };
  let s: RunningV3;
  beforeAll(async () => { s = await startV3(backend, { maxTxnOps: 4 }); });
  afterAll(() => s.close());
  beforeEach(() => { seen.length = 0; });

  test.each([
    ['the same key in a nested txn\'s success and failure', txn([nested([put('a')], [put('a')])])],
    ['a put and a "from key" delete (etcd never sees these overlap)', txn([put('b'), del('a', '\0')])],
    ['a put beside a delete of another key', txn([put('a'), del('b')])],
    ['a put just past a deleted range', txn([put('c'), del('a', 'c')])],
    ['the same key read twice and put once', txn([get('a'), get('a'), put('a')])],
    ['exactly --max-txn-ops ops in each branch', txn([put('1'), put('2'), put('3'), put('4')], [get('1'), get('2'), get('3'), get('4')])],
    ['puts of one key in the two branches of the top txn', txn([put('a')], [put('a')])],
  ])('%s', async (_what, r) => {
    await s.kv.txn(r);
    expect(seen).toEqual(['txn']);
  });

  test('Compact is passed on without checks (the store decides)', async () => {
    await s.kv.compact(CompactionRequest.fromPartial({ revision: 0n }));
    expect(seen).toEqual(['compact']);
  });
});

describe('the response header and the backend\'s errors', () => {
  let next: () => Promise<RangeResponse>;
  const backend: KVBackend = {
    ...refusingBackend(),
    range: () => next(),
    put: async () => PutResponse.fromPartial({ header: { revision: 9n } }),
  };
  let s: RunningV3;
  beforeAll(async () => { s = await startV3(backend); });
  afterAll(() => s.close());
  const range = () => s.kv.range(RangeRequest.fromPartial({ key: b('k') }));

  test('cluster_id, member_id and raft_term are the member\'s, exact beyond 2^53; the revision is the current one', async () => {
    next = async () => RangeResponse.fromPartial({ kvs: [{ key: b('k'), value: b('v'), lease: 0x7fffffffffffffffn }] });
    const r = await range();
    expect(r.header).toEqual({ clusterId: TEST_HEADER.clusterId, memberId: TEST_HEADER.memberId, raftTerm: 7n, revision: 42n });
    expect(r.kvs[0].lease).toBe(0x7fffffffffffffffn);
  });

  test('a revision set by the backend stays', async () => {
    const r = await s.kv.put(PutRequest.fromPartial({ key: b('k') }));
    expect(r.header?.revision).toBe(9n);
    expect(r.header?.memberId).toBe(TEST_HEADER.memberId);
  });

  test.each([
    ['compacted', grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'],
    ['futureRev', grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
    ['timeout', grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
    ['noLeader', grpc.status.UNAVAILABLE, 'etcdserver: no leader'],
    ['requestTooLarge', grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
    ['leaseNotFound', grpc.status.NOT_FOUND, 'etcdserver: requested lease not found'],
    ['noSpace', grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'],
    ['stopped', grpc.status.UNAVAILABLE, 'etcdserver: server stopped'],
    ['keyNotFound', grpc.status.INVALID_ARGUMENT, 'etcdserver: key not found'],
    ['permissionDenied', grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied'],
  ] as const)('the server error %s is etcd\'s gRPC error', async (name, code, details) => {
    next = async () => { throw serverError(name); };
    await expectStatus(range(), code, details);
  });

  test('any other error is UNKNOWN with its message, as etcd\'s togRPCError answers', async () => {
    next = async () => { throw new Error('disk on fire'); };
    await expectStatus(range(), grpc.status.UNKNOWN, 'disk on fire');
    expect(ServerErrors.canceled).toBe('etcdserver: request cancelled');
  });
});

describe('bad input: a clear gRPC error, and the server keeps serving', () => {
  const store = new Map<string, Buffer>();
  const backend: KVBackend = {
    ...refusingBackend(),
    put: async (r) => { store.set(r.key.toString(), r.value); return PutResponse.fromPartial({}); },
    range: async (r) => {
      const v = store.get(r.key.toString());
      return RangeResponse.fromPartial({ kvs: v ? [{ key: r.key, value: v }] : [], count: v ? 1n : 0n });
    },
  };
  let s: RunningV3;
  let raw: grpc.Client;
  const MAX = 64 * 1024;
  beforeAll(async () => {
    s = await startV3(backend, { maxRequestBytes: MAX });
    raw = new grpc.Client(s.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
  });
  afterAll(async () => { raw.close(); await s.close(); });

  const rawCall = (path: string, bytes: Buffer) => new Promise<Buffer>((resolve, reject) =>
    raw.makeUnaryRequest(path, (x: Buffer) => x, (x: Buffer) => x, bytes, (err, res) => (err ? reject(err) : resolve(res!))));

  async function stillServes(key: string): Promise<void> {
    await s.kv.put(PutRequest.fromPartial({ key: b(key), value: b('after') }));
    const r = await s.kv.range(RangeRequest.fromPartial({ key: b(key) }));
    expect(r.kvs.map((kv) => kv.value.toString())).toEqual(['after']);
  }

  test('a request larger than --max-request-bytes + 512 KiB is refused (RESOURCE_EXHAUSTED)', async () => {
    const huge = PutRequest.fromPartial({ key: b('big'), value: Buffer.alloc(MAX + 512 * 1024 + 1, 1) });
    await expect(s.kv.put(huge)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    // Within the overhead the request gets through to the server (whose Raft layer answers "request is too large").
    await s.kv.put(PutRequest.fromPartial({ key: b('within'), value: Buffer.alloc(MAX + 1000, 1) }));
    await stillServes('k1');
  });

  test('malformed protobuf bytes to every KV method', async () => {
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // a varint that never ends
      Buffer.from([0x0a, 0x7f, 0x61]), // a key of 127 bytes with 1 there
      Buffer.from([0x0f]), // wire type 7
      Buffer.from([0x22, 0x05, 0x12, 0x03, 0x0a]), // a txn op cut short
    ];
    for (const method of ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']) {
      for (const g of garbage) {
        const err = await rawCall(`/etcdserverpb.KV/${method}`, g).then(() => undefined, (e: grpc.ServiceError) => e);
        // Some bytes decode (wire types the message skips); those that do not must be an error, never a crash.
        if (err) expect([grpc.status.INTERNAL, grpc.status.INVALID_ARGUMENT]).toContain(err.code);
      }
    }
    await expect(rawCall('/etcdserverpb.KV/Put', garbage[0])).rejects.toMatchObject({ code: grpc.status.INTERNAL });
    await stillServes('k2');
  });

  test('txns nested deeper than the decoder allows are an error', async () => {
    let t = txn([put('x')]);
    for (let i = 0; i < 200; i++) t = txn([RequestOp.fromPartial({ requestTxn: t })]);
    const bytes = Buffer.from(TxnRequest.encode(t).finish());
    await expect(rawCall('/etcdserverpb.KV/Txn', bytes)).rejects.toMatchObject({ code: grpc.status.INTERNAL });
    await stillServes('k3');
  });

  test('an unknown method and an unknown service are UNIMPLEMENTED', async () => {
    await expect(rawCall('/etcdserverpb.KV/Nope', Buffer.alloc(0))).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
    await expect(rawCall('/etcdserverpb.Nope/Range', Buffer.alloc(0))).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
    await stillServes('k4');
  });
});

describe('grpc_server_started_total and grpc_server_handled_total', () => {
  let s: RunningV3;
  beforeAll(async () => { s = await startV3(refusingBackend()); });
  afterAll(() => s.close());

  test('by type, service, method and code, with every method present from the start', async () => {
    const before = await s.registry.metrics();
    expect(before).toContain('grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Compact"} 0');
    expect(before).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Txn",grpc_code="OK"} 0');
    await expect(s.kv.range(RangeRequest.fromPartial({}))).rejects.toBeDefined();
    await expect(s.kv.range(RangeRequest.fromPartial({ key: b('k') }))).rejects.toBeDefined();
    const after = await s.registry.metrics();
    expect(after).toContain('grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range"} 2');
    expect(after).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range",grpc_code="InvalidArgument"} 1');
    expect(after).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range",grpc_code="Unknown"} 1');
    expect(after).toContain('grpc_server_msg_received_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range"} 2');
    expect(after).toContain('grpc_server_msg_sent_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range"} 0');
  });
});

describe('the zero series when calls come before the first scrape', () => {
  let s: RunningV3;
  let untouched: RunningV3;
  beforeAll(async () => { [s, untouched] = await Promise.all([startV3(refusingBackend()), startV3(refusingBackend())]); });
  afterAll(() => Promise.all([s.close(), untouched.close()]));

  test('the same series, in the same order, as a scrape before any call; the calls counted', async () => {
    await expect(s.kv.txn(TxnRequest.fromPartial({}))).rejects.toBeDefined();
    const names = (text: string) => text.split('\n').filter((l) => l.startsWith('grpc_server_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
    const text = await s.registry.metrics();
    const expected = names(await untouched.registry.metrics());
    expect(expected.filter((n) => n.startsWith('grpc_server_handled_total{')).length).toBe(17 * 7); // KV's 5 methods, Health's 2
    expect(names(text)).toEqual(expected);
    expect(text).toContain('grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Txn"} 1');
    expect(text).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Txn",grpc_code="Unknown"} 1');
    expect(names(await s.registry.metrics())).toEqual(expected); // none made twice
  });
});

describe('a call the client abandons', () => {
  test('cancelled while the backend works: the server answers later calls', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    let started!: () => void;
    const inBackend = new Promise<void>((r) => { started = r; });
    const backend: KVBackend = {
      ...refusingBackend(),
      put: async () => { started(); await released; return PutResponse.fromPartial({}); },
      range: async () => RangeResponse.fromPartial({ count: 1n }),
    };
    const s = await startV3(backend);
    try {
      const call = s.client.put(PutRequest.fromPartial({ key: b('k') }), () => undefined);
      const ended = new Promise<grpc.StatusObject>((r) => call.on('status', r));
      await inBackend;
      call.cancel();
      expect((await ended).code).toBe(grpc.status.CANCELLED);
      const late = s.kv.put(PutRequest.fromPartial({ key: b('k2') }));
      // The abandoned handler finishes after its client left; the server must shrug that off.
      release();
      await late;
      expect((await s.kv.range(RangeRequest.fromPartial({ key: b('k') }))).count).toBe(1n);
    } finally {
      await s.close();
    }
  });
});

describe('grpc.health.v1.Health, as etcd registers it', () => {
  test('the server is SERVING; an unknown service is NOT_FOUND; Watch streams the status', async () => {
    const s = await startV3(refusingBackend());
    const health = new HealthClient(s.address, grpc.credentials.createInsecure());
    try {
      const check = (service: string) => new Promise<HealthCheckResponse>((resolve, reject) =>
        health.check({ service }, (err, res) => (err ? reject(err) : resolve(res))));
      expect((await check('')).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await expect(check('etcdserverpb.Nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      const watch = health.watch({ service: '' });
      const ended = new Promise<grpc.ServiceError>((resolve) => watch.on('error', resolve));
      const first = await new Promise<HealthCheckResponse>((resolve) => watch.once('data', resolve));
      expect(first.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      watch.cancel();
      expect((await ended).code).toBe(grpc.status.CANCELLED);
      expect(await s.registry.metrics()).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="NotFound"} 1');
    } finally {
      health.close();
      await s.close();
    }
  });
});
