/**
 * etcd's backend and our store, both ways (server/etcdserver/etcd-backend.ts): a store written out as etcd's bbolt
 * file and imported back is the same store, table for table (every version at its revision, tombstones, leases and
 * their keys, compaction, auth, alarms); the bytes are gogoproto's; and both ways stream, a large snapshot taking
 * a bounded heap.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Permission_Type } from '../../server/api/v3rpc/pb/authpb/auth';
import { AlarmType } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { KeyValue } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { AUTH_META_KEY, encodeAuthState } from '../../server/auth/store';
import { ALARMS_META_KEY, encodeAlarms } from '../../server/etcdserver/alarms';
import { decodeKeyValue, encodeKeyValue, etcdBackendImport, etcdMemberJSON, writeEtcdBackend } from '../../server/etcdserver/etcd-backend';
import { BoltReader } from '../../server/mvcc/bbolt/reader';
import { encodeRecord, revBytes } from '../../server/mvcc/codec';
import { ImportedVersion, MvccStore, StoreView } from '../../server/mvcc/store';

jest.setTimeout(180_000);

const b = (s: string) => Buffer.from(s);
let dir: string;
let index = 0;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'etcd-backend-'));
  index = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The first entry of each table where two stores' dumps (store.ts's dumpSync) differ, or '' when they are equal. */
function dumpDiff(a: Buffer, c: Buffer): string {
  const parse = (d: Buffer): string[][] => {
    const tables: string[][] = [];
    let o = 4; // magic
    for (let t = 0; t < 6; t++) {
      o++; // table number
      const entries: string[] = [];
      for (;;) {
        const kl = d.readUInt32BE(o);
        o += 4;
        if (kl === 0xffffffff) break;
        const k = d.subarray(o, o + kl);
        o += kl;
        const vl = d.readUInt32BE(o);
        o += 4;
        entries.push(`${k.toString('hex')}=${d.subarray(o, o + vl).toString('hex').slice(0, 200)}`);
        o += vl;
      }
      tables.push(entries);
    }
    return tables;
  };
  const x = parse(a);
  const y = parse(c);
  const diffs: string[] = [];
  for (let t = 0; t < 6; t++) {
    if (x[t].length !== y[t].length) diffs.push(`table ${t}: ${x[t].length} entries, ${y[t].length}`);
    const i = x[t].findIndex((e, j) => e !== y[t][j]);
    if (i >= 0) diffs.push(`table ${t} entry ${i}: ${x[t][i]} vs ${y[t][i]}`);
  }
  return diffs.join('\n');
}

function put(st: MvccStore, key: string, value: string, lease = 0n): void {
  const t = st.write(++index);
  t.put(b(key), b(value), lease);
  t.end();
}

