/**
 * Protobuf wire pieces for responses written straight into a buffer (watch events, keep-alive answers): varints and a
 * response header's bytes encoded once for every response at the same revision. The bytes are the ones the
 * generated encoders write.
 */
import { ResponseHeader } from './pb/etcdserverpb/rpc';
import type { HeaderProvider } from './kv';
import { encodeMessage } from './service';

/** The size of a varint of a non-negative number below 2^35. */
export const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** A non-negative number below 2^32 as a varint at buf[at]; returns the offset after it. */
export function putVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * An int64 or uint64 field's value as the two 32-bit halves of its 64-bit two's complement (a negative int64 is a
 * varint of 10 bytes, as protobuf writes it).
 */
export class Varint64 {
  lo = 0;
  hi = 0;

  set(v: bigint): this {
    if (v >= 0n && v < 0x100000000n) {
      this.lo = Number(v);
      this.hi = 0;
    } else {
      const u = BigInt.asUintN(64, v);
      this.lo = Number(u & 0xffffffffn);
      this.hi = Number(u >> 32n);
    }
    return this;
  }

  size(): number {
    let { lo, hi } = this;
    let n = 1;
    while (hi) {
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
      n++;
    }
    while (lo > 0x7f) {
      lo >>>= 7;
      n++;
    }
    return n;
  }

  /** Writes the varint at buf[at]; returns the offset after it. */
  put(buf: Buffer, at: number): number {
    let { lo, hi } = this;
    while (hi) {
      buf[at++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 0x7f) {
      buf[at++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    buf[at++] = lo;
    return at;
  }
}

/** The response header's bytes, encoded once for every response at the same revision. */
export class HeaderBytes {
  private rev = -1;
  private term = -1n;
  private cluster = -1n;
  private member = -1n;
  private bytes: Uint8Array = new Uint8Array(0);

  constructor(private readonly p: HeaderProvider) {}

  /** The header at this revision (the member's cluster, ID and term as they are now). */
  at(rev: number): Uint8Array {
    const { p } = this;
    const term = p.raftTerm();
    const cluster = p.clusterId();
    const member = p.memberId();
    if (rev !== this.rev || term !== this.term || cluster !== this.cluster || member !== this.member) {
      this.bytes = encodeMessage(ResponseHeader, { clusterId: cluster, memberId: member, revision: BigInt(rev), raftTerm: term });
      this.rev = rev;
      this.term = term;
      this.cluster = cluster;
      this.member = member;
    }
    return this.bytes;
  }

  /** The header at the store's current revision (etcd's header.fill). */
  current(): Uint8Array {
    return this.at(Number(this.p.revision()));
  }
}
