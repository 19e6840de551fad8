/**
 * A rolling restart, as every operator does at upgrades: each member in turn, the leader first, is stopped (kill -9,
 * or SIGTERM) and started again at once on its data dir. After each restart every member must know the leader and
 * apply a new write within a bounded time: a member that never rejoins is an availability bug. The roll is repeated
 * so that a race between a peer's old and new incarnations shows up.
 */
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';
import { explainFailure } from '../support/real-etcd';

jest.setTimeout(240_000);

/** How long a restarted member may take to rejoin (elections are 500 ms here; streams retry within 1 s). */
const REJOIN_MS = 10_000;
const ROLLS = 3;

interface SelfStats {
  id: string;
  state: string;
  leaderInfo: { leader: string };
  recvAppendRequestCnt: number;
}

const selfStats = async (m: MemberSlot): Promise<SelfStats> => JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self', { timeoutMs: 2000 })).body) as SelfStats;

/** Every member names the same leader, which says it leads; its slot. */
async function everyoneKnowsTheLeader(c: TestCluster, what: string): Promise<MemberSlot> {
  return eventually(`${what}: every member to know the leader`, async () => {
    const views = await Promise.all(c.members.map(selfStats));
    const lead = views[0].leaderInfo.leader;
    if (!lead || views.some((v) => v.leaderInfo.leader !== lead)) {
      throw new Error(`leaders seen: ${views.map((v, i) => `${c.members[i].name}→${v.leaderInfo.leader || 'none'} (appends received ${v.recvAppendRequestCnt})`).join(', ')}`);
    }
    const i = views.findIndex((v) => v.id === lead && v.state === 'StateLeader');
    return i < 0 ? undefined : c.members[i];
  }, REJOIN_MS);
}

/** A write through `via` is acknowledged, and every member applies it (a local read sees it). */
async function everyoneAppliesAWrite(c: TestCluster, via: MemberSlot, key: string, what: string): Promise<void> {
  const node = await eventually(`${what}: a write through ${via.name} to be acknowledged`, async () => {
    const a = await request(via.clientURL, 'PUT', `/v2/keys${key}`, { form: `value=${encodeURIComponent(what)}`, timeoutMs: 3000 });
    if (a.status !== 200 && a.status !== 201) throw new Error(`PUT answered ${a.status}: ${a.body}`);
    return (JSON.parse(a.body) as { node: { value: string; modifiedIndex: number } }).node;
  }, REJOIN_MS);
  for (const m of c.members) {
    await eventually(`${what}: ${m.name} to apply the write`, async () => {
      const a = await request(m.clientURL, 'GET', `/v2/keys${key}`, { timeoutMs: 2000 });
      if (a.status !== 200) return undefined;
      const got = (JSON.parse(a.body) as { node: { value: string; modifiedIndex: number } }).node;
      return got.modifiedIndex === node.modifiedIndex && got.value === node.value ? true : undefined;
    }, REJOIN_MS);
  }
}

/** Restarts every member in turn, the leader first, each stopped by `stop` and started again at once. */
async function roll(c: TestCluster, stop: (m: MemberSlot) => Promise<void>, label: string): Promise<void> {
  for (let r = 0; r < ROLLS; r++) {
    const leader = await everyoneKnowsTheLeader(c, `${label} roll ${r}`);
    const order = [leader, ...c.members.filter((m) => m !== leader)];
    for (const m of order) {
      const what = `${label} roll ${r}, ${m.name} restarted`;
      await stop(m);
      m.proc = undefined;
      // Started at once; waiting for it to be healthy is what is asserted below, within a bound.
      await c.restart(m, false);
      await explainFailure(c.members.map((x) => ({ name: x.name, proc: x.proc! })), async () => {
        await everyoneKnowsTheLeader(c, what);
        await everyoneAppliesAWrite(c, m, `/roll/${label}/${r}/${m.name}`, what);
      });
    }
  }
}

async function withFiveWrites(): Promise<TestCluster> {
  const c = await TestCluster.start(3);
  for (let i = 0; i < 5; i++) {
    const a = await request(c.members[i % 3].clientURL, 'PUT', `/v2/keys/before/${i}`, { form: `value=${i}`, timeoutMs: 10_000 });
    expect(a.status).toBe(201);
  }
  return c;
}

describe('a rolling restart of a 3-member cluster', () => {
  let c: TestCluster | undefined;
  afterEach(async () => {
    await c?.stop();
    c = undefined;
  });

  test('kill -9 of each member in turn, the leader first: every member rejoins and applies new writes', async () => {
    c = await withFiveWrites();
    await roll(c, (m) => m.proc!.stop(), 'kill');
  });

  test('SIGTERM of each member in turn, the leader first: every member rejoins and applies new writes', async () => {
    c = await withFiveWrites();
    await roll(c, async (m) => {
      expect(await m.proc!.signal('SIGTERM')).toBe(0);
    }, 'term');
  });
});
