/**
 * etcd 3.4's backend (its bbolt file, what its Maintenance.Snapshot streams) and this server's v3 store, both ways.
 *
 * etcd's buckets and what they hold (mvcc/kvstore.go, lease/lessor.go, auth/store.go, v3alarm, membership/store.go):
 * - `key`: revision (main u64 BE, '_', sub u64 BE, and 't' for a deletion) → mvccpb.KeyValue (a deletion's holds
 *   only the key): every version kept since the compaction, as our `kv` table;
 * - `meta`: consistent_index (u64 BE), scheduledCompactRev and finishedCompactRev (revisions as above);
 * - `lease`: ID (i64 BE) → leasepb.Lease {ID, TTL, RemainingTTL};
 * - `auth` (authEnabled: 1 byte, authRevision: u64 BE), `authUsers` (name → authpb.User), `authRoles` (name →
 *   authpb.Role): our auth store's state (auth/store.ts keeps it as one meta value);
 * - `alarm`: etcdserverpb.AlarmMember → nothing: our alarms' meta value;
 * - `members` (ID in hex → the member as JSON), `members_removed` (ID → "removed"), `cluster` (clusterVersion):
 *   the membership, which a restore replaces (etcd's restore ignores them too), written for etcd's tools.
 * Reading (importEtcdBackend) builds a new store with the same versions at the same revisions (a low-level import,
 * no writes replayed) a bucket at a time, streaming; writing (streamEtcdBackend) streams a compact bbolt file from
 * one consistent view of the store, in file order as its pages are made. The messages are gogoproto's encoding
 * (fields in order, zero values left out), so the bytes are those etcd writes.
 */
import * as fs from 'node:fs';
import { Role, User } from '../api/v3rpc/pb/authpb/auth';
import { AlarmMember } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { decodeAuthState, encodeAuthState, AUTH_META_KEY } from '../auth/store';
import type { Member } from '../membership/cluster';
import { BoltReader, BoltEntry, BoltBucket } from '../mvcc/bbolt/reader';
import { BoltWriter, BucketWriter } from '../mvcc/bbolt/writer';
import { BoltError } from '../mvcc/bbolt/page';
import { readU64, recordIsTombstone, recordKey, recordValue, writeU64 } from '../mvcc/codec';
import { crc32c, ImportedVersion, LeaseRecord, StoreImport, StoreView } from '../mvcc/store';
import { ALARMS_META_KEY, decodeAlarms, encodeAlarms } from './alarms';

/** etcd's buckets, in the (byte) order bbolt keeps them. */
const B = {
  alarm: 'alarm',
  auth: 'auth',
  authRoles: 'authRoles',
  authUsers: 'authUsers',
  cluster: 'cluster',
  key: 'key',
  lease: 'lease',
  members: 'members',
  membersRemoved: 'members_removed',
  meta: 'meta',
} as const;

const REV_LEN = 17;
const TOMBSTONE_MARK = 0x74; // 't'

// ---- gogoproto's encoding of etcd's small messages ----

