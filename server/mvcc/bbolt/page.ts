/**
 * bbolt's file format (go.etcd.io/bbolt 1.3, what etcd 3.4's backend and its snapshots are), as facts shared by the
 * reader and the writer. All integers are little-endian.
 *
 * The file is pages of one size (the meta page says which; 4096 on Linux). Every page begins with a 16-byte header:
 * id u64 (its page number), flags u16, count u16 (elements), overflow u32 (the pages after it that it also takes,
 * for a node or a value bigger than a page). Pages 0 and 1 are meta pages (the one with the higher txid that
 * validates is current); the meta names the root bucket's page, the freelist page (or none) and the high water
 * mark (pages in use). A bucket is a B+tree: branch pages of (key, child page) elements, each key the first of its
 * child, and leaf pages of (flags, key, value) elements in key order; a leaf element with flag 1 is a nested bucket,
 * its value a 16-byte bucket header (root page u64, sequence u64) followed, when root is 0, by the bucket's only
 * leaf page inline (an inline bucket).
 */

export const PAGE_HEADER = 16;
export const BRANCH_ELEMENT = 16;
export const LEAF_ELEMENT = 16;
export const BUCKET_HEADER = 16;

export const FLAG_BRANCH = 0x01;
export const FLAG_LEAF = 0x02;
export const FLAG_META = 0x04;
export const FLAG_FREELIST = 0x10;
/** A leaf element's flag: its value is a nested bucket. */
export const FLAG_BUCKET = 0x01;

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
/** The meta's freelist when the freelist is not written (etcd's backend: NoFreelistSync). */
export const NO_FREELIST = 0xffffffffffffffffn;
/** The page size bbolt takes when the first meta page cannot tell (the OS page size). */
export const DEFAULT_PAGE_SIZE = 4096;
/** bbolt's meta: magic, version, pageSize, flags (u32 each), root, sequence, freelist, pgid, txid, checksum (u64). */
export const META_SIZE = 64;
const META_CHECKSUMMED = 56;

/** A meta page's contents. Page numbers are safe integers (a larger one is out of bounds of any real file). */
export interface Meta {
  magic: number;
  version: number;
  pageSize: number;
  flags: number;
  root: number;
  sequence: bigint;
  /** the freelist's page, or undefined when the file keeps none (NO_FREELIST) */
  freelist: number | undefined;
  /** the high water mark: pages 0 … pgid-1 are the database */
  pgid: number;
  txid: bigint;
  checksum: bigint;
}

/** A malformed or damaged bbolt file: what and where, never a crash. */
export class BoltError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BoltError';
  }
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

/** FNV-1a, 64 bits (Go's hash/fnv New64a): bbolt's meta checksum. */
export function fnv64a(b: Buffer): bigint {
  let h = FNV_OFFSET;
  for (let i = 0; i < b.length; i++) h = ((h ^ BigInt(b[i])) * FNV_PRIME) & MASK64;
  return h;
}

/** A u64 as a number, or Infinity when it is no safe integer (so any bounds check fails). */
export function u64(b: Buffer, at: number): number {
  const hi = b.readUInt32LE(at + 4);
  if (hi >= 0x200000) return Infinity;
  return hi * 2 ** 32 + b.readUInt32LE(at);
}

/** The meta at byte `at` (a meta page's offset + PAGE_HEADER). */
export function readMeta(b: Buffer, at: number): Meta {
  const freelist = b.readBigUInt64LE(at + 32);
  return {
    magic: b.readUInt32LE(at),
    version: b.readUInt32LE(at + 4),
    pageSize: b.readUInt32LE(at + 8),
    flags: b.readUInt32LE(at + 12),
    root: u64(b, at + 16),
    sequence: b.readBigUInt64LE(at + 24),
    freelist: freelist === NO_FREELIST ? undefined : u64(b, at + 32),
    pgid: u64(b, at + 40),
    txid: b.readBigUInt64LE(at + 48),
    checksum: b.readBigUInt64LE(at + 56),
  };
}

/** bbolt's meta.validate: undefined when valid, else bbolt's error text. */
export function metaProblem(b: Buffer, at: number): string | undefined {
  const m = readMeta(b, at);
  if (m.magic !== MAGIC) return 'invalid database';
  if (m.version !== VERSION) return 'version mismatch';
  if (m.checksum !== 0n && m.checksum !== fnv64a(b.subarray(at, at + META_CHECKSUMMED))) return 'checksum error';
  return undefined;
}

/** Writes a meta page (header and meta, its checksum computed) into page, a zeroed page-sized buffer. */
export function writeMetaPage(page: Buffer, id: number, m: { pageSize: number; root: number; freelist: number | undefined; pgid: number; txid: bigint }): void {
  page.writeBigUInt64LE(BigInt(id), 0);
  page.writeUInt16LE(FLAG_META, 8);
  const at = PAGE_HEADER;
  page.writeUInt32LE(MAGIC, at);
  page.writeUInt32LE(VERSION, at + 4);
  page.writeUInt32LE(m.pageSize, at + 8);
  page.writeUInt32LE(0, at + 12);
  page.writeBigUInt64LE(BigInt(m.root), at + 16);
  page.writeBigUInt64LE(0n, at + 24);
  page.writeBigUInt64LE(m.freelist === undefined ? NO_FREELIST : BigInt(m.freelist), at + 32);
  page.writeBigUInt64LE(BigInt(m.pgid), at + 40);
  page.writeBigUInt64LE(m.txid, at + 48);
  page.writeBigUInt64LE(fnv64a(page.subarray(at, at + META_CHECKSUMMED)), at + 56);
}

/** bbolt's page.typ(): how its errors name a page's type. */
export function pageType(flags: number): string {
  if (flags & FLAG_BRANCH) return 'branch';
  if (flags & FLAG_LEAF) return 'leaf';
  if (flags & FLAG_META) return 'meta';
  if (flags & FLAG_FREELIST) return 'freelist';
  return `unknown<${flags.toString(16).padStart(2, '0')}>`;
}
