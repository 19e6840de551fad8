/**
 * The watch stream's wire path: a response of events encoded straight from the header's and the events' bytes is
 * the same bytes as WatchResponse.encode gives (so clients decode the same), and responses batched into the HTTP/2
 * stream as gRPC frames arrive whole and in order, large ones and many small ones, with grpc-js's own call (so a
 * grpc-js that no longer has what the batching uses fails here instead of silently writing one by one).
 */
import * as grpc from '@grpc/grpc-js';
import { FramedWriter } from '../../server/api/v3rpc/framed-writer';
import { ResponseHeader, WatchResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { Event, Event_EventType } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { encodeMessage } from '../../server/api/v3rpc/service';
import { putWatchResponse, watchResponseSize } from '../../server/api/v3rpc/watch';
import type { WatchEvent } from '../../server/mvcc/watchable';

jest.setTimeout(60_000);

function event(key: string, value: Buffer, rev: bigint, withPrev: boolean): WatchEvent {
  const kv = { key: Buffer.from(key), createRevision: 2n, modRevision: rev, version: rev - 1n, value, lease: 7n };
  const ev: WatchEvent = {
    type: value.length ? Event_EventType.PUT : Event_EventType.DELETE,
    kv,
    prevKv: withPrev ? { ...kv, modRevision: rev - 1n, value: Buffer.from('old') } : undefined,
  };
  ev.encoded = encodeMessage(Event, ev);
  return ev;
}

describe('a response of events encoded directly', () => {
  const header = { clusterId: 0xcdef0123456789n, memberId: 0x8e9e05c52164694dn, revision: 0n, raftTerm: 3n };
  const cases: [string, bigint, WatchEvent[]][] = [
    ['watch ID 0, one event', 0n, [event('a', Buffer.from('v'), 5n, false)]],
    ['watch ID 1, put and delete with prev_kv', 1n, [event('k1', Buffer.from('x'.repeat(300)), 9n, true), event('k2', Buffer.alloc(0), 9n, true)]],
    ['a large watch ID and a value of 200 KB', 2n ** 31n - 1n, [event('big', Buffer.alloc(200_000, 7), 1234567n, false)]],
    ['watch ID 127/128 boundary, many events', 128n, Array.from({ length: 50 }, (_, i) => event(`key-${i}`, Buffer.from(`v${i}`), 100n + BigInt(i), i % 2 === 0))],
  ];
  for (const [name, watchId, events] of cases) {
    test(name, () => {
      for (const rev of [1, 127, 128, 2 ** 40]) {
        const h = encodeMessage(ResponseHeader, { ...header, revision: BigInt(rev) });
        const eventsSize = events.reduce((a, e) => a + WatchResponse.encode({ ...WatchResponse.fromPartial({}), events: [e] }).finish().length, 0);
        const n = watchResponseSize(h, Number(watchId), eventsSize);
        const buf = Buffer.alloc(n + 10, 0xee);
        expect(putWatchResponse(buf, 3, h, Number(watchId), events)).toBe(3 + n);
        const want = WatchResponse.encode({ ...WatchResponse.fromPartial({}), header: { ...header, revision: BigInt(rev) }, watchId, events }).finish();
        expect(Buffer.from(buf.subarray(3, 3 + n)).equals(Buffer.from(want))).toBe(true);
        expect(WatchResponse.decode(buf.subarray(3, 3 + n)).events.map((e) => e.kv!.key.toString())).toEqual(events.map((e) => e.kv!.key.toString()));
      }
    });
  }
});

describe('responses batched into the HTTP/2 stream', () => {
  let server: grpc.Server;
  let client: grpc.Client;
  let direct: boolean | undefined;
  /** sizes of the messages the server sends, in order: small ones, some around the batch size, one of 1 MB */
  const sizes = [...Array.from({ length: 20_000 }, (_, i) => (i * 37) % 300), 64 * 1024 - 5, 64 * 1024, 70_000, 1 << 20, 1, 0, 2];
  const body = (i: number, size: number) => Buffer.alloc(size, i % 251);

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(
      { Stream: { path: '/test.T/Stream', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
      {
        Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          let i = 0;
          const out = new FramedWriter(call as grpc.ServerDuplexStream<unknown, Buffer>, () => send());
          direct = out.direct;
          // as the watch stream does: write until the stream is behind, go on when it drains
          const send = (): void => {
            while (i < sizes.length && !out.blocked) {
              out.message(body(i, sizes[i]));
              i++;
            }
            if (i === sizes.length) {
              out.flush();
              call.end();
            }
          };
          call.on('data', () => send());
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  });

  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  test('arrive whole and in order, a slow reader included, and end with the status', async () => {
    const call = client.makeBidiStreamRequest('/test.T/Stream', (b: Buffer) => b, (b: Buffer) => b);
    const got: Buffer[] = [];
    const done = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (b: Buffer) => {
      got.push(b);
      // a reader that pauses now and then, so that the server's stream fills and drains
      if (got.length % 5000 === 0) {
        call.pause();
        setImmediate(() => call.resume());
      }
    });
    call.write(Buffer.from('go'));
    call.end();
    const status = await done;
    expect(status.code).toBe(grpc.status.OK);
    expect(direct).toBe(true);
    expect(got.length).toBe(sizes.length);
    for (let i = 0; i < sizes.length; i++) {
      if (!got[i].equals(body(i, sizes[i]))) throw new Error(`message ${i}: ${got[i].length} bytes, want ${sizes[i]}`);
    }
  });
});
