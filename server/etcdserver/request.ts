/**
 * A v2 write as it travels through the Raft log: the payload of a v2 entry (entry.ts's EntryKind.V2, version 1);
 * the first release wrote it bare, as the whole entry. Everything that makes applying it deterministic is inside:
 * the absolute expiration time (decided by the member that took the request) and, for SYNC, the leader's clock.
 *
 * Binary layout (big-endian): [u8 method][u8 flags][f64 id][f64 prevIndex][f64 expiration][f64 time]
 * [u32 len][path][u32 len][value][u32 len][prevValue]. No JSON on this path.
 */
import { allocEntryData } from './entry-arena';

export enum Method {
  PUT = 1,
  POST = 2,
  DELETE = 3,
  /** The leader's clock, so that every member expires TTL keys at the same point of the log. */
  SYNC = 4,
  /**
   * Only in entries of the first release (now membership entries, entry.ts): a started member publishes its name
   * and client URLs (path: its ID; value: JSON {name, clientURLs}).
   */
  ATTRIBUTES = 5,
  /** Only in entries of the first release: a member's new peer URLs (path: its ID; value: JSON array of URLs). */
  MEMBER_UPDATE = 6,
}

const FLAG_DIR = 1;
const FLAG_PREV_EXIST_SET = 2;
const FLAG_PREV_EXIST = 4;
const FLAG_REFRESH = 8;
const FLAG_RECURSIVE = 16;

export interface WriteRequest {
  /** Unique per member and incarnation: how the member that proposed it finds the waiting client. */
  id: number;
  method: Method;
  path: string;
  value: string;
  dir: boolean;
  prevValue: string;
  prevIndex: number;
  /** undefined: not given; true/false: prevExist=true/false. */
  prevExist?: boolean;
  /** Absolute expiration in ms since the epoch; 0 for none. */
  expiration: number;
  refresh: boolean;
  recursive: boolean;
  /** SYNC: the leader's time in ms since the epoch. */
  time: number;
}

/** Encodes a request; `headroom` bytes are left before it (for the entry's envelope, without a copy). */
export function encodeRequest(r: WriteRequest, headroom = 0): Buffer {
  const path = Buffer.from(r.path, 'utf8');
  const value = Buffer.from(r.value, 'utf8');
  const prev = Buffer.from(r.prevValue, 'utf8');
  // The log entry's data (see entry-arena.ts): not a slice of Node's buffer pool.
  const whole = allocEntryData(headroom + 2 + 32 + 12 + path.length + value.length + prev.length);
  const buf = headroom ? whole.subarray(headroom) : whole;
  let flags = 0;
  if (r.dir) flags |= FLAG_DIR;
  if (r.prevExist !== undefined) flags |= FLAG_PREV_EXIST_SET | (r.prevExist ? FLAG_PREV_EXIST : 0);
  if (r.refresh) flags |= FLAG_REFRESH;
  if (r.recursive) flags |= FLAG_RECURSIVE;
  buf.writeUInt8(r.method, 0);
  buf.writeUInt8(flags, 1);
  buf.writeDoubleBE(r.id, 2);
  buf.writeDoubleBE(r.prevIndex, 10);
  buf.writeDoubleBE(r.expiration, 18);
  buf.writeDoubleBE(r.time, 26);
  let o = 34;
  for (const part of [path, value, prev]) {
    buf.writeUInt32BE(part.length, o);
    part.copy(buf, o + 4);
    o += 4 + part.length;
  }
  return whole;
}

export function decodeRequest(data: Uint8Array): WriteRequest {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 46) throw new Error(`request: ${buf.length} bytes is too short`);
  const method = buf.readUInt8(0) as Method;
  if (!(method in Method)) throw new Error(`request: unknown method ${method}`);
  const flags = buf.readUInt8(1);
  const parts: string[] = [];
  let o = 34;
  for (let i = 0; i < 3; i++) {
    const len = buf.readUInt32BE(o);
    if (o + 4 + len > buf.length) throw new Error('request: a field runs past the data');
    parts.push(buf.toString('utf8', o + 4, o + 4 + len));
    o += 4 + len;
  }
  return {
    id: buf.readDoubleBE(2),
    method,
    path: parts[0],
    value: parts[1],
    dir: (flags & FLAG_DIR) !== 0,
    prevValue: parts[2],
    prevIndex: buf.readDoubleBE(10),
    prevExist: flags & FLAG_PREV_EXIST_SET ? (flags & FLAG_PREV_EXIST) !== 0 : undefined,
    expiration: buf.readDoubleBE(18),
    refresh: (flags & FLAG_REFRESH) !== 0,
    recursive: (flags & FLAG_RECURSIVE) !== 0,
    time: buf.readDoubleBE(26),
  };
}

/**
 * Request IDs as etcd's idutil makes them, within a double's 53 integer bits: the member ID's low 16 bits on top,
 * then 37 bits that start at the start time in ms (its low 29 bits) times 256 and count up, wrapping within the 37
 * (etcd: 16 bits of member, 48 of time and counter). IDs of two members differ unless their IDs' low 16 bits are
 * equal; those of two incarnations of one member unless their starts are 2^29 ms (6.2 days) apart to the
 * millisecond. The member that proposed an entry also checks that an applied entry with its ID is the one it proposed
 * (Proposals.answer), so a collision costs a wait, never a wrong answer. Never 0, which means "no client waits".
 */
export class RequestIdGenerator {
  private readonly prefix: number;
  private suffix: number;

  constructor(memberIdHex: string, nowMs: number) {
    this.prefix = Number(BigInt('0x' + (memberIdHex || '0')) & 0xffffn) * SUFFIX_RANGE;
    this.suffix = ((Math.floor(nowMs) % 2 ** 29) * 256) % SUFFIX_RANGE;
  }

  id(): number {
    this.suffix = (this.suffix + 1) % SUFFIX_RANGE;
    const id = this.prefix + this.suffix;
    return id === 0 ? this.id() : id;
  }
}
const SUFFIX_RANGE = 2 ** 37;
