/**
 * Our bbolt reader and writer (server/mvcc/bbolt/) against the real thing: files made by Debian's bbolt (nested,
 * inline and empty buckets, branch and overflow pages, a synced freelist) and by Debian's etcd (`etcdctl snapshot
 * save`) read as bbolt reads them; files our writer makes checked and read back by Debian's bbolt; and damaged files
 * (truncated, bad checksums, bad page types, cycles, random damage) refused with a BoltError, never a crash or a hang.
 */
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KVClient, PutRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { decodeKeyValue, etcdBackendImport, etcdSnapshotStatus } from '../../server/etcdserver/etcd-backend';
import { BoltError, FLAG_BRANCH, PAGE_HEADER } from '../../server/mvcc/bbolt/page';
import { BoltBucket, BoltEntry, BoltReader } from '../../server/mvcc/bbolt/reader';
import { BoltWriter, BucketWriter, writeBoltFile } from '../../server/mvcc/bbolt/writer';
import { boltDump, boltMake, bboltTool, DumpedBucket } from '../support/bbolt-tool';
import { RunningEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(180_000);

const hex = (b: Buffer): string => b.toString('hex');

/** What our reader sees of a bucket, in the tool's shape. */
function ours(b: BoltBucket): DumpedBucket {
  const entries: DumpedBucket['entries'] = [];
  for (const e of b.entries()) entries.push(e.bucket ? { k: hex(e.key), b: ours(b.open(e)) } : { k: hex(e.key), v: hex(e.value) });
  return { root: b.rootPage, entries };
}

function ourDump(file: string, size?: number): DumpedBucket {
  const r = BoltReader.open(file, size);
  try {
    return { root: 0, entries: ours(r.root()).entries };
  } finally {
    r.close();
  }
}

function etcdctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('/usr/bin/etcdctl', ['--command-timeout=15s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`etcdctl ${args.join(' ')}: ${stderr}`)) : resolve(stdout),
    ),
  );
}

let dir: string;
let etcd: RunningEtcd | undefined;
/** Debian's etcd's snapshot (its trailer cut), made once. */
let etcdDb: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bbolt-'));
  bboltTool(); // built once, before the timed tests
  etcd = await startRealEtcd(path.join(dir, 'etcd'));
  const ep = `--endpoints=${etcd.clientURL}`;
  // Enough versions for branch pages, a value bigger than a page, deletes, a compaction, a lease, users and roles.
  const kv = new KVClient(new URL(etcd.clientURL).host, grpc.credentials.createInsecure());
  try {
    for (let i = 0; i < 800; i++) {
      await new Promise((resolve, reject) => kv.put(PutRequest.fromPartial({ key: Buffer.from(`key${String(i).padStart(4, '0')}`), value: Buffer.from(`value-${i}`) }), (err, r) => (err ? reject(err) : resolve(r))));
    }
  } finally {
    kv.close();
  }
  await etcdctl([ep, 'put', 'large', 'x'.repeat(10_000)]);
  await etcdctl([ep, 'del', 'key01', '--prefix']);
  await etcdctl([ep, 'compaction', '20']);
  const lease = (await etcdctl([ep, 'lease', 'grant', '600'])).split(' ')[1];
  await etcdctl([ep, 'put', 'leased', 'v', `--lease=${lease}`]);
  await etcdctl([ep, 'user', 'add', 'alice:secret']);
  await etcdctl([ep, 'role', 'add', 'reader']);
  await etcdctl([ep, 'role', 'grant-permission', 'reader', 'read', 'key', 'kez']);
  await etcdctl([ep, 'user', 'grant-role', 'alice', 'reader']);
  const snap = path.join(dir, 'etcd.snapshot');
  await etcdctl([ep, 'snapshot', 'save', snap]);
  etcdDb = path.join(dir, 'etcd.db');
  writeFileSync(etcdDb, readFileSync(snap).subarray(0, statSync(snap).size - 32));
});

