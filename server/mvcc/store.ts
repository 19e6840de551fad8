/**
 * The v3 keyspace: etcd's multi-version store (mvcc/kvstore*.go) on LMDB.
 *
 * Storage layout. Everything lives in LMDB, nothing is rebuilt at start (etcd rebuilds its in-memory key index
 * from bbolt, which costs seconds per million keys; here opening is reading four numbers):
 * - `kv`: revision -> record (key, value, create revision, version, lease, tombstone flag): every version ever
 *   written and not compacted, as etcd's "key" bucket. Compaction and past reads find versions here.
 * - `latest`: key -> mod revision, create revision, version, lease of the key's live version (deleted keys have no
 *   entry). The current view — nearly every Range, every Txn compare, the previous version of a Put — is one
 *   B-tree lookup or one cursor walk here, plus one lookup in `kv` per returned value (none for keys_only/count_only).
 * - `hist`: (key, revision) -> tombstone flag: a key's generations in key order, for reads at a past revision and
 *   compaction (etcd's keyIndex, kept on disk instead of in the heap).
 * - `meta`: the consistent index (the Raft index of the last applied entry), the current revision, the scheduled and
 *   the finished compaction revisions. Written in the same LMDB transaction as the data they describe.
 * - `lease`: lease ID (8 bytes, big-endian two's complement) -> TTL and checkpointed remaining TTL (etcd's "lease"
 *   bucket), written by the lessor through stageLease() in the batch of the entry that changed it.
 * - `leasekeys`: lease ID + key -> nothing: which live keys each lease holds, kept by the commit from each write's
 *   previous and new lease, so a start loads the leased keys without walking the keyspace.
 * A store larger than the heap works: the heap holds only the write buffer below.
 *
 * Durability. Applying an entry is synchronous and does no I/O: its writes go to an in-memory write buffer (etcd's
 * txReadBuffer) that every read consults before LMDB, so they are visible at once. The buffer is committed to LMDB
 * as one transaction every `batchInterval` ms or `batchLimit` operations (etcd's backend batch: 100 ms / 10,000),
 * on lmdb-js's writer thread with its overlapping sync, together with the consistent index of its last entry. So
 * after kill -9 (or a power loss) LMDB opens at a committed batch: consistent, at an index ≤ the applied one, and
 * the server replays the WAL from consistentIndex(). Reads at a past revision, compaction and snapshots first commit
 * the buffer synchronously (rare operations; one fsync).
 */
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import { open, Database, RootDatabase } from 'lmdb';
import { KeyValue } from '../api/v3rpc/pb/mvccpb/kv';
import {
  encodeMeta,
  encodeRecord,
  writeRecord,
  histKey,
  histPrefix,
  histRev,
  keyTooLong,
  readU64,
  recordKey,
  recordValue,
  revBytes,
  RECORD_HEADER,
  REV_BYTES,
  writeU64,
} from './codec';
import { ErrCompacted, ErrFutureRev, ErrKeyTooLong } from './errors';

export interface RangeOptions {
  /** the revision to read at; 0 or undefined: the current one */
  rev?: number;
  /** at most this many kvs (0: all); count still counts every match */
  limit?: number;
  countOnly?: boolean;
  /** leave values out (and do not read them) */
  keysOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** the number of keys in the range, whatever the limit */
  count: number;
  /** the revision the range was read at (the current one unless rev was given) */
  rev: number;
}

export interface StoreOptions {
  /** ms between commits of the write buffer (etcd's --backend-batch-interval, 100 ms) */
  batchInterval?: number;
  /** operations that commit the write buffer at once (etcd's --backend-batch-limit, 10,000) */
  batchLimit?: number;
}

/**
 * One buffered write of a key (its record in `kv`, its history entry, its `latest` entry: meta, or removed when
 * meta is undefined), or of a `meta` value (key is a string, rec the value).
 */
interface Op {
  key: Buffer | string;
  /** a key's latin1 string; for an op without a revision, which table: META_OP or LEASE_OP */
  ks: string;
  rev: Buffer | undefined;
  /** the record (a `lease` op: the lease's record, empty to remove it) */
  rec: Buffer;
  meta: Buffer | undefined;
  /** a key op: the lease of the key's version before this one and of this one (0n: none), for `leasekeys` */
  prevLease: bigint;
  lease: bigint;
  /**
   * The key's version before this write when it was buffered then (its meta, undefined if deleted, and record);
   * prevBuffered false: LMDB held it. For watchers' prev_kv, without a read at a past revision.
   */
  prevBuffered: boolean;
  prevMeta: Buffer | undefined;
  prevRec: Buffer | undefined;
}

/** A write of a key, as a write txn's listener sees it (see StoreWatcher). */
export interface StagedWrite {
  readonly key: Buffer;
  /** the key as a latin1 string (one char per byte) */
  readonly ks: string;
  /** main and sub revision (codec's revBytes) */
  readonly rev: Buffer;
  /** the record (codec's encodeRecord): a tombstone for a delete */
  readonly rec: Buffer;
}

/** What the watchable layer (watchable.ts) hears from the store's write path. */
export interface StoreWatcher {
  /**
   * A write txn ended at main revision rev with writes[from, to) (its writes, in order; never empty). Among them may
   * be writes of no key (a lease's record, a meta value: `rev` undefined), which are no events.
   */
  txnEnded(rev: number, writes: readonly StagedWrite[], from: number, to: number): void;
  /** The store's contents were replaced (a snapshot from the leader). */
  restored(): void;
}

/** A version read back from history by readHistory. */
export interface HistoryVersion {
  main: number;
  rev: Buffer;
  rec: Buffer;
  /** the buffered write, when the version is not committed yet (prevVersion looks its previous version up there) */
  write: StagedWrite | undefined;
}

const META_OP = '';
const LEASE_OP = 'lease';

/** A key's buffered state: its meta and record, or undefined when deleted; seq is the write txn that set it. */
interface LatestEntry {
  key: Buffer;
  ks: string;
  meta: Buffer | undefined;
  rec: Buffer | undefined;
  seq: number;
  /** whether LMDB holds the key (so counts need no lookup), as of the batch that committed write txn inDbSeq */
  inDb: boolean;
  inDbSeq: number;
  /**
   * the last write txn of a batch with this key handed to lmdb-js: until that batch's commit is reflected in inDb
   * (inDbSeq), reads may already see it (lmdb-js renews its read snapshot each turn; a synchronous flush commits
   * after it), so whether LMDB holds the key is looked up instead
   */
  flushingSeq: number;
}

interface Batch {
  ops: Op[];
  /** consistent index and current revision after the last write txn in ops */
  index: number;
  rev: number;
  /** the last write txn whose ops are all in this batch */
  lastSeq: number;
  /** committed by a synchronous flush already (the async commit then skips it) */
  written: boolean;
}

const EMPTY = Buffer.alloc(0);
/** The tables in the order tables() lists them (the dump's and hash()'s order). */
const TABLE_NAMES = ['kv', 'latest', 'hist', 'meta', 'lease', 'leasekeys'];
const TABLE_META = 3;
const LIVE = Buffer.from([0]);
const TOMB = Buffer.from([1]);
const DATA_FILE = 'data.mdb';
const COMPACT_CHUNK = 1000;
const HASH_CHUNK = 1000;
/** Entries a defragmentation writes in one LMDB transaction before it yields. */
const COPY_CHUNK = 10000;
/** The most an import writes of versions' records in one LMDB transaction (a sync of the file starts after each). */
const IMPORT_BYTES = 64 << 20;
/** batches buffered behind the one committing before a commit blocks the apply path */
const BACKLOG_BATCHES = 4;
const APPEND = { append: true };
const ZERO = Buffer.from([0]);

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as Go's crc32.New(crc32.MakeTable(crc32.Castagnoli)), continuing from crc. */
export function crc32c(b: Buffer, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < b.length; i++) c = CRC32C_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Makes a rename in dir durable. */
function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
}

/** latin1 strings order as their bytes do, and compare without a native call. */
function lowerBound(a: LatestEntry[], ks: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid].ks < ks) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** MVD1 (the first release) had the first four tables; MVD2 adds `lease` and `leasekeys`. */
const DUMP_MAGIC = 'MVD2';
const DUMP_MAGIC_V1 = 'MVD1';

/** A lease as the `lease` table keeps it (etcd's leasepb.Lease). */
export interface LeaseRecord {
  id: bigint;
  ttl: number;
  remainingTTL: number;
}

/** Called for every write that moves a key from one lease to another (0n: none), as it is applied. */
export type LeaseMoveListener = (key: Buffer, from: bigint, to: bigint) => void;

