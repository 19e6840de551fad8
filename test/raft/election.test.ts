import { MemoryStorage, MessageType, NONE, Raft, StateType, makeMessage } from '../../server/raft';
import { Cluster, TestNode, storageWithTerms } from './cluster';

describe('elections', () => {
  test('a single node elects itself after the election timeout and commits proposals', () => {
    const c = new Cluster(['1']);
    expect(c.get('1').state).toBe(StateType.Follower);
    c.tick('1', 9);
    expect(c.get('1').state).toBe(StateType.Follower);
    c.tick('1', 1);
    expect(c.get('1').state).toBe(StateType.Leader);
    expect(c.get('1').raft.term).toBe(2); // bootstrap is term 1
    c.propose('1', 'hello');
    expect(c.get('1').appliedData()).toEqual(['hello']);
  });

  test('the randomized election timeout stays in [electionTick, 2*electionTick)', () => {
    const seen = new Set<number>();
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const n = new TestNode('1', { random: () => r });
      seen.add(n.raft.randomizedElectionTimeout);
      expect(n.raft.randomizedElectionTimeout).toBeGreaterThanOrEqual(10);
      expect(n.raft.randomizedElectionTimeout).toBeLessThan(20);
    }
    expect([...seen].sort()).toEqual([10, 12, 15, 19]);
  });

  test('three nodes elect one leader; the others follow it in the same term', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    expect(c.leader()).toBe('1');
    for (const id of ['2', '3']) {
      expect(c.get(id).state).toBe(StateType.Follower);
      expect(c.get(id).raft.lead).toBe('1');
      expect(c.get(id).raft.term).toBe(c.get('1').raft.term);
    }
  });

  test('a new leader appends an empty entry of its term and commits it', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('2');
    const r = c.get('2').raft;
    const last = r.raftLog.lastIndex();
    expect(r.raftLog.term(last)).toBe(r.term);
    expect(r.raftLog.committed).toBe(last);
    const [e] = r.raftLog.slice(last, last + 1, Infinity);
    expect(e.data.length).toBe(0);
  });

  test('a node grants one vote per term', () => {
    const n = new TestNode('1', {}, new MemoryStorage({ voters: ['1', '2', '3'], learners: [] }));
    n.node.step(makeMessage({ type: MessageType.Vote, from: '2', to: '1', term: 5 }));
    n.node.step(makeMessage({ type: MessageType.Vote, from: '3', to: '1', term: 5 }));
    const msgs = n.handleReady();
    expect(msgs.map((m) => [m.to, m.type, m.reject])).toEqual([
      ['2', MessageType.VoteResp, false],
      ['3', MessageType.VoteResp, true],
    ]);
    expect(n.storage.hardStateNow().vote).toBe('2');
  });

  test.each([
    // [voter log terms, candidate last index, candidate last term, granted]
    [[1, 2], 2, 2, true], // same log
    [[1, 2], 3, 2, true], // longer with same last term
    [[1, 2], 1, 2, false], // shorter with same last term
    [[1, 2], 5, 1, false], // longer but older last term
    [[1, 2], 1, 3, true], // shorter but newer last term
  ])('the vote rule: voter log %j, candidate (%i, term %i) → granted %s', (terms, lastIndex, lastTerm, granted) => {
    const n = new TestNode('1', {}, storageWithTerms(terms, ['1', '2'], 2));
    n.node.step(makeMessage({ type: MessageType.Vote, from: '2', to: '1', term: 4, index: lastIndex, logTerm: lastTerm }));
    const [resp] = n.handleReady();
    expect(resp.type).toBe(MessageType.VoteResp);
    expect(resp.reject).toBe(!granted);
  });

  test('a leader steps down when it sees a higher term', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    const term = c.get('1').raft.term;
    c.get('1').node.step(makeMessage({ type: MessageType.App, from: '3', to: '1', term: term + 1 }));
    expect(c.get('1').state).toBe(StateType.Follower);
    expect(c.get('1').raft.term).toBe(term + 1);
    expect(c.get('1').raft.lead).toBe('3');
  });

  test('a candidate that loses the vote (stale log) becomes a follower', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    c.propose('1', 'x');
    // Node 3 missed nothing, but craft a node that is behind: isolate 3, write more, then let 3 campaign.
    c.isolate('3');
    c.propose('1', 'y');
    c.heal();
    c.campaign('3');
    expect(c.get('3').state).not.toBe(StateType.Leader);
    expect(c.leaders().length).toBeLessThanOrEqual(1);
    // The cluster still converges on a leader holding 'y'.
    c.campaign('1');
    expect(c.leader()).toBe('1');
    c.propose('1', 'z');
    for (const id of ['1', '2', '3']) expect(c.get(id).appliedData()).toEqual(['x', 'y', 'z']);
  });

  test('a split vote elects nobody; the next election resolves it', () => {
    const c = new Cluster(['1', '2', '3', '4']);
    c.cutLink('1', '4');
    c.cutLink('2', '3');
    c.get('1').node.campaign();
    c.get('2').node.campaign();
    c.stabilize();
    // 1 has votes {1,3}, 2 has {2,4}: neither has 3 of 4.
    expect(c.leaders()).toEqual([]);
    expect(c.get('1').state).toBe(StateType.Candidate);
    expect(c.get('2').state).toBe(StateType.Candidate);
    c.heal();
    c.campaign('1');
    expect(c.leader()).toBe('1');
  });
});

