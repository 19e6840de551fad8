import {
  ConfChangeType,
  MemoryStorage,
  MessageType,
  ProgressState,
  ProposalDroppedError,
  ReadOnlyOption,
  StateType,
} from '../../server/raft';
import { Cluster, TestNode, countOf, logTerms } from './cluster';

function cluster3(opts = {}): Cluster {
  const c = new Cluster(['1', '2', '3'], opts);
  c.campaign('1');
  return c;
}

describe('snapshots and log compaction', () => {
  function compact(n: TestNode, upTo: number): void {
    const cs = n.raft.trk.confState();
    n.storage.createSnapshot(upTo, cs, Buffer.from(JSON.stringify(n.appliedData())));
    n.storage.compact(upTo);
  }

  test('a follower behind the compacted log gets a snapshot and catches up', () => {
    const c = cluster3();
    c.isolate('3');
    for (let i = 0; i < 20; i++) c.propose('1', `v${i}`);
    const leader = c.get('1');
    const applied = leader.raft.raftLog.applied;
    compact(leader, applied);
    expect(leader.raft.raftLog.firstIndex()).toBe(applied + 1);
    c.heal();
    c.tick('1', 1);
    expect(countOf(c.delivered, MessageType.Snap, (m) => m.to === '3')).toBe(1);
    const f = c.get('3');
    expect(f.storage.snapshot().metadata.index).toBe(applied);
    expect(JSON.parse(Buffer.from(f.storage.snapshot().data).toString())).toHaveLength(20);
    c.propose('1', 'after');
    expect(f.appliedData()).toEqual(['after']);
    expect(logTerms(f)).toEqual(logTerms(leader));
    expect(leader.raft.trk.progress.get('3')!.state).toBe(ProgressState.Replicate);
  });

  test('a failed snapshot send puts the follower back in Probe, and it is retried', () => {
    const c = cluster3();
    c.isolate('3');
    for (let i = 0; i < 5; i++) c.propose('1', `v${i}`);
    compact(c.get('1'), c.get('1').raft.raftLog.applied);
    c.heal();
    c.dropIf = (m) => m.type === MessageType.Snap;
    c.tick('1', 1);
    const pr = () => c.get('1').raft.trk.progress.get('3')!;
    expect(pr().state).toBe(ProgressState.Snapshot);
    c.get('1').node.reportSnapshot('3', false);
    expect(pr().state).toBe(ProgressState.Probe);
    c.dropIf = () => false;
    c.tick('1', 1);
    c.tick('1', 1);
    expect(pr().state).toBe(ProgressState.Replicate);
    expect(c.get('3').storage.snapshot().metadata.index).toBeGreaterThan(0);
  });

  test('a node restarts from its storage (snapshot + entries) with the same state', () => {
    const c = cluster3();
    for (let i = 0; i < 5; i++) c.propose('1', `v${i}`);
    const n = c.get('2');
    const hs = n.storage.hardStateNow();
    const restarted = new TestNode('2', {}, n.storage);
    expect(restarted.raft.term).toBe(hs.term);
    expect(restarted.raft.vote).toBe(hs.vote);
    expect(restarted.raft.raftLog.committed).toBe(hs.commit);
    expect(restarted.raft.raftLog.lastIndex()).toBe(n.raft.raftLog.lastIndex());
    // Committed entries are handed out again to rebuild the state machine.
    c.add(restarted);
    c.stabilize();
    expect(restarted.appliedData()).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });
});

