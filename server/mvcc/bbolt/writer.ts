/**
 * A writer of bbolt files: a compact tree of fresh pages, from entries given in key order, bucket by bucket. Leaves
 * are filled as they come and made, each bucket's branch levels are built over its leaves when it ends (memory: the
 * first key of each of its leaves), a bucket small enough is inlined into its parent's leaf as bbolt does (one leaf,
 * no nested bucket, at most a quarter page), and at the end an empty freelist page completes a file every page of
 * which is reachable. Pages are numbered in the order they are made.
 *
 * The meta pages come first in the file but name the root and the high water mark, known only at the end; so a file
 * is made in two passes over the same entries: a layout pass (BoltWriter.layout: pages counted, none made) gives
 * them, then a stream pass (BoltWriter.stream) makes the file's bytes in order from its first, handed out as runs of
 * whole pages (take()) while it goes: to send, hash or write them as they come, the file never whole in memory.
 * Layout: page.ts.
 */
import * as fs from 'node:fs';
import {
  BoltError, BRANCH_ELEMENT, BUCKET_HEADER, FLAG_BRANCH, FLAG_BUCKET, FLAG_FREELIST, FLAG_LEAF, LEAF_ELEMENT,
  PAGE_HEADER, writeMetaPage,
} from './page';

/** bbolt's MaxKeySize. */
const MAX_KEY = 32768;
/** The size of the buffers pages are made in, and so of the runs handed out (a larger page gets one of its own). */
const RUN_BYTES = 1 << 20;

interface Pending {
  key: Buffer;
  /** undefined in a layout pass */
  value: Buffer | undefined;
  size: number;
  flags: number;
}

/** What a file's meta pages say of it, from its layout pass. */
export interface BoltLayout {
  pageSize: number;
  /** the root bucket's page */
  root: number;
  freelist: number;
  /** the high water mark: the file is pgid pages */
  pgid: number;
}

export class BoltWriter {
  /** The next page number to hand out (0, 1: meta pages). */
  private next = 2;
  /** the buffer pages are being made in, how much of it is used, and where its run not yet handed out starts */
  private arena: Buffer | undefined;
  private used = 0;
  private runStart = 0;
  private runs: Buffer[] = [];
  private runsBytes = 0;
  private finished = false;
  readonly root: BucketWriter;

  private constructor(
    readonly pageSize: number,
    /** the layout the stream pass must follow; undefined: this is the layout pass */
    private readonly expected: BoltLayout | undefined,
    private readonly txid: bigint,
  ) {
    this.root = new BucketWriter(this, undefined, Buffer.alloc(0));
  }

  /** A layout pass: the same calls as the stream pass will make, counting pages without making them. */
  static layout(pageSize = 4096): BoltWriter {
    return new BoltWriter(pageSize, undefined, 0n);
  }

  /**
   * The stream pass of a file whose layout pass gave `layout`: the meta pages (txid, and txid - 1 for the second, as
   * bbolt's Tx.WriteTo does) first, then every page as it is made.
   */
  static stream(layout: BoltLayout, txid = 2n): BoltWriter {
    const w = new BoltWriter(layout.pageSize, layout, txid);
    const metas = w.alloc(2 * layout.pageSize)!;
    for (const id of [0, 1]) {
      writeMetaPage(metas.subarray(id * layout.pageSize, (id + 1) * layout.pageSize), id, { ...layout, txid: txid - BigInt(id) });
    }
    return w;
  }

  /** Whether this is a layout pass (no page is made). */
  get layoutOnly(): boolean {
    return this.expected === undefined;
  }

  /** Bytes of pages made and not yet taken in full runs. */
  get pending(): number {
    return this.runsBytes;
  }

  /** The runs of pages made since the last take(), in file order (each a run of whole pages). */
  take(): Buffer[] {
    const runs = this.runs;
    this.runs = [];
    this.runsBytes = 0;
    return runs;
  }

