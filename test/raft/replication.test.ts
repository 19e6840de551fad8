import { MemoryStorage, MessageType, NodeId, ProgressState, ProposalDroppedError, StateType } from '../../server/raft';
import { Cluster, TestNode, countOf, logTerms, storageWithTerms } from './cluster';

function cluster3(opts = {}): Cluster {
  const c = new Cluster(['1', '2', '3'], opts);
  c.campaign('1');
  return c;
}

describe('log replication', () => {
  test('a proposal is replicated, committed and applied in order on every node', () => {
    const c = cluster3();
    for (const v of ['a', 'b', 'c']) c.propose('1', v);
    for (const id of ['1', '2', '3']) expect(c.get(id).appliedData()).toEqual(['a', 'b', 'c']);
    const logs = ['1', '2', '3'].map((id) => logTerms(c.get(id)));
    expect(logs[1]).toEqual(logs[0]);
    expect(logs[2]).toEqual(logs[0]);
  });

  test('a proposal on a follower is forwarded to the leader', () => {
    const c = cluster3();
    c.propose('3', 'via-follower');
    for (const id of ['1', '2', '3']) expect(c.get(id).appliedData()).toEqual(['via-follower']);
  });

  test('a proposal with no leader is refused with a clear error', () => {
    const c = new Cluster(['1', '2', '3']);
    expect(() => c.get('2').node.propose(Buffer.from('x'))).toThrow(ProposalDroppedError);
    expect(() => c.get('2').node.propose(Buffer.from('x'))).toThrow(/no leader/);
  });

  test('with forwarding disabled a follower refuses proposals', () => {
    const c = cluster3({ disableProposalForwarding: true });
    expect(() => c.get('2').node.propose(Buffer.from('x'))).toThrow(/forwarding is disabled/);
  });

  test('the minority side of a partition cannot commit; after healing it converges', () => {
    const c = new Cluster(['1', '2', '3', '4', '5']);
    c.campaign('1');
    c.isolate('1');
    c.cutLink('1', '2');
    // 1 (leader) and 2 are cut from 3, 4, 5: 1 accepts a proposal but cannot commit it.
    c.heal();
    for (const [a, b] of [['1', '3'], ['1', '4'], ['1', '5'], ['2', '3'], ['2', '4'], ['2', '5']]) c.cutLink(a, b);
    c.propose('1', 'lost');
    expect(c.get('1').appliedData()).toEqual([]);
    c.campaign('3');
    expect(c.get('3').state).toBe(StateType.Leader);
    c.propose('3', 'kept');
    expect(c.get('4').appliedData()).toEqual(['kept']);
    c.heal();
    c.tick('3', 1);
    for (const id of ['1', '2', '3', '4', '5']) expect(c.get(id).appliedData()).toEqual(['kept']);
    expect(logTerms(c.get('1'))).toEqual(logTerms(c.get('3')));
  });

  test('the leader counts itself only once its entries are durable', () => {
    const n = new TestNode('1', {});
    n.node.bootstrap([{ id: '1' }]);
    n.handleReady();
    n.node.campaign();
    while (n.node.hasReady()) n.handleReady();
    n.node.propose(Buffer.from('x'));
    const rd = n.node.ready();
    expect(rd.entries.map((e) => Buffer.from(e.data).toString())).toEqual(['x']);
    // Not committed in the same Ready that asks for it to be persisted.
    expect(rd.committedEntries.map((e) => Buffer.from(e.data).toString())).toEqual([]);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    n.node.advance(rd);
    const rd2 = n.node.ready();
    expect(rd2.committedEntries.map((e) => Buffer.from(e.data).toString())).toEqual(['x']);
    expect(rd2.hardState?.commit).toBe(rd.entries[0].index);
  });

  test('ready() cannot be taken twice without advance()', () => {
    const n = new TestNode('1', {});
    n.node.bootstrap([{ id: '1' }]);
    n.node.ready();
    expect(() => n.node.ready()).toThrow(/before advance/);
  });
});

