/**
 * Clusters of our etcd processes on 127.0.0.1: bootstrap from --initial-cluster, replication through any member,
 * leader failure under load, catch-up by snapshot, partitions (through peer proxies the test cuts).
 */
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';

interface Node {
  key: string;
  value: string;
  modifiedIndex: number;
}

async function put(m: MemberSlot, key: string, value: string, timeoutMs = 15000): Promise<Node> {
  const a = await request(m.clientURL, 'PUT', `/v2/keys${key}`, { form: `value=${encodeURIComponent(value)}`, timeoutMs });
  if (a.status !== 200 && a.status !== 201) throw new Error(`PUT ${key} via ${m.name}: ${a.status} ${a.body}`);
  return (JSON.parse(a.body) as { node: Node }).node;
}

async function get(m: MemberSlot, key: string, quorum: boolean): Promise<Node | undefined> {
  const a = await request(m.clientURL, 'GET', `/v2/keys${key}${quorum ? '?quorum=true' : ''}`, { timeoutMs: 10000 });
  if (a.status === 404) return undefined;
  if (a.status !== 200) throw new Error(`GET ${key} via ${m.name}: ${a.status} ${a.body}`);
  return (JSON.parse(a.body) as { node: Node }).node;
}

async function selfStats(m: MemberSlot): Promise<{ id: string; state: string; leaderInfo: { leader: string } }> {
  return JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self')).body) as { id: string; state: string; leaderInfo: { leader: string } };
}

/** Writes `count` keys through the given members from `workers` concurrent clients, recording what was acknowledged. */
async function writeLoad(
  targets: () => MemberSlot[],
  o: { prefix: string; count: number; workers: number; maxMs: number; onAck?: (n: number) => Promise<void> | void },
): Promise<Map<string, Node>> {
  const acked = new Map<string, Node>();
  let next = 0;
  const deadline = Date.now() + o.maxMs;
  await Promise.all(
    Array.from({ length: o.workers }, async (_, w) => {
      while (next < o.count && Date.now() < deadline) {
        const i = next++;
        const ts = targets();
        const m = ts[(i + w) % ts.length];
        const key = `${o.prefix}/${i}`;
        try {
          const node = await put(m, key, `v${i}`, 8000);
          acked.set(key, node);
          await o.onAck?.(acked.size);
        } catch {
          // Not acknowledged (the member died or there was no leader): the write may or may not have happened.
        }
      }
    }),
  );
  return acked;
}

async function expectAll(m: MemberSlot, acked: Map<string, Node>, quorum: boolean): Promise<void> {
  for (const [key, node] of acked) {
    const got = await get(m, key, quorum);
    expect({ key, value: got?.value, index: got?.modifiedIndex }).toEqual({ key, value: node.value, index: node.modifiedIndex });
  }
}

/** Heartbeats and an election timeout (ms) under which a leader is replaced only when a test makes it fail. */
const STEADY_LEADER = ['--heartbeat-interval', '100', '--election-timeout', '2500'];

