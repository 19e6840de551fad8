import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Entry, HardState, emptyHardState } from '../raft';
import { BusyPoll, requestCount } from '../pkg/busy-poll';
import { HEADER_SIZE, RecordType, decodeAt, encodeEntry, encodeHardState, encodeMetadata, encodeSnapshotMarker, isZeroFrom } from './record';

/**
 * The write-ahead log: segment files `<seq>-<first index>.wal` (16 hex digits each) of checksummed records.
 * Every segment starts with the metadata and the latest hard state, so older segments can be released whole.
 * save() resolves only once its records are fsynced; saves issued during an fsync share the next one.
 *
 * Segments are preallocated to their full size when they are started (as etcd's are), so an append never changes
 * the file's size and its synchronous write has no size to commit. The unwritten rest of a segment reads as zeros,
 * which replay takes as the end of the log.
 */

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/**
 * The most one write puts on disk: a larger batch goes in several writes, split between records (a record larger
 * than this goes in a write of its own). A crash can tear only the write in progress, so on restart damage that
 * spans more than one write cannot be a torn write.
 */
export const MAX_WRITE_BYTES = 1024 * 1024;

/** The unit a disk writes whole or not at all; a power loss can lose any of a write's sectors. */
const SECTOR_BYTES = 512;

export class WALCorruptError extends Error {
  constructor(file: string, offset: number, reason: string) {
    super(`wal: ${path.basename(file)} is corrupt at offset ${offset} (${reason}); refusing to start rather than lose data`);
    this.name = 'WALCorruptError';
  }
}

export class WALSnapshotNotFoundError extends Error {
  constructor(index: number, term: number) {
    super(`wal: the snapshot at index ${index}, term ${term} has no marker in the WAL`);
    this.name = 'WALSnapshotNotFoundError';
  }
}

export interface WALOptions {
  segmentBytes?: number;
  /** Skip fsync (etcd's --unsafe-no-fsync): acknowledged writes can be lost on a crash. */
  noSync?: boolean;
  /** Told every fsync's duration in seconds (for etcd_disk_wal_fsync_duration_seconds). */
  onFsync?: (seconds: number) => void;
  /** Told of a torn tail truncated on open. */
  warn?: (message: string) => void;
  /**
   * etcd's --max-wals: segments a snapshot has released are deleted, oldest first, only while more than this many
   * segments exist (0 keeps them all). Undefined deletes every released segment.
   */
  maxFiles?: number;
}

interface Segment {
  seq: number;
  firstIndex: number;
  file: string;
}

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

function segmentName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

/** A segment being prepared (headed, preallocated, synced) before it is renamed into place. */
const PREPARING_SUFFIX = '.preparing';

function listSegments(dir: string): Segment[] {
  const out: Segment[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m) out.push({ seq: parseInt(m[1], 16), firstIndex: parseInt(m[2], 16), file: path.join(dir, name) });
  }
  out.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < out.length; i++) {
    if (out[i].seq !== out[i - 1].seq + 1) throw new Error(`wal: segment sequence broken between ${path.basename(out[i - 1].file)} and ${path.basename(out[i].file)}`);
  }
  return out;
}

/** Makes a directory's entries (files created, renamed or removed in it) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface OpenedWAL {
  wal: WAL;
  metadata: Buffer;
  hardState: HardState;
  /** Entries after the snapshot index, with later rewrites of an index replacing the earlier tail. */
  entries: Entry[];
}

/** The end of a WAL write, expected within hundreds of µs: scored apart from clients' requests. */
const walPoll = new BusyPoll();

/**
 * Rounds of at most this many records (one entry and the hard state) are written synchronously, from the event loop,
 * instead of by the thread pool. Handing a write to the pool and being told of its end costs two wake-ups of other
 * threads, 40-60 µs on this machine on top of the write's 120-160 µs (`fs.writeSync` against `fs.write` of 300 bytes
 * with O_DSYNC, one after another). A round that small means one client at a time: nothing else waits for the loop
 * meanwhile, and what arrives during the write is read after it and goes into the next round, together. Measured with
 * bench/one-connection.c, v2 PUT at one connection: 13,500 → 14,000 requests in 4 s and p99 0.80-1.06 → 0.66-0.68 ms;
 * etcd's benchmark, v3 put at one client: 1,983 → 2,194/s. Other rounds stay with the thread pool, so that the loop
 * goes on serving while the disk writes: writing every round from the loop cut v2 PUT at 16 connections from 19,100 to
 * 14,900/s, and every round of one entry, to 17,000-18,400 (rounds of one entry come between larger ones there); so a
 * round is written inline only if at most one request (a client's, or a read of a peer's messages) began since the
 * last round.
 */
