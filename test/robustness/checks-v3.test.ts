/**
 * The whole-history v3 checks on hand-made recorded histories (as the v3 workload records them): the watch history
 * (duplicates, gaps across reconnects, order, prev_kv, watchers that disagree), acknowledged writes missing from it
 * and values no client sent, header revisions that go back, the end state, registers whose deletes no client sent,
 * and lease keys gone before their lease could expire, or kept long after.
 */
import { checkFinalV3, checkLeases, checkRegistersV3, checkRevisionOrder, checkWatchers, checkWrites } from './checks-v3';
import { V3Op, WatchEventSeen, WatcherLog } from './history-v3';

let nextId = 0;
function op(kind: V3Op['kind'], key: string, call: number, ret: number | null, fields: Partial<V3Op> = {}): V3Op {
  return { id: nextId++, client: 0, member: 'm0', kind, key, call, ret, ...fields };
}
function ev(rev: number, key: string, type: 'put' | 'delete', value: string, prev: { value: string; mod: number } | null, at = rev, create = rev, version = 1): WatchEventSeen {
  return { rev, key, type, value, create, version, lease: '0', prev, at };
}
function watcher(i: number, events: WatchEventSeen[], sessions: WatcherLog['sessions'] = [{ member: 'm0', from: 2, opened: 0, events: events.length }]): WatcherLog {
  return { watcher: i, sessions, events };
}
const base = { startRev: 1, initial: [], t0: 0 };

