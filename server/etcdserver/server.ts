import { messageSize } from '../rafthttp/codec';
import { ServerStats } from './server-stats';
import { EventEmitter } from 'node:events';
import {
  ConfChange,
  ConfChangeType,
  Entry,
  EntryType,
  HardState,
  MemoryStorage,
  NONE,
  ProposalDroppedError,
  RawNode,
  ReadState,
  Snapshot,
  SoftState,
  StateType,
  MessageType,
  decodeConfChange,
} from '../raft';
import { Cluster, Member } from '../membership/cluster';
import { LogPersistence, PeerSender, RaftNode, SnapshotPersistence } from './raft-node';
import { Method, RequestIdGenerator, WriteRequest, decodeRequest, encodeRequest } from './request';

/** The replicated state machine behind the v2 API (the v2 store). Deterministic: time comes from the log. */
export interface V2StateMachine {
  /** Applies a write; returns the event for the client, or throws the store's error (also a client answer). */
  applyWrite(req: WriteRequest): unknown;
  deleteExpiredKeys(nowMs: number): void;
  hasTTLKeys(): boolean;
  save(): Buffer;
  recover(data: Buffer): void;
  /** Throws if a snapshot's store data would not recover (checked before a peer's snapshot reaches Raft). */
  validateSnapshot?(data: Buffer): void;
}

/** The WAL as the server opens or creates it. */
export interface WALStore {
  exists(): boolean;
  create(metadata: Buffer): Promise<LogPersistence & ClosableWAL>;
  open(from: { index: number; term: number }): Promise<{ wal: LogPersistence & ClosableWAL; metadata: Buffer; hardState: HardState; entries: Entry[] }>;
  snapshotMarkers(): Promise<{ index: number; term: number }[]>;
}

export interface ClosableWAL {
  releaseTo(index: number): Promise<void>;
  close(): Promise<void>;
}

export interface SnapshotStore extends SnapshotPersistence {
  loadNewest(): Promise<Snapshot | undefined>;
  /** The newest snapshot among these (index, term) pairs: those whose marker is in the WAL. */
  loadNewestAvailable(markers: { index: number; term: number }[]): Promise<Snapshot | undefined>;
  releaseOlderThan?(index: number): Promise<void>;
}

/** The peer transport as the server drives it: messages out, and the peers to reach as membership changes. */
export interface PeerTransport extends PeerSender {
  /** Who this member is and which cluster it belongs to, once start() knows. */
  setLocal?(id: string, clusterId: string, peerURLs?: string[]): void;
  addPeer?(id: string, peerURLs: string[]): void;
  removePeer?(id: string): void;
  setPeers?(members: { id: string; peerURLs: string[] }[]): void;
  isActive?(id: string): boolean;
  activeSince?(id: string): number | undefined;
}

/** A running cluster as its members describe it (GET /members on a peer URL), for a member joining it. */
export interface RemoteCluster {
  clusterId: string;
  members: Member[];
}

export interface ServerOptions {
  name: string;
  initialCluster: { name: string; peerURLs: string[] }[];
  initialClusterToken: string;
  initialClusterState: 'new' | 'existing';
  advertiseClientURLs: string[];
  heartbeatMs: number;
  electionMs: number;
  snapshotCount: number;
  /** Entries kept in the log before a snapshot, for followers slightly behind (default 5000). */
  snapshotCatchupEntries?: number;
  preVote: boolean;
  stateMachine: V2StateMachine;
  wal: WALStore;
  snapshots: SnapshotStore;
  transport: PeerTransport;
  /** For --initial-cluster-state existing: asks the running members who is in the cluster. */
  fetchRemoteCluster?: (peerURLs: string[]) => Promise<RemoteCluster>;
  /** The URLs this member advertises to its peers (how it is found in the remote cluster when joining). */
  advertisePeerURLs?: string[];
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;
}

/** Where a write ended up in the log, and what applying it answered. */
export interface WriteResult {
  result: unknown;
  error?: Error;
  index: number;
  term: number;
}

