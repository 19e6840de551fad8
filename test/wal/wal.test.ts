import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType } from '../../server/raft';
import { Snapshotter } from '../../server/snap/snapshotter';
import { decodeAt, isZeroFrom } from '../../server/wal/record';
import { MAX_WRITE_BYTES, WAL, WALCorruptError, WALSnapshotNotFoundError } from '../../server/wal/wal';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wal-test-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const ent = (index: number, term: number, data = `v${index}t${term}`): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(data) });
const meta = Buffer.from('{"memberId":"8e9e05c52164694d"}');
const datas = (es: Entry[]) => es.map((e) => `${e.index}/${e.term}/${Buffer.from(e.data).toString()}`);
/** Opens the WAL to read what it replays, and closes it again. */
async function reopen(dir: string, from: { index: number; term: number }) {
  const r = await WAL.open(dir, from);
  await r.wal.close();
  return r;
}
/** Where the whole records of a segment end (what follows is unwritten or torn). */
function recordsEnd(buf: Buffer): number {
  let off = 0;
  for (let r = decodeAt(buf, off); r.kind === 'record'; r = decodeAt(buf, off)) off += r.size;
  return off;
}
const only = (dir: string) => path.join(dir, fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).sort().pop()!);

describe('WAL', () => {
  test('hard state and entries survive close and reopen', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save({ term: 1, vote: 'a', commit: 0 }, [ent(1, 1), ent(2, 1)]);
    await w.save({ term: 2, vote: 'b', commit: 2 }, [ent(3, 2, 'x'.repeat(10000))]);
    await w.close();
    const r = await WAL.open(dir, { index: 0, term: 0 });
    expect(r.metadata.equals(meta)).toBe(true);
    expect(r.hardState).toEqual({ term: 2, vote: 'b', commit: 2 });
    expect(datas(r.entries)).toEqual(datas([ent(1, 1), ent(2, 1), ent(3, 2, 'x'.repeat(10000))]));
    // It keeps appending where it left off.
    await r.wal.save(undefined, [ent(4, 2)]);
    await r.wal.close();
    expect((await reopen(dir, { index: 0, term: 0 })).entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
  });

  test("replay applies Raft's overwrite rule: a rewritten index replaces the tail from there", async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save(undefined, Array.from({ length: 10 }, (_, i) => ent(i + 1, 1)));
    await w.save(undefined, [ent(6, 2), ent(7, 2), ent(8, 2)]);
    await w.close();
    const r = await WAL.open(dir, { index: 0, term: 0 });
    expect(r.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/1', '4/1', '5/1', '6/2', '7/2', '8/2']);
    await r.wal.close();
  });

  test('a torn last record, cut at every byte, is cut off: exactly the whole records remain', async () => {
    const dir = path.join(root, 'wal');
    const o = { segmentBytes: 64 * 1024 };
    const w = await WAL.create(dir, meta, o);
    await w.save({ term: 1, vote: '', commit: 1 }, [ent(1, 1), ent(2, 1)]);
    await w.close();
    const file = only(dir);
    const goodEnd = recordsEnd(fs.readFileSync(file));
    const w2 = (await WAL.open(dir, { index: 0, term: 0 }, o)).wal;
    await w2.save(undefined, [ent(3, 1, 'the-last-one')]);
    await w2.close();
    const full = fs.readFileSync(file);
    const fullEnd = recordsEnd(full);
    expect(full.length).toBe(o.segmentBytes);
    expect(fullEnd).toBeGreaterThan(goodEnd);
    // A crash in the middle of the last write leaves its first bytes: followed by the zeros of the preallocated
    // segment, or by nothing (a segment written before preallocation, which grew with every write).
    for (let cut = goodEnd; cut < fullEnd; cut++) {
      for (const tail of ['zeros', 'none']) {
        fs.writeFileSync(file, tail === 'zeros' ? Buffer.concat([full.subarray(0, cut), Buffer.alloc(full.length - cut)]) : full.subarray(0, cut));
        const warnings: string[] = [];
        const r = await WAL.open(dir, { index: 0, term: 0 }, { ...o, warn: (m) => warnings.push(m) });
        expect(r.entries.map((e) => e.index)).toEqual([1, 2]);
        await r.wal.close();
        const after = fs.readFileSync(file);
        expect(after.length).toBe(o.segmentBytes);
        expect(recordsEnd(after)).toBe(goodEnd);
        expect(isZeroFrom(after, goodEnd)).toBe(true);
        if (cut > goodEnd) expect(warnings.join()).toMatch(/cutting a torn write/);
        else expect(warnings).toEqual([]);
      }
    }
    // A flipped byte inside the last record (it reached the disk whole but garbled) is also a torn write.
    const garbled = Buffer.from(full);
    garbled[fullEnd - 3] ^= 0xff;
    fs.writeFileSync(file, garbled);
    const r = await WAL.open(dir, { index: 0, term: 0 }, o);
    expect(r.entries.map((e) => e.index)).toEqual([1, 2]);
    // Appends go on where the whole records end.
    await r.wal.save(undefined, [ent(3, 1, 'again')]);
    await r.wal.close();
    expect(datas((await reopen(dir, { index: 0, term: 0 })).entries)).toEqual(datas([ent(1, 1), ent(2, 1), ent(3, 1, 'again')]));
  });

  test('segments are preallocated: an append never changes the file size, and replay stops at the unwritten zeros', async () => {
    const dir = path.join(root, 'wal');
    const o = { segmentBytes: 256 * 1024 };
    const w = await WAL.create(dir, meta, o);
    const file = only(dir);
    expect(fs.statSync(file).size).toBe(o.segmentBytes);
    for (let i = 1; i <= 20; i++) {
      await w.save({ term: 1, vote: 'a', commit: i - 1 }, [ent(i, 1)]);
      expect(fs.statSync(file).size).toBe(o.segmentBytes);
    }
    await w.close();
    const r = await WAL.open(dir, { index: 0, term: 0 }, o);
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(r.hardState).toEqual({ term: 1, vote: 'a', commit: 19 });
    await r.wal.close();
  });

  test('a segment written before preallocation (ending at its last record) is read whole and sized up', async () => {
    const dir = path.join(root, 'wal');
    const o = { segmentBytes: 128 * 1024 };
    const w = await WAL.create(dir, meta, o);
    await w.save(undefined, [ent(1, 1), ent(2, 1)]);
    await w.close();
    const file = only(dir);
    fs.truncateSync(file, recordsEnd(fs.readFileSync(file)));
    const warnings: string[] = [];
    const r = await WAL.open(dir, { index: 0, term: 0 }, { ...o, warn: (m) => warnings.push(m) });
    expect(r.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(warnings).toEqual([]);
    expect(fs.statSync(file).size).toBe(o.segmentBytes);
    await r.wal.save(undefined, [ent(3, 1)]);
    await r.wal.close();
    expect((await reopen(dir, { index: 0, term: 0 })).entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  test('a finished segment is cut to its records, so a later segment size (or none) still reads every segment whole', async () => {
    const dir = path.join(root, 'wal');
    // Written with large segments, then reopened with small ones: the first segment is finished early.
    const w = await WAL.create(dir, meta, { segmentBytes: 1024 * 1024 });
    await w.save({ term: 1, vote: 'a', commit: 0 }, [ent(1, 1), ent(2, 1)]);
    await w.close();
    const small = { segmentBytes: 4096 };
    const r = await WAL.open(dir, { index: 0, term: 0 }, small);
    for (let i = 3; i <= 40; i++) await r.wal.save({ term: 1, vote: 'a', commit: i - 1 }, [ent(i, 1, 'z'.repeat(300))]);
    await r.wal.close();
    const files = fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();
    expect(files.length).toBeGreaterThan(2);
    for (const f of files.slice(0, -1)) {
      const buf = fs.readFileSync(path.join(dir, f));
      expect(recordsEnd(buf)).toBe(buf.length);
    }
    for (const o of [small, {}]) {
      const again = await WAL.open(dir, { index: 0, term: 0 }, o);
      expect(again.entries.map((e) => e.index)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      await again.wal.close();
    }
  });

  test('zeros over part of a record with records after them (no whole sector lost) are corruption, not a torn write', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta, { segmentBytes: 64 * 1024 });
    await w.save(undefined, [ent(1, 1)]);
    const firstEnd = recordsEnd(fs.readFileSync(only(dir)));
    await w.save(undefined, [ent(2, 1), ent(3, 1)]);
    await w.close();
    const buf = fs.readFileSync(only(dir));
    buf.fill(0, firstEnd, firstEnd + 20); // entry 2's header and first bytes
    fs.writeFileSync(only(dir), buf);
    await expect(WAL.open(dir, { index: 0, term: 0 })).rejects.toThrow(/corrupt at offset \d+ \(zero-length record\)/);
  });

  describe('a power loss in the middle of the last write can leave any of its sectors unwritten', () => {
    const o = { segmentBytes: 1024 * 1024 };
    /** Entry 1 acknowledged, then one write of entry 2 (`size` bytes of data) and entry 3, which the crash tears. */
    async function tornLastWrite(size: number, lose: (buf: Buffer, writeStart: number) => void) {
      const dir = path.join(root, 'wal');
      const w = await WAL.create(dir, meta, o);
      await w.save({ term: 1, vote: 'a', commit: 0 }, [ent(1, 1)]);
      const writeStart = recordsEnd(fs.readFileSync(only(dir)));
      await w.save(undefined, [ent(2, 1, 'y'.repeat(size)), ent(3, 1)]);
      await w.close();
      const buf = fs.readFileSync(only(dir));
      lose(buf, writeStart);
      fs.writeFileSync(only(dir), buf);
      return dir;
    }
    const page = (at: number) => Math.ceil((at + 1) / 4096) * 4096;

    test.each([
      ['its first page (a later one reached the disk)', 6000, (buf: Buffer, start: number) => buf.fill(0, start, page(start))],
      ['a page in the middle of a record', 9000, (buf: Buffer, start: number) => buf.fill(0, page(start), page(start) + 4096)],
    ])('losing %s is a torn write: cut, with every acknowledged entry kept', async (_what, size, lose) => {
      const dir = await tornLastWrite(size, lose);
      const warnings: string[] = [];
      const r = await WAL.open(dir, { index: 0, term: 0 }, { ...o, warn: (m) => warnings.push(m) });
      expect(r.entries.map((e) => e.index)).toEqual([1]);
      expect(warnings.join()).toMatch(/cutting a torn write/);
      await r.wal.save(undefined, [ent(2, 1, 'again')]);
      await r.wal.close();
      expect(datas((await reopen(dir, { index: 0, term: 0 })).entries)).toEqual(datas([ent(1, 1), ent(2, 1, 'again')]));
    });

    test('a lost sector with more than one write of records after it is corruption, not a torn write', async () => {
      const dir = path.join(root, 'wal');
      const w = await WAL.create(dir, meta, { segmentBytes: 4 * MAX_WRITE_BYTES });
      await w.save(undefined, [ent(1, 1)]);
      const start = recordsEnd(fs.readFileSync(only(dir)));
      await w.save(undefined, [ent(2, 1, 'y'.repeat(4096))]);
      for (let i = 3; i < 3 + 300; i++) await w.save(undefined, [ent(i, 1, 'z'.repeat(4096))]); // > MAX_WRITE_BYTES
      await w.close();
      const buf = fs.readFileSync(only(dir));
      buf.fill(0, page(start), page(start) + 512);
      fs.writeFileSync(only(dir), buf);
      await expect(WAL.open(dir, { index: 0, term: 0 })).rejects.toThrow(WALCorruptError);
    });

    test("a flipped bit that makes an acknowledged record's length claim the records after it is corruption, not a torn write", async () => {
      const dir = path.join(root, 'wal');
      const w = await WAL.create(dir, meta, o);
      for (let i = 1; i <= 5; i++) await w.save({ term: 1, vote: 'a', commit: i - 1 }, [ent(i, 1)]);
      await w.close();
      const buf = fs.readFileSync(only(dir));
      // Entry 2's record: its length grows by 64 KiB, so its claimed end lies in the unwritten zeros.
      let off = 0;
      for (let r = decodeAt(buf, off); r.kind === 'record' && !(r.record.type === 2 && r.record.entry.index === 2); r = decodeAt(buf, off)) off += r.size;
      buf[off + 2] ^= 0x01;
      fs.writeFileSync(only(dir), buf);
      await expect(WAL.open(dir, { index: 0, term: 0 }, o)).rejects.toThrow(/corrupt at offset \d+ \(checksum mismatch\)/);
    });

    test('a flipped bit (no sector lost) in a record followed by others is corruption', async () => {
      const dir = await tornLastWrite(6000, (buf, start) => {
        buf[start + 3000] ^= 0x10;
      });
      // The write was never acknowledged, but nothing in it looks like a torn write: refusing is the safe answer.
      await expect(WAL.open(dir, { index: 0, term: 0 })).rejects.toThrow(/checksum mismatch/);
    });
  });

  test('a batch larger than one write goes in several, each synced; replay reads it whole', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    const big = (i: number) => ent(i, 1, String(i).repeat(MAX_WRITE_BYTES * 0.6));
    await w.save(undefined, [big(1), big(2), big(3)]);
    expect(w.stats.fsyncs).toBe(3);
    await w.close();
    expect(datas((await reopen(dir, { index: 0, term: 0 })).entries)).toEqual(datas([big(1), big(2), big(3)]));
  });

  test('a segment is prepared aside and renamed into place; one a crash left half prepared is removed', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta, { segmentBytes: 4096 });
    for (let i = 1; i <= 30; i++) await w.save({ term: 1, vote: 'a', commit: i - 1 }, [ent(i, 1, 'p'.repeat(300))]);
    expect(w.segmentCount()).toBeGreaterThan(2);
    await w.close();
    expect(fs.readdirSync(dir).filter((n) => !n.endsWith('.wal'))).toEqual([]);
    const next = path.join(dir, fs.readdirSync(dir).sort().pop()!.replace(/^([0-9a-f]{16})/, (x) => (parseInt(x, 16) + 1).toString(16).padStart(16, '0')) + '.preparing');
    fs.writeFileSync(next, Buffer.alloc(0));
    const r = await WAL.open(dir, { index: 0, term: 0 }, { segmentBytes: 4096 });
    expect(r.entries).toHaveLength(30);
    expect(fs.existsSync(next)).toBe(false);
    await r.wal.close();
  });

  test('corruption before the last record is a clear error, never a silent loss', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save(undefined, [ent(1, 1), ent(2, 1), ent(3, 1)]);
    await w.close();
    const file = only(dir);
    const buf = fs.readFileSync(file);
    buf[meta.length + 20] ^= 0x01; // inside the first entry record
    fs.writeFileSync(file, buf);
    await expect(WAL.open(dir, { index: 0, term: 0 })).rejects.toThrow(WALCorruptError);
    await expect(WAL.open(dir, { index: 0, term: 0 })).rejects.toThrow(/corrupt at offset \d+ \(checksum mismatch\)/);
  });

  test('a commit-index-only save is written without an fsync; entries and votes always get one', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save({ term: 1, vote: 'a', commit: 0 }, [ent(1, 1)], false);
    expect(w.stats.fsyncs).toBe(1); // entries: synced whatever the flag says
    await w.save({ term: 1, vote: 'a', commit: 1 }, [], false);
    expect(w.stats.fsyncs).toBe(1);
    await w.save({ term: 2, vote: 'b', commit: 1 }, [], true);
    expect(w.stats.fsyncs).toBe(2);
    await w.close();
    expect((await reopen(dir, { index: 0, term: 0 })).hardState).toEqual({ term: 2, vote: 'b', commit: 1 });
  });

  test('concurrent saves share fsyncs (group commit), and each resolves only after one', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    const fsyncsSeen: number[] = [];
    const saves = Array.from({ length: 100 }, (_, i) => w.save(undefined, [ent(i + 1, 1)]).then(() => fsyncsSeen.push(w.stats.fsyncs)));
    await Promise.all(saves);
    expect(w.stats.fsyncs).toBeLessThanOrEqual(3);
    expect(Math.min(...fsyncsSeen)).toBeGreaterThanOrEqual(1);
    await w.close();
    expect((await reopen(dir, { index: 0, term: 0 })).entries).toHaveLength(100);
  });

  test('one save at a time is written from the event loop (inline); saves of one turn share a round by the thread pool', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    const saved = w.save({ term: 1, vote: 'a', commit: 1 }, [ent(1, 1)]);
    // Not inside save(): the round starts after the turn's saves.
    expect(w.stats.fsyncs).toBe(0);
    await saved;
    expect(w.stats).toMatchObject({ fsyncs: 1, inlineRounds: 1 });
    for (let i = 2; i <= 5; i++) await w.save({ term: 1, vote: 'a', commit: i }, [ent(i, 1)]);
    expect(w.stats).toMatchObject({ fsyncs: 5, inlineRounds: 5 });
    // Three saves in one turn: one round of six records, written by the thread pool.
    await Promise.all([6, 7, 8].map((i) => w.save({ term: 1, vote: 'a', commit: i }, [ent(i, 1)])));
    expect(w.stats).toMatchObject({ fsyncs: 6, inlineRounds: 5 });
    await w.close();
    const back = await reopen(dir, { index: 0, term: 0 });
    expect(back.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(back.hardState).toEqual({ term: 1, vote: 'a', commit: 8 });
  });

  test('segments roll over, start with the hard state, and are released up to a snapshot', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta, { segmentBytes: 4096 });
    for (let i = 1; i <= 60; i++) await w.save({ term: 3, vote: 'a', commit: i }, [ent(i, 3, 'y'.repeat(200))]);
    expect(w.segmentCount()).toBeGreaterThan(3);
    await w.saveSnapshot({ index: 40, term: 3 });
    await w.releaseTo(40);
    const left = w.segmentCount();
    expect(left).toBeLessThan(5);
    await w.close();
    const r = await WAL.open(dir, { index: 40, term: 3 });
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 20 }, (_, i) => 41 + i));
    expect(r.hardState).toEqual({ term: 3, vote: 'a', commit: 60 });
    await r.wal.close();
  });

  test.each([
    [2, 'keeps the newest 2 segments'],
    [0, 'keeps every segment (0 is unlimited)'],
  ])('--max-wals=%s: a snapshot releases old segments, and purging %s; replay from the snapshot is unchanged', async (maxFiles) => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta, { segmentBytes: 4096, maxFiles });
    for (let i = 1; i <= 120; i++) await w.save({ term: 3, vote: 'a', commit: i }, [ent(i, 3, 'y'.repeat(200))]);
    const before = w.segmentCount();
    expect(before).toBeGreaterThan(4);
    await w.saveSnapshot({ index: 118, term: 3 });
    await w.releaseTo(118);
    expect(w.segmentCount()).toBe(maxFiles === 0 ? before : maxFiles);
    await w.close();
    const r = await WAL.open(dir, { index: 118, term: 3 });
    expect(r.entries.map((e) => e.index)).toEqual([119, 120]);
    await r.wal.close();
  });

  test('--max-wals never deletes a segment the last snapshot still needs', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta, { segmentBytes: 4096, maxFiles: 1 });
    for (let i = 1; i <= 60; i++) await w.save({ term: 3, vote: 'a', commit: i }, [ent(i, 3, 'y'.repeat(200))]);
    await w.saveSnapshot({ index: 10, term: 3 });
    await w.releaseTo(10);
    expect(w.segmentCount()).toBeGreaterThan(1);
    await w.close();
    const r = await WAL.open(dir, { index: 10, term: 3 });
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => 11 + i));
    await r.wal.close();
  });

  test('opening from a snapshot the WAL never recorded is refused', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save(undefined, [ent(1, 1)]);
    await w.close();
    await expect(WAL.open(dir, { index: 1, term: 1 })).rejects.toThrow(WALSnapshotNotFoundError);
  });

  test('create refuses a directory that already holds a WAL', async () => {
    const dir = path.join(root, 'wal');
    await (await WAL.create(dir, meta)).close();
    expect(WAL.exists(dir)).toBe(true);
    await expect(WAL.create(dir, meta)).rejects.toThrow(/already holds a WAL/);
  });
});

