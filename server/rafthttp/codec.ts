/**
 * The binary form of Raft messages between members. A stream carries frames: [u32 BE length][message].
 *
 * message := u8 type | str to | str from | f64 term | f64 logTerm | f64 index | f64 commit | u8 reject
 *            | f64 rejectHint | opt-bytes context | u32 entryCount entry* | u8 hasSnapshot [snapshot]
 * entry   := f64 term | f64 index | u8 type | bytes data
 * snapshot:= f64 index | f64 term | strs voters | strs learners | bytes data
 * str := u16 length + UTF-8; bytes := u32 length + bytes; opt-bytes := u8 present + bytes; strs := u16 count + str*
 * Numbers are float64: indexes and terms are integers below 2^53, exact in a double.
 * A frame of length 0 is a link heartbeat (sent on an idle stream so the receiver knows its sender is alive).
 */
import { Entry, EntryType, Message, MessageType, Snapshot } from '../raft';

/**
 * The wire code of each message type, fixed by number: part of the peer protocol between releases. A new message
 * type takes a new number; never renumber or reuse one (test/rafthttp/codec.test.ts pins them). These are the codes
 * the first release sent (the order of MessageType's members then).
 */
export const MESSAGE_TYPE_CODES: Readonly<Record<MessageType, number>> = {
  [MessageType.Hup]: 0,
  [MessageType.Beat]: 1,
  [MessageType.Prop]: 2,
  [MessageType.App]: 3,
  [MessageType.AppResp]: 4,
  [MessageType.Vote]: 5,
  [MessageType.VoteResp]: 6,
  [MessageType.PreVote]: 7,
  [MessageType.PreVoteResp]: 8,
  [MessageType.Snap]: 9,
  [MessageType.Heartbeat]: 10,
  [MessageType.HeartbeatResp]: 11,
  [MessageType.Unreachable]: 12,
  [MessageType.SnapStatus]: 13,
  [MessageType.CheckQuorum]: 14,
  [MessageType.TransferLeader]: 15,
  [MessageType.TimeoutNow]: 16,
  [MessageType.ReadIndex]: 17,
  [MessageType.ReadIndexResp]: 18,
};

/** The wire code of each entry type (EntryType's values are the codes; listed here so the wire has one table). */
export const ENTRY_TYPE_CODES: Readonly<Record<EntryType, number>> = {
  [EntryType.Normal]: 0,
  [EntryType.ConfChange]: 1,
};

const TYPE_CODE = new Map(Object.entries(MESSAGE_TYPE_CODES) as [MessageType, number][]);
const TYPE_BY_CODE = new Map([...TYPE_CODE].map(([t, c]) => [c, t]));
const ENTRY_TYPE_BY_CODE = new Map((Object.entries(ENTRY_TYPE_CODES) as [string, number][]).map(([t, c]) => [c, Number(t) as EntryType]));

export class CodecError extends Error {
  constructor(message: string) {
    super(`rafthttp: malformed message: ${message}`);
    this.name = 'CodecError';
  }
}

function strBytes(s: string): number {
  return 2 + Buffer.byteLength(s);
}

/** The encoded size of a message (without the frame header). */
export function messageSize(m: Message): number {
  let n = 1 + strBytes(m.to) + strBytes(m.from) + 8 * 4 + 1 + 8 + 1 + (m.context ? 4 + m.context.byteLength : 0) + 4 + 1;
  for (const e of m.entries) n += 8 + 8 + 1 + 4 + e.data.byteLength;
  if (m.snapshot) {
    const cs = m.snapshot.metadata.confState;
    n += 16 + 2 + cs.voters.reduce((a, v) => a + strBytes(v), 0) + 2 + cs.learners.reduce((a, v) => a + strBytes(v), 0) + 4 + m.snapshot.data.byteLength;
  }
  return n;
}

class Writer {
  off = 0;
  constructor(readonly buf: Buffer) {}
  u8(v: number) {
    this.off = this.buf.writeUInt8(v, this.off);
  }
  u16(v: number) {
    this.off = this.buf.writeUInt16BE(v, this.off);
  }
  u32(v: number) {
    this.off = this.buf.writeUInt32BE(v, this.off);
  }
  f64(v: number) {
    this.off = this.buf.writeDoubleBE(v, this.off);
  }
  str(s: string) {
    const len = this.buf.write(s, this.off + 2, 'utf8');
    this.buf.writeUInt16BE(len, this.off);
    this.off += 2 + len;
  }
  bytes(b: Uint8Array) {
    this.u32(b.byteLength);
    this.buf.set(b, this.off);
    this.off += b.byteLength;
  }
}

