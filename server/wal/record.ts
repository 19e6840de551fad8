import { crc32 } from 'node:zlib';
import { Entry, EntryType, HardState } from '../raft';

/**
 * The WAL's record format: [u32 LE length][u32 LE crc32 of type+payload][u8 type][payload (length-1 bytes)].
 * A record is valid only if it is whole and its checksum matches.
 */
export enum RecordType {
  /** The member's identity (opaque to the WAL); the first record of every segment. */
  Metadata = 1,
  Entry = 2,
  HardState = 3,
  /** A snapshot was saved at (index, term): replay starts from the latest one. */
  Snapshot = 4,
}

export const HEADER_SIZE = 8;

export type WalRecord =
  | { type: RecordType.Metadata; data: Buffer }
  | { type: RecordType.Entry; entry: Entry }
  | { type: RecordType.HardState; hardState: HardState }
  | { type: RecordType.Snapshot; index: number; term: number };

function frame(type: RecordType, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + 1 + payload.length);
  out.writeUInt32LE(payload.length + 1, 0);
  out.writeUInt8(type, HEADER_SIZE);
  payload.copy(out, HEADER_SIZE + 1);
  out.writeUInt32LE(crc32(out.subarray(HEADER_SIZE)), 4);
  return out;
}

export function encodeMetadata(data: Buffer): Buffer {
  return frame(RecordType.Metadata, data);
}

export function encodeEntry(e: Entry): Buffer {
  // Built in place: [f64 term][f64 index][u8 type][data].
  const len = 17 + e.data.length;
  const out = Buffer.allocUnsafe(HEADER_SIZE + 1 + len);
  out.writeUInt32LE(len + 1, 0);
  out.writeUInt8(RecordType.Entry, HEADER_SIZE);
  out.writeDoubleLE(e.term, HEADER_SIZE + 1);
  out.writeDoubleLE(e.index, HEADER_SIZE + 9);
  out.writeUInt8(e.type, HEADER_SIZE + 17);
  out.set(e.data, HEADER_SIZE + 18);
  out.writeUInt32LE(crc32(out.subarray(HEADER_SIZE)), 4);
  return out;
}

export function encodeHardState(hs: HardState): Buffer {
  const vote = Buffer.from(hs.vote, 'utf8');
  const p = Buffer.allocUnsafe(18 + vote.length);
  p.writeDoubleLE(hs.term, 0);
  p.writeDoubleLE(hs.commit, 8);
  p.writeUInt16LE(vote.length, 16);
  vote.copy(p, 18);
  return frame(RecordType.HardState, p);
}

export function encodeSnapshotMarker(index: number, term: number): Buffer {
  const p = Buffer.allocUnsafe(16);
  p.writeDoubleLE(index, 0);
  p.writeDoubleLE(term, 8);
  return frame(RecordType.Snapshot, p);
}

const ZEROS = Buffer.alloc(64 * 1024);

/** Whether every byte of `buf` from `offset` on is zero (compared a block at a time). */
export function isZeroFrom(buf: Buffer, offset: number): boolean {
  for (let i = offset; i < buf.length; i += ZEROS.length) {
    const n = Math.min(ZEROS.length, buf.length - i);
    if (!buf.subarray(i, i + n).equals(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n))) return false;
  }
  return true;
}

export type DecodeOutcome =
  | { kind: 'record'; record: WalRecord; size: number }
  /** The data ends inside this record (or in zero padding): what a crash in the middle of a write leaves. */
  | { kind: 'torn' }
  | { kind: 'corrupt'; reason: string };

/** Decodes the record at `offset` of `buf`. */
export function decodeAt(buf: Buffer, offset: number): DecodeOutcome {
  if (buf.length - offset < HEADER_SIZE) return { kind: 'torn' };
  const len = buf.readUInt32LE(offset);
  if (len === 0) {
    // Zero padding (a preallocated segment's unwritten space): the end of the log if nothing but zeros follows.
    return isZeroFrom(buf, offset) ? { kind: 'torn' } : { kind: 'corrupt', reason: 'zero-length record' };
  }
  if (offset + HEADER_SIZE + len > buf.length) return { kind: 'torn' };
  const body = buf.subarray(offset + HEADER_SIZE, offset + HEADER_SIZE + len);
  if (crc32(body) !== buf.readUInt32LE(offset + 4)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const type = body[0] as RecordType;
  const p = body.subarray(1);
  const size = HEADER_SIZE + len;
  switch (type) {
    case RecordType.Metadata:
      return { kind: 'record', size, record: { type, data: Buffer.from(p) } };
    case RecordType.Entry:
      if (p.length < 17) return { kind: 'corrupt', reason: 'short entry record' };
      return {
        kind: 'record',
        size,
        record: { type, entry: { term: p.readDoubleLE(0), index: p.readDoubleLE(8), type: p.readUInt8(16) as EntryType, data: Buffer.from(p.subarray(17)) } },
      };
    case RecordType.HardState: {
      if (p.length < 18) return { kind: 'corrupt', reason: 'short hard state record' };
      const voteLen = p.readUInt16LE(16);
      if (18 + voteLen > p.length) return { kind: 'corrupt', reason: 'hard state vote runs past the record' };
      return { kind: 'record', size, record: { type, hardState: { term: p.readDoubleLE(0), commit: p.readDoubleLE(8), vote: p.toString('utf8', 18, 18 + voteLen) } } };
    }
    case RecordType.Snapshot:
      if (p.length < 16) return { kind: 'corrupt', reason: 'short snapshot record' };
      return { kind: 'record', size, record: { type, index: p.readDoubleLE(0), term: p.readDoubleLE(8) } };
    default:
      return { kind: 'corrupt', reason: `unknown record type ${type}` };
  }
}
