/**
 * A writer of bbolt files: a compact tree of fresh pages, from entries given in key order, bucket by bucket. Leaves
 * are filled as they come and written out, each bucket's branch levels are built over its leaves when it ends
 * (memory: the first key of each of its leaves), a bucket small enough is inlined into its parent's leaf as bbolt
 * does (one leaf, no nested bucket, at most a quarter page), and at the end an empty freelist page and the two meta
 * pages (their checksums, the root, the high water mark) complete a file every page of which is reachable. Pages are
 * numbered in the order they are made and queued; the caller writes the queue out with flush() whenever `pending`
 * says it has grown (positional writes, so the meta pages, made last, go to the start of the file).
 * Layout: page.ts.
 */
import * as fs from 'node:fs';
import {
  BoltError, BRANCH_ELEMENT, BUCKET_HEADER, FLAG_BRANCH, FLAG_BUCKET, FLAG_FREELIST, FLAG_LEAF, LEAF_ELEMENT,
  PAGE_HEADER, writeMetaPage,
} from './page';

/** bbolt's MaxKeySize. */
const MAX_KEY = 32768;

interface Pending {
  key: Buffer;
  value: Buffer;
  flags: number;
}

export class BoltWriter {
  /** The next page number to hand out (0, 1: meta pages). */
  private next = 2;
  private queue: Buffer[] = [];
  private queued = 0;
  /** the page number of the first queued page */
  private queueStart = 2;
  private finished = false;
  readonly root: BucketWriter;

  private constructor(
    private readonly fh: fs.promises.FileHandle,
    readonly pageSize: number,
  ) {
    this.root = new BucketWriter(this, undefined, Buffer.alloc(0));
  }

  /** Creates (or truncates) file for a new database of pages of pageSize bytes. */
  static async create(file: string, pageSize = 4096): Promise<BoltWriter> {
    const fh = await fs.promises.open(file, 'w', 0o600);
    return new BoltWriter(fh, pageSize);
  }

  /** Bytes of pages made and not yet written (call flush() when it grows past a few MiB). */
  get pending(): number {
    return this.queued;
  }

  /** Writes the queued pages to the file. */
  async flush(): Promise<void> {
    if (!this.queue.length) return;
    const bufs = this.queue;
    const at = this.queueStart * this.pageSize;
    this.queue = [];
    this.queueStart = this.next;
    this.queued = 0;
    await this.fh.writev(bufs, at);
  }

  /** Numbers a page of (overflow + 1) pages and queues its bytes. */
  addPage(page: Buffer): number {
    const id = this.next;
    this.next += page.length / this.pageSize;
    page.writeBigUInt64LE(BigInt(id), 0);
    this.queue.push(page);
    this.queued += page.length;
    return id;
  }

  /** A zeroed buffer of the pages that size bytes take. */
  alloc(size: number): Buffer {
    return Buffer.alloc(Math.ceil(size / this.pageSize) * this.pageSize);
  }

  /**
   * Ends the root bucket, writes the freelist and the meta pages (txid, and txid - 1 for the second, as bbolt's
   * Tx.WriteTo does) and closes the file. Returns the database's size in bytes (pages × page size).
   */
  async finish(txid = 2n): Promise<number> {
    if (this.finished) throw new Error('bbolt writer: finished already');
    const root = this.root.endRoot();
    const free = this.alloc(PAGE_HEADER);
    free.writeUInt16LE(FLAG_FREELIST, 8);
    const freelist = this.addPage(free);
    await this.flush();
    const pgid = this.next;
    for (const id of [0, 1]) {
      const meta = Buffer.alloc(this.pageSize);
      writeMetaPage(meta, id, { pageSize: this.pageSize, root, freelist, pgid, txid: txid - BigInt(id) });
      await this.fh.write(meta, 0, meta.length, id * this.pageSize);
    }
    await this.fh.sync();
    await this.fh.close();
    this.finished = true;
    return pgid * this.pageSize;
  }

  /** Closes the file without completing it (after a failure). */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.fh.close().catch(() => undefined);
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
  /** the leaves written: their first keys and page numbers (the bottom branch level) */
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

  /** Adds a key and its value (both copied when the leaf holding them is made). */
  put(key: Buffer, value: Buffer): void {
    this.add(key, value, 0);
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
    let value: Buffer;
    if (!this.children.length && !this.hasBuckets && this.leafSize <= this.w.pageSize / 4) {
      // Inline: the header (root 0, sequence 0) and the leaf as a page of its own size.
      value = Buffer.alloc(BUCKET_HEADER + this.leafSize);
      writeLeaf(value.subarray(BUCKET_HEADER), this.leaf);
    } else {
      value = Buffer.alloc(BUCKET_HEADER);
      value.writeBigUInt64LE(BigInt(this.endTree()), 0);
    }
    const parent = this.parent;
    parent.open = undefined;
    parent.add(this.name, value, FLAG_BUCKET, true);
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
    this.last = own(key);
  }

  private add(key: Buffer, value: Buffer, flags: number, checked = false): void {
    if (!checked) this.ready(key);
    if (flags & FLAG_BUCKET) this.hasBuckets = true;
    const size = LEAF_ELEMENT + key.length + value.length;
    if (this.leaf.length && this.leafSize + size > this.w.pageSize) this.writeLeafPage();
    this.leaf.push({ key, value, flags });
    this.leafSize += size;
  }

  private writeLeafPage(): void {
    const page = this.w.alloc(this.leafSize);
    writeLeaf(page, this.leaf);
    if (page.length > this.w.pageSize) page.writeUInt32LE(page.length / this.w.pageSize - 1, 12);
    this.children.push({ key: own(this.leaf[0].key), pgid: this.w.addPage(page) });
    this.leaf = [];
    this.leafSize = PAGE_HEADER;
  }

  /** Writes the last leaf and the branch levels over the leaves; returns the root page. */
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
        const page = this.w.alloc(size);
        writeBranch(page, els);
        if (page.length > this.w.pageSize) page.writeUInt32LE(page.length / this.w.pageSize - 1, 12);
        up.push({ key: els[0].key, pgid: this.w.addPage(page) });
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

/** A leaf page's elements and data (into page, whose header's id the writer sets). */
function writeLeaf(page: Buffer, items: Pending[]): void {
  page.writeUInt16LE(FLAG_LEAF, 8);
  page.writeUInt16LE(items.length, 10);
  let data = PAGE_HEADER + items.length * LEAF_ELEMENT;
  for (let i = 0; i < items.length; i++) {
    const at = PAGE_HEADER + i * LEAF_ELEMENT;
    const { key, value, flags } = items[i];
    page.writeUInt32LE(flags, at);
    page.writeUInt32LE(data - at, at + 4);
    page.writeUInt32LE(key.length, at + 8);
    page.writeUInt32LE(value.length, at + 12);
    key.copy(page, data);
    value.copy(page, data + key.length);
    data += key.length + value.length;
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