test('a store written as etcd\'s backend and imported back is the same store, table for table', async () => {
  const s = MvccStore.open(path.join(dir, 'src'), { batchInterval: 5 });
  try {
    for (let i = 0; i < 3000; i++) put(s, `k${i % 700}`, `v${i}`.repeat(1 + (i % 5)));
    s.stageLease({ id: 0x1234n, ttl: 60, remainingTTL: 0 });
    s.stageLease({ id: -5n, ttl: 90, remainingTTL: 42 }); // IDs are int64: a negative one sorts last in bytes
    put(s, 'leased', 'a', 0x1234n);
    put(s, 'leased2', 'b', -5n);
    put(s, 'big', 'x'.repeat(50_000));
    put(s, 'key\u0000with zero', 'z');
    const t = s.write(++index); // several versions in one revision (subs 0, 1, 2), a delete among them
    t.put(b('multi1'), b('1'), 0n);
    t.put(b('multi2'), b('2'), 0n);
    t.deleteRange(b('k1'), b('k2'));
    t.end();
    await s.compact(2500, ++index);
    put(s, 'k5', 'after compaction');
    s.putMetaValue(AUTH_META_KEY, encodeAuthState({
      enabled: true, revision: 7,
      // (in name order, as etcd's bucket keeps them and an import lists them)
      users: [{ name: b('bob'), password: Buffer.alloc(0), roles: ['r'], options: { noPassword: true } }, { name: b('root'), password: b('$2a$10$abc'), roles: ['root'], options: { noPassword: false } }],
      roles: [{ name: b('r'), keyPermission: [{ permType: Permission_Type.READWRITE, key: b('a'), rangeEnd: b('b') }] }],
    }), ++index);
    // (in the alarm store's order: by type, then member)
    s.putMetaValue(ALARMS_META_KEY, encodeAlarms([{ memberID: 4n, alarm: AlarmType.NOSPACE }, { memberID: 5n, alarm: AlarmType.NOSPACE }, { memberID: 3n, alarm: AlarmType.CORRUPT }]), ++index);
    s.flushSync();

    const file = path.join(dir, 'etcd.db');
    const size = await s.withSnapshotView((view) => writeEtcdBackend(view, file, { members: [{ id: 'a1', name: 'one', peerURLs: ['http://p:1'], clientURLs: ['http://c:1'], isLearner: false }], removed: ['b2'], version: '3.4.0' }));
    expect(statSync(file).size).toBe(size);

    const r = BoltReader.open(file);
    try {
      expect(r.check()).toEqual([]);
      expect([...r.root().entries()].map((e) => `${e.key}`)).toEqual(['alarm', 'auth', 'authRoles', 'authUsers', 'cluster', 'key', 'lease', 'members', 'members_removed', 'meta']);
      const meta = new Map([...r.bucket('meta')!.entries()].map((e) => [`${e.key}`, Buffer.from(e.value)]));
      expect(meta.get('consistent_index')!.readBigUInt64BE(0)).toBe(BigInt(s.consistentIndex()));
      expect(meta.get('finishedCompactRev')).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0x09, 0xc4]), b('_'), Buffer.alloc(8)]));
      expect([...r.bucket('members')!.entries()].map((e) => [`${e.key}`, `${e.value}`])).toEqual([['a1', '{"id":161,"peerURLs":["http://p:1"],"name":"one","clientURLs":["http://c:1"]}']]);
      expect([...r.bucket('cluster')!.entries()].map((e) => [`${e.key}`, `${e.value}`])).toEqual([['clusterVersion', '3.4.0']]);

      const to = path.join(dir, 'imported');
      const { rev } = await MvccStore.importData(to, etcdBackendImport(r, s.consistentIndex()));
      expect(rev).toBe(s.rev());
      const back = MvccStore.open(to);
      try {
        // Every table, byte for byte (the dump holds them all, meta values and the consistent index included).
        expect(dumpDiff(back.dumpSync(), s.dumpSync())).toBe('');
        expect([back.rev(), back.compactRev(), back.consistentIndex()]).toEqual([s.rev(), s.compactRev(), s.consistentIndex()]);
        expect(back.loadLeases()).toEqual(s.loadLeases());
        expect(back.range(b('k5'), undefined, { rev: 2600 })).toEqual(s.range(b('k5'), undefined, { rev: 2600 }));
      } finally {
        await back.close();
      }
    } finally {
      r.close();
    }
  } finally {
    await s.close();
  }
});