function leaseIdBytes(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(id, 0);
  return b;
}
/** A consistent view of the committed store (withSnapshotView): what a snapshot in another format is made of. */
export interface StoreView {
  consistentIndex: number;
  /** the current revision */
  rev: number;
  finishedCompactRev: number | undefined;
  scheduledCompactRev: number | undefined;
  /** A value of the meta table (the auth store's, the alarms). */
  metaValue(key: string): Buffer | undefined;
  /**
   * Every version kept, in revision order: its revision (codec's revBytes) and record (codec's encodeRecord). A
   * record is a view of the store's memory, not a copy: valid only until the next one is read.
   */
  versions(): Iterable<{ rev: Buffer; rec: Buffer }>;
  leases(): Iterable<LeaseRecord>;
}

/** One version of a key, as importData takes it. */
export interface ImportedVersion {
  main: number;
  sub: number;
  key: Buffer;
  value: Buffer;
  create: number;
  version: number;
  lease: bigint;
  tombstone: boolean;
}

/** What importData makes a store of. */
export interface StoreImport {
  /** in revision order; each one's key and value need stay valid only until the next is read */
  versions: Iterable<ImportedVersion>;
  leases: Iterable<LeaseRecord>;
  /** values of the meta table (the auth store's 'auth', the alarms' 'alarms') */
  metaValues: Iterable<[string, Buffer]>;
  finishedCompactRev: number | undefined;
  scheduledCompactRev: number | undefined;
  consistentIndex: number;
}

function* mapIterable<T, U>(it: Iterable<T>, fn: (t: T) => U): Generator<U> {
  for (const x of it) yield fn(x);
}

/** Copies the first size bytes of src to a new file dst (in chunks, made durable). */
function copyPrefix(src: string, size: number, dst: string): void {
  const from = fs.openSync(src, 'r');
  try {
    const to = fs.openSync(dst, 'wx', 0o600);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let at = 0; at < size; ) {
        const n = fs.readSync(from, buf, 0, Math.min(buf.length, size - at), at);
        if (n === 0) throw new Error(`${src}: file ended at byte ${at}, before ${size}`);
        fs.writeSync(to, buf, 0, n, at);
        at += n;
      }
      fs.fsyncSync(to);
    } finally {
      fs.closeSync(to);
    }
  } finally {
    fs.closeSync(from);
  }
}

