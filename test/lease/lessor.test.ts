/**
 * The lessor over a real MVCC store, on a simulated clock: grants on every member, expiry decided by the primary
 * alone, renewals, revocation of a lease's keys at one revision, keys moving between leases, persistence across a
 * reopen, promote's fresh TTLs (spread when there are many), checkpoints.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as client from 'prom-client';
import { MvccStore } from '../../server/mvcc/store';
import {
  ErrLeaseExists, ErrLeaseNotFound, ErrLeaseTTLTooLarge, ErrNotPrimary, Lessor, LessorOptions, MAX_LEASE_TTL, type Checkpoint,
} from '../../server/lease/lessor';
import { LeaseMetrics } from '../../server/lease/metrics';
import { minLeaseTTL, LeaseIdGenerator } from '../../server/etcdserver/v3-lease';

const b = (s: string) => Buffer.from(s);
let dir: string;
let store: MvccStore;
let now: number;
let index: number;

function lessor(extra: Partial<LessorOptions> = {}): Lessor {
  return new Lessor({ store, minTTL: 2, now: () => now, expiredRetryMs: 7000, ...extra });
}

function put(key: string, lease: bigint): void {
  const t = store.write(++index);
  t.put(b(key), b('v'), lease);
  t.end();
}

function del(key: string): void {
  const t = store.write(++index);
  t.deleteRange(b(key), undefined);
  t.end();
}

const keysOf = (le: Lessor, id: bigint) => le.lookup(id)?.keyList().map(String);
const ids = (ls: { id: bigint }[]) => ls.map((l) => l.id);

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'lessor-'));
  store = MvccStore.open(dir, { batchInterval: 5 });
  now = 1_700_000_000_000;
  index = 0;
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test("etcd's minimum TTL: 1.5 election timeouts in whole heartbeats, rounded up to the second", () => {
  expect(minLeaseTTL(1000, 100)).toBe(2); // etcd's defaults: 15 ticks of 100 ms
  expect(minLeaseTTL(5000, 500)).toBe(8); // 15 ticks of 500 ms = 7.5 s
  expect(minLeaseTTL(250, 50)).toBe(1);
  expect(minLeaseTTL(1050, 100)).toBe(2); // 10 ticks (integer division), 15 * 100 ms
  expect(minLeaseTTL(3000, 200)).toBe(5); // (3 * 15) / 2 = 22 ticks of 200 ms = 4.4 s
});

test('lease IDs: the member ID in the top bits, positive, counting up', () => {
  const g = new LeaseIdGenerator('bdae9bbc11dd390d', 1_700_000_000_000);
  const a = g.next();
  const c = g.next();
  expect(c).toBe(a + 1n);
  expect(a >> 48n).toBe(0x390dn);
  expect(a > 0n).toBe(true);
  const high = new LeaseIdGenerator('ffff', 0).next();
  expect(high > 0n).toBe(true); // the top bit is cleared
  expect(high >> 48n).toBe(0x7fffn);
});

test('grant: minimum TTL, exact 64-bit IDs, etcd errors for an existing lease, a too large TTL, ID 0', () => {
  const le = lessor();
  const id = 0x7fffffffffffffffn;
  expect(le.grant(id, 1).ttl).toBe(2);
  expect(le.grant(-5n, 60).ttl).toBe(60);
  expect(le.lookup(id)?.id).toBe(id);
  expect(() => le.grant(id, 10)).toThrow(ErrLeaseExists);
  expect(() => le.grant(7n, MAX_LEASE_TTL + 1)).toThrow(ErrLeaseTTLTooLarge);
  expect(le.grant(8n, MAX_LEASE_TTL).ttl).toBe(MAX_LEASE_TTL);
  expect(() => le.grant(0n, 10)).toThrow(ErrLeaseNotFound);
  expect(le.size).toBe(3);
});

test('a lessor that is not primary never expires a lease and does not renew', async () => {
  const le = lessor();
  le.grant(1n, 5);
  now += 3600_000;
  expect(le.findExpired(100)).toEqual([]);
  expect(le.lookup(1n)?.remainingSeconds(now)).toBe(9223372036); // forever, as etcd shows it
  await expect(le.renew(1n)).rejects.toThrow(ErrNotPrimary);
});

test('the primary: a lease expires its TTL plus the extension after promote, and is offered again only after the retry interval', () => {
  const le = lessor();
  le.grant(1n, 5);
  le.grant(2n, 12);
  le.promote(1000);
  expect(le.lookup(1n)?.remainingSeconds(now)).toBe(6);
  now += 5999;
  expect(le.findExpired(100)).toEqual([]);
  now += 1;
  expect(ids(le.findExpired(100))).toEqual([1n]);
  expect(le.findExpired(100)).toEqual([]); // its revocation is under way
  now += 6999;
  expect(le.findExpired(100)).toEqual([]);
  now += 1;
  // still not revoked after the retry interval: offered again, with the second one now expired too
  expect(ids(le.findExpired(100)).sort()).toEqual([1n, 2n]);
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(-7); // Go's truncation toward zero
});

test('findExpired returns at most the limit per round', () => {
  const le = lessor();
  for (let i = 1n; i <= 30n; i++) le.grant(i, 5);
  le.promote(0);
  now += 5000;
  expect(le.findExpired(10)).toHaveLength(10);
  expect(le.findExpired(100)).toHaveLength(20);
});

test('a lease granted on the primary expires from its grant; renew gives it its TTL again', async () => {
  const le = lessor();
  le.promote(1000);
  le.grant(1n, 10);
  now += 8000;
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(2);
  expect(await le.renew(1n)).toBe(10);
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(10);
  now += 9999;
  expect(le.findExpired(100)).toEqual([]);
  now += 1;
  expect(ids(le.findExpired(100))).toEqual([1n]);
  await expect(le.renew(99n)).rejects.toThrow(ErrLeaseNotFound);
});

test('renewing an expired lease waits for its revocation (not found) or for a demotion (not primary)', async () => {
  const le = lessor();
  le.promote(0);
  le.grant(1n, 5);
  le.grant(2n, 5);
  now += 6000;
  const r1 = le.renew(1n);
  const r2 = le.renew(2n);
  let settled = false;
  r1.catch(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  expect(settled).toBe(false);
  le.revoke(1n, ++index);
  await expect(r1).rejects.toThrow(ErrLeaseNotFound);
  le.demote();
  await expect(r2).rejects.toThrow(ErrNotPrimary);
});

test('demote: leases stop expiring; promote again gives each a fresh TTL', () => {
  const le = lessor();
  le.grant(1n, 5);
  le.promote(0);
  now += 4000;
  le.demote();
  now += 10_000;
  expect(le.findExpired(10)).toEqual([]);
  le.promote(2000);
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(7);
});

test('revoke deletes the lease keys at one revision, in key order, and the lease with them', () => {
  const le = lessor();
  le.grant(1n, 60);
  le.grant(2n, 60);
  put('b', 1n);
  put('a', 1n);
  put('c', 2n);
  put('d', 0n);
  const rev = store.rev();
  expect(keysOf(le, 1n)).toEqual(['a', 'b']);
  le.revoke(1n, ++index);
  expect(store.rev()).toBe(rev + 1);
  expect(store.range(b('a'), b('z')).kvs.map((kv) => String(kv.key))).toEqual(['c', 'd']);
  // both deletes at the same main revision, a before b
  const past = store.range(b('a'), b('c'), { rev });
  expect(past.kvs.map((kv) => String(kv.key))).toEqual(['a', 'b']);
  expect(le.lookup(1n)).toBeUndefined();
  expect(() => le.revoke(1n, ++index)).toThrow(ErrLeaseNotFound);
  // a lease without keys: revoked without a new revision
  le.grant(3n, 60);
  le.revoke(3n, ++index);
  expect(store.rev()).toBe(rev + 1);
  expect(store.consistentIndex()).toBe(index);
});

test('keys follow their lease: a put with another lease moves the key, a put without one or a delete detaches it', () => {
  const le = lessor();
  le.grant(1n, 60);
  le.grant(2n, 60);
  put('k', 1n);
  put('j', 1n);
  expect(keysOf(le, 1n)).toEqual(['j', 'k']);
  put('k', 2n);
  expect(keysOf(le, 1n)).toEqual(['j']);
  expect(keysOf(le, 2n)).toEqual(['k']);
  put('k', 0n);
  expect(keysOf(le, 2n)).toEqual([]);
  del('j');
  expect(keysOf(le, 1n)).toEqual([]);
  put('k', 1n);
  // revoking 2 now leaves k alone
  le.revoke(2n, ++index);
  expect(store.range(b('k'), undefined).kvs[0].lease).toBe(1n);
});

test('leases and their keys survive a reopen of the store; a lease never expires there until promoted', async () => {
  let le = lessor();
  le.grant(1n, 60);
  le.grant(0x123456789abcdef0n, 30);
  le.grant(3n, 30);
  put('x', 1n);
  put('y', 0x123456789abcdef0n);
  put('z', 0x123456789abcdef0n);
  le.revoke(3n, ++index);
  put('x', 0x123456789abcdef0n);
  await store.close();
  store = MvccStore.open(dir, { batchInterval: 5 });
  le = lessor();
  expect(le.leases().map((l) => l.id).sort()).toEqual([1n, 0x123456789abcdef0n]);
  expect(keysOf(le, 1n)).toEqual([]);
  expect(keysOf(le, 0x123456789abcdef0n)).toEqual(['x', 'y', 'z']);
  expect(le.lookup(1n)!.ttl).toBe(60);
  now += 3600_000;
  expect(le.findExpired(10)).toEqual([]);
  le.promote(1000);
  expect(le.lookup(0x123456789abcdef0n)!.remainingSeconds(now)).toBe(31);
});

test('a stored TTL below the minimum is raised to it when loaded', async () => {
  let le = lessor({ minTTL: 2 });
  le.grant(1n, 3);
  await store.close();
  store = MvccStore.open(dir, { batchInterval: 5 });
  le = lessor({ minTTL: 8 });
  expect(le.lookup(1n)!.ttl).toBe(8);
});

test('promote with many leases spreads their expiries: no second sees more than 3/4 of the revoke rate', () => {
  const le = lessor();
  for (let i = 1n; i <= 3000n; i++) le.grant(i, 10);
  le.promote(0);
  const perSecond = new Map<number, number>();
  for (const l of le.leases()) {
    const s = Math.floor((l.expiry - now) / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  }
  expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(750);
  expect(Math.min(...le.leases().map((l) => l.expiry - now))).toBe(10_000);
});

test('checkpoints: due ones carry the remaining TTL; a new primary starts a lease from it; renew clears it', async () => {
  const sent: Checkpoint[][] = [];
  let le: Lessor;
  // the checkpointer proposes through the log; applied, it reaches the lessor
  const checkpointer = (c: Checkpoint[]) => {
    sent.push(c);
    for (const cp of c) le.checkpoint(cp.id, cp.remainingTTL);
  };
  le = lessor({ checkpointer, checkpointIntervalMs: 60_000 });
  le.grant(1n, 300);
  le.grant(2n, 30); // shorter than the interval: never checkpointed
  le.promote(0);
  now += 59_999;
  expect(le.dueCheckpoints(10)).toEqual([]);
  now += 1;
  expect(le.dueCheckpoints(10)).toEqual([{ id: 1n, remainingTTL: 240 }]);
  le.checkpoint(1n, 240); // applied from the log
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(240);
  le.demote();
  le.promote(1000);
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(241);
  expect(await le.renew(1n)).toBe(300);
  expect(sent).toEqual([[{ id: 1n, remainingTTL: 0 }]]); // the checkpoint is cleared through the log
  expect(le.lookup(1n)!.remainingSeconds(now)).toBe(300);
});

test('with checkpoint persistence the remaining TTL survives a reopen; without it, it does not', async () => {
  for (const persist of [true, false]) {
    let le = lessor({ checkpointer: () => undefined, checkpointPersist: persist });
    const id = persist ? 1n : 2n;
    le.grant(id, 300);
    le.checkpoint(id, 100);
    store.setConsistentIndex(++index);
    await store.close();
    store = MvccStore.open(dir, { batchInterval: 5 });
    le = lessor({ checkpointer: () => undefined, checkpointPersist: persist });
    le.promote(0);
    expect(le.lookup(id)!.remainingSeconds(now)).toBe(persist ? 100 : 300);
  }
});

test("metrics: granted, revoked, renewed and the TTL histogram under etcd's names", async () => {
  const r = new client.Registry();
  const le = lessor({ metrics: new LeaseMetrics(r) });
  le.grant(1n, 5);
  le.grant(2n, 100);
  le.promote(0);
  await le.renew(1n);
  le.revoke(2n, ++index);
  const text = await r.metrics();
  expect(text).toContain('etcd_debugging_lease_granted_total 2');
  expect(text).toContain('etcd_debugging_lease_revoked_total 1');
  expect(text).toContain('etcd_debugging_lease_renewed_total 1');
  expect(text).toContain('etcd_debugging_lease_ttl_total_bucket{le="8"} 1');
  expect(text).toContain('etcd_debugging_lease_ttl_total_count 2');
  expect(text).toContain('etcd_debugging_lease_ttl_total_sum 105');
});

test("a snapshot of the store carries the leases and their keys to a member that loads it (its lessor recovers them)", async () => {
  const le = lessor();
  le.grant(1n, 60);
  le.grant(2n, 30);
  put('a', 1n);
  put('b', 2n);
  const dump = store.dumpSync();
  const dir2 = mkdtempSync(path.join(tmpdir(), 'lessor-'));
  const other = MvccStore.open(dir2, { batchInterval: 5 });
  try {
    const le2 = new Lessor({ store: other, minTTL: 2, now: () => now, expiredRetryMs: 7000 });
    le2.grant(9n, 10); // replaced by the snapshot's
    other.loadSync(dump);
    le2.recover();
    expect(le2.leases().map((l) => l.id).sort()).toEqual([1n, 2n]);
    expect(keysOf(le2, 1n)).toEqual(['a']);
    expect(keysOf(le2, 2n)).toEqual(['b']);
    // and keys keep following their leases there
    const t = other.write(other.consistentIndex() + 1);
    t.put(b('a'), b('w'), 2n);
    t.end();
    expect(keysOf(le2, 2n)).toEqual(['a', 'b']);
  } finally {
    await other.close();
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('a snapshot dump of the first release (four tables, no leases) still loads', async () => {
  put('a', 0n);
  const dump = store.dumpSync();
  // MVD2 → MVD1 without the two lease tables (each empty: a table byte and the end mark)
  const v1 = Buffer.concat([Buffer.from('MVD1'), dump.subarray(4, dump.length - 10)]);
  expect(dump.subarray(dump.length - 10)).toEqual(Buffer.from([4, 0xff, 0xff, 0xff, 0xff, 5, 0xff, 0xff, 0xff, 0xff]));
  MvccStore.validateDump(v1);
  store.loadSync(v1);
  expect(store.range(b('a'), undefined).kvs.map((kv) => String(kv.value))).toEqual(['v']);
});
