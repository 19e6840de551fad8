import { decodeConfChange } from './confchange';
import { CompactedError, ProposalDroppedError, SnapshotTemporarilyUnavailableError, UnavailableError } from './errors';
import { RaftLog } from './log';
import { Progress, ProgressState, ProgressTracker, VoteResult } from './progress';
import { ReadOnly, ReadOnlyOption } from './read-only';
import { Storage, entrySize } from './storage';
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
  ReadState,
  Snapshot,
  SoftState,
  StateType,
  makeMessage,
} from './types';

export interface RaftConfig {
  id: NodeId;
  storage: Storage;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [n, 2n)). */
  electionTick: number;
  /** Ticks between the leader's heartbeats; must be less than electionTick. */
  heartbeatTick: number;
  /** The last index the host applied (on restart); entries after it are handed out again. */
  applied?: number;
  /** Upper bound in bytes of the entries in one append message. */
  maxSizePerMsg?: number;
  /** Upper bound of appends in flight to one follower in Replicate state. */
  maxInflightMsgs?: number;
  /** Upper bound in bytes of entries the leader has appended but not committed; 0 is unlimited. */
  maxUncommittedEntriesSize?: number;
  /** Upper bound in bytes of committed entries handed out in one Ready. */
  maxCommittedSizePerReady?: number;
  /** A leader that did not hear from a quorum within an election timeout steps down. */
  checkQuorum?: boolean;
  /** Campaigns first ask whether they could win, so that a rejoining node does not disrupt a healthy leader. */
  preVote?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Refuse proposals on followers instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Source of randomness for election timeouts, in [0, 1). Inject a seeded one for deterministic tests. */
  random?: () => number;
}

export enum CampaignType {
  PreElection = 'CampaignPreElection',
  Election = 'CampaignElection',
  /** A campaign asked for by the leader (TimeoutNow): it skips PreVote and overrides leader leases. */
  Transfer = 'CampaignTransfer',
}

const TRANSFER_CONTEXT = Buffer.from(CampaignType.Transfer);

function isTransferContext(ctx: Uint8Array | undefined): boolean {
  return ctx !== undefined && Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).equals(TRANSFER_CONTEXT);
}

function voteRespType(t: MessageType): MessageType {
  switch (t) {
    case MessageType.Vote:
      return MessageType.VoteResp;
    case MessageType.PreVote:
      return MessageType.PreVoteResp;
    default:
      throw new Error(`not a vote message: ${t}`);
  }
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
}

export interface RaftStatus {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  /** On the leader: each member's progress. */
  progress?: Map<NodeId, ProgressStatus>;
  confState: ConfState;
}

