/**
 * The v3 workload of a robustness run, through gRPC (test/support/watch-client.ts's clients, one channel per member
 * that reconnects by itself): registers under Put, linearizable Range, Txn compare-and-swap on mod_revision and
 * DeleteRange; keys written once; leases granted, with keys put on them, kept alive by a keep-alive stream (moved to
 * another member when its member fails) and then left to expire or revoked; and watchers of every v3 key from a
 * revision, re-opened from the next revision after a failure (or when they choose to move on), as a client's retry.
 */
import * as grpc from '@grpc/grpc-js';
import { eventually, type MemberSlot, type TestCluster } from '../support/cluster';
import { request } from '../support/http';
import { promiseKV, promised } from '../support/v3-server';
import { connect, type WatchConn } from '../support/watch-client';
import {
  Compare_CompareResult, Compare_CompareTarget, LeaseClient, LeaseKeepAliveRequest, RangeRequest, WatchRequest, type LeaseKeepAliveResponse,
  type LeaseLeasesRequest, type LeaseLeasesResponse, type WatchResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { checkRegistersV3, type FinalKV } from './checks-v3';
import type { FaultInjector } from './faults';
import { Event_EventType, type KeyValue } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { KVSeen, V3Op, V3Recorder, WatchEventSeen, WatchSession, WatcherLog, outcomeV3 } from './history-v3';
import { between, pick, prng } from './prng';

export const V3_PREFIX = '/v3/';
export const V3_REG = '/v3/reg/';
export const V3_UNIQ = '/v3/uniq/';
export const V3_LEASE = '/v3/lease/';
export const V3_CTL = '/v3/ctl';
export const V3_END = '/v3/end';

export interface V3Options {
  /** Register and write-once clients, register keys, lease clients, watchers. */
  clients: number;
  registers: number;
  leaseClients: number;
  watchers: number;
  /** A unary request is given up after this long (outcome unknown); so is a keep-alive without an answer. */
  requestTimeoutMs: number;
}

const b = (s: string) => Buffer.from(s);
/** The end of the range of every key with this prefix. */
export function prefixEnd(prefix: string): Buffer {
  const e = b(prefix);
  e[e.length - 1]++;
  return e;
}
export const hex = (id: bigint): string => id.toString(16);
const seen = (kv: KeyValue | undefined): KVSeen => (kv ? { value: kv.value.toString(), mod: Number(kv.modRevision) } : { value: null, mod: 0 });
/** Pacing of a client's own schedule (keep-alive ticks, a watcher's moves), not a wait for any state. */
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class V3Workload {
  readonly rec = new V3Recorder();
  readonly watchers: Watcher[] = [];
  /** The revision the watchers start after, and the v3 keys then. */
  startRev = 0;
  initial: FinalKV[] = [];
  private readonly conns = new Map<string, WatchConn>();

  constructor(
    readonly members: MemberSlot[],
    readonly o: V3Options,
    private readonly rnd: () => number,
    readonly log: (line: string) => void,
  ) {}

  /** This member's clients (made once: grpc-js channels reconnect by themselves, quickly here). */
  conn(m: MemberSlot): WatchConn {
    let c = this.conns.get(m.clientURL);
    if (!c) {
      c = connect(m.clientURL, { timeoutMs: this.o.requestTimeoutMs, channel: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 } });
      this.conns.set(m.clientURL, c);
    }
    return c;
  }

  /** Learns the current revision (a write, so that there is one) and starts the watchers after it. */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const op = await this.put(this.rec, -1, pick(this.rnd, this.members), 'put', `${V3_PREFIX}start`, 'start');
      if (outcomeV3(op) === 'ok') {
        this.startRev = op.rev!;
        this.initial = await this.keysAt(pick(this.rnd, this.members), this.startRev, false);
        break;
      }
      if (attempt > 100) throw new Error(`the first v3 write failed: ${op.error}`);
      await pause(200);
    }
    for (let i = 0; i < this.o.watchers; i++) {
      const w = new Watcher(i, this, this.startRev + 1, prng((Math.floor(this.rnd() * 2 ** 32) + i) >>> 0));
      this.watchers.push(w);
      w.done = w.run();
    }
  }

  /** Runs the register and lease clients until the budget runs out. */
  async run(budget: () => boolean, seed: number): Promise<void> {
    await Promise.all([
      ...Array.from({ length: this.o.clients }, (_, c) => this.kvClient(c, prng((seed + 0x51ed27 * (c + 1)) >>> 0), budget)),
      ...Array.from({ length: this.o.leaseClients }, (_, l) => this.leaseClient(100 + l, prng((seed + 0x7f4a7c15 * (l + 1)) >>> 0), budget)),
    ]);
  }

  // --- the requests, recorded ---

  get(rec: V3Recorder, client: number, m: MemberSlot, kind: 'get' | 'lget', key: string, serializable = false): Promise<V3Op> {
    return rec.run({ client, member: m.name, kind, key }, () => this.conn(m).kv.range({ key: b(key), rangeEnd: Buffer.alloc(0), limit: 0n, revision: 0n, sortOrder: 0, sortTarget: 0, serializable, keysOnly: false, countOnly: false, minModRevision: 0n, maxModRevision: 0n, minCreateRevision: 0n, maxCreateRevision: 0n }), (r, op) => {
      op.rev = Number(r.header!.revision);
      op.kv = seen(r.kvs[0]);
    });
  }

  put(rec: V3Recorder, client: number, m: MemberSlot, kind: 'put' | 'uput' | 'lput', key: string, value: string, lease?: bigint): Promise<V3Op> {
    return rec.run({ client, member: m.name, kind, key, value, lease: lease === undefined ? undefined : hex(lease) }, () => this.conn(m).kv.put({ key: b(key), value: b(value), lease: lease ?? 0n, prevKv: true, ignoreValue: false, ignoreLease: false }), (r, op) => {
      op.rev = Number(r.header!.revision);
      op.prev = seen(r.prevKv);
    });
  }

  private cas(client: number, m: MemberSlot, key: string, value: string, expectRev: number): Promise<V3Op> {
    return this.rec.run({ client, member: m.name, kind: 'cas', key, value, expectRev }, () => this.conn(m).kv.txn({
      compare: [{ key: b(key), rangeEnd: Buffer.alloc(0), target: Compare_CompareTarget.MOD, result: Compare_CompareResult.EQUAL, modRevision: BigInt(expectRev) }],
      success: [{ requestPut: { key: b(key), value: b(value), lease: 0n, prevKv: true, ignoreValue: false, ignoreLease: false } }],
      failure: [{ requestRange: { key: b(key), rangeEnd: Buffer.alloc(0), limit: 0n, revision: 0n, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: false, countOnly: false, minModRevision: 0n, maxModRevision: 0n, minCreateRevision: 0n, maxCreateRevision: 0n } }],
    }), (r, op) => {
      op.rev = Number(r.header!.revision);
      op.succeeded = r.succeeded;
      if (r.succeeded) op.prev = seen(r.responses[0]?.responsePut?.prevKv);
      else op.kv = seen(r.responses[0]?.responseRange?.kvs[0]);
    });
  }

  private del(client: number, m: MemberSlot, key: string): Promise<V3Op> {
    return this.rec.run({ client, member: m.name, kind: 'del', key }, () => this.conn(m).kv.deleteRange({ key: b(key), rangeEnd: Buffer.alloc(0), prevKv: true }), (r, op) => {
      op.rev = Number(r.header!.revision);
      op.prev = seen(r.prevKvs[0]);
    });
  }

  // --- the clients ---

  /**
   * A register and write-once client: 30% reads, 15% puts, 23% compare-and-swaps (on the mod_revision it last saw
   * of that key, 0 when it saw none: a create), 7% deletes, 25% keys written once, each to a member picked at random.
   */
  private async kvClient(c: number, rnd: () => number, budget: () => boolean): Promise<void> {
    const known = new Map<string, number>();
    let n = 0;
    while (budget()) {
      const m = pick(rnd, this.members);
      const key = `${V3_REG}${between(rnd, 0, this.o.registers - 1)}`;
      const value = `c${c}.${n++}`;
      const r = rnd();
      let op: V3Op;
      if (r < 0.3) op = await this.get(this.rec, c, m, 'get', key);
      else if (r < 0.45) op = await this.put(this.rec, c, m, 'put', key, value);
      else if (r < 0.68) op = await this.cas(c, m, key, value, known.get(key) ?? 0);
      else if (r < 0.75) op = await this.del(c, m, key);
      else op = await this.put(this.rec, c, m, 'uput', `${V3_UNIQ}c${c}.${n}`, value);
      const o = outcomeV3(op);
      if (op.kind === 'uput' || (o !== 'ok' && o !== 'failed')) continue;
      if (op.kind === 'get' || (op.kind === 'cas' && !op.succeeded)) known.set(key, op.kv!.mod);
      else if (op.kind === 'del') known.set(key, 0);
      else known.set(key, op.rev!);
    }
  }

  /**
   * A lease client: grants a lease (TTL 2 to 4 s), puts one or two keys on it, keeps it alive for one to three TTLs
   * (a keep-alive every third of the TTL, as clientv3 does; a linearizable read of a key now and then), then stops
   * and lets it expire, or (one in five) revokes it.
   */
  private async leaseClient(c: number, rnd: () => number, budget: () => boolean): Promise<void> {
    let n = 0;
    const reads: Promise<unknown>[] = [];
    while (budget()) {
      n++;
      const ttl = between(rnd, 2, 4);
      const m = pick(rnd, this.members);
      const grant = await this.rec.run({ client: c, member: m.name, kind: 'grant', key: '', ttl }, () => this.conn(m).lease.grant({ ID: 0n, TTL: BigInt(ttl) }), (r, op) => {
        op.rev = Number(r.header!.revision);
        op.lease = hex(r.ID);
        op.grantedTTL = Number(r.TTL);
      });
      if (outcomeV3(grant) !== 'ok') continue;
      const id = BigInt(`0x${grant.lease}`);
      const keys: string[] = [];
      for (let k = between(rnd, 1, 2); k > 0; k--) {
        const key = `${V3_LEASE}l${c}.${n}.${k}`;
        keys.push(key);
        await this.put(this.rec, c, pick(rnd, this.members), 'lput', key, `l${c}.${n}.${k}`, id);
      }
      const until = performance.now() + ttl * 1000 * (1 + 2 * rnd());
      const ka = new KeepAlive(this, c, grant.lease!);
      while (performance.now() < until && budget()) {
        ka.send(() => pick(rnd, this.members));
        if (rnd() < 0.5) reads.push(this.get(this.rec, c, pick(rnd, this.members), 'lget', pick(rnd, keys)));
        await pause((ttl * 1000) / 3);
      }
      ka.stop();
      if (rnd() < 0.2) {
        const mr = pick(rnd, this.members);
        await this.rec.run({ client: c, member: mr.name, kind: 'revoke', key: '', lease: grant.lease }, () => this.conn(mr).lease.revoke({ ID: id }), (r, op) => {
          op.rev = Number(r.header!.revision);
        });
      }
    }
    await Promise.all(reads);
  }

  /** Stops the watchers once each has seen every event up to `rev` (or after `ms`); false when some did not. */
  async stopWatchers(rev: number, ms: number): Promise<string[]> {
    const deadline = performance.now() + ms;
    const late: string[] = [];
    for (const w of this.watchers) {
      while (w.lastRev < rev && performance.now() < deadline) await pause(50); // poll the watcher's progress
      if (w.lastRev < rev) late.push(`watcher ${w.log.watcher} got events up to revision ${w.lastRev} only, not to ${rev}, within ${ms / 1000} s`);
    }
    for (const w of this.watchers) w.stop();
    await Promise.all(this.watchers.map((w) => w.done));
    return late;
  }

  /** Every v3 key at a revision, as a member answers a Range (linearizable unless `serializable`). */
  async keysAt(m: MemberSlot, revision: number, serializable: boolean): Promise<FinalKV[]> {
    const r = await promiseKV(this.conn(m).kvClient, 30000).range(RangeRequest.fromPartial({ key: b(V3_PREFIX), rangeEnd: prefixEnd(V3_PREFIX), revision: BigInt(revision), serializable }));
    return r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), mod: Number(kv.modRevision), create: Number(kv.createRevision), version: Number(kv.version), lease: hex(kv.lease) }));
  }

  /** Retries one write (through members picked at random) until it is acknowledged; its revision. */
  async putUntilOk(rec: V3Recorder, client: number, key: string, value: string, ms: number): Promise<number> {
    const deadline = performance.now() + ms;
    for (let n = 0; ; n++) {
      const op = await this.put(rec, client, pick(this.rnd, this.members), 'put', key, `${value}${n ? `.${n}` : ''}`);
      if (outcomeV3(op) === 'ok') return op.rev!;
      if (performance.now() > deadline) throw new Error(`no write of ${key} was acknowledged within ${ms / 1000} s: ${op.error}`);
      await pause(100);
    }
  }

  /**
   * The end of the v3 workload, once the faults are healed: a last read of every register (in the history), every
   * lease key gone (they expire: no keep-alive is sent any more), then a write that ends the watch history, every
   * watcher caught up to it, and every key read at its revision. Findings are returned, not thrown.
   */
  async finish(maxTtlMs: number): Promise<{ endRev: number; final: FinalKV[]; violations: string[] }> {
    const violations: string[] = [];
    for (let k = 0; k < this.o.registers; k++) {
      const key = `${V3_REG}${k}`;
      const deadline = performance.now() + 60000;
      while (outcomeV3(await this.get(this.rec, -2, pick(this.rnd, this.members), 'get', key)) !== 'ok') {
        if (performance.now() > deadline) {
          violations.push(`liveness: no read of ${key} was answered within 60 s after the faults were healed`);
          break;
        }
        await pause(100);
      }
    }
    const deadline = performance.now() + maxTtlMs * 2 + 30000;
    for (;;) {
      let left = -1;
      try {
        left = (await this.keysAt(pick(this.rnd, this.members), 0, false)).filter((k) => k.key.startsWith(V3_LEASE)).length;
      } catch {
        // asked again
      }
      if (left === 0) break;
      if (performance.now() > deadline) {
        violations.push(`leases: ${left} lease keys still there ${((maxTtlMs * 2 + 30000) / 1000).toFixed(0)} s after the last keep-alive`);
        break;
      }
      await pause(200);
    }
    const endRev = await this.putUntilOk(this.rec, -2, V3_END, 'end', 60000);
    violations.push(...(await this.stopWatchers(endRev, 60000)).map((l) => `watch: ${l}`));
    const final = await this.keysAt(pick(this.rnd, this.members), endRev, false);
    return { endRev, final, violations };
  }

  /**
   * Every member ends with the same v3 store: once all are at one revision (polled, serializable), the same keys at
   * that revision, the same HashKV (etcd's hash of every version kept, asked on each member's peer listener, as
   * members ask each other) and the same leases.
   */
  async membersAgree(ms = 60000): Promise<{ rev: number; hashes: string[]; violations: string[] }> {
    const revOf = async (m: MemberSlot) => Number((await promiseKV(this.conn(m).kvClient, 5000).range(RangeRequest.fromPartial({ key: b(V3_PREFIX), rangeEnd: prefixEnd(V3_PREFIX), serializable: true, countOnly: true }))).header!.revision);
    let revs: number[] = [];
    const deadline = performance.now() + ms;
    for (;;) {
      revs = await Promise.all(this.members.map((m) => revOf(m).catch(() => -1)));
      if (revs.every((r) => r === revs[0] && r > 0)) break;
      if (performance.now() > deadline) return { rev: 0, hashes: [], violations: [`members: not at one revision within ${ms / 1000} s (${this.members.map((m, i) => `${m.name} at ${revs[i]}`).join(', ')})`] };
      await pause(200);
    }
    const rev = revs[0];
    const violations: string[] = [];
    const stores = await Promise.all(this.members.map((m) => this.keysAt(m, rev, true)));
    const text = stores.map((s) => JSON.stringify(s));
    for (let i = 1; i < text.length; i++) {
      if (text[i] === text[0]) continue;
      const a = new Map(stores[0].map((k) => [k.key, JSON.stringify(k)]));
      const d = stores[i].filter((k) => a.get(k.key) !== JSON.stringify(k)).map((k) => `${k.key}: ${a.get(k.key) ?? 'absent'} on ${this.members[0].name}, ${JSON.stringify(k)} on ${this.members[i].name}`);
      violations.push(`members: ${this.members[i].name}'s keys at revision ${rev} differ from ${this.members[0].name}'s (${stores[i].length} and ${stores[0].length} keys): ${d.slice(0, 5).join('; ') || 'keys missing'}`);
    }
    const hashes = await Promise.all(this.members.map(async (m) => {
      const a = await request(`http://127.0.0.1:${m.listenPeerPort}`, 'GET', '/members/hashkv', { body: JSON.stringify({ revision: rev }), timeoutMs: 30000 });
      if (a.status !== 200) return `HashKV answered ${a.status}: ${a.body.trim()}`;
      const h = JSON.parse(a.body) as { hash: number; compact_revision: number; header: { revision: number } };
      return `hash ${h.hash} (compacted at ${h.compact_revision})`;
    }));
    if (hashes.some((h) => h !== hashes[0])) violations.push(`members: HashKV at revision ${rev} differs: ${this.members.map((m, i) => `${m.name} ${hashes[i]}`).join(', ')}`);
    const leases = await Promise.all(this.members.map(async (m) => {
      const l = this.conn(m).lease.client;
      const r = await promised<LeaseClient, LeaseLeasesRequest, LeaseLeasesResponse>(l, l.leaseLeases, 10000)({});
      return r.leases.map((x) => hex(x.ID)).sort().join(',');
    }));
    if (leases.some((l) => l !== leases[0])) violations.push(`members: their leases differ: ${this.members.map((m, i) => `${m.name} [${leases[i]}]`).join(', ')}`);
    return { rev, hashes, violations };
  }

  close(): void {
    for (const c of this.conns.values()) c.close();
  }
}

