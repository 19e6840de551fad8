/**
 * The member's leases (etcd's EtcdServer lease methods, etcdserver/v3_server.go, and its expiry loop): what the gRPC
 * Lease service calls.
 * - Grant and revoke go through the Raft log as v3 entries and answer what the applier answered on this member.
 * - Renewals and TimeToLive are the leader's: its lessor (primary) holds the expiries; a follower forwards them to the
 *   leader's peer listener (leasehttp.ts) and serves the leader's side of it.
 * - The leader's lessor is promoted once its term's first entry is applied (every lease gets its TTL plus an election
 *   timeout) and demoted when it stops leading. Every 500 ms the leader proposes the revocation of the leases that
 *   expired (at most 500 per round, 16 at a time, as etcd) and, with --experimental-enable-lease-checkpoint, the
 *   checkpoints that are due.
 * - A leader that was stuck (a stopped process, a long pause) comes back believing it leads, with leases its clock
 *   says expired while the new leader kept them alive. So, as etcd since its fix of issue 15247, a renewal and a round
 *   of revocations first confirm the leadership (a ReadIndex round acknowledged by a quorum); and a revocation goes
 *   into this member's own log or nowhere, never forwarded to the new leader once this one stepped down.
 */
import { LEASE_OVERHEAD } from './quota';
import type * as https from 'node:https';
import { NONE } from '../raft';
import type { LeaseBackend } from '../api/v3rpc/lease';
import { serverError } from '../api/v3rpc/errors';
import {
  LeaseGrantRequest, LeaseGrantResponse, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
  LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import { ErrLeaseNotFound, ErrNotPrimary, LEASE_CHECKPOINT_RATE, LEASE_REVOKE_RATE, Lessor, MAX_LEASE_CHECKPOINT_BATCH, type Checkpoint } from '../lease/lessor';
import { renewHTTP, timeToLiveHTTP, type LeaseHTTPHost } from '../lease/leasehttp';
import type { LeaseMetrics } from '../lease/metrics';
import type { EtcdServer } from './server';
import type { V3KV } from './v3-server';

/** etcd's maxPendingRevokes: revocations of expired leases in flight at once. */
const MAX_PENDING_REVOKES = 16;
/** The lessor's loop period (etcd's runLoop). */
const LOOP_MS = 500;
/** etcd's applyTimeout for the leader's wait on its applied index. */
const APPLY_TIMEOUT_MS = 1000;

/**
 * etcd's minimum lease TTL in seconds: 1.5 election timeouts, in whole heartbeats, rounded up to the second
 * (minTTL = ((3 * electionTicks) / 2) * heartbeat, electionTicks = election timeout / heartbeat, Go integer division).
 */
export function minLeaseTTL(electionMs: number, heartbeatMs: number): number {
  const electionTicks = Math.floor(electionMs / heartbeatMs);
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000);
}

/**
 * Lease IDs as etcd's request ID generator makes them: the member ID's low 16 bits, then 40 bits of the start time
 * in ms and an 8-bit counter (the low 48 bits count up from there); the top bit cleared, so IDs are positive.
 */
export class LeaseIdGenerator {
  private prefix: bigint;
  private suffix: bigint;

  constructor(memberIdHex: string, nowMs: number) {
    this.prefix = (BigInt('0x' + (memberIdHex || '0')) & 0xffffn) << 48n;
    this.suffix = (BigInt(Math.floor(nowMs)) & ((1n << 40n) - 1n)) << 8n;
  }

  next(): bigint {
    this.suffix = (this.suffix + 1n) & ((1n << 48n) - 1n);
    return (this.prefix | this.suffix) & ((1n << 63n) - 1n);
  }
}

export interface V3LeaseOptions {
  server: EtcdServer;
  kv: V3KV;
  lessor: Lessor;
  metrics?: LeaseMetrics;
  /** the peer transport's TLS options, for forwarding to the leader */
  peerTLS?: https.AgentOptions;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;
}

/**
 * Confirms that this member still leads (etcd's ensureLeadership): a ReadIndex round acknowledged by a quorum at its
 * term, and still the leader after it. One round at a time: a caller that comes while a round is in flight (begun
 * before it asked) waits for the next, which serves everyone who came meanwhile.
 */
export class LeadershipCheck {
  private current: Promise<boolean> | undefined;
  private next: Promise<boolean> | undefined;

  constructor(private readonly round: () => Promise<boolean>) {}

  confirm(): Promise<boolean> {
    if (!this.current) {
      const p = this.round().catch(() => false);
      this.current = p;
      void p.then(() => {
        if (this.current === p) this.current = undefined;
      });
      return p;
    }
    this.next ??= this.current.then(() => {
      this.next = undefined;
      return this.confirm();
    });
    return this.next;
  }
}

