/**
 * A leader that stopped (SIGSTOP: a stuck process, as etcd's issue 15247) and comes back after the others elected a
 * new leader, which meanwhile expired a lease, must not renew that lease from its own stale lessor: a keep-alive it
 * answers with a TTL tells the client its lease (a lock, an election) lives when its keys are already gone.
 */
import * as grpc from '@grpc/grpc-js';
import { LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { TestCluster, eventually } from '../support/cluster';
import { connect } from '../support/watch-client';

jest.setTimeout(120_000);

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

const b = (s: string) => Buffer.from(s);

test('a keep-alive queued on a stopped leader is not answered with a TTL once the new leader expired the lease', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const other = c.members.find((m) => m !== leader)!;
  const onLeader = connect(leader.clientURL);
  const onOther = connect(other.clientURL, { timeoutMs: 5000 });
  try {
    const g = await onLeader.lease.grant({ ID: 0n, TTL: 2n });
    await onLeader.kv.put({ key: b('lock'), value: b('mine'), lease: g.ID, prevKv: false, ignoreValue: false, ignoreLease: false });
    const answers: { at: number; TTL: bigint }[] = [];
    const stream = onLeader.lease.client.leaseKeepAlive();
    stream.on('data', (r: LeaseKeepAliveResponse) => answers.push({ at: performance.now(), TTL: r.TTL }));
    stream.on('error', () => undefined);
    stream.write(LeaseKeepAliveRequest.fromPartial({ ID: g.ID }));
    await eventually('the first keep-alive answered', async () => (answers.length === 1 ? true : undefined));
    expect(answers[0].TTL).toBe(2n);

    process.kill(leader.proc!.pid, 'SIGSTOP');
    // Sent now, read by the leader only when it runs again.
    stream.write(LeaseKeepAliveRequest.fromPartial({ ID: g.ID }));
    // The others elect a leader, which gives the lease its TTL (and an election timeout) and then expires it.
    const gone = await eventually('the lease to expire on the new leader', async () => {
      const r = await onOther.kv.range({ key: b('lock'), rangeEnd: Buffer.alloc(0), limit: 0n, revision: 0n, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: false, countOnly: false, minModRevision: 0n, maxModRevision: 0n, minCreateRevision: 0n, maxCreateRevision: 0n });
      return r.kvs.length === 0 ? performance.now() : undefined;
    }, 30000);
    process.kill(leader.proc!.pid, 'SIGCONT');
    // The old leader answers the queued keep-alive (or the stream fails); it must not say the lease lives.
    await eventually('the queued keep-alive answered, or the stream ended', async () => (answers.length === 2 ? true : undefined), 20000).catch(() => undefined);
    stream.cancel();
    const late = answers.slice(1);
    expect({ goneAt: Math.round(gone), late: late.map((a) => ({ at: Math.round(a.at), TTL: a.TTL })) }).toEqual({ goneAt: Math.round(gone), late: late.map((a) => ({ at: Math.round(a.at), TTL: 0n })) });
  } finally {
    onLeader.close();
    onOther.close();
  }
});