const SYNC_WRITE_MAX_RECORDS = 2;

/** How the segment being appended to is opened: every write durable when it returns, unless fsync is off. */
function appendFlags(o: WALOptions): number {
  return fs.constants.O_RDWR | (o.noSync ? 0 : fs.constants.O_DSYNC);
}

function segmentSize(o: WALOptions): number {
  return o.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
}

/**
 * Sizes a segment to `size` bytes (zeros past what is written; sparse where the file system allows), then syncs
 * it, size included. A segment already that large is left as it is.
 */
async function preallocate(fh: fs.promises.FileHandle, size: number, o: WALOptions): Promise<void> {
  if ((await fh.stat()).size >= size) return;
  await fh.truncate(size);
  if (!o.noSync) await fh.sync();
}

export class WAL {
  private fh: fs.promises.FileHandle;
  private offset: number;
  private segment: Segment;
  private pending: Buffer[] = [];
  private pendingWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /** requestCount() when the last round was taken: how many clients the loop served since. */
  private requestsAtLastRound = requestCount();
  /** Whether the records pending need an fsync (a commit index alone does not: etcd's MustSync). */
  private pendingSync = false;
  private lastIndex: number;
  private hardState: HardState;
  private failed: Error | undefined;
  readonly stats = { fsyncs: 0, bytes: 0, inlineRounds: 0 };

  private constructor(
    readonly dir: string,
    private readonly metadata: Buffer,
    private readonly o: WALOptions,
    fh: fs.promises.FileHandle,
    segment: Segment,
    offset: number,
    lastIndex: number,
    hardState: HardState,
  ) {
    this.fh = fh;
    this.segment = segment;
    this.offset = offset;
    this.lastIndex = lastIndex;
    this.hardState = hardState;
  }

  static exists(dir: string): boolean {
    try {
      return fs.readdirSync(dir).some((n) => SEGMENT_RE.test(n));
    } catch {
      return false;
    }
  }

  /** Creates a WAL in a new directory, atomically (built aside, then renamed into place). */
  static async create(dir: string, metadata: Buffer, o: WALOptions = {}): Promise<WAL> {
    if (WAL.exists(dir)) throw new Error(`wal: ${dir} already holds a WAL`);
    const tmp = `${dir}.tmp`;
    await fsp.rm(tmp, { recursive: true, force: true });
    await fsp.mkdir(tmp, { recursive: true });
    const name = segmentName(0, 0);
    const fh = await fsp.open(path.join(tmp, name), 'w');
    const head = encodeMetadata(metadata);
    await fh.write(head, 0, head.length, 0);
    await preallocate(fh, segmentSize(o), o);
    if (!o.noSync) await fh.sync();
    await fh.close();
    await fsp.mkdir(path.dirname(dir), { recursive: true });
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rename(tmp, dir);
    await fsyncDir(path.dirname(dir));
    const seg = { seq: 0, firstIndex: 0, file: path.join(dir, name) };
    const wfh = await fsp.open(seg.file, appendFlags(o));
    return new WAL(dir, metadata, o, wfh, seg, head.length, 0, emptyHardState());
  }

  /**
   * The snapshot markers the WAL holds (index and term), oldest first: a snapshot file is usable for a restart
   * only if its marker made it to the WAL (a crash between writing the file and the marker leaves one without).
   */
  static async snapshotMarkers(dir: string): Promise<{ index: number; term: number }[]> {
    const out: { index: number; term: number }[] = [];
    for (const seg of listSegments(dir)) {
      const buf = await fsp.readFile(seg.file);
      for (let off = 0; off < buf.length; ) {
        const r = decodeAt(buf, off);
        if (r.kind !== 'record') break; // a torn tail or corruption: open() tells which
        if (r.record.type === RecordType.Snapshot) out.push({ index: r.record.index, term: r.record.term });
        off += r.size;
      }
    }
    return out;
  }