export class V3Lease implements LeaseBackend {
  private readonly o: V3LeaseOptions;
  private readonly lessor: Lessor;
  /** Whether this member still leads, confirmed by a quorum (before renewals and revocations). */
  readonly leadership: LeadershipCheck;
  private ids: LeaseIdGenerator | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly revokeQueue: bigint[] = [];
  private readonly revoking = new Set<bigint>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(o: V3LeaseOptions) {
    this.o = o;
    this.lessor = o.lessor;
    this.leadership = new LeadershipCheck(() => this.stillLeads());
  }

  /** One round of the leadership check: false as soon as this member stops leading, or when no quorum answers. */
  private async stillLeads(): Promise<boolean> {
    const s = this.o.server;
    if (!s.isLeader() || !this.lessor.isPrimary()) return false;
    let off = (): void => undefined;
    const lost = new Promise<void>((resolve) => {
      const f = (leader: boolean): void => {
        if (!leader) resolve();
      };
      s.on('leadership', f);
      off = () => s.off('leadership', f);
    });
    try {
      await Promise.race([s.linearizableRead(), lost]);
    } catch {
      return false;
    } finally {
      off();
    }
    return s.isLeader() && this.lessor.isPrimary();
  }

  /** Follows leadership (promote/demote) and starts the expiry and checkpoint loop. */
  start(): void {
    const s = this.o.server;
    const onFirstCommit = () => {
      if (s.isLeader()) this.lessor.promote(s.o.electionMs);
    };
    const onLeadership = (leader: boolean) => {
      if (leader) return;
      this.lessor.demote();
      // revocations decided while leading and not proposed yet are dropped: the new leader decides for itself
      for (const id of this.revokeQueue.splice(0)) this.revoking.delete(id);
    };
    s.on('firstCommitInTerm', onFirstCommit);
    s.on('leadership', onLeadership);
    this.unsubscribe.push(() => s.off('firstCommitInTerm', onFirstCommit), () => s.off('leadership', onLeadership));
    this.timer = setInterval(() => this.loop(), LOOP_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const u of this.unsubscribe) u();
    this.lessor.demote();
  }

  /** One round of the lessor's loop (etcd's revokeExpiredLeases and checkpointScheduledLeases). */
  loop(): void {
    if (!this.lessor.isPrimary()) return;
    const found: bigint[] = [];
    for (const l of this.lessor.findExpired(LEASE_REVOKE_RATE / 2)) {
      if (this.revoking.has(l.id)) continue;
      this.revoking.add(l.id);
      found.push(l.id);
    }
    if (found.length) void this.revokeExpired(found);
    for (let i = 0; i < LEASE_CHECKPOINT_RATE / 2; i++) {
      const cps = this.lessor.dueCheckpoints(MAX_LEASE_CHECKPOINT_BATCH);
      if (cps.length) void this.proposeCheckpoints(cps);
      if (cps.length < MAX_LEASE_CHECKPOINT_BATCH) break;
    }
  }

  /** Revokes leases found expired, once this member is confirmed to lead (else they are left to the leader). */
  private async revokeExpired(ids: bigint[]): Promise<void> {
    if (!(await this.leadership.confirm())) {
      for (const id of ids) this.revoking.delete(id);
      this.o.log('warn', 'ignored the revocation of expired leases: this member is not the leader', { leases: ids.length });
      return;
    }
    this.revokeQueue.push(...ids);
    this.pumpRevokes();
  }

  private pumpRevokes(): void {
    while (this.revokeQueue.length && this.revoking.size - this.revokeQueue.length < MAX_PENDING_REVOKES) {
      const id = this.revokeQueue.shift()!;
      // only into this member's own log while it leads: never forwarded to a leader that did not decide it
      this.o.kv.propose({ leaseRevoke: { ID: id } }, undefined, { leaderOnly: true }).then(
        () => this.o.metrics?.expired.inc(),
        (err: Error) => this.o.log('warn', 'failed to revoke lease', { 'lease-id': hex16(id), error: err.message }),
      ).finally(() => {
        this.revoking.delete(id);
        this.pumpRevokes();
      });
    }
  }

  /** The lessor's checkpointer: remaining TTLs through the log (fire and forget, as etcd's). */
  proposeCheckpoints(checkpoints: Checkpoint[]): Promise<void> {
    const req = { checkpoints: checkpoints.map((c) => ({ ID: c.id, remainingTTL: BigInt(c.remainingTTL) })) };
    return this.o.kv.propose({ leaseCheckpoint: req }).then(
      () => undefined,
      (err: Error) => this.o.log('warn', 'failed to checkpoint leases', { error: err.message }),
    );
  }

  async leaseGrant(r: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    await this.o.kv.checkQuota(LEASE_OVERHEAD);
    let ID = r.ID;
    if (ID === 0n) {
      // no ID given: choose one (only positive ones)
      if (!this.o.server.published) await this.o.kv.ready();
      this.ids ??= new LeaseIdGenerator(this.o.server.id, this.o.now());
      while (ID === 0n) ID = this.ids.next();
    }
    return (await this.o.kv.propose({ leaseGrant: { ID, TTL: r.TTL } })).resp as LeaseGrantResponse;
  }

