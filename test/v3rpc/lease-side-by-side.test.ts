/**
 * The Lease service side by side with Debian's etcd 3.4: the same requests, in the same order, on a fresh member of
 * each, answer the same (responses with their header revisions, or the same gRPC code and message): grants with
 * given and chosen IDs, the minimum TTL, etcd's errors, revocation of a lease and its keys at one revision,
 * TimeToLive with keys, the lease list, keep-alives of known and unknown leases, puts and txns with leases.
 */
import * as grpc from '@grpc/grpc-js';
import {
  Compare, Compare_CompareResult, Compare_CompareTarget, KVClient, LeaseClient, LeaseGrantRequest, LeaseKeepAliveRequest,
  LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { sideBySide, type SideBase } from '../support/side-by-side';

jest.setTimeout(120_000);

const b = (s: string) => Buffer.from(s);

interface Side extends SideBase {
  lease: LeaseClient;
  kv: KVClient;
}

type Unary<Req> = (req: Req, cb: (err: grpc.ServiceError | null, res: unknown) => void) => unknown;

/** A response without the header's ids and term (they differ between two clusters); errors as code and message. */
function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (Buffer.isBuffer(v)) return v.toString();
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'header') out.revision = (x as { revision: bigint } | undefined)?.revision;
      else out[k] = normalize(x);
    }
    return out;
  }
  return v;
}

function call<Req>(client: grpc.Client, method: Unary<Req>, req: Req): Promise<unknown> {
  return new Promise((resolve) =>
    method.call(client, req, (err, res) => resolve(err ? `${grpc.status[err.code]}: ${err.details}` : normalize(res))),
  );
}

/** Sends ids one by one on a keep-alive stream, each after the previous answer; the answers. */
function keepAlive(c: LeaseClient, ids: bigint[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const stream = c.leaseKeepAlive();
    const out: unknown[] = [];
    stream.on('data', (r: LeaseKeepAliveResponse) => {
      out.push(normalize(r));
      if (out.length === ids.length) stream.end();
      else stream.write(LeaseKeepAliveRequest.fromPartial({ ID: ids[out.length] }));
    });
    stream.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve(out) : reject(err)));
    stream.on('end', () => resolve(out));
    stream.write(LeaseKeepAliveRequest.fromPartial({ ID: ids[0] }));
  });
}