describe('membership changes, one server at a time', () => {
  test('adding a voter: it catches up and counts toward the quorum', () => {
    const c = cluster3();
    c.propose('1', 'before');
    c.get('1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' });
    c.stabilize();
    expect(c.get('1').raft.trk.confState().voters).toEqual(['1', '2', '3', '4']);
    c.add(new TestNode('4', {}, new MemoryStorage()));
    c.tick('1', 1);
    expect(c.get('4').appliedData()).toEqual(['before']);
    expect(c.get('4').raft.trk.confState().voters).toEqual(['1', '2', '3', '4']);
    // Quorum is now 3 of 4: with 3 and 4 cut away, 1 and 2 cannot commit.
    c.isolate('3');
    c.isolate('4');
    c.propose('1', 'needs-three');
    expect(c.get('1').appliedData()).toEqual(['before']);
    c.heal();
    c.tick('1', 1);
    expect(c.get('4').appliedData()).toEqual(['before', 'needs-three']);
  });

  test('a new member whose first snapshot predates its own addition still joins', () => {
    const c = cluster3();
    for (let i = 0; i < 5; i++) c.propose('1', `v${i}`);
    const leader = c.get('1');
    // The leader's latest snapshot is taken before member 4 is added, and the log before it is compacted.
    leader.storage.createSnapshot(leader.raft.raftLog.applied, leader.raft.trk.confState(), Buffer.from('state'));
    leader.storage.compact(leader.raft.raftLog.applied);
    leader.node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' });
    c.stabilize();
    c.add(new TestNode('4', {}, new MemoryStorage()));
    c.tick('1', 1);
    const n4 = c.get('4');
    expect(n4.storage.snapshot().metadata.confState.voters).toEqual(['1', '2', '3']);
    // It applied its own addition from the log after the snapshot, and is now a voter that can lead.
    expect(n4.raft.trk.confState().voters).toEqual(['1', '2', '3', '4']);
    c.propose('1', 'after');
    expect(n4.appliedData()).toEqual(['after']);
    c.campaign('4');
    expect(c.leader()).toBe('4');
  });

  test('removing a voter shrinks the quorum', () => {
    const c = cluster3();
    c.get('1').node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: '3' });
    c.stabilize();
    expect(c.get('1').raft.trk.confState().voters).toEqual(['1', '2']);
    c.isolate('3');
    c.cutLink('1', '2');
    c.heal();
    c.isolate('3');
    c.propose('1', 'two-of-two');
    expect(c.get('2').appliedData()).toEqual(['two-of-two']);
  });

  test('only one configuration change may be pending at a time', () => {
    const c = cluster3();
    const leader = c.get('1').node;
    leader.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' });
    expect(() => leader.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '5' })).toThrow(ProposalDroppedError);
    c.stabilize();
    leader.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '5' });
    c.stabilize();
    expect(c.get('1').raft.trk.confState().voters).toEqual(['1', '2', '3', '4', '5']);
  });

  test('a new leader may not change the configuration before its first entry is applied', () => {
    const c = new Cluster(['1', '2', '3']);
    c.get('1').node.campaign();
    // Deliver the votes but not yet the appends of the new term.
    c.dropIf = (m) => m.type === MessageType.App;
    c.stabilize();
    expect(c.get('1').state).toBe(StateType.Leader);
    expect(() => c.get('1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' })).toThrow(/pending/);
    c.dropIf = () => false;
    c.tick('1', 1);
    expect(() => c.get('1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' })).not.toThrow();
  });

  test('a learner receives the log, does not vote or count, and can be promoted', () => {
    const c = cluster3();
    c.get('1').node.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: '4' });
    c.stabilize();
    c.add(new TestNode('4', {}, new MemoryStorage()));
    c.propose('1', 'x');
    expect(c.get('4').appliedData()).toEqual(['x']);
    expect(c.get('1').raft.trk.confState()).toEqual({ voters: ['1', '2', '3'], learners: ['4'] });
    expect(c.get('4').raft.isLearner).toBe(true);
    // A learner never campaigns.
    c.isolate('4');
    c.tick('4', 50);
    expect(c.get('4').state).toBe(StateType.Follower);
    c.heal();
    // It does not count: with 2 and 3 away, leader + learner cannot commit.
    c.isolate('2');
    c.isolate('3');
    c.propose('1', 'no-quorum');
    expect(c.get('1').appliedData()).toEqual(['x']);
    c.heal();
    c.tick('1', 1);
    // Promotion.
    c.get('1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: '4' });
    c.stabilize();
    expect(c.get('1').raft.trk.confState()).toEqual({ voters: ['1', '2', '3', '4'], learners: [] });
    expect(c.get('4').raft.isLearner).toBe(false);
  });

  test('a removed leader steps down and hands leadership to another member at once', () => {
    const c = cluster3();
    c.get('1').node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: '1' });
    c.stabilize();
    expect(c.get('1').state).toBe(StateType.Follower);
    const leaders = c.leaders();
    expect(leaders).toHaveLength(1);
    expect(['2', '3']).toContain(leaders[0]);
    c.propose(leaders[0], 'after-removal');
    expect(c.get('2').appliedData()).toEqual(['after-removal']);
    expect(c.get('3').appliedData()).toEqual(['after-removal']);
    // The removed member does not campaign.
    c.isolate('1');
    c.tick('1', 50);
    expect(c.get('1').state).toBe(StateType.Follower);
  });
});