describe('PreVote', () => {
  test('an isolated node does not increase its term, and does not disrupt the leader when it rejoins', () => {
    const c = new Cluster(['1', '2', '3'], { preVote: true });
    c.campaign('1');
    const term = c.get('1').raft.term;
    c.isolate('3');
    // Node 3 times out repeatedly while cut off.
    for (let i = 0; i < 5; i++) c.tick('3', 20);
    expect(c.get('3').raft.term).toBe(term);
    expect(c.get('3').state).toBe(StateType.PreCandidate);
    c.heal();
    c.tick('1', 1); // a heartbeat brings 3 back
    expect(c.leader()).toBe('1');
    expect(c.get('1').raft.term).toBe(term);
    expect(c.get('3').state).toBe(StateType.Follower);
    expect(c.get('3').raft.lead).toBe('1');
  });

  test('without PreVote the same rejoining node forces a new term (the disruption PreVote prevents)', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    const term = c.get('1').raft.term;
    c.isolate('3');
    for (let i = 0; i < 5; i++) c.tick('3', 20);
    expect(c.get('3').raft.term).toBeGreaterThan(term + 3);
    c.heal();
    // The stale heartbeat from 1 is ignored by 3, whose next campaign then deposes the healthy leader.
    c.tick('1', 1);
    expect(c.get('1').state).toBe(StateType.Leader);
    c.tick('3', 20);
    expect(c.get('1').state).not.toBe(StateType.Leader);
    expect(c.get('1').raft.term).toBeGreaterThan(term);
  });

  test('a pre-candidate moves to the new term only after winning the pre-vote', () => {
    const c = new Cluster(['1', '2', '3'], { preVote: true });
    const before = c.get('1').raft.term;
    const sent: MessageType[] = [];
    c.dropIf = (m) => {
      if (m.from === '1') sent.push(m.type);
      return false;
    };
    c.campaign('1');
    expect(sent.slice(0, 2)).toEqual([MessageType.PreVote, MessageType.PreVote]);
    expect(sent).toContain(MessageType.Vote);
    expect(c.leader()).toBe('1');
    expect(c.get('1').raft.term).toBe(before + 1);
  });

  test('followers that hear from a leader ignore pre-votes', () => {
    const c = new Cluster(['1', '2', '3'], { preVote: true });
    c.campaign('1');
    const term = c.get('1').raft.term;
    // Node 2 campaigns (e.g. its timer fired on a lost heartbeat) while the leader is healthy.
    c.campaign('2');
    expect(c.get('1').raft.term).toBe(term);
    expect(c.leader()).toBe('1');
    expect(c.get('2').state).toBe(StateType.PreCandidate);
    c.tick('1', 1); // the next heartbeat brings it back
    expect(c.get('2').state).toBe(StateType.Follower);
    expect(c.get('2').raft.term).toBe(term);
  });
});

describe('CheckQuorum', () => {
  test('a leader cut off from the quorum steps down after an election timeout', () => {
    const c = new Cluster(['1', '2', '3'], { checkQuorum: true });
    c.campaign('1');
    c.isolate('1');
    // The first check counts the answers from before the cut; the second finds nobody.
    c.tick('1', 19);
    expect(c.get('1').state).toBe(StateType.Leader);
    c.tick('1', 1);
    expect(c.get('1').state).toBe(StateType.Follower);
    expect(c.get('1').raft.lead).toBe(NONE);
  });

  test('a leader with a quorum stays leader', () => {
    const c = new Cluster(['1', '2', '3'], { checkQuorum: true });
    c.campaign('1');
    c.cutLink('1', '3');
    c.tickAll(35);
    expect(c.get('1').state).toBe(StateType.Leader);
  });

  test('followers in a leader lease ignore a disruptive candidate', () => {
    const c = new Cluster(['1', '2', '3'], { checkQuorum: true });
    c.campaign('1');
    const term = c.get('1').raft.term;
    // Node 3 campaigns without PreVote; 2 heard from the leader recently and ignores it.
    c.campaign('3');
    expect(c.get('2').raft.term).toBe(term);
    expect(c.get('2').raft.lead).toBe('1');
    expect(c.get('3').state).toBe(StateType.Candidate);
  });

  test('a stale leader back from a partition learns the new term and steps down', () => {
    const c = new Cluster(['1', '2', '3'], { checkQuorum: true, preVote: true });
    c.campaign('1');
    c.isolate('1');
    // 2 and 3 elect a new leader once their lease on 1 ran out.
    for (let i = 0; i < 40 && c.get('2').state !== StateType.Leader && c.get('3').state !== StateType.Leader; i++) {
      c.tick('2');
      c.tick('3');
    }
    const newLeader = c.get('2').state === StateType.Leader ? '2' : '3';
    expect(c.get(newLeader).state).toBe(StateType.Leader);
    expect(c.get('1').state).toBe(StateType.Leader);
    c.heal();
    // The old leader (it has not yet run CheckQuorum) sends a heartbeat of its old term.
    c.get('1').raft.step(makeMessage({ type: MessageType.Beat, from: '1' }));
    c.stabilize();
    expect(c.get('1').state).toBe(StateType.Follower);
    expect(c.leader()).toBe(newLeader);
  });
});

describe('configuration', () => {
  test('the core refuses bad timeouts and lease reads without CheckQuorum', () => {
    const storage = new MemoryStorage();
    expect(() => new Raft({ id: '1', storage, electionTick: 1, heartbeatTick: 1 })).toThrow(/election tick/);
    expect(() => new Raft({ id: '1', storage, electionTick: 10, heartbeatTick: 0 })).toThrow(/heartbeat tick/);
    expect(() => new Raft({ id: '', storage, electionTick: 10, heartbeatTick: 1 })).toThrow(/empty id/);
  });
});
