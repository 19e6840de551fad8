/**
 * LeaseKeepAlive and the Lease service's unary calls are served off grpc-js (fast-stream.ts, fast-unary.ts). A client
 * must not tell: the same raw HTTP/2 requests to our server and to a grpc-js server with the very same Lease service
 * get the same headers, frames, trailers and statuses. Then what only a real client shows: many keep-alives on one
 * stream answered in order, a cancelled stream, and the stream counted in the metrics.
 */
import * as grpc from '@grpc/grpc-js';
import type { V3GrpcServer } from '../../server/api/v3rpc/grpc';
import { addLeaseService, type LeaseBackend } from '../../server/api/v3rpc/lease';
import { serverError } from '../../server/api/v3rpc/errors';
import {
  LeaseClient, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse,
  LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { frame, raw, type RawAnswer } from '../support/raw-grpc';
import { refusingBackend, startV3, testHeader, type RunningV3 } from '../support/v3-server';

/** Leases 1..9 exist with TTL 10×ID; 99 is refused with an error that ends the stream; the rest do not exist. */
const backend: LeaseBackend = {
  leaseGrant: async (r) => LeaseGrantResponse.fromPartial({ ID: r.ID || 7n, TTL: r.TTL }),
  leaseRevoke: async () => LeaseRevokeResponse.fromPartial({}),
  leaseRenew: async (id) => {
    if (id === 99n) throw serverError('noLeader');
    if (id >= 1n && id <= 9n) return 10n * id;
    throw serverError('leaseNotFound');
  },
  leaseTimeToLive: async (r) => (r.ID === 1n ? LeaseTimeToLiveResponse.fromPartial({ ID: 1n, TTL: 10n, grantedTTL: 10n }) : Promise.reject(serverError('leaseNotFound'))),
  leaseLeases: async () => LeaseLeasesResponse.fromPartial({ leases: [{ ID: 1n }] }),
};

const ka = (id: bigint) => frame(LeaseKeepAliveRequest.encode({ ID: id }).finish());

describe('Lease calls answered off grpc-js: the same answers as grpc-js gives', () => {
  let ours: RunningV3;
  let plain: grpc.Server;
  let plainPort: number;
  beforeAll(async () => {
    ours = await startV3(refusingBackend(), { lease: backend, maxRequestBytes: 1024 });
    plain = new grpc.Server({ 'grpc.max_receive_message_length': 1024 + 512 * 1024 });
    addLeaseService(plain, { backend, header: testHeader });
    plainPort = await new Promise<number>((resolve, reject) => plain.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  });
  afterAll(async () => {
    await ours.close();
    await new Promise<void>((resolve) => plain.tryShutdown(() => resolve()));
  });

  const cases: [string, string, () => Buffer, Record<string, string>?][] = [
    ['keep-alives of a lease, an unknown one, another lease', 'LeaseKeepAlive', () => Buffer.concat([ka(1n), ka(42n), ka(3n)])],
    ['a stream ended with no keep-alive', 'LeaseKeepAlive', () => Buffer.alloc(0)],
    ['a keep-alive the backend fails', 'LeaseKeepAlive', () => Buffer.concat([ka(2n), ka(99n), ka(3n)])],
    ['bytes that are no keep-alive', 'LeaseKeepAlive', () => Buffer.concat([ka(1n), frame(Buffer.from([0x0f, 0xff]))])],
    ['a length prefix over the limit', 'LeaseKeepAlive', () => Buffer.concat([ka(1n), Buffer.from([0, 0x7f, 0xff, 0xff, 0xff])])],
    ['half a message at the end', 'LeaseKeepAlive', () => Buffer.concat([ka(1n), ka(2n).subarray(0, 3)])],
    ['an invalid grpc-timeout', 'LeaseKeepAlive', () => ka(1n), { 'grpc-timeout': 'x' }],
    ['a grant', 'LeaseGrant', () => frame(LeaseGrantRequest.encode(LeaseGrantRequest.fromPartial({ ID: 5n, TTL: 60n })).finish())],
    ['time-to-live of a lease, and of none', 'LeaseTimeToLive', () => frame(LeaseTimeToLiveRequest.encode(LeaseTimeToLiveRequest.fromPartial({ ID: 2n })).finish())],
    ['no message for a unary call', 'LeaseLeases', () => Buffer.alloc(0)],
  ];

  test.each(cases.map((c) => [c[0], c] as const))('%s', async (_name, [, method, body, extra]) => {
    const server = ours.server as V3GrpcServer;
    const before = server.fastCalls;
    const fast = await raw(ours.port, `/etcdserverpb.Lease/${method}`, body(), extra);
    expect(server.fastCalls).toBe(before + 1);
    const slow = await raw(plainPort, `/etcdserverpb.Lease/${method}`, body(), extra);
    expect(fast).toEqual(slow);
  });

  test('the cases are not vacuous', async () => {
    const answers: RawAnswer[] = [];
    for (const [, method, body, extra] of cases) answers.push(await raw(ours.port, `/etcdserverpb.Lease/${method}`, body(), extra));
    const status = (a: RawAnswer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
    expect(answers.map(status)).toEqual([0, 0, 14, 13, 8, 0, 13, 0, 0, 12]);
    // Three answers in order: TTL 10, TTL 0 (unknown), TTL 30.
    const msgs: LeaseKeepAliveResponse[] = [];
    for (let d = answers[0].data; d.length >= 5; d = d.subarray(5 + d.readUInt32BE(1))) msgs.push(LeaseKeepAliveResponse.decode(d.subarray(5, 5 + d.readUInt32BE(1))));
    expect(msgs.map((m) => [m.ID, m.TTL])).toEqual([[1n, 10n], [42n, 0n], [3n, 30n]]);
    expect(msgs[0].header?.raftTerm).toBe(7n);
  });

  test('a real client: 200 keep-alives on one stream, answered in order with their own TTLs', async () => {
    const c = new LeaseClient(ours.address, grpc.credentials.createInsecure());
    try {
      const st = c.leaseKeepAlive();
      const got: [bigint, bigint][] = [];
      const done = new Promise<void>((resolve, reject) => {
        st.on('data', (r: LeaseKeepAliveResponse) => got.push([r.ID, r.TTL]));
        st.on('end', resolve);
        st.on('error', reject);
      });
      const ids = Array.from({ length: 200 }, (_, i) => BigInt(i % 12));
      for (const id of ids) st.write({ ID: id });
      st.end();
      await done;
      expect(got).toEqual(ids.map((id) => [id, id >= 1n && id <= 9n ? 10n * id : 0n]));
    } finally {
      c.close();
    }
  });

  test('a stream the client cancels leaves the server serving, counted as etcd counts it', async () => {
    const c = new LeaseClient(ours.address, grpc.credentials.createInsecure());
    try {
      const st = c.leaseKeepAlive();
      st.on('error', () => undefined);
      await new Promise<void>((resolve) => {
        st.once('data', () => resolve());
        st.write({ ID: 1n });
      });
      st.cancel();
      const st2 = c.leaseKeepAlive();
      const r = await new Promise<LeaseKeepAliveResponse>((resolve, reject) => {
        st2.once('data', resolve);
        st2.once('error', reject);
        st2.write({ ID: 4n });
      });
      expect(r.TTL).toBe(40n);
      st2.end();
      const metrics = await ours.registry.getMetricsAsJSON();
      const handled = metrics.find((m) => m.name === 'grpc_server_handled_total')!.values.filter((v) => v.labels.grpc_method === 'LeaseKeepAlive' && v.value > 0);
      expect(handled.map((v) => v.labels.grpc_code)).toContain('Unavailable');
    } finally {
      c.close();
    }
  });
});