/** Past a field of a fixed-size wire type (1: 64-bit, 5: 32-bit); any other type left here is malformed. */
function skipFixed(wireType: number, o: number, what: string): number {
  if (wireType === 1) return o + 8;
  if (wireType === 5) return o + 4;
  throw new BoltError(`${what}: malformed message`);
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

function writeVarint(b: Buffer, at: number, n: number): number {
  while (n >= 128) {
    b[at++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  b[at++] = n;
  return at;
}

/** A uint64 as protobuf's varint: its size. */
function uvarint64Size(u: bigint): number {
  let s = 1;
  while (u >= 128n) {
    u >>= 7n;
    s++;
  }
  return s;
}

function writeUvarint64(b: Buffer, at: number, u: bigint): number {
  while (u >= 128n) {
    b[at++] = Number(u & 127n) | 128;
    u >>= 7n;
  }
  b[at++] = Number(u);
  return at;
}

/** An int64 as protobuf's varint: a negative one takes 10 bytes (its two's complement). */
function int64Varint(v: bigint): Buffer {
  const u = BigInt.asUintN(64, v);
  const b = Buffer.allocUnsafe(uvarint64Size(u));
  writeUvarint64(b, 0, u);
  return b;
}

/** The size of mvccpb.KeyValue as etcd marshals it (encodeKeyValue). */
export function keyValueSize(keyLen: number, create: number, mod: number, version: number, valueLen: number, lease: bigint): number {
  let size = 0;
  if (keyLen) size += 1 + varintSize(keyLen) + keyLen;
  if (create) size += 1 + varintSize(create);
  if (mod) size += 1 + varintSize(mod);
  if (version) size += 1 + varintSize(version);
  if (valueLen) size += 1 + varintSize(valueLen) + valueLen;
  if (lease !== 0n) size += 1 + uvarint64Size(BigInt.asUintN(64, lease));
  return size;
}

/** Writes mvccpb.KeyValue as etcd marshals it at b[o…] (keyValueSize bytes); returns where it ends. */
export function writeKeyValue(b: Buffer, o: number, key: Buffer, create: number, mod: number, version: number, value: Buffer, lease: bigint): number {
  if (key.length) {
    b[o++] = 0x0a;
    o = writeVarint(b, o, key.length);
    o += key.copy(b, o);
  }
  if (create) {
    b[o++] = 0x10;
    o = writeVarint(b, o, create);
  }
  if (mod) {
    b[o++] = 0x18;
    o = writeVarint(b, o, mod);
  }
  if (version) {
    b[o++] = 0x20;
    o = writeVarint(b, o, version);
  }
  if (value.length) {
    b[o++] = 0x2a;
    o = writeVarint(b, o, value.length);
    o += value.copy(b, o);
  }
  if (lease !== 0n) {
    b[o++] = 0x30;
    o = writeUvarint64(b, o, BigInt.asUintN(64, lease));
  }
  return o;
}

/** mvccpb.KeyValue as etcd marshals it: key(1) create_revision(2) mod_revision(3) version(4) value(5) lease(6). */
export function encodeKeyValue(key: Buffer, create: number, mod: number, version: number, value: Buffer, lease: bigint): Buffer {
  const b = Buffer.allocUnsafe(keyValueSize(key.length, create, mod, version, value.length, lease));
  writeKeyValue(b, 0, key, create, mod, version, value, lease);
  return b;
}

/** A protobuf message's fields: varints as bigint, length-delimited ones as views; throws on malformed bytes. */
function* fields(b: Buffer, what: string): Generator<{ field: number; varint: bigint; bytes: Buffer | undefined }> {
  let o = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (o >= b.length || shift > 63n) throw new BoltError(`${what}: malformed message`);
      const c = b[o++];
      v |= BigInt(c & 127) << shift;
      if (c < 128) return v;
    }
  };
  while (o < b.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    switch (tag & 7) {
      case 0:
        yield { field, varint: varint(), bytes: undefined };
        break;
      case 2: {
        const len = Number(varint());
        if (o + len > b.length) throw new BoltError(`${what}: malformed message`);
        yield { field, varint: 0n, bytes: b.subarray(o, o + len) };
        o += len;
        break;
      }
      default:
        o = skipFixed(tag & 7, o, what);
    }
    if (o > b.length) throw new BoltError(`${what}: malformed message`);
  }
}

const EMPTY = Buffer.alloc(0);

/** Where the last varint read by smallVarint or bigVarint ended. */
let varintEnd = 0;

/** A varint at b[o…] as a number when it takes at most 7 bytes (below 2^49), else -1 (to be read by bigVarint). */
function smallVarint(b: Buffer, o: number, what: string): number {
  let v = 0;
  let scale = 1;
  for (let i = 0; i < 7; i++) {
    if (o >= b.length) throw new BoltError(`${what}: malformed message`);
    const c = b[o++];
    v += (c & 127) * scale;
    if (c < 128) {
      varintEnd = o;
      return v;
    }
    scale *= 128;
  }
  return -1;
}

/** A varint of up to 10 bytes at b[o…], as fields() reads it. */
function bigVarint(b: Buffer, o: number, what: string): bigint {
  let v = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (o >= b.length || shift > 63n) throw new BoltError(`${what}: malformed message`);
    const c = b[o++];
    v |= BigInt(c & 127) << shift;
    if (c < 128) {
      varintEnd = o;
      return v;
    }
  }
}

/**
 * mvccpb.KeyValue's fields (as fields() reads them, without its objects or bigints for the numbers that fit: once
 * per version of a restore).
 */