describe('leader transfer', () => {
  test('to an up-to-date follower: TimeoutNow, and it wins the next term', () => {
    const c = cluster3();
    const term = c.get('1').raft.term;
    c.get('1').node.transferLeader('2');
    c.stabilize();
    expect(c.leader()).toBe('2');
    expect(c.get('2').raft.term).toBe(term + 1);
    expect(countOf(c.delivered, MessageType.TimeoutNow)).toBe(1);
  });

  test('to a lagging follower: the leader first catches it up', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.isolate('3');
    c.propose('1', 'x');
    c.heal();
    c.get('1').node.transferLeader('3');
    c.stabilize();
    expect(c.leader()).toBe('3');
    expect(c.get('3').appliedData()).toEqual(['x']);
  });

  test('proposals are refused during a transfer, which is abandoned after an election timeout', () => {
    const c = cluster3();
    c.isolate('3');
    c.get('1').node.transferLeader('3');
    c.stabilize();
    expect(() => c.get('1').node.propose(Buffer.from('x'))).toThrow(/transferred/);
    c.tick('1', 10);
    expect(c.get('1').raft.leadTransferee).toBe('');
    c.propose('1', 'x');
    expect(c.get('2').appliedData()).toEqual(['x']);
  });

  test('a transfer asked of a follower is forwarded to the leader', () => {
    const c = cluster3();
    c.get('2').node.transferLeader('3');
    c.stabilize();
    expect(c.leader()).toBe('3');
  });

  test('a transfer to the leader itself, or to a learner, does nothing', () => {
    const c = cluster3();
    c.get('1').node.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: '4' });
    c.stabilize();
    c.add(new TestNode('4', {}, new MemoryStorage()));
    c.tick('1', 1);
    const term = c.get('1').raft.term;
    c.get('1').node.transferLeader('1');
    c.get('1').node.transferLeader('4');
    c.stabilize();
    expect(c.leader()).toBe('1');
    expect(c.get('1').raft.term).toBe(term);
  });
});

describe('ReadIndex', () => {
  const ctx = (s: string) => Buffer.from(s);
  const readsOf = (n: TestNode) => n.readStates.map((r) => [Buffer.from(r.requestCtx).toString(), r.index]);

  test('on the leader: answered with the commit index once a quorum confirms leadership', () => {
    const c = cluster3();
    c.propose('1', 'x');
    const commit = c.get('1').raft.raftLog.committed;
    const before = c.delivered.length;
    c.get('1').node.readIndex(ctx('r1'));
    c.stabilize();
    expect(readsOf(c.get('1'))).toEqual([['r1', commit]]);
    // Confirmed by a heartbeat round, not by writing to the log.
    expect(countOf(c.delivered.slice(before), MessageType.Heartbeat)).toBe(2);
    expect(c.get('1').raft.raftLog.lastIndex()).toBe(commit);
  });

  test('on a follower: forwarded, answered with the leader commit index', () => {
    const c = cluster3();
    c.propose('1', 'x');
    c.get('3').node.readIndex(ctx('r2'));
    c.stabilize();
    expect(readsOf(c.get('3'))).toEqual([['r2', c.get('1').raft.raftLog.committed]]);
  });

  test('a leader cut off from the quorum cannot answer', () => {
    const c = cluster3();
    c.isolate('1');
    c.get('1').node.readIndex(ctx('r3'));
    c.stabilize();
    c.tick('1', 3);
    expect(readsOf(c.get('1'))).toEqual([]);
  });

  test('with no leader a read index is refused', () => {
    const c = new Cluster(['1', '2', '3']);
    expect(() => c.get('2').node.readIndex(ctx('r'))).toThrow(ProposalDroppedError);
  });

  test('a new leader holds reads until it has committed an entry of its term', () => {
    const c = new Cluster(['1', '2', '3']);
    c.get('1').node.campaign();
    c.dropIf = (m) => m.type === MessageType.AppResp;
    c.stabilize();
    c.get('1').node.readIndex(ctx('r4'));
    c.stabilize();
    expect(readsOf(c.get('1'))).toEqual([]);
    c.dropIf = () => false;
    c.tick('1', 1);
    expect(readsOf(c.get('1'))).toEqual([['r4', c.get('1').raft.raftLog.committed]]);
  });

  test('lease-based reads (behind CheckQuorum) are answered without a heartbeat round', () => {
    const c = cluster3({ checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased });
    c.propose('1', 'x');
    const before = c.delivered.length;
    c.get('1').node.readIndex(ctx('r5'));
    c.stabilize();
    expect(readsOf(c.get('1'))).toEqual([['r5', c.get('1').raft.raftLog.committed]]);
    expect(countOf(c.delivered.slice(before), MessageType.Heartbeat)).toBe(0);
  });

  test('a single-node cluster answers at once', () => {
    const c = new Cluster(['1']);
    c.campaign('1');
    c.get('1').node.readIndex(ctx('r6'));
    c.stabilize();
    expect(readsOf(c.get('1'))).toEqual([['r6', c.get('1').raft.raftLog.committed]]);
  });
});