/**
 * The Raft consensus state machine. It has no timers, I/O or clock: the host calls tick() at a fixed interval,
 * step() with messages from peers and local requests, and collects `msgs` to send and the log's unstable entries,
 * snapshot and committed entries (through RawNode's Ready).
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly trk: ProgressTracker;
  state: StateType = StateType.Follower;
  isLearner = false;
  msgs: Message[] = [];
  lead: NodeId = NONE;
  /** The member leadership is being handed to, while a transfer is in progress. */
  leadTransferee: NodeId = NONE;
  /** A configuration change may be proposed only once the log is applied past this index. */
  pendingConfIndex = 0;
  uncommittedSize = 0;
  readOnly: ReadOnly;
  /** Ticks since the last election timeout reset (followers) or the last CheckQuorum (leader). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  readonly disableProposalForwarding: boolean;
  private readonly random: () => number;
  /** A TimeoutNow that arrived while committed configuration changes were still unapplied: campaign once applied. */
  private pendingTransferCampaign = false;
  /** ReadIndex requests received before the leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];

  constructor(c: RaftConfig) {
    if (!c.id) throw new Error('raft: cannot use an empty id');
    if (c.heartbeatTick <= 0) throw new Error('raft: heartbeat tick must be greater than 0');
    if (c.electionTick <= c.heartbeatTick) throw new Error('raft: election tick must be greater than heartbeat tick');
    const readOnlyOption = c.readOnlyOption ?? ReadOnlyOption.Safe;
    if (readOnlyOption === ReadOnlyOption.LeaseBased && !c.checkQuorum) {
      throw new Error('raft: CheckQuorum must be enabled when the read-only option is lease-based');
    }
    this.id = c.id;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady);
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? 0;
    this.trk = new ProgressTracker(c.maxInflightMsgs ?? 256);
    this.readOnly = new ReadOnly(readOnlyOption);
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.random = c.random ?? Math.random;

    const { hardState, confState } = c.storage.initialState();
    for (const id of confState.voters) this.trk.voters.add(id);
    for (const id of confState.learners) this.trk.learners.add(id);
    for (const id of [...confState.voters, ...confState.learners]) {
      this.trk.progress.set(id, new Progress(1, this.trk.maxInflight, this.trk.learners.has(id)));
    }
    this.isLearner = this.trk.learners.has(this.id);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (c.applied) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new Error(`raft ${this.id}: state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  status(): RaftStatus {
    const st: RaftStatus = {
      id: this.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.raftLog.applied,
      leadTransferee: this.leadTransferee,
      confState: this.trk.confState(),
    };
    if (this.state === StateType.Leader) {
      st.progress = new Map();
      for (const [id, pr] of this.trk.progress) {
        st.progress.set(id, { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive });
      }
    }
    return st;
  }

  // ---- sending ----

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      if (m.term === 0) throw new Error(`term should be set when sending ${m.type}`);
    } else {
      if (m.term !== 0) throw new Error(`term should not be set when sending ${m.type} (was ${m.term})`);
      // Proposals and read requests are forwarded to the leader as if local, without a term.
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends an append (or a snapshot if the follower needs entries we compacted). Returns whether it sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    let term: number;
    let ents: Entry[];
    try {
      term = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (err) {
      if (!(err instanceof CompactedError || err instanceof UnavailableError)) throw err;
      return this.maybeSendSnapshot(to, pr);
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send(makeMessage({ type: MessageType.App, to, index: pr.next - 1, logTerm: term, entries: ents, commit: this.raftLog.committed }));
    if (ents.length > 0) {
      if (pr.state === ProgressState.Replicate) {
        const last = ents[ents.length - 1].index;
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not ship a snapshot to a member that may be down
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (err) {
      if (err instanceof SnapshotTemporarilyUnavailableError) return false;
      throw err;
    }
    if (snapshot.metadata.index === 0) throw new Error('need non-empty snapshot');
    this.send(makeMessage({ type: MessageType.Snap, to, snapshot }));
    pr.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    // A follower may not have the leader's whole log yet: never tell it a commit index past what it matches.
    const pr = this.trk.progress.get(to);
    const commit = Math.min(pr ? pr.match : 0, this.raftLog.committed);
    this.send(makeMessage({ type: MessageType.Heartbeat, to, commit, context: ctx }));
  }

  bcastAppend(): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx();
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  // ---- state transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    for (const [id, old] of this.trk.progress) {
      const pr = new Progress(lastIndex + 1, this.trk.maxInflight, old.isLearner);
      if (id === this.id) pr.match = this.raftLog.lastStableIndex();
      this.trk.progress.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
    this.pendingReadIndexMessages = [];
    this.pendingTransferCampaign = false;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither its term nor its vote.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new Error('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.trk.progress.get(this.id);
    if (self) self.becomeReplicate();
    // The empty entry of the new term: committing it commits everything before it (the commit rule), and a
    // configuration change may only be proposed once it is applied.
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) };
    if (!this.appendEntry([empty])) throw new Error('empty entry was dropped');
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The empty entry does not count against the uncommitted size limit.
    this.uncommittedSize = 0;
  }

  // ---- elections ----

  /** Whether this node may campaign: a voter in the current configuration, not waiting on a snapshot. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) return;
    // Do not campaign with committed configuration changes not yet applied: the new term could start from a
    // membership other than the one the log commits to.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    const lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    if (lo >= hi) return false;
    let ents: Entry[];
    try {
      ents = this.raftLog.slice(Math.max(lo, this.raftLog.firstIndex()), hi, Number.MAX_SAFE_INTEGER);
    } catch (err) {
      if (err instanceof CompactedError) return false;
      throw err;
    }
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  campaign(t: CampaignType): void {
    let voteMsg: MessageType;
    let term: number;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      // A pre-vote asks for the term we would have, without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    // Our own vote first: a single-voter cluster wins at once.
    const { result } = this.poll(this.id, voteRespType(voteMsg), true);
    if (result === VoteResult.Won) {
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    const ids = [...this.trk.voters].sort();
    for (const id of ids) {
      if (id === this.id) continue;
      this.send(
        makeMessage({
          type: voteMsg,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: t === CampaignType.Transfer ? TRANSFER_CONTEXT : undefined,
        }),
      );
    }
  }

  private poll(id: NodeId, _t: MessageType, granted: boolean): { granted: number; rejected: number; result: VoteResult } {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes();
  }

  // ---- the step function ----

  /** Feeds one message (from a peer, or a local request) to the state machine. */
  step(m: Message): void {
    if (m.term === 0) {
      // a local message (or a forwarded proposal / read request)
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // We heard from a leader within the minimum election timeout: it is alive, so ignore the disruption.
        // With CheckQuorum this is a lease that votes respect; with PreVote, a pre-vote is granted only by a
        // member that believes the leader is gone (the thesis, 9.6). A leader transfer overrides both.
        const leaseHolds = this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        const respectLease = this.checkQuorum || (m.type === MessageType.PreVote && this.preVote);
        if (!isTransferContext(m.context) && respectLease && leaseHolds) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The term of a granted pre-vote is the one we will campaign in; we move to it when we win.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A leader of an older term (e.g. just back from a partition): tell it our term so that it steps down.
        // Without this, with CheckQuorum or PreVote it could never learn it and the rest could not elect past it.
        this.send(makeMessage({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        // Reject stale pre-votes with our term so the pre-candidate learns it is behind.
        this.send(makeMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Grant with the term of the request: a pre-vote for a future term must carry that term back.
          this.send(makeMessage({ type: voteRespType(m.type), to: m.from, term: m.term }));
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(makeMessage({ type: voteRespType(m.type), to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        switch (this.state) {
          case StateType.Leader:
            this.stepLeader(m);
            return;
          case StateType.Candidate:
          case StateType.PreCandidate:
            this.stepCandidate(m);
            return;
          case StateType.Follower:
            this.stepFollower(m);
            return;
        }
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum: {
        const self = this.trk.progress.get(this.id);
        if (self) self.recentActive = true;
        if (!this.trk.quorumActive(this.id)) this.becomeFollower(this.term, NONE);
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
        return;
      }
      case MessageType.Prop: {
        if (m.entries.length === 0) throw new Error(`${this.id} stepped empty MsgProp`);
        if (!this.trk.progress.has(this.id)) throw new ProposalDroppedError('this member was removed from the cluster');
        if (this.leadTransferee !== NONE) throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
        for (let i = 0; i < m.entries.length; i++) {
          if (m.entries[i].type !== EntryType.ConfChange) continue;
          if (this.pendingConfIndex > this.raftLog.applied) {
            throw new ProposalDroppedError('a configuration change is still pending');
          }
          this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
        }
        if (!this.appendEntry(m.entries)) throw new ProposalDroppedError('too many uncommitted entries');
        this.bcastAppend();
        return;
      }
      case MessageType.ReadIndex:
        if (this.trk.isSingleton() && this.trk.voters.has(this.id)) {
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // Until the leader commits an entry of its own term it does not know the commit index for sure.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.handleReadIndex(m);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        if (m.reject) {
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0) {
            // The follower told us its term at the hint: skip every entry of ours with a larger term.
            nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
          }
          if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
            if (pr.state === ProgressState.Replicate) pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          const oldPaused = pr.isPaused();
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === ProgressState.Probe) {
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Replicate) {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (oldPaused) {
              this.sendAppend(m.from);
            }
            // Keep the pipeline full while there are entries to send.
            while (this.maybeSendAppend(m.from, false)) {
              // loop
            }
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
              this.sendTimeoutNow(m.from);
            }
          }
        }
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        // Appends in flight may have been lost: with the window full, free one slot so that the next append
        // (which the follower rejects if it missed the earlier ones) restarts replication.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (this.readOnly.option !== ReadOnlyOption.Safe || !m.context || m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks) return;
        acks.add(this.id);
        if (!this.trk.isQuorum(acks)) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the follower's answer (or the next heartbeat) before probing again.
        pr.probeSent = true;
        return;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) return;
        const transferee = m.from;
        const last = this.leadTransferee;
        if (last !== NONE) {
          if (last === transferee) return;
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return;
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError('no leader (an election is in progress)');
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.ReadIndex:
        throw new ProposalDroppedError('no leader (an election is in progress)');
      case MessageType.TransferLeader:
        throw new ProposalDroppedError('no leader (an election is in progress)');
      default:
        if (m.type !== myVoteResp) return;
        {
          const { result } = this.poll(m.from, m.type, !m.reject);
          if (result === VoteResult.Won) {
            if (this.state === StateType.PreCandidate) {
              this.campaign(CampaignType.Election);
            } else {
              this.becomeLeader();
              this.bcastAppend();
            }
          } else if (result === VoteResult.Lost) {
            // A pre-candidate that lost goes back to the term it has; a candidate stays in its new term.
            this.becomeFollower(this.term, NONE);
          }
        }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader');
        if (this.disableProposalForwarding) throw new ProposalDroppedError('proposal forwarding is disabled');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader to transfer leadership from');
        m.to = this.lead;
        m.term = 0;
        this.send(m);
        return;
      case MessageType.TimeoutNow:
        // The leader hands us leadership: campaign at once, without PreVote, overriding leases. If the leader
        // committed a configuration change we have not applied yet (e.g. its own removal), campaign once we have.
        if (this.hasUnappliedConfChanges()) this.pendingTransferCampaign = true;
        else this.hup(CampaignType.Transfer);
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader to serve a read index');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context ?? new Uint8Array(0) });
        return;
    }
  }

  // ---- followers' handlers ----

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Reject with a hint: the largest index <= m.index whose term is <= m.logTerm, and its term, so the leader
    // can skip the whole conflicting term in one round trip.
    let hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    hintIndex = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    const hintTerm = this.raftLog.termOrZero(hintIndex);
    this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm }));
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(makeMessage({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    if (!m.snapshot) return;
    if (this.restore(m.snapshot)) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed }));
    }
  }

  /** Installs a snapshot from the leader; false if it is not newer than what we have committed. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defensive: only a follower takes a snapshot.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    // A snapshot may predate this member's own addition (the leader's latest snapshot was taken before it): take
    // it anyway. The member is then not in its own configuration, so it cannot campaign, until it applies the
    // entry that adds it, which follows in the log.
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entry: fast-forward the commit index instead.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.restoreConfState(cs);
    return true;
  }

  private restoreConfState(cs: ConfState): void {
    this.trk.voters.clear();
    this.trk.learners.clear();
    this.trk.progress.clear();
    const next = this.raftLog.lastIndex() + 1;
    for (const id of cs.voters) {
      this.trk.voters.add(id);
      this.trk.progress.set(id, new Progress(next, this.trk.maxInflight, false));
    }
    for (const id of cs.learners) {
      this.trk.learners.add(id);
      this.trk.progress.set(id, new Progress(next, this.trk.maxInflight, true));
    }
    const self = this.trk.progress.get(this.id);
    if (self) self.match = next - 1;
    this.isLearner = this.trk.learners.has(this.id);
  }

  // ---- the leader's log ----

  private appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    const ents: Entry[] = new Array(es.length);
    for (let i = 0; i < es.length; i++) ents[i] = { term: this.term, index: li + 1 + i, type: es[i].type, data: es[i].data };
    if (!this.increaseUncommittedSize(ents)) return false;
    this.raftLog.append(ents);
    // The leader counts itself for an entry only once the host reports it durable (see stableTo): an entry is
    // never committed on a quorum that includes an unsynced leader.
    return true;
  }

  private increaseUncommittedSize(ents: Entry[]): boolean {
    if (this.maxUncommittedSize === 0) return true;
    let s = 0;
    for (const e of ents) s += e.data.length;
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    this.uncommittedSize += s;
    return true;
  }

  private reduceUncommittedSize(ents: Entry[]): void {
    if (this.uncommittedSize === 0) return;
    let s = 0;
    for (const e of ents) s += e.data.length;
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  /** Advances the commit index to what a quorum of voters has, if that entry is of the current term. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  /** The host made entries up to (index, term) durable. */
  stableTo(index: number, term: number): void {
    this.raftLog.stableTo(index, term);
    if (this.state !== StateType.Leader) return;
    if (this.raftLog.termOrZero(index) !== term) return;
    const self = this.trk.progress.get(this.id);
    if (self && self.maybeUpdate(index) && this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  /** The host applied entries up to index. */
  appliedTo(index: number, appliedEntries: Entry[]): void {
    this.raftLog.appliedTo(index);
    this.reduceUncommittedSize(appliedEntries);
    if (this.pendingTransferCampaign && this.state === StateType.Follower && !this.hasUnappliedConfChanges()) {
      this.pendingTransferCampaign = false;
      this.hup(CampaignType.Transfer);
    }
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  private handleReadIndex(m: Message): void {
    if (this.readOnly.option === ReadOnlyOption.Safe) {
      this.readOnly.addRequest(this.raftLog.committed, m);
      // The leader acknowledges itself; heartbeats collect the rest.
      this.readOnly.recvAck(this.id, m.context);
      this.bcastHeartbeatWithCtx(m.context);
    } else {
      this.respondToReadIndex(m, this.raftLog.committed);
    }
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.handleReadIndex(m);
  }

  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.context ?? new Uint8Array(0) });
      return;
    }
    this.send(makeMessage({ type: MessageType.ReadIndexResp, to: req.from, index: readIndex, context: req.context }));
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(makeMessage({ type: MessageType.TimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- ticks ----

  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(makeMessage({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  // ---- membership ----

  /** Applies a committed configuration change; returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    const id = cc.nodeId;
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.addNode(id, false);
        break;
      case ConfChangeType.AddLearnerNode:
        this.addNode(id, true);
        break;
      case ConfChangeType.RemoveNode:
        this.removeNode(id);
        break;
    }
    return this.trk.confState();
  }

  private addNode(id: NodeId, asLearner: boolean): void {
    const pr = this.trk.progress.get(id);
    if (pr) {
      if (asLearner === pr.isLearner) return; // already there in that role
      if (asLearner) return; // a voter is never demoted to a learner
      // promote a learner
      pr.isLearner = false;
      this.trk.learners.delete(id);
      this.trk.voters.add(id);
    } else {
      const npr = new Progress(this.raftLog.lastIndex() + 1, this.trk.maxInflight, asLearner);
      // A new member counts as active so that CheckQuorum right after adding it does not depose the leader.
      npr.recentActive = true;
      this.trk.progress.set(id, npr);
      if (asLearner) this.trk.learners.add(id);
      else this.trk.voters.add(id);
    }
    if (id === this.id) this.isLearner = asLearner;
  }

  private removeNode(id: NodeId): void {
    if (!this.trk.progress.has(id)) return;
    this.trk.progress.delete(id);
    this.trk.voters.delete(id);
    this.trk.learners.delete(id);
    if (this.trk.voters.size === 0) return;
    if (this.state === StateType.Leader && this.leadTransferee === id) this.abortLeaderTransfer();
    if (id === this.id) {
      if (this.state === StateType.Leader) {
        // A removed leader steps down, and hands the election to the most up-to-date remaining voter so that the
        // cluster does not wait an election timeout.
        let best: NodeId = NONE;
        let bestMatch = -1;
        for (const vid of [...this.trk.voters].sort()) {
          const p = this.trk.progress.get(vid);
          if (p && p.match > bestMatch) {
            best = vid;
            bestMatch = p.match;
          }
        }
        if (best !== NONE) this.sendTimeoutNow(best);
        this.becomeFollower(this.term, NONE);
      }
      return;
    }
    // The quorum shrank: entries may be committed now.
    if (this.state === StateType.Leader && this.maybeCommit()) this.bcastAppend();
  }

  /** Decodes the ConfChange carried by a committed entry (helper for hosts). */
  static confChangeOf(e: Entry): ConfChange {
    return decodeConfChange(e.data);
  }
}
