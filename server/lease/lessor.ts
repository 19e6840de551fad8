/**
 * The lessor (etcd's lease/lessor.go): the leases of the v3 store, their TTLs and the keys attached to them.
 *
 * Every member holds every lease: grants, revocations and checkpoints are log entries applied here on each member
 * (grant/revoke/checkpoint), so leases and their keys are alike everywhere. Time is the primary's alone: only the
 * lessor of the leader (promoted) has expiries; it renews leases for clients and finds the expired ones, which the
 * server then revokes through the log, so every member deletes a lease's keys at the same revision. A follower's
 * leases never expire (forever); a new leader gives every lease a fresh TTL plus an election timeout (promote).
 *
 * Leases are kept in the MVCC store's `lease` table, written in the batch of the entry that changed them (with its
 * consistent index), and the keys of each lease in its `leasekeys` table, kept by the store's commits: both are
 * loaded at start and after a snapshot replaced the store (recover). Time comes from `now` (ms), injected.
 */
import type { MvccStore } from '../mvcc/store';
import type { LeaseMetrics } from './metrics';
import { LeaseQueue } from './queue';

/** etcd's lease.MaxLeaseTTL (seconds). */
export const MAX_LEASE_TTL = 9000000000;
/** Leases revoked per second at most (etcd's leaseRevokeRate); half of it per 500 ms round. */
export const LEASE_REVOKE_RATE = 1000;
/** Lease checkpoints per second at most, and per log entry (etcd's leaseCheckpointRate, maxLeaseCheckpointBatchSize). */
export const LEASE_CHECKPOINT_RATE = 1000;
export const MAX_LEASE_CHECKPOINT_BATCH = 1000;
/** etcd's defaultLeaseCheckpointInterval. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
/** The remaining time of a lease that never expires: Go's math.MaxInt64 nanoseconds, as TimeToLive shows it. */
const FOREVER_SECONDS = 9223372036;

export class ErrLeaseNotFound extends Error {
  constructor() {
    super('lease not found');
    this.name = 'ErrLeaseNotFound';
  }
}

export class ErrLeaseExists extends Error {
  constructor() {
    super('lease already exists');
    this.name = 'ErrLeaseExists';
  }
}

export class ErrLeaseTTLTooLarge extends Error {
  constructor() {
    super('too large lease TTL');
    this.name = 'ErrLeaseTTLTooLarge';
  }
}

/** Renewals are the primary's (the leader's): the caller forwards them there. */
export class ErrNotPrimary extends Error {
  constructor() {
    super('not a primary lessor');
    this.name = 'ErrNotPrimary';
  }
}

export class Lease {
  /** ms since the epoch when it expires; Infinity on a lessor that is not primary */
  expiry = Infinity;
  /** the live keys attached to it, as latin1 strings (one char per byte) */
  readonly keys = new Set<string>();
  private revokedWaiters: (() => void)[] | undefined;
  revoked = false;

  constructor(
    readonly id: bigint,
    /** seconds */
    public ttl: number,
    /** the last checkpointed remaining TTL in seconds; 0: none, the full TTL applies */
    public remainingTTL = 0,
  ) {}

  /** etcd's RemainingTTL(): the checkpointed remaining TTL if any, else the TTL. */
  remainingOrTTL(): number {
    return this.remainingTTL > 0 ? this.remainingTTL : this.ttl;
  }

  /** ms left before it expires (Infinity: never). */
  remaining(now: number): number {
    return this.expiry === Infinity ? Infinity : this.expiry - now;
  }

  /** Seconds left, as etcd's TimeToLive shows them (Go's int64 of the seconds, truncated toward zero). */
  remainingSeconds(now: number): number {
    const r = this.remaining(now);
    return r === Infinity ? FOREVER_SECONDS : Math.trunc(r / 1000);
  }

  /** The attached keys in byte order. */
  keyList(): Buffer[] {
    return [...this.keys].sort().map((k) => Buffer.from(k, 'latin1'));
  }

  /** Resolves once the lease is revoked. */
  whenRevoked(): Promise<void> {
    if (this.revoked) return Promise.resolve();
    return new Promise((resolve) => (this.revokedWaiters ??= []).push(resolve));
  }

  markRevoked(): void {
    this.revoked = true;
    for (const w of this.revokedWaiters ?? []) w();
    this.revokedWaiters = undefined;
  }
}

/** What revoke deletes a lease's keys through: a write txn of the store (etcd's TxnDelete), one revision for all. */
export interface TxnDelete {
  deleteRange(key: Buffer, end: Buffer | undefined): number;
  end(): void;
}

export interface Checkpoint {
  id: bigint;
  remainingTTL: number;
}