afterAll(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a database of Debian's bbolt: nested, inline and empty buckets, branch and overflow pages, a freelist, read as bbolt reads them", () => {
  const file = path.join(dir, 'made.db');
  boltMake(file);
  const theirs = boltDump(file);
  expect(theirs.check).toEqual([]);
  expect(ourDump(file)).toEqual(theirs.root);
  const r = BoltReader.open(file);
  try {
    expect(r.check()).toEqual([]);
    // What the file holds is what the test is about: a freelist with pages, a branch root, an inline bucket, an
    // empty one, a value over several pages.
    expect(r.meta.freelist).toBeDefined();
    expect(r.freePages().length).toBeGreaterThan(0);
    const a = r.bucket('a')!;
    expect(r.page(a.rootPage).readUInt16LE(8) & FLAG_BRANCH).toBe(FLAG_BRANCH);
    const nest = r.bucket('nest')!;
    expect(nest.bucket('inner')!.isInline).toBe(true);
    expect(nest.bucket('big')!.isInline).toBe(false);
    expect(r.bucket('empty')!.isInline).toBe(true);
    expect([...nest.bucket('deep')!.bucket('deeper')!.entries()].map((e) => [`${e.key}`, `${e.value}`])).toEqual([['bottom', 'of it']]);
    const large = [...a.entries()].find((e) => `${e.key}` === 'large')!;
    expect(large.value.length).toBe(20_000);
    expect(large.value[1]).toBe(8);
  } finally {
    r.close();
  }
});

test("a snapshot of Debian's etcd: every bucket as bbolt reads it, its status as etcd's etcdctl gives it, the versions etcd serves", async () => {
  const theirs = boltDump(etcdDb);
  expect(theirs.check).toEqual([]);
  expect(ourDump(etcdDb)).toEqual(theirs.root);
  const r = BoltReader.open(etcdDb);
  try {
    expect(r.meta.freelist).toBeUndefined(); // etcd's backend keeps none (NoFreelistSync)
    expect(r.check()).toEqual([]);
    const snap = path.join(dir, 'etcd.snapshot');
    expect(etcdSnapshotStatus(r)).toEqual(JSON.parse(await etcdctl(['snapshot', 'status', snap, '-w', 'json'])));
    // The last live version of each key, from the key bucket, is what etcd answers.
    const live = new Map<string, unknown>();
    for (const v of etcdBackendImport(r, 1).versions) {
      if (v.tombstone) live.delete(hex(v.key));
      else live.set(hex(v.key), { key: v.key.toString('base64'), create_revision: v.create, mod_revision: v.main, version: v.version, ...(v.value.length ? { value: v.value.toString('base64') } : {}), ...(v.lease ? { lease: Number(v.lease) } : {}) });
    }
    const got = JSON.parse(await etcdctl([`--endpoints=${etcd!.clientURL}`, 'get', '', '--prefix', '-w', 'json'])) as { kvs: unknown[] };
    expect([...live.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([, kv]) => kv)).toEqual(got.kvs);
    // A transient walk (each leaf's memory reused for the next, a large value's pages too) reads the same entries.
    const copy = (e: BoltEntry) => [Buffer.from(e.key), Buffer.from(e.value), e.bucket];
    const all = [...r.bucket('key')!.entries()].map(copy);
    const transient: unknown[] = [];
    for (const e of r.bucket('key')!.entries(true)) transient.push(copy(e));
    expect(transient).toEqual(all);
    expect(all.length).toBeGreaterThan(100);
    const large = [...r.bucket('key')!.entries()].map((e) => decodeKeyValue(e.value, 'test')).find((kv) => `${kv.key}` === 'large')!;
    expect(large.value.toString()).toBe('x'.repeat(10_000));
    expect(r.page(r.bucket('key')!.rootPage).readUInt16LE(8) & FLAG_BRANCH).toBe(FLAG_BRANCH);
  } finally {
    r.close();
  }
});

/** A tree to write: keys with values, or nested trees. */
type Tree = [Buffer, Buffer | Tree][];

function writeTree(b: BucketWriter, t: Tree): void {
  for (const [k, v] of t) {
    if (Buffer.isBuffer(v)) b.put(k, v);
    else {
      const c = b.bucket(k);
      writeTree(c, v);
      c.end();
    }
  }
}

function dumpOf(t: Tree): DumpedBucket['entries'] {
  return t.map(([k, v]) => (Buffer.isBuffer(v) ? { k: hex(k), v: hex(v) } : { k: hex(k), b: { root: expect.any(Number) as unknown as number, entries: dumpOf(v) } }));
}