  /** Replays the WAL from the snapshot at `from` (index 0: from the start) and opens it for appending. */
  static async open(dir: string, from: { index: number; term: number }, o: WALOptions = {}): Promise<OpenedWAL> {
    // A segment that a crash caught while it was being prepared never held a record.
    for (const name of await fsp.readdir(dir)) if (name.endsWith(PREPARING_SUFFIX)) await fsp.rm(path.join(dir, name), { force: true });
    const segments = listSegments(dir);
    if (segments.length === 0) throw new Error(`wal: no segments in ${dir}`);
    // Start at the last segment whose first index is at or before the snapshot.
    let start = 0;
    for (let i = 0; i < segments.length; i++) if (segments[i].firstIndex <= from.index) start = i;
    let metadata: Buffer | undefined;
    let hardState = emptyHardState();
    let entries: Entry[] = [];
    let snapshotFound = from.index === 0;
    let lastEnd = 0;
    for (let s = start; s < segments.length; s++) {
      const seg = segments[s];
      const buf = await fsp.readFile(seg.file);
      const isLast = s === segments.length - 1;
      let off = 0;
      while (off < buf.length) {
        const r = decodeAt(buf, off);
        if (r.kind === 'record') {
          const rec = r.record;
          switch (rec.type) {
            case RecordType.Metadata:
              if (metadata && !metadata.equals(rec.data)) throw new WALCorruptError(seg.file, off, 'metadata differs between segments');
              metadata = rec.data;
              break;
            case RecordType.HardState:
              hardState = rec.hardState;
              break;
            case RecordType.Snapshot:
              if (rec.index === from.index && rec.term === from.term) snapshotFound = true;
              break;
            case RecordType.Entry: {
              const e = rec.entry;
              if (e.index > from.index) {
                // Raft rewrote the tail from this index: drop what the rewrite replaces.
                const first = from.index + 1;
                if (e.index - first < entries.length) entries = entries.slice(0, e.index - first);
                if (e.index - first !== entries.length) throw new WALCorruptError(seg.file, off, `entry ${e.index} leaves a gap after ${first + entries.length - 1}`);
                entries.push(e);
              }
              break;
            }
          }
          off += r.size;
          continue;
        }
        // Not a whole valid record. Nothing written after it: the end of this segment's records.
        const written = writtenLength(buf, off);
        if (written === 0) break;
        // At the end of the last segment it can be the write a crash interrupted: no save() that covered it ever
        // resolved, so it is safe to cut. Anywhere else it is corruption.
        if (!isLast || !isTornWrite(buf, off, written)) throw new WALCorruptError(seg.file, off, r.kind === 'corrupt' ? r.reason : 'truncated record');
        o.warn?.(`wal: cutting a torn write at the end of ${path.basename(seg.file)} (offset ${off}, ${written} bytes)`);
        // Cut, then zero-filled again to the segment's size: the log ends at `off` as if the write never began.
        const fh = await fsp.open(seg.file, 'r+');
        await fh.truncate(off);
        await fh.truncate(Math.max(off, segmentSize(o)));
        if (!o.noSync) await fh.sync();
        await fh.close();
        break;
      }
      if (isLast) lastEnd = Math.min(off, buf.length);
    }
    if (!metadata) throw new Error(`wal: no metadata record in ${dir}`);
    if (!snapshotFound) throw new WALSnapshotNotFoundError(from.index, from.term);
    const last = segments[segments.length - 1];
    const fh = await fsp.open(last.file, appendFlags(o));
    // A segment written before preallocation (or by a WAL with a smaller segment size) is sized up now.
    await preallocate(fh, segmentSize(o), o);
    const lastIndex = entries.length > 0 ? entries[entries.length - 1].index : from.index;
    const wal = new WAL(dir, metadata, o, fh, last, lastEnd, lastIndex, hardState);
    return { wal, metadata, hardState, entries };
  }