export interface LessorOptions {
  store: MvccStore;
  /** Seconds; shorter TTLs are granted this (etcd's minLeaseTTL from the election timeout). */
  minTTL: number;
  /** ms since the epoch */
  now: () => number;
  /** A write txn for the log entry at index (default: the store's); the watchable store's, so watchers see deletes. */
  rangeDeleter?: (index: number) => TxnDelete;
  /**
   * --experimental-enable-lease-checkpoint: proposes the remaining TTLs of long leases through the log, so a new
   * leader does not give them their whole TTL again.
   */
  checkpointer?: (checkpoints: Checkpoint[]) => Promise<unknown> | void;
  /** --experimental-enable-lease-checkpoint-persist: checkpointed remaining TTLs are written to the store too. */
  checkpointPersist?: boolean;
  checkpointIntervalMs?: number;
  /** How long an expired lease waits before it is proposed for revocation again (etcd: the request timeout). */
  expiredRetryMs: number;
  metrics?: LeaseMetrics;
}

export class Lessor {
  private leaseMap = new Map<bigint, Lease>();
  /** primary only: when each lease expires, and when each is due for a checkpoint */
  private readonly expiries = new LeaseQueue();
  private readonly checkpoints = new LeaseQueue();
  private primary = false;
  private readonly demoteWaiters = new Set<() => void>();
  private readonly o: LessorOptions;
  readonly minTTL: number;
  private readonly checkpointIntervalMs: number;

  constructor(o: LessorOptions) {
    this.o = o;
    this.minTTL = o.minTTL;
    this.checkpointIntervalMs = o.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    o.store.onLeaseMove = (key, from, to) => this.move(key, from, to);
    this.recover();
  }

  /** Loads the leases and their keys from the store (at start, and after a snapshot replaced it), none expiring. */
  recover(): void {
    this.leaseMap = new Map();
    this.expiries.clear();
    this.checkpoints.clear();
    for (const { lease: rec, keys } of this.o.store.loadLeases()) {
      const l = new Lease(rec.id, Math.max(rec.ttl, this.minTTL), rec.remainingTTL);
      for (const k of keys) l.keys.add(k.toString('latin1'));
      this.leaseMap.set(rec.id, l);
    }
  }

  isPrimary(): boolean {
    return this.primary;
  }

  /** Applies a grant (a log entry): the lease exists from now on every member; it expires only on the primary. */
  grant(id: bigint, ttl: number): Lease {
    if (id === 0n) throw new ErrLeaseNotFound();
    if (ttl > MAX_LEASE_TTL) throw new ErrLeaseTTLTooLarge();
    if (this.leaseMap.has(id)) throw new ErrLeaseExists();
    const l = new Lease(id, Math.max(ttl, this.minTTL));
    this.leaseMap.set(id, l);
    this.persist(l);
    this.o.metrics?.ttls.observe(l.ttl);
    this.o.metrics?.granted.inc();
    if (this.primary) {
      this.refresh(l, 0);
      this.scheduleCheckpoint(l);
    }
    return l;
  }

  /**
   * Applies a revocation (a log entry at index): the lease's keys are deleted in one write txn, in key order (so
   * every member writes the same revisions), and the lease removed with them.
   */
  revoke(id: bigint, index: number): void {
    const l = this.leaseMap.get(id);
    if (!l) throw new ErrLeaseNotFound();
    const txn = this.o.rangeDeleter ? this.o.rangeDeleter(index) : this.o.store.write(index);
    try {
      for (const k of [...l.keys].sort()) txn.deleteRange(Buffer.from(k, 'latin1'), undefined);
      this.leaseMap.delete(id);
      // in the txn's batch: the keys and the lease go together, or neither does
      this.o.store.stageLease({ id, removed: true });
    } finally {
      txn.end();
    }
    l.markRevoked();
    this.o.metrics?.revoked.inc();
  }

  /** Applies a checkpoint (a log entry): the lease's remaining TTL, which a new primary starts it from. */
  checkpoint(id: bigint, remainingTTL: number): void {
    const l = this.leaseMap.get(id);
    if (!l) return;
    l.remainingTTL = remainingTTL;
    if (this.o.checkpointPersist) this.persist(l);
    if (this.primary) this.scheduleCheckpoint(l);
  }

  /**
   * Renews a lease (the primary only, else ErrNotPrimary): it expires a TTL from now. A lease that expired and is
   * being revoked is waited for: ErrLeaseNotFound once it is, ErrNotPrimary if this lessor is demoted first.
   */
  async renew(id: bigint): Promise<number> {
    if (!this.primary) throw new ErrNotPrimary();
    const l = this.leaseMap.get(id);
    if (!l) throw new ErrLeaseNotFound();
    if (l.remaining(this.o.now()) <= 0) {
      let demoted!: () => void;
      const outcome = await Promise.race([
        l.whenRevoked().then(() => 'revoked'),
        new Promise<string>((resolve) => this.demoteWaiters.add((demoted = () => resolve('demoted')))),
      ]);
      this.demoteWaiters.delete(demoted);
      if (outcome === 'revoked') throw new ErrLeaseNotFound();
      throw new ErrNotPrimary();
    }
    // Only a lease with a checkpointed remaining TTL needs a log entry to clear it (at most 2 per interval); as
    // etcd, the renewal waits for it to apply, so the lease is renewed for its whole TTL.
    if (this.o.checkpointer && l.remainingTTL > 0) await Promise.resolve(this.o.checkpointer([{ id, remainingTTL: 0 }])).catch(() => undefined);
    this.refresh(l, 0);
    this.o.metrics?.renewed.inc();
    return l.ttl;
  }