describe('a 3-member cluster', () => {
  let c: TestCluster;
  beforeAll(async () => {
    // Elections only when a test causes them: an election timeout no stall of a busy test machine reaches (the
    // partition test asserts that the leader and its term never changed).
    c = await TestCluster.start(3, { args: ['--snapshot-count', '200', '--experimental-snapshot-catchup-entries', '50', ...STEADY_LEADER] });
  });
  afterAll(async () => c?.stop());

  test('starts from --initial-cluster with the IDs etcd derives, and lists its members everywhere', async () => {
    const want = c.members.map((s) => ({ id: s.id, name: s.name, peerURLs: [s.peerURL], clientURLs: [s.clientURL] })).sort((a, b) => (BigInt('0x' + a.id!) < BigInt('0x' + b.id!) ? -1 : 1));
    for (const m of c.members) {
      // Each member publishes its client URLs through the log once started: every member sees them all, soon.
      await eventually(`${m.name} to list every member`, async () => {
        const a = await request(m.clientURL, 'GET', '/v2/members');
        const { members } = JSON.parse(a.body) as { members: unknown[] };
        return JSON.stringify(members) === JSON.stringify(want) ? true : undefined;
      });
    }
  });

  test('writes through any member are read back through every other', async () => {
    for (const w of c.members) {
      const node = await put(w, `/via/${w.name}`, `written via ${w.name}`);
      for (const r of c.members) {
        expect(await get(r, `/via/${w.name}`, true)).toEqual(node);
        // A plain GET is served locally (serializable): it catches up without a quorum read.
        await eventually(`${r.name} to see ${w.name}'s write`, async () => ((await get(r, `/via/${w.name}`, false))?.value === node.value ? true : undefined));
      }
    }
  });

  test("a TTL expires at the same index on every member (the leader's clock, through the log), with etcd's headers", async () => {
    const w = c.members[1];
    const set = await request(w.clientURL, 'PUT', '/v2/keys/ttl/short?ttl=1', { form: 'value=gone-soon' });
    expect(set.status).toBe(201);
    const setIndex = (JSON.parse(set.body) as { node: { modifiedIndex: number } }).node.modifiedIndex;
    // Every member answers with its cluster, its raft index and term, and the store index.
    for (const h of ['x-etcd-cluster-id', 'x-etcd-index', 'x-raft-index', 'x-raft-term']) expect(set.headers[h]).toMatch(/^[0-9a-f]+$/);
    expect(set.headers['x-etcd-cluster-id']).toBe((await request(w.clientURL, 'GET', '/v2/members')).headers['x-etcd-cluster-id']);
    expect(Number(set.headers['x-raft-index'])).toBeGreaterThanOrEqual(setIndex);
    // Each member's history has the expiry; it must be the same event, at the same index, everywhere.
    const expiries = await Promise.all(
      c.members.map(async (m) => {
        const a = await request(m.clientURL, 'GET', `/v2/keys/ttl/short?wait=true&waitIndex=${setIndex + 1}`, { timeoutMs: 15000 });
        expect(a.headers['x-etcd-cluster-id']).toBe(set.headers['x-etcd-cluster-id']);
        return JSON.parse(a.body) as { action: string; node: { key: string; modifiedIndex: number; createdIndex: number } };
      }),
    );
    expect(expiries[0].action).toBe('expire');
    expect(expiries[0].node.createdIndex).toBe(setIndex);
    for (const e of expiries) expect(e).toEqual(expiries[0]);
    for (const m of c.members) expect((await request(m.clientURL, 'GET', '/v2/keys/ttl/short?quorum=true')).status).toBe(404);
  });

  test('the leader reports its followers (appends sent, with the time to encode them, as etcd 3.4); followers refuse /v2/stats/leader', async () => {
    type LeaderStats = { leader: string; followers: Record<string, { counts: { success: number; fail: number }; latency: Record<string, number> }> };
    const leader = await c.waitForLeader();
    const before = JSON.parse((await request(leader.clientURL, 'GET', '/v2/stats/leader')).body) as LeaderStats;
    // Each write, one after the other, goes to every follower in an append of its own.
    for (let i = 0; i < 10; i++) await put(leader, `/leader-stats/${i}`, 'x');
    const a = await request(leader.clientURL, 'GET', '/v2/stats/leader');
    const stats = JSON.parse(a.body) as LeaderStats;
    expect(stats.leader).toBe(leader.id);
    expect(Object.keys(stats.followers).sort()).toEqual(c.members.filter((m) => m !== leader).map((m) => m.id!).sort());
    for (const [id, f] of Object.entries(stats.followers)) {
      expect(f.counts.success - (before.followers[id]?.counts.success ?? 0)).toBeGreaterThanOrEqual(10);
      expect(f.counts.fail).toBe(0);
      expect(Object.keys(f.latency).sort()).toEqual(['average', 'current', 'maximum', 'minimum', 'standardDeviation']);
      expect(f.latency.minimum).toBeLessThanOrEqual(f.latency.average);
      expect(f.latency.average).toBeLessThanOrEqual(f.latency.maximum);
    }
    for (const f of c.members.filter((m) => m !== leader)) {
      expect((await request(f.clientURL, 'GET', '/v2/stats/leader')).status).toBe(403);
    }
  });

  test('/v2/stats/self: the leader counts the appends it sends, followers those they receive, all name the leader', async () => {
    const leader = await c.waitForLeader();
    const self = async (m: MemberSlot) => JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self')).body) as Record<string, unknown> & { leaderInfo: { leader: string; uptime: string; startTime: string } };
    const before = await Promise.all(c.members.map(self));
    for (let i = 0; i < 20; i++) await put(leader, `/stats/${i}`, 'x');
    const after = await Promise.all(c.members.map(self));
    c.members.forEach((m, i) => {
      const [b, a] = [before[i], after[i]];
      expect(Object.keys(a).slice(0, 6)).toEqual(['name', 'id', 'state', 'startTime', 'leaderInfo', 'recvAppendRequestCnt']);
      expect(a).toMatchObject({ name: m.name, id: m.id, state: m === leader ? 'StateLeader' : 'StateFollower' });
      expect(a.leaderInfo.leader).toBe(leader.id);
      expect(a.leaderInfo.uptime).toMatch(/^(\d+h)?(\d+m)?\d+(\.\d+)?s$|^\d+(\.\d+)?(ms|µs|ns)$/);
      const counter = m === leader ? 'sendAppendRequestCnt' : 'recvAppendRequestCnt';
      expect((a[counter] as number) - (b[counter] as number)).toBeGreaterThanOrEqual(m === leader ? 20 : 10);
    });
  });

  test('kill -9 the leader under load: a new leader, writes go on, nothing acknowledged is lost; it comes back by snapshot', async () => {
    const old = await c.waitForLeader();
    let killed = false;
    let ackedAfterKill = 0;
    const acked = await writeLoad(() => c.running(), {
      prefix: '/failover',
      count: 600,
      workers: 8,
      maxMs: 40000,
      onAck: async (n) => {
        if (killed) ackedAfterKill++;
        if (n === 100 && !killed) {
          killed = true;
          await c.kill(old);
        }
      },
    });
    expect(killed).toBe(true);
    expect(ackedAfterKill).toBeGreaterThan(100);
    const survivors = c.running();
    const leader = await c.waitForLeader(survivors);
    expect(leader).not.toBe(old);
    for (const m of survivors) await expectAll(m, acked, true);
    const metrics = (await request(survivors[0].clientURL, 'GET', '/metrics')).body;
    expect(Number(/^etcd_server_leader_changes_seen_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(metrics).toMatch(/^etcd_network_peer_sent_bytes_total\{To="[0-9a-f]+"\} [1-9]/m);
    expect(metrics).toMatch(/^etcd_network_peer_received_bytes_total\{From="[0-9a-f]+"\} [1-9]/m);
    // More than the catch-up entries were written since: the old leader's log was compacted past it.
    await c.restart(old);
    const last = [...acked.values()].sort((a, b) => b.modifiedIndex - a.modifiedIndex)[0];
    await eventually('the restarted member to catch up', async () => ((await get(old, last.key, false))?.modifiedIndex === last.modifiedIndex ? true : undefined));
    await expectAll(old, acked, false);
    expect(old.proc!.output()).toMatch(/received a snapshot/);
    // The peer metrics say the same: a snapshot received, the streams up, heartbeats' round trips measured.
    const oldMetrics = (await request(old.clientURL, 'GET', '/metrics')).body;
    expect(oldMetrics).toMatch(/^etcd_network_snapshot_receive_total_duration_seconds_count\{From="[0-9a-f]+"\} 1$/m);
    await eventually('the restarted member to count its peers active', async () => {
      const text = (await request(old.clientURL, 'GET', '/metrics')).body;
      if ([...text.matchAll(/^etcd_network_active_peers\{Local="[0-9a-f]+",Remote="[0-9a-f]+"\} 1$/gm)].length === 2) return true;
      throw new Error(`active_peers: ${text.split('\n').filter((l) => l.startsWith('etcd_network_active_peers')).join('; ')}`);
    });
    const survivorMetrics = (await request(survivors[0].clientURL, 'GET', '/metrics')).body;
    expect(survivorMetrics).toMatch(/^etcd_network_disconnected_peers_total\{Local="[0-9a-f]+",Remote="[0-9a-f]+"\} [1-9]/m);
    // Round trips are timed by heartbeats, which only a leader sends.
    const leaderMetrics = (await request((await c.waitForLeader()).clientURL, 'GET', '/metrics')).body;
    expect(leaderMetrics).toMatch(/^etcd_network_peer_round_trip_time_seconds_count\{To="[0-9a-f]+"\} [1-9]/m);
  });

  test('a partitioned follower cannot commit; the majority can; healed, it converges without disrupting the leader', async () => {
    const leader = await c.waitForLeader();
    const follower = c.members.find((m) => m !== leader && m.proc)!;
    const termBefore = Number((await request(leader.clientURL, 'GET', '/v2/keys/')).headers['x-raft-term']);
    c.partition([follower]);
    // Cut off, it soon has no leader: /health says so.
    await eventually('the isolated follower to report no leader', async () => {
      const h = await request(follower.clientURL, 'GET', '/health');
      return h.status === 503 && JSON.parse(h.body).health === 'false' ? true : undefined;
    });
    const minority = await request(follower.clientURL, 'PUT', '/v2/keys/partition/minority', { form: 'value=lost', timeoutMs: 20000 });
    expect({ status: minority.status, body: JSON.parse(minority.body) }).toEqual({
      status: 500,
      body: { errorCode: 300, message: 'Raft Internal Error', cause: 'etcdserver: request timed out', index: 0 }, // no leader at all: etcd's plain timeout
    });
    const written = await put(leader, '/partition/majority', 'kept');
    // Long enough apart for the follower to have timed out elections many times over (without PreVote it would
    // have raised its term and, healed, forced the leader to step down).
    c.heal();
    await eventually('the healed follower to converge', async () => ((await get(follower, '/partition/majority', false))?.value === written.value ? true : undefined));
    expect((await c.waitForLeader()).id).toBe(leader.id);
    expect(Number((await request(leader.clientURL, 'GET', '/v2/keys/')).headers['x-raft-term'])).toBe(termBefore);
    expect(await get(leader, '/partition/minority', true)).toBeUndefined();
  });

  test('a leader cut off from the majority is replaced; healed, it follows the new one', async () => {
    const old = await c.waitForLeader();
    c.partition([old]);
    const majority = c.running().filter((m) => m !== old);
    const leader = await c.waitForLeader(majority);
    expect(leader.id).not.toBe(old.id);
    const written = await put(leader, '/partition/new-leader', 'yes');
    c.heal();
    await eventually('the old leader to follow the new one', async () => ((await selfStats(old)).leaderInfo.leader === leader.id ? true : undefined));
    await eventually('the old leader to converge', async () => ((await get(old, '/partition/new-leader', false))?.value === written.value ? true : undefined));
  });
});

describe('stopping a leader', () => {
  let c: TestCluster;
  beforeAll(async () => {
    // The handover is judged by a successor leading before an election timeout could have passed: a long one.
    c = await TestCluster.start(3, { args: STEADY_LEADER });
  });
  afterAll(async () => c?.stop());

  test('SIGTERM on the leader hands leadership to a follower before it exits', async () => {
    const old = await c.waitForLeader();
    await put(old, '/graceful/before', '1');
    expect(await old.proc!.signal('SIGTERM')).toBe(0);
    old.proc = undefined;
    // A survivor is leader already when the old one has exited: it handed over (TimeoutNow). Had it just vanished,
    // nobody could have become leader before an election timeout passed without its heartbeats.
    const views = await Promise.all(c.running().map(selfStats));
    expect(views.filter((v) => v.state === 'StateLeader')).toHaveLength(1);
    const successor = views.find((v) => v.state === 'StateLeader')!.id;
    expect(successor).not.toBe(old.id);
    expect((await c.waitForLeader()).id).toBe(successor);
    const node = await put(c.running()[0], '/graceful/after', '2');
    for (const m of c.running()) expect(await get(m, '/graceful/after', true)).toEqual(node);
  });
});

describe('a leader that hangs', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await TestCluster.start(3);
  });
  afterAll(async () => {
    for (const m of c.members) if (m.proc) process.kill(m.proc.pid, 'SIGCONT');
    await c?.stop();
  });

  test('a frozen leader (SIGSTOP: its connections stay open, nothing answers) is replaced; thawed, it follows', async () => {
    const old = await c.waitForLeader();
    process.kill(old.proc!.pid, 'SIGSTOP');
    const survivors = c.running().filter((m) => m !== old);
    const leader = await c.waitForLeader(survivors);
    expect(leader.id).not.toBe(old.id);
    const node = await put(leader, '/frozen/after', 'elected');
    for (const m of survivors) expect(await get(m, '/frozen/after', true)).toEqual(node);
    process.kill(old.proc!.pid, 'SIGCONT');
    await eventually('the thawed leader to follow', async () => ((await selfStats(old)).leaderInfo.leader === leader.id ? true : undefined));
    await eventually('the thawed leader to catch up', async () => ((await get(old, '/frozen/after', false))?.value === node.value ? true : undefined));
  });
});

describe('a 5-member cluster', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await TestCluster.start(5);
  });
  afterAll(async () => c?.stop());

  test('replicates through every member and keeps committing with two members down', async () => {
    for (const w of c.members) {
      const node = await put(w, `/five/${w.name}`, w.name);
      for (const r of c.members) expect(await get(r, `/five/${w.name}`, true)).toEqual(node);
    }
    const leader = await c.waitForLeader();
    const victims = c.members.filter((m) => m !== leader).slice(0, 2);
    for (const v of victims) await c.kill(v);
    const node = await put(leader, '/five/after', 'two down');
    for (const r of c.running()) expect(await get(r, '/five/after', true)).toEqual(node);
  });
});