  /**
   * Appends the hard state and entries; resolves once they are on stable storage. With sync false (only the commit
   * index moved) the records are written but the fsync is left to the next save that needs one.
   */
  save(hardState: HardState | undefined, entries: Entry[], sync = true): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (!hardState && entries.length === 0) return Promise.resolve();
    for (const e of entries) this.pending.push(encodeEntry(e));
    if (entries.length > 0) this.lastIndex = entries[entries.length - 1].index;
    if (hardState) {
      this.pending.push(encodeHardState(hardState));
      this.hardState = hardState;
    }
    if (sync || entries.length > 0) this.pendingSync = true;
    // A commit index alone need not reach the disk now (a crash may only lower it): it goes with the next write.
    else if (!this.flushing) return Promise.resolve();
    return this.enqueue();
  }

  saveSnapshot(marker: { index: number; term: number }): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    this.pending.push(encodeSnapshotMarker(marker.index, marker.term));
    this.pendingSync = true;
    if (marker.index > this.lastIndex) this.lastIndex = marker.index;
    return this.enqueue();
  }

  private enqueue(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pendingWaiters.push({ resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /** Writes and fsyncs everything pending; saves that arrive meanwhile go in the next round, together. */
  private async flushLoop(): Promise<void> {
    // The first round starts after the saves of this turn of the event loop (they share it), and after save() has
    // returned (a round may be written synchronously, and `flushing` must be set first).
    await undefined;
    try {
      while (this.pending.length > 0) {
        const bufs = this.pending;
        const waiters = this.pendingWaiters;
        const sync = this.pendingSync;
        this.pending = [];
        this.pendingWaiters = [];
        this.pendingSync = false;
        try {
          // The segment is open with O_DSYNC: a write returns once its data is on stable storage (one system call
          // instead of write + fdatasync), so each write counts as one fsync.
          // A round of one entry (and its hard state), with at most one request begun since the last round, is what
          // a member with one client at a time writes: it is written from the event loop itself, which has nothing
          // else to do meanwhile (see SYNC_WRITE_MAX_RECORDS).
          const begun = requestCount();
          const inline = bufs.length <= SYNC_WRITE_MAX_RECORDS && begun - this.requestsAtLastRound <= 1;
          this.requestsAtLastRound = begun;
          if (inline) this.stats.inlineRounds++;
          for (const piece of writes(bufs)) {
            const t0 = process.hrtime.bigint();
            if (inline) this.writeInline(piece);
            else await this.writeFully(piece);
            if (sync && !this.o.noSync) {
              this.stats.fsyncs++;
              this.o.onFsync?.(Number(process.hrtime.bigint() - t0) / 1e9);
            }
          }
          if (this.offset >= segmentSize(this.o)) await this.cut();
        } catch (err) {
          // After a failed write or fsync nothing later may be acknowledged.
          this.failed = err as Error;
          for (const w of [...waiters, ...this.pendingWaiters]) w.reject(this.failed);
          this.pending = [];
          this.pendingWaiters = [];
          return;
        }
        for (const w of waiters) w.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Writes `data` at the end of the segment with the event loop waiting in the write (writeFully's checks). */
  private writeInline(data: Buffer): void {
    let written = 0;
    while (written < data.length) {
      const n = fs.writeSync(this.fh.fd, data, written, data.length - written, this.offset + written);
      if (n === 0) throw new Error(`wal: a write of ${data.length - written} bytes to ${this.segment.file} wrote nothing`);
      written += n;
    }
    this.offset += data.length;
    this.stats.bytes += data.length;
  }

  /**
   * Writes `data` at the end of the segment, in as many writes as it takes. With fs's callback API on the handle's
   * descriptor: one write is one request to the thread pool, without the promise API's per-call state (measured:
   * a v2 PUT at one connection allocated 11% less, 17.3 instead of 19.4 KB, so its young collections are rarer).
   */
  private writeFully(data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fd = this.fh.fd;
      let written = 0;
      const done = (err: NodeJS.ErrnoException | null, n: number): void => {
        walPoll.arrived();
        if (err) return reject(err);
        // A write that takes nothing would be retried for ever: a failed write, as a full disk is.
        if (n === 0 && data.length > 0) return reject(new Error(`wal: a write of ${data.length - written} bytes to ${this.segment.file} wrote nothing`));
        written += n;
        if (written < data.length) {
          walPoll.expect(this.o.noSync ? BusyPoll.ANSWER_US : BusyPoll.WAL_WRITE_US);
          return void fs.write(fd, data, written, data.length - written, this.offset + written, done);
        }
        this.offset += data.length;
        this.stats.bytes += data.length;
        resolve();
      };
      // Its end comes soon (an O_DSYNC write: hundreds of µs): the loop polls for it rather than sleep (busy-poll.ts).
      walPoll.expect(this.o.noSync ? BusyPoll.ANSWER_US : BusyPoll.WAL_WRITE_US);
      fs.write(fd, data, 0, data.length, this.offset, done);
    });
  }

  /**
   * Starts the next segment, headed by the metadata and the latest hard state. The finished segment is cut to what
   * was written first (as etcd's is), so that only the last segment ever has unwritten space at its end.
   */
  private async cut(): Promise<void> {
    await this.fh.truncate(this.offset);
    if (!this.o.noSync) await this.fh.sync();
    const seg: Segment = { seq: this.segment.seq + 1, firstIndex: this.lastIndex + 1, file: '' };
    seg.file = path.join(this.dir, segmentName(seg.seq, seg.firstIndex));
    // Prepared aside and renamed into place whole (as etcd's file pipeline does): a crash never leaves a last
    // segment without its head.
    const preparing = seg.file + PREPARING_SUFFIX;
    const head = Buffer.concat([encodeMetadata(this.metadata), encodeHardState(this.hardState)]);
    const pfh = await fsp.open(preparing, 'w');
    try {
      await pfh.write(head, 0, head.length, 0);
      await preallocate(pfh, segmentSize(this.o), this.o);
      if (!this.o.noSync) await pfh.sync();
    } finally {
      await pfh.close();
    }
    await fsp.rename(preparing, seg.file);
    await fsyncDir(this.dir);
    const fh = await fsp.open(seg.file, appendFlags(this.o));
    await this.fh.close();
    this.fh = fh;
    this.segment = seg;
    this.offset = head.length;
  }

  /**
   * Releases segments whose entries are all at or before `index` (covered by a snapshot): as etcd's purge, the oldest
   * released ones are deleted while more than maxFiles segments remain.
   */
  async releaseTo(index: number): Promise<void> {
    const max = this.o.maxFiles;
    if (max === 0) return;
    const segments = listSegments(this.dir);
    let count = segments.length;
    for (let i = 0; i + 1 < segments.length; i++) {
      if (max !== undefined && count <= max) break;
      if (segments[i + 1].firstIndex <= index + 1 && segments[i].seq < this.segment.seq) {
        await fsp.rm(segments[i].file);
        count--;
      } else {
        break;
      }
    }
  }

  segmentCount(): number {
    return listSegments(this.dir).length;
  }

  async close(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.length > 0 && !this.failed) await this.enqueue();
    if (!this.failed && !this.o.noSync) await this.fh.sync();
    await this.fh.close();
  }
}

/**
 * Whether the bad record at `off`, with `written` bytes after it up to the last non-zero one, is what a crash in the
 * middle of the last write leaves:
 * - a prefix of the write (what a killed process or an in-order disk leaves): the bad record is cut short, or whole
 *   but garbled, and nothing was written past its end;
 * - or, after a power loss, any of the write's sectors: the damage stays within one write and holds a sector that
 *   never reached the disk (all zeros), which a flipped bit in a written record does not.
 */
function isTornWrite(buf: Buffer, off: number, written: number): boolean {
  if (buf.length - off < HEADER_SIZE) return true;
  const claimed = HEADER_SIZE + buf.readUInt32LE(off);
  // A prefix holds no whole record after the bad one: finding one means the bad record's length is wrong (a flipped
  // bit made it claim the records after it), and those records were acknowledged.
  if (written <= claimed) return !holdsRecord(buf, off + 1, off + written);
  const oneWrite = Math.max(MAX_WRITE_BYTES, claimed <= buf.length - off ? claimed : 0);
  return written <= oneWrite && hasLostSector(buf, off, off + written);
}

/** Whether a whole, valid record starts anywhere in [from, to) and ends by `to`. */
function holdsRecord(buf: Buffer, from: number, to: number): boolean {
  for (let p = from; p + HEADER_SIZE < to; p++) {
    const len = buf.readUInt32LE(p);
    if (len === 0 || p + HEADER_SIZE + len > to) continue;
    if (decodeAt(buf.subarray(0, to), p).kind === 'record') return true;
  }
  return false;
}

/** Whether a whole sector of [from, to) is zeros. */
function hasLostSector(buf: Buffer, from: number, to: number): boolean {
  for (let s = Math.ceil(from / SECTOR_BYTES) * SECTOR_BYTES; s + SECTOR_BYTES <= to; s += SECTOR_BYTES) {
    if (isZeroFrom(buf.subarray(0, s + SECTOR_BYTES), s)) return true;
  }
  return false;
}

/** The writes a batch of records goes in: consecutive records up to MAX_WRITE_BYTES together. */
function* writes(records: Buffer[]): Generator<Buffer> {
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    if (i > start && bytes + records[i].length > MAX_WRITE_BYTES) {
      yield i - start === 1 ? records[start] : Buffer.concat(records.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += records[i].length;
  }
  if (records.length > start) yield records.length - start === 1 ? records[start] : Buffer.concat(records.slice(start));
}

/** How many bytes from `off` were written: up to the last non-zero byte. */
function writtenLength(buf: Buffer, off: number): number {
  let lo = off;
  let hi = buf.length;
  // The zeros at the end are found by halving: [hi, end) is known zero, [lo, hi) holds the last non-zero byte.
  while (hi - lo > 4096) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (isZeroFrom(buf.subarray(0, hi), mid)) hi = mid;
    else lo = mid;
  }
  while (hi > off && buf[hi - 1] === 0) hi--;
  return hi - off;
}
