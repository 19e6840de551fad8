/**
 * The KV service's calls are served off grpc-js's per-call path (server/api/v3rpc/fast-unary.ts). A client must not
 * tell: the same raw HTTP/2 requests sent to the fast path (/etcdserverpb.KV/...) and to the very same handlers served
 * by grpc-js (registered again as /test.KV/...) get the same headers, trailers, statuses, texts and bytes, for good
 * calls and for every transport failure grpc-js reports. Then what only a real client shows: metadata reaching the
 * handler, a compressed request (left to grpc-js), a cancelled call, the metrics.
 */
import * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import { metadataValueOf, requestMetadata } from '../../server/api/v3rpc/fast-unary';
import type { V3GrpcServer } from '../../server/api/v3rpc/grpc';
import { kvService, type KVBackend } from '../../server/api/v3rpc/kv';
import { PutRequest, PutResponse, RangeRequest, RangeResponse, KVClient } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { startV3, testHeader, type RunningV3 } from '../support/v3-server';
import { frame, raw, type RawAnswer } from '../support/raw-grpc';

describe('a metadata value read from the headers (metadataValueOf): what the Metadata grpc-js builds would give', () => {
  const cases: [string, http2.IncomingHttpHeaders, string][] = [
    ['absent', { ':path': '/x' }, 'token'],
    ['one value', { token: 'abc.def' }, 'token'],
    ['the empty value', { token: '' }, 'token'],
    ['a repeated header, as an array', { token: ['first', 'second'] }, 'token'],
    ['a repeated header, joined', { token: 'first, second' }, 'token'],
    ['a value with a non-printable character (grpc-js drops it)', { token: 'bad\x01value' }, 'token'],
    ['a value with a non-ASCII character', { token: 'caf\u00e9' }, 'token'],
    ['an array whose first value is not printable', { token: ['bad\nvalue', 'good'] }, 'token'],
    ['a transport header (not metadata)', { 'content-type': 'application/grpc' }, 'content-type'],
    ['grpc-timeout (not metadata)', { 'grpc-timeout': '5S' }, 'grpc-timeout'],
    ['a -bin key', { 'token-bin': Buffer.from('xyz').toString('base64') }, 'token-bin'],
    ['an upper-case key asked for', { token: 'abc' }, 'Token'],
    ['a pseudo-header', { ':authority': 'h' }, ':authority'],
    ['a key grpc-js refuses', { 'to ken': 'v' }, 'to ken'],
  ];
  test.each(cases)('%s', (_name, headers, key) => {
    const want = requestMetadata(headers).get(key)[0];
    expect(metadataValueOf(headers, key)).toEqual(want);
  });
  test('the cases are not vacuous: some find a value, some none', () => {
    const found = cases.filter(([, h, k]) => metadataValueOf(h, k) !== undefined).length;
    expect(found).toBeGreaterThanOrEqual(4);
    expect(cases.length - found).toBeGreaterThanOrEqual(4);
  });
});