describe("Lease side by side with Debian's etcd 3.4", () => {
  const { sides, same } = sideBySide<Side>(
    'lease',
    (base, target) => ({ ...base, lease: new LeaseClient(target, grpc.credentials.createInsecure()), kv: new KVClient(target, grpc.credentials.createInsecure()) }),
    (s) => {
      s.lease.close();
      s.kv.close();
    },
  );

  const grant = (s: Side, ID: bigint, TTL: bigint) => call(s.lease, s.lease.leaseGrant, LeaseGrantRequest.fromPartial({ ID, TTL }));
  const revoke = (s: Side, ID: bigint) => call(s.lease, s.lease.leaseRevoke, LeaseRevokeRequest.fromPartial({ ID }));
  const ttl = (s: Side, ID: bigint, keys = false) => call(s.lease, s.lease.leaseTimeToLive, LeaseTimeToLiveRequest.fromPartial({ ID, keys }));
  const put = (s: Side, key: string, lease: bigint, extra: Partial<PutRequest> = {}) => call(s.kv, s.kv.put, PutRequest.fromPartial({ key: b(key), value: b('v'), lease, ...extra }));
  const get = (s: Side, key: string) => call(s.kv, s.kv.range, RangeRequest.fromPartial({ key: b(key) }));

  test('grants: given IDs (64-bit, negative too), the minimum TTL, etcd errors', async () => {
    expect(await same((s) => grant(s, 0x7fffffffffffffffn, 60n))).toEqual({ revision: 1n, ID: 0x7fffffffffffffffn, TTL: 60n, error: '' });
    expect(await same((s) => grant(s, 0x1234n, 1n))).toEqual({ revision: 1n, ID: 0x1234n, TTL: 2n, error: '' });
    await same((s) => grant(s, 0x1235n, 0n));
    await same((s) => grant(s, 0x1236n, -100n));
    await same((s) => grant(s, -5n, 30n));
    expect(await same((s) => grant(s, 0x1234n, 10n))).toBe('FAILED_PRECONDITION: etcdserver: lease already exists');
    expect(await same((s) => grant(s, 0x99n, 9000000001n))).toBe('OUT_OF_RANGE: etcdserver: too large lease TTL');
    await same((s) => grant(s, 0x9an, 9000000000n));
    await same((s) => grant(s, 0x9bn, 0x7fffffffffffffffn));
  });

  test('a grant without an ID gets a positive one chosen by the server', async () => {
    const [a, c] = (await Promise.all(sides().map((s) => grant(s, 0n, 20n)))) as { ID: bigint; TTL: bigint; error: string }[];
    for (const r of [a, c]) expect([r.ID > 0n, r.TTL, r.error]).toEqual([true, 20n, '']);
    const [ta, tc] = await Promise.all(sides().map((s, i) => ttl(s, [a, c][i].ID)));
    expect(normalizeTTL(tc, c.ID)).toEqual(normalizeTTL(ta, a.ID));
    await Promise.all(sides().map((s, i) => revoke(s, [a, c][i].ID)));
  });

  /** A TimeToLive answer with the given ID replaced and the remaining TTL as "within a second of the TTL". */
  function normalizeTTL(r: unknown, id: bigint): unknown {
    const x = r as { ID: bigint; TTL: bigint; grantedTTL: bigint };
    return { ...x, ID: x.ID === id ? 'the ID' : x.ID, TTL: x.TTL >= x.grantedTTL - 1n && x.TTL <= x.grantedTTL ? 'fresh' : x.TTL };
  }

  test('puts and txns with leases: unknown leases refused, keys attached, ignore_lease keeps the lease, LEASE compares', async () => {
    await same((s) => grant(s, 0x100n, 100n));
    await same((s) => grant(s, 0x200n, 100n));
    expect(await same((s) => put(s, 'k1', 0x777n))).toBe('NOT_FOUND: etcdserver: requested lease not found');
    expect(await same((s) => put(s, 'k1', 0x100n))).toEqual({ revision: 2n, prevKv: undefined });
    await same((s) => put(s, 'k2', 0x100n));
    await same((s) => put(s, 'k3', 0x200n));
    await same((s) => put(s, 'k2', 0n, { value: b('w'), ignoreLease: true }));
    // a put with neither lease nor ignore_lease detaches the key; put back, with ignore_value
    expect(await same((s) => put(s, 'k1', 0n, { value: b('z') }))).toEqual({ revision: 6n, prevKv: undefined });
    expect(await same((s) => ttl(s, 0x100n, true))).toMatchObject({ keys: ['k2'] });
    await same((s) => put(s, 'k1', 0x100n, { ignoreValue: true, value: Buffer.alloc(0), prevKv: true }));
    expect(await same((s) => get(s, 'k1'))).toMatchObject({ kvs: [{ key: 'k1', value: 'z', lease: 0x100n }] });
    expect(await same((s) => put(s, 'nokey', 0n, { ignoreLease: true }))).toBe('INVALID_ARGUMENT: etcdserver: key not found');
    await same((s) => get(s, 'k1'));
    expect(await same((s) => get(s, 'k2'))).toMatchObject({ kvs: [{ key: 'k2', value: 'w', lease: 0x100n }] });
    const txn = (s: Side, compareLease: bigint, putLease: bigint) =>
      call(s.kv, s.kv.txn, TxnRequest.fromPartial({
        compare: [Compare.fromPartial({ key: b('k3'), target: Compare_CompareTarget.LEASE, result: Compare_CompareResult.EQUAL, lease: compareLease })],
        success: [RequestOp.fromPartial({ requestPut: { key: b('t1'), value: b('x'), lease: putLease } })],
        failure: [RequestOp.fromPartial({ requestRange: { key: b('k3') } })],
      }));
    expect(await same((s) => txn(s, 0x200n, 0x100n))).toMatchObject({ succeeded: true });
    expect(await same((s) => txn(s, 0x100n, 0x100n))).toMatchObject({ succeeded: false });
    expect(await same((s) => txn(s, 0x200n, 0x999n))).toBe('NOT_FOUND: etcdserver: requested lease not found');
    // TimeToLive with keys (etcd lists them in map order: compared sorted)
    const sorted = (r: unknown) => ({ ...(r as object), keys: [...(r as { keys: string[] }).keys].sort(), TTL: 'checked apart' });
    const [t1, t2] = await Promise.all(sides().map((s) => ttl(s, 0x100n, true)));
    expect(sorted(t2)).toEqual(sorted(t1));
    expect(sorted(t2)).toMatchObject({ grantedTTL: 100n, keys: ['k1', 'k2', 't1'] });
    expect((t2 as { TTL: bigint }).TTL).toBeGreaterThanOrEqual(98n);
    await same((s) => ttl(s, 0x200n, false));
    expect(await same((s) => ttl(s, 0x555n, true))).toEqual({ revision: expect.any(BigInt), ID: 0x555n, TTL: -1n, grantedTTL: 0n, keys: [] });
  });

  test('revoke deletes the keys at one revision; a lease without keys revokes without a revision; unknown: not found', async () => {
    const before = (await same((s) => get(s, 'k1'))) as { revision: bigint };
    expect(await same((s) => revoke(s, 0x100n))).toEqual({ revision: before.revision + 1n });
    expect(await same((s) => get(s, 'k1'))).toMatchObject({ kvs: [], count: 0n });
    expect(await same((s) => get(s, 'k3'))).toMatchObject({ count: 1n });
    expect(await same((s) => revoke(s, 0x1235n))).toEqual({ revision: before.revision + 1n });
    expect(await same((s) => revoke(s, 0x100n))).toBe('NOT_FOUND: etcdserver: requested lease not found');
    expect(await same((s) => revoke(s, 0n))).toBe('NOT_FOUND: etcdserver: requested lease not found');
  });

  test('the lease list and keep-alives of known and unknown leases', async () => {
    const ids = (r: unknown) => ((r as { leases: { ID: bigint }[] }).leases.map((l) => l.ID)).sort((x, y) => (x < y ? -1 : 1));
    const [l1, l2] = await Promise.all(sides().map((s) => call(s.lease, s.lease.leaseLeases, {})));
    expect(ids(l2)).toEqual(ids(l1));
    expect(ids(l2)).toContain(0x200n);
    expect(await same((s) => keepAlive(s.lease, [0x200n, 0x404n, 0x1234n, 0x7fffffffffffffffn]))).toEqual([
      { revision: expect.any(BigInt), ID: 0x200n, TTL: 100n },
      { revision: expect.any(BigInt), ID: 0x404n, TTL: 0n },
      { revision: expect.any(BigInt), ID: 0x1234n, TTL: 2n },
      { revision: expect.any(BigInt), ID: 0x7fffffffffffffffn, TTL: 60n },
    ]);
  });
});