test("our writer's files: Debian's bbolt checks them and reads back every bucket, inlined where bbolt inlines", async () => {
  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  const many: Tree = Array.from({ length: 30_000 }, (_, i) => [Buffer.from(`k${String(i).padStart(6, '0')}`), bytes(i % 90, i)]);
  many.push([Buffer.from('l-huge'), bytes(100_000, 3)], [Buffer.from('l-large'), bytes(5000, 4)]);
  const longKeys: Tree = Array.from({ length: 60 }, (_, i) => [Buffer.concat([Buffer.from(String(i).padStart(3, '0')), bytes(2000, i)]), bytes(10, i)]);
  const tree: Tree = [
    [Buffer.from('a-many'), many],
    [Buffer.from('b-empty'), []],
    [Buffer.from('c-long-keys'), longKeys],
    [Buffer.from('d-nest'), [
      [Buffer.from('big'), Array.from({ length: 400 }, (_, i) => [Buffer.from(`n${String(i).padStart(4, '0')}`), bytes(40, i)] as [Buffer, Buffer])],
      [Buffer.from('deep'), [[Buffer.from('deeper'), [[Buffer.from('deepest'), [[Buffer.from('k'), Buffer.from('v')]]]]]]],
      [Buffer.from('plain'), Buffer.from('value')],
      [Buffer.from('small'), [[Buffer.from('x'), Buffer.from('1')], [Buffer.from('y'), Buffer.from('2')]]],
    ]],
  ];
  const file = path.join(dir, 'written.db');
  const size = await writeBoltFile(file, (root) => writeTree(root, tree));
  expect(statSync(file).size).toBe(size);
  const theirs = boltDump(file);
  expect(theirs.check).toEqual([]);
  expect(theirs.root.entries).toEqual(dumpOf(tree));
  const roots = (b: DumpedBucket, name: string) => b.entries.find((e) => Buffer.from(e.k, 'hex').toString() === name)!.b!;
  // bbolt's rule: one leaf, no nested bucket, at most a quarter page, is inline.
  expect(roots(theirs.root, 'b-empty').root).toBe(0);
  expect(roots(roots(theirs.root, 'd-nest'), 'small').root).toBe(0);
  expect(roots(roots(theirs.root, 'd-nest'), 'deep').root).not.toBe(0);
  expect(roots(theirs.root, 'a-many').root).not.toBe(0);
  expect(ourDump(file)).toEqual(theirs.root);
  // Three levels in the big bucket: a branch over branches over leaves.
  const r = BoltReader.open(file);
  try {
    const root = r.page(r.bucket('a-many')!.rootPage);
    expect(root.readUInt16LE(8)).toBe(FLAG_BRANCH);
    expect(r.page(Number(root.readBigUInt64LE(PAGE_HEADER + 8))).readUInt16LE(8)).toBe(FLAG_BRANCH);
  } finally {
    r.close();
  }
});

test('writer: keys out of order, an empty key, a bucket left open, a stream pass unlike its layout pass are refused', async () => {
  for (const w of [BoltWriter.layout(), BoltWriter.stream({ pageSize: 4096, root: 3, freelist: 4, pgid: 5 })]) {
    const b = w.root.bucket(Buffer.from('b'));
    b.put(Buffer.from('2'), Buffer.from('x'));
    expect(() => b.put(Buffer.from('1'), Buffer.from('x'))).toThrow('keys out of order');
    expect(() => b.put(Buffer.alloc(0), Buffer.from('x'))).toThrow('empty key');
    expect(() => w.finish()).toThrow('still open');
  }
  // A stream pass given other entries than its layout pass counted makes no file.
  await expect(
    writeBoltFile(path.join(dir, 'changed.db'), (() => {
      let pass = 0;
      return (root: BucketWriter) => {
        const b = root.bucket(Buffer.from('b'));
        const n = pass++ === 0 ? 10 : 1000;
        for (let i = 0; i < n; i++) b.put(Buffer.from(`k${String(i).padStart(4, '0')}`), Buffer.alloc(100));
        b.end();
      };
    })()),
  ).rejects.toThrow('not those of the layout pass');
  expect(existsSync(path.join(dir, 'changed.db'))).toBe(false);
});

/** A copy of the etcd snapshot's database with damage done to it. */
function damaged(name: string, harm: (b: Buffer, pageSize: number) => Buffer | void): string {
  const b = readFileSync(etcdDb);
  const out = harm(b, 4096) ?? b;
  const file = path.join(dir, `${name}.db`);
  writeFileSync(file, out);
  return file;
}

/** Everything a restore and a status read of a file: every bucket's entries, the check, the status, the versions. */
function readAll(file: string): void {
  const r = BoltReader.open(file);
  try {
    r.check();
    const walk = (b: BoltBucket): void => {
      for (const e of b.entries()) if (e.bucket) walk(b.open(e));
    };
    walk(r.root());
    etcdSnapshotStatus(r);
    const imp = etcdBackendImport(r, 1);
    for (const v of imp.versions) void v;
  } finally {
    r.close();
  }
}