describe('KV calls answered off grpc-js: the same answers as grpc-js gives', () => {
  let release: (() => void) | undefined;
  const seen: grpc.Metadata[] = [];
  const seenValues: Record<string, grpc.MetadataValue | undefined>[] = [];
  const backend: KVBackend = {
    range: async (r, call) => {
      // What the auth gate reads first (without the Metadata), then the Metadata itself.
      if (call?.metadataValue) seenValues.push({ token: call.metadataValue('token'), hasleader: call.metadataValue('hasleader'), absent: call.metadataValue('absent') });
      if (call) seen.push(call.metadata);
      return RangeResponse.fromPartial({ kvs: [{ key: r.key, value: Buffer.from('value'), createRevision: 3n, modRevision: 4n, version: 1n }], count: 1n });
    },
    // A put that waits until the test lets it go (for deadlines and cancelled calls).
    put: (r) => (r.key.toString() === 'slow' ? new Promise((resolve) => (release = () => resolve(PutResponse.fromPartial({})))) : Promise.resolve(PutResponse.fromPartial({}))),
    deleteRange: async () => { throw new Error('not used'); },
    txn: async () => { throw new Error('not used'); },
    compact: async () => { throw new Error('not used'); },
  };
  let s: RunningV3;
  /** The same server over Node's HTTP/2 (grpc-js bound to its own port), as the member served calls before. */
  let sNode: RunningV3;
  beforeAll(async () => {
    // The same handlers again under another service name: those grpc-js serves, as it served KV before.
    const kv = kvService({ backend, header: testHeader });
    const definition = Object.fromEntries(Object.entries(kv.definition).map(([k, m]) => [k, { ...m, path: m.path.replace('/etcdserverpb.KV/', '/test.KV/') }]));
    s = await startV3(backend, { services: [{ definition, handlers: kv.handlers }], maxRequestBytes: 1024 });
    sNode = await startV3(backend, { services: [{ definition, handlers: kv.handlers }], maxRequestBytes: 1024, transport: 'node' });
  });
  afterAll(async () => {
    await s.close();
    await sNode.close();
  });

  /** The fast path's answer and grpc-js's, the method's path named the same in both. */
  async function both(method: string, body: Buffer, extra?: Record<string, string>): Promise<[RawAnswer, RawAnswer]> {
    const server = s.server as V3GrpcServer;
    const before = server.fastCalls;
    const fast = await raw(s.port, `/etcdserverpb.KV/${method}`, body, extra);
    expect(server.fastCalls).toBe(before + 1);
    const slow = await raw(s.port, `/test.KV/${method}`, body, extra);
    expect(server.fastCalls).toBe(before + 1);
    const named = (a: RawAnswer): RawAnswer => JSON.parse(JSON.stringify(a).split('test.KV').join('etcdserverpb.KV'), (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data) : v));
    return [fast, named(slow)];
  }

  const cases: [string, string, () => Buffer, Record<string, string>?][] = [
    ['a good range', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish())],
    ['a good put', 'Put', () => frame(PutRequest.encode(PutRequest.fromPartial({ key: Buffer.from('k'), value: Buffer.from('v') })).finish())],
    ['a refused request (no key)', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({})).finish())],
    ['no message at all', 'Range', () => Buffer.alloc(0)],
    ['half a message', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish()).subarray(0, 6)],
    ['two messages', 'Range', () => Buffer.concat([1, 2].map(() => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish())))],
    ['bytes that are no RangeRequest', 'Range', () => frame(Buffer.from([0x0f, 0xff, 0xff]))],
    ['a message over the size limit', 'Put', () => frame(PutRequest.encode(PutRequest.fromPartial({ key: Buffer.from('k'), value: Buffer.alloc(600 * 1024, 1) })).finish())],
    ['a length prefix over the limit, with no message behind it', 'Put', () => Buffer.from([0, 0x7f, 0xff, 0xff, 0xff])],
    ['a compressed flag with identity encoding', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish(), 1)],
    ['an invalid grpc-timeout', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish()), { 'grpc-timeout': 'soon' }],
    ['a generous grpc-timeout', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish()), { 'grpc-timeout': '10S' }],
    ['token metadata', 'Range', () => frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish()), { token: 'abc' }],
  ];

  // One argument (jest takes a callback beyond a row's length for done()).
  test.each(cases.map((c) => [c[0], c] as const))('%s', async (_name, [, method, body, extra]) => {
    const [fast, slow] = await both(method, body(), extra);
    expect(fast).toEqual(slow);
    expect(fast.headers[':status']).toBe(200);
  });

  // Our HTTP/2 (server/embed/h2/connection.ts) against Node's, for the fast path and for grpc-js's.
  test.each(cases.map((c) => [c[0], c] as const))('%s: our HTTP/2 answers as Node\'s does', async (_name, [, method, body, extra]) => {
    for (const svc of ['etcdserverpb', 'test']) {
      const ours = await raw(s.port, `/${svc}.KV/${method}`, body(), extra);
      const node = await raw(sNode.port, `/${svc}.KV/${method}`, body(), extra);
      expect(ours).toEqual(node);
    }
  });

  test('the cases are not vacuous: good calls answer data, failures their own gRPC status', async () => {
    const answers = await Promise.all(cases.map(([, method, body, extra]) => raw(s.port, `/etcdserverpb.KV/${method}`, body(), extra)));
    const status = (a: RawAnswer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
    expect(answers.map(status)).toEqual([0, 0, 3, 12, 12, 12, 13, 8, 8, 0, 13, 0, 0]);
    expect(RangeResponse.decode(answers[0].data.subarray(5)).kvs[0].value.toString()).toBe('value');
    expect(decodeURI(String(answers[7].headers['grpc-message']))).toMatch(/^Received message larger than max \(\d+ vs 525312\)$/);
  });

  test('a client that keeps sending on a unary call is refused once a second message is there, its bytes not held', async () => {
    const one = frame(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish());
    // The message, then a run of bytes longer than any second message may be (1 KiB + 512 KiB here).
    const answer = await raw(s.port, '/etcdserverpb.KV/Range', Buffer.concat([one, Buffer.alloc(600 * 1024, 0x7f)]));
    expect(answer.headers['grpc-status']).toBe('12');
    expect(decodeURI(String(answer.headers['grpc-message']))).toBe('Received a second request message for server streaming method /etcdserverpb.KV/Range');
  });

  test('a deadline passed answers DEADLINE_EXCEEDED, and the handler finishing later writes nothing more', async () => {
    const [fast, slow] = await Promise.all(['etcdserverpb', 'test'].map(async (svc) => {
      const a = raw(s.port, `/${svc}.KV/Put`, frame(PutRequest.encode(PutRequest.fromPartial({ key: Buffer.from('slow') })).finish()), { 'grpc-timeout': '50m' });
      return a;
    }));
    release?.();
    expect(fast.headers['grpc-status']).toBe('4');
    expect(decodeURI(String(fast.headers['grpc-message']))).toBe('Deadline exceeded');
    expect({ ...fast }).toEqual({ ...slow });
  });

  test('the metadata a client sends reaches the handler, without the transport headers', async () => {
    seen.length = 0;
    seenValues.length = 0;
    const md = new grpc.Metadata();
    md.set('token', 'tok');
    md.set('hasleader', 'true');
    await new Promise((resolve, reject) => s.client.range(RangeRequest.fromPartial({ key: Buffer.from('k') }), md, (err, r) => (err ? reject(err) : resolve(r))));
    expect(seen).toHaveLength(1);
    const got = seen[0].getMap();
    expect(got).toMatchObject({ token: 'tok', hasleader: 'true' });
    expect(seenValues).toEqual([{ token: 'tok', hasleader: 'true', absent: undefined }]);
    for (const h of ['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', ':path']) expect(got).not.toHaveProperty(h);
  });

  test('a gzip-compressed request (served by grpc-js) is answered as any other', async () => {
    const c = new KVClient(s.address, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    const fastBefore = (s.server as V3GrpcServer).fastCalls;
    try {
      const r = await new Promise<RangeResponse>((resolve, reject) => c.range(RangeRequest.fromPartial({ key: Buffer.from('zipped') }), (err, res) => (err ? reject(err) : resolve(res))));
      expect(r.kvs[0].key.toString()).toBe('zipped');
      expect((s.server as V3GrpcServer).fastCalls).toBe(fastBefore);
    } finally {
      c.close();
    }
  });

  test('a client that cancels a call leaves the server serving, the late answer dropped', async () => {
    const call = s.client.put(PutRequest.fromPartial({ key: Buffer.from('slow') }), () => undefined);
    // Cancel once the server holds the call.
    await new Promise<void>((resolve) => {
      const poll = (): void => (release ? resolve() : void setImmediate(poll));
      release = undefined;
      poll();
    });
    call.cancel();
    release!();
    const r = await s.kv.range(RangeRequest.fromPartial({ key: Buffer.from('after') }));
    expect(r.kvs[0].key.toString()).toBe('after');
  });

  test('calls on the fast path are counted in grpc_server_started_total and _handled_total', async () => {
    const before = await counts();
    await s.kv.range(RangeRequest.fromPartial({ key: Buffer.from('k') }));
    await expect(s.kv.range(RangeRequest.fromPartial({}))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    const after = await counts();
    expect(after.started - before.started).toBe(2);
    expect(after.ok - before.ok).toBe(1);
    expect(after.invalid - before.invalid).toBe(1);
  });

  async function counts(): Promise<{ started: number; ok: number; invalid: number }> {
    const m = await s.registry.getMetricsAsJSON();
    const value = (name: string, labels: Record<string, string>) =>
      (m.find((x) => x.name === name)?.values ?? []).filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((a, v) => a + v.value, 0);
    const range = { grpc_service: 'etcdserverpb.KV', grpc_method: 'Range' };
    return {
      started: value('grpc_server_started_total', range),
      ok: value('grpc_server_handled_total', { ...range, grpc_code: 'OK' }),
      invalid: value('grpc_server_handled_total', { ...range, grpc_code: 'InvalidArgument' }),
    };
  }
});
