/**
 * One keep-alive stream under load, against our member: many keep-alives sent at once, some for a lease that does
 * not exist, are each answered once and in order (TTL for the live lease, 0 for the other, as etcd's), also when
 * the client stops reading for a while (the server stops reading it too, and goes on when it reads again); a
 * client that half-closes gets every answer, then the OK status.
 */
import * as grpc from '@grpc/grpc-js';
import { LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { ourMemberWithConn } from '../support/our-member';

jest.setTimeout(120_000);

const member = ourMemberWithConn('lease-ka');

test('20,000 keep-alives on one stream, read late: each answered once, in order, then the status', async () => {
  const g = await member.conn().lease.grant({ ID: 0n, TTL: 600n });
  const missing = g.ID + 1n;
  const N = 20_000;
  const ids = Array.from({ length: N }, (_, i) => (i % 7 === 3 ? missing : g.ID));
  const stream = member.conn().lease.client.leaseKeepAlive();
  const got: LeaseKeepAliveResponse[] = [];
  const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  stream.on('error', () => undefined);
  // not reading at first: the answers pile up in the transport until the server stops reading the stream
  stream.pause();
  stream.on('data', (r: LeaseKeepAliveResponse) => got.push(r));
  stream.pause(); // ('data' resumed it)
  for (const ID of ids) stream.write(LeaseKeepAliveRequest.fromPartial({ ID }));
  stream.end();
  await new Promise((r) => setTimeout(r, 500)); // the client's reading starts late (not a synchronisation)
  stream.resume();
  const s = await status;
  expect(s.code).toBe(grpc.status.OK);
  expect(got.length).toBe(N);
  const wrong = got.findIndex((r, i) => r.ID !== ids[i] || (ids[i] === g.ID ? r.TTL !== 600n : r.TTL !== 0n) || r.header!.revision <= 0n);
  expect(wrong).toBe(-1);
});

/** One keep-alive on a stream of its own, as clientv3's KeepAliveOnce sends it: the first answer, then a cancel. */
function keepAliveOnce(ID: bigint): Promise<LeaseKeepAliveResponse> {
  return new Promise((resolve, reject) => {
    const stream = member.conn().lease.client.leaseKeepAlive();
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
    stream.once('data', (r: LeaseKeepAliveResponse) => {
      resolve(r);
      stream.cancel();
    });
    stream.write(LeaseKeepAliveRequest.fromPartial({ ID }));
  });
}

test('300 streams of one keep-alive each at once (KeepAliveOnce): each answered with its own lease, a revoked one TTL 0', async () => {
  const leases = await Promise.all([30n, 45n, 90n].map((TTL) => member.conn().lease.grant({ ID: 0n, TTL })));
  const revoked = await member.conn().lease.grant({ ID: 0n, TTL: 60n });
  const rev = (await member.conn().lease.revoke({ ID: revoked.ID })).header!.revision;
  const ids = Array.from({ length: 300 }, (_, i) => (i % 10 === 9 ? revoked.ID : leases[i % 3].ID));
  const got = await Promise.all(ids.map(keepAliveOnce));
  got.forEach((r, i) => {
    expect(r.ID).toBe(ids[i]);
    expect(r.TTL).toBe(ids[i] === revoked.ID ? 0n : leases[i % 3].TTL);
    expect(r.header!.revision).toBeGreaterThanOrEqual(rev);
  });
});
