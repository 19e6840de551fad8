/**
 * The data of a Raft snapshot: each store's state by name, in a versioned container.
 *
 * Layout: [4 bytes SNAPSHOT_MAGIC][u16 BE format version][u16 BE part count] then per part
 * [u16 BE name length][name UTF-8][u48 BE data length][data]. Parts are named by the store they hold:
 * `membership` (the cluster, JSON), `v2store` (the v2 store's save()), `v3` (the v3 backend, next).
 *
 * The first release wrote [u32 BE length][JSON {cluster}][v2 store bytes]: its first byte is that of a JSON length
 * far below 0xE7000000 bytes, never SNAPSHOT_MAGIC's, so it still loads (as `membership` and `v2store`).
 */

export const SNAPSHOT_MAGIC = Buffer.from([0xe7, 0x53, 0x4e, 0x50]); // 0xE7 "SNP"
/** The container's format version this release writes and reads. */
export const SNAPSHOT_FORMAT_VERSION = 1;

/** The names of the parts, as written in snapshots: never rename one. */
export const PART_MEMBERSHIP = 'membership';
export const PART_V2STORE = 'v2store';
export const PART_V3 = 'v3';

export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(`snapshot: ${message}`);
    this.name = 'SnapshotFormatError';
  }
}

/** The container of `parts`; a part may come in chunks (a store encoded in turns), copied once, into the container. */
export function encodeSnapshotData(parts: Map<string, Buffer | Buffer[]>): Buffer {
  const c = new Container(parts);
  c.copy(Infinity);
  return c.buf;
}

/**
 * encodeSnapshotData over turns of the event loop, copying for about `sliceMs` at a time: a large store's data is
 * tens of MB, whose copy (and the page faults of the new buffer) held the loop 10-100 ms at once.
 */
export function encodeSnapshotDataInTurns(parts: Map<string, Buffer | Buffer[]>, sliceMs = 4): Promise<Buffer> {
  const c = new Container(parts);
  return new Promise((resolve) => {
    const slice = () => (c.copy(performance.now() + sliceMs) ? resolve(c.buf) : setImmediate(slice));
    slice();
  });
}

/** A container being filled: the header of each part, then its data, chunk by chunk. */
class Container {
  readonly buf: Buffer;
  private readonly names: Buffer[];
  private readonly datas: Buffer[][];
  private readonly lengths: number[];
  private part = 0;
  private chunk = -1;
  private o = 8;

  constructor(parts: Map<string, Buffer | Buffer[]>) {
    this.names = [...parts.keys()].map((n) => Buffer.from(n, 'utf8'));
    this.datas = [...parts.values()].map((d) => (Array.isArray(d) ? d : [d]));
    this.lengths = this.datas.map((chunks) => chunks.reduce((n, c) => n + c.length, 0));
    let size = 4 + 2 + 2;
    for (let i = 0; i < this.names.length; i++) size += 2 + this.names[i].length + 6 + this.lengths[i];
    this.buf = Buffer.allocUnsafe(size);
    SNAPSHOT_MAGIC.copy(this.buf, 0);
    this.buf.writeUInt16BE(SNAPSHOT_FORMAT_VERSION, 4);
    this.buf.writeUInt16BE(parts.size, 6);
  }

  /** Copies until performance.now() passes `deadline` (checked after each chunk); true once the container is full. */
  copy(deadline: number): boolean {
    const buf = this.buf;
    for (; this.part < this.names.length; this.part++, this.chunk = -1) {
      const i = this.part;
      if (this.chunk === -1) {
        buf.writeUInt16BE(this.names[i].length, this.o);
        this.names[i].copy(buf, this.o + 2);
        this.o += 2 + this.names[i].length;
        buf.writeUIntBE(this.lengths[i], this.o, 6);
        this.o += 6;
        this.chunk = 0;
      }
      const chunks = this.datas[i];
      while (this.chunk < chunks.length) {
        this.o += chunks[this.chunk++].copy(buf, this.o);
        if (performance.now() > deadline && (this.chunk < chunks.length || this.part + 1 < this.names.length)) return false;
      }
    }
    return true;
  }
}

/**
 * The parts of a snapshot. A part whose name is not in `known` is an error (a newer release wrote it: dropping it
 * would lose that store's state), as is a format version this release does not read.
 */
export function decodeSnapshotData(data: Uint8Array, known: ReadonlySet<string>): Map<string, Buffer> {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const parts = new Map<string, Buffer>();
  if (buf.length >= 4 && buf.subarray(0, 4).equals(SNAPSHOT_MAGIC)) {
    if (buf.length < 8) throw new SnapshotFormatError('truncated header');
    const version = buf.readUInt16BE(4);
    if (version !== SNAPSHOT_FORMAT_VERSION) throw new SnapshotFormatError(`format version ${version} is not known to this release (it reads ${SNAPSHOT_FORMAT_VERSION})`);
    const count = buf.readUInt16BE(6);
    let o = 8;
    for (let i = 0; i < count; i++) {
      if (o + 2 > buf.length) throw new SnapshotFormatError('truncated part name');
      const nlen = buf.readUInt16BE(o);
      if (o + 2 + nlen + 6 > buf.length) throw new SnapshotFormatError('truncated part header');
      const name = buf.toString('utf8', o + 2, o + 2 + nlen);
      o += 2 + nlen;
      const len = buf.readUIntBE(o, 6);
      o += 6;
      if (o + len > buf.length) throw new SnapshotFormatError(`part ${name} runs past the data`);
      if (parts.has(name)) throw new SnapshotFormatError(`part ${name} appears twice`);
      parts.set(name, buf.subarray(o, o + len));
      o += len;
    }
    if (o !== buf.length) throw new SnapshotFormatError(`${buf.length - o} bytes after the last part`);
  } else {
    // The first release's layout.
    if (buf.length < 4) throw new SnapshotFormatError('truncated');
    const n = buf.readUInt32BE(0);
    if (4 + n > buf.length) throw new SnapshotFormatError('cluster runs past the data');
    const head = JSON.parse(buf.toString('utf8', 4, 4 + n)) as { cluster?: unknown };
    if (!head || typeof head !== 'object' || !head.cluster) throw new SnapshotFormatError('malformed cluster');
    parts.set(PART_MEMBERSHIP, Buffer.from(JSON.stringify(head.cluster)));
    parts.set(PART_V2STORE, buf.subarray(4 + n));
  }
  for (const name of parts.keys()) {
    if (!known.has(name)) throw new SnapshotFormatError(`part "${name}" is not known to this release (a newer release wrote this snapshot?)`);
  }
  return parts;
}
