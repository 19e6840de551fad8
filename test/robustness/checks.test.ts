/**
 * The whole-history checks on recorded operations as the runner records them (v2 answers): compares read back from
 * etcd's causes, indexes, lost and never-written keys, TTL keys gone early.
 */
import { checkFinalKeys, checkRegisters, checkTTLReads, registerHistories } from './checks';
import { RecordedOp } from './history';

let nextId = 0;
function rec(kind: RecordedOp['kind'], key: string, call: number, ret: number | null, fields: Partial<RecordedOp>): RecordedOp {
  return { id: nextId++, client: 0, member: 'm0', kind, key, call, ret, wall: 1_000_000 + call, wallRet: ret === null ? undefined : 1_000_000 + ret, status: 200, ...fields };
}
const set = (key: string, call: number, ret: number, value: string, index: number, prev: [string, number] | null) =>
  rec('set', key, call, ret, { value, node: { value, modifiedIndex: index }, prev: prev && { value: prev[0], modifiedIndex: prev[1] } });
const get = (key: string, call: number, ret: number, value: string | null, index = 0) => rec('get', key, call, ret, { quorum: true, node: value === null ? null : { value, modifiedIndex: index } });

describe('checks on recorded v2 histories', () => {
  test('a stale quorum read is found, with a fragment naming the ops and members', () => {
    const ops = [set('/reg/0', 0, 1, 'a', 10, null), set('/reg/0', 2, 3, 'b', 11, ['a', 10]), get('/reg/0', 4, 5, 'a', 10)];
    ops[2].member = 'm2';
    const { report, violations } = checkRegisters(ops);
    expect(report.verdict).toBe('illegal');
    expect(report.illegal).toEqual(['/reg/0']);
    expect(violations).toHaveLength(1);
    expect(report.minimal[0].lines.join('\n')).toMatch(/get\(\) -> "a" via m2, op #\d+/);
  });

  test('a failed compare answers what it found: by value from its cause, by index through the indexes answered', () => {
    const base = [set('/reg/0', 0, 1, 'a', 10, null), set('/reg/0', 2, 3, 'b', 11, ['a', 10])];
    const byValue = rec('cas', '/reg/0', 4, 5, { status: 412, errorCode: 101, cause: '[a != b]', value: 'c', prevValue: 'a', expect: 'a' });
    const byIndex = rec('cas', '/reg/0', 6, 7, { status: 412, errorCode: 101, cause: '[10 != 11]', value: 'd', prevIndex: 10, expect: 'a' });
    const unmapped = rec('cas', '/reg/0', 8, 9, { status: 412, errorCode: 101, cause: '[10 != 57]', value: 'e', prevIndex: 10, expect: 'a' });
    const h = registerHistories([...base, byValue, byIndex, unmapped]);
    expect(h.partitions.get('/reg/0')!.slice(2).map((op) => op.output)).toEqual([
      { op: 'cas', ok: false, current: 'b' },
      { op: 'cas', ok: false, current: 'b' },
      { op: 'cas', ok: false, unmappedIndex: 57 },
    ]);
    // b's index is known: the compare that found index 57 did not find b, so that history is illegal.
    expect(checkRegisters([...base, byValue, byIndex]).report.verdict).toBe('ok');
    expect(checkRegisters([...base, unmapped]).report.verdict).toBe('illegal');
    // A compare answered with a timeout may have happened: seen later, it did.
    const timedOut = rec('cas', '/reg/0', 4, null, { status: undefined, error: 'no answer in 4000 ms', value: 'c', prevValue: 'b', expect: 'b' });
    expect(checkRegisters([...base, timedOut, get('/reg/0', 10, 11, 'c', 12)]).report.verdict).toBe('ok');
    expect(checkRegisters([...base, timedOut, get('/reg/0', 10, 11, 'c', 12), get('/reg/0', 12, 13, 'b', 11)]).report.verdict).toBe('illegal');
    // A refused request never happened: the value it would have written cannot be read.
    const refused = rec('set', '/reg/0', 4, null, { status: undefined, error: 'connect ECONNREFUSED 127.0.0.1:1', value: 'z' });
    expect(checkRegisters([...base, refused, get('/reg/0', 10, 11, 'z', 12)]).report.verdict).toBe('illegal');
  });

  test('an index names one write, a value has one index', () => {
    const h = registerHistories([set('/reg/0', 0, 1, 'a', 10, null), set('/reg/1', 2, 3, 'x', 10, null), get('/reg/0', 4, 5, 'a', 12)]);
    expect(h.violations).toEqual([
      expect.stringMatching(/^index 10 names two writes: \/reg\/0="a" and \/reg\/1="x"/),
      expect.stringMatching(/^\/reg\/0: value "a" answered with modifiedIndex 10 and 12/),
    ]);
  });

  test('acknowledged unique keys must all be there as acknowledged; nothing else may be', () => {
    const put = (key: string, value: string, index: number, ret: number | null = 1, error?: string) =>
      rec('put', key, 0, ret, ret === null ? { value, status: undefined, error } : { value, node: { value, modifiedIndex: index } });
    const ops = [put('/uniq/a', 'va', 10), put('/uniq/b', 'vb', 11), put('/uniq/c', 'vc', 12), put('/uniq/d', 'vd', 0, null, 'no answer in 4000 ms'), put('/uniq/e', 've', 0, null, 'connect ECONNREFUSED 127.0.0.1:1')];
    const present = [
      { key: '/uniq/a', value: 'va', modifiedIndex: 10 },
      { key: '/uniq/b', value: 'vb', modifiedIndex: 13 }, // another index than acknowledged
      // /uniq/c lost
      { key: '/uniq/d', value: 'vd', modifiedIndex: 14 }, // no answer: may be there
      { key: '/uniq/e', value: 've', modifiedIndex: 15 }, // refused: never sent
      { key: '/uniq/f', value: 'vf', modifiedIndex: 16 }, // never written
      { key: '/ttl/g', value: 'vg', modifiedIndex: 17 },
    ];
    const ttl = rec('ttl-put', '/ttl/g', 0, 1, { value: 'vg', ttl: 1, node: { value: 'vg', modifiedIndex: 9 } });
    const r = checkFinalKeys([...ops, ttl], present, { uniquePrefix: '/uniq/', ttlPrefix: '/ttl/' });
    expect(r.lost).toEqual([expect.stringMatching(/^\/uniq\/b: acknowledged as "vb" at index 11/), expect.stringMatching(/^\/uniq\/c: acknowledged with index 12/)]);
    expect(r.phantom).toEqual([expect.stringMatching(/^\/uniq\/e=/), expect.stringMatching(/^\/uniq\/f=/), expect.stringMatching(/^\/ttl\/g: a TTL key still there/)]);
  });

  test('a TTL key read back before its TTL ran out must be there', () => {
    const put = rec('ttl-put', '/ttl/a', 0, 5, { value: 'v', ttl: 1, node: { value: 'v', modifiedIndex: 10 } });
    const early = rec('ttl-get', '/ttl/a', 6, 900, { of: put.id, node: null, status: 404, errorCode: 100 });
    const late = rec('ttl-get', '/ttl/a', 6, 1001, { of: put.id, node: null, status: 404, errorCode: 100 });
    const found = rec('ttl-get', '/ttl/a', 6, 900, { of: put.id, node: { value: 'v', modifiedIndex: 10 } });
    expect(checkTTLReads([put, early])).toEqual([expect.stringMatching(/^\/ttl\/a: written with ttl=1 .* found null/)]);
    expect(checkTTLReads([put, late])).toEqual([]);
    expect(checkTTLReads([put, found])).toEqual([]);
  });
});