describe('Snapshotter', () => {
  const snap = (index: number, term: number, data: string) => ({ metadata: { index, term, confState: { voters: ['a'], learners: [] } }, data: Buffer.from(data) });

  test('saves and loads the newest; a broken newest falls back to the older one', async () => {
    const s = new Snapshotter(path.join(root, 'snap'));
    expect(await s.loadNewest()).toBeUndefined();
    await s.save(snap(10, 1, 'ten'));
    await s.save(snap(20, 2, 'twenty'));
    const newest = await s.loadNewest();
    expect(newest?.metadata).toEqual({ index: 20, term: 2, confState: { voters: ['a'], learners: [] } });
    expect(Buffer.from(newest!.data).toString()).toBe('twenty');
    const f = path.join(root, 'snap', fs.readdirSync(path.join(root, 'snap')).sort().pop()!);
    const buf = fs.readFileSync(f);
    buf[buf.length - 1] ^= 0xff;
    fs.writeFileSync(f, buf);
    const warnings: string[] = [];
    const fallback = await new Snapshotter(path.join(root, 'snap'), { warn: (m) => warnings.push(m) }).loadNewest();
    expect(Buffer.from(fallback!.data).toString()).toBe('ten');
    expect(warnings.join()).toMatch(/broken \(checksum mismatch\)/);
    expect(fs.readdirSync(path.join(root, 'snap')).some((n) => n.endsWith('.broken'))).toBe(true);
  });

  test('a restart uses the newest snapshot whose marker reached the WAL (a crash can leave a newer one without)', async () => {
    const dir = path.join(root, 'wal');
    const w = await WAL.create(dir, meta);
    await w.save({ term: 1, vote: 'a', commit: 30 }, [ent(1, 1), ent(2, 1)]);
    const s = new Snapshotter(path.join(root, 'snap'));
    await s.save(snap(10, 1, 'ten'));
    await w.saveSnapshot({ index: 10, term: 1 });
    await s.save(snap(20, 1, 'twenty')); // the crash comes before its marker
    await w.close();
    const markers = await WAL.snapshotMarkers(dir);
    expect(markers).toEqual([{ index: 10, term: 1 }]);
    expect((await s.loadNewestAvailable(markers))?.metadata.index).toBe(10);
    const reopened = await WAL.open(dir, { index: 10, term: 1 });
    expect(reopened.hardState.commit).toBe(30);
    await reopened.wal.close();
  });

  test('load reads back the snapshot at an index and term, whole; one that is not there is undefined', async () => {
    const s = new Snapshotter(path.join(root, 'snap'));
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'x');
    big.write('head', 0);
    big.write('tail', big.length - 4);
    await s.save({ ...snap(10, 2, ''), data: big });
    await s.save(snap(20, 2, 'twenty'));
    const back = await s.load(10, 2);
    expect(back?.metadata).toEqual({ index: 10, term: 2, confState: { voters: ['a'], learners: [] } });
    expect(Buffer.compare(Buffer.from(back!.data), big)).toBe(0);
    expect(await s.load(10, 3)).toBeUndefined();
    expect(await s.load(30, 2)).toBeUndefined();
    // What load reads is what a restart reads (the checksum covers header and data alike).
    expect(Buffer.from((await s.loadAll())[1].data).subarray(0, 4).toString()).toBe('head');
  });

  test('keeps only the newest few', async () => {
    const s = new Snapshotter(path.join(root, 'snap'), { maxSnapshots: 2 });
    for (let i = 1; i <= 5; i++) await s.save(snap(i * 10, 1, `s${i}`));
    await s.releaseOlderThan(50);
    expect((await s.loadAll()).map((x) => x.metadata.index)).toEqual([50, 40]);
  });
});