  async leaseRevoke(r: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return (await this.o.kv.propose({ leaseRevoke: { ID: r.ID } })).resp as LeaseRevokeResponse;
  }

  leaseRenew(id: bigint): Promise<bigint> {
    const start = performance.now();
    if (!this.o.server.isLeader()) return this.renewAtLeader(id, start);
    // A leader's renewal, the common case, without the forwarding loop's steps (every keep-alive takes this path);
    // one it cannot make (not the primary) goes on as the loop goes on after its first try.
    return this.renewHere(id).then(BigInt, async (err: unknown) => {
      if (!(err instanceof ErrNotPrimary)) throw err;
      await new Promise((r) => setTimeout(r, this.o.server.o.heartbeatMs));
      return this.renewAtLeader(id, start);
    });
  }

  private renewAtLeader(id: bigint, start: number): Promise<bigint> {
    return this.atLeader(() => this.renewHere(id).then(BigInt), (url, ms) => renewHTTP(url, id, ms, this.o.peerTLS), start);
  }

  async leaseTimeToLive(r: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.atLeader(
      async () => {
        await this.o.server.waitAppliedCommitted(APPLY_TIMEOUT_MS);
        // a leader whose lessor is not promoted yet has no expiries to tell
        if (!this.lessor.isPrimary()) throw new ErrNotPrimary();
        const resp = this.timeToLive(r.ID, r.keys);
        if (!resp) throw new ErrLeaseNotFound();
        return resp;
      },
      (url, ms) => timeToLiveHTTP(url, r.ID, r.keys, ms, this.o.peerTLS),
    );
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    return { header: undefined, leases: this.lessor.leases().map((l) => ({ ID: l.id })) };
  }

  /** The leader's side of /leases and /leases/internal. */
  httpHost(): LeaseHTTPHost {
    return {
      waitApplied: (ms) => this.o.server.waitAppliedCommitted(ms),
      renew: async (id) => {
        if (!(await this.leadership.confirm())) throw new ErrNotPrimary();
        return this.lessor.renew(id);
      },
      timeToLive: (id, keys) => {
        // not (yet) the primary: no expiries to tell; the follower asks again
        if (!this.lessor.isPrimary()) throw new ErrNotPrimary();
        return this.timeToLive(id, keys);
      },
    };
  }

  private timeToLive(id: bigint, keys: boolean): LeaseTimeToLiveResponse | undefined {
    const l = this.lessor.lookup(id);
    if (!l) return undefined;
    return { header: undefined, ID: id, TTL: BigInt(l.remainingSeconds(this.o.now())), grantedTTL: BigInt(l.ttl), keys: keys ? l.keyList() : [] };
  }

  /** A renewal on the leader, once it is confirmed to lead (a deposed one would renew from its stale lessor). */
  private renewHere(id: bigint): Promise<number> {
    return this.leadership.confirm().then((leads) => {
      if (!leads) throw new ErrNotPrimary();
      return this.o.server.waitAppliedCommitted(APPLY_TIMEOUT_MS).then(() => this.lessor.renew(id));
    });
  }

  /**
   * Runs `here` when this member leads and its lessor is primary, else asks the leader over its peer URLs (etcd's
   * forwarding loop), until the request timeout: "lease not found" ends it, other failures try again.
   */
  private async atLeader<T>(here: () => Promise<T>, remote: (peerURL: string, timeoutMs: number) => Promise<T>, start = performance.now()): Promise<T> {
    const s = this.o.server;
    const deadline = start + s.requestTimeoutMs();
    while (performance.now() < deadline) {
      if (s.isLeader()) {
        try {
          return await here();
        } catch (err) {
          if (!(err instanceof ErrNotPrimary)) throw err;
        }
      } else if (s.lead !== NONE) {
        const leader = s.cluster.get(s.lead);
        for (const url of leader?.peerURLs ?? []) {
          try {
            // a leader that died with the request in flight must not hold it for the whole timeout: the next one
            // may be elected meanwhile (etcd's peer transport has its dial and read timeouts for this)
            return await remote(url, Math.max(1, Math.min(deadline - performance.now(), Math.max(1000, 2 * s.o.electionMs))));
          } catch (err) {
            if (err instanceof ErrLeaseNotFound) throw err;
          }
        }
      }
      // no leader, a leader not promoted yet, or one that could not be reached: again in a heartbeat
      await new Promise((r) => setTimeout(r, s.o.heartbeatMs));
    }
    if (s.lead === NONE) throw serverError('noLeader');
    throw s.timeoutError(start);
  }
}

function hex16(id: bigint): string {
  return BigInt.asUintN(64, id).toString(16).padStart(16, '0');
}
