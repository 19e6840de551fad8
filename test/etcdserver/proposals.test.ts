/**
 * The clients waiting on a member for their proposals (server/etcdserver/proposals.ts): each gets the answer of the
 * entry it proposed. Two members can make the same request ID (RequestIdGenerator keeps 16 bits of the member ID):
 * then another member's entry with that ID is applied here too, and must not answer this member's client (a
 * robustness run caught it: two puts through two members were both acknowledged with the same revision).
 */
import { Proposals, type WriteResult } from '../../server/etcdserver/proposals';
import { RequestIdGenerator } from '../../server/etcdserver/request';

function proposals(): Proposals {
  return new Proposals({
    stopped: () => false,
    hasLeader: () => true,
    onLeader: () => () => undefined,
    timeoutMs: () => 60_000,
    timeoutError: () => new Error('timed out'),
    stoppedError: () => new Error('stopped'),
    now: () => performance.now(),
  });
}

describe('Proposals: an applied entry answers the client that proposed it, and no other', () => {
  test('an entry of another member with the same request ID is not this client\'s answer; its own entry is', async () => {
    const p = proposals();
    const mine = Buffer.from('put /a=1 through this member');
    const theirs = Buffer.from('put /b=2 through another member');
    let answered: WriteResult | undefined;
    const pending = p.submit(42, () => undefined, false, mine).then((r) => (answered = r));
    p.answer(42, { result: 'theirs', index: 8, term: 2 }, theirs);
    await Promise.resolve();
    expect(answered).toBeUndefined();
    expect(p.pending).toBe(1);
    expect(p.collisions).toBe(1);
    // The same bytes in another buffer (a follower gets its entry back from the leader) are its own.
    p.answer(42, { result: 'mine', index: 9, term: 2 }, Buffer.from(mine));
    await pending;
    expect(answered).toEqual({ result: 'mine', index: 9, term: 2 });
    expect(p.pending).toBe(0);
  });

  test('the entry proposed is its answer, the same buffer or equal bytes; one answer only', async () => {
    const p = proposals();
    const data = Buffer.from('x');
    const a = p.submit(7, () => undefined, false, data);
    p.answer(7, { result: 1, index: 3, term: 1 }, data);
    await expect(a).resolves.toEqual({ result: 1, index: 3, term: 1 });
    // Applied again (a replay): nobody waits any more.
    p.answer(7, { result: 2, index: 3, term: 1 }, data);
    expect(p.pending).toBe(0);
    expect(p.collisions).toBe(0);
  });
});

describe('RequestIdGenerator', () => {
  const start = 1_700_000_000_123;
  test('IDs are unique within a member, safe integers, never 0', () => {
    const a = new RequestIdGenerator('8e9e05c52164694d', start);
    const ids = Array.from({ length: 10_000 }, () => a.id());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(Number.isSafeInteger(id)).toBe(true);
      expect(id).toBeGreaterThan(0);
    }
    const zero = new RequestIdGenerator('0', 0);
    expect(zero.id()).toBeGreaterThan(0);
  });

  test('members whose IDs differ only above their low 8 bits make different IDs at the same start (they did not)', () => {
    const a = new RequestIdGenerator('8e9e05c52164014d', start);
    const b = new RequestIdGenerator('8e9e05c52164024d', start);
    const ids = new Set(Array.from({ length: 1000 }, () => a.id()));
    for (let i = 0; i < 1000; i++) expect(ids.has(b.id())).toBe(false);
  });

  test('a member restarted a millisecond later does not make the IDs of its last incarnation', () => {
    const before = new RequestIdGenerator('8e9e05c52164694d', start);
    const ids = new Set(Array.from({ length: 200 }, () => before.id()));
    const after = new RequestIdGenerator('8e9e05c52164694d', start + 1);
    for (let i = 0; i < 200; i++) expect(ids.has(after.id())).toBe(false);
  });
});