  /** @internal Numbers a page of `bytes` bytes (whole pages: the overflow as bbolt counts it); its zeroed buffer, unless a layout pass. */
  newPage(bytes: number): { id: number; page: Buffer | undefined } {
    const pages = Math.ceil(bytes / this.pageSize);
    const id = this.next;
    this.next += pages;
    const page = this.alloc(pages * this.pageSize);
    if (page) {
      page.writeBigUInt64LE(BigInt(id), 0);
      if (pages > 1) page.writeUInt32LE(pages - 1, 12);
    }
    return { id, page };
  }

  /** Zeroed room for `size` bytes of pages after those made so far (undefined in a layout pass). */
  private alloc(size: number): Buffer | undefined {
    if (this.layoutOnly) return undefined;
    if (!this.arena || this.used + size > this.arena.length) {
      this.seal();
      this.arena = Buffer.alloc(Math.max(RUN_BYTES, size));
      this.used = this.runStart = 0;
    }
    const page = this.arena.subarray(this.used, this.used + size);
    this.used += size;
    if (this.arena.length - this.used < this.pageSize) this.seal();
    return page;
  }

  /** Hands out the pages made in the arena since its last run. */
  private seal(): void {
    if (!this.arena) return;
    if (this.used > this.runStart) {
      this.runs.push(this.arena.subarray(this.runStart, this.used));
      this.runsBytes += this.used - this.runStart;
    }
    this.runStart = this.used;
    if (this.arena.length - this.used < this.pageSize) this.arena = undefined;
  }

  /**
   * Ends the root bucket and makes the freelist page: the file is complete (its last pages are handed out by take()).
   * Returns its layout; a stream pass that made other pages than its layout pass counted throws (its entries were
   * not the same).
   */
  finish(): BoltLayout {
    if (this.finished) throw new Error('bbolt writer: finished already');
    const root = this.root.endRoot();
    const { id: freelist, page: free } = this.newPage(PAGE_HEADER);
    free?.writeUInt16LE(FLAG_FREELIST, 8);
    this.finished = true;
    this.seal();
    const got: BoltLayout = { pageSize: this.pageSize, root, freelist, pgid: this.next };
    const want = this.expected;
    if (want && (want.root !== got.root || want.freelist !== got.freelist || want.pgid !== got.pgid)) {
      throw new Error(`bbolt writer: the pages made (root ${got.root}, ${got.pgid} pages) are not those of the layout pass (root ${want.root}, ${want.pgid} pages)`);
    }
    return got;
  }
}

/**
 * Writes a bbolt file of the entries `fill` gives (called twice, for the layout and the stream pass: it must give the
 * same entries both times); a failure leaves no file. Returns the file's size in bytes (pages × page size).
 */
export async function writeBoltFile(file: string, fill: (root: BucketWriter, w: BoltWriter) => void | Promise<void>, pageSize = 4096): Promise<number> {
  const layout = BoltWriter.layout(pageSize);
  await fill(layout.root, layout);
  const w = BoltWriter.stream(layout.finish());
  const fh = await fs.promises.open(file, 'w', 0o600);
  try {
    let at = 0;
    const flush = async (): Promise<void> => {
      const runs = w.take();
      if (!runs.length) return;
      const { bytesWritten } = await fh.writev(runs, at);
      at += bytesWritten;
    };
    await fill(w.root, w);
    const { pgid } = w.finish();
    await flush();
    if (at !== pgid * pageSize) throw new Error(`bbolt writer: ${at} bytes written of ${pgid * pageSize}`);
    await fh.sync();
    await fh.close();
    return at;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(file, { force: true });
    throw err;
  }
}

/**
 * A bucket being written: put() its entries in ascending key order, bucket() its nested buckets (in the same order
 * among its keys), end() it once they are all given.
 */
export class BucketWriter {
  /** the leaf being filled */
  private leaf: Pending[] = [];
  private leafSize = PAGE_HEADER;
  /** the leaves made: their first keys and page numbers (the bottom branch level) */
  private children: { key: Buffer; pgid: number }[] = [];
  private hasBuckets = false;
  private last: Buffer | undefined;
  private open: BucketWriter | undefined;
  private ended = false;