/** etcd's answer when a request did not commit in time. */
export class RequestTimeoutError extends Error {
  constructor(message = 'etcdserver: request timed out') {
    super(message);
    this.name = 'RequestTimeoutError';
  }
}

export class NoLeaderError extends Error {
  constructor() {
    super('etcdserver: no leader');
    this.name = 'NoLeaderError';
  }
}

export class StoppedError extends Error {
  constructor() {
    super('etcdserver: server stopped');
    this.name = 'StoppedError';
  }
}

interface Waiter {
  resolve: (r: WriteResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface ReadWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  index?: number;
}

/** Keep this many entries before a snapshot in the log, for followers that are slightly behind. */
export const SNAPSHOT_CATCHUP_ENTRIES = 5000;
/** How often the leader proposes its clock (SYNC) for TTL expiry. */
export const SYNC_INTERVAL_MS = 500;

interface SnapshotData {
  cluster: ReturnType<Cluster['toJSON']>;
}

function encodeSnapshotData(cluster: Cluster, store: Buffer): Buffer {
  const head = Buffer.from(JSON.stringify({ cluster: cluster.toJSON() } satisfies SnapshotData));
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(head.length, 0);
  return Buffer.concat([len, head, store]);
}

function decodeSnapshotData(data: Uint8Array): { cluster: Cluster; store: Buffer } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const n = buf.readUInt32BE(0);
  const head = JSON.parse(buf.toString('utf8', 4, 4 + n)) as SnapshotData;
  return { cluster: Cluster.fromJSON(head.cluster), store: buf.subarray(4 + n) };
}

/** The context of a configuration change entry: the member it concerns and the request that proposed it. */
interface ConfChangeContext {
  requestId?: number;
  member: Member;
  promote?: boolean;
}

/**
 * One etcd member: the Raft host loop, the replicated state (v2 store and membership) and the waiting clients.
 * Events: 'leader' (id) when the leader changes; 'removed' when this member was removed from the cluster;
 * 'fatal' (error) when the member must stop.
 */
export class EtcdServer extends EventEmitter {
  readonly o: ServerOptions;
  id = '';
  cluster!: Cluster;
  raftNode!: RaftNode;
  private storage!: MemoryStorage;
  private wal!: LogPersistence & ClosableWAL;
  private ids!: RequestIdGenerator;
  private readonly waiters = new Map<number, Waiter>();
  private readonly readWaiters = new Map<string, ReadWaiter>();
  private readSeq = 0;
  appliedIndex = 0;
  private appliedTerm = 0;
  private snapshotIndex = 0;
  /** The snapshot being saved, marked and purged (each waits for the one before). */
  private snapshotting: Promise<void> = Promise.resolve();
  private confState = { voters: [] as string[], learners: [] as string[] };
  lead = NONE;
  /** What /v2/stats/self reports. */
  readonly stats = new ServerStats(() => this.id);
  /** When the current leader became known (performance.now() ms). */
  private leadElectedAt: number | undefined;
  raftState: StateType = StateType.Follower;
  leaderChanges = 0;
  /** This member's name and client URLs are in the cluster (etcd's ReadyNotify): clients may be served. */
  published = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly startedAt: number;

  constructor(o: ServerOptions) {
    super();
    // Every client waiting for a leader listens for 'leader': there can be many.
    this.setMaxListeners(0);
    this.o = o;
    this.startedAt = o.now();
  }

  /** The time a client waits for its write to commit, as etcd computes it (5s + 2 election timeouts). */
  requestTimeoutMs(): number {
    return 5000 + 2 * this.o.electionMs;
  }

  /** Proposals that timed out or were dropped (etcd_server_proposals_failed_total). */
  proposalsFailed = 0;

  private failProposal(reject: (e: Error) => void, err: Error): void {
    this.proposalsFailed++;
    reject(err);
  }

  /** Proposals waiting to be committed and applied. */
  pendingProposals(): number {
    return this.waiters.size;
  }

  term(): number {
    return this.raftNode.node.raft.term;
  }

  isLeader(): boolean {
    return this.raftState === StateType.Leader;
  }

