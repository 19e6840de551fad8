/**
 * A reader of bbolt files (etcd's backend, and the snapshots `etcdctl snapshot save` writes of it), page by page
 * with positional reads: memory is a page per level of the tree being walked (and a value's overflow pages), so a
 * file of any size is read in a few pages of heap. Everything read is checked against the file — page numbers
 * within the high water mark and the file, the page's own number in its header, its type, element bounds, keys in
 * order, a page visited once per walk, the depth of a tree — so a damaged file gives a BoltError saying where, never
 * a crash or a loop. Layout: page.ts.
 */
import * as fs from 'node:fs';
import {
  BoltError, BRANCH_ELEMENT, BUCKET_HEADER, DEFAULT_PAGE_SIZE, FLAG_BRANCH, FLAG_BUCKET, FLAG_FREELIST, FLAG_LEAF,
  LEAF_ELEMENT, Meta, PAGE_HEADER, metaProblem, pageType, readMeta, u64,
} from './page';

/** An entry of a bucket: a key and its value, or a nested bucket (value: its header, and inline page if any). */
export interface BoltEntry {
  key: Buffer;
  value: Buffer;
  bucket: boolean;
}

/** No valid tree is this deep (a page holds at least two keys, so 64 levels would be 2^64 keys). */
const MAX_DEPTH = 64;
/** The most a single page and its overflow may take here (bbolt's values go to 2 GiB; etcd's requests to 1.5 MiB by default). */
const MAX_PAGE_SPAN = 256 << 20;

interface Elements {
  page: Buffer;
  /** the page number, for errors (0 for an inline page) */
  pgid: number;
  count: number;
  leaf: boolean;
}

