/**
 * --initial-election-tick-advance (default true): as etcd, a member of a multi-member cluster fast-forwards its
 * election ticks once more than one peer is connected at start, so the first election need not wait a whole
 * election timeout; =false leaves the ticks alone. (A lone member campaigns at once either way.)
 */
import { TestCluster, eventually } from '../support/cluster';

jest.setTimeout(90000);

const LINE = /initialized peer connections; fast-forwarding election ticks \(local-member-id=[0-9a-f]+, forward-ticks=28, election-ticks=30\)/;

describe.each([
  ['default (true)', [] as string[], true],
  ['=false', ['--initial-election-tick-advance=false'], false],
])('--initial-election-tick-advance %s', (_, args, advances) => {
  let c: TestCluster | undefined;
  afterAll(async () => c?.stop());

  test(advances ? 'each member fast-forwards electionTicks-2 once its peers connect, then a leader is elected' : 'no member fast-forwards; a leader is still elected', async () => {
    c = await TestCluster.start(3, { args: ['--heartbeat-interval=100', '--election-timeout=3000', ...args] });
    const leader = await c.waitForLeader();
    expect(leader).toBeDefined();
    if (advances) {
      await eventually('every member to log the tick advance', async () => (c!.members.every((m) => LINE.test(m.proc!.output())) ? true : undefined));
    } else {
      for (const m of c.members) expect(m.proc!.output()).not.toMatch(/fast-forwarding election ticks/);
    }
  });
});