  async start(): Promise<void> {
    const o = this.o;
    const bootstrap = Cluster.fromInitialCluster(o.initialCluster, o.initialClusterToken);
    const self = bootstrap.memberByName(o.name);
    if (!self) throw new Error(`couldn't find local name "${o.name}" in the initial cluster configuration`);
    this.storage = new MemoryStorage();
    let bootstrapPeers: Member[] | undefined;
    let applied = 0;
    if (o.wal.exists()) {
      // Only a snapshot the WAL has a marker for: one written just before a crash, without its marker, is not.
      const snap = await o.snapshots.loadNewestAvailable(await o.wal.snapshotMarkers());
      const from = snap ? { index: snap.metadata.index, term: snap.metadata.term } : { index: 0, term: 0 };
      const opened = await o.wal.open(from);
      const meta = JSON.parse(opened.metadata.toString()) as { memberId: string; clusterId: string };
      this.id = meta.memberId;
      this.wal = opened.wal;
      if (snap) {
        this.storage.applySnapshot(snap);
        const { cluster, store } = decodeSnapshotData(snap.data);
        this.cluster = cluster;
        o.stateMachine.recover(store);
        applied = snap.metadata.index;
        this.snapshotIndex = applied;
        this.confState = snap.metadata.confState;
      } else {
        this.cluster = new Cluster(meta.clusterId);
      }
      this.storage.setHardState(opened.hardState);
      this.storage.append(opened.entries);
      if (!snap && opened.entries.length === 0 && o.initialClusterState === 'new') {
        // The bootstrap never reached the disk (a crash right after creating the WAL): bootstrap again.
        bootstrapPeers = bootstrap.list();
        this.cluster = new Cluster(bootstrap.id);
      }
      o.log('info', 'restarted member from its data', { member: this.id, cluster: this.cluster.id, snapshot: applied, entries: opened.entries.length });
    } else if (o.initialClusterState === 'existing') {
      const joined = await this.joinExisting(bootstrap);
      this.id = joined.id;
      this.cluster = joined.cluster;
      this.wal = await o.wal.create(Buffer.from(JSON.stringify({ memberId: this.id, clusterId: this.cluster.id })));
      o.log('info', 'joining an existing cluster', { member: this.id, cluster: this.cluster.id, members: this.cluster.list().length });
    } else {
      this.id = self.id;
      this.cluster = new Cluster(bootstrap.id);
      this.wal = await o.wal.create(Buffer.from(JSON.stringify({ memberId: this.id, clusterId: bootstrap.id })));
      bootstrapPeers = bootstrap.list();
      o.log('info', 'starting a new member', { member: this.id, cluster: bootstrap.id, state: o.initialClusterState });
    }
    o.transport.setLocal?.(this.id, this.cluster.id, this.cluster.get(this.id)?.peerURLs ?? o.advertisePeerURLs ?? []);
    o.transport.setPeers?.(bootstrapPeers ?? this.cluster.list());
    this.appliedIndex = applied;
    this.ids = new RequestIdGenerator(this.id, o.now());
    const electionTick = Math.max(2, Math.round(o.electionMs / o.heartbeatMs));
    const node = new RawNode({
      id: this.id,
      storage: this.storage,
      electionTick,
      heartbeatTick: 1,
      applied,
      preVote: o.preVote,
      checkQuorum: true,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 512,
    });
    if (bootstrapPeers) {
      // The bootstrap entries are the first thing the host loop makes durable.
      node.bootstrap(bootstrapPeers.map((m) => ({ id: m.id, context: Buffer.from(JSON.stringify({ member: m } satisfies ConfChangeContext)) })));
    }
    this.raftNode = new RaftNode({
      node,
      storage: this.storage,
      wal: this.wal,
      snapshotter: o.snapshots,
      transport: {
        send: (msgs) => {
          for (const m of msgs) if (m.type === MessageType.App) this.stats.sendAppendReq(messageSize(m));
          o.transport.send(msgs);
        },
      },
      tickMs: o.heartbeatMs,
      applier: {
        applySnapshot: (s) => this.applySnapshot(s),
        applyEntries: (ents) => this.applyEntries(ents),
        readStates: (rs) => this.onReadStates(rs),
        softState: (ss) => this.onSoftState(ss),
      },
      onFatal: (err) => this.fatal(err),
    });
    this.raftNode.start();
    // A member alone in its cluster need not wait an election timeout.
    const voters = bootstrapPeers ? bootstrapPeers.length : this.confState.voters.length;
    if (voters === 1 && (bootstrapPeers?.[0]?.id ?? this.confState.voters[0]) === this.id) {
      node.campaign();
      this.raftNode.schedule();
    }
    await this.publishWhenLeaderKnown();
  }