export function decodeKeyValue(b: Buffer, what: string): { key: Buffer; create: number; mod: number; version: number; value: Buffer; lease: bigint } {
  let key: Buffer = EMPTY;
  let value: Buffer = EMPTY;
  let create = 0;
  let mod = 0;
  let version = 0;
  let lease = 0n;
  for (let o = 0; o < b.length; ) {
    let tag = smallVarint(b, o, what);
    if (tag < 0) tag = Number(bigVarint(b, o, what));
    o = varintEnd;
    const field = tag >>> 3;
    switch (tag & 7) {
      case 0: {
        const small = smallVarint(b, o, what);
        const big = small < 0 ? BigInt.asIntN(64, bigVarint(b, o, what)) : undefined;
        o = varintEnd;
        const n = big === undefined ? small : Number(big);
        if (field === 2) create = n;
        else if (field === 3) mod = n;
        else if (field === 4) version = n;
        else if (field === 6) lease = big ?? BigInt(small);
        break;
      }
      case 2: {
        let len = smallVarint(b, o, what);
        if (len < 0) len = Number(bigVarint(b, o, what));
        o = varintEnd;
        if (o + len > b.length) throw new BoltError(`${what}: malformed message`);
        if (field === 1) key = b.subarray(o, o + len);
        else if (field === 5) value = b.subarray(o, o + len);
        o += len;
        break;
      }
      default:
        o = skipFixed(tag & 7, o, what);
    }
    if (o > b.length) throw new BoltError(`${what}: malformed message`);
  }
  return { key, create, mod, version, value, lease };
}

function encodeLease(l: LeaseRecord): Buffer {
  const parts: Buffer[] = [];
  if (l.id !== 0n) parts.push(Buffer.from([0x08]), int64Varint(l.id));
  if (l.ttl) parts.push(Buffer.from([0x10]), int64Varint(BigInt(l.ttl)));
  if (l.remainingTTL) parts.push(Buffer.from([0x18]), int64Varint(BigInt(l.remainingTTL)));
  return Buffer.concat(parts);
}

function decodeLease(b: Buffer, what: string): LeaseRecord {
  const l: LeaseRecord = { id: 0n, ttl: 0, remainingTTL: 0 };
  for (const f of fields(b, what)) {
    if (f.field === 1) l.id = BigInt.asIntN(64, f.varint);
    else if (f.field === 2) l.ttl = Number(BigInt.asIntN(64, f.varint));
    else if (f.field === 3) l.remainingTTL = Number(BigInt.asIntN(64, f.varint));
  }
  return l;
}

/** etcd's revToBytes, with the tombstone mark. */
function etcdRev(main: number, sub: number, tombstone: boolean): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? REV_LEN + 1 : REV_LEN);
  writeU64(b, main, 0);
  b[8] = 0x5f; // '_'
  writeU64(b, sub, 9);
  if (tombstone) b[REV_LEN] = TOMBSTONE_MARK;
  return b;
}