  constructor(
    private readonly w: BoltWriter,
    private readonly parent: BucketWriter | undefined,
    private readonly name: Buffer,
  ) {}

  /**
   * Adds a key and its value (both copied when the leaf holding them is made: they must not change until the bucket
   * has ended).
   */
  put(key: Buffer, value: Buffer): void {
    this.ready(key);
    if (this.alone(key, value.length)) this.writeAlone(key, value.length, (dst, at) => value.copy(dst, at));
    else this.add(key, value, value.length, 0);
  }

  /**
   * Adds a key (kept as put()'s) and a value of `size` bytes that `write` puts at dst[at…] (called at once, or never
   * in a layout pass): a value bigger than a page is made straight into its leaf's page, with no copy of its own.
   */
  putWith(key: Buffer, size: number, write: (dst: Buffer, at: number) => void): void {
    this.ready(key);
    if (this.alone(key, size)) return this.writeAlone(key, size, write);
    let value: Buffer | undefined;
    if (!this.w.layoutOnly) {
      value = Buffer.allocUnsafe(size);
      write(value, 0);
    }
    this.add(key, value, size, 0);
  }

  /** Starts a nested bucket; this bucket takes nothing else until it has ended. */
  bucket(name: Buffer): BucketWriter {
    this.ready(name);
    const b = new BucketWriter(this.w, this, name);
    this.open = b;
    return b;
  }

  /** Ends the bucket: its value (inline, or the header naming its root page) goes into its parent. */
  end(): void {
    if (!this.parent) throw new Error('bbolt writer: the root bucket ends with finish()');
    if (this.ended) throw new Error('bbolt writer: bucket ended twice');
    if (this.open) throw new Error('bbolt writer: a nested bucket is still open');
    this.ended = true;
    let value: Buffer | undefined;
    let size: number;
    if (!this.children.length && !this.hasBuckets && this.leafSize <= this.w.pageSize / 4) {
      // Inline: the header (root 0, sequence 0) and the leaf as a page of its own size.
      size = BUCKET_HEADER + this.leafSize;
      if (!this.w.layoutOnly) {
        value = Buffer.alloc(size);
        writeLeaf(value.subarray(BUCKET_HEADER), this.leaf);
      }
    } else {
      size = BUCKET_HEADER;
      value = Buffer.alloc(BUCKET_HEADER);
      value.writeBigUInt64LE(BigInt(this.endTree()), 0);
    }
    const parent = this.parent;
    parent.open = undefined;
    parent.hasBuckets = true;
    parent.add(this.name, value, size, FLAG_BUCKET);
  }

  /** @internal ends the root bucket: its root page. */
  endRoot(): number {
    if (this.open) throw new Error('bbolt writer: a bucket is still open');
    this.ended = true;
    return this.endTree();
  }

  private ready(key: Buffer): void {
    if (this.ended) throw new Error('bbolt writer: bucket ended');
    if (this.open) throw new Error('bbolt writer: a nested bucket is still open');
    if (key.length === 0) throw new BoltError('bbolt writer: empty key');
    if (key.length > MAX_KEY) throw new BoltError(`bbolt writer: key of ${key.length} bytes is too large`);
    if (this.last && Buffer.compare(this.last, key) >= 0) throw new BoltError('bbolt writer: keys out of order');
    this.last = key;
  }

  private add(key: Buffer, value: Buffer | undefined, size: number, flags: number): void {
    const total = LEAF_ELEMENT + key.length + size;
    if (this.leaf.length && this.leafSize + total > this.w.pageSize) this.writeLeafPage();
    this.leaf.push({ key, value, size, flags });
    this.leafSize += total;
  }

  /**
   * Whether an entry is bigger than a page with its element: then it is a leaf of its own (the leaf before it is
   * full, as is its own, so the entry after it starts another), as the leaf filling would make it.
   */
  private alone(key: Buffer, size: number): boolean {
    return PAGE_HEADER + LEAF_ELEMENT + key.length + size > this.w.pageSize;
  }