/**
 * A lease's keep-alive stream, as clientv3's: requests and answers in order on one stream; a stream that fails, or
 * leaves a request unanswered for the request timeout, is given up (its requests' outcomes unknown) and the next
 * keep-alive goes on a new stream to another member.
 */
class KeepAlive {
  private call: grpc.ClientDuplexStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse> | undefined;
  private pending: V3Op[] = [];

  constructor(private readonly w: V3Workload, private readonly client: number, private readonly lease: string) {}

  send(member: () => MemberSlot): void {
    const now = performance.now();
    if (this.call && this.pending.length && now - this.pending[0].call > this.w.o.requestTimeoutMs) this.drop('no answer within the request timeout');
    if (!this.call) this.open(member());
    const op = this.w.rec.add({ client: this.client, member: this.memberName, kind: 'keepalive', key: '', lease: this.lease, call: now, ret: null });
    this.pending.push(op);
    this.call!.write(LeaseKeepAliveRequest.fromPartial({ ID: BigInt(`0x${this.lease}`) }));
  }

  private memberName = '';

  private open(m: MemberSlot): void {
    const call = this.w.conn(m).lease.client.leaseKeepAlive();
    this.call = call;
    this.memberName = m.name;
    const mine = this.pending;
    call.on('data', (r: LeaseKeepAliveResponse) => {
      const op = mine.shift();
      if (!op) return;
      op.ret = performance.now();
      op.grantedTTL = Number(r.TTL);
      op.rev = Number(r.header?.revision ?? 0);
    });
    call.on('error', (err: grpc.ServiceError) => {
      for (const op of mine.splice(0)) op.error = err.details || err.message;
      if (this.call === call) this.call = undefined;
    });
    call.on('end', () => {
      for (const op of mine.splice(0)) op.error = 'the stream ended';
      if (this.call === call) this.call = undefined;
    });
  }