/** The key bucket's root page (a branch) and one of its leaves. */
function keyPages(): { root: number; leaf: number } {
  const r = BoltReader.open(etcdDb);
  try {
    const root = r.bucket('key')!.rootPage;
    return { root, leaf: Number(r.page(root).readBigUInt64LE(PAGE_HEADER + 8)) };
  } finally {
    r.close();
  }
}

test('damaged files: truncated, bad meta pages, bad page types, bad pages, cycles give a BoltError saying what and where', () => {
  const { root, leaf } = keyPages();
  const fails = (file: string, what: RegExp, step: (f: string) => unknown = readAll) => {
    let err: unknown;
    try {
      step(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(what);
  };
  fails(damaged('short', (b) => b.subarray(0, 100)), /invalid database: file size 100 too small/, (f) => BoltReader.open(f));
  fails(damaged('half', (b) => b.subarray(0, b.length / 2)), /file truncated/, (f) => BoltReader.open(f));
  fails(damaged('magic', (b) => { b[16] ^= 1; b[4096 + 16] ^= 1; }), /^invalid database$/, (f) => BoltReader.open(f));
  fails(damaged('checksum', (b) => { b[16 + 40] ^= 1; b[4096 + 16 + 40] ^= 1; }), /^checksum error$/, (f) => BoltReader.open(f));
  fails(damaged('version', (b) => { b[16 + 4] = 9; b[4096 + 16 + 4] = 9; }), /^version mismatch$/, (f) => BoltReader.open(f));
  // One meta page damaged: the other one is used, as bbolt does.
  const oneMeta = damaged('one-meta', (b) => { b[16 + 40] ^= 1; });
  expect(() => readAll(oneMeta)).not.toThrow();
  fails(damaged('type', (b) => { b.writeUInt16LE(0x20, leaf * 4096 + 8); }), new RegExp(`page ${leaf}: invalid type: unknown<20>, want a branch or a leaf`));
  fails(damaged('id', (b) => { b.writeUInt32LE(12345, leaf * 4096); }), new RegExp(`page ${leaf}: header names page 12345`));
  fails(damaged('cycle', (b) => { b.writeBigUInt64LE(BigInt(root), root * 4096 + PAGE_HEADER + 8); }), new RegExp(`page ${root}: reached twice`));
  fails(damaged('bounds', (b) => { b.writeBigUInt64LE(1000000n, root * 4096 + PAGE_HEADER + 8); }), /page 1000000: out of bounds \(high water mark \d+\)/);
  fails(damaged('element', (b) => { b.writeUInt32LE(0xfffff, leaf * 4096 + PAGE_HEADER + 8); }), new RegExp(`page ${leaf}: element 0 goes past the end of the page`));
  fails(damaged('count', (b) => { b.writeUInt16LE(0xffff, leaf * 4096 + 10); }), new RegExp(`page ${leaf}: 65535 elements do not fit in it`));
  // bbolt's check names each problem as bbolt does.
  const r = BoltReader.open(damaged('checked', (b) => { b.writeUInt16LE(0x20, leaf * 4096 + 8); }));
  try {
    expect(r.check()).toEqual([`page ${leaf}: invalid type: unknown<20>`]);
  } finally {
    r.close();
  }
});

test('random damage: every read ends, in its result or a BoltError, never another exception', () => {
  const original = readFileSync(etcdDb);
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const file = path.join(dir, 'fuzz.db');
  let refused = 0;
  // (FUZZ_ROUNDS=3000 for a longer run; the damage is seeded, the etcd file it is done to new each run)
  for (let round = 0; round < Number(process.env.FUZZ_ROUNDS ?? 250); round++) {
    const b = Buffer.from(original);
    const hits = 1 + rand(8);
    // Damage past the meta pages (damaged meta pages are the cases above), in the headers and element tables
    // (the first bytes of a page) more often than in the data.
    for (let i = 0; i < hits; i++) {
      const page = 2 + rand(b.length / 4096 - 2);
      const at = page * 4096 + (rand(2) ? rand(64) : rand(4096));
      b[at] = rand(256);
    }
    writeFileSync(file, b);
    try {
      readAll(file);
    } catch (err) {
      if (!(err instanceof BoltError)) throw new Error(`round ${round}: not a BoltError: ${(err as Error).stack}`);
      refused++;
    }
  }
  expect(refused).toBeGreaterThan(30);
});
