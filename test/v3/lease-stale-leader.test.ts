/**
 * A leader that stopped (SIGSTOP: a stuck process, as etcd's issue 15247) and comes back after the others elected a
 * new leader, which meanwhile expired a lease, must not renew that lease from its own stale lessor: a keep-alive it
 * answers with a TTL tells the client its lease (a lock, an election) lives when its keys are already gone.
 */
import * as grpc from '@grpc/grpc-js';
import { LeaseKeepAliveRequest, WatchRequest, type LeaseKeepAliveResponse, type WatchResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { Event_EventType } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { TestCluster, eventually } from '../support/cluster';
import { request } from '../support/http';
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

test('a leader that stopped and comes back does not revoke the leases the new leader keeps alive (more than it revokes at once: the rest queued)', async () => {
  c = await TestCluster.start(3);
  const leader = await c.waitForLeader();
  const [f1, f2] = c.members.filter((m) => m !== leader);
  const onLeader = connect(leader.clientURL);
  const onF1 = connect(f1.clientURL);
  const onF2 = connect(f2.clientURL);
  const ids: bigint[] = [];
  let answers = 0;
  let expired = 0;
  const stream = onF1.lease.client.leaseKeepAlive();
  let keeping: NodeJS.Timeout | undefined;
  const watch = onF2.watchClient.watch(new grpc.Metadata());
  const deleted: string[] = [];
  try {
    // 20 leases (more than the 16 revocations a lessor has in flight), each with a key, kept alive through a follower.
    for (let i = 0; i < 20; i++) {
      const g = await onLeader.lease.grant({ ID: 0n, TTL: 2n });
      await onLeader.kv.put({ key: b(`lk/${i}`), value: b('v'), lease: g.ID, prevKv: false, ignoreValue: false, ignoreLease: false });
      ids.push(g.ID);
    }
    stream.on('data', (r: LeaseKeepAliveResponse) => {
      answers++;
      if (r.TTL <= 0n) expired++;
    });
    stream.on('error', () => undefined);
    const renewAll = () => {
      for (const ID of ids) stream.write(LeaseKeepAliveRequest.fromPartial({ ID }));
    };
    renewAll();
    keeping = setInterval(renewAll, 400); // the client's keep-alive schedule (a third of the TTL, and some)
    await eventually('every lease renewed once', async () => (answers >= 20 ? true : undefined));
    watch.on('data', (r: WatchResponse) => {
      for (const e of r.events) if (e.type === Event_EventType.DELETE) deleted.push(e.kv!.key.toString());
    });
    watch.on('error', () => undefined);
    watch.write(WatchRequest.fromPartial({ createRequest: { key: b('lk/'), rangeEnd: b('lk0') } }));

    // The leader stops (a stuck process) for longer than the TTL: by its own clock every lease expires.
    process.kill(leader.proc!.pid, 'SIGSTOP');
    const stoppedAt = performance.now();
    const next = await eventually('a new leader among the others', async () => {
      const views = await Promise.all([f1, f2].map(async (m) => JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self', { timeoutMs: 1000 })).body) as { leaderInfo: { leader: string } }));
      const lead = views[0].leaderInfo.leader;
      return lead && lead !== leader.id && views.every((v) => v.leaderInfo.leader === lead) ? lead : undefined;
    });
    const answersBefore = answers;
    await eventually('the new leader to renew the leases', async () => (answers >= answersBefore + 20 ? true : undefined));
    // The fault's length (as the robustness runs hold theirs), past the TTL and the new leader's extension.
    await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + 3500 - performance.now())));
    process.kill(leader.proc!.pid, 'SIGCONT');
    await eventually(`${leader.name} to follow ${next}`, async () => ((JSON.parse((await request(leader.clientURL, 'GET', '/v2/stats/self')).body) as { state: string }).state === 'StateFollower' ? true : undefined));
    // Watched for longer than a revocation proposed then could wait (the request timeout, 6 s here), while the
    // follower goes on renewing every lease: none is revoked, no key goes.
    const until = performance.now() + 8000;
    await eventually('the observation window to pass, or a key to go', async () => (deleted.length > 0 || performance.now() > until ? true : undefined), 20000);
    const left = await onF2.kv.range({ key: b('lk/'), rangeEnd: b('lk0'), limit: 0n, revision: 0n, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: true, countOnly: false, minModRevision: 0n, maxModRevision: 0n, minCreateRevision: 0n, maxCreateRevision: 0n });
    expect({ deleted, left: left.kvs.length, expiredAnswers: expired }).toEqual({ deleted: [], left: 20, expiredAnswers: 0 });
  } finally {
    if (keeping) clearInterval(keeping);
    stream.cancel();
    watch.cancel();
    onLeader.close();
    onF1.close();
    onF2.close();
  }
});