/** Makes a file (cut to size first, when given) or a directory's entries durable. */
function syncFile(file: string, size?: number): void {
  const fd = fs.openSync(file, size === undefined ? 'r' : 'r+');
  try {
    if (size !== undefined) fs.ftruncateSync(fd, size);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** dump() lets the event loop run after this many entries (a few ms of work). */
const DUMP_YIELD_EVERY = 5000;
/** lmdb-js's range options with the read transaction to use (its typings leave it out). */
type RangeOptionsWithTxn = Parameters<Database<Buffer, Buffer>['getRange']>[0];

/**
 * lmdb-js's decoding of a value as a view of the memory it is read from (the memory map, or lmdb-js's buffer for the
 * next read), with no copy: valid only until the next read. For a snapshot's walk, which copies each record once.
 */
const VIEW_ENCODING = { keyEncoding: 'binary', encoder: { encode: (v: Buffer): Buffer => v, decode: (bytes: Uint8Array, size: number): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, size) } } as const;

const DEFRAG_PREFIX = 'defrag.';
/** The files of snapshots being sent, in earlier releases. */
const SNAPSHOT_PREFIX = 'snapshot.';
// A directory always (lmdb-js takes a path with a dot in its last name for the data file itself).
const ENV_OPTIONS = { encoding: 'binary', keyEncoding: 'binary', maxDbs: 8, noSubdir: false } as const;
/** The meta key left out of hash(): members apply the same revisions at different Raft indexes (etcd ignores it too). */
const CONSISTENT_INDEX = 'consistentIndex';

export class MvccStore {
  // The tables of the open environment (replaced, with it, by a defragmentation).
  private kv!: Database<Buffer, Buffer>;
  /** the kv table read as views (VIEW_ENCODING), opened by the first snapshot view */
  private kvViews: Database<Buffer, Buffer> | undefined;
  private latest!: Database<Buffer, Buffer>;
  private hist!: Database<Buffer, Buffer>;
  private meta!: Database<Buffer, string>;
  private leases!: Database<Buffer, Buffer>;
  private leaseKeys!: Database<Buffer, Buffer>;
  private readonly batchInterval: number;
  /** The lessor's hook: keys attach to and detach from leases as writes are applied (etcd's Attach/Detach). */
  onLeaseMove: LeaseMoveListener | undefined;
  private readonly batchLimit: number;

  private currentRev = 1;
  /** -1 until the first compaction, as etcd's (which accepts a compaction at 0 on a new store) */
  private compactMainRev = -1;
  private finishedCompactRev = -1;
  private applied = 0;
  /** revisions up to this one are in LMDB (and out of the write buffer's kv map) */
  private committedRev = 0;

  // The write buffer: ops in order, plus maps for reads.
  private pending!: Batch;
  private inflight: Batch | undefined;
  private readonly latestBuf = new Map<string, LatestEntry>();
  /** latestBuf's entries in key order, for ranges */
  private latestSorted: LatestEntry[] = [];
  /** buffered keys not yet in latestSorted */
  private unsorted: LatestEntry[] = [];
  private seq = 0;
  private openTxn: WriteTxn | undefined;
  private openTxnStart = 0;
  private inflightDone: Promise<void> = Promise.resolve();
  private lastCommittedIndex = 0;
  /** the last write txn whose batch is committed */
  private committedSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The watchable layer, told of every write txn that changed something (none: writes cost nothing more). */
  watcher: StoreWatcher | undefined;
  private compacting: Promise<void> = Promise.resolve();
  private closed = false;

  // Maintenance that reads LMDB across turns of the event loop (hashes, snapshots, physical compaction) runs as a
  // "long op"; a defragmentation, which replaces the environment, waits until none runs and holds new ones back.
  private longOps = 0;
  private longOpsIdle: (() => void) | undefined;
  private defragging: Promise<void> | undefined;
  /** While a defragmentation copies the environment: commits wait (reads see the write buffer meanwhile). */
  private commitsPaused = false;
  /** Batches committed synchronously while the copy is made, written again into the copy before it is used. */
  private replay: Batch[] | undefined;
  /** A snapshot replaced the data while the copy was made: the copy is stale and is dropped. */
  private copyStale = false;
  /** The directory of the environment's lock file: dir, or after a defragmentation the copy's own directory. */
  private envDir: string;
  private defragSeq = 0;
  /** The database size in bytes (etcd's backend Size: pages up to the last used one), as of the last commit. */
  private size = 0;

  private constructor(
    private env: RootDatabase<Buffer, Buffer>,
    readonly dir: string,
    opts: StoreOptions,
  ) {
    this.batchInterval = opts.batchInterval ?? 100;
    this.batchLimit = opts.batchLimit ?? 10000;
    this.envDir = dir;
    this.openTables();
    this.loadState();
  }

  private openTables(): void {
    const env = this.env;
    this.kv = env.openDB({ name: 'kv', encoding: 'binary', keyEncoding: 'binary' });
    this.kvViews = undefined;
    this.latest = env.openDB({ name: 'latest', encoding: 'binary', keyEncoding: 'binary' });
    this.hist = env.openDB({ name: 'hist', encoding: 'binary', keyEncoding: 'binary' });
    this.meta = env.openDB({ name: 'meta', encoding: 'binary' });
    this.leases = env.openDB({ name: 'lease', encoding: 'binary', keyEncoding: 'binary' });
    this.leaseKeys = env.openDB({ name: 'leasekeys', encoding: 'binary', keyEncoding: 'binary' });
    this.refreshSize();
  }

  private refreshSize(): void {
    const s = this.env.getStats() as { pageSize: number; lastPageNumber: number };
    this.size = (s.lastPageNumber + 1) * s.pageSize;
  }

  /** The revisions and consistent index kept in the meta table (at open, and after a snapshot replaced the data). */
  private loadState(): void {
    const num = (k: string, none: number) => {
      const b = this.meta.get(k);
      return b ? readU64(b, 0) : none;
    };
    this.applied = this.lastCommittedIndex = num('consistentIndex', 0);
    // As etcd's: a new store is at revision 1, so the first write is revision 2.
    this.currentRev = this.committedRev = Math.max(1, num('currentRev', 0));
    // The write buffer starts from what was loaded: a first batch that writes no revision (a consistent index, a
    // compaction) must not commit a stale currentRev.
    this.pending = this.newBatch();
    this.finishedCompactRev = num('finishedCompactRev', -1);
    const scheduled = num('scheduledCompactRev', -1);
    this.compactMainRev = Math.max(scheduled, this.finishedCompactRev);
    // A compaction cut short by a crash is finished now, as etcd's restore does.
    if (scheduled > this.finishedCompactRev) this.compacting = this.longOp(() => this.physicalCompact(scheduled));
  }

  /**
   * The whole store as bytes, for a member that catches up by snapshot (etcd sends its bbolt file): the write buffer
   * is committed first, then every table is read in one read transaction. Format:
   *   "MVD1" then per table [u8 table][entries: u32 key length, key, u32 value length, value]... [u32 0xffffffff]
   */
  dumpSync(): Buffer {
    this.flushSync();
    const parts: Buffer[] = [Buffer.from(DUMP_MAGIC)];
    const u32 = (n: number): Buffer => {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(n, 0);
      return b;
    };
    const tables = this.tables();
    for (let t = 0; t < tables.length; t++) {
      parts.push(Buffer.from([t]));
      for (const { key, value } of tables[t].getRange({})) {
        const k = typeof key === 'string' ? Buffer.from(key) : (key as Buffer);
        const v = value as Buffer;
        parts.push(u32(k.length), k, u32(v.length), v);
      }
      parts.push(u32(0xffffffff));
    }
    return Buffer.concat(parts);
  }

  /**
   * dumpSync's bytes, gathered without blocking the event loop: the write buffer is committed, then the tables are
   * read from one read transaction (a consistent view, whatever is applied meanwhile) a few thousand entries at a
   * time. For a member that catches up by snapshot while this one goes on serving and heartbeating.
   */
  async dump(): Promise<Buffer> {
    this.flushSync();
    const txn = this.env.useReadTransaction();
    try {
      const parts: Buffer[] = [Buffer.from(DUMP_MAGIC)];
      const tables = this.tables();
      let n = 0;
      for (let t = 0; t < tables.length; t++) {
        parts.push(Buffer.from([t]));
        for (const { key, value } of tables[t].getRange({ transaction: txn } as RangeOptionsWithTxn)) {
          const k = typeof key === 'string' ? Buffer.from(key) : (key as Buffer);
          const v = value as Buffer;
          const head = Buffer.allocUnsafe(4);
          head.writeUInt32BE(k.length, 0);
          const mid = Buffer.allocUnsafe(4);
          mid.writeUInt32BE(v.length, 0);
          parts.push(head, k, mid, v);
          if (++n % DUMP_YIELD_EVERY === 0) await new Promise<void>((r) => setImmediate(r));
        }
        const end = Buffer.allocUnsafe(4);
        end.writeUInt32BE(0xffffffff, 0);
        parts.push(end);
      }
      return Buffer.concat(parts);
    } finally {
      txn.done();
    }
  }

  /** Checks that bytes are a whole dump (before a peer's snapshot reaches Raft). */
  static validateDump(dump: Buffer): void {
    MvccStore.readDump(dump, () => undefined);
  }

  /**
   * Replaces everything with a dump (dumpSync's), synchronously and all at once: the write buffer is dropped, the
   * tables are cleared and loaded in one LMDB transaction, and the revisions and consistent index are the dump's.
   */
  loadSync(dump: Buffer): void {
    MvccStore.validateDump(dump);
    if (this.replay) this.copyStale = true;
    this.flushSync();
    const tables = this.tables();
    this.env.transactionSync(() => {
      for (const t of tables) t.clearSync();
      MvccStore.readDump(dump, (t, k, v) => {
        if (t === 3) this.meta.putSync(k.toString(), v);
        else tables[t].putSync(k, v);
      });
    });
    this.env.resetReadTxn();
    this.latestBuf.clear();
    this.latestSorted = [];
    this.unsorted = [];
    this.loadState();
    this.watcher?.restored();
    this.refreshSize();
  }

  private tables(): Database<Buffer, Buffer>[] {
    return [this.kv, this.latest, this.hist, this.meta as unknown as Database<Buffer, Buffer>, this.leases, this.leaseKeys];
  }

  private static readDump(dump: Buffer, each: (table: number, key: Buffer, value: Buffer) => void): void {
    const bad = (why: string): Error => new Error(`mvcc: malformed snapshot dump (${why})`);
    const magic = dump.length < 4 ? '' : dump.toString('latin1', 0, 4);
    if (magic !== DUMP_MAGIC && magic !== DUMP_MAGIC_V1) throw bad('no header');
    const count = magic === DUMP_MAGIC ? 6 : 4;
    let o = 4;
    for (let t = 0; t < count; t++) {
      if (o >= dump.length || dump[o] !== t) throw bad(`table ${t} missing`);
      o++;
      for (;;) {
        if (o + 4 > dump.length) throw bad('cut short');
        const kl = dump.readUInt32BE(o);
        o += 4;
        if (kl === 0xffffffff) break;
        if (o + kl + 4 > dump.length) throw bad('cut short');
        const k = dump.subarray(o, o + kl);
        o += kl;
        const vl = dump.readUInt32BE(o);
        o += 4;
        if (o + vl > dump.length) throw bad('cut short');
        each(t, k, dump.subarray(o, o + vl));
        o += vl;
      }
    }
    if (o !== dump.length) throw bad('trailing bytes');
  }

  /** Opens (or creates) the store in dir. */
  static open(dir: string, opts: StoreOptions = {}): MvccStore {
    fs.mkdirSync(dir, { recursive: true });
    // What a defragmentation left behind when the process ended in the middle of it (or a snapshot's file: earlier
    // releases wrote one before sending it).
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith(DEFRAG_PREFIX) || name.startsWith(SNAPSHOT_PREFIX)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    }
    const env = open<Buffer, Buffer>({ path: dir, ...ENV_OPTIONS });
    return new MvccStore(env, dir, opts);
  }

  /** The revision of the last write. */
  rev(): number {
    return this.currentRev;
  }

  /** Reads below this revision fail with ErrCompacted (-1 before the first compaction, as etcd's). */
  compactRev(): number {
    return this.compactMainRev;
  }

  /** The index of the last Raft entry applied; after a restart, where the server resumes replay. */
  consistentIndex(): number {
    return this.applied;
  }

  /** Records that the entry at index was applied without writing to the store (a read-only txn, a v2 entry …). */
  setConsistentIndex(index: number): void {
    if (index <= this.applied) return;
    this.applied = index;
    this.pending.index = index;
    this.scheduleFlush();
  }

  /**
   * Buffers a write of a lease to the `lease` table (undefined: its removal), committed with the batch it is in and
   * so with the consistent index of its entry (inside a write txn: with that txn's writes).
   */
  stageLease(lease: LeaseRecord | { id: bigint; removed: true }): void {
    let rec = EMPTY;
    if (!('removed' in lease)) {
      rec = Buffer.allocUnsafe(16);
      rec.writeBigInt64BE(BigInt(lease.ttl), 0);
      rec.writeBigInt64BE(BigInt(lease.remainingTTL), 8);
    }
    this.pending.ops.push({ key: leaseIdBytes(lease.id), ks: LEASE_OP, rev: undefined, rec, meta: undefined, prevLease: 0n, lease: 0n, prevBuffered: false, prevMeta: undefined, prevRec: undefined });
    if (!this.openTxn) this.scheduleFlush();
  }

  /**
   * The committed leases and, for each, its keys in key order (for the lessor at open and after loadSync, when
   * nothing is buffered).
   */
  loadLeases(): { lease: LeaseRecord; keys: Buffer[] }[] {
    if (this.pending.ops.length || this.inflight) this.flushSync();
    const byId = new Map<bigint, { lease: LeaseRecord; keys: Buffer[] }>();
    for (const { key, value } of this.leases.getRange({})) {
      const id = key.readBigInt64BE(0);
      byId.set(id, { lease: { id, ttl: Number(value.readBigInt64BE(0)), remainingTTL: Number(value.readBigInt64BE(8)) }, keys: [] });
    }
    for (const { key } of this.leaseKeys.getRange({})) {
      const l = byId.get(key.readBigInt64BE(0));
      if (l) l.keys.push(Buffer.from(key.subarray(8)));
    }
    return [...byId.values()];
  }

  /**
   * Writes a value of the meta table as part of the entry at index: committed in the same LMDB transaction as that
   * entry's consistent index (the auth store keeps its users and roles so, as etcd keeps its auth buckets; the
   * alarms too), and carried by snapshots.
   */
  putMetaValue(key: string, value: Buffer, index: number): void {
    if (key === CONSISTENT_INDEX || key === 'currentRev' || key.endsWith('CompactRev')) throw new Error(`mvcc: meta key ${key} is the store's own`);
    this.pending.ops.push({ key, ks: META_OP, rev: undefined, rec: value, meta: undefined, prevLease: 0n, lease: 0n, prevBuffered: false, prevMeta: undefined, prevRec: undefined });
    if (index > this.applied) this.setConsistentIndex(index);
    else this.scheduleFlush();
  }

  /** A value of the meta table as committed (read at start and after a snapshot replaced the data). */
  readMetaValue(key: string): Buffer | undefined {
    return this.meta.get(key);
  }

  /** Reads keys: end undefined → the single key; end empty → every key ≥ key; else [key, end). */
  range(key: Buffer, end: Buffer | undefined, opts: RangeOptions = {}): RangeResult {
    return this.rangeAt(key, end, opts, this.currentRev);
  }

  /** Starts the write txn of the Raft entry at index: its writes share one main revision. */
  write(index: number): WriteTxn {
    if (this.openTxn) throw new Error('mvcc: a write txn is already open');
    if (this.closed) throw new Error('mvcc: store is closed');
    this.openTxnStart = this.pending.ops.length;
    const txn = new WriteTxn(this, index, this.currentRev, ++this.seq);
    this.openTxn = txn;
    return txn;
  }

  /**
   * Compacts at rev (the entry at index): reads below rev fail from now on; the versions they would need are
   * removed in the background, a chunk per turn of the event loop; the promise resolves when that is done (etcd's
   * physical compaction). Throws ErrCompacted / ErrFutureRev as etcd's Compact.
   */
  compact(rev: number, index: number): Promise<void> {
    if (rev <= this.compactMainRev) throw new ErrCompacted();
    if (rev > this.currentRev) throw new ErrFutureRev();
    this.compactMainRev = rev;
    this.pending.ops.push({ key: 'scheduledCompactRev', ks: META_OP, rev: undefined, rec: u64(rev), meta: undefined, prevLease: 0n, lease: 0n, prevBuffered: false, prevMeta: undefined, prevRec: undefined });
    this.setConsistentIndex(index);
    this.compacting = this.compacting.then(() => this.longOp(() => this.physicalCompact(rev)));
    return this.compacting;
  }

  /**
   * etcd's HashByRev (HashKV): a CRC-32 over the versions a read at rev or later can reach — every version at or
   * before rev, less those older than the compaction that a later version at or before rev replaced. Members at
   * the same revision and compaction hash alike (etcd's corruption check compares them). Waits for a running
   * physical compaction, as etcd's does.
   */
  async hashKV(rev = 0): Promise<{ hash: number; rev: number; compactRev: number }> {
    const compactRev = this.compactMainRev;
    const currentRev = this.currentRev;
    if (rev > 0 && rev <= compactRev) throw new ErrCompacted();
    if (rev > currentRev) throw new ErrFutureRev();
    if (rev === 0) rev = currentRev;
    await this.compacting.catch(() => undefined);
    return this.longOp(async () => ({ hash: await this.hashVersions(rev, currentRev, compactRev), rev: currentRev, compactRev }));
  }

  private async hashVersions(rev: number, currentRev: number, compactRev: number): Promise<number> {
    await this.committedUpTo(rev);
    const upperHist = revBytes(rev + 1, 0);
    let hash = crc32('kv');
    // One read snapshot for the whole walk, which yields to the event loop every HASH_CHUNK versions.
    const transaction = this.env.useReadTransaction();
    try {
      let n = 0;
      for (const { key: r, value: rec } of this.kv.getRange({ end: revBytes(rev + 1, 0), transaction })) {
        if (readU64(r, 0) <= compactRev) {
          // kept by compaction: hashed unless a later version at or before rev replaced it (at the current
          // revision: unless it is no longer the key's live version, one lookup in `latest`)
          const k = recordKey(rec);
          let last: boolean;
          if (rev === currentRev) {
            const meta = this.latest.get(k, { transaction });
            last = meta !== undefined && meta.subarray(0, REV_BYTES).equals(r);
          } else {
            const start = Buffer.concat([histKey(k, r), LIVE]);
            last = [...this.hist.getRange({ start, end: histKey(k, upperHist), limit: 1, transaction })].length === 0;
          }
          if (last) {
            hash = crc32(r, hash);
            hash = crc32(rec, hash);
          }
        } else {
          hash = crc32(r, hash);
          hash = crc32(rec, hash);
        }
        if (++n % HASH_CHUNK === 0) await new Promise((res) => setImmediate(res));
      }
    } finally {
      transaction.done();
    }
    return hash;
  }

  /**
   * etcd's Hash (Maintenance.Hash): a CRC-32 over every table of the backend, names, keys and values, at the current
   * revision, less the consistent index (as etcd's leaves it out). Members that applied the same log hash alike.
   */
  async hash(): Promise<{ hash: number; rev: number }> {
    await this.compacting.catch(() => undefined);
    return this.longOp(async () => {
      this.flushSync();
      const rev = this.currentRev;
      const transaction = this.env.useReadTransaction();
      let hash = 0;
      try {
        let n = 0;
        const tables = this.tables();
        for (let t = 0; t < tables.length; t++) {
          hash = crc32(TABLE_NAMES[t], hash);
          for (const { key, value } of tables[t].getRange({ transaction })) {
            if (t === TABLE_META && (key as unknown as string) === CONSISTENT_INDEX) continue;
            hash = crc32(typeof key === 'string' ? Buffer.from(key) : key, hash);
            hash = crc32(value, hash);
            if (++n % HASH_CHUNK === 0) await new Promise((res) => setImmediate(res));
          }
        }
      } finally {
        transaction.done();
      }
      return { hash, rev };
    });
  }

  /**
   * Writes a consistent copy of the whole LMDB file to file: every page up to the last used one, a multiple of the
   * page size (4 KiB). The snapshot format of the first releases (snapshot restore still reads it); Maintenance.Snapshot
   * now streams etcd's backend instead (withSnapshotView, etcdserver/etcd-backend.ts).
   */
  async snapshot(file: string): Promise<void> {
    await this.longOp(async () => {
      this.flushSync();
      const tmp = `${file}.tmp.d`; // LMDB copies into a directory, as its data.mdb
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { recursive: true });
      try {
        await this.env.backup(tmp, false);
        fs.renameSync(path.join(tmp, DATA_FILE), file);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  }

  /** Replaces the store in dir (closed) by a snapshot file written by snapshot(). */
  static restore(dir: string, file: string): void {
    fs.mkdirSync(dir, { recursive: true });
    fs.rmSync(path.join(dir, 'lock.mdb'), { force: true });
    const tmp = path.join(dir, DATA_FILE + '.restore');
    fs.copyFileSync(file, tmp);
    fs.renameSync(tmp, path.join(dir, DATA_FILE));
  }

  /**
   * Makes dir (new) the store of a restored member from an LMDB snapshot file (its first `size` bytes, the trailer
   * left out), with its consistent index set to `consistentIndex` (etcd's restore sets the number of members, so
   * that the new cluster's log applies).
   */
  static async restoreDB(dir: string, file: string, size: number, consistentIndex: number): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    copyPrefix(file, size, path.join(dir, DATA_FILE));
    const env = open<Buffer, Buffer>({ path: dir, ...ENV_OPTIONS });
    try {
      const meta = env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
      env.transactionSync(() => meta.putSync(CONSISTENT_INDEX, u64(consistentIndex)));
    } finally {
      await env.close();
    }
  }

  /**
   * etcd's snapshot status of an LMDB snapshot file (its first `size` bytes): a CRC-32C over every table (its name,
   * then its keys and values, tables and keys in byte order), the revision of the last version, the number of
   * entries in all tables and the size. Read from a copy in scratchDir (LMDB keeps a lock file beside the data).
   */
  static async dbStatus(file: string, size: number, scratchDir: string): Promise<{ hash: number; revision: number; totalKey: number; totalSize: number }> {
    fs.mkdirSync(scratchDir, { recursive: true });
    copyPrefix(file, size, path.join(scratchDir, DATA_FILE));
    const env = open<Buffer, Buffer>({ path: scratchDir, ...ENV_OPTIONS, readOnly: true });
    try {
      const names = [...env.getRange({ start: Buffer.from([0]) })].map(({ key }) => Buffer.from(key).toString('latin1').replace(/\0$/, '')).sort();
      let hash = 0;
      let revision = 0;
      let totalKey = 0;
      for (const name of names) {
        hash = crc32c(Buffer.from(name), hash);
        const t = env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' });
        for (const { key, value } of t.getRange({})) {
          const k = Buffer.from(key);
          hash = crc32c(k, hash);
          hash = crc32c(value, hash);
          if (name === 'kv') revision = readU64(k, 0);
          totalKey++;
        }
      }
      return { hash, revision, totalKey, totalSize: size };
    } finally {
      await env.close();
    }
  }

  /**
   * Runs fn over a consistent view of the whole store (the write buffer committed first, then one LMDB read
   * transaction, as a long op: no defragmentation meanwhile), for a snapshot in another format. fn may yield to the
   * event loop between the entries it reads; writes applied meanwhile are not in the view.
   */
  async withSnapshotView<T>(fn: (view: StoreView) => Promise<T>): Promise<T> {
    return this.longOp(async () => {
      this.flushSync();
      const kvViews = (this.kvViews ??= this.env.openDB<Buffer, Buffer>({ name: 'kv', ...VIEW_ENCODING } as never));
      const transaction = this.env.useReadTransaction();
      const opts = { transaction } as RangeOptionsWithTxn;
      const num = (k: string): number | undefined => {
        const b = this.meta.get(k, { transaction });
        return b ? readU64(b, 0) : undefined;
      };
      const view: StoreView = {
        consistentIndex: num(CONSISTENT_INDEX) ?? 0,
        rev: Math.max(1, num('currentRev') ?? 0),
        finishedCompactRev: num('finishedCompactRev'),
        scheduledCompactRev: num('scheduledCompactRev'),
        metaValue: (k) => this.meta.get(k, { transaction }),
        versions: () => mapIterable(kvViews.getRange(opts), ({ key, value }) => ({ rev: Buffer.from(key), rec: value })),
        leases: () => mapIterable(this.leases.getRange(opts), ({ key, value }) => ({ id: key.readBigInt64BE(0), ttl: Number(value.readBigInt64BE(0)), remainingTTL: Number(value.readBigInt64BE(8)) })),
      };
      try {
        return await fn(view);
      } finally {
        transaction.done();
      }
    });
  }

  /**
   * Makes dir (new, no store in it) a store holding exactly the given versions — their revisions, create
   * revisions, versions and leases as given, not replayed as writes — with the leases, meta values (auth, alarms),
   * compaction revisions and consistent index given. The current revision is the last version's, or the finished
   * compaction's when that is later (as etcd's restore computes it). Versions come in revision order and are
   * committed a chunk at a time, so the heap holds one chunk whatever the size; a key this store cannot hold (see
   * ErrKeyTooLong) fails the import, naming its revision.
   */
  static async importData(dir: string, data: StoreImport): Promise<{ rev: number; versions: number }> {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, DATA_FILE);
    if (fs.existsSync(file)) throw new Error(`mvcc: ${dir} holds a store already`);
    // Written through the memory map (no copy of each page into a transaction's heap and again into the file) and
    // not synced per commit: an import is not relied on before it returns, after a sync of the whole file. Meanwhile
    // the pages written go to the disk: after each transaction (of at most IMPORT_BYTES) a sync of the file starts
    // on the thread pool (which runs while this thread imports on), so that the last one has little left to write.
    const env = open<Buffer, Buffer>({ path: dir, ...ENV_OPTIONS, useWritemap: true, noSync: true });
    const fd = fs.openSync(file, 'r+');
    const syncs: Promise<void>[] = [];
    const startSync = () => syncs.push(new Promise<void>((resolve) => fs.fdatasync(fd, () => resolve())));
    let last = 0;
    let n = 0;
    let used = 0;
    try {
      const kv = env.openDB<Buffer, Buffer>({ name: 'kv', encoding: 'binary', keyEncoding: 'binary' });
      const latest = env.openDB<Buffer, Buffer>({ name: 'latest', encoding: 'binary', keyEncoding: 'binary' });
      const hist = env.openDB<Buffer, Buffer>({ name: 'hist', encoding: 'binary', keyEncoding: 'binary' });
      const meta = env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
      const leases = env.openDB<Buffer, Buffer>({ name: 'lease', encoding: 'binary', keyEncoding: 'binary' });
      const leaseKeys = env.openDB<Buffer, Buffer>({ name: 'leasekeys', encoding: 'binary', keyEncoding: 'binary' });
      let lastRev: Buffer | undefined;
      let leased = false;
      let scratch = Buffer.allocUnsafe(1 << 16);
      const it = data.versions[Symbol.iterator]();
      for (let done = false; !done; ) {
        let bytes = 0;
        env.transactionSync(() => {
          for (let i = 0; i < COPY_CHUNK && bytes < IMPORT_BYTES; i++) {
            const r = it.next();
            if (r.done) {
              done = true;
              return;
            }
            const v = r.value;
            const rev = revBytes(v.main, v.sub);
            if (lastRev && Buffer.compare(lastRev, rev) >= 0) throw new Error(`mvcc: import: revision ${v.main}/${v.sub} out of order`);
            if (keyTooLong(v.key)) throw new Error(`mvcc: import: the key at revision ${v.main} (${v.key.length} bytes) is longer than this store's engine takes (${new ErrKeyTooLong().message})`);
            lastRev = rev;
            last = v.main;
            n++;
            // Encoded into one buffer that every put reuses (a synchronous put has copied it when it returns).
            const value = v.tombstone ? EMPTY : v.value;
            const size = RECORD_HEADER + v.key.length + value.length;
            if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, scratch.length * 2));
            writeRecord(scratch, v.key, value, v.tombstone ? 0 : v.create, v.tombstone ? 0 : v.version, v.tombstone ? 0n : v.lease, v.tombstone);
            kv.putSync(rev, scratch.subarray(0, size), APPEND);
            bytes += size;
            hist.putSync(histKey(v.key, rev), v.tombstone ? TOMB : LIVE);
            if (v.tombstone) latest.removeSync(v.key);
            else {
              latest.putSync(v.key, encodeMeta(rev, v.create, v.version, v.lease));
              if (v.lease !== 0n) leased = true;
            }
          }
        });
        startSync();
      }
      // Which live keys each lease holds, from the live versions (none when no version had a lease).
      let from: Buffer | undefined;
      for (let more = leased; more; ) {
        more = false;
        env.transactionSync(() => {
          let i = 0;
          for (const { key, value } of latest.getRange({ start: from })) {
            if (from && key.equals(from)) continue;
            if (++i > COPY_CHUNK) {
              more = true;
              return;
            }
            from = Buffer.from(key);
            const lease = value.readBigInt64BE(32);
            if (lease !== 0n) leaseKeys.putSync(Buffer.concat([leaseIdBytes(lease), key]), EMPTY);
          }
        });
      }
      const rev = Math.max(1, last, data.finishedCompactRev ?? 0);
      env.transactionSync(() => {
        for (const l of data.leases) {
          const rec = Buffer.allocUnsafe(16);
          rec.writeBigInt64BE(BigInt(l.ttl), 0);
          rec.writeBigInt64BE(BigInt(l.remainingTTL), 8);
          leases.putSync(leaseIdBytes(l.id), rec);
        }
        for (const [k, v] of data.metaValues) meta.putSync(k, v);
        if (data.finishedCompactRev !== undefined) meta.putSync('finishedCompactRev', u64(data.finishedCompactRev));
        if (data.scheduledCompactRev !== undefined) meta.putSync('scheduledCompactRev', u64(data.scheduledCompactRev));
        meta.putSync('currentRev', u64(rev));
        meta.putSync(CONSISTENT_INDEX, u64(data.consistentIndex));
      });
      const st = env.getStats() as { pageSize: number; lastPageNumber: number };
      used = (st.lastPageNumber + 1) * st.pageSize;
    } finally {
      await Promise.all(syncs);
      fs.closeSync(fd);
      await env.close();
    }
    // The map's writer grew the file to the whole map: cut it to the pages used (as LMDB's file writes leave it).
    syncFile(file, used);
    syncFile(dir);
    return { rev: Math.max(1, last, data.finishedCompactRev ?? 0), versions: n };
  }

  /**
   * etcd's Defrag: a compacting copy of the environment (free pages left out, tables rewritten densely) replaces it,
   * giving the space back to the file system. Served while it runs: reads go on, and writes are applied into the
   * write buffer, whose commits wait until the copy is in place (batches committed synchronously meanwhile, by a
   * read at a past revision say, are written into the copy as well). The copy is renamed over data.mdb in one step,
   * so a crash leaves the old file or the new one, each whole; it is opened from a directory of its own, whose lock
   * file stays until the next defragmentation or restart.
   */
  defrag(): Promise<void> {
    const before = this.defragging ?? Promise.resolve();
    const run = before.catch(() => undefined).then(() => this.runDefrag());
    const mine = run.finally(() => {
      if (this.defragging === mine) this.defragging = undefined;
    });
    this.defragging = mine;
    return mine;
  }

  private async runDefrag(): Promise<void> {
    if (this.closed) throw new Error('mvcc: store is closed');
    if (this.longOps > 0) await new Promise<void>((resolve) => (this.longOpsIdle = resolve));
    this.longOpsIdle = undefined;
    this.commitsPaused = true;
    const copyDir = path.join(this.dir, `${DEFRAG_PREFIX}${process.pid}.${++this.defragSeq}`);
    let fresh: RootDatabase<Buffer, Buffer> | undefined;
    try {
      await this.inflightDone;
      this.flushSync();
      this.replay = [];
      this.copyStale = false;
      fs.rmSync(copyDir, { recursive: true, force: true });
      fs.mkdirSync(copyDir, { recursive: true });
      fresh = open<Buffer, Buffer>({ path: copyDir, ...ENV_OPTIONS });
      await this.copyInto(fresh);
      if (this.closed) throw new Error('mvcc: store is closed');
      if (this.copyStale) throw new Error('mvcc: defragmentation interrupted: a snapshot replaced the data; try again');
    } catch (err) {
      this.replay = undefined;
      this.commitsPaused = false;
      if (fresh) await fresh.close();
      fs.rmSync(copyDir, { recursive: true, force: true });
      this.scheduleFlush();
      throw err;
    }
    // From here on synchronously: reads move to the copy with everything committed since it was taken.
    const old = this.env;
    const oldDir = this.envDir;
    const replay = this.replay;
    this.replay = undefined;
    this.env = fresh;
    this.envDir = copyDir;
    this.openTables();
    if (replay.length) {
      this.env.transactionSync(() => {
        for (const b of replay) this.writeBatch(b, false);
      });
    }
    fs.renameSync(path.join(copyDir, DATA_FILE), path.join(this.dir, DATA_FILE));
    fsyncDir(this.dir);
    this.env.resetReadTxn();
    this.refreshSize();
    // Commits resume once the old environment is closed: lmdb-js growing the new one's map while the old one
    // closes corrupted the new one's free list (an LMDB assertion in mdb_page_alloc) under a write load.
    try {
      await old.close();
    } finally {
      this.commitsPaused = false;
      this.scheduleFlush();
    }
    if (oldDir !== this.dir) fs.rmSync(oldDir, { recursive: true, force: true });
  }

  /**
   * Copies every table into a new environment, key by key in key order (LMDB appends, filling its pages), as
   * bbolt's defragmentation does: from one read snapshot, in chunks committed one after the other, yielding to the
   * event loop between them. (LMDB's own compacting copy, mdb_env_copy2 with MDB_CP_COMPACT, left an environment
   * whose free list broke under the writes that followed: an assertion in mdb_page_alloc.)
   */
  private async copyInto(fresh: RootDatabase<Buffer, Buffer>): Promise<void> {
    const names = [...this.env.getRange({ start: Buffer.from([0]) })].map(({ key }) => Buffer.from(key).toString('latin1').replace(/\0$/, ''));
    // Entries of all tables go in the same transaction until a chunk is full, and each table is created in the
    // transaction that writes its first entries: a small store is copied in one transaction, which leaves no page
    // freed behind it (every commit frees the pages it rewrites), so the copy is as small as it can be.
    const dsts = new Map<string, Database<Buffer, Buffer>>();
    const dst = (name: string) => {
      let db = dsts.get(name);
      if (!db) dsts.set(name, (db = fresh.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' })));
      return db;
    };
    let chunk: [string, Buffer, Buffer][] = [];
    const write = (last = false): void => {
      const entries = chunk;
      chunk = [];
      fresh.transactionSync(() => {
        for (const [name, k, v] of entries) dst(name).putSync(k, v, APPEND);
        if (last) for (const name of names) dst(name);
      });
    };
    const transaction = this.env.useReadTransaction();
    try {
      for (const name of names) {
        const src = this.env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' });
        for (const { key, value } of src.getRange({ transaction })) {
          chunk.push([name, Buffer.from(key), Buffer.from(value)]);
          if (chunk.length >= COPY_CHUNK) {
            write();
            await new Promise((r) => setImmediate(r));
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      write(true);
    } finally {
      transaction.done();
    }
  }

  /** How many LMDB readers other processes hold on this store (a member that has it open holds one). */
  readersElsewhere(): number {
    this.env.readerCheck();
    const lines = this.env.readerList().split('\n').slice(1);
    return lines.map((l) => Number(l.trim().split(/\s+/)[0])).filter((pid) => pid > 0 && pid !== process.pid).length;
  }

  /** Runs fn as a long op: not while a defragmentation runs, and none starts until it is done. */
  private async longOp<T>(fn: () => Promise<T>): Promise<T> {
    while (this.defragging) await this.defragging.catch(() => undefined);
    this.longOps++;
    try {
      return await fn();
    } finally {
      if (--this.longOps === 0) this.longOpsIdle?.();
    }
  }

  /** The number of live keys (etcd_debugging_mvcc_keys_total): LMDB's entry count, corrected by the buffer. */
  keyCount(): number {
    let n = (this.latest.getStats() as { entryCount: number }).entryCount;
    for (const e of this.latestBuf.values()) n += (e.meta ? 1 : 0) - (this.inDb(e) ? 1 : 0);
    return n;
  }

  /**
   * The database size (etcd_mvcc_db_total_size_in_bytes, Status's dbSize, what --quota-backend-bytes limits): the
   * pages up to the last used one, the size of data.mdb, as of the last commit (no system call per request).
   */
  dbSize(): number {
    return this.size;
  }

  /**
   * The bytes of the pages that hold data (etcd_mvcc_db_total_size_in_use_in_bytes, Status's dbSizeInUse): the
   * database size less LMDB's free pages, which later commits reuse and a defragmentation gives back.
   */
  dbSizeInUse(): number {
    const pages = (st: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }) => st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages;
    type Stat = { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    const root = this.env.getStats() as Stat & { pageSize: number; lastPageNumber: number; root: Stat; free: Stat };
    let used = 2 + pages(root.root) + pages(root.free); // two meta pages, the table of tables, the free list
    for (const t of this.tables()) used += pages(t.getStats() as Stat);
    return Math.min(used, root.lastPageNumber + 1) * root.pageSize;
  }

  /** Commits what is buffered, waits for a running compaction and defragmentation, and closes LMDB. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.compacting.catch(() => undefined);
    await this.defragging?.catch(() => undefined);
    this.flushSync();
    await this.inflightDone;
    await this.env.close();
    if (this.envDir !== this.dir) fs.rmSync(this.envDir, { recursive: true, force: true });
  }

  /** Commits the write buffer now (all but an open write txn), synchronously. */
  flushSync(): void {
    const batches: Batch[] = [];
    if (this.inflight && !this.inflight.written) batches.push(this.inflight);
    let batch = this.pending;
    let rest: Op[] = [];
    if (this.openTxn) {
      rest = batch.ops.slice(this.openTxnStart);
      batch = { ...batch, ops: batch.ops.slice(0, this.openTxnStart), lastSeq: this.openTxn.seq - 1 };
    }
    batches.push(batch);
    this.env.transactionSync(() => {
      for (const b of batches) this.writeBatch(b);
    });
    this.replay?.push(...batches);
    this.env.resetReadTxn();
    this.refreshSize();
    for (const b of batches) this.dropBuffered(b);
    this.pending = this.newBatch();
    this.pending.ops = rest;
    this.openTxnStart = 0;
  }

  // ---- internals used by WriteTxn ----

  /** @internal */
  rangeAt(key: Buffer, end: Buffer | undefined, opts: RangeOptions, curRev: number): RangeResult {
    // key moves past the kvs returned when only the rest is left to count
    const rev = opts.rev && opts.rev > 0 ? opts.rev : curRev;
    if (rev > curRev) throw new ErrFutureRev();
    if (rev < this.compactMainRev) throw new ErrCompacted();
    if (rev < curRev) return this.rangePast(key, end, rev, opts, curRev);
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    const take = !opts.countOnly;
    const kvs: KeyValue[] = [];
    if (end === undefined) {
      const e = this.latestBuf.size ? this.latestBuf.get(key.toString('latin1')) : undefined;
      const meta = e ? e.meta : this.latest.get(key);
      if (!meta) return { kvs, count: 0, rev: curRev };
      if (take) kvs.push(this.toKV(key, meta, opts.keysOnly, e?.rec));
      return { kvs, count: 1, rev: curRev };
    }
    const endKey = end.length ? end : undefined;
    if (endKey && Buffer.compare(key, endKey) >= 0) return { kvs, count: 0, rev: curRev };
    const buf = this.sortBuffered();
    let i = buf.length ? lowerBound(buf, key.toString('latin1')) : 0;
    let count = 0;
    if (take) {
      // keys with their metas, merged with the buffered ones, up to the limit
      const iter = this.latest.getRange({ start: key.length ? key : undefined, end: endKey })[Symbol.iterator]();
      let a = iter.next();
      for (;;) {
        let o: LatestEntry | undefined = i < buf.length ? buf[i] : undefined;
        if (o && endKey && Buffer.compare(o.key, endKey) >= 0) o = undefined;
        if (a.done && !o) return { kvs, count, rev: curRev };
        const c = a.done ? 1 : o ? Buffer.compare(a.value.key, o.key) : -1;
        let k: Buffer;
        let meta: Buffer | undefined;
        let rec: Buffer | undefined;
        if (c < 0) {
          k = a.value.key;
          meta = a.value.value;
          a = iter.next();
        } else {
          k = o!.key;
          meta = o!.meta;
          rec = o!.rec;
          i++;
          if (c === 0) a = iter.next();
        }
        if (!meta) continue;
        count++;
        kvs.push(this.toKV(k, meta, opts.keysOnly, rec));
        if (kvs.length === limit) {
          key = Buffer.concat([k, ZERO]); // the rest is only counted
          // An iterator left open keeps its read transaction (and LMDB reader slot) from being reused: every
          // limited range would take one more slot, until LMDB has none left (MDB_READERS_FULL).
          iter.return?.();
          break;
        }
      }
    }
    // The count of [key, end): LMDB counts its keys natively (every key in `latest` is live), corrected by the
    // buffered keys in the range (a buffered put of a key LMDB lacks adds one, a buffered delete of one it has
    // takes one away).
    count += this.latest.getKeysCount({ start: key.length ? key : undefined, end: endKey });
    const fromKs = key.toString('latin1');
    const endKs = endKey?.toString('latin1');
    for (; i < buf.length; i++) {
      const o = buf[i];
      if (endKs !== undefined && o.ks >= endKs) break;
      if (o.ks < fromKs) continue;
      count += (o.meta ? 1 : 0) - (this.inDb(o) ? 1 : 0);
    }
    return { kvs, count, rev: curRev };
  }

  /** @internal the live meta of key (buffered or committed) */
  getMeta(key: Buffer, ks: string): Buffer | undefined {
    if (this.latestBuf.size) {
      const e = this.latestBuf.get(ks);
      if (e) return e.meta;
    }
    return this.latest.get(key);
  }

  /** @internal buffers a write of key at rev: its record, and its meta (undefined: deleted) */
  stage(key: Buffer, ks: string, rev: Buffer, rec: Buffer, meta: Buffer | undefined, seq: number, inDb: boolean, prevLease: bigint, lease: bigint): void {
    const e = this.latestBuf.get(ks);
    this.pending.ops.push({ key, ks, rev, rec, meta, prevLease, lease, prevBuffered: e !== undefined, prevMeta: e?.meta, prevRec: e?.rec });
    if (prevLease !== lease) this.onLeaseMove?.(key, prevLease, lease);
    if (e) {
      e.meta = meta;
      e.rec = rec;
      e.seq = seq;
      return;
    }
    const n: LatestEntry = { key, ks, meta, rec, seq, inDb, inDbSeq: this.committedSeq, flushingSeq: 0 };
    this.latestBuf.set(ks, n);
    const sorted = this.latestSorted;
    if (!this.unsorted.length && (!sorted.length || sorted[sorted.length - 1].ks < ks)) sorted.push(n);
    else this.unsorted.push(n);
  }

  /** Whether the read snapshot holds the buffered key. */
  private inDb(e: LatestEntry): boolean {
    return e.flushingSeq > e.inDbSeq ? this.latest.doesExist(e.key) : e.inDb;
  }

  /** Merges the keys buffered since the last range into latestSorted (puts stay O(1); a range pays once). */
  private sortBuffered(): LatestEntry[] {
    if (!this.unsorted.length) return this.latestSorted;
    const add = this.unsorted.sort((x, y) => (x.ks < y.ks ? -1 : 1));
    const old = this.latestSorted;
    const merged: LatestEntry[] = new Array(old.length + add.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < add.length) merged[k++] = old[i].ks < add[j].ks ? old[i++] : add[j++];
    while (i < old.length) merged[k++] = old[i++];
    while (j < add.length) merged[k++] = add[j++];
    this.unsorted = [];
    this.latestSorted = merged;
    return merged;
  }

  /** @internal */
  endTxn(txn: WriteTxn, changed: boolean): void {
    this.openTxn = undefined;
    if (changed) this.currentRev = txn.beginRev + 1;
    this.pending.rev = this.currentRev;
    this.pending.lastSeq = txn.seq;
    if (txn.index > this.applied) this.applied = txn.index;
    this.pending.index = this.applied;
    // Before a commit can run: the txn's writes are the last ops of the buffer, and what they replaced is readable.
    if (changed && this.watcher) this.watcher.txnEnded(this.currentRev, this.pending.ops as StagedWrite[], this.openTxnStart, this.pending.ops.length);
    this.scheduleFlush();
  }

  /**
   * Visits the versions written at main revisions ≥ from, in revision order (etcd reads its key bucket so when it
   * syncs slow watchers): the committed ones from LMDB, then the buffered ones, committing nothing. Stops at the end
   * of a main revision once maxVersions versions or maxBytes of records were visited, and returns the revision to go
   * on from (rev() + 1 when everything was read).
   */
  readHistory(from: number, maxVersions: number, maxBytes: number, visit: (v: HistoryVersion) => void): number {
    let n = 0;
    let bytes = 0;
    let last = 0;
    const full = () => n >= maxVersions || bytes >= maxBytes;
    if (from <= this.committedRev) {
      for (const { key: rev, value: rec } of this.kv.getRange({ start: revBytes(from, 0), end: revBytes(this.committedRev + 1, 0) })) {
        const main = readU64(rev, 0);
        if (main !== last && full()) return main;
        last = main;
        n++;
        bytes += rec.length;
        visit({ main, rev, rec, write: undefined });
      }
    }
    for (const b of [this.inflight, this.pending]) {
      if (!b) continue;
      for (const op of b.ops) {
        if (op.rev === undefined) continue;
        const main = readU64(op.rev, 0);
        if (main < from || main <= this.committedRev) continue;
        if (main !== last && full()) return main;
        last = main;
        n++;
        bytes += op.rec.length;
        visit({ main, rev: op.rev, rec: op.rec, write: op as StagedWrite });
      }
    }
    return this.currentRev + 1;
  }

  /**
   * The live version of key just before main revision `main` (a watch event's prev_kv: etcd reads the key at
   * main - 1), or undefined when there is none, it was deleted, or main - 1 is compacted. `write`: the buffered write
   * at main, whose previous version may still be buffered too.
   */
  prevVersion(key: Buffer, main: number, write?: StagedWrite): KeyValue | undefined {
    if (main - 1 < this.compactMainRev) return undefined;
    const op = write as Op | undefined;
    if (op && op.prevBuffered && main > this.committedRev) return op.prevMeta ? this.toKV(key, op.prevMeta, false, op.prevRec) : undefined;
    const below = revBytes(main, 0);
    for (const { key: hk, value } of this.hist.getRange({ start: histKey(key, below), end: histPrefix(key), reverse: true, limit: 2 })) {
      const rev = histRev(hk);
      if (Buffer.compare(rev, below) >= 0) continue; // the write at main itself
      if (value[0] === 1) return undefined;
      const rec = this.kv.get(rev);
      if (!rec) return undefined;
      return { key, createRevision: BigInt(readU64(rec, 1)), modRevision: BigInt(readU64(rev, 0)), version: BigInt(readU64(rec, 9)), value: recordValue(rec), lease: rec.readBigInt64BE(17) };
    }
    return undefined;
  }

  /** A KeyValue from a key's meta; its value from the buffered record, or from `kv` (not read for keysOnly). */
  private toKV(key: Buffer, meta: Buffer, keysOnly: boolean | undefined, rec: Buffer | undefined): KeyValue {
    const mod = readU64(meta, 0);
    let value: Buffer = EMPTY;
    if (!keysOnly) {
      rec ??= this.kv.get(meta.subarray(0, REV_BYTES));
      if (!rec) throw new Error(`mvcc: no record at revision ${mod} for a live key`);
      value = recordValue(rec);
    }
    return {
      key,
      createRevision: BigInt(readU64(meta, 16)),
      modRevision: BigInt(mod),
      version: BigInt(readU64(meta, 24)),
      value,
      lease: meta.readBigInt64BE(32),
    };
  }

  /** Reads at a past revision from `hist`: for each key, its last version at or before rev, unless a tombstone. */
  private rangePast(key: Buffer, end: Buffer | undefined, rev: number, opts: RangeOptions, curRev: number): RangeResult {
    this.flushSync();
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    const kvs: KeyValue[] = [];
    let count = 0;
    const start = key.length ? histPrefix(key) : undefined;
    const stop = end === undefined ? histKey(key, revBytes(rev + 1, 0)) : end.length ? histPrefix(end) : undefined;
    let group: Buffer | undefined;
    let best: Buffer | undefined;
    const emit = () => {
      if (!best || best[0] === 1) return;
      count++;
      if (opts.countOnly || kvs.length >= limit) return;
      const rec = this.kv.get(histRev(group!));
      if (!rec) throw new Error('mvcc: history without its record');
      kvs.push({
        key: Buffer.from(recordKey(rec)),
        createRevision: BigInt(readU64(rec, 1)),
        modRevision: BigInt(readU64(histRev(group!), 0)),
        version: BigInt(readU64(rec, 9)),
        value: opts.keysOnly ? EMPTY : recordValue(rec),
        lease: rec.readBigInt64BE(17),
      });
    };
    let groupPrefix: Buffer | undefined;
    for (const { key: hk, value } of this.hist.getRange({ start, end: stop })) {
      const prefix = hk.subarray(0, hk.length - REV_BYTES);
      if (!groupPrefix || !prefix.equals(groupPrefix)) {
        emit();
        groupPrefix = prefix;
        best = undefined;
      }
      if (readU64(hk, hk.length - REV_BYTES) <= rev) {
        best = value;
        group = hk;
      }
    }
    emit();
    return { kvs, count, rev: curRev };
  }

  private newBatch(): Batch {
    return { ops: [], index: this.applied, rev: this.currentRev, lastSeq: this.seq, written: false };
  }

  private scheduleFlush(): void {
    if (this.closed) return;
    if (this.commitsPaused) return; // a defragmentation schedules the commit once the copy is in place
    if (this.pending.ops.length >= this.batchLimit * BACKLOG_BATCHES && !this.openTxn) {
      // Applying outruns the disk: commit here, on the apply path, as etcd's backend does when its batch is full,
      // so the buffer (and the heap) stays bounded.
      this.flushSync();
    } else if (this.pending.ops.length >= this.batchLimit) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      setImmediate(() => this.startFlush());
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.startFlush();
      }, this.batchInterval);
      this.timer.unref();
    }
  }

  /** Resolves once every revision up to rev is in LMDB (committing the buffer sooner than its timer would). */
  private async committedUpTo(rev: number): Promise<void> {
    while (this.committedRev < rev && !this.closed) {
      if (!this.inflight) this.startFlush();
      await (this.inflight ? this.inflightDone : new Promise((r) => setImmediate(r)));
    }
  }

  /** Hands the buffer to lmdb-js's writer thread as one transaction; keeps it readable until committed. */
  private startFlush(): void {
    if (this.inflight || this.closed || this.openTxn || this.commitsPaused) return;
    const b = this.pending;
    if (!b.ops.length && b.index === this.lastCommittedIndex) return;
    this.pending = this.newBatch();
    this.inflight = b;
    for (const op of b.ops) {
      const e = op.rev === undefined ? undefined : this.latestBuf.get(op.ks);
      if (e) e.flushingSeq = b.lastSeq;
    }
    this.inflightDone = this.env
      .transaction(() => {
        if (!b.written) this.writeBatch(b);
      })
      .then(
        () => {
          this.env.resetReadTxn();
          this.refreshSize();
          this.dropBuffered(b);
          this.inflight = undefined;
          if (this.pending.ops.length || this.pending.index !== b.index) this.scheduleFlush();
        },
        (err) => {
          // LMDB refused a commit (disk full, I/O error): what was applied can no longer be made durable, and
          // the next batch would commit a store with a hole in it. etcd panics here too ("failed to commit").
          process.nextTick(() => {
            throw new Error(`mvcc: failed to commit a batch to LMDB: ${err}`);
          });
        },
      );
  }

  /** Writes a batch's ops in the open LMDB transaction; `append` false when they may be there already (a replay). */
  private writeBatch(b: Batch, append = true): void {
    for (const op of b.ops) {
      if (op.rev === undefined) {
        if (op.ks === LEASE_OP) {
          if (op.rec.length) this.leases.putSync(op.key as Buffer, op.rec);
          else this.leases.removeSync(op.key as Buffer);
        } else this.meta.putSync(op.key as string, op.rec);
        continue;
      }
      const key = op.key as Buffer;
      // Revisions only grow: LMDB fills its pages instead of splitting them.
      if (append) this.kv.putSync(op.rev, op.rec, APPEND);
      else this.kv.putSync(op.rev, op.rec);
      this.hist.putSync(histKey(key, op.rev), op.meta ? LIVE : TOMB);
      if (op.meta) this.latest.putSync(key, op.meta);
      else this.latest.removeSync(key);
      if (op.prevLease !== op.lease) {
        if (op.prevLease !== 0n) this.leaseKeys.removeSync(Buffer.concat([leaseIdBytes(op.prevLease), key]));
        if (op.lease !== 0n) this.leaseKeys.putSync(Buffer.concat([leaseIdBytes(op.lease), key]), EMPTY);
      }
    }
    this.meta.putSync('consistentIndex', u64(b.index));
    this.meta.putSync('currentRev', u64(b.rev));
    b.written = true;
  }

  /** After a batch is in LMDB, reads no longer need its buffered writes (unless a later txn rewrote them). */
  private dropBuffered(b: Batch): void {
    if (b.rev > this.committedRev) this.committedRev = b.rev;
    if (b.index > this.lastCommittedIndex) this.lastCommittedIndex = b.index;
    if (b.lastSeq > this.committedSeq) this.committedSeq = b.lastSeq;
    let dropped = false;
    // Last op first: a key written more than once in the batch is in LMDB as its last write left it.
    for (let i = b.ops.length - 1; i >= 0; i--) {
      const op = b.ops[i];
      if (op.rev === undefined) continue;
      const e = this.latestBuf.get(op.ks);
      if (!e) continue;
      if (e.seq <= b.lastSeq) {
        this.latestBuf.delete(op.ks);
        dropped = true;
      } else if (b.lastSeq > e.inDbSeq) {
        // a later txn rewrote it; LMDB holds this batch's last write (unless a later batch committed first)
        e.inDb = op.meta !== undefined;
        e.inDbSeq = b.lastSeq;
      }
    }
    if (dropped) {
      this.latestSorted = this.latestSorted.filter((e) => this.latestBuf.get(e.ks) === e);
      this.unsorted = this.unsorted.filter((e) => this.latestBuf.get(e.ks) === e);
    }
  }

  /**
   * Removes what compaction at rev leaves unreachable, for the keys written since the last compaction: every
   * version before the key's last one at or before rev, and that one too if it is a tombstone (etcd's keyIndex
   * compact and scheduleCompaction).
   */
  private async physicalCompact(rev: number): Promise<void> {
    await this.committedUpTo(rev);
    let cursor = revBytes(this.finishedCompactRev + 1, 0);
    const stop = revBytes(rev + 1, 0);
    const stopHist = revBytes(rev + 1, 0);
    for (;;) {
      if (this.closed) return; // finished on the next open (scheduledCompactRev is ahead of finishedCompactRev)
      const keys = new Map<string, Buffer>();
      let last: Buffer | undefined;
      for (const { key: r, value: rec } of this.kv.getRange({ start: cursor, end: stop, limit: COMPACT_CHUNK })) {
        const k = recordKey(rec);
        keys.set(k.toString('latin1'), Buffer.from(k));
        last = r;
      }
      if (!last) break;
      // Removed on lmdb-js's writer thread, committed with the next batch: no read can reach these versions any
      // more, so nothing waits for them; one chunk is committed before the next is read.
      let removed: Promise<boolean> | undefined;
      for (const k of keys.values()) {
        const versions = [...this.hist.getRange({ start: histPrefix(k), end: histKey(k, stopHist) })];
        const keep = versions.length && versions[versions.length - 1].value[0] === 0 ? 1 : 0;
        for (let j = 0; j < versions.length - keep; j++) {
          this.hist.remove(versions[j].key);
          removed = this.kv.remove(histRev(versions[j].key));
        }
      }
      if (removed) await removed;
      else await new Promise((r) => setImmediate(r));
      cursor = Buffer.concat([last, LIVE]);
    }
    await this.meta.put('finishedCompactRev', u64(rev));
    this.finishedCompactRev = rev;
  }
}

/** A write txn: etcd's TxnWrite. Its reads see its own writes; end() makes them the current revision. */
export class WriteTxn {
  private changes = 0;
  private ended = false;

  constructor(
    private readonly store: MvccStore,
    readonly index: number,
    readonly beginRev: number,
    readonly seq: number,
  ) {}

  /** The revision reads in this txn see: beginRev, or beginRev + 1 once it has written. */
  rev(): number {
    return this.changes ? this.beginRev + 1 : this.beginRev;
  }

  range(key: Buffer, end: Buffer | undefined, opts: RangeOptions = {}): RangeResult {
    return this.store.rangeAt(key, end, opts, this.rev());
  }

  put(key: Buffer, value: Buffer, lease: bigint): void {
    if (keyTooLong(key)) throw new ErrKeyTooLong();
    const main = this.beginRev + 1;
    const ks = key.toString('latin1');
    const prev = this.store.getMeta(key, ks);
    const create = prev ? readU64(prev, 16) : main;
    const version = prev ? readU64(prev, 24) + 1 : 1;
    const rev = revBytes(main, this.changes++);
    const rec = encodeRecord(key, value, create, version, lease, false);
    // (no BigInt made for the common case of no lease)
    const prevLease = prev && (prev.readUInt32BE(32) !== 0 || prev.readUInt32BE(36) !== 0) ? prev.readBigInt64BE(32) : 0n;
    // (when the key is not buffered, prev came from LMDB)
    this.store.stage(key, ks, rev, rec, encodeMeta(rev, create, version, lease), this.seq, prev !== undefined, prevLease, lease);
  }

  /** Deletes the live keys in the range (as range()); returns how many. */
  deleteRange(key: Buffer, end: Buffer | undefined): number {
    const { kvs } = this.store.rangeAt(key, end, { keysOnly: true }, this.rev());
    for (const kv of kvs) this.delete(kv.key, kv.lease);
    return kvs.length;
  }

  private delete(key: Buffer, lease: bigint): void {
    const rev = revBytes(this.beginRev + 1, this.changes++);
    // a live key that is not buffered is in LMDB
    this.store.stage(key, key.toString('latin1'), rev, encodeRecord(key, EMPTY, 0, 0, 0n, true), undefined, this.seq, true, lease, 0n);
  }

  /** Ends the txn: the store's revision becomes this txn's, its index the consistent index. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.store.endTxn(this, this.changes > 0);
  }
}