  private drop(why: string): void {
    for (const op of this.pending) op.error = why;
    this.pending = [];
    this.call?.cancel();
    this.call = undefined;
  }

  /** No more keep-alives: the stream is half-closed (answers to what was sent may still come). */
  stop(): void {
    this.call?.end();
    this.pending = [];
    this.call = undefined;
  }
}

/**
 * A watcher of every v3 key, from a revision on: each session is a watch stream (with require-leader, as
 * clientv3's WithRequireLeader) on a member picked at random, kept for 3 to 10 s, or until it fails, is cancelled
 * or goes silent (no answer to a progress request within 3 s); the next starts from the revision after the last
 * event received. Every response is kept as it came, so that duplicates and gaps show.
 */
export class Watcher {
  readonly log: WatcherLog;
  lastRev: number;
  done: Promise<void> = Promise.resolve();
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(i: number, private readonly w: V3Workload, from: number, private readonly rnd: () => number) {
    this.log = { watcher: i, sessions: [], events: [] };
    this.lastRev = from - 1;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      await this.session(pick(this.rnd, this.w.members));
      if (!this.stopped) await pause(100);
    }
  }

  private session(m: MemberSlot): Promise<void> {
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    const call = this.w.conn(m).watchClient.watch(md);
    const s: WatchSession = { member: m.name, from: this.lastRev + 1, opened: performance.now(), events: 0 };
    this.log.sessions.push(s);
    let heard = performance.now();
    return new Promise<void>((resolve) => {
      let over = false;
      const end = (reason: string) => {
        if (over) return;
        over = true;
        s.closed = performance.now();
        s.reason = reason;
        clearInterval(tick);
        clearTimeout(leave);
        this.wake = undefined;
        call.cancel();
        resolve();
      };
      this.wake = () => end('stopped');
      call.on('data', (r: WatchResponse) => {
        heard = performance.now();
        if (r.canceled) return end(`cancelled: ${r.cancelReason || 'no reason'}${r.compactRevision ? ` (compacted at ${r.compactRevision})` : ''}`);
        for (const e of r.events) {
          const kv = e.kv!;
          const ev: WatchEventSeen = {
            rev: Number(kv.modRevision),
            key: kv.key.toString(),
            type: e.type === Event_EventType.DELETE ? 'delete' : 'put',
            value: kv.value.toString(),
            create: Number(kv.createRevision),
            version: Number(kv.version),
            lease: hex(kv.lease),
            prev: e.prevKv ? seen(e.prevKv) : null,
            at: heard,
          };
          this.log.events.push(ev);
          s.events++;
          if (ev.rev > this.lastRev) this.lastRev = ev.rev;
        }
      });
      call.on('error', (err: grpc.ServiceError) => end(`error: ${err.details || err.message}`));
      call.on('end', () => end('the stream ended'));
      call.write(WatchRequest.fromPartial({ createRequest: { key: b(V3_PREFIX), rangeEnd: prefixEnd(V3_PREFIX), startRevision: BigInt(s.from), prevKv: true } }));
      // A member that stopped (SIGSTOP) answers nothing: a progress request each second shows it.
      const tick = setInterval(() => {
        if (performance.now() - heard > 3000) return end('silent for 3 s');
        call.write(WatchRequest.fromPartial({ progressRequest: {} }));
      }, 1000);
      const leave = setTimeout(() => end('moving on'), between(this.rnd, 3000, 10000));
    });
  }
}

