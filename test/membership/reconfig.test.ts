import { Cluster } from '../../server/membership/cluster';
import {
  HEALTH_INTERVAL_MS, NotEnoughStartedMembersError, UnhealthyClusterError, checkAddMember, checkAddVotingMember, checkPromoteMember, checkRemoveVotingMember,
} from '../../server/membership/reconfig';

/** Three started members; `connectedAt` says since when this member hears each (undefined: not connected). */
function setup(connectedAt: Record<string, number | undefined>) {
  const c = Cluster.fromInitialCluster(['a', 'b', 'c'].map((n) => ({ name: n, peerURLs: [`http://${n}:2380`] })), 't');
  const ids = c.list().map((m) => m.id);
  const byName = Object.fromEntries(c.list().map((m) => [m.name, m.id]));
  const since = (id: string, t: number): boolean => {
    const name = Object.keys(byName).find((n) => byName[n] === id)!;
    const at = connectedAt[name];
    return at !== undefined && at < t;
  };
  return { c, ids, byName, since };
}

const now = 100_000;

test('adding a voter: refused until this member has heard every voter for the health interval', () => {
  const fresh = setup({ a: 0, b: 0, c: now - HEALTH_INTERVAL_MS + 1 });
  expect(() => checkAddVotingMember(fresh.c, fresh.since, now)).toThrow(UnhealthyClusterError);
  const settled = setup({ a: 0, b: 0, c: now - HEALTH_INTERVAL_MS - 1 });
  expect(() => checkAddVotingMember(settled.c, settled.since, now)).not.toThrow();
});

test('adding a voter: refused while too few members have started (published)', () => {
  const s = setup({ a: 0, b: 0, c: 0 });
  s.c.add({ id: 'dd', name: '', peerURLs: ['http://d:2380'], clientURLs: [], isLearner: false });
  s.c.add({ id: 'ee', name: '', peerURLs: ['http://e:2380'], clientURLs: [], isLearner: false });
  // 3 started of 6 after the addition: no quorum of started members.
  expect(() => checkAddVotingMember(s.c, (id, t) => id === 'dd' || id === 'ee' || s.since(id, t), now)).toThrow(NotEnoughStartedMembersError);
  expect(() => checkAddVotingMember(s.c, () => true, now)).toThrow('etcdserver: re-configuration failed due to not enough started members');
  // A learner does not count toward the quorum: it may be added, once this member hears every voter.
  expect(() => checkAddMember(s.c, true, () => true, now)).not.toThrow();
  expect(() => checkAddMember(s.c, true, (id) => id !== 'dd', now)).toThrow(UnhealthyClusterError);
  // Promoting a learner: it counts as a started voter. 3 started of 5 voters, plus it: 4 of 6, a quorum.
  expect(() => checkPromoteMember(s.c)).not.toThrow();
  // With 7 voters of which 3 started: 4 of 8 is none.
  s.c.add({ id: 'ff', name: '', peerURLs: ['http://f:2380'], clientURLs: [], isLearner: false });
  s.c.add({ id: 'ab', name: '', peerURLs: ['http://g:2380'], clientURLs: [], isLearner: false });
  expect(() => checkPromoteMember(s.c)).toThrow(NotEnoughStartedMembersError);
});

test('removing a voter that is down is allowed without a quorum of connected members; too few started is refused', () => {
  const s = setup({ a: 0, b: undefined, c: undefined });
  const active = (id: string) => id === s.byName.a;
  // Removing b (down): allowed, as etcd allows it (it is not part of the active quorum).
  expect(() => checkRemoveVotingMember(s.c, s.byName.b, s.since, now, s.byName.a, active)).not.toThrow();
  // Removing c while it is up but b is down: a alone of a and b is no quorum.
  expect(() => checkRemoveVotingMember(s.c, s.byName.c, s.since, now, s.byName.a, () => true)).toThrow(UnhealthyClusterError);
  const unstarted = setup({ a: 0, b: 0, c: 0 });
  unstarted.c.add({ id: 'dd', name: '', peerURLs: ['http://d:2380'], clientURLs: [], isLearner: false });
  unstarted.c.add({ id: 'ee', name: '', peerURLs: ['http://e:2380'], clientURLs: [], isLearner: false });
  expect(() => checkRemoveVotingMember(unstarted.c, unstarted.byName.a, () => true, now)).toThrow(NotEnoughStartedMembersError);
});

test('removing a voter: needs a quorum of the members that stay connected for the health interval', () => {
  const s = setup({ a: 0, b: undefined, c: 0 });
  // Removing c leaves a and b; only a is connected: 1 of 2 is no quorum.
  expect(() => checkRemoveVotingMember(s.c, s.byName.c, s.since, now)).toThrow(UnhealthyClusterError);
  // Removing b (the unreachable one) leaves a and c, both connected.
  expect(() => checkRemoveVotingMember(s.c, s.byName.b, s.since, now)).not.toThrow();
});