  /**
   * --initial-cluster-state existing: the running members say which cluster this is and who is in it; this member
   * must have been added already (members API) with the peer URLs it advertises.
   */
  private async joinExisting(bootstrap: Cluster): Promise<{ id: string; cluster: Cluster }> {
    const o = this.o;
    if (!o.fetchRemoteCluster) throw new Error('joining an existing cluster needs the peer transport');
    const own = [...(o.advertisePeerURLs ?? bootstrap.memberByName(o.name)?.peerURLs ?? [])].sort();
    const others = bootstrap.list().filter((m) => m.name !== o.name).flatMap((m) => m.peerURLs);
    if (others.length === 0) throw new Error('--initial-cluster-state existing needs the other members in --initial-cluster');
    const remote = await o.fetchRemoteCluster(others);
    const me = remote.members.find((m) => [...m.peerURLs].sort().join(',') === own.join(','));
    if (!me) {
      throw new Error(
        `error validating peerURLs: member with peer URLs ${own.join(',')} is not in the running cluster ${remote.clusterId} (add it first with the members API: etcdctl member add ${o.name} ${own.join(',')})`,
      );
    }
    const names = new Set(bootstrap.list().map((m) => m.name));
    for (const m of remote.members) {
      if (m.name !== '' && !names.has(m.name)) throw new Error(`error validating peerURLs: member ${m.name} of the running cluster is missing from --initial-cluster`);
    }
    const cluster = new Cluster(remote.clusterId);
    for (const m of remote.members) cluster.add({ ...m, name: m.id === me.id ? '' : m.name });
    return { id: me.id, cluster };
  }

  // ---- the peer side: what the transport hands in ----

  /** A Raft message from a peer. */
  stepPeer(m: import('../raft').Message): void {
    if (this.stopped || !this.raftNode) return;
    if (m.type === MessageType.App) this.stats.recvAppendReq(m.from, messageSize(m));
    if (m.type === MessageType.Snap && m.snapshot) {
      // A snapshot that would not load must never reach the log: applying it would stop this member for good.
      try {
        const { store } = decodeSnapshotData(m.snapshot.data);
        this.o.stateMachine.validateSnapshot?.(store);
      } catch (err) {
        this.o.log('warn', 'dropped a snapshot from a peer that does not load', { from: m.from, index: m.snapshot.metadata.index, error: (err as Error).message });
        return;
      }
    }
    try {
      this.raftNode.node.step(m);
    } catch (err) {
      this.o.log('debug', 'dropped a peer message', { from: m.from, type: m.type, error: (err as Error).message });
      return;
    }
    if (m.type === MessageType.AppResp || m.type === MessageType.App || m.type === MessageType.Heartbeat) this.raftNode.applyCommittedNow();
    if (m.type === MessageType.AppResp || m.type === MessageType.Prop) this.raftNode.sendLeaderMessagesSoon();
    this.raftNode.schedule();
  }

  reportUnreachable(id: string): void {
    if (this.stopped || !this.raftNode) return;
    this.raftNode.node.reportUnreachable(id);
  }

  reportSnapshot(id: string, ok: boolean): void {
    if (this.stopped || !this.raftNode) return;
    this.raftNode.node.reportSnapshot(id, ok);
    this.raftNode.schedule();
  }

  /** A peer says this member was removed from the cluster. */
  removedByPeer(peer: string): void {
    if (this.stopped) return;
    this.o.log('warn', 'a peer says this member was removed from the cluster', { peer });
    this.emit('removed');
  }