/** Encodes a message as one frame (length header included). */
export function encodeFrame(m: Message): Buffer {
  const size = messageSize(m);
  const w = new Writer(Buffer.allocUnsafe(4 + size));
  w.u32(size);
  const code = TYPE_CODE.get(m.type);
  if (code === undefined) throw new CodecError(`unknown type ${m.type}`);
  w.u8(code);
  w.str(m.to);
  w.str(m.from);
  w.f64(m.term);
  w.f64(m.logTerm);
  w.f64(m.index);
  w.f64(m.commit);
  w.u8(m.reject ? 1 : 0);
  w.f64(m.rejectHint);
  if (m.context) {
    w.u8(1);
    w.bytes(m.context);
  } else {
    w.u8(0);
  }
  w.u32(m.entries.length);
  for (const e of m.entries) {
    w.f64(e.term);
    w.f64(e.index);
    w.u8(ENTRY_TYPE_CODES[e.type]);
    w.bytes(e.data);
  }
  if (m.snapshot) {
    w.u8(1);
    const { metadata, data } = m.snapshot;
    w.f64(metadata.index);
    w.f64(metadata.term);
    w.u16(metadata.confState.voters.length);
    for (const v of metadata.confState.voters) w.str(v);
    w.u16(metadata.confState.learners.length);
    for (const v of metadata.confState.learners) w.str(v);
    w.bytes(data);
  } else {
    w.u8(0);
  }
  return w.buf;
}

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number) {
    if (this.off + n > this.buf.length) throw new CodecError(`needs ${n} bytes at offset ${this.off}, has ${this.buf.length - this.off}`);
  }
  u8() {
    this.need(1);
    return this.buf.readUInt8(this.off++);
  }
  u16() {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32() {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  f64() {
    this.need(8);
    const v = this.buf.readDoubleBE(this.off);
    this.off += 8;
    if (!Number.isSafeInteger(v) || v < 0) throw new CodecError(`not an index or term: ${v}`);
    return v;
  }
  str() {
    const n = this.u16();
    this.need(n);
    const s = this.buf.toString('utf8', this.off, this.off + n);
    this.off += n;
    return s;
  }
  bytes(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
}

/** Decodes one message (the frame's body, without its length header). */
export function decodeMessage(body: Buffer): Message {
  const r = new Reader(body);
  const code = r.u8();
  const type = TYPE_BY_CODE.get(code);
  if (type === undefined) throw new CodecError(`unknown type ${code}`);
  const to = r.str();
  const from = r.str();
  const term = r.f64();
  const logTerm = r.f64();
  const index = r.f64();
  const commit = r.f64();
  const reject = r.u8() === 1;
  const rejectHint = r.f64();
  const context = r.u8() === 1 ? r.bytes() : undefined;
  const count = r.u32();
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const eterm = r.f64();
    const eindex = r.f64();
    const ecode = r.u8();
    const etype = ENTRY_TYPE_BY_CODE.get(ecode);
    if (etype === undefined) throw new CodecError(`unknown entry type ${ecode}`);
    entries.push({ term: eterm, index: eindex, type: etype, data: r.bytes() });
  }
  let snapshot: Snapshot | undefined;
  if (r.u8() === 1) {
    const sindex = r.f64();
    const sterm = r.f64();
    const voters = Array.from({ length: r.u16() }, () => r.str());
    const learners = Array.from({ length: r.u16() }, () => r.str());
    snapshot = { metadata: { index: sindex, term: sterm, confState: { voters, learners } }, data: r.bytes() };
  }
  if (r.off !== body.length) throw new CodecError(`${body.length - r.off} bytes left over`);
  return { type, to, from, term, logTerm, index, entries, commit, snapshot, reject, rejectHint, context };
}

/** Splits a byte stream into frames; a frame larger than `maxFrame` is an error (a peer gone wrong). */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame: number) {}

  /** Feeds bytes; returns the complete messages they finish. */
  push(chunk: Buffer): Message[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Message[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len > this.maxFrame) throw new CodecError(`frame of ${len} bytes exceeds the limit of ${this.maxFrame}`);
      if (this.buffered < 4 + len) break;
      const frame = this.take(4 + len);
      if (len === 0) continue; // a link heartbeat: the stream is alive, nothing to deliver
      out.push(decodeMessage(frame.subarray(4)));
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}
