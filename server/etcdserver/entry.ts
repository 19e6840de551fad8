/**
 * The data of a Normal log entry: an envelope that says what kind of request it carries, in which encoding version,
 * and which request it is (so the member that proposed it finds its waiting client, whatever the kind).
 *
 * Layout: [u8 ENVELOPE_MARK][u8 kind][u8 version][f64 BE requestId][payload]. The payload belongs to the kind's
 * applier (server/etcdserver/apply/): a v2 request is request.ts's binary form, a v3 request the bytes of etcd's
 * etcdserverpb.InternalRaftRequest, opaque here.
 *
 * Entries written before the envelope existed are a bare v2 request whose first byte is its Method (1..6); they are
 * read as the kind they were (PUT/POST/DELETE/SYNC: v2; ATTRIBUTES/MEMBER_UPDATE: membership), so a data dir
 * written by that release replays. ENVELOPE_MARK is outside 1..6, so the two can never be confused. An empty entry
 * is the no-op a new leader appends and is not a request.
 */
import { allocEntryData } from './entry-arena';
import { Method, decodeRequest } from './request';

/** The kinds of requests in the log. Numbers are written to the log: never renumber one. */
export enum EntryKind {
  /** A member's published attributes, a member's new peer URLs, the cluster version (membership.ts's payload). */
  Membership = 1,
  /** A v2 keys write or the leader's clock (SYNC): request.ts's binary form. */
  V2 = 2,
  /** A v3 request: the bytes of etcdserverpb.InternalRaftRequest. */
  V3 = 3,
  Lease = 4,
  /**
   * A v3 auth request (InternalRaftRequest). Version 2: a UserAdd's or UserChangePassword's password is the bcrypt
   * hash the member that took the request made (off its event loop); version 1 (older logs): the password itself,
   * hashed by every member as it applies the entry, as etcd 3.4 does.
   */
  Auth = 5,
  /** A change of the v2 auth API's users, roles or enabled flag (server/auth/v2/store.ts's V2AuthOp, JSON). */
  V2Auth = 6,
}

/** The first byte of an entry in an envelope: not a v2 Method (1..6), which is what older entries start with. */
export const ENVELOPE_MARK = 0xe7;
/** The envelope's size, before the payload. */
export const ENVELOPE_BYTES = 3 + 8;
const HEADER = ENVELOPE_BYTES;

/** The encoding version this release writes for each kind. */
export const CURRENT_VERSION: Readonly<Record<EntryKind, number>> = {
  [EntryKind.Membership]: 1,
  [EntryKind.V2]: 1,
  [EntryKind.V3]: 1,
  [EntryKind.Lease]: 1,
  [EntryKind.Auth]: 1,
  [EntryKind.V2Auth]: 1,
};

export interface EntryData {
  /** An EntryKind, or a number a newer release wrote. */
  kind: number;
  version: number;
  /** 0 when no client waits for it. */
  requestId: number;
  payload: Uint8Array;
  /** Written before the envelope existed (a bare v2 request). */
  legacy?: boolean;
}

export function encodeEntry(kind: EntryKind, requestId: number, payload: Uint8Array, version: number = CURRENT_VERSION[kind]): Buffer {
  // An entry's data stays in the Raft log's memory until the log is compacted (up to --snapshot-count entries): from
  // the entry arena, whose slabs go in log order, not Node's 8 KB pool, which any short-lived buffer may pin.
  const buf = allocEntryData(HEADER + payload.byteLength);
  buf.set(payload, HEADER);
  return sealEntry(buf, kind, requestId, version);
}

/** Writes the envelope into the first ENVELOPE_BYTES of `buf`, whose payload follows (encoded in place: no copy). */
export function sealEntry(buf: Buffer, kind: EntryKind, requestId: number, version: number = CURRENT_VERSION[kind]): Buffer {
  buf[0] = ENVELOPE_MARK;
  buf[1] = kind;
  buf[2] = version;
  buf.writeDoubleBE(requestId, 3);
  return buf;
}

/** Reads an entry's envelope (or an older bare v2 request); throws on data that is neither. */
export function decodeEntry(data: Uint8Array): EntryData {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length === 0) throw new Error('entry: empty');
  if (buf[0] === ENVELOPE_MARK) {
    if (buf.length < HEADER) throw new Error(`entry: ${buf.length} bytes is too short for its envelope`);
    return { kind: buf[1], version: buf[2], requestId: buf.readDoubleBE(3), payload: buf.subarray(HEADER) };
  }
  // A bare v2 request, as the first release wrote every entry.
  const req = decodeRequest(buf);
  if (req.method === Method.ATTRIBUTES) {
    const a = JSON.parse(req.value) as { name: string; clientURLs: string[] };
    return { kind: EntryKind.Membership, version: 1, requestId: req.id, payload: encodeMembershipOp({ op: 'attributes', id: req.path, name: a.name, clientURLs: a.clientURLs }), legacy: true };
  }
  if (req.method === Method.MEMBER_UPDATE) {
    const peerURLs = JSON.parse(req.value) as string[];
    return { kind: EntryKind.Membership, version: 1, requestId: req.id, payload: encodeMembershipOp({ op: 'peerURLs', id: req.path, peerURLs }), legacy: true };
  }
  return { kind: EntryKind.V2, version: 1, requestId: req.id, payload: buf, legacy: true };
}

/** The payload of a membership entry (version 1: JSON; these are rare). */
export type MembershipOp =
  /** A started member publishes its name and client URLs (etcd's publish). */
  | { op: 'attributes'; id: string; name: string; clientURLs: string[] }
  /** A member's new peer URLs (members API PUT). */
  | { op: 'peerURLs'; id: string; peerURLs: string[] }
  /** The cluster version the leader decided (etcd's /0/version), "3.4.0". */
  | { op: 'clusterVersion'; version: string };

export function encodeMembershipOp(op: MembershipOp): Buffer {
  return Buffer.from(JSON.stringify(op));
}

export function decodeMembershipOp(payload: Uint8Array): MembershipOp {
  const op = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as MembershipOp;
  if (!op || typeof op !== 'object' || typeof op.op !== 'string') throw new Error('membership entry: malformed');
  return op;
}
