/**
 * A keep-alive answer encoded straight from the header's shared bytes (lease-keepalive.ts) is byte for byte what the
 * generated LeaseKeepAliveResponse.encode writes, for every int64 a client may name: zero (left out), small, lease
 * IDs with high bits set, the int64 extremes and negative ones (ten-byte varints); and the shared header bytes are
 * the header's own encoding, encoded again when the revision or term moves.
 */
import { encodeKeepAliveResponse } from '../../server/api/v3rpc/lease-keepalive';
import { LeaseKeepAliveResponse, ResponseHeader } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { HeaderBytes } from '../../server/api/v3rpc/wire';

const INT64 = [0n, 1n, 127n, 128n, 300n, 2n ** 31n - 1n, 2n ** 32n, 2n ** 35n + 7n, 0x694d8e3c1a2b3c4dn, 2n ** 63n - 1n, -1n, -128n, -(2n ** 32n), -(2n ** 63n)];

test('every ID and TTL is encoded as the generated encoder does', () => {
  const header = { clusterId: 0xcdf818194e3a8c32n, memberId: 0x8e9e05c52164694dn, revision: 123456n, raftTerm: 7n };
  const hb = ResponseHeader.encode(header).finish();
  for (const ID of INT64) {
    for (const TTL of [0n, 1n, 60n, 9_000_000_000n, -1n]) {
      const want = Buffer.from(LeaseKeepAliveResponse.encode({ header, ID, TTL }).finish());
      const got = encodeKeepAliveResponse(hb, ID, TTL);
      if (!got.equals(want)) throw new Error(`ID ${ID} TTL ${TTL}: ${got.toString('hex')} != ${want.toString('hex')}`);
    }
  }
  // an empty header is still written (as the generated code writes a present header)
  expect(LeaseKeepAliveResponse.decode(encodeKeepAliveResponse(new Uint8Array(0), 5n, 0n))).toEqual({ header: { clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n }, ID: 5n, TTL: 0n });
});

test("the header's bytes follow the revision and the term", () => {
  let rev = 5n;
  let term = 2n;
  const headers = new HeaderBytes({ clusterId: () => 11n, memberId: () => 22n, raftTerm: () => term, revision: () => rev });
  const decode = (b: Uint8Array) => ResponseHeader.decode(b);
  const first = headers.current();
  expect(decode(first)).toEqual({ clusterId: 11n, memberId: 22n, revision: 5n, raftTerm: 2n });
  expect(headers.current()).toBe(first); // unchanged: the same bytes
  rev = 6n;
  expect(decode(headers.current())).toEqual({ clusterId: 11n, memberId: 22n, revision: 6n, raftTerm: 2n });
  term = 3n;
  expect(decode(headers.current())).toEqual({ clusterId: 11n, memberId: 22n, revision: 6n, raftTerm: 3n });
  expect(decode(first)).toEqual({ clusterId: 11n, memberId: 22n, revision: 5n, raftTerm: 2n }); // handed-out bytes stay
});