function u64be(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

/** Go's encoding/json of a string (HTML characters escaped as Go does). */
function goJSONString(s: string): string {
  return JSON.stringify(s).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** etcd's membership.Member as json.Marshal writes it into the members bucket. */
export function etcdMemberJSON(m: Member): string {
  let j = `{"id":${BigInt('0x' + m.id).toString()},"peerURLs":[${m.peerURLs.map(goJSONString).join(',')}]`;
  if (m.isLearner) j += ',"isLearner":true';
  if (m.name) j += `,"name":${goJSONString(m.name)}`;
  if (m.clientURLs.length) j += `,"clientURLs":[${m.clientURLs.map(goJSONString).join(',')}]`;
  return j + '}';
}

// ---- reading etcd's backend ----

/** The revision of an etcd revision key (its main and sub), and whether it marks a deletion. */
function parseRev(k: Buffer): { main: number; sub: number; tombstone: boolean } {
  if (!(k.length === REV_LEN || (k.length === REV_LEN + 1 && k[REV_LEN] === TOMBSTONE_MARK))) {
    throw new BoltError(`bucket key: a key of ${k.length} bytes (${k.toString('hex')}) is no revision`);
  }
  // Signed 64-bit numbers, 0 … 2^53-1 taken: the high word at most 0x1fffff (a negative one has its top bit set).
  if (k.readUInt32BE(0) > 0x1fffff || k.readUInt32BE(9) > 0x1fffff) throw new BoltError(`bucket key: revision ${k.readBigInt64BE(0)}/${k.readBigInt64BE(9)} out of range`);
  return { main: readU64(k, 0), sub: readU64(k, 9), tombstone: k.length > REV_LEN };
}

function entriesOf(b: BoltBucket | undefined): Iterable<BoltEntry> {
  return b ? b.entries() : [];
}

/** Whether a file's first page is bbolt's meta page (its magic at offset 16). */
export function isBolt(head: Buffer): boolean {
  return head.length >= 20 && head.readUInt32LE(16) === 0xed0cdaed;
}

/**
 * What a store is made of from etcd's backend in reader: every version of `key` in revision order (streamed from the
 * file; each one's key and value valid until the next is read), the leases, the auth state and alarms as our meta values, the compaction revisions, and consistentIndex
 * (a restore's: the number of members).
 */
export function etcdBackendImport(reader: BoltReader, consistentIndex: number): StoreImport {
  const root = reader.root();
  const buckets = new Map<string, BoltBucket>();
  for (const e of root.entries()) {
    if (e.bucket) buckets.set(e.key.toString('latin1'), root.open(e));
  }
  if (!buckets.has(B.key) || !buckets.has(B.meta)) throw new BoltError('not an etcd backend: no key and meta buckets');
  let finishedCompactRev: number | undefined;
  let scheduledCompactRev: number | undefined;
  for (const e of buckets.get(B.meta)!.entries()) {
    const name = e.key.toString('latin1');
    if (name !== 'finishedCompactRev' && name !== 'scheduledCompactRev') continue;
    if (e.value.length !== REV_LEN) throw new BoltError(`bucket meta: ${name} is ${e.value.length} bytes, not a revision`);
    const rev = parseRev(e.value).main;
    if (name === 'finishedCompactRev') finishedCompactRev = rev;
    else scheduledCompactRev = rev;
  }
  const leaseBucket = buckets.get(B.lease);
  function* leases(): Generator<LeaseRecord> {
    for (const e of entriesOf(leaseBucket)) yield decodeLease(e.value, `bucket lease: lease ${e.key.toString('hex')}`);
  }

  const metaValues: [string, Buffer][] = [];
  const auth = buckets.get(B.auth);
  const users = buckets.get(B.authUsers);
  const roles = buckets.get(B.authRoles);
  if (auth || users || roles) {
    const st = decodeAuthState(undefined);
    for (const e of entriesOf(auth)) {
      const name = e.key.toString('latin1');
      if (name === 'authEnabled') st.enabled = e.value.length === 1 && e.value[0] === 1;
      else if (name === 'authRevision') {
        if (e.value.length !== 8) throw new BoltError(`bucket auth: authRevision is ${e.value.length} bytes`);
        st.revision = Number(e.value.readBigUInt64BE(0));
      }
    }
    for (const e of entriesOf(users)) st.users.push(decodeMessage(User, e.value, `bucket authUsers: user ${e.key.toString()}`));
    for (const e of entriesOf(roles)) st.roles.push(decodeMessage(Role, e.value, `bucket authRoles: role ${e.key.toString()}`));
    metaValues.push([AUTH_META_KEY, encodeAuthState(st)]);
  }
  const alarms: AlarmMember[] = [];
  for (const e of entriesOf(buckets.get(B.alarm))) alarms.push(decodeMessage(AlarmMember, e.key, 'bucket alarm'));
  // In the alarm store's order (by type, then member), not the bucket's (by their bytes).
  alarms.sort((x, y) => x.alarm - y.alarm || (x.memberID < y.memberID ? -1 : x.memberID > y.memberID ? 1 : 0));
  if (alarms.length) metaValues.push([ALARMS_META_KEY, encodeAlarms(alarms)]);

  const keys = buckets.get(B.key)!;
  function* versions(): Generator<ImportedVersion> {
    for (const e of keys.entries(true)) {
      const { main, sub, tombstone } = parseRev(e.key);
      const what = `bucket key: revision ${main}/${sub}`;
      const kv = decodeKeyValue(e.value, what);
      if (!kv.key.length) throw new BoltError(`${what}: a version without its key`);
      if (!tombstone && kv.mod !== main) throw new BoltError(`${what}: its mod_revision is ${kv.mod}`);
      yield { main, sub, key: kv.key, value: kv.value, create: kv.create, version: kv.version, lease: kv.lease, tombstone };
    }
  }
  return { versions: { [Symbol.iterator]: versions }, leases: { [Symbol.iterator]: leases }, metaValues, finishedCompactRev, scheduledCompactRev, consistentIndex };
}

function decodeMessage<T>(type: { decode(b: Uint8Array): T }, b: Buffer, what: string): T {
  try {
    return type.decode(b);
  } catch (err) {
    throw new BoltError(`${what}: malformed message (${(err as Error).message})`);
  }
}

/**
 * etcdctl snapshot status of a bbolt file (clientv3/snapshot Status): bbolt's consistency check first, then a
 * CRC-32C over every top-level bucket's name and its keys and values, the revision of the last key of `key`, the
 * number of entries, and the database's size.
 */
export function etcdSnapshotStatus(reader: BoltReader): { hash: number; revision: number; totalKey: number; totalSize: number } {
  const errors = reader.check();
  if (errors.length) throw new BoltError(`snapshot file integrity check failed. ${errors.length} errors found.\n${errors.join('\n')}`);
  let hash = 0;
  let revision = 0;
  let totalKey = 0;
  const root = reader.root();
  for (const b of root.entries()) {
    if (!b.bucket) throw new BoltError(`cannot get hash of bucket ${b.key.toString()}`);
    hash = crc32c(b.key, hash);
    const isKey = b.key.toString('latin1') === B.key;
    for (const e of root.open(b).entries()) {
      hash = crc32c(e.key, hash);
      if (!e.bucket) hash = crc32c(e.value, hash);
      if (isKey) revision = e.key.length >= 8 ? Number(e.key.readBigInt64BE(0)) : 0;
      totalKey++;
    }
  }
  return { hash, revision, totalKey, totalSize: reader.dbSize };
}

// ---- writing etcd's backend ----

/** The membership written into the members, members_removed and cluster buckets. */
export interface EtcdMembership {
  members: Member[];
  /** IDs (hex) of removed members */
  removed: string[];
  version: string | undefined;
}

/** Where streamEtcdBackend hands the file: its size first, then its bytes in order, as runs of whole pages. */
export interface BackendOut {
  begin(size: number): void;
  /** Takes the next runs; the file's next bytes are made once the promise resolves (a rejection stops it). */
  write(runs: Buffer[]): Promise<void>;
}

/** The longest the walk runs before it lets the event loop run (when no run of pages was handed out meanwhile). */
const SLICE_MS = 4;

const cmpBuf = (a: Buffer, b: Buffer): number => Buffer.compare(a, b);
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Streams etcd's backend of a store view, a bbolt file etcd 3.4 opens (its snapshot restore, its server, bbolt's
 * check), to `out` from its first byte as its pages are made: a layout pass over the view (sizes only) gives the
 * meta pages, then a stream pass makes the pages in file order (whole pages only, a run at a time). The view is read
 * twice, so it must be one point in time (withSnapshotView); the event loop runs between runs and every few ms.
 * Returns the file's size.
 */
export async function streamEtcdBackend(view: StoreView, membership: EtcdMembership | undefined, out: BackendOut): Promise<number> {
  let since = performance.now();
  const resumed = (): void => {
    since = performance.now();
  };
  const pause = (): Promise<void> | undefined => (performance.now() - since >= SLICE_MS ? turn().then(resumed) : undefined);
  const counted = BoltWriter.layout();
  await fillBackend(counted, view, membership, pause);
  const layout = counted.finish();
  const size = layout.pgid * layout.pageSize;
  out.begin(size);
  const w = BoltWriter.stream(layout);
  await fillBackend(w, view, membership, () => (w.pending > 0 ? out.write(w.take()).then(resumed) : pause()));
  w.finish();
  const rest = w.take();
  if (rest.length) await out.write(rest);
  return size;
}

/** Writes etcd's backend of a store view into file (streamEtcdBackend, made durable; none on a failure). Returns its size. */
export async function writeEtcdBackend(view: StoreView, file: string, membership: EtcdMembership | undefined): Promise<number> {
  const fh = await fs.promises.open(file, 'w', 0o600);
  try {
    let at = 0;
    const size = await streamEtcdBackend(view, membership, {
      begin: () => undefined,
      write: async (runs) => {
        at += (await fh.writev(runs, at)).bytesWritten;
      },
    });
    if (at !== size) throw new Error(`etcd backend: ${at} bytes written of ${size}`);
    await fh.sync();
    await fh.close();
    return size;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(file, { force: true });
    throw err;
  }
}

/**
 * Puts etcd's buckets of the view into a writer (the same calls in the layout and the stream pass, so the same
 * pages); `step` runs after each version and lease, and is awaited when it returns a promise.
 */
async function fillBackend(w: BoltWriter, view: StoreView, membership: EtcdMembership | undefined, step: () => Promise<void> | undefined): Promise<void> {
  const bucket = (name: string, entries: [Buffer, Buffer][]): void => {
    const b = w.root.bucket(Buffer.from(name));
    for (const [k, v] of entries.sort((x, y) => cmpBuf(x[0], y[0]))) b.put(k, v);
    b.end();
  };
  const auth = decodeAuthState(view.metaValue(AUTH_META_KEY));
  const hasAuth = view.metaValue(AUTH_META_KEY) !== undefined;

  bucket(B.alarm, decodeAlarms(view.metaValue(ALARMS_META_KEY)).map((a) => [Buffer.from(AlarmMember.encode(a).finish()), EMPTY]));
  bucket(B.auth, [...(hasAuth ? [[Buffer.from('authEnabled'), Buffer.from([auth.enabled ? 1 : 0])] as [Buffer, Buffer]] : []), [Buffer.from('authRevision'), u64be(auth.revision)]]);
  bucket(B.authRoles, auth.roles.map((r) => [Buffer.from(r.name), Buffer.from(Role.encode(r).finish())]));
  bucket(B.authUsers, auth.users.map((u) => [Buffer.from(u.name), Buffer.from(User.encode(u).finish())]));
  bucket(B.cluster, membership?.version ? [[Buffer.from('clusterVersion'), Buffer.from(membership.version)]] : []);

  const keys = w.root.bucket(Buffer.from(B.key));
  for (const { rev, rec } of view.versions()) {
    putVersion(keys, rev, rec);
    const p = step();
    if (p) await p;
  }
  keys.end();

  const leases = w.root.bucket(Buffer.from(B.lease));
  for (const l of view.leases()) {
    const k = Buffer.alloc(8);
    k.writeBigInt64BE(l.id, 0);
    leases.put(k, encodeLease(l));
    const p = step();
    if (p) await p;
  }
  leases.end();

  bucket(B.members, (membership?.members ?? []).map((m) => [Buffer.from(m.id), Buffer.from(etcdMemberJSON(m))]));
  bucket(B.membersRemoved, (membership?.removed ?? []).map((id) => [Buffer.from(id), Buffer.from('removed')]));
  const meta: [Buffer, Buffer][] = [[Buffer.from('consistent_index'), u64be(view.consistentIndex)]];
  if (view.finishedCompactRev !== undefined) meta.push([Buffer.from('finishedCompactRev'), etcdRev(view.finishedCompactRev, 0, false)]);
  if (view.scheduledCompactRev !== undefined) meta.push([Buffer.from('scheduledCompactRev'), etcdRev(view.scheduledCompactRev, 0, false)]);
  bucket(B.meta, meta);
}

/**
 * One version into the key bucket, as etcd keeps it; its KeyValue is written straight into the page (the record may
 * be a view of the store's memory, valid only until the next is read: nothing of it is kept).
 */
function putVersion(keys: BucketWriter, rev: Buffer, rec: Buffer): void {
  const main = readU64(rev, 0);
  const sub = readU64(rev, 8);
  const key = recordKey(rec);
  if (recordIsTombstone(rec)) {
    keys.put(etcdRev(main, sub, true), encodeKeyValue(key, 0, 0, 0, EMPTY, 0n));
    return;
  }
  const create = readU64(rec, 1);
  const version = readU64(rec, 9);
  const lease = rec.readUInt32BE(17) === 0 && rec.readUInt32BE(21) === 0 ? 0n : rec.readBigInt64BE(17);
  const value = recordValue(rec);
  const size = keyValueSize(key.length, create, main, version, value.length, lease);
  keys.putWith(etcdRev(main, sub, false), size, (dst, at) => writeKeyValue(dst, at, key, create, main, version, value, lease));
}
