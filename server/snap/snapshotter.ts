import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { Snapshot } from '../raft';

/**
 * Snapshot files `<term>-<index>.snap` (16 hex digits each): [u32 LE crc32 of the rest][u32 LE header length]
 * [header JSON: index, term, confState][data]. Written atomically (temporary file, fsync, rename, fsync dir).
 * A file that fails its checksum is renamed `.broken` and the next older one is used, as etcd does.
 */

const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export class Snapshotter {
  constructor(
    readonly dir: string,
    private readonly o: { maxSnapshots?: number; noSync?: boolean; warn?: (m: string) => void; onSaved?: (seconds: number) => void } = {},
  ) {}

  private list(): { term: number; index: number; file: string }[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out = [];
    for (const n of names) {
      const m = SNAP_RE.exec(n);
      if (m) out.push({ term: parseInt(m[1], 16), index: parseInt(m[2], 16), file: path.join(this.dir, n) });
    }
    // Newest first.
    return out.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  async save(s: Snapshot): Promise<void> {
    const { index, term, confState } = s.metadata;
    if (index === 0) return;
    const t0 = process.hrtime.bigint();
    await fsp.mkdir(this.dir, { recursive: true });
    const header = Buffer.from(JSON.stringify({ index, term, confState }));
    const hlen = Buffer.allocUnsafe(4);
    hlen.writeUInt32LE(header.length, 0);
    // The data is written from where it is, not copied behind its header (it is the whole store): the checksum
    // runs over the pieces in turn.
    const data = Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength);
    const crc = Buffer.allocUnsafe(4);
    crc.writeUInt32LE(crc32(data, crc32(header, crc32(hlen))), 0);
    const name = `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.snap`;
    const tmp = path.join(this.dir, `${name}.tmp`);
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writev([crc, hlen, header, data]);
      if (!this.o.noSync) await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path.join(this.dir, name));
    if (!this.o.noSync) {
      const d = await fsp.open(this.dir, 'r');
      await d.sync();
      await d.close();
    }
    this.o.onSaved?.(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  /** Every snapshot on disk, newest first, that passes its checksum (broken ones are set aside). */
  async loadAll(): Promise<Snapshot[]> {
    const out: Snapshot[] = [];
    for (const f of this.list()) {
      const s = await this.read(f.file);
      if (s) out.push(s);
    }
    return out;
  }

  async loadNewest(): Promise<Snapshot | undefined> {
    for (const f of this.list()) {
      const s = await this.read(f.file);
      if (s) return s;
    }
    return undefined;
  }

  /** The newest readable snapshot that is one of `markers` (those the WAL recorded); undefined if none. */
  async loadNewestAvailable(markers: { index: number; term: number }[]): Promise<Snapshot | undefined> {
    const known = new Set(markers.map((m) => `${m.term}/${m.index}`));
    for (const f of this.list()) {
      if (!known.has(`${f.term}/${f.index}`)) continue;
      const s = await this.read(f.file);
      if (s) return s;
    }
    return undefined;
  }

  /** The snapshot at (index, term), read back from its file; undefined if it is gone or broken. */
  async load(index: number, term: number): Promise<Snapshot | undefined> {
    const f = this.list().find((x) => x.index === index && x.term === term);
    return f ? this.read(f.file) : undefined;
  }

  private async read(file: string): Promise<Snapshot | undefined> {
    const buf = await fsp.readFile(file);
    const bad = async (why: string) => {
      this.o.warn?.(`snap: ${path.basename(file)} is broken (${why}); using an older snapshot`);
      await fsp.rename(file, `${file}.broken`);
      return undefined;
    };
    if (buf.length < 8) return bad('too short');
    if (crc32(buf.subarray(4)) !== buf.readUInt32LE(0)) return bad('checksum mismatch');
    const hlen = buf.readUInt32LE(4);
    if (8 + hlen > buf.length) return bad('header runs past the file');
    const h = JSON.parse(buf.toString('utf8', 8, 8 + hlen)) as Snapshot['metadata'];
    return { metadata: { index: h.index, term: h.term, confState: h.confState }, data: buf.subarray(8 + hlen) };
  }

  /** Keeps the newest maxSnapshots (default 5) files, deleting older ones below `index`. */
  async releaseOlderThan(index: number): Promise<void> {
    const keep = this.o.maxSnapshots ?? 5;
    if (keep === 0) return;
    const all = this.list();
    for (const f of all.slice(keep)) if (f.index < index) await fsp.rm(f.file, { force: true });
  }
}