export class BoltReader {
  readonly pageSize: number;
  readonly meta: Meta;
  /** Pages 0 … pgid-1, in bytes (etcd's tx.Size(): the database's size as snapshot status reports it). */
  readonly dbSize: number;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly file: string,
    /** bytes of the file that are the database (a snapshot's SHA-256 trailer left out) */
    readonly fileSize: number,
  ) {
    const head = Buffer.alloc(DEFAULT_PAGE_SIZE);
    const n = fs.readSync(fd, head, 0, Math.min(head.length, fileSize), 0);
    if (n < PAGE_HEADER + 64) throw new BoltError(`invalid database: file size ${fileSize} too small`);
    // As bbolt's Open: the first meta page gives the page size; when it does not validate, the OS page size.
    const p0 = metaProblem(head, PAGE_HEADER);
    const pageSize = p0 === undefined ? readMeta(head, PAGE_HEADER).pageSize : DEFAULT_PAGE_SIZE;
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new BoltError(`invalid database: page size ${pageSize}`);
    this.pageSize = pageSize;
    if (fileSize < pageSize * 2) throw new BoltError(`invalid database: file size ${fileSize} too small`);
    const m1 = Buffer.alloc(PAGE_HEADER + 64);
    fs.readSync(fd, m1, 0, m1.length, pageSize);
    const p1 = metaProblem(m1, PAGE_HEADER);
    // The meta with the higher txid that validates (bbolt's db.meta()).
    const metas = [p0 === undefined ? readMeta(head, PAGE_HEADER) : undefined, p1 === undefined ? readMeta(m1, PAGE_HEADER) : undefined].filter((m): m is Meta => m !== undefined);
    if (!metas.length) throw new BoltError(p0 ?? p1 ?? 'invalid database');
    metas.sort((a, b) => (a.txid > b.txid ? -1 : a.txid < b.txid ? 1 : 0));
    const meta = metas.find((m) => m.pageSize === pageSize);
    if (!meta) throw new BoltError(`invalid database: meta pages disagree on the page size`);
    this.meta = meta;
    if (meta.pgid < 2 || !Number.isSafeInteger(meta.pgid)) throw new BoltError(`invalid database: high water mark ${meta.pgid}`);
    this.dbSize = meta.pgid * pageSize;
    if (this.dbSize > fileSize) throw new BoltError(`file truncated: the database takes ${meta.pgid} pages of ${pageSize} bytes (${this.dbSize}), the file has ${fileSize} bytes`);
    if (meta.root < 2 || meta.root >= meta.pgid) throw new BoltError(`invalid database: root page ${meta.root} out of bounds (high water mark ${meta.pgid})`);
  }

  /** Opens file; size: how many of its bytes are the database (default: all of them). */
  static open(file: string, size?: number): BoltReader {
    const fd = fs.openSync(file, 'r');
    try {
      return new BoltReader(fd, file, size ?? fs.fstatSync(fd).size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }

  /**
   * The page pgid with its overflow pages, checked to be within the database and to carry its own number. Read
   * into spare (a buffer of a page no longer needed) when it is large enough, else into new memory.
   */
  page(pgid: number, spare?: Buffer): Buffer {
    const ps = this.pageSize;
    if (!(pgid >= 2 && pgid < this.meta.pgid)) throw new BoltError(`page ${pgid}: out of bounds (high water mark ${this.meta.pgid})`);
    // Memory of its own (never Node's shared pool): entries() may hand it on whole to the next page.
    const head = spare && spare.length >= ps ? spare : Buffer.allocUnsafeSlow(ps);
    if (fs.readSync(this.fd, head, 0, ps, pgid * ps) !== ps) throw new BoltError(`page ${pgid}: file truncated`);
    const id = u64(head, 0);
    if (id !== pgid) throw new BoltError(`page ${pgid}: header names page ${id} (damaged page)`);
    const overflow = head.readUInt32LE(12);
    if (overflow === 0) return head.length === ps ? head : head.subarray(0, ps);
    if (pgid + overflow >= this.meta.pgid) throw new BoltError(`page ${pgid}: its ${overflow} overflow pages go past the high water mark ${this.meta.pgid}`);
    const span = (overflow + 1) * ps;
    if (span > MAX_PAGE_SPAN) throw new BoltError(`page ${pgid}: ${overflow} overflow pages, more than this reader takes`);
    let whole = head;
    if (head.length < span) {
      whole = Buffer.allocUnsafeSlow(span);
      head.copy(whole, 0, 0, ps);
    }
    if (fs.readSync(this.fd, whole, ps, span - ps, (pgid + 1) * ps) !== span - ps) throw new BoltError(`page ${pgid}: file truncated`);
    return whole.length === span ? whole : whole.subarray(0, span);
  }

  /** The file's root bucket: its entries are the top-level buckets. */
  root(): BoltBucket {
    return new BoltBucket(this, this.meta.root, undefined, 'root');
  }

  /** A top-level bucket by name, or undefined (also when the name is a key, not a bucket). */
  bucket(name: string | Buffer): BoltBucket | undefined {
    return this.root().bucket(name);
  }

  /** The page numbers in the freelist (none when the file keeps no freelist, as etcd's backend). */
  freePages(): number[] {
    if (this.meta.freelist === undefined) return [];
    const id = this.meta.freelist;
    const p = this.page(id);
    const flags = p.readUInt16LE(8);
    if (!(flags & FLAG_FREELIST)) throw new BoltError(`invalid freelist page: ${id}, page type is ${pageType(flags)}`);
    let count = p.readUInt16LE(10);
    let at = PAGE_HEADER;
    if (count === 0xffff) {
      count = u64(p, at);
      at += 8;
    }
    if (at + count * 8 > p.length) throw new BoltError(`freelist page ${id}: ${count} page ids do not fit in it`);
    const ids: number[] = new Array(count);
    for (let i = 0; i < count; i++) ids[i] = u64(p, at + i * 8);
    return ids.sort((a, b) => a - b);
  }

  /**
   * bbolt's Tx.Check: every page below the high water mark is either reachable once (meta, freelist, a bucket's
   * pages) or free; reachable pages are branches or leaves. Returns bbolt's error texts (none: consistent).
   */
  check(): string[] {
    const errors: string[] = [];
    const n = this.meta.pgid;
    const reachable = new Uint8Array(n);
    const freed = new Uint8Array(n);
    let free: number[] = [];
    try {
      free = this.freePages();
    } catch (err) {
      errors.push((err as Error).message);
    }
    for (const id of free) {
      if (id < n && freed[id]) errors.push(`page ${id}: already freed`);
      if (id < n) freed[id] = 1;
    }
    reachable[0] = reachable[1] = 1;
    if (this.meta.freelist !== undefined && this.meta.freelist < n) {
      let overflow = 0;
      try {
        overflow = this.page(this.meta.freelist).readUInt32LE(12);
      } catch {
        // reported above
      }
      for (let i = 0; i <= overflow && this.meta.freelist + i < n; i++) reachable[this.meta.freelist + i] = 1;
    }
    const checkBucket = (root: number, depth: number): void => {
      if (depth > MAX_DEPTH) {
        errors.push(`bucket at page ${root}: nested too deep`);
        return;
      }
      const walk = (pgid: number, level: number): void => {
        if (pgid >= n) {
          errors.push(`page ${pgid}: out of bounds: ${n}`);
          return;
        }
        if (level > MAX_DEPTH) {
          errors.push(`page ${pgid}: tree too deep`);
          return;
        }
        let p: Buffer;
        try {
          p = this.page(pgid);
        } catch (err) {
          errors.push((err as Error).message);
          return;
        }
        const overflow = p.readUInt32LE(12);
        let again = false;
        for (let i = 0; i <= overflow && pgid + i < n; i++) {
          if (reachable[pgid + i]) {
            errors.push(`page ${pgid + i}: multiple references`);
            again = true;
          }
          reachable[pgid + i] = 1;
        }
        if (again) return; // walked already (or a cycle)
        const flags = p.readUInt16LE(8);
        if (freed[pgid]) errors.push(`page ${pgid}: reachable freed`);
        else if (!(flags & (FLAG_BRANCH | FLAG_LEAF))) {
          errors.push(`page ${pgid}: invalid type: ${pageType(flags)}`);
          return;
        }
        let els: Elements;
        try {
          els = elementsOf(p, pgid, p.length);
        } catch (err) {
          errors.push((err as Error).message);
          return;
        }
        for (let i = 0; i < els.count; i++) {
          if (!els.leaf) walk(branchChild(els, i), level + 1);
          else if (leafFlags(els, i) & FLAG_BUCKET) {
            const v = leafValue(els, i);
            if (v.length < BUCKET_HEADER) errors.push(`page ${pgid}: bucket header of element ${i} cut short`);
            else if (u64(v, 0) !== 0) checkBucket(u64(v, 0), depth + 1);
            else checkInline(v, depth + 1);
          }
        }
      };
      walk(root, 0);
    };
    // An inline bucket has no pages of its own, but may hold nested buckets that do (bbolt never writes that; checked anyway).
    const checkInline = (v: Buffer, depth: number): void => {
      try {
        const els = inlineElements(v);
        for (let i = 0; i < els.count; i++) {
          if (!(leafFlags(els, i) & FLAG_BUCKET)) continue;
          const c = leafValue(els, i);
          if (c.length >= BUCKET_HEADER && u64(c, 0) !== 0) checkBucket(u64(c, 0), depth + 1);
        }
      } catch (err) {
        errors.push((err as Error).message);
      }
    };
    checkBucket(this.meta.root, 0);
    // Without a freelist (etcd's backend), bbolt takes every unreachable page as free.
    if (this.meta.freelist !== undefined) {
      for (let i = 0; i < n; i++) if (!reachable[i] && !freed[i]) errors.push(`page ${i}: unreachable unfreed`);
    }
    return errors;
  }
}

/** A bucket of a file: its entries in key order, and its nested buckets. */
export class BoltBucket {
  constructor(
    private readonly reader: BoltReader,
    /** its root page, or 0 for an inline bucket */
    readonly rootPage: number,
    /** the inline bucket's value (header and page) */
    private readonly inline: Buffer | undefined,
    private readonly name: string,
  ) {}

  /** Whether it is an inline bucket (its only leaf inside its parent's value). */
  get isInline(): boolean {
    return this.rootPage === 0;
  }

  /**
   * Its entries in key order. Keys and values are views of the page read (valid as long as they are held; copy one
   * to keep it while the page's other bytes go); transient: only until the next entry is read, as the memory of a
   * leaf page walked is reused for the next one (a walk that copies what it keeps, the same few buffers whatever the
   * size). Each page is visited once per walk and keys must ascend, so a damaged tree ends in a BoltError.
   */
  *entries(transient = false): Generator<BoltEntry> {
    let prev: Buffer | undefined;
    const ordered = (key: Buffer, where: string): void => {
      if (prev && Buffer.compare(prev, key) >= 0) throw new BoltError(`bucket ${this.name}: ${where}: keys out of order`);
      prev = key;
    };
    /** the memory of the last leaf page left, for the next one read (transient) */
    let spare: Buffer | undefined;
    if (this.inline) {
      const els = inlineElements(this.inline);
      for (let i = 0; i < els.count; i++) {
        const key = leafKey(els, i);
        ordered(key, 'inline page');
        yield { key, value: leafValue(els, i), bucket: (leafFlags(els, i) & FLAG_BUCKET) !== 0 };
      }
      return;
    }
    const r = this.reader;
    const visited = new Uint8Array(r.meta.pgid);
    // An explicit stack of (page's elements, next index): one page per level in memory.
    const stack: { els: Elements; i: number }[] = [];
    const push = (pgid: number): void => {
      if (stack.length >= MAX_DEPTH) throw new BoltError(`bucket ${this.name}: page ${pgid}: tree too deep`);
      if (pgid < visited.length && visited[pgid]) throw new BoltError(`bucket ${this.name}: page ${pgid}: reached twice (a cycle or a shared page)`);
      const p = r.page(pgid, spare);
      if (p.buffer === spare?.buffer) spare = undefined;
      visited[pgid] = 1;
      const flags = p.readUInt16LE(8);
      if (!(flags & (FLAG_BRANCH | FLAG_LEAF))) throw new BoltError(`bucket ${this.name}: page ${pgid}: invalid type: ${pageType(flags)}, want a branch or a leaf`);
      const els = elementsOf(p, pgid, p.length);
      if (!els.leaf && els.count === 0) throw new BoltError(`bucket ${this.name}: page ${pgid}: branch page without elements`);
      stack.push({ els, i: 0 });
    };
    push(this.rootPage);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.i >= top.els.count) {
        stack.pop();
        if (transient && top.els.leaf) {
          // Its bytes go to the next leaf: the last key compared to is kept apart.
          if (prev) prev = Buffer.from(prev);
          const b = top.els.page;
          const whole = Buffer.from(b.buffer, b.byteOffset, b.buffer.byteLength - b.byteOffset);
          if (!spare || whole.length > spare.length) spare = whole;
        }
        continue;
      }
      const i = top.i++;
      if (!top.els.leaf) {
        push(branchChild(top.els, i));
        continue;
      }
      const key = leafKey(top.els, i);
      ordered(key, `page ${top.els.pgid}`);
      yield { key, value: leafValue(top.els, i), bucket: (leafFlags(top.els, i) & FLAG_BUCKET) !== 0 };
    }
  }

  /** A nested bucket by name, or undefined. */
  bucket(name: string | Buffer): BoltBucket | undefined {
    const want = typeof name === 'string' ? Buffer.from(name) : name;
    for (const e of this.entries()) {
      const c = Buffer.compare(e.key, want);
      if (c < 0) continue;
      if (c > 0 || !e.bucket) return undefined;
      return this.open(e);
    }
    return undefined;
  }

  /** The nested bucket an entry (with bucket set) is. */
  open(e: BoltEntry): BoltBucket {
    const name = e.key.toString('latin1');
    if (!e.bucket) throw new BoltError(`bucket ${this.name}: ${name} is a key, not a bucket`);
    if (e.value.length < BUCKET_HEADER) throw new BoltError(`bucket ${this.name}: the header of bucket ${name} is cut short`);
    const root = u64(e.value, 0);
    if (root !== 0) return new BoltBucket(this.reader, root, undefined, name);
    return new BoltBucket(this.reader, 0, Buffer.from(e.value), name);
  }
}

