import { EntryType, Message, MessageType, makeMessage } from '../../server/raft';
import { coalesceMessages } from '../../server/etcdserver/raft-node';
import { Cluster } from '../raft/cluster';

const ent = (index: number, term = 2, bytes = 1) => ({ term, index, type: EntryType.Normal, data: Buffer.alloc(bytes, 'x') });
const app = (to: string, index: number, entries: ReturnType<typeof ent>[], commit: number, logTerm = 2) =>
  makeMessage({ type: MessageType.App, from: '1', to, term: 2, index, logTerm, entries, commit });

describe('coalesceMessages', () => {
  test('a follower forwarding many proposals in one Ready sends the leader one proposal, and every member applies them in order', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    const follower = c.get('2');
    for (let i = 0; i < 40; i++) follower.node.propose(Buffer.from(`f${i}`));
    const sent = follower.handleReady();
    expect(sent.filter((m) => m.type === MessageType.Prop)).toHaveLength(40);
    const merged = coalesceMessages(sent);
    expect(merged.filter((m) => m.type === MessageType.Prop)).toHaveLength(1);
    c.send(...merged);
    const want = Array.from({ length: 40 }, (_, i) => `f${i}`);
    for (const id of ['1', '2', '3']) expect(c.get(id).appliedData().slice(-40)).toEqual(want);
  });

  test('a proposed configuration change is never merged with other proposals (refused, it drops alone)', () => {
    const prop = (type: EntryType) => makeMessage({ type: MessageType.Prop, from: '2', to: '1', entries: [{ term: 0, index: 0, type, data: Buffer.from('p') }] });
    const out = coalesceMessages([prop(EntryType.Normal), prop(EntryType.Normal), prop(EntryType.ConfChange), prop(EntryType.Normal)]);
    expect(out.map((m) => m.entries.map((e) => e.type))).toEqual([[EntryType.Normal, EntryType.Normal], [EntryType.ConfChange], [EntryType.Normal]]);
  });

  test('a leader proposing many writes in one turn sends each follower one append, and every member ends with the same log', () => {
    const c = new Cluster(['1', '2', '3']);
    c.campaign('1');
    const leader = c.get('1');
    for (let i = 0; i < 50; i++) leader.node.propose(Buffer.from(`w${i}`));
    const sent = leader.handleReady();
    const apps = (ms: Message[], to: string) => ms.filter((m) => m.type === MessageType.App && m.to === to);
    expect(apps(sent, '2').length).toBeGreaterThanOrEqual(50);
    const merged = coalesceMessages(sent);
    for (const to of ['2', '3']) {
      expect(apps(merged, to)).toHaveLength(1);
      expect(apps(merged, to)[0].entries.map((e) => Buffer.from(e.data).toString())).toEqual(Array.from({ length: 50 }, (_, i) => `w${i}`));
    }
    c.send(...merged);
    const want = Array.from({ length: 50 }, (_, i) => `w${i}`);
    for (const id of ['1', '2', '3']) {
      expect(c.get(id).appliedData().slice(-50)).toEqual(want);
      expect(c.get(id).raft.raftLog.committed).toBe(leader.raft.raftLog.lastIndex());
    }
    // Fewer appends acknowledged, but the leader knows each follower has everything: nothing is resent.
    expect(leader.raft.trk.progress.get('2')!.match).toBe(leader.raft.raftLog.lastIndex());
  });

  test('appends that continue one another merge, the latest commit wins, the core\'s arrays are left as they were', () => {
    const a = app('2', 5, [ent(6)], 4);
    const b = app('2', 6, [ent(7), ent(8)], 5);
    const empty = app('2', 8, [], 7);
    const out = coalesceMessages([a, b, empty]);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ index: 5, logTerm: 2, commit: 7 });
    expect(out[0].entries.map((e) => e.index)).toEqual([6, 7, 8]);
    expect(a.entries).toHaveLength(1);
  });

  test('order per peer is kept: a heartbeat between two appends, a gap or another term keeps them apart', () => {
    const hb = makeMessage({ type: MessageType.Heartbeat, from: '1', to: '2', term: 2, commit: 4 });
    const other = app('3', 5, [ent(6)], 4);
    const msgs = [app('2', 5, [ent(6)], 4), other, hb, app('2', 6, [ent(7)], 4), app('2', 8, [ent(9)], 4), app('2', 9, [ent(10, 3)], 4, 3)];
    msgs[5].term = 3;
    const out = coalesceMessages(msgs);
    expect(out.map((m) => `${m.type}>${m.to}:${m.index}`)).toEqual([`${MessageType.App}>2:5`, `${MessageType.App}>3:5`, `${MessageType.Heartbeat}>2:0`, `${MessageType.App}>2:6`, `${MessageType.App}>2:8`, `${MessageType.App}>2:9`]);
    // Messages to different peers interleave freely: an append to 3 in between does not stop 2's from merging.
    const out2 = coalesceMessages([app('2', 5, [ent(6)], 4), other, app('2', 6, [ent(7)], 4)]);
    expect(out2.map((m) => `${m.to}:${m.entries.length}`)).toEqual(['2:2', '3:1']);
  });

  test('a merged append stays within the size limit (a single larger entry still goes alone)', () => {
    const out = coalesceMessages([app('2', 5, [ent(6, 2, 600)], 4), app('2', 6, [ent(7, 2, 600)], 4), app('2', 7, [ent(8, 2, 300)], 4), app('2', 8, [ent(9, 2, 2000)], 4)], 1000);
    expect(out.map((m) => m.entries.map((e) => e.index))).toEqual([[6], [7, 8], [9]]);
  });
});
