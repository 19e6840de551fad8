import { Cluster, Member, MembershipError, newRuntimeMember, v2Member } from '../../server/membership/cluster';
import { clusterId, memberId } from '../../server/membership/ids';

const initial = [
  { name: 'my-etcd-1', peerURLs: ['http://10.240.0.1:2380'] },
  { name: 'my-etcd-2', peerURLs: ['http://10.240.0.2:2380'] },
  { name: 'my-etcd-3', peerURLs: ['http://10.240.0.3:2380'] },
];

function started(c: Cluster, ...names: string[]): void {
  for (const m of c.list()) if (names.includes(initialName(m))) c.updateAttributes(m.id, initialName(m), [`http://${m.peerURLs[0].slice(7, -5)}:2379`]);
}

function initialName(m: Member): string {
  return initial.find((i) => i.peerURLs[0] === m.peerURLs[0])?.name ?? '';
}

function kindOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof MembershipError) return err.kind;
    throw err;
  }
  return 'ok';
}

describe('the cluster membership', () => {
  test('a bootstrap from --initial-cluster has etcd IDs, lists members by ID, with names but no client URLs until published', () => {
    const c = Cluster.fromInitialCluster(initial, 'my-etcd-token');
    const ids = initial.map((m) => memberId(m.peerURLs, 'my-etcd-token'));
    expect(c.id).toBe(clusterId(ids));
    expect(c.list().map((m) => m.id)).toEqual([...ids].sort((a, b) => (BigInt('0x' + a) < BigInt('0x' + b) ? -1 : 1)));
    expect(c.list().map((m) => m.name).sort()).toEqual(['my-etcd-1', 'my-etcd-2', 'my-etcd-3']);
    expect(c.list().every((m) => m.clientURLs.length === 0)).toBe(true);
    started(c, 'my-etcd-1');
    expect(c.memberByName('my-etcd-1')?.clientURLs).toEqual(['http://10.240.0.1:2379']);
    expect(v2Member(c.memberByName('my-etcd-1')!)).toEqual({ id: ids[0], name: 'my-etcd-1', peerURLs: ['http://10.240.0.1:2380'], clientURLs: ['http://10.240.0.1:2379'] });
  });

  test("another token gives other IDs (a member of another cluster is recognisably foreign)", () => {
    const a = Cluster.fromInitialCluster(initial, 'token-a');
    const b = Cluster.fromInitialCluster(initial, 'token-b');
    expect(a.id).not.toBe(b.id);
    expect(a.list()[0].id).not.toBe(b.list()[0].id);
  });

  test("add, update and remove with etcd's refusals", () => {
    const c = Cluster.fromInitialCluster(initial, 't');
    started(c, 'my-etcd-1', 'my-etcd-2', 'my-etcd-3');
    const m4 = newRuntimeMember(['http://10.240.0.4:2380'], 1_700_000_000_000);
    c.add(m4);
    expect(c.list()).toHaveLength(4);
    expect(kindOf(() => c.add(m4))).toBe('IDExists');
    expect(kindOf(() => c.add(newRuntimeMember(['http://10.240.0.4:2380'], 1_700_000_009_000)))).toBe('PeerURLExists');
    expect(kindOf(() => c.updatePeerURLs(m4.id, ['http://10.240.0.1:2380']))).toBe('PeerURLExists');
    c.updatePeerURLs(m4.id, ['http://10.240.0.44:2380']);
    expect(c.get(m4.id)?.peerURLs).toEqual(['http://10.240.0.44:2380']);
    c.remove(m4.id);
    expect(kindOf(() => c.remove(m4.id))).toBe('IDRemoved');
    expect(kindOf(() => c.add({ ...m4, peerURLs: ['http://10.240.0.5:2380'] }))).toBe('IDRemoved');
    expect(kindOf(() => c.remove('abcdef'))).toBe('IDNotFound');
    expect(kindOf(() => c.updatePeerURLs('abcdef', ['http://x:1']))).toBe('IDNotFound');
  });

  test('one learner at a time, and only a learner is promoted', () => {
    const c = Cluster.fromInitialCluster(initial, 't');
    const l1 = newRuntimeMember(['http://10.240.0.4:2380'], 1, true);
    const l2 = newRuntimeMember(['http://10.240.0.5:2380'], 2, true);
    c.add(l1);
    expect(kindOf(() => c.add(l2))).toBe('TooManyLearners');
    expect(kindOf(() => c.promote(c.list().find((m) => !m.isLearner)!.id))).toBe('MemberNotLearner');
    c.promote(l1.id);
    expect(c.get(l1.id)?.isLearner).toBe(false);
  });

  test.each([
    // [members started of 3, can add a voter, can remove a started member]
    [3, true, true],
    [2, false, false], // a 4th voter would leave 2 started of 4; removing a started one leaves 1 of 2
    [1, false, false],
  ])('strict reconfiguration: %i of 3 started → add %s, remove %s', (n, canAdd, canRemove) => {
    // One bootstrap member (started), two added at runtime that have not all published themselves yet.
    const c = Cluster.fromInitialCluster(initial.slice(0, 1), 't');
    const added = [newRuntimeMember(['http://10.240.0.2:2380'], 1), newRuntimeMember(['http://10.240.0.3:2380'], 2)];
    for (const m of added) c.add(m);
    added.slice(0, n - 1).forEach((m, i) => c.updateAttributes(m.id, `added-${i}`, ['http://x:2379']));
    expect(c.isReadyToAddVotingMember()).toBe(canAdd);
    expect(c.isReadyToRemoveVotingMember(c.memberByName('my-etcd-1')!.id)).toBe(canRemove);
  });

  test('a one-member cluster may always grow to two', () => {
    const c = Cluster.fromInitialCluster(initial.slice(0, 1), 't');
    expect(c.isReadyToAddVotingMember()).toBe(true);
    c.add(newRuntimeMember(['http://10.240.0.2:2380'], 5));
    // The new member has not started: a third would leave 1 started of 3.
    expect(c.isReadyToAddVotingMember()).toBe(false);
  });

  test('snapshot round trip keeps members and removed IDs', () => {
    const c = Cluster.fromInitialCluster(initial, 't');
    started(c, 'my-etcd-2');
    const gone = c.list()[0].id;
    c.remove(gone);
    const back = Cluster.fromJSON(JSON.parse(JSON.stringify(c.toJSON())));
    expect(back.list()).toEqual(c.list());
    expect(back.isRemoved(gone)).toBe(true);
    expect(back.id).toBe(c.id);
  });
});