describe('the paper, Figure 7: a new leader repairs every kind of follower log', () => {
  // Leader for term 8 has this log (index 1..10):
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: [string, number[]][] = [
    ['(a) missing entries', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['(b) missing many entries', [1, 1, 1, 4]],
    ['(c) an extra uncommitted entry', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['(d) extra entries of a later term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['(e) extra entries of an older term, missing others', [1, 1, 1, 4, 4, 4, 4]],
    ['(f) a whole divergent history', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
  ];
  test.each(followers)('%s', (_name, followerTerms) => {
    const voters = ['1', '2', '3'];
    const storages = new Map<NodeId, MemoryStorage>([
      ['1', storageWithTerms(leaderTerms, voters, 7)],
      ['2', storageWithTerms(followerTerms, voters, Math.max(...followerTerms))],
      ['3', storageWithTerms([1, 1, 1], voters, 1)],
    ]);
    for (const s of storages.values()) s.setHardState({ ...s.hardStateNow(), commit: 3 });
    const c = new Cluster(voters, { maxSizePerMsg: 1 }, storages);
    c.campaign('1');
    expect(c.leader()).toBe('1');
    expect(c.get('1').raft.term).toBe(8);
    c.propose('1', 'new');
    const expected = [...leaderTerms, 8, 8];
    expect(logTerms(c.get('1'))).toEqual(expected);
    expect(logTerms(c.get('2'))).toEqual(expected);
    // Fast backtracking: the rejections carry a term hint, so the leader needs at most one round per
    // conflicting term, not one per entry.
    const rejections = countOf(c.delivered, MessageType.AppResp, (m) => m.from === '2' && m.reject);
    const divergentTerms = new Set(followerTerms.filter((t, i) => leaderTerms[i] !== t)).size;
    expect(rejections).toBeLessThanOrEqual(divergentTerms + 1);
  });

  test('fast backtracking skips a long divergent tail in one round trip per term', () => {
    const voters = ['1', '2', '3'];
    const leaderLog = [1, ...Array(50).fill(2)];
    const followerLog = [1, ...Array(100).fill(3)];
    const storages = new Map<NodeId, MemoryStorage>([
      ['1', storageWithTerms(leaderLog, voters, 4)],
      ['2', storageWithTerms(followerLog, voters, 3)],
      ['3', storageWithTerms([1], voters, 0)],
    ]);
    const c = new Cluster(voters, { maxSizePerMsg: 1 }, storages);
    c.cutLink('1', '2');
    c.campaign('1');
    c.heal();
    c.tick('1', 1);
    expect(logTerms(c.get('2')).slice(0, 51)).toEqual(logTerms(c.get('1')).slice(0, 51));
    const rejections = countOf(c.delivered, MessageType.AppResp, (m) => m.from === '2' && m.reject);
    expect(rejections).toBeLessThanOrEqual(2);
  });
});

describe('the paper, Figure 8: the commit rule', () => {
  test('a leader does not commit an entry of an older term by counting replicas', () => {
    // S1 holds an entry of term 2 at index 2 that only it has; it becomes leader of term 4 and replicates that
    // entry to S2 (a majority of 3), but its own no-op of term 4 does not get through.
    const voters = ['1', '2', '3'];
    const storages = new Map<NodeId, MemoryStorage>([
      ['1', storageWithTerms([1, 2], voters, 3)],
      ['2', storageWithTerms([1], voters, 3)],
      ['3', storageWithTerms([1, 3], voters, 3)],
    ]);
    for (const s of storages.values()) s.setHardState({ ...s.hardStateNow(), commit: 1 });
    const c = new Cluster(voters, { maxSizePerMsg: 1 }, storages);
    c.cutLink('1', '3');
    // Let the first probe through (S2 rejects it, having no index 2), then drop every append carrying index 3.
    let probes = 0;
    c.dropIf = (m) => m.type === MessageType.App && m.entries.some((e) => e.index === 3) && probes++ > 0;
    c.campaign('1');
    expect(c.leader()).toBe('1');
    expect(c.get('1').raft.term).toBe(4);
    expect(logTerms(c.get('2'))).toEqual([1, 2]); // the term-2 entry is on a majority now...
    expect(c.get('1').raft.raftLog.committed).toBe(1); // ...and still not committed
    // S3 (whose log ends in term 3) could still win an election and overwrite index 2 — which is why.
    // Once the term-4 entry reaches the majority, both commit.
    c.dropIf = () => false;
    c.tick('1', 1);
    expect(c.get('1').raft.raftLog.committed).toBe(3);
    expect(c.get('2').raft.raftLog.committed).toBe(3);
  });
});

describe('flow control', () => {
  test('in Replicate state at most maxInflightMsgs appends are in flight to a silent follower', () => {
    const c = new Cluster(['1', '2', '3'], { maxInflightMsgs: 3, maxSizePerMsg: 1 });
    c.campaign('1');
    expect(c.get('1').raft.trk.progress.get('2')!.state).toBe(ProgressState.Replicate);
    c.dropIf = (m) => m.from === '2' && m.type === MessageType.AppResp;
    const before = c.delivered.length;
    for (let i = 0; i < 10; i++) c.propose('1', `v${i}`);
    const appsTo2 = countOf(c.delivered.slice(before), MessageType.App, (m) => m.to === '2' && m.entries.length > 0);
    expect(appsTo2).toBe(3);
    // Node 3 answers, so everything commits; node 2 catches up once its answers get through.
    expect(c.get('3').appliedData().length).toBe(10);
    c.dropIf = () => false;
    c.tick('1', 1);
    expect(c.get('2').appliedData().length).toBe(10);
  });

  test('maxSizePerMsg bounds the entries of one append (but at least one entry goes)', () => {
    const c = new Cluster(['1', '2'], { maxSizePerMsg: 100 });
    c.campaign('1');
    c.cutLink('1', '2');
    for (let i = 0; i < 10; i++) c.get('1').node.propose(Buffer.alloc(40, i));
    c.stabilize();
    c.heal();
    const before = c.delivered.length;
    c.tick('1', 1);
    const sizes = c.delivered.slice(before).filter((m) => m.type === MessageType.App && m.to === '2').map((m) => m.entries.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
    expect(c.get('2').appliedData().length).toBe(10);
  });

  test('a lost append in Replicate state is recovered after a heartbeat', () => {
    const c = cluster3({ maxInflightMsgs: 2 });
    let dropped = 0;
    c.dropIf = (m) => m.type === MessageType.App && m.to === '3' && m.entries.length > 0 && dropped++ < 2;
    c.propose('1', 'x');
    c.propose('1', 'y');
    expect(c.get('3').appliedData()).toEqual([]);
    c.tick('1', 1);
    expect(c.get('3').appliedData()).toEqual(['x', 'y']);
  });
});

describe('applying committed entries while a Ready is being persisted', () => {
  test('takeCommitted hands out committed entries that are durable here, never the ones being written, never twice', () => {
    const c = new Cluster(['1', '2', '3']);
    c.get('1').node.campaign();
    c.stabilize();
    const leader = c.get('1');
    const data = (es: { data: Uint8Array }[]) => es.map((e) => Buffer.from(e.data).toString()).filter((x) => x !== '');
    // Ready 1: entry a, written and acknowledged by the leader's own storage.
    leader.node.propose(Buffer.from('a'));
    const rd1 = leader.node.ready();
    leader.storage.append(rd1.entries);
    leader.node.advance(rd1);
    // Ready 2: entry b, whose write is still in flight.
    leader.node.propose(Buffer.from('b'));
    const rd2 = leader.node.ready();
    expect(data(rd2.entries)).toEqual(['b']);
    // The followers acknowledge a (and b): the leader commits a (b is not durable on the leader yet).
    for (const m of [...rd1.messages, ...rd2.messages]) c.get(m.to).node.step(m);
    const acks = ['2', '3'].flatMap((id) => c.get(id).handleReady());
    for (const m of acks) if (m.to === '1') leader.node.step(m);
    const early = leader.node.takeCommitted();
    expect(data(early)).toEqual(['a']);
    expect(leader.node.takeCommitted()).toEqual([]);
    leader.node.appliedTo(early[early.length - 1].index, early);
    // The write of Ready 2 completes: b commits, and the next Ready hands out b only.
    leader.storage.append(rd2.entries);
    leader.node.advance(rd2);
    const rd3 = leader.node.ready();
    expect(data(rd3.committedEntries)).toEqual(['b']);
    leader.node.advance(rd3);
    expect(leader.raft.raftLog.applied).toBe(rd3.committedEntries[rd3.committedEntries.length - 1].index);
  });
});

describe("a leader's messages sent before its Ready", () => {
  test('takeLeaderMessages gives a leader its appends at once, keeps everything else for the Ready, and gives a follower nothing', () => {
    const c = new Cluster(['1', '2', '3']);
    c.get('1').node.campaign();
    c.stabilize();
    const leader = c.get('1');
    leader.node.propose(Buffer.from('x'));
    const now = leader.node.takeLeaderMessages();
    expect(now.map((m) => `${m.type}>${m.to}`).sort()).toEqual(['MsgApp>2', 'MsgApp>3']);
    expect(Buffer.from(now[0].entries[0].data).toString()).toBe('x');
    // Taken means not handed out again: the Ready persists the entry but does not resend it.
    const rd = leader.node.ready();
    expect(rd.messages.filter((m) => m.type === MessageType.App)).toEqual([]);
    expect(rd.entries.map((e) => Buffer.from(e.data).toString())).toEqual(['x']);
    leader.storage.append(rd.entries);
    leader.node.advance(rd);
    // A follower must persist before it answers: it never takes its messages out of the Ready.
    const follower = c.get('2');
    for (const m of now) if (m.to === '2') follower.node.step(m);
    expect(follower.node.takeLeaderMessages()).toEqual([]);
    expect(follower.node.ready().messages.map((m) => m.type)).toEqual([MessageType.AppResp]);
  });
});
