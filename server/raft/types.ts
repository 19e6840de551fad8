/**
 * The data types of the Raft core: log entries, persistent state, snapshots and messages.
 *
 * Node IDs are strings (in the server, the 16-digit hex form of etcd's 64-bit member IDs), so that they
 * survive JSON and can key a Map. Indexes and terms are plain numbers (safe up to 2^53).
 */

export type NodeId = string;

/** The ID that means "nobody" (no vote, no leader). */
export const NONE: NodeId = '';

/** Values are written to the WAL and the wire: never renumber one (test/rafthttp/codec.test.ts pins them). */
export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque payload. An empty Normal entry is the no-op a new leader appends. */
  data: Uint8Array;
}

/** What must be on disk before messages that depend on it are sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** The membership of the cluster as of some log index. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The application's state machine at metadata.index, opaque to Raft. */
  data: Uint8Array;
}

/** Values are written in ConfChange entries: never renumber one (test/rafthttp/codec.test.ts pins them). */
export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  /** Adds a non-voting member; AddNode on an existing learner promotes it to voter. */
  AddLearnerNode = 2,
}

/** One membership change, carried (encoded) in the data of a ConfChange entry. */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to Raft: the server puts the member's name and peer URLs here. */
  context?: Uint8Array;
}

/** The wire code of each type is fixed in rafthttp/codec.ts (MESSAGE_TYPE_CODES), not by the order here. */
export enum MessageType {
  /** Local: start an election (a tick timeout, or the host asked for it). */
  Hup = 'MsgHup',
  /** Local: the leader should send heartbeats. */
  Beat = 'MsgBeat',
  /** A proposal of entries; a follower forwards it to its leader. */
  Prop = 'MsgProp',
  App = 'MsgApp',
  AppResp = 'MsgAppResp',
  Vote = 'MsgVote',
  VoteResp = 'MsgVoteResp',
  PreVote = 'MsgPreVote',
  PreVoteResp = 'MsgPreVoteResp',
  Snap = 'MsgSnap',
  Heartbeat = 'MsgHeartbeat',
  HeartbeatResp = 'MsgHeartbeatResp',
  /** Local: the transport could not reach a peer. */
  Unreachable = 'MsgUnreachable',
  /** Local: the transport reports whether a snapshot reached a peer. */
  SnapStatus = 'MsgSnapStatus',
  /** Local: the leader checks that a quorum was active in the last election timeout. */
  CheckQuorum = 'MsgCheckQuorum',
  TransferLeader = 'MsgTransferLeader',
  TimeoutNow = 'MsgTimeoutNow',
  ReadIndex = 'MsgReadIndex',
  ReadIndexResp = 'MsgReadIndexResp',
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** MsgApp: term of the entry before `entries`; votes: the candidate's last log term. */
  logTerm: number;
  /** MsgApp: index of the entry before `entries`; votes: last log index; responses: the index acknowledged. */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** On a rejected MsgApp: where the follower's log could match (fast backtracking). */
  rejectHint: number;
  /** ReadIndex request context; on MsgVote/MsgPreVote/MsgTimeoutNow the campaign type ('transfer'). */
  context?: Uint8Array;
}

/** A linearizable read is safe once the applied index reaches `index`. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export enum StateType {
  Follower = 'StateFollower',
  Candidate = 'StateCandidate',
  Leader = 'StateLeader',
  PreCandidate = 'StatePreCandidate',
}

/** Volatile state, reported in Ready when it changes; never persisted. */
export interface SoftState {
  lead: NodeId;
  raftState: StateType;
}

/**
 * What the host must do, in this order: persist `hardState`, `entries` and `snapshot` (fsync if `mustSync`),
 * then send `messages`, apply `snapshot` and `committedEntries`, and finally call `advance()`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

export function emptyHardState(): HardState {
  return { term: 0, vote: NONE, commit: 0 };
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function isEmptySnapshot(snap: Snapshot | undefined): boolean {
  return snap === undefined || snap.metadata.index === 0;
}

/** Messages that are answered by the receiving node and only make sense between peers. */
export function isLocalMessage(t: MessageType): boolean {
  return (
    t === MessageType.Hup ||
    t === MessageType.Beat ||
    t === MessageType.Unreachable ||
    t === MessageType.SnapStatus ||
    t === MessageType.CheckQuorum
  );
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.AppResp ||
    t === MessageType.VoteResp ||
    t === MessageType.HeartbeatResp ||
    t === MessageType.Unreachable ||
    t === MessageType.PreVoteResp
  );
}

/** Fills a message's defaults so that call sites name only what matters. */
export function makeMessage(m: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    type: m.type,
    to: m.to ?? NONE,
    from: m.from ?? NONE,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    snapshot: m.snapshot,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
    context: m.context,
  };
}