test("KeyValue bytes are gogoproto's (as the generated codec writes them), a deletion's holding only its key", () => {
  const cases: [Buffer, number, number, number, Buffer, bigint][] = [
    [b('k'), 2, 2, 1, b('v'), 0n],
    [b('k'), 2 ** 40, 2 ** 41, 300, Buffer.alloc(0), -1n],
    [b('key'), 5, 9, 3, Buffer.alloc(200, 1), 0x7fffffffffffffffn],
    [b('gone'), 0, 0, 0, Buffer.alloc(0), 0n],
    // Varints of 7 bytes and more (numbers from 2^49), and a lease of a few bytes.
    [b('big'), 2 ** 49 - 1, 2 ** 49, Number.MAX_SAFE_INTEGER, Buffer.alloc(70000, 2), 0x1234n],
  ];
  for (const [key, create, mod, version, value, lease] of cases) {
    const ours = encodeKeyValue(key, create, mod, version, value, lease);
    const generated = Buffer.from(KeyValue.encode({ key, createRevision: BigInt(create), modRevision: BigInt(mod), version: BigInt(version), value, lease }).finish());
    expect(ours).toEqual(generated);
    expect(decodeKeyValue(ours, 'test')).toEqual({ key, create, mod, version, value, lease });
  }
  // Fields it does not know are passed over (fixed64, fixed32, bytes); a message cut anywhere is malformed.
  const whole = encodeKeyValue(b('k'), 7, 7, 1, b('value'), 3n);
  const extra = Buffer.concat([Buffer.from([0x39, 1, 2, 3, 4, 5, 6, 7, 8, 0x45, 1, 2, 3, 4, 0x52, 2, 9, 9]), whole]);
  expect(decodeKeyValue(extra, 'test')).toEqual(decodeKeyValue(whole, 'test'));
  for (let cut = 1; cut < whole.length; cut++) {
    if ([3, 5, 7, 9, 16].includes(cut)) continue; // field boundaries: what precedes is a whole message
    expect(() => decodeKeyValue(whole.subarray(0, cut), 'test')).toThrow('test: malformed message');
  }
  expect(() => decodeKeyValue(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'test')).toThrow('test: malformed message');
  expect(etcdMemberJSON({ id: 'ffffffffffffffff', name: '', peerURLs: ['http://a<b'], clientURLs: [], isLearner: true })).toBe('{"id":18446744073709551615,"peerURLs":["http://a\\u003cb"],"isLearner":true}');
});

/** V8's gc(), for measuring what is in use rather than what is not collected yet. */
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
// Off again, so that the next test file in this worker gets no gc() among its globals.
v8.setFlagsFromString('--no-expose-gc');

/** The heap and Buffer memory in use now (after a full collection). */
const used = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

test('a large snapshot is written and imported streaming: the memory in use stays far below its size', async () => {
  const N = 80_000;
  const value = Buffer.alloc(1200, 0x61);
  let peak = 0;
  const base = used();
  const sample = () => {
    peak = Math.max(peak, used() - base);
  };
  // A store view of N versions made on the fly (what a big store's read transaction gives, without the store).
  const view: StoreView = {
    consistentIndex: N, rev: N + 1, finishedCompactRev: undefined, scheduledCompactRev: undefined,
    metaValue: () => undefined,
    *versions() {
      for (let i = 0; i < N; i++) {
        if (i % 10_000 === 0) sample();
        yield { rev: revBytes(i + 2, 0), rec: encodeRecord(b(`key${String(i).padStart(8, '0')}`), value, i + 2, 1, 0n, false) };
      }
    },
    leases: () => [],
  };
  const file = path.join(dir, 'big.db');
  const size = await writeEtcdBackend(view, file, undefined);
  expect(size).toBeGreaterThan(N * value.length);
  expect(peak).toBeLessThan(48 << 20); // (V8 frees Buffers behind its collections, so this is noisy: 10-40 MiB)
  const writePeak = peak;

  peak = 0;
  const r = BoltReader.open(file);
  try {
    const imp = etcdBackendImport(r, 1);
    const versions = imp.versions;
    let n = 0;
    imp.versions = {
      *[Symbol.iterator]() {
        for (const v of versions as Iterable<ImportedVersion>) {
          if (++n % 10_000 === 0) sample();
          yield v;
        }
      },
    };
    const { rev, versions: count } = await MvccStore.importData(path.join(dir, 'imported'), imp);
    expect([rev, count]).toEqual([N + 1, N]);
  } finally {
    r.close();
  }
  expect(peak).toBeLessThan(48 << 20); // (V8 frees Buffers behind its collections, so this is noisy: 10-40 MiB)
  // (printed for the record: the file's size and what writing and importing it took at most)
  console.log(`snapshot of ${(size / 2 ** 20).toFixed(0)} MiB: at most ${(writePeak / 2 ** 20).toFixed(1)} MiB in use writing it, ${(peak / 2 ** 20).toFixed(1)} MiB importing it`);
});