  private publishWhenLeaderKnown(): Promise<void> {
    // Publish name and client URLs through the log (etcd's publish), once there is a leader to take it. As etcd,
    // on every start, even when the log already has them: that entry is what reaches every follower as an append,
    // so that each one learns this member's leader again (/v2/stats/self). A member restarted while the log had
    // nothing new for it otherwise got heartbeats only and reported no leader until the next write.
    let committed = false;
    const attempt = (): void => {
      if (this.stopped) return;
      const me = this.cluster.get(this.id);
      if (me && me.name === this.o.name && me.clientURLs.join(',') === this.o.advertiseClientURLs.join(',')) {
        if (!this.published) {
          this.published = true;
          this.emit('published');
        }
        if (committed) return;
      }
      if (this.lead === NONE) {
        setTimeout(attempt, this.o.heartbeatMs).unref();
        return;
      }
      this.propose({ method: Method.ATTRIBUTES, path: this.id, value: JSON.stringify({ name: this.o.name, clientURLs: this.o.advertiseClientURLs }) }).then(
        (r) => {
          if (r.error) this.o.log('warn', 'failed to publish member attributes; retrying', { error: r.error.message });
          else committed = true;
          setTimeout(attempt, r.error ? this.o.heartbeatMs : 0).unref();
        },
        (err: Error) => {
          this.o.log('warn', 'failed to publish member attributes; retrying', { error: err.message });
          setTimeout(attempt, this.o.heartbeatMs).unref();
        },
      );
    };
    attempt();
    return Promise.resolve();
  }

  private fatal(err: Error): void {
    this.o.log('error', 'fatal error: the member stops', { error: err.message });
    this.failAll(err);
    this.emit('fatal', err);
  }