describe('the v3 checks on recorded histories', () => {
  const good = [ev(2, '/v3/reg/0', 'put', 'a', null), ev(3, '/v3/reg/0', 'put', 'b', { value: 'a', mod: 2 }, 3, 2, 2), ev(4, '/v3/reg/0', 'delete', '', { value: 'b', mod: 3 })];

  test('a whole watch history passes; a duplicate, a gap, an event out of order, a wrong prev_kv and watchers that differ are found', () => {
    expect(checkWatchers({ ...base, endRev: 4, watchers: [watcher(0, good), watcher(1, good)] }).violations).toEqual([]);
    // The event at 3 delivered again after a reconnect, and 4 never.
    const dup = [good[0], good[1], good[1]];
    expect(checkWatchers({ ...base, endRev: 4, watchers: [watcher(0, dup)] }).violations).toEqual([
      expect.stringMatching(/^watcher 0: the event at revision 3 on \/v3\/reg\/0 was delivered twice/),
      expect.stringMatching(/^watcher 0: no event for revision 4/),
    ]);
    expect(checkWatchers({ ...base, endRev: 4, watchers: [watcher(0, [good[1], good[0], good[2]])] }).violations).toContainEqual(expect.stringMatching(/revision 2 \(\/v3\/reg\/0\) came after 3/));
    const wrongPrev = [good[0], ev(3, '/v3/reg/0', 'put', 'b', { value: 'x', mod: 2 }, 3, 2, 2), good[2]];
    expect(checkWatchers({ ...base, endRev: 4, watchers: [watcher(0, wrongPrev)] }).violations).toEqual([expect.stringMatching(/3 put \/v3\/reg\/0="b" has prev_kv "x"@2, the key was "a"@2/)]);
    const other = [good[0], ev(3, '/v3/reg/0', 'put', 'c', { value: 'a', mod: 2 }, 3, 2, 2), ev(4, '/v3/reg/0', 'delete', '', { value: 'c', mod: 3 })];
    expect(checkWatchers({ ...base, endRev: 4, watchers: [watcher(0, good), watcher(1, other)] }).violations).toEqual([expect.stringMatching(/^watcher 1 differs from watcher 0 at event 1: 3 put \/v3\/reg\/0="c" where the other has 3 put \/v3\/reg\/0="b"/)]);
  });

  test('an acknowledged write missing from the watch history is lost; a value no client sent, or only a failed compare, was never written', () => {
    const o = { uniquePrefix: '/v3/uniq/', leasePrefix: '/v3/lease/', registerPrefix: '/v3/reg/', startRev: 1, endRev: 5 };
    const ops = [
      op('put', '/v3/reg/0', 0, 1, { value: 'a', rev: 2, prev: { value: null, mod: 0 } }),
      op('put', '/v3/reg/0', 2, 3, { value: 'b', rev: 3, prev: { value: 'a', mod: 2 } }),
      op('del', '/v3/reg/0', 4, 5, { rev: 4, prev: { value: 'b', mod: 3 } }),
      op('uput', '/v3/uniq/x', 6, 7, { value: 'x', rev: 5, prev: { value: null, mod: 0 } }),
    ];
    const log = [...good, ev(5, '/v3/uniq/x', 'put', 'x', null)];
    expect(checkWrites(ops, log, o)).toEqual([]);
    expect(checkWrites(ops, log.filter((e) => e.rev !== 5), o)).toEqual([expect.stringMatching(/^lost write: uput \/v3\/uniq\/x="x" was acknowledged at revision 5/)]);
    expect(checkWrites(ops, log.filter((e) => e.rev !== 4), o)).toEqual([expect.stringMatching(/^lost delete: \/v3\/reg\/0 was deleted at revision 4/)]);
    const failed = op('cas', '/v3/reg/0', 8, 9, { value: 'z', expectRev: 7, succeeded: false, rev: 5, kv: { value: null, mod: 0 } });
    expect(checkWrites([...ops, failed], [...log, ev(6, '/v3/reg/0', 'put', 'z', null)], { ...o, endRev: 6 })).toEqual([expect.stringMatching(/^never written: 6 put \/v3\/reg\/0="z"/)]);
    expect(checkWrites(ops, [...log, ev(6, '/v3/uniq/x', 'delete', '', { value: 'x', mod: 5 })], { ...o, endRev: 6 })).toEqual([expect.stringMatching(/^a key written once was deleted/)]);
  });

  test('a register deleted by no delete a client sent', () => {
    const ops = [op('put', '/v3/reg/0', 0, 1, { value: 'a', rev: 2, prev: { value: null, mod: 0 } }), op('get', '/v3/reg/0', 5, 6, { rev: 3, kv: { value: null, mod: 0 } })];
    const r = checkRegistersV3(ops, [ev(2, '/v3/reg/0', 'put', 'a', null), ev(3, '/v3/reg/0', 'delete', '', { value: 'a', mod: 2 })], { isRegister: (k) => k.startsWith('/v3/reg/') });
    expect(r.violations).toContainEqual('/v3/reg/0: deleted at revision 3, by no delete a client sent');
    // With a delete that has no answer, it is explained.
    const withDel = [...ops, op('del', '/v3/reg/0', 2, null, { error: 'deadline exceeded' })];
    expect(checkRegistersV3(withDel, [ev(2, '/v3/reg/0', 'put', 'a', null), ev(3, '/v3/reg/0', 'delete', '', { value: 'a', mod: 2 })], { isRegister: (k) => k.startsWith('/v3/reg/') }).violations).toEqual([]);
  });

  test('a header revision that goes back in real time, on any key', () => {
    const a = op('put', '/v3/uniq/a', 0, 1, { value: 'a', rev: 10, prev: { value: null, mod: 0 } });
    expect(checkRevisionOrder([a, op('get', '/v3/reg/1', 2, 3, { rev: 10, kv: { value: null, mod: 0 } })])).toEqual([]);
    expect(checkRevisionOrder([a, op('get', '/v3/reg/1', 2, 3, { rev: 9, kv: { value: null, mod: 0 } })])).toEqual([expect.stringMatching(/^revision went back: get \/v3\/reg\/1 via m0 \(op #\d+, sent at 2.0 ms\) answered revision 9, after put \/v3\/uniq\/a/)]);
    // A write makes a new revision: the same one as before is wrong.
    expect(checkRevisionOrder([a, op('put', '/v3/uniq/b', 2, 3, { value: 'b', rev: 10, prev: { value: null, mod: 0 } })])).toHaveLength(1);
    // Overlapping operations may answer in either order.
    expect(checkRevisionOrder([a, op('get', '/v3/reg/1', 0.5, 3, { rev: 9, kv: { value: null, mod: 0 } })])).toEqual([]);
  });

  test('the end state is what the watch history makes of the start, with every key written once as acknowledged', () => {
    const uput = op('uput', '/v3/uniq/x', 6, 7, { value: 'x', rev: 5, prev: { value: null, mod: 0 } });
    const log = [...good, ev(5, '/v3/uniq/x', 'put', 'x', null)];
    const final = [{ key: '/v3/uniq/x', value: 'x', mod: 5, create: 5, version: 1, lease: '0' }];
    expect(checkFinalV3([uput], log, [], final, { uniquePrefix: '/v3/uniq/' })).toEqual([]);
    expect(checkFinalV3([uput], log, [], [], { uniquePrefix: '/v3/uniq/' })).toEqual([
      expect.stringMatching(/^end state: \/v3\/uniq\/x is absent, the watch history makes it "x"@5/),
      expect.stringMatching(/^lost write: \/v3\/uniq\/x="x" acknowledged at revision 5/),
    ]);
  });

  test('a lease key gone before its lease could expire (after a renewal answered with a TTL), unless revoked; and one kept too long', () => {
    const L = 'a1';
    const grant = op('grant', '', 0, 10, { lease: L, grantedTTL: 2, rev: 1 });
    const put = op('lput', '/v3/lease/k', 10, 20, { lease: L, value: 'v', rev: 2, prev: { value: null, mod: 0 } });
    const ka = op('keepalive', '', 1000, 1010, { lease: L, grantedTTL: 2, rev: 2 });
    const log = [ev(2, '/v3/lease/k', 'put', 'v', null), ev(3, '/v3/lease/k', 'delete', '', { value: 'v', mod: 2 }, 2900)];
    const r = { ops: [grant, put, ka], final: [], faults: [], t0: 0 };
    const w = [watcher(0, log)];
    // Renewed at 1 s for 2 s, gone by 2.9 s: too early.
    expect(checkLeases(r, log, w, { leasePrefix: '/v3/lease/' })).toEqual([expect.stringMatching(/^lease a1 \(TTL 2 s\): its key \/v3\/lease\/k was deleted at revision 3, seen by 2.900 s \(by a watcher\), before the lease could expire at 3.000 s/)]);
    // An answer at revision 3 bounds it too.
    const read = op('get', '/v3/reg/0', 2000, 2100, { rev: 3, kv: { value: null, mod: 0 } });
    expect(checkLeases({ ...r, ops: [...r.ops, read] }, log, w, { leasePrefix: '/v3/lease/' })).toEqual([expect.stringMatching(/seen by 2.100 s \(op #\d+ via m0 answered revision 3\)/)]);
    // Gone at 3.1 s: after it expired. Revoked at 2.5 s: may go then.
    const late = [log[0], { ...log[1], at: 3100 }];
    expect(checkLeases(r, late, [watcher(0, late)], { leasePrefix: '/v3/lease/' })).toEqual([]);
    const revoke = op('revoke', '', 2500, 2600, { lease: L, rev: 3 });
    expect(checkLeases({ ...r, ops: [...r.ops, revoke] }, log, w, { leasePrefix: '/v3/lease/' })).toEqual([]);
    // Still there long after its last renewal, with no fault meanwhile: a read sent at 20 s answered below the delete.
    const stillThere = op('get', '/v3/reg/0', 20000, 20010, { rev: 2, kv: { value: null, mod: 0 } });
    const never = [log[0]];
    expect(checkLeases({ ...r, ops: [...r.ops, stillThere] }, never, [watcher(0, never)], { leasePrefix: '/v3/lease/' })).toEqual([expect.stringMatching(/^lease a1 \(TTL 2 s, last renewed 1.010 s\): its key \/v3\/lease\/k was still there at 20.000 s/)]);
    // Unless a fault was injected in that time.
    expect(checkLeases({ ...r, ops: [...r.ops, stillThere], faults: [{ at: 2000, healedAt: 4000 }] }, never, [watcher(0, never)], { leasePrefix: '/v3/lease/' })).toEqual([]);
  });
});
