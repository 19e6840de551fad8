/**
 * The byte layouts of the MVCC store's LMDB databases (see store.ts for what lives where).
 *
 * - revision: 8-byte big-endian main + 8-byte big-endian sub, so LMDB's byte order is revision order (etcd's
 *   revision.go uses main, '_', sub).
 * - record (the `kv` database, by revision): flags(1: bit 0 = tombstone) create(8) version(8) lease(8, signed)
 *   keyLength(4) key value — etcd keeps a marshalled mvccpb.KeyValue there.
 * - meta (the `latest` database, by key, live keys only): mod revision(16) create(8) version(8) lease(8).
 * - history key (the `hist` database): escaped key, 0x00 0x01, revision(16); its value is one byte, 1 for a
 *   tombstone. Zero bytes of the key are written 0x00 0xFF, so for any keys a < b every history key of a sorts before
 *   every history key of b (the terminator 0x00 0x01 sorts below an escaped zero and below any other byte).
 */
export const REV_BYTES = 16;
export const META_BYTES = 40;
export const RECORD_HEADER = 29;
const TWO32 = 2 ** 32;

export function writeU64(buf: Buffer, n: number, at: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO32), at);
  buf.writeUInt32BE(n >>> 0, at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO32 + buf.readUInt32BE(at + 4);
}

export function revBytes(main: number, sub: number): Buffer {
  const b = Buffer.allocUnsafe(REV_BYTES);
  writeU64(b, main, 0);
  writeU64(b, sub, 8);
  return b;
}

export function encodeRecord(key: Buffer, value: Buffer, create: number, version: number, lease: bigint, tomb: boolean): Buffer {
  const b = Buffer.allocUnsafe(RECORD_HEADER + key.length + value.length);
  writeRecord(b, key, value, create, version, lease, tomb);
  return b;
}

/** Writes a record at the start of b (RECORD_HEADER + key and value lengths: the caller's to make room). */
export function writeRecord(b: Buffer, key: Buffer, value: Buffer, create: number, version: number, lease: bigint, tomb: boolean): void {
  b[0] = tomb ? 1 : 0;
  writeU64(b, create, 1);
  writeU64(b, version, 9);
  b.writeBigInt64BE(lease, 17);
  b.writeUInt32BE(key.length, 25);
  key.copy(b, RECORD_HEADER);
  value.copy(b, RECORD_HEADER + key.length);
}

export const recordIsTombstone = (rec: Buffer): boolean => (rec[0] & 1) === 1;
export const recordKey = (rec: Buffer): Buffer => rec.subarray(RECORD_HEADER, RECORD_HEADER + rec.readUInt32BE(25));
export const recordValue = (rec: Buffer): Buffer => rec.subarray(RECORD_HEADER + rec.readUInt32BE(25));

export function encodeMeta(rev: Buffer, create: number, version: number, lease: bigint): Buffer {
  const b = Buffer.allocUnsafe(META_BYTES);
  rev.copy(b, 0);
  writeU64(b, create, 16);
  writeU64(b, version, 24);
  b.writeBigInt64BE(lease, 32);
  return b;
}

/** The history key prefix of a user key (escaped, terminated); `histKey` appends a revision. */
export function histPrefix(key: Buffer, extra = 0): Buffer {
  let zeros = 0;
  for (let i = 0; i < key.length; i++) if (key[i] === 0) zeros++;
  const b = Buffer.allocUnsafe(key.length + zeros + 2 + extra);
  let j = 0;
  if (zeros === 0) {
    key.copy(b, 0);
    j = key.length;
  } else {
    for (let i = 0; i < key.length; i++) {
      b[j++] = key[i];
      if (key[i] === 0) b[j++] = 0xff;
    }
  }
  b[j] = 0;
  b[j + 1] = 1;
  return b;
}

export function histKey(key: Buffer, rev: Buffer): Buffer {
  const b = histPrefix(key, REV_BYTES);
  rev.copy(b, b.length - REV_BYTES);
  return b;
}

/** The user key of a history key (the inverse of histPrefix). */
export function histUserKey(hk: Buffer): Buffer {
  const end = hk.length - REV_BYTES - 2;
  let zeros = 0;
  for (let i = 0; i < end; i++) if (hk[i] === 0) zeros++;
  if (zeros === 0) return hk.subarray(0, end);
  const b = Buffer.allocUnsafe(end - zeros);
  for (let i = 0, j = 0; i < end; i++) {
    b[j++] = hk[i];
    if (hk[i] === 0) i++;
  }
  return b;
}

export const histRev = (hk: Buffer): Buffer => hk.subarray(hk.length - REV_BYTES);

/** LMDB's key limit (1978 bytes at 4 KiB pages) on the longest of our keys, the history key. */
export function keyTooLong(key: Buffer): boolean {
  if (key.length * 2 + 2 + REV_BYTES <= 1978) return false;
  let zeros = 0;
  for (let i = 0; i < key.length; i++) if (key[i] === 0) zeros++;
  return key.length + zeros + 2 + REV_BYTES > 1978;
}