/**
 * The v3 negative control: a follower cut off from the others goes on answering serializable Ranges from its own,
 * stale store while Puts through the leader commit on the majority; reads sent after a Put was acknowledged return
 * the value before it, and the checker must call that history illegal.
 */
export async function staleReadControlV3(c: TestCluster, injector: FaultInjector, w: V3Workload, rec: V3Recorder, log: (l: string) => void, t0: number): Promise<{ verdict: string; reads: number; staleReads: number; minimal: string[] }> {
  const leader = await eventually('a leader for the v3 negative control', () => injector.leader());
  const follower = c.members.find((m) => m !== leader)!;
  const first = await w.put(rec, 0, leader, 'put', V3_CTL, 'ctl.0');
  if (outcomeV3(first) !== 'ok') throw new Error(`v3 negative control: the first write failed: ${first.error}`);
  await eventually('the follower to hold the first value', async () => {
    const kvs = await w.keysAt(follower, 0, true);
    return kvs.some((k) => k.key === V3_CTL && k.value === 'ctl.0') ? true : undefined;
  });
  c.partition([follower]);
  try {
    let acked: number | undefined;
    let staleAfterAck = 0;
    const deadline = performance.now() + 30000;
    const writer = (async () => {
      for (let i = 1; i <= 5 && performance.now() < deadline; i++) {
        const op = await w.put(rec, 0, leader, 'put', V3_CTL, `ctl.${i}`);
        if (outcomeV3(op) === 'ok') acked ??= op.ret!;
      }
    })();
    const reader = (async () => {
      let reads = 0;
      while (performance.now() < deadline && (staleAfterAck < 2 || reads < 10)) {
        const sentAt = performance.now();
        await w.get(rec, 1, follower, 'get', V3_CTL, true);
        reads++;
        if (acked !== undefined && sentAt > acked) staleAfterAck++;
      }
    })();
    await Promise.all([writer, reader]);
  } finally {
    c.heal();
  }
  const lin = checkRegistersV3(rec.ops, undefined, { isRegister: (key) => key === V3_CTL, t0 });
  const reads = rec.ops.filter((op) => op.kind === 'get');
  const staleReads = reads.filter((op) => op.kv?.value === 'ctl.0').length;
  const minimal = lin.report.minimal[0]?.lines ?? [];
  log(`v3 negative control: ${reads.length} serializable reads from the cut-off follower ${follower.name}, ${staleReads} of the first value: ${lin.report.verdict}${minimal.length ? `; fragment:\n    ${minimal.join('\n    ')}` : ''}`);
  return { verdict: lin.report.verdict, reads: reads.length, staleReads, minimal };
}
