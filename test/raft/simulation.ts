/**
 * A deterministic simulation of a Raft cluster: N nodes over a simulated network driven by a seeded PRNG, with
 * message loss, duplication, reordering and delay, partitions that come and heal, and crashes that lose whatever
 * was not yet persisted, while clients propose and read. Safety properties are checked after every step; after the
 * chaos, the network heals and the cluster must elect a leader and commit a new proposal within a bound of ticks.
 *
 * The host loop of each node is the server's: persist the Ready (MemoryStorage stands for the disk: it survives
 * crashes), then send its messages, then apply committed entries, then advance.
 */
import {
  ConfChangeType,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NodeId,
  ProposalDroppedError,
  RawNode,
  ReadOnlyOption,
  StateType,
  decodeConfChange,
} from '../../server/raft';

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimOptions {
  nodes: number;
  /** Ticks of chaos (faults on), then the heal phase. */
  chaosTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  lossRate: number;
  dupRate: number;
  maxDelay: number;
  crashRate: number;
  partitionRate: number;
  proposeRate: number;
  readRate: number;
  /** Bytes of entries per append message (1 means one entry per message). */
  maxSizePerMsg: number;
  /** Take a snapshot and compact the log every this many applied entries. */
  snapshotEvery: number;
  /** Per tick, the chance that the leader proposes a membership change (remove a voter, add a member, promote). */
  confChangeRate: number;
  /** How many ticks after healing a leader must be elected and a proposal committed everywhere. */
  livenessBound: number;
}

export class SafetyViolation extends Error {}

/** A rolling 2x32-bit FNV-1a hash of the applied sequence: equal states have equal (index, hash). */
function mix(h: number, bytes: Uint8Array | string): number {
  if (typeof bytes === 'string') {
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes.charCodeAt(i), 16777619) >>> 0;
  } else {
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619) >>> 0;
  }
  return h;
}

interface AppliedState {
  index: number;
  h1: number;
  h2: number;
}

function encodeState(s: AppliedState): Uint8Array {
  return Buffer.from(JSON.stringify(s));
}

function decodeState(data: Uint8Array): AppliedState {
  return data.length === 0 ? { index: 0, h1: 2166136261, h2: 84696351 } : JSON.parse(Buffer.from(data).toString());
}

class SimNode {
  storage = new MemoryStorage();
  node: RawNode | undefined;
  sm: AppliedState = decodeState(new Uint8Array(0));
  /** Client requests this incarnation took, by data, waiting to be applied. */
  pendingProposals = new Set<string>();
  pendingReads = new Map<string, number>();
  downUntil = 0;
  /** Removed from the cluster: shut down for good (etcd's transport tells a removed member it was removed). */
  removed = false;

  constructor(readonly id: NodeId) {}

  get up(): boolean {
    return this.node !== undefined;
  }
}

interface InFlight {
  m: Message;
  at: number;
}

export interface SimResult {
  ticks: number;
  committed: number;
  acked: number;
  leaderChanges: number;
  crashes: number;
  snapshotsSent: number;
  readsServed: number;
  membersAdded: number;
  membersRemoved: number;
  /** Entries applied between Readies (takeCommitted), and leader messages sent before their Ready. */
  appliedEarly: number;
  sentEarly: number;
}

export class Simulation {
  private readonly rand: () => number;
  private readonly nodes: SimNode[] = [];
  private readonly ids: NodeId[];
  private inflight: InFlight[] = [];
  private now = 0;
  private partition: Set<NodeId> | undefined;
  private partitionUntil = 0;
  private faults = true;
  private proposalSeq = 0;
  private nextNodeId: number;
  /** Members whose removal has been applied somewhere (so committed): the network refuses their traffic. */
  private readonly removedIds = new Set<NodeId>();
  private readSeq = 0;
  // global knowledge, for the safety checks
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entryAt = new Map<string, { data: string; prevTerm: number | undefined }>();
  private readonly committedAt = new Map<number, { term: number; data: string }>();
  private readonly hashAt = new Map<number, string>();
  private maxCommitted = 0;
  /** The highest index acknowledged to any client so far (a later read must see at least this). */
  private maxAcked = 0;
  readonly acked = new Map<string, number>();
  private stats = { leaderChanges: 0, crashes: 0, snapshotsSent: 0, readsServed: 0, membersAdded: 0, membersRemoved: 0, appliedEarly: 0, sentEarly: 0 };