/** The elements of a branch or leaf page of span bytes, their bounds checked. */
function elementsOf(page: Buffer, pgid: number, span: number): Elements {
  const flags = page.readUInt16LE(8);
  const count = page.readUInt16LE(10);
  const leaf = (flags & FLAG_LEAF) !== 0;
  const size = leaf ? LEAF_ELEMENT : BRANCH_ELEMENT;
  if (PAGE_HEADER + count * size > span) throw new BoltError(`page ${pgid}: ${count} elements do not fit in it`);
  for (let i = 0; i < count; i++) {
    const at = PAGE_HEADER + i * size;
    const pos = page.readUInt32LE(at + (leaf ? 4 : 0));
    const ksize = page.readUInt32LE(at + (leaf ? 8 : 4));
    const vsize = leaf ? page.readUInt32LE(at + 12) : 0;
    if (at + pos + ksize + vsize > span) throw new BoltError(`page ${pgid}: element ${i} goes past the end of the page`);
    if (ksize === 0) throw new BoltError(`page ${pgid}: element ${i} has an empty key`);
  }
  return { page: page.subarray(0, span), pgid, count, leaf };
}

/** An inline bucket's page (after its 16-byte header in the value). */
function inlineElements(value: Buffer): Elements {
  if (value.length < BUCKET_HEADER + PAGE_HEADER) throw new BoltError('inline bucket cut short');
  const page = value.subarray(BUCKET_HEADER);
  const flags = page.readUInt16LE(8);
  if (!(flags & FLAG_LEAF)) throw new BoltError(`inline bucket: invalid page type: ${pageType(flags)}, want a leaf`);
  return elementsOf(page, 0, page.length);
}

function leafFlags(e: Elements, i: number): number {
  return e.page.readUInt32LE(PAGE_HEADER + i * LEAF_ELEMENT);
}

function leafKey(e: Elements, i: number): Buffer {
  const at = PAGE_HEADER + i * LEAF_ELEMENT;
  const start = at + e.page.readUInt32LE(at + 4);
  return e.page.subarray(start, start + e.page.readUInt32LE(at + 8));
}

function leafValue(e: Elements, i: number): Buffer {
  const at = PAGE_HEADER + i * LEAF_ELEMENT;
  const start = at + e.page.readUInt32LE(at + 4) + e.page.readUInt32LE(at + 8);
  return e.page.subarray(start, start + e.page.readUInt32LE(at + 12));
}

function branchChild(e: Elements, i: number): number {
  return u64(e.page, PAGE_HEADER + i * BRANCH_ELEMENT + 8);
}