  private failAll(err: Error): void {
    for (const [, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
    for (const [, w] of this.readWaiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.readWaiters.clear();
  }

  // ---- writes ----

  /** Proposes a write and resolves once it is committed and applied on this member. */
  propose(partial: Partial<WriteRequest> & Pick<WriteRequest, 'method'>): Promise<WriteResult> {
    if (this.stopped) return Promise.reject(new StoppedError());
    const req: WriteRequest = {
      id: this.ids.id(),
      path: '',
      value: '',
      dir: false,
      prevValue: '',
      prevIndex: 0,
      expiration: 0,
      refresh: false,
      recursive: false,
      time: 0,
      ...partial,
    };
    const start = performance.now();
    return new Promise<WriteResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(req.id);
        this.failProposal(reject, this.timeoutError(start));
      }, this.requestTimeoutMs());
      this.waiters.set(req.id, { resolve, reject, timer });
      try {
        this.raftNode.node.propose(encodeRequest(req));
      } catch (err) {
        clearTimeout(timer);
        this.waiters.delete(req.id);
        // No leader to take it yet: etcd's client waits for one within the request timeout; so do we, by retrying.
        if (err instanceof ProposalDroppedError) {
          this.retryUntilLeader(req, start, resolve, reject);
          return;
        }
        reject(err as Error);
        return;
      }
      this.raftNode.sendLeaderMessagesSoon();
      this.raftNode.schedule();
    });
  }

  private retryUntilLeader(req: WriteRequest, start: number, resolve: (r: WriteResult) => void, reject: (e: Error) => void): void {
    const deadline = this.o.now() + this.requestTimeoutMs();
    const tryAgain = (): void => {
      if (this.stopped) return reject(new StoppedError());
      if (this.lead !== NONE) {
        const timer = setTimeout(() => {
          this.waiters.delete(req.id);
          this.failProposal(reject, this.timeoutError(start));
        }, Math.max(1, deadline - this.o.now()));
        this.waiters.set(req.id, { resolve, reject, timer });
        try {
          this.raftNode.node.propose(encodeRequest(req));
          this.raftNode.schedule();
          return;
        } catch (err) {
          clearTimeout(timer);
          this.waiters.delete(req.id);
          if (!(err instanceof ProposalDroppedError)) return reject(err as Error);
        }
      }
      if (this.o.now() >= deadline) return this.failProposal(reject, this.timeoutError(start));
      // Wait for a leader, but not past the deadline: then the client gets etcd's timeout error.
      const onLeader = (): void => {
        clearTimeout(timer);
        tryAgain();
      };
      const timer = setTimeout(() => {
        this.off('leader', onLeader);
        tryAgain();
      }, Math.max(1, deadline - this.o.now()));
      this.once('leader', onLeader);
    };
    tryAgain();
  }

  // ---- linearizable reads ----

  /** Resolves when this member has applied everything committed at the time of the call (ReadIndex). */
  linearizableRead(): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    const ctx = `${this.id}:${++this.readSeq}`;
    const start = performance.now();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readWaiters.delete(ctx);
        reject(this.timeoutError(start));
      }, this.requestTimeoutMs());
      this.readWaiters.set(ctx, { resolve, reject, timer });
      const ask = (): void => {
        try {
          this.raftNode.node.readIndex(Buffer.from(ctx));
          this.raftNode.schedule();
        } catch (err) {
          if (!(err instanceof ProposalDroppedError)) {
            clearTimeout(timer);
            this.readWaiters.delete(ctx);
            reject(err as Error);
            return;
          }
          this.once('leader', ask);
        }
      };
      ask();
    });
  }

  private onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const key = Buffer.from(rs.requestCtx).toString();
      const w = this.readWaiters.get(key);
      if (!w) continue;
      if (this.appliedIndex >= rs.index) {
        clearTimeout(w.timer);
        this.readWaiters.delete(key);
        w.resolve();
      } else {
        w.index = rs.index;
      }
    }
  }

  private releaseReads(): void {
    for (const [key, w] of this.readWaiters) {
      if (w.index !== undefined && this.appliedIndex >= w.index) {
        clearTimeout(w.timer);
        this.readWaiters.delete(key);
        w.resolve();
      }
    }
  }

  // ---- membership ----

  async addMember(member: Member): Promise<Member> {
    this.cluster.validateAdd(member);
    await this.proposeConfChange({ type: member.isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: member.id }, { member });
    return member;
  }

  /** Changes a member's peer URLs (through the log, so every member's transport follows). */
  async updateMember(id: string, peerURLs: string[]): Promise<void> {
    this.cluster.validateUpdate(id, peerURLs);
    const r = await this.propose({ method: Method.MEMBER_UPDATE, path: id, value: JSON.stringify([...peerURLs].sort()) });
    if (r.error) throw r.error;
  }

  /** Whether this member hears from a peer now (itself: always). */
  isPeerActive(id: string): boolean {
    return id === this.id || (this.o.transport.isActive?.(id) ?? false);
  }

  /** Whether the stream with a peer has been up since `since` (performance.now() ms) without a break (itself: yes). */
  isPeerConnectedSince(id: string, since: number): boolean {
    if (id === this.id) return true;
    const t = this.o.transport.activeSince?.(id);
    return t !== undefined && t < since;
  }

  /**
   * The error for a client request that started at `start` (performance.now() ms) and timed out, with etcd's cause: the leader changed
   * around then ("possibly due to previous leader failure"), this member lost touch with the leader or, as leader,
   * with a quorum ("possibly due to connection lost"), or plainly "request timed out".
   */
  timeoutError(start: number): RequestTimeoutError {
    const electionMs = this.o.electionMs;
    if (this.leadElectedAt !== undefined && start > this.leadElectedAt - 2 * electionMs && start < this.leadElectedAt) {
      return new RequestTimeoutError('etcdserver: request timed out, possibly due to previous leader failure');
    }
    if (this.lead === this.id) {
      const voters = this.cluster.votingMembers();
      const connected = voters.filter((m) => this.isPeerConnectedSince(m.id, start)).length;
      if (connected < Math.floor(voters.length / 2) + 1) return new RequestTimeoutError('etcdserver: request timed out, possibly due to connection lost');
    } else if (this.lead !== NONE && !this.isPeerConnectedSince(this.lead, start)) {
      return new RequestTimeoutError('etcdserver: request timed out, possibly due to connection lost');
    }
    return new RequestTimeoutError();
  }

  async removeMember(id: string): Promise<void> {
    this.cluster.validateRemove(id);
    const member = this.cluster.get(id)!;
    await this.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id }, { member });
  }

  private proposeConfChange(cc: ConfChange, ctx: ConfChangeContext): Promise<WriteResult> {
    const requestId = this.ids.id();
    const start = performance.now();
    return new Promise<WriteResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(requestId);
        this.failProposal(reject, this.timeoutError(start));
      }, this.requestTimeoutMs());
      this.waiters.set(requestId, { resolve, reject, timer });
      try {
        this.raftNode.node.proposeConfChange({ ...cc, context: Buffer.from(JSON.stringify({ ...ctx, requestId })) });
        this.raftNode.schedule();
      } catch (err) {
        clearTimeout(timer);
        this.waiters.delete(requestId);
        reject(err as Error);
      }
    });
  }

  // ---- applying the log ----

  private onSoftState(ss: SoftState): void {
    this.raftState = ss.raftState;
    if (ss.lead !== this.lead) {
      this.lead = ss.lead;
      if (ss.lead !== NONE) {
        this.leaderChanges++;
        this.leadElectedAt = performance.now();
      }
      this.emit('leader', ss.lead);
    }
    if (ss.raftState === StateType.Leader) this.stats.becomeLeader();
    if (ss.raftState === StateType.Leader && !this.syncTimer) {
      this.syncTimer = setInterval(() => this.sync(), SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    } else if (ss.raftState !== StateType.Leader && this.syncTimer) {
      clearInterval(this.syncTimer);
      this.syncTimer = undefined;
    }
  }

  /** The leader's clock goes into the log, so every member expires the same keys at the same index. */
  private sync(): void {
    if (!this.isLeader() || !this.o.stateMachine.hasTTLKeys()) return;
    this.propose({ method: Method.SYNC, time: this.o.now() }).catch(() => undefined);
  }

  private applySnapshot(s: Snapshot): void {
    const { cluster, store } = decodeSnapshotData(s.data);
    this.o.stateMachine.recover(store);
    this.cluster = cluster;
    this.o.transport.setPeers?.(cluster.list());
    this.confState = s.metadata.confState;
    this.appliedIndex = s.metadata.index;
    this.appliedTerm = s.metadata.term;
    this.snapshotIndex = s.metadata.index;
    this.releaseReads();
  }

  private applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      if (e.type === EntryType.ConfChange) this.applyConfChange(e);
      else if (e.data.length > 0) this.applyRequest(e);
      this.appliedIndex = e.index;
      this.appliedTerm = e.term;
    }
    this.releaseReads();
    this.maybeSnapshot();
  }

  private applyRequest(e: Entry): void {
    const req = decodeRequest(e.data);
    let result: unknown;
    let error: Error | undefined;
    switch (req.method) {
      case Method.SYNC:
        this.o.stateMachine.deleteExpiredKeys(req.time);
        break;
      case Method.ATTRIBUTES: {
        const attrs = JSON.parse(req.value) as { name: string; clientURLs: string[] };
        if (this.cluster.has(req.path)) this.cluster.updateAttributes(req.path, attrs.name, attrs.clientURLs);
        break;
      }
      case Method.MEMBER_UPDATE: {
        const peerURLs = JSON.parse(req.value) as string[];
        try {
          this.cluster.validateUpdate(req.path, peerURLs);
          this.cluster.updatePeerURLs(req.path, peerURLs);
          this.o.transport.addPeer?.(req.path, peerURLs);
        } catch (err) {
          error = err as Error;
        }
        break;
      }
      default:
        try {
          result = this.o.stateMachine.applyWrite(req);
        } catch (err) {
          error = err as Error;
        }
    }
    const w = this.waiters.get(req.id);
    if (w) {
      this.waiters.delete(req.id);
      clearTimeout(w.timer);
      w.resolve({ result, error, index: e.index, term: e.term });
    }
  }

  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    let ctx: ConfChangeContext | undefined;
    try {
      ctx = cc.context ? (JSON.parse(Buffer.from(cc.context).toString()) as ConfChangeContext) : undefined;
    } catch {
      ctx = undefined;
    }
    let error: Error | undefined;
    try {
      switch (cc.type) {
        case ConfChangeType.AddNode:
          if (this.cluster.get(cc.nodeId)?.isLearner) this.cluster.promote(cc.nodeId);
          else if (ctx && !this.cluster.has(cc.nodeId)) this.cluster.add(ctx.member);
          if (ctx) this.o.transport.addPeer?.(cc.nodeId, this.cluster.get(cc.nodeId)?.peerURLs ?? ctx.member.peerURLs);
          break;
        case ConfChangeType.AddLearnerNode:
          if (ctx && !this.cluster.has(cc.nodeId)) this.cluster.add({ ...ctx.member, isLearner: true });
          if (ctx) this.o.transport.addPeer?.(cc.nodeId, ctx.member.peerURLs);
          break;
        case ConfChangeType.RemoveNode:
          if (this.cluster.has(cc.nodeId)) this.cluster.remove(cc.nodeId);
          if (cc.nodeId !== this.id) this.o.transport.removePeer?.(cc.nodeId);
          break;
      }
    } catch (err) {
      error = err as Error;
    }
    this.confState = this.raftNode.node.applyConfChange(cc);
    if (ctx?.requestId !== undefined) {
      const w = this.waiters.get(ctx.requestId);
      if (w) {
        this.waiters.delete(ctx.requestId);
        clearTimeout(w.timer);
        w.resolve({ result: undefined, error, index: e.index, term: e.term });
      }
    }
    if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.id) {
      this.o.log('warn', 'this member was removed from the cluster');
      this.emit('removed');
    }
  }

  private maybeSnapshot(): void {
    if (this.appliedIndex - this.snapshotIndex <= this.o.snapshotCount) return;
    // Entries applied while they were still being written (a follower's): snapshot once they are in the log.
    if (this.appliedIndex > this.storage.lastIndex()) return;
    const index = this.appliedIndex;
    const data = encodeSnapshotData(this.cluster, this.o.stateMachine.save());
    const snap = this.storage.createSnapshot(index, this.confState, data);
    this.snapshotIndex = index;
    // The snapshot file must be durable before the log before it is released. Snapshots are saved one after the
    // other, in order: a slow disk never has two being written, marked and purged at once.
    this.snapshotting = this.snapshotting
      .then(() => this.o.snapshots.save(snap))
      .then(async () => {
        // The marker says replay may start here; only then may the log before it go.
        await this.wal.saveSnapshot({ index, term: snap.metadata.term });
        const compactTo = index - (this.o.snapshotCatchupEntries ?? SNAPSHOT_CATCHUP_ENTRIES);
        if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
        await this.wal.releaseTo(index);
        await this.o.snapshots.releaseOlderThan?.(index);
        this.o.log('info', 'saved snapshot', { index });
      })
      .catch((err: Error) => this.fatal(err));
  }

  // ---- stopping ----

  /** Stops the member: a leader hands leadership to another voter first; the WAL is synced and closed. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.isLeader() && this.confState.voters.length > 1) await this.transferLeadership();
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    await this.raftNode.stop();
    this.failAll(new StoppedError());
    await this.wal.close();
  }

  private async transferLeadership(): Promise<void> {
    const status = this.raftNode.node.status();
    let best = NONE;
    let bestMatch = -1;
    for (const [id, pr] of status.progress ?? []) {
      if (id !== this.id && !pr.isLearner && pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    if (best === NONE) return;
    this.raftNode.node.transferLeader(best);
    this.raftNode.schedule();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('leader', onLeader);
        resolve();
      };
      const onLeader = (lead: string): void => {
        if (lead !== this.id && lead !== NONE) done();
      };
      const timer = setTimeout(done, this.o.electionMs * 2);
      this.on('leader', onLeader);
    });
  }
}