  lookup(id: bigint): Lease | undefined {
    return this.leaseMap.get(id);
  }

  /** Every lease, soonest to expire first. */
  leases(): Lease[] {
    const now = this.o.now();
    return [...this.leaseMap.values()].sort((a, b) => {
      const ra = a.remaining(now);
      const rb = b.remaining(now);
      return ra === rb ? 0 : ra < rb ? -1 : 1;
    });
  }

  get size(): number {
    return this.leaseMap.size;
  }

  /**
   * Makes this lessor the primary (its member is the leader and has applied its term's first entry): every lease
   * expires its remaining TTL plus `extendMs` from now. With many leases, expiries are spread so that no more than
   * 3/4 of the revoke rate fall in any second (etcd's rule).
   */
  promote(extendMs: number): void {
    this.primary = true;
    for (const l of this.leaseMap.values()) {
      this.refresh(l, extendMs);
      this.scheduleCheckpoint(l);
    }
    if (this.leaseMap.size < LEASE_REVOKE_RATE) return;
    const now = this.o.now();
    const leases = this.leases();
    let baseWindow = leases[0].remaining(now);
    let nextWindow = baseWindow + 1000;
    let expires = 0;
    const targetPerSecond = (3 * LEASE_REVOKE_RATE) / 4;
    for (const l of leases) {
      const remaining = l.remaining(now);
      if (remaining > nextWindow) {
        baseWindow = remaining;
        nextWindow = baseWindow + 1000;
        expires = 1;
        continue;
      }
      expires++;
      if (expires <= targetPerSecond) continue;
      // leases n seconds past the base window are extended by one second only
      const delay = 1000 * (expires / targetPerSecond) - (remaining - baseWindow);
      nextWindow = baseWindow + delay;
      this.refresh(l, delay + extendMs);
      this.scheduleCheckpoint(l);
    }
  }

  /** No longer the primary: leases stop expiring here; a renewal waiting on an expired lease gets ErrNotPrimary. */
  demote(): void {
    for (const l of this.leaseMap.values()) l.expiry = Infinity;
    this.expiries.clear();
    this.checkpoints.clear();
    this.primary = false;
    const waiters = [...this.demoteWaiters];
    this.demoteWaiters.clear();
    for (const w of waiters) w();
  }

  /**
   * The primary's expired leases, at most `limit` (etcd's findExpiredLeases): each found is not offered again for
   * expiredRetryMs, the time its revocation has to go through the log.
   */
  findExpired(limit: number): Lease[] {
    const out: Lease[] = [];
    if (!this.primary) return out;
    const now = this.o.now();
    for (;;) {
      const item = this.expiries.peek();
      if (!item) break;
      const l = this.leaseMap.get(item.id);
      if (!l) {
        this.expiries.pop(); // revoked meanwhile
        continue;
      }
      if (now < item.time) break;
      this.expiries.set(item.id, now + this.o.expiredRetryMs);
      if (l.remaining(now) <= 0) {
        out.push(l);
        if (out.length === limit) break;
      }
    }
    return out;
  }

  /** The primary's checkpoints that are due, at most `limit` (etcd's findDueScheduledCheckpoints). */
  dueCheckpoints(limit: number): Checkpoint[] {
    const out: Checkpoint[] = [];
    if (!this.o.checkpointer || !this.primary) return out;
    const now = this.o.now();
    while (out.length < limit) {
      const item = this.checkpoints.peek();
      if (!item || item.time > now) break;
      this.checkpoints.pop();
      const l = this.leaseMap.get(item.id);
      if (!l || now >= l.expiry) continue;
      const remainingTTL = Math.ceil((l.expiry - now) / 1000);
      if (remainingTTL >= l.ttl) continue;
      out.push({ id: l.id, remainingTTL });
    }
    return out;
  }

  /** The store's hook: a write moved a key from one lease to another (etcd's Detach and Attach). */
  private move(key: Buffer, from: bigint, to: bigint): void {
    const ks = key.toString('latin1');
    if (from !== 0n) this.leaseMap.get(from)?.keys.delete(ks);
    if (to !== 0n) this.leaseMap.get(to)?.keys.add(ks);
  }

  private refresh(l: Lease, extendMs: number): void {
    l.expiry = this.o.now() + extendMs + l.remainingOrTTL() * 1000;
    this.expiries.set(l.id, l.expiry);
  }

  private scheduleCheckpoint(l: Lease): void {
    if (!this.o.checkpointer) return;
    if (l.remainingOrTTL() * 1000 > this.checkpointIntervalMs) this.checkpoints.set(l.id, this.o.now() + this.checkpointIntervalMs);
  }

  private persist(l: Lease): void {
    this.o.store.stageLease({ id: l.id, ttl: l.ttl, remainingTTL: l.remainingTTL });
  }
}