  /** Makes an entry's leaf of its own (after the leaf being filled), its value put straight into the page. */
  private writeAlone(key: Buffer, size: number, write: (dst: Buffer, at: number) => void): void {
    if (this.leaf.length) this.writeLeafPage();
    const { id, page } = this.w.newPage(PAGE_HEADER + LEAF_ELEMENT + key.length + size);
    if (page) {
      page.writeUInt16LE(FLAG_LEAF, 8);
      page.writeUInt16LE(1, 10);
      writeElement(page, PAGE_HEADER, PAGE_HEADER + LEAF_ELEMENT, 0, key, size);
      write(page, PAGE_HEADER + LEAF_ELEMENT + key.length);
    }
    this.children.push({ key: own(key), pgid: id });
  }

  private writeLeafPage(): void {
    const { id, page } = this.w.newPage(this.leafSize);
    if (page) writeLeaf(page, this.leaf);
    this.children.push({ key: own(this.leaf[0].key), pgid: id });
    this.leaf = [];
    this.leafSize = PAGE_HEADER;
  }

  /** Makes the last leaf and the branch levels over the leaves; returns the root page. */
  private endTree(): number {
    if (this.leaf.length || !this.children.length) this.writeLeafPage();
    let level = this.children;
    this.children = [];
    while (level.length > 1) {
      const up: { key: Buffer; pgid: number }[] = [];
      let start = 0;
      let size = PAGE_HEADER;
      const emit = (end: number): void => {
        const els = level.slice(start, end);
        const { id, page } = this.w.newPage(size);
        if (page) writeBranch(page, els);
        up.push({ key: els[0].key, pgid: id });
        start = end;
        size = PAGE_HEADER;
      };
      for (let i = 0; i < level.length; i++) {
        const s = BRANCH_ELEMENT + level[i].key.length;
        if (i > start && size + s > this.w.pageSize) emit(i);
        size += s;
      }
      emit(level.length);
      level = up;
    }
    return level[0].pgid;
  }
}

/**
 * A copy of a key kept for long (a branch key): a buffer of its own, as Buffer.from would copy a small one into a
 * shared 8 KiB slab and keep all of the slab alive with it.
 */
function own(b: Buffer): Buffer {
  const c = Buffer.alloc(b.length);
  b.copy(c);
  return c;
}

/** A leaf element at `at` whose key (copied) and value (size bytes) start at `data`. */
function writeElement(page: Buffer, at: number, data: number, flags: number, key: Buffer, size: number): void {
  page.writeUInt32LE(flags, at);
  page.writeUInt32LE(data - at, at + 4);
  page.writeUInt32LE(key.length, at + 8);
  page.writeUInt32LE(size, at + 12);
  key.copy(page, data);
}

/** A leaf page's elements and data (into page, whose header's id the writer sets). */
function writeLeaf(page: Buffer, items: Pending[]): void {
  page.writeUInt16LE(FLAG_LEAF, 8);
  page.writeUInt16LE(items.length, 10);
  let data = PAGE_HEADER + items.length * LEAF_ELEMENT;
  for (let i = 0; i < items.length; i++) {
    const { key, value, size, flags } = items[i];
    writeElement(page, PAGE_HEADER + i * LEAF_ELEMENT, data, flags, key, size);
    value!.copy(page, data + key.length);
    data += key.length + size;
  }
}

function writeBranch(page: Buffer, items: { key: Buffer; pgid: number }[]): void {
  page.writeUInt16LE(FLAG_BRANCH, 8);
  page.writeUInt16LE(items.length, 10);
  let data = PAGE_HEADER + items.length * BRANCH_ELEMENT;
  for (let i = 0; i < items.length; i++) {
    const at = PAGE_HEADER + i * BRANCH_ELEMENT;
    page.writeUInt32LE(data - at, at);
    page.writeUInt32LE(items[i].key.length, at + 4);
    page.writeBigUInt64LE(BigInt(items[i].pgid), at + 8);
    items[i].key.copy(page, data);
    data += items[i].key.length;
  }
}
