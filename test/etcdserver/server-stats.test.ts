import { ServerStats, goDuration } from '../../server/etcdserver/server-stats';

describe("Go's duration strings", () => {
  test.each([
    [0, '0s'],
    [0.0005, '500ns'],
    [0.0015, '1.5µs'],
    [1.5, '1.5ms'],
    [1000, '1s'],
    [315767.423215, '5m15.767423215s'],
    [3723500, '1h2m3.5s'],
    [3600000, '1h0m0s'],
  ])('%p ms is %s', (ms, text) => {
    expect(goDuration(ms)).toBe(text);
  });
});

describe('/v2/stats/self counters', () => {
  test('a follower counts appends and their rate; the rate is gone a second after the last one', () => {
    let now = 1_000_000;
    const s = new ServerStats(() => 'f1', () => now);
    for (let i = 0; i < 11; i++) {
      s.recvAppendReq('l1', 100);
      now += 100;
    }
    const j = JSON.parse(s.json('f', 'StateFollower'));
    expect(j).toMatchObject({ name: 'f', id: 'f1', state: 'StateFollower', recvAppendRequestCnt: 11, sendAppendRequestCnt: 0, leaderInfo: { leader: 'l1', uptime: '1.1s' } });
    expect(j.recvPkgRate).toBeCloseTo(11, 5); // 11 requests over the 1 s between the first and the last
    expect(j.recvBandwidthRate).toBeCloseTo(1100, 5);
    expect(j.sendPkgRate).toBeUndefined();
    now += 2000;
    expect(JSON.parse(s.json('f', 'StateFollower')).recvPkgRate).toBeUndefined();
  });

  test('becoming leader restarts the leader uptime and names this member', () => {
    let now = 5000;
    const s = new ServerStats(() => 'me', () => now);
    s.recvAppendReq('other', 10);
    now += 3000;
    s.sendAppendReq(10);
    now += 250;
    const j = JSON.parse(s.json('n', 'StateLeader'));
    expect(j.leaderInfo).toMatchObject({ leader: 'me', uptime: '250ms' });
    expect(j.sendAppendRequestCnt).toBe(1);
  });
});
