import { ApplyDispatcher, ApplyFailedError, UnknownEntryError } from '../../server/etcdserver/apply/dispatcher';
import { Applier, ApplyContext } from '../../server/etcdserver/apply/applier';
import { MembershipApplier } from '../../server/etcdserver/apply/membership';
import { V2Applier, V2EntryApplier } from '../../server/etcdserver/apply/v2';
import { ENVELOPE_BYTES, ENVELOPE_MARK, EntryKind, decodeEntry, decodeMembershipOp, encodeEntry, encodeMembershipOp, sealEntry } from '../../server/etcdserver/entry';
import { Method, WriteRequest, decodeRequest, encodeRequest } from '../../server/etcdserver/request';
import { PART_MEMBERSHIP, PART_V2STORE, PART_V3, SNAPSHOT_MAGIC, decodeSnapshotData, encodeSnapshotData, encodeSnapshotDataInTurns } from '../../server/etcdserver/snapshot-data';
import { Cluster } from '../../server/membership/cluster';
import { V2Store } from '../../server/store';

const req = (partial: Partial<WriteRequest> & Pick<WriteRequest, 'method'>): WriteRequest => ({
  id: 77,
  path: '/k',
  value: 'v',
  dir: false,
  prevValue: '',
  prevIndex: 0,
  expiration: 0,
  refresh: false,
  recursive: false,
  time: 0,
  ...partial,
});

