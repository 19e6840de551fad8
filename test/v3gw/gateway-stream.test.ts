/**
 * The gateway's streaming routes, over stand-in gRPC handlers: requests read from the body one JSON value after
 * another, each response a `{"result": …}` line, an error as grpc-gateway's error chunk, and the client's going away
 * seen by the handler as a cancelled call.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { gatewayHandler, JsonValueSplitter, quoteBigInts } from '../../server/api/v3gw/gateway';
import { RangeResponse, WatchRequest, WatchResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';

let server: http.Server;
let base: string;
let handlers: Record<string, grpc.UntypedHandleCall> = {};

beforeAll(async () => {
  const gw = gatewayHandler({ lookup: (p) => handlers[p], maxBodyBytes: 1 << 20 });
  server = http.createServer(gw);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function post(p: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + p, { method: 'POST' }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a bidirectional stream: every request in the body reaches the handler, every response is a result line', async () => {
  const seen: WatchRequest[] = [];
  handlers = {
    '/etcdserverpb.Watch/Watch': ((call: grpc.ServerDuplexStream<WatchRequest, WatchResponse>) => {
      call.on('data', (r: WatchRequest) => {
        seen.push(r);
        call.write(WatchResponse.fromPartial({ header: { revision: 7n, clusterId: 1n }, watchId: BigInt(seen.length), created: true }));
      });
      call.on('end', () => call.end());
    }) as grpc.UntypedHandleCall,
  };
  const body = '{"create_request":{"key":"Zm9v","prev_kv":true}}\n {"create_request": {"key": "YmFy", "range_end": "AA==", "filters": ["NOPUT"]}}';
  const r = await post('/v3/watch', body);
  expect(r.status).toBe(200);
  expect(r.body).toBe(
    '{"result":{"header":{"cluster_id":"1","revision":"7"},"watch_id":"1","created":true}}\n' +
      '{"result":{"header":{"cluster_id":"1","revision":"7"},"watch_id":"2","created":true}}\n',
  );
  expect(seen.map((s) => [Buffer.from(s.createRequest!.key).toString(), s.createRequest!.prevKv, s.createRequest!.filters])).toEqual([
    ['foo', true, []],
    ['bar', false, [0]],
  ]);
});

test('an error from the handler ends the answer with the error chunk; before any result, with its HTTP status', async () => {
  handlers = {
    '/etcdserverpb.Lease/LeaseKeepAlive': ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.on('data', () => call.destroy(Object.assign(new Error('x'), { code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' })));
    }) as grpc.UntypedHandleCall,
  };
  const r = await post('/v3/lease/keepalive', '{"ID":"1"}');
  expect(r.status).toBe(404);
  expect(JSON.parse(r.body)).toEqual({ error: { grpc_code: 5, http_code: 404, message: 'etcdserver: requested lease not found', http_status: 'Not Found' } });
});

test('a request that is not an object is refused with InvalidArgument; a route whose service is absent, Unimplemented', async () => {
  handlers = { '/etcdserverpb.Watch/Watch': (() => undefined) as grpc.UntypedHandleCall };
  const bad = await post('/v3/watch', '[1]');
  expect(bad.status).toBe(400);
  expect(JSON.parse(bad.body).error.grpc_code).toBe(3);
  handlers = {};
  const none = await post('/v3/maintenance/snapshot', '{}');
  expect(none.status).toBe(501);
  expect(JSON.parse(none.body)).toMatchObject({ code: 12 });
});

test('the client going away cancels the call', async () => {
  let cancelled!: () => void;
  const wasCancelled = new Promise<void>((r) => (cancelled = r));
  handlers = {
    '/etcdserverpb.Watch/Watch': ((call: grpc.ServerDuplexStream<unknown, WatchResponse>) => {
      call.on('cancelled', () => cancelled());
      call.write(WatchResponse.fromPartial({ created: true }));
    }) as grpc.UntypedHandleCall,
  };
  // The body stays open (a watch's does): the first result arrives, then the client hangs up.
  await new Promise<void>((resolve) => {
    const req = http.request(base + '/v3/watch', { method: 'POST' }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.write('{"create_request":{"key":"YQ=="}}');
  });
  await wasCancelled;
});

test('the body splitter finds values across chunks, strings with braces and escapes included', () => {
  const s = new JsonValueSplitter();
  const text = '{"a":"}{\\"","b":[1,{"c":2}]} {"d":"\\\\"}\n{"e":1}';
  const out: string[] = [];
  for (const ch of text) out.push(...s.push(ch));
  expect(out.map((t) => JSON.parse(t))).toEqual([{ a: '}{"', b: [1, { c: 2 }] }, { d: '\\' }, { e: 1 }]);
  expect(s.rest()).toBe('');
});

test('with --max-concurrent-streams, a watch holds its slot while it lasts: a call past the limit waits for it to end', async () => {
  const gw = gatewayHandler({
    lookup: (p) =>
      ({
        '/etcdserverpb.Watch/Watch': ((call: grpc.ServerDuplexStream<unknown, WatchResponse>) => call.write(WatchResponse.fromPartial({ created: true }))) as grpc.UntypedHandleCall,
        '/etcdserverpb.KV/Range': ((_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, RangeResponse.fromPartial({}))) as grpc.UntypedHandleCall,
      })[p],
    maxBodyBytes: 1 << 20,
    maxConcurrentCalls: 1,
  });
  const one = http.createServer(gw);
  await new Promise<void>((r) => one.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(one.address() as AddressInfo).port}`;
  try {
    let watchReq!: http.ClientRequest;
    await new Promise<void>((resolve) => {
      watchReq = http.request(url + '/v3/watch', { method: 'POST' }, (res) => res.once('data', () => resolve()));
      watchReq.on('error', () => undefined);
      watchReq.write('{"create_request":{"key":"YQ=="}}');
    });
    let answered = false;
    const range = new Promise<number>((resolve, reject) => {
      http
        .request(url + '/v3/kv/range', { method: 'POST' }, (res) => {
          answered = true;
          res.resume();
          resolve(res.statusCode!);
        })
        .on('error', reject)
        .end('{"key":"YQ=="}');
    });
    // The range is sent and waits (a negative check: it must not be answered while the watch holds the slot).
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    watchReq.destroy();
    expect(await range).toBe(200);
  } finally {
    one.closeAllConnections();
    await new Promise<void>((r) => one.close(() => r()));
  }
});

test('64-bit integers sent as JSON numbers stay exact (Go writes int64 ids so); strings and other numbers are untouched', () => {
  expect(quoteBigInts('{"ID":9130178165111813223,"TTL":30}')).toBe('{"ID":"9130178165111813223","TTL":30}');
  expect(quoteBigInts('{"ID":-9130178165111813223,"x":1.5e300,"k":"12345678901234567890"}')).toBe('{"ID":"-9130178165111813223","x":1.5e300,"k":"12345678901234567890"}');
  expect(quoteBigInts('{"a":"\\"1234567890123456789\\"","b":[1234567890123456789]}')).toBe('{"a":"\\"1234567890123456789\\"","b":["1234567890123456789"]}');
  expect(JSON.parse(quoteBigInts('{"ID":9130178165111813223}')).ID).toBe('9130178165111813223');
});

test('responses a service writes already encoded (as the Watch service does) come out as JSON; a bad one ends the call, not the server', async () => {
  handlers = {
    '/etcdserverpb.Watch/Watch': ((call: grpc.ServerDuplexStream<unknown, Buffer>) => {
      call.once('data', () => {
        call.write(Buffer.from(WatchResponse.encode(WatchResponse.fromPartial({ watchId: 3n, created: true })).finish()));
        call.write(Buffer.from([0xff, 0xff, 0xff]));
      });
    }) as grpc.UntypedHandleCall,
  };
  const r = await post('/v3/watch', '{"create_request":{"key":"YQ=="}}');
  const lines = r.body.trim().split('\n');
  expect(JSON.parse(lines[0])).toEqual({ result: { watch_id: '3', created: true } });
  expect(JSON.parse(lines[1]).error.grpc_code).toBe(grpc.status.INTERNAL);
});