  constructor(readonly seed: number, readonly opts: SimOptions) {
    this.rand = prng(seed);
    this.ids = Array.from({ length: opts.nodes }, (_, i) => String(i + 1));
    this.nextNodeId = opts.nodes + 1;
    for (const id of this.ids) {
      const n = new SimNode(id);
      this.nodes.push(n);
      this.start(n, true);
    }
  }

  private fail(msg: string): never {
    throw new SafetyViolation(`tick ${this.now}: ${msg}`);
  }

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }

  private start(n: SimNode, bootstrap: boolean): void {
    const snap = n.storage.snapshot();
    n.sm = decodeState(snap.data);
    const nodeRand = prng(Math.floor(this.rand() * 2 ** 32));
    n.node = new RawNode({
      id: n.id,
      storage: n.storage,
      electionTick: 10,
      heartbeatTick: 1,
      applied: snap.metadata.index,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      readOnlyOption: ReadOnlyOption.Safe,
      maxSizePerMsg: this.opts.maxSizePerMsg,
      maxInflightMsgs: 8,
      random: nodeRand,
    });
    if (bootstrap) n.node.bootstrap(this.ids.map((id) => ({ id })));
    n.pendingProposals = new Set();
    n.pendingReads = new Map();
  }

  /**
   * As the server does: a member whose bootstrap never reached the disk (no log, no snapshot) bootstraps again;
   * otherwise it restarts from what is on disk.
   */
  private restart(n: SimNode): void {
    if (n.removed) return;
    const empty = n.storage.lastIndex() === 0 && n.storage.snapshot().metadata.index === 0;
    // Only the initial members bootstrap; a member added later joins with an empty log.
    this.start(n, empty && this.ids.includes(n.id));
  }

  private crash(n: SimNode): void {
    n.node = undefined;
    n.downUntil = this.now + 5 + Math.floor(this.rand() * 40);
    this.stats.crashes++;
  }

  private connected(a: NodeId, b: NodeId): boolean {
    if (this.removedIds.has(a) || this.removedIds.has(b)) return false;
    if (!this.partition) return true;
    return this.partition.has(a) === this.partition.has(b);
  }

  // ---- the host loop of one node ----

  private handleReady(n: SimNode): void {
    const node = n.node;
    if (!node || !node.hasReady()) return;
    const rd = node.ready();
    // persist
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      this.checkSnapshot(rd.snapshot.data, rd.snapshot.metadata.index);
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.checkPersisted(n, rd.entries);
    // a crash after persisting, before sending
    if (this.faults && this.rand() < this.opts.crashRate / 4) {
      this.crash(n);
      return;
    }
    // send
    for (const m of rd.messages) this.transmit(m);
    // apply
    if (rd.snapshot) n.sm = decodeState(rd.snapshot.data);
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) {
      const key = Buffer.from(rs.requestCtx).toString();
      const floor = n.pendingReads.get(key);
      if (floor === undefined) continue;
      n.pendingReads.delete(key);
      if (rs.index < floor) this.fail(`node ${n.id}: read ${key} got index ${rs.index}, below ${floor} acknowledged before it was asked`);
      this.stats.readsServed++;
    }
    if (rd.softState?.raftState === StateType.Leader) this.checkNewLeader(n);
    node.advance(rd);
    // compaction
    const snapIndex = n.storage.snapshot().metadata.index;
    if (n.sm.index - snapIndex >= this.opts.snapshotEvery) {
      n.storage.createSnapshot(n.sm.index, node.status().confState, encodeState(n.sm));
      const compactTo = n.sm.index - 2;
      if (compactTo > snapIndex) n.storage.compact(compactTo);
    }
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.sm.index + 1) this.fail(`node ${n.id} applied ${e.index} after ${n.sm.index}`);
    const data = Buffer.from(e.data).toString();
    const prev = this.committedAt.get(e.index);
    if (prev && (prev.term !== e.term || prev.data !== data)) {
      this.fail(`node ${n.id} applied (${e.index}, t${e.term}, '${data}') where another applied (t${prev.term}, '${prev.data}')`);
    }
    if (!prev) this.committedAt.set(e.index, { term: e.term, data });
    this.maxCommitted = Math.max(this.maxCommitted, e.index);
    n.sm = { index: e.index, h1: mix(mix(n.sm.h1, String(e.term)), e.data), h2: mix(n.sm.h2 ^ e.index, e.data) };
    const h = `${n.sm.h1}:${n.sm.h2}`;
    const ph = this.hashAt.get(e.index);
    if (ph !== undefined && ph !== h) this.fail(`node ${n.id}: state at ${e.index} differs from another node's`);
    this.hashAt.set(e.index, h);
    if (e.type === EntryType.ConfChange && n.node) {
      const cc = decodeConfChange(e.data);
      n.node.applyConfChange(cc);
      if (cc.type === ConfChangeType.RemoveNode && !this.removedIds.has(cc.nodeId)) {
        this.removedIds.add(cc.nodeId);
        this.stats.membersRemoved++;
      }
      if (cc.type !== ConfChangeType.RemoveNode && !this.nodes.some((x) => x.id === cc.nodeId)) {
        // As with etcd's `member add`: once the addition is committed, the new member's process starts with an
        // empty data dir and joins.
        this.stats.membersAdded++;
        const joiner = new SimNode(cc.nodeId);
        this.nodes.push(joiner);
        this.start(joiner, false);
      }
    }
    if (n.pendingProposals.delete(data)) {
      this.acked.set(data, e.index);
      this.maxAcked = Math.max(this.maxAcked, e.index);
    }
  }

  private checkSnapshot(data: Uint8Array, index: number): void {
    const s = decodeState(data);
    if (s.index !== index) this.fail(`snapshot at ${index} holds state of ${s.index}`);
    const h = this.hashAt.get(index);
    if (h !== undefined && h !== `${s.h1}:${s.h2}`) this.fail(`snapshot at ${index} differs from the applied state there`);
  }

  /** Log matching: an (index, term) names one entry, always with the same predecessor term. */
  private checkPersisted(n: SimNode, ents: Entry[]): void {
    for (const e of ents) {
      const key = `${e.index}:${e.term}`;
      const data = Buffer.from(e.data).toString();
      let prevTerm: number | undefined;
      try {
        prevTerm = e.index > 1 ? n.storage.term(e.index - 1) : 0;
      } catch {
        prevTerm = undefined; // compacted
      }
      const seen = this.entryAt.get(key);
      if (!seen) {
        this.entryAt.set(key, { data, prevTerm });
        continue;
      }
      if (seen.data !== data) this.fail(`node ${n.id}: two different entries at (${key})`);
      if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
        this.fail(`node ${n.id}: log matching broken before (${key}): prev term ${prevTerm} vs ${seen.prevTerm}`);
      }
    }
  }

  /** Election safety and leader completeness. */
  private checkNewLeader(n: SimNode): void {
    const raft = n.node!.raft;
    const other = this.leaderOfTerm.get(raft.term);
    if (other !== undefined && other !== n.id) this.fail(`two leaders in term ${raft.term}: ${other} and ${n.id}`);
    this.leaderOfTerm.set(raft.term, n.id);
    this.stats.leaderChanges++;
    const first = raft.raftLog.firstIndex();
    for (let i = first; i <= this.maxCommitted; i++) {
      const c = this.committedAt.get(i);
      if (!c) continue;
      const t = raft.raftLog.termOrZero(i);
      if (t !== c.term) this.fail(`leader ${n.id} of term ${raft.term} lacks committed entry ${i} (has term ${t}, committed ${c.term})`);
    }
  }

  // ---- the network ----

  private transmit(m: Message): void {
    if (this.faults && this.rand() < this.opts.lossRate) {
      this.lost(m);
      return;
    }
    const delay = Math.floor(this.rand() * (this.faults ? this.opts.maxDelay + 1 : 2));
    this.inflight.push({ m, at: this.now + delay });
    if (this.faults && this.rand() < this.opts.dupRate) {
      this.inflight.push({ m: { ...m }, at: this.now + Math.floor(this.rand() * (this.opts.maxDelay + 1)) });
    }
  }

  /** The sender's transport learns a snapshot did not get through. */
  private lost(m: Message): void {
    if (m.type !== MessageType.Snap) return;
    const from = this.nodes.find((x) => x.id === m.from);
    from?.node?.reportSnapshot(m.to, false);
  }

  private deliver(m: Message): void {
    const to = this.nodes.find((x) => x.id === m.to);
    if (!to?.node || !this.connected(m.from, m.to)) {
      this.lost(m);
      return;
    }
    if (m.type === MessageType.Snap) this.stats.snapshotsSent++;
    try {
      to.node.step(m);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
    if (m.type === MessageType.Snap) this.nodes.find((x) => x.id === m.from)?.node?.reportSnapshot(m.to, true);
    if (this.rand() < 0.5) this.betweenReadies(to);
    if (this.rand() < 0.5) this.handleReady(to);
  }

  /**
   * What the server's host does while a Ready is being persisted: apply committed entries that are durable here
   * already (takeCommitted), and, on a leader, send new appends and heartbeats before persisting them
   * (takeLeaderMessages).
   */
  private betweenReadies(n: SimNode): void {
    const node = n.node;
    if (!node) return;
    if (this.rand() < 0.5) {
      const ents = node.takeCommitted();
      for (const e of ents) this.apply(n, e);
      if (ents.length > 0 && n.node === node) node.appliedTo(ents[ents.length - 1].index, ents);
      this.stats.appliedEarly += ents.length;
    }
    if (n.node === node && this.rand() < 0.5) {
      const msgs = node.takeLeaderMessages();
      for (const m of msgs) this.transmit(m);
      this.stats.sentEarly += msgs.length;
    }
  }

  // ---- the clock ----

  private tick(): void {
    this.now++;
    const o = this.opts;
    if (this.faults) {
      if (this.partition && this.now >= this.partitionUntil) this.partition = undefined;
      if (!this.partition && this.rand() < o.partitionRate) {
        this.partition = new Set(this.ids.filter(() => this.rand() < 0.5));
        this.partitionUntil = this.now + 10 + Math.floor(this.rand() * 90);
      }
      if (this.rand() < o.crashRate) {
        const up = this.nodes.filter((x) => x.up);
        if (up.length > 0) this.crash(this.pick(up));
      }
    }
    for (const n of this.nodes) {
      if (!n.removed && this.removedIds.has(n.id)) {
        n.removed = true;
        n.node = undefined;
      }
    }
    for (const n of this.nodes) if (!n.up && this.now >= n.downUntil) this.restart(n);
    if (this.faults && this.rand() < o.confChangeRate) this.changeMembership();
    for (const n of this.nodes) n.node?.tick();
    // client traffic
    if (this.rand() < o.proposeRate) this.propose(this.pick(this.nodes), `p${++this.proposalSeq}`);
    if (this.rand() < o.readRate) this.read(this.pick(this.nodes));
    // deliver what is due, in random order
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.inflight) (f.at <= this.now ? due : later).push(f);
    this.inflight = later;
    for (let i = due.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [due[i], due[j]] = [due[j], due[i]];
    }
    for (const f of due) this.deliver(f.m);
    for (const n of this.nodes) {
      for (let guard = 0; n.node?.hasReady(); guard++) {
        if (guard > 1000) this.fail(`node ${n.id} never quiesces`);
        this.handleReady(n);
      }
    }
  }

  /** The leader proposes one membership change: remove a voter, add a new member (voter or learner), or promote. */
  private changeMembership(): void {
    const leader = this.nodes.find((x) => x.node?.raft.state === StateType.Leader);
    if (!leader) return;
    const cs = leader.node!.status().confState;
    const r = this.rand();
    let cc;
    if (cs.learners.length > 0 && r < 0.3) {
      cc = { type: ConfChangeType.AddNode, nodeId: this.pick(cs.learners) };
    } else if (cs.voters.length > 3 && r < 0.6) {
      cc = { type: ConfChangeType.RemoveNode, nodeId: this.pick(cs.voters) };
    } else if (cs.voters.length + cs.learners.length < 7) {
      const id = String(this.nextNodeId);
      cc = { type: this.rand() < 0.5 ? ConfChangeType.AddNode : ConfChangeType.AddLearnerNode, nodeId: id };
    } else {
      return;
    }
    try {
      leader.node!.proposeConfChange(cc);
    } catch (err) {
      if (err instanceof ProposalDroppedError) return;
      throw err;
    }
    if (cc.nodeId === String(this.nextNodeId)) this.nextNodeId++;
  }

  propose(n: SimNode, data: string): boolean {
    if (!n.node) return false;
    try {
      n.node.propose(Buffer.from(data));
    } catch (err) {
      if (err instanceof ProposalDroppedError) return false;
      throw err;
    }
    n.pendingProposals.add(data);
    return true;
  }

  private read(n: SimNode): void {
    if (!n.node) return;
    const key = `r${++this.readSeq}`;
    try {
      n.node.readIndex(Buffer.from(key));
    } catch (err) {
      if (err instanceof ProposalDroppedError) return;
      throw err;
    }
    n.pendingReads.set(key, this.maxAcked);
  }

  /** The nodes not removed from the cluster. */
  private members(): SimNode[] {
    return this.nodes.filter((x) => !x.removed);
  }

  run(): SimResult {
    for (let t = 0; t < this.opts.chaosTicks; t++) this.tick();
    // heal: every node up, the network whole and reliable
    this.faults = false;
    this.partition = undefined;
    for (const n of this.nodes) if (!n.up) this.restart(n);
    const healedAt = this.now;
    // A leader must emerge and commit a new proposal everywhere. A proposal can still be lost if leadership
    // changes under it (that is allowed: it was never acknowledged), so propose afresh every few timeouts.
    let final: string | undefined;
    let attempt = 0;
    let lastAttemptAt = -Infinity;
    while (this.now - healedAt < this.opts.livenessBound) {
      this.tick();
      if (final && this.acked.has(final)) {
        const idx = this.acked.get(final)!;
        if (this.members().every((x) => x.sm.index >= idx)) break;
        continue;
      }
      if (this.now - lastAttemptAt < 30) continue;
      const leader = this.nodes.find((x) => x.node?.raft.state === StateType.Leader);
      if (leader && this.propose(leader, `final-${this.seed}-${++attempt}`)) {
        final = `final-${this.seed}-${attempt}`;
        lastAttemptAt = this.now;
      }
    }
    if (!final || !this.acked.has(final)) {
      const states = this.members().map((x) => `${x.id}:${x.node!.raft.state}@t${x.node!.raft.term}`).join(' ');
      this.fail(`no proposal committed within ${this.opts.livenessBound} ticks of healing (${states})`);
    }
    const idx = this.acked.get(final)!;
    for (const n of this.members()) {
      if (n.sm.index < idx) this.fail(`node ${n.id} did not apply up to ${idx} within the bound (at ${n.sm.index})`);
    }
    // Every acknowledged proposal is in the final, common log at the index it was acknowledged at.
    for (const [data, index] of this.acked) {
      const c = this.committedAt.get(index);
      if (!c || c.data !== data) this.fail(`acknowledged ${data} at ${index} is not in the log`);
    }
    return {
      ticks: this.now,
      committed: this.maxCommitted,
      acked: this.acked.size,
      leaderChanges: this.stats.leaderChanges,
      crashes: this.stats.crashes,
      snapshotsSent: this.stats.snapshotsSent,
      readsServed: this.stats.readsServed,
      membersAdded: this.stats.membersAdded,
      membersRemoved: this.stats.membersRemoved,
      appliedEarly: this.stats.appliedEarly,
      sentEarly: this.stats.sentEarly,
    };
  }
}