describe('the entry envelope', () => {
  test('its first byte is never a Method of a bare v2 request of the first release', () => {
    const methods = Object.values(Method).filter((v): v is number => typeof v === 'number');
    expect(methods.sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(methods).not.toContain(ENVELOPE_MARK);
    expect(encodeEntry(EntryKind.V2, 1, Buffer.alloc(0))[0]).toBe(ENVELOPE_MARK);
  });

  test.each([EntryKind.Membership, EntryKind.V2, EntryKind.V3, EntryKind.Lease, EntryKind.Auth])('kind %s: kind, version, request ID and payload survive', (kind) => {
    const payload = Buffer.from([0, 1, 2, 0xe7, 255]);
    const e = decodeEntry(encodeEntry(kind, 2 ** 52 + 5, payload, 3));
    expect(e).toEqual({ kind, version: 3, requestId: 2 ** 52 + 5, payload });
  });

  test('bare v2 requests of the first release are read as the kind they were, with their request ID', () => {
    for (const method of [Method.PUT, Method.POST, Method.DELETE, Method.SYNC]) {
      const data = encodeRequest(req({ method }));
      expect(decodeEntry(data)).toEqual({ kind: EntryKind.V2, version: 1, requestId: 77, payload: data, legacy: true });
    }
    const attrs = decodeEntry(encodeRequest(req({ method: Method.ATTRIBUTES, path: 'abc', value: JSON.stringify({ name: 'n', clientURLs: ['http://c'] }) })));
    expect(attrs).toMatchObject({ kind: EntryKind.Membership, requestId: 77, legacy: true });
    expect(decodeMembershipOp(attrs.payload)).toEqual({ op: 'attributes', id: 'abc', name: 'n', clientURLs: ['http://c'] });
    const update = decodeEntry(encodeRequest(req({ method: Method.MEMBER_UPDATE, path: 'abc', value: JSON.stringify(['http://p']) })));
    expect(decodeMembershipOp(update.payload)).toEqual({ op: 'peerURLs', id: 'abc', peerURLs: ['http://p'] });
  });

  test('data that is neither is an error', () => {
    expect(() => decodeEntry(Buffer.from([ENVELOPE_MARK, 1]))).toThrow(/too short/);
    expect(() => decodeEntry(Buffer.from([9, 0, 0]))).toThrow();
  });
});

describe('the apply dispatcher', () => {
  const logs: { level: string; msg: string; meta?: Record<string, unknown> }[] = [];
  const log = (level: string, msg: string, meta?: Record<string, unknown>): void => void logs.push({ level, msg, meta });
  const store = new V2Store(() => 0);
  const d = new ApplyDispatcher(log);
  d.register(EntryKind.V2, new V2EntryApplier(new V2Applier(store)));
  const seen: ApplyContext[] = [];
  const thrower: Applier = {
    versions: [1],
    apply: (_p, ctx) => {
      seen.push(ctx);
      throw new TypeError('a bug');
    },
  };
  d.register(EntryKind.Lease, thrower);
  beforeEach(() => (logs.length = 0));

  test('a v2 write goes to the v2 applier and answers its event; a refusal of the store is the answer, not a failure', () => {
    const a = d.apply(encodeEntry(EntryKind.V2, 5, encodeRequest(req({ method: Method.PUT, id: 5 }))), 10, 2);
    expect(a.requestId).toBe(5);
    expect((a.answer.result as { node: { value: string } }).node.value).toBe('v');
    const b = d.apply(encodeEntry(EntryKind.V2, 6, encodeRequest(req({ method: Method.PUT, id: 6, prevValue: 'other' }))), 11, 2);
    expect(b.answer.error?.message).toMatch(/^101: Compare failed/);
    expect(logs).toEqual([]);
  });

  test('an entry of a kind with no applier (v3, before it lands) is logged with its index and skipped, touching nothing', () => {
    const before = store.save().toString();
    const a = d.apply(encodeEntry(EntryKind.V3, 9, Buffer.from('opaque')), 12, 2);
    expect(a.requestId).toBe(9);
    expect(a.answer.error).toBeInstanceOf(UnknownEntryError);
    expect(logs).toEqual([expect.objectContaining({ level: 'warn', meta: expect.objectContaining({ index: 12, kind: 'V3', version: 1 }) })]);
    expect(store.save().toString()).toBe(before);
  });

  test('an encoding version this release does not read, or a kind a newer release made up, is skipped likewise', () => {
    expect(d.apply(encodeEntry(EntryKind.V2, 1, encodeRequest(req({ method: Method.PUT })), 2), 13, 2).answer.error).toBeInstanceOf(UnknownEntryError);
    expect(d.apply(encodeEntry(200 as EntryKind, 1, Buffer.alloc(0)), 14, 2).answer.error).toBeInstanceOf(UnknownEntryError);
    expect(logs.map((l) => l.meta?.index)).toEqual([13, 14]);
  });

  test('an applier that throws: the same error answer, logged with index and kind, and the next entry applies', () => {
    const a = d.apply(encodeEntry(EntryKind.Lease, 3, Buffer.from('x')), 15, 3);
    expect(a.answer.error).toBeInstanceOf(ApplyFailedError);
    expect(a.answer.error?.message).toMatch(/a bug/);
    expect(seen[0]).toEqual({ index: 15, term: 3, requestId: 3, version: 1, legacy: false });
    expect(logs).toEqual([expect.objectContaining({ level: 'error', meta: expect.objectContaining({ index: 15, kind: 'Lease' }) })]);
    expect(d.apply(encodeEntry(EntryKind.V2, 4, encodeRequest(req({ method: Method.PUT, path: '/after' }))), 16, 3).answer.error).toBeUndefined();
    expect(store.get('/after', false, false).node.value).toBe('v');
  });

  test('garbage is logged and skipped', () => {
    expect(d.apply(Buffer.from([42, 1, 2]), 17, 3).answer.error).toBeDefined();
    expect(logs[0]).toMatchObject({ level: 'error', meta: { index: 17 } });
  });
});

describe('membership in the v2 store, as etcd keeps it', () => {
  const setup = () => {
    const store = new V2Store(() => 0);
    const sm = new V2Applier(store);
    const cluster = Cluster.fromInitialCluster([{ name: 'a', peerURLs: ['http://a:2380'] }], 'tok');
    const id = cluster.list()[0].id;
    const empty = new Cluster(cluster.id);
    const logs: string[] = [];
    const m = new MembershipApplier({ localId: () => id, cluster: () => empty, record: (op, p, v) => sm.recordInternal(op, p, v), readRecord: (p) => sm.readInternal(p), log: (_l, msg) => void logs.push(msg) });
    return { store, m, id, member: cluster.list()[0], logs, empty };
  };
  const ctx = (legacy = false): ApplyContext => ({ index: 1, term: 1, requestId: 0, version: 1, legacy });

  test('a fresh member: its conf change, its publish and the cluster version take indexes 1, 2 and 3, hidden from keys and watches', () => {
    const { store, m, id, member, logs } = setup();
    m.applyConfChange({ type: 0, nodeId: id }, { member, v: 1 });
    m.apply(encodeMembershipOp({ op: 'attributes', id, name: 'a', clientURLs: ['http://a:2379'] }), ctx());
    m.apply(encodeMembershipOp({ op: 'clusterVersion', version: '3.4.0' }), ctx());
    expect(store.currentIndex).toBe(3);
    expect(store.readInternal(`/0/members/${id}/raftAttributes`)).toBe('{"peerURLs":["http://a:2380"]}');
    expect(store.readInternal(`/0/members/${id}/attributes`)).toBe('{"name":"a","clientURLs":["http://a:2379"]}');
    expect(store.readInternal('/0/version')).toBe('3.4.0');
    expect(logs).toEqual(['set the initial cluster version to 3.4', 'enabled capabilities for version']);
    const root = store.get('/', true, false);
    expect(root.node.nodes).toBeUndefined();
    expect(root.etcdIndex).toBe(3);
    // A watch from index 1 of everything sees none of it, and sees the first write, at 4.
    const w = store.watch('/', true, false, 1);
    const e = store.set('/foo', false, 'bar', { expireTime: 0 });
    expect(e.node.modifiedIndex).toBe(4);
    return expect(w.next()).resolves.toMatchObject({ action: 'set', node: { key: '/foo', modifiedIndex: 4 } });
  });

  test('a removal takes two indexes (etcd deletes the member and records it removed); the records survive a snapshot', () => {
    const { store, m, id, member } = setup();
    m.applyConfChange({ type: 0, nodeId: id }, { member, v: 1 });
    m.applyConfChange({ type: 1, nodeId: id }, { member, v: 1 });
    expect(store.currentIndex).toBe(3);
    expect(store.readInternal(`/0/members/${id}/raftAttributes`)).toBeUndefined();
    expect(store.readInternal(`/0/removed_members/${id}`)).toBe('');
    const copy = new V2Store(() => 0);
    copy.recover(store.save());
    expect(copy.readInternal(`/0/removed_members/${id}`)).toBe('');
    expect(copy.watch('/', true, false, 1).removed).toBe(false); // nothing in the history for a key watch
  });

  test('a joining member, which starts with the cluster its peers told it, records what the others did when it replays', () => {
    const { store, m, id, member, empty } = setup();
    empty.add(member); // told by the peers
    m.applyConfChange({ type: 0, nodeId: id }, { member, v: 1 });
    expect(store.currentIndex).toBe(1);
    expect(store.readInternal(`/0/members/${id}/raftAttributes`)).toBe('{"peerURLs":["http://a:2380"]}');
  });

  test('entries of the first release record nothing (as that release applied them): replay and its snapshots agree', () => {
    const { store, m, id, member } = setup();
    m.applyConfChange({ type: 0, nodeId: id }, { member });
    m.apply(encodeMembershipOp({ op: 'attributes', id, name: 'a', clientURLs: [] }), ctx(true));
    expect(store.currentIndex).toBe(0);
  });
});

describe('the snapshot container', () => {
  const known = new Set([PART_MEMBERSHIP, PART_V2STORE]);

  test('each store by name, with a format version, round trip', () => {
    const parts = new Map([[PART_MEMBERSHIP, Buffer.from('{"id":"1"}')], [PART_V2STORE, Buffer.from('store')]]);
    const data = encodeSnapshotData(parts);
    expect(data.subarray(0, 4)).toEqual(SNAPSHOT_MAGIC);
    expect(data.readUInt16BE(4)).toBe(1);
    expect(decodeSnapshotData(data, known)).toEqual(parts);
  });

  test("the first release's layout (u32 length + JSON cluster + v2 store) loads as membership and v2store", () => {
    const cluster = { id: 'c1', members: [], removed: [] };
    const head = Buffer.from(JSON.stringify({ cluster }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(head.length);
    const parts = decodeSnapshotData(Buffer.concat([len, head, Buffer.from('{"index":7}')]), known);
    expect(JSON.parse(parts.get(PART_MEMBERSHIP)!.toString())).toEqual(cluster);
    expect(parts.get(PART_V2STORE)!.toString()).toBe('{"index":7}');
  });

  test('a store this release does not know (a newer release wrote it) is an error, not dropped', () => {
    const data = encodeSnapshotData(new Map([[PART_MEMBERSHIP, Buffer.from('{}')], [PART_V3, Buffer.from('backend')]]));
    expect(() => decodeSnapshotData(data, known)).toThrow(/part "v3" is not known/);
    expect(decodeSnapshotData(data, new Set([...known, PART_V3])).get(PART_V3)!.toString()).toBe('backend');
  });

  test('a newer format version, or a truncated container, is an error', () => {
    const data = encodeSnapshotData(new Map([[PART_V2STORE, Buffer.from('x')]]));
    const newer = Buffer.from(data);
    newer.writeUInt16BE(2, 4);
    expect(() => decodeSnapshotData(newer, known)).toThrow(/format version 2/);
    expect(() => decodeSnapshotData(data.subarray(0, data.length - 1), known)).toThrow(/runs past/);
  });

  test('a part in chunks, copied in turns, gives the same container as the part in one piece', async () => {
    const store = Buffer.from('x'.repeat(3 << 20).replace(/x/g, (_, i: number) => String.fromCharCode(97 + (i % 26))));
    const chunks = [store.subarray(0, 1), store.subarray(1, 1 << 20), Buffer.alloc(0), store.subarray(1 << 20)];
    const whole = encodeSnapshotData(new Map([[PART_MEMBERSHIP, Buffer.from('{}')], [PART_V2STORE, store]]));
    expect(encodeSnapshotData(new Map<string, Buffer | Buffer[]>([[PART_MEMBERSHIP, Buffer.from('{}')], [PART_V2STORE, chunks]])).equals(whole)).toBe(true);
    // Slices of 0 ms: one chunk a turn; the loop runs between them.
    let turns = 0;
    let done = false;
    const inTurns = encodeSnapshotDataInTurns(new Map([[PART_MEMBERSHIP, [Buffer.from('{}')]], [PART_V2STORE, chunks]]), 0).then((b) => {
      done = true;
      return b;
    });
    while (!done) {
      turns++;
      await new Promise((r) => setImmediate(r));
    }
    expect((await inTurns).equals(whole)).toBe(true);
    expect(turns).toBeGreaterThan(2);
  });
});

test('a v2 request encoded after room for its envelope and sealed in place is the same entry as one wrapped by a copy', () => {
  const r = req({ method: Method.PUT, path: '/ключ', value: 'v'.repeat(100) });
  const sealed = sealEntry(encodeRequest(r, ENVELOPE_BYTES), EntryKind.V2, r.id);
  expect(sealed).toEqual(encodeEntry(EntryKind.V2, r.id, encodeRequest(r)));
  expect(decodeRequest(decodeEntry(sealed).payload)).toEqual(r);
});
