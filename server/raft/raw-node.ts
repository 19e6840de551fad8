import { encodeConfChange } from './confchange';
import { Raft, RaftConfig, RaftStatus } from './raft';
import {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NONE,
  NodeId,
  Ready,
  SoftState,
  StateType,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
} from './types';

/** The member a new cluster starts with (see RawNode.bootstrap). */
export interface Peer {
  id: NodeId;
  /** Opaque to Raft, carried in the ConfChange (the server puts the member's name and peer URLs here). */
  context?: Uint8Array;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * The host's handle on a Raft state machine. The host's loop:
 *   tick() every heartbeat interval / step() peer messages / propose() client requests;
 *   while (hasReady()) { rd = ready(); persist rd.hardState, rd.entries, rd.snapshot (fsync if rd.mustSync);
 *     send rd.messages; apply rd.snapshot and rd.committedEntries; advance(rd); }
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding = false;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /**
   * Starts a brand-new cluster: the log begins with one AddNode entry per member, committed, in term 1. Call once,
   * on empty storage, on every initial member with the same peers in the same order.
   */
  bootstrap(peers: Peer[]): void {
    if (peers.length === 0) throw new Error('raft: must provide at least one peer to bootstrap');
    if (this.raft.raftLog.lastIndex() !== 0) throw new Error("raft: can't bootstrap a nonempty storage");
    // Never move a persisted term backwards (a host may re-bootstrap after a crash that lost only the entries).
    this.raft.becomeFollower(Math.max(1, this.raft.term), NONE);
    const ents = peers.map((p, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId: p.id, context: p.context }),
    }));
    this.raft.raftLog.append(ents);
    this.raft.raftLog.committed = ents.length;
    for (const p of peers) this.raft.applyConfChange({ type: ConfChangeType.AddNode, nodeId: p.id });
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (instead of waiting for the election timeout). */
  campaign(): void {
    this.raft.step(makeMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Proposes data to be appended to the log. Throws ProposalDroppedError when it cannot be taken. */
  propose(data: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }));
  }

  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(makeMessage({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data }] }));
  }

  /** Applies a committed configuration change (the host calls this when it applies a ConfChange entry). */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Feeds a message received from a peer. Local message types from the network are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new Error(`raft: cannot step raft local message ${m.type}`);
    if (isResponseMessage(m.type) && !this.raft.trk.progress.has(m.from)) return; // from a peer we do not know
    this.raft.step(m);
  }

  /** Asks for a linearizable read: a ReadState with this ctx comes in a later Ready. */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.ReadIndex, from: this.raft.id, context: ctx }));
  }

  /** Asks the leader to hand leadership to transferee. */
  transferLeader(transferee: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.TransferLeader, from: transferee }));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.Unreachable, from: id }));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(makeMessage({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  status(): RaftStatus {
    return this.raft.status();
  }

  hasReady(): boolean {
    const r = this.raft;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) return true;
    const hs = r.hardState();
    if (hs.term !== 0 && !hardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  /** What the host must do now. Call advance() with it before the next ready(). */
  ready(): Ready {
    if (this.outstanding) throw new Error('raft: ready() called again before advance()');
    const r = this.raft;
    const rd: Ready = {
      readStates: r.readStates,
      entries: r.raftLog.unstableEntries().slice(),
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      mustSync: false,
    };
    r.msgs = [];
    r.readStates = [];
    if (rd.committedEntries.length > 0) r.raftLog.applyingTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) {
      rd.hardState = hs;
      rd.mustSync = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    }
    if (rd.entries.length > 0) rd.mustSync = true;
    if (r.raftLog.unstable.snapshot) rd.snapshot = r.raftLog.unstable.snapshot;
    this.outstanding = true;
    return rd;
  }

  /**
   * While a Ready is being persisted: committed entries that are already durable here (in Storage, not among the
   * entries being written) and not yet handed out. The host may apply them at once, then calls appliedTo() — a
   * leader answers clients one write earlier than if they waited for the next Ready.
   */
  takeCommitted(): Entry[] {
    const log = this.raft.raftLog;
    if (log.hasPendingSnapshot()) return [];
    const ents = log.nextEntsUpTo(log.storage.lastIndex());
    if (ents.length > 0) log.applyingTo(ents[ents.length - 1].index);
    return ents;
  }

  /**
   * A leader's appends and heartbeats, taken out of the next Ready to be sent now: a leader may send what it has
   * not persisted yet (it counts its own acknowledgement only once durable). Anything else (votes, answers that
   * promise persisted state) stays for the Ready. Empty unless this node is the leader.
   */
  takeLeaderMessages(): Message[] {
    const r = this.raft;
    if (r.state !== StateType.Leader || r.msgs.length === 0) return [];
    const now: Message[] = [];
    const later: Message[] = [];
    for (const m of r.msgs) (m.type === MessageType.App || m.type === MessageType.Heartbeat ? now : later).push(m);
    r.msgs = later;
    return now;
  }

  /** The host applied entries it took with takeCommitted(). */
  appliedTo(index: number, entries: Entry[]): void {
    this.raft.appliedTo(Math.max(index, this.raft.raftLog.applied), entries);
  }

  /** The host finished with rd: its entries and snapshot are durable and its committed entries applied. */
  advance(rd: Ready): void {
    if (!this.outstanding) throw new Error('raft: advance() without a ready()');
    this.outstanding = false;
    const r = this.raft;
    if (rd.snapshot) {
      r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > r.raftLog.applied) r.appliedTo(rd.snapshot.metadata.index, []);
    }
    if (rd.committedEntries.length > 0) {
      // Entries taken early (takeCommitted) may already have moved `applied` past this Ready's.
      r.appliedTo(Math.max(rd.committedEntries[rd.committedEntries.length - 1].index, r.raftLog.applied), rd.committedEntries);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      r.stableTo(last.index, last.term);
    }
  }
}
