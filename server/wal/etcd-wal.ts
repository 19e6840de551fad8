/**
 * Reads etcd 3.4's WAL (wal/ in etcd's source), to convert its data dir: segment files `<seq>-<index>.wal` (16 hex
 * digits each, as ours are named) of frames [u64 LE length][walpb.Record][padding to 8 bytes]. The length's low 56
 * bits are the record's size; when its top bit is set, the next three bits are the padding. A record is
 * {type, crc, data}: its crc is CRC-32C rolled over the data of every record before it (a crc record at the head of
 * each segment carries the running value over). A zero length, or the end of a file, ends a segment.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { crc32c } from '../mvcc/store';
import { EtcdEntry, EtcdHardState, decodeEtcdEntry, decodeEtcdHardState, decodeEtcdWalSnapshot } from '../raft/etcd-raftpb';

/** etcd's record types. */
const METADATA = 1;
const ENTRY = 2;
const STATE = 3;
const CRC = 4;
const SNAPSHOT = 5;

const SECTOR = 512;
const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface EtcdWAL {
  /** The metadata record's data (etcdserverpb.Metadata). */
  metadata: Buffer;
  hardState: EtcdHardState;
  /** Every snapshot the WAL marks, in order (the first is {0, 0}, written when the WAL was created). */
  snapshots: { index: number; term: number }[];
  /** Every entry record, in the order written (a later one at an index replaces the tail from there). */
  entries: EtcdEntry[];
  /** Set when the last segment ends in a torn write (what a crash leaves; etcd reads up to it too). */
  tornAt?: string;
}

export function isEtcdWALSegment(name: string): boolean {
  return SEGMENT_RE.test(name);
}

function decodeRecord(buf: Uint8Array): { type: number; crc: number; data: Buffer } {
  const r = new BinaryReader(buf);
  const rec = { type: 0, crc: 0, data: Buffer.alloc(0) };
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === 0) rec.type = Number(r.int64());
    else if (no === 2 && wt === 0) rec.crc = r.uint32();
    else if (no === 3 && wt === 2) rec.data = Buffer.from(r.bytes());
    else r.skip(wt, no);
  }
  return rec;
}

/** etcd's isTornEntry: a frame one of whose sectors is all zeros was never wholly written. */
function isTorn(buf: Buffer, start: number, end: number): boolean {
  for (let at = start; at < end; ) {
    const next = Math.min(end, (Math.floor(at / SECTOR) + 1) * SECTOR);
    let zero = true;
    for (let i = at; i < next && zero; i++) zero = buf[i] === 0;
    if (zero) return true;
    at = next;
  }
  return false;
}

/** Reads every segment of an etcd WAL directory, checking each record's CRC; throws on corruption. */
export function readEtcdWAL(dir: string): EtcdWAL {
  const names = fs.readdirSync(dir).filter(isEtcdWALSegment).sort();
  if (names.length === 0) throw new Error(`no WAL segment in ${dir}`);
  names.forEach((n, i) => {
    if (i > 0 && parseInt(n.slice(0, 16), 16) !== parseInt(names[i - 1].slice(0, 16), 16) + 1) throw new Error(`WAL segment sequence broken between ${names[i - 1]} and ${n}`);
  });
  const out: EtcdWAL = { metadata: Buffer.alloc(0), hardState: { term: 0, vote: 0n, commit: 0 }, snapshots: [], entries: [] };
  let metadata: Buffer | undefined;
  let crc = 0;
  for (const [i, name] of names.entries()) {
    const file = path.join(dir, name);
    const buf = fs.readFileSync(file);
    const last = i === names.length - 1;
    let off = 0;
    while (off + 8 <= buf.length) {
      const lenField = buf.readBigUInt64LE(off);
      if (lenField === 0n) break; // the preallocated rest of the segment
      const recBytes = Number(lenField & 0x00ffffffffffffffn);
      const padBytes = lenField >> 63n ? Number((lenField >> 56n) & 7n) : 0;
      const start = off + 8;
      const end = start + recBytes + padBytes;
      const torn = (why: string): void => {
        if (!last || !isTorn(buf, start, Math.min(end, buf.length))) throw new Error(`WAL ${name} is corrupt at offset ${off} (${why})`);
        out.tornAt = `${name} at offset ${off}`;
      };
      if (end > buf.length) {
        if (!last) throw new Error(`WAL ${name} is corrupt at offset ${off} (a record runs past the end of the file)`);
        out.tornAt = `${name} at offset ${off}`;
        break;
      }
      let rec: { type: number; crc: number; data: Buffer };
      try {
        rec = decodeRecord(buf.subarray(start, start + recBytes));
      } catch {
        torn('a record does not decode');
        break;
      }
      if (rec.type !== CRC) {
        const next = crc32c(rec.data, crc);
        if (next !== rec.crc) {
          torn('CRC mismatch');
          break;
        }
        crc = next;
      }
      switch (rec.type) {
        case METADATA:
          if (metadata && !metadata.equals(rec.data)) throw new Error(`WAL ${name}: its metadata differs from the first segment's`);
          metadata = rec.data;
          break;
        case ENTRY:
          out.entries.push(decodeEtcdEntry(rec.data));
          break;
        case STATE:
          out.hardState = decodeEtcdHardState(rec.data);
          break;
        case CRC:
          // The running CRC of the segments before; a reader that starts here starts from it.
          if (crc !== 0 && rec.crc !== crc) throw new Error(`WAL ${name}: CRC mismatch at offset ${off}`);
          crc = rec.crc;
          break;
        case SNAPSHOT:
          out.snapshots.push(decodeEtcdWalSnapshot(rec.data));
          break;
        default:
          throw new Error(`WAL ${name}: unexpected record type ${rec.type} at offset ${off}`);
      }
      off = end;
    }
  }
  if (!metadata) throw new Error(`WAL in ${dir} has no metadata record`);
  out.metadata = metadata;
  return out;
}

/**
 * The entries after a snapshot at `start`, as etcd's ReadAll makes them: an entry at an index already read replaces
 * it and everything after it (a leader's log overwrote an uncommitted tail).
 */
export function entriesAfter(all: EtcdEntry[], start: number): EtcdEntry[] {
  const ents: EtcdEntry[] = [];
  for (const e of all) {
    if (e.index <= start) continue;
    const up = e.index - start - 1;
    if (up > ents.length) throw new Error(`WAL: entry ${e.index} follows entry ${start + ents.length} (a gap in the log)`);
    ents.length = up;
    ents.push(e);
  }
  return ents;
}
