import { messageSize } from '../rafthttp/codec';
import { ServerStats } from './server-stats';
import { EventEmitter } from 'node:events';
import {
  ConfChange,
  ConfChangeType,
  Entry,
  EntryType,
  HardState,
  ConfState,
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
import { Cluster, Member, MembershipError } from '../membership/cluster';
import { ServerErrors } from '../api/v3rpc/errors';
import { checkAddMember, checkPromoteMember, checkRemoveVotingMember } from '../membership/reconfig';
import { LogPersistence, PeerSender, RaftNode, SnapshotPersistence } from './raft-node';
import { Method, RequestIdGenerator, WriteRequest, encodeRequest } from './request';
import { ENVELOPE_BYTES, EntryKind, encodeEntry, encodeMembershipOp, sealEntry } from './entry';
import { Applier, ApplyResult } from './apply/applier';
import { ApplyDispatcher } from './apply/dispatcher';
import { CONF_CHANGE_CONTEXT_VERSION, ConfChangeContext, MembershipApplier, parseConfChangeContext } from './apply/membership';
import { V2EntryApplier, V2StateMachine } from './apply/v2';
import { Proposals, WriteResult } from './proposals';
import { PART_MEMBERSHIP, PART_V2STORE, decodeSnapshotData, encodeSnapshotData, encodeSnapshotDataInTurns } from './snapshot-data';
import { collectGarbageWhenIdle } from '../pkg/collect-garbage';

export type { V2StateMachine } from './apply/v2';

/** The cluster version this release sets once every member has published (etcd's /0/version). */
export const CLUSTER_VERSION = '3.4.0';

/** One store's state in snapshots, under its name (snapshot-data.ts): `membership`, `v2store`, `v3`. */
export interface SnapshotPart {
  save(): Buffer;
  /**
   * The state as of this call, as save() would give it, encoded over later turns of the event loop while the store
   * goes on applying entries (in chunks). A store that can takes a snapshot this way without holding the loop.
   */
  saveInTurns?(): Promise<Buffer[]>;
  /** Replaces the store's state with a snapshot's; undefined: the snapshot has none (an older one): start empty. */
  recover(data: Buffer | undefined): void;
  /** Throws if the data would not recover (checked before a peer's snapshot reaches Raft). */
  validate?(data: Buffer): void;
  /**
   * What goes to a member that catches up by snapshot, when what save() keeps is only a marker (the v3 backend
   * lives in its own files, as etcd's bbolt db does, and is sent whole, as it is at the time of sending).
   */
  forPeer?(): Buffer | Promise<Buffer>;
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
  /**
   * The snapshot at (index, term) read back from disk. With it, the Raft log keeps no copy of a saved snapshot's
   * data (the whole store) in memory: a peer that needs it gets it read back.
   */
  load?(index: number, term: number): Promise<Snapshot | undefined>;
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
  /** etcd's --initial-election-tick-advance: once peers are connected at start, fast-forward the election ticks. */
  initialElectionTickAdvance?: boolean;
  stateMachine: V2StateMachine;
  wal: WALStore;
  snapshots: SnapshotStore;
  transport: PeerTransport;
  /** For --initial-cluster-state existing: asks the running members who is in the cluster. */
  fetchRemoteCluster?: (peerURLs: string[]) => Promise<RemoteCluster>;
  /** The URLs this member advertises to its peers (how it is found in the remote cluster when joining). */
  advertisePeerURLs?: string[];
  /** etcd's --strict-reconfig-check: refuse membership changes that could lose the quorum (default true). */
  strictReconfigCheck?: boolean;
  /**
   * Asks the leader, at one of its peer URLs, to promote a learner (a follower cannot tell whether the learner has
   * caught up); rejects with etcd's errors (MembershipError, "learner ... in sync with leader") or a transport error.
   */
  forwardPromote?: (peerURL: string, id: string, timeoutMs: number) => Promise<Member[]>;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;
}

export type { WriteResult } from './proposals';

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

interface ReadWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  index?: number;
}

/** etcd's readyPercent: a learner is in sync when its Raft match is at least this share of the leader's. */
export const LEARNER_READY_PERCENT = 0.9;

/** Keep this many entries before a snapshot in the log, for followers that are slightly behind. */
export const SNAPSHOT_CATCHUP_ENTRIES = 5000;
/** How often the leader proposes its clock (SYNC) for TTL expiry. */
export const SYNC_INTERVAL_MS = 500;


/**
 * One etcd member: the Raft host loop, the replicated state (v2 store and membership) and the waiting clients.
 * Events: 'leader' (id) when the leader changes; 'leadership' (isLeader) when this member becomes or stops being
 * the leader; 'firstCommitInTerm' when, as leader, it applies its term's first entry; 'removed' when this member was
 * removed from the cluster; 'fatal' (error) when the member must stop.
 */
export class EtcdServer extends EventEmitter {
  readonly o: ServerOptions;
  id = '';
  cluster!: Cluster;
  raftNode!: RaftNode;
  private storage!: MemoryStorage;
  private wal!: LogPersistence & ClosableWAL;
  private ids!: RequestIdGenerator;
  private readonly proposals: Proposals;
  private readonly readWaiters = new Map<string, ReadWaiter>();
  private readonly applyWaiters = new Set<{ index: number; resolve: () => void }>();
  private readSeq = 0;
  appliedIndex = 0;
  private appliedTerm = 0;
  private snapshotIndex = 0;
  /** The snapshot being saved, marked and purged (each waits for the one before). */
  private snapshotting: Promise<void> = Promise.resolve();
  /** A snapshot's data is being encoded (its stores' state taken at its index): one at a time. */
  private encodingSnapshot = false;
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
  /** Normal entries are applied through it, by kind (apply/dispatcher.ts). */
  private readonly dispatcher: ApplyDispatcher;
  private readonly membership: MembershipApplier;
  /** Each store's state in snapshots, by name (snapshot-data.ts). */
  private readonly snapshotParts = new Map<string, SnapshotPart>();
  /** The leader has proposed the cluster version and waits for it to apply. */
  private versionProposed = false;

  constructor(o: ServerOptions) {
    super();
    // Every client waiting for a leader listens for 'leader': there can be many.
    this.setMaxListeners(0);
    this.o = o;
    this.startedAt = o.now();
    this.proposals = new Proposals({
      stopped: () => this.stopped,
      hasLeader: () => this.lead !== NONE,
      onLeader: (fn) => {
        this.once('leader', fn);
        return () => this.off('leader', fn);
      },
      timeoutMs: () => this.requestTimeoutMs(),
      timeoutError: (start) => this.timeoutError(start),
      stoppedError: () => new StoppedError(),
      now: o.now,
    });
    this.dispatcher = new ApplyDispatcher(o.log);
    const sm = o.stateMachine;
    this.membership = new MembershipApplier({
      localId: () => this.id,
      cluster: () => this.cluster,
      addPeer: (id, urls) => o.transport.addPeer?.(id, urls),
      removePeer: (id) => o.transport.removePeer?.(id),
      record: sm.recordInternal ? (op, path, value) => sm.recordInternal!(op, path, value) : undefined,
      readRecord: (path) => sm.readInternal?.(path),
      log: o.log,
    });
    this.dispatcher.register(EntryKind.Membership, this.membership);
    this.dispatcher.register(EntryKind.V2, new V2EntryApplier(sm));
    this.registerSnapshotPart(PART_MEMBERSHIP, {
      save: () => Buffer.from(JSON.stringify(this.cluster.toJSON())),
      recover: (data) => {
        if (!data) throw new Error('snapshot: no membership');
        this.cluster = Cluster.fromJSON(JSON.parse(data.toString()) as ReturnType<Cluster['toJSON']>);
        if (this.cluster.version !== undefined) this.membership.enabledCapabilities(this.cluster.version);
      },
      validate: (data) => void Cluster.fromJSON(JSON.parse(data.toString()) as ReturnType<Cluster['toJSON']>),
    });
    this.registerSnapshotPart(PART_V2STORE, {
      save: () => sm.save(),
      saveInTurns: sm.saveInTurns ? () => sm.saveInTurns!() : undefined,
      recover: (data) => {
        if (!data) throw new Error('snapshot: no v2 store');
        sm.recover(data);
      },
      validate: (data) => sm.validateSnapshot?.(data),
    });
  }

  /**
   * Plugs in the applier of a kind of entry (the v3 KV applier, leases, auth). Before start(): entries replayed at
   * start go through it. Entries of a kind with no applier are logged and skipped (apply/dispatcher.ts).
   */
  registerApplier(kind: EntryKind, applier: Applier): void {
    this.dispatcher.register(kind, applier);
  }

  /** A snapshot message with the parts that are markers locally (forPeer) filled in with their data. */
  private async snapshotForPeer(m: import('../raft').Message): Promise<import('../raft').Message> {
    if (m.snapshot && this.storage.dataReleased(m.snapshot)) {
      const { index, term } = m.snapshot.metadata;
      const saved = await this.o.snapshots.load!(index, term);
      if (!saved) throw new Error(`snapshot ${index} (term ${term}) is no longer on disk`);
      m = { ...m, snapshot: { ...m.snapshot, data: saved.data } };
    }
    const fill = [...this.snapshotParts].filter(([, p]) => p.forPeer);
    if (!m.snapshot || fill.length === 0) return m;
    const parts = decodeSnapshotData(m.snapshot.data, new Set(this.snapshotParts.keys()));
    for (const [name, p] of fill) parts.set(name, await p.forPeer!());
    return { ...m, snapshot: { ...m.snapshot, data: encodeSnapshotData(parts) } };
  }

  /** Adds a store to snapshots under `name` (snapshot-data.ts's PART_*). Before start(). */
  registerSnapshotPart(name: string, part: SnapshotPart): void {
    if (this.snapshotParts.has(name)) throw new Error(`snapshot part ${name} is registered already`);
    this.snapshotParts.set(name, part);
  }

  /** The time a client waits for its write to commit, as etcd computes it (5s + 2 election timeouts). */
  requestTimeoutMs(): number {
    return 5000 + 2 * this.o.electionMs;
  }

  /** Proposals that timed out or were dropped (etcd_server_proposals_failed_total). */
  get proposalsFailed(): number {
    return this.proposals.failed;
  }

  /** Proposals waiting to be committed and applied. */
  pendingProposals(): number {
    return this.proposals.pending;
  }

  term(): number {
    return this.raftNode.node.raft.term;
  }

  isLeader(): boolean {
    return this.raftState === StateType.Leader;
  }

  /** The Raft log's commit index (Maintenance.Status's raftIndex). */
  committedIndex(): number {
    return this.raftNode ? this.raftNode.node.raft.raftLog.committed : 0;
  }

  /** Whether this member is a learner (a non-voting member). */
  isLearner(): boolean {
    return this.cluster?.isLearner(this.id) ?? false;
  }

  /**
   * etcd's MoveLeader: this member, the leader, hands leadership to a voting member and resolves once that member
   * leads. Throws etcd's errors: "bad leader transferee" for a member that is not in the cluster or is a learner,
   * "not leader" when this member does not lead, "leader transfer took too long" after the request timeout.
   */
  async moveLeader(transferee: string): Promise<void> {
    const target = this.cluster.get(transferee);
    if (!target || target.isLearner) throw new Error(ServerErrors.badLeaderTransferee);
    if (!this.isLeader()) throw new Error(ServerErrors.notLeader);
    if (transferee === this.id) return;
    const lead = this.id;
    const start = performance.now();
    this.o.log('info', 'leadership transfer starting', { 'local-member-id': this.id, 'current-leader-member-id': lead, 'transferee-member-id': transferee, capnslog: `${this.id} starts leadership transfer from ${lead} to ${transferee}` });
    this.raftNode.node.transferLeader(transferee);
    this.raftNode.schedule();
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.off('leader', onLeader);
        if (err) reject(err);
        else resolve();
      };
      const onLeader = (l: string): void => {
        if (l === transferee) done();
      };
      const timer = setTimeout(() => done(new Error(ServerErrors.timeoutLeaderTransfer)), this.requestTimeoutMs());
      this.on('leader', onLeader);
      if (this.lead === transferee) done();
    });
    const took = `${((performance.now() - start) / 1000).toFixed(6)}s`;
    this.o.log('info', 'leadership transfer finished', { 'local-member-id': this.id, 'old-leader-member-id': lead, 'new-leader-member-id': transferee, took, capnslog: `${this.id} finished leadership transfer from ${lead} to ${transferee} (took ${took})` });
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
        this.recoverSnapshotParts(snap.data);
        if (o.snapshots.load) this.storage.releaseSnapshotData(snap.metadata.index);
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
      node.bootstrap(bootstrapPeers.map((m) => ({ id: m.id, context: Buffer.from(JSON.stringify({ member: m, v: CONF_CHANGE_CONTEXT_VERSION } satisfies ConfChangeContext)) })));
    }
    this.raftNode = new RaftNode({
      node,
      storage: this.storage,
      wal: this.wal,
      snapshotter: o.snapshots,
      transport: {
        send: (msgs) => {
          for (const m of msgs) if (m.type === MessageType.App) this.stats.sendAppendReq(messageSize(m));
          const snaps = msgs.filter((m) => m.type === MessageType.Snap);
          o.transport.send(snaps.length ? msgs.filter((m) => m.type !== MessageType.Snap) : msgs);
          // A snapshot's data is gathered without blocking the loop (heartbeats go on meanwhile), then sent.
          for (const m of snaps) {
            this.snapshotForPeer(m).then(
              (filled) => o.transport.send([filled]),
              (err: Error) => {
                this.o.log('warn', 'failed to gather a snapshot for a peer', { to: m.to, error: err.message });
                this.reportSnapshot(m.to, false);
              },
            );
          }
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
    // A member alone in its cluster need not wait an election timeout (etcd's adjustTicks for a single node). Who
    // votes is known from the bootstrap peers, a snapshot's configuration, or, on a restart with no snapshot, only
    // once the log's configuration entries are applied: the membership is asked again on each try.
    const voters = bootstrapPeers ? bootstrapPeers.length : this.confState.voters.length;
    const alone = (): boolean => {
      if (bootstrapPeers) return bootstrapPeers.length === 1 && bootstrapPeers[0].id === this.id;
      if (this.confState.voters.length) return this.confState.voters.length === 1 && this.confState.voters[0] === this.id;
      const vs = (this.cluster?.list() ?? []).filter((m) => !m.isLearner);
      return vs.length === 1 && vs[0].id === this.id;
    };
    if (voters <= 1) {
      // Raft ignores the campaign until the configuration in the log is applied (a new member's bootstrap entries;
      // on a restart, every committed entry up to the last configuration change, which can take a while with a long
      // log): tried again every 20 ms until there is a leader, for at most ten election timeouts (then the usual
      // election timeout elects it anyway).
      const until = Date.now() + 10 * o.electionMs;
      const campaign = (): void => {
        if (this.stopped || this.lead !== NONE || Date.now() > until) return;
        if (alone()) {
          node.campaign();
          this.raftNode.schedule();
        }
        setTimeout(campaign, 20).unref();
      };
      campaign();
    }
    if (voters !== 1 && o.initialElectionTickAdvance) this.advanceTicksOncePeersConnect(node, electionTick);
    await this.publishWhenLeaderKnown();
  }

  /**
   * As etcd's adjustTicks: wait (up to rafthttp's 5 s read timeout, checking every 50 ms) until more than one peer is
   * connected, then fast-forward electionTick-2 ticks so the first election does not wait a whole timeout.
   */
  private advanceTicksOncePeersConnect(node: RawNode, electionTick: number): void {
    const peers = () => (this.cluster?.list() ?? []).filter((m) => m.id !== this.id && this.o.transport.isActive?.(m.id)).length;
    let checks = 0;
    const check = (): void => {
      if (this.stopped || !this.raftNode) return;
      if (peers() > 1) {
        const ticks = electionTick - 2;
        this.o.log('info', 'initialized peer connections; fast-forwarding election ticks', { 'local-member-id': this.id, 'forward-ticks': ticks, 'election-ticks': electionTick });
        for (let i = 0; i < ticks; i++) node.tick();
        this.raftNode.schedule();
        return;
      }
      if (++checks < 100) setTimeout(check, 50).unref();
    };
    setTimeout(check, 50).unref();
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
        for (const [name, data] of this.decodeSnapshot(m.snapshot.data)) this.snapshotParts.get(name)!.validate?.(data);
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
    // Nothing waiting here can commit any more (its own removal among them): answered as etcd's stopping server.
    this.failAll(new StoppedError());
    this.emit('removed');
  }

  /**
   * etcd's publish: this member's name and client URLs go through the log at every start (as etcd's do, so the v2
   * store's index moves as etcd's), once a leader is known, retried until applied. A member whose attributes are in
   * the cluster already (a restart) serves clients at once; a new one once its publish has applied.
   */
  private publishWhenLeaderKnown(): void {
    const attrs = { name: this.o.name, clientURLs: this.o.advertiseClientURLs };
    const ready = (): void => {
      if (this.published) return;
      this.published = true;
      this.emit('published');
    };
    const me = this.cluster.get(this.id);
    if (me && me.name === attrs.name && me.clientURLs.join(',') === attrs.clientURLs.join(',')) ready();
    const retry = (err: Error): void => {
      this.o.log('warn', 'failed to publish local member to cluster through raft; retrying', { error: err.message });
      setTimeout(attempt, this.o.heartbeatMs).unref();
    };
    const attempt = (): void => {
      if (this.stopped) return;
      if (this.lead === NONE) {
        setTimeout(attempt, this.o.heartbeatMs).unref();
        return;
      }
      this.proposeEntry(EntryKind.Membership, encodeMembershipOp({ op: 'attributes', id: this.id, ...attrs })).then((r) => {
        if (r.error) return retry(r.error);
        // etcd's words: tools (etcd's own e2e suite) wait for this line.
        const shown = `{Name:${attrs.name} ClientURLs:[${attrs.clientURLs.join(' ')}]}`;
        this.o.log('info', 'published local member to cluster through raft', { pkg: 'etcdserver', capnslog: `published ${shown} to cluster ${this.cluster.id}`, 'local-member-id': this.id, 'local-member-attributes': shown, 'request-path': `/0/members/${this.id}/attributes`, 'cluster-id': this.cluster.id });
        ready();
      }, retry);
    };
    attempt();
  }

  /**
   * The leader decides the cluster version once every voting member has published (etcd's monitorVersions), through
   * the log, so every member sets it at the same index.
   */
  private maybeDecideClusterVersion(): void {
    if (this.versionProposed || !this.isLeader() || this.cluster.version !== undefined) return;
    if (!this.cluster.votingMembers().every((m) => m.name !== '')) return;
    this.versionProposed = true;
    this.o.log('info', `setting up the initial cluster version to ${CLUSTER_VERSION.split('.').slice(0, 2).join('.')}`);
    const done = (): void => {
      this.versionProposed = false;
    };
    this.proposeEntry(EntryKind.Membership, encodeMembershipOp({ op: 'clusterVersion', version: CLUSTER_VERSION })).then(done, done);
  }

  private fatal(err: Error): void {
    this.o.log('error', 'fatal error: the member stops', { error: err.message });
    this.failAll(err);
    this.emit('fatal', err);
  }

  private failAll(err: Error): void {
    this.proposals.failAll(err);
    for (const [, w] of this.readWaiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.readWaiters.clear();
  }

  // ---- writes ----

  /** A new request ID, unique to this member and incarnation (for a v3 request's header, say). */
  newRequestId(): number {
    return this.ids.id();
  }

  /** Proposes a v2 write and resolves once it is committed and applied on this member. */
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
    // The request is encoded after room for its envelope: the hot path makes no copy.
    return this.proposeData(req.id, sealEntry(encodeRequest(req, ENVELOPE_BYTES), EntryKind.V2, req.id));
  }

  /**
   * Proposes an entry of a kind (entry.ts) and resolves once it is committed and applied on this member, with what
   * the kind's applier answered ({result, error}) and where it landed in the log ({index, term}). The payload is
   * the applier's to read; `requestId` (default: a new one) is how the answer finds this call. Rejects with
   * RequestTimeoutError when it does not commit within requestTimeoutMs() (waiting for a leader meanwhile), or
   * StoppedError. An applier that throws answers ApplyFailedError in `error`; a kind with no applier registered,
   * UnknownEntryError (apply/dispatcher.ts).
   */
  proposeEntry(kind: EntryKind, payload: Uint8Array, requestId: number = this.ids.id(), o: { leaderOnly?: boolean; version?: number } = {}): Promise<WriteResult> {
    return this.proposeData(requestId, encodeEntry(kind, requestId, payload, o.version), o.leaderOnly ?? false);
  }

  /**
   * With `leaderOnly`, the proposal goes into this member's log or nowhere: never forwarded to another leader, never
   * held until one is known (ProposalDroppedError when this member's Raft does not lead at this instant). For what
   * only the leader may decide (the revocation of expired leases): a deposed leader's decision must not reach the new
   * one.
   */
  private proposeData(requestId: number, data: Buffer, leaderOnly = false): Promise<WriteResult> {
    let first = true;
    return this.proposals.submit(
      requestId,
      () => {
        if (leaderOnly && this.raftNode.node.raft.state !== StateType.Leader) throw new ProposalDroppedError('not the leader');
        this.raftNode.node.propose(data);
        if (first) this.raftNode.sendLeaderMessagesSoon();
        first = false;
        this.raftNode.schedule();
      },
      !leaderOnly,
      data,
    );
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

  /**
   * Resolves once this member has applied every entry committed at the time of the call (etcd's ApplyWait on the
   * committed index), or rejects with etcd's ErrTimeoutWaitAppliedIndex after timeoutMs.
   */
  waitAppliedCommitted(timeoutMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    const index = this.raftNode.node.raft.raftLog.committed;
    if (this.appliedIndex >= index) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const w = { index, resolve: done };
      const timer = setTimeout(() => {
        this.applyWaiters.delete(w);
        reject(new RequestTimeoutError('etcdserver: request timed out, waiting for the applied index took too long'));
      }, timeoutMs);
      this.applyWaiters.add(w);
    });
  }

  private releaseApplyWaiters(): void {
    if (!this.applyWaiters.size) return;
    for (const w of this.applyWaiters) {
      if (this.appliedIndex >= w.index) {
        this.applyWaiters.delete(w);
        w.resolve();
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

  /**
   * Adds a member (a learner when member.isLearner) through the log and resolves with the members once it is
   * applied here. With --strict-reconfig-check etcd's checks come first (membership/reconfig.ts: not enough started
   * members, or this member not connected to every voter for HEALTH_INTERVAL_MS), then etcd's MembershipErrors.
   */
  async addMember(member: Member): Promise<Member[]> {
    const connected = (id: string, since: number): boolean => this.isPeerConnectedSince(id, since);
    if (this.o.strictReconfigCheck !== false) checkAddMember(this.cluster, member.isLearner, connected, performance.now());
    this.cluster.validateAdd(member);
    const r = await this.proposeConfChange({ type: member.isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: member.id }, { member });
    if (r.error) throw r.error;
    return this.cluster.list();
  }

  /** Changes a member's peer URLs (through the log, so every member's transport follows); resolves with the members. */
  async updateMember(id: string, peerURLs: string[]): Promise<Member[]> {
    this.cluster.validateUpdate(id, peerURLs);
    const r = await this.proposeEntry(EntryKind.Membership, encodeMembershipOp({ op: 'peerURLs', id, peerURLs: [...peerURLs].sort() }));
    if (r.error) throw r.error;
    return this.cluster.list();
  }

  /**
   * etcd's PromoteMember: makes a learner a voter. Only the leader knows whether the learner has caught up (its
   * Raft match within 90% of the leader's, else "can only promote a learner member which is in sync with leader"):
   * a follower asks the leader (POST /members/promote/<id> on its peer URL) until the request timeout.
   */
  async promoteMember(id: string): Promise<Member[]> {
    if (this.isLeader()) return this.promoteAsLeader(id);
    const deadline = performance.now() + this.requestTimeoutMs();
    let last: Error | undefined;
    while (performance.now() < deadline) {
      if (this.stopped) throw new StoppedError();
      const leader = this.lead === NONE ? undefined : this.cluster.get(this.lead);
      if (this.lead === this.id) return this.promoteAsLeader(id);
      if (!leader || !this.o.forwardPromote) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(t);
            this.off('leader', done);
            resolve();
          };
          const t = setTimeout(done, this.o.heartbeatMs);
          this.on('leader', done);
        });
        continue;
      }
      for (const url of leader.peerURLs) {
        try {
          return await this.o.forwardPromote(url, id, Math.max(1, deadline - performance.now()));
        } catch (err) {
          last = err as Error;
          // The leader's answer ends it; a leader that cannot be reached is asked again.
          if (err instanceof MembershipError || last.message === ServerErrors.learnerNotReady) throw err;
        }
      }
      await new Promise((r) => setTimeout(r, this.o.heartbeatMs));
    }
    throw last && last.message.startsWith('etcdserver: ') ? last : new RequestTimeoutError();
  }

  private async promoteAsLeader(id: string): Promise<Member[]> {
    // etcd's isLearnerReady: a member Raft does not track is left to the checks below.
    const progress = this.raftNode.node.status().progress;
    const pr = progress?.get(id);
    const mine = progress?.get(this.id);
    if (pr && mine && pr.match < mine.match * LEARNER_READY_PERCENT) throw new Error(ServerErrors.learnerNotReady);
    if (this.o.strictReconfigCheck !== false) checkPromoteMember(this.cluster);
    this.cluster.validatePromote(id);
    const member = this.cluster.get(id)!;
    const r = await this.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: id }, { member: { ...member, isLearner: false }, promote: true });
    if (r.error) throw r.error;
    return this.cluster.list();
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

  /**
   * Removes a member through the log and resolves with the members once applied here. With --strict-reconfig-check
   * a voter's removal is refused unless enough started members stay and this member is connected to a quorum of
   * them (a member that is down may always go).
   */
  async removeMember(id: string): Promise<Member[]> {
    const known = this.cluster.get(id);
    const connected = (peer: string, since: number): boolean => this.isPeerConnectedSince(peer, since);
    if (known && !known.isLearner && this.o.strictReconfigCheck !== false) checkRemoveVotingMember(this.cluster, id, connected, performance.now(), this.id, (peer) => this.isPeerActive(peer));
    this.cluster.validateRemove(id);
    const member = this.cluster.get(id)!;
    const r = await this.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id }, { member });
    if (r.error) throw r.error;
    return this.cluster.list();
  }

  private proposeConfChange(cc: ConfChange, ctx: ConfChangeContext): Promise<WriteResult> {
    const requestId = this.ids.id();
    const context = Buffer.from(JSON.stringify({ ...ctx, requestId, v: CONF_CHANGE_CONTEXT_VERSION } satisfies ConfChangeContext));
    return this.proposals.submit(
      requestId,
      () => {
        this.raftNode.node.proposeConfChange({ ...cc, context });
        this.raftNode.schedule();
      },
      false,
      context,
    );
  }

  // ---- applying the log ----

  private onSoftState(ss: SoftState): void {
    // Elections as etcd's raft logs them (a person follows them in the log): state changes and leader changes.
    const term = this.raftNode?.node.raft.term ?? 0;
    if (ss.raftState !== this.raftState) {
      const state = ss.raftState === StateType.Leader ? 'leader' : ss.raftState === StateType.Candidate ? 'candidate' : ss.raftState === StateType.PreCandidate ? 'pre-candidate' : 'follower';
      this.o.log('info', `${this.id} became ${state} at term ${term}`, { pkg: 'raft' });
    }
    if (ss.lead !== this.lead) {
      if (ss.lead !== NONE) this.o.log('info', `raft.node: ${this.id} elected leader ${ss.lead} at term ${term}`, { pkg: 'raft' });
      else this.o.log('info', `raft.node: ${this.id} lost leader ${this.lead} at term ${term}`, { pkg: 'raft' });
    }
    const wasLeader = this.raftState === StateType.Leader;
    this.raftState = ss.raftState;
    if (wasLeader !== (ss.raftState === StateType.Leader)) this.emit('leadership', !wasLeader);
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

  private decodeSnapshot(data: Uint8Array): Map<string, Buffer> {
    return decodeSnapshotData(data, new Set(this.snapshotParts.keys()));
  }

  /** Every store takes its state from a snapshot (a store the snapshot has no part for starts empty). */
  private recoverSnapshotParts(data: Uint8Array): void {
    const parts = this.decodeSnapshot(data);
    for (const [name, part] of this.snapshotParts) part.recover(parts.get(name));
  }

  private applySnapshot(s: Snapshot): void {
    this.recoverSnapshotParts(s.data);
    this.o.transport.setPeers?.(this.cluster.list());
    this.confState = s.metadata.confState;
    this.appliedIndex = s.metadata.index;
    this.appliedTerm = s.metadata.term;
    this.snapshotIndex = s.metadata.index;
    this.releaseReads();
    this.releaseApplyWaiters();
  }

  private applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      if (e.type === EntryType.ConfChange) this.applyConfChange(e);
      else if (e.data.length > 0) {
        const { requestId, answer } = this.dispatcher.apply(e.data, e.index, e.term);
        this.answer(requestId, answer, e, e.data);
      } else if (this.isLeader()) {
        // The leader's first entry of its term: everything before it is applied here (etcd promotes its lessor).
        this.emit('firstCommitInTerm');
      }
      this.appliedIndex = e.index;
      this.appliedTerm = e.term;
    }
    this.releaseReads();
    this.releaseApplyWaiters();
    this.maybeDecideClusterVersion();
    this.maybeSnapshot();
  }

  /** Hands an applied entry's answer to the client waiting on this member, if any. */
  private answer(requestId: number | undefined, a: ApplyResult, e: Entry, proposed: Uint8Array | undefined): void {
    this.proposals.answer(requestId, { result: a.result, error: a.error, index: e.index, term: e.term }, proposed);
  }

  private applyConfChange(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      this.o.log('error', 'skipped a configuration change that does not decode', { index: e.index, error: (err as Error).message });
      return;
    }
    const ctx = parseConfChangeContext(cc);
    let answer: ApplyResult;
    try {
      answer = this.membership.applyConfChange(cc, ctx);
    } catch (err) {
      this.o.log('error', 'applying a configuration change failed; it is answered with an error and the member goes on', { index: e.index, error: (err as Error).message });
      answer = { error: err as Error };
    }
    // Raft's configuration follows the log whatever the cluster made of it, as on every member.
    this.confState = this.raftNode.node.applyConfChange(cc);
    this.answer(ctx?.requestId, answer, e, cc.context);
    if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.id) {
      this.o.log('warn', 'this member was removed from the cluster');
      this.emit('removed');
    }
  }

  private maybeSnapshot(): void {
    if (this.appliedIndex - this.snapshotIndex <= this.o.snapshotCount || this.encodingSnapshot) return;
    // Entries applied while they were still being written (a follower's): snapshot once they are in the log.
    if (this.appliedIndex > this.storage.lastIndex()) return;
    const index = this.appliedIndex;
    const confState = this.confState;
    // Every store's state at this index is taken now; a store that can encodes it over later turns (the v2 store: a
    // large one holds the loop 100 ms and more), so requests are served meanwhile.
    this.o.log('info', 'start to snapshot', { applied: index, lastsnap: this.snapshotIndex });
    const parts = [...this.snapshotParts].map(([name, part]) => [name, part.saveInTurns ? part.saveInTurns() : part.save()] as const);
    this.snapshotIndex = index;
    this.encodingSnapshot = true;
    Promise.all(parts.map(async ([name, data]) => [name, await data] as const))
      .then((done) => encodeSnapshotDataInTurns(new Map(done)))
      .then(
        (data) => {
          this.encodingSnapshot = false;
          this.saveSnapshot(index, confState, data);
        },
        (err: Error) => this.fatal(err),
      );
  }

  /** Records the snapshot of the stores' state at `index` in the Raft log, then saves it and releases the log before. */
  private saveSnapshot(index: number, confState: ConfState, data: Buffer): void {
    // A snapshot from the leader, applied while this one was encoded, is newer: this one is not needed.
    if (this.stopped || index <= this.storage.snapshot().metadata.index) return;
    const snap = this.storage.createSnapshot(index, confState, data);
    // The snapshot file must be durable before the log before it is released. Snapshots are saved one after the
    // other, in order: a slow disk never has two being written, marked and purged at once.
    this.snapshotting = this.snapshotting
      .then(() => this.o.snapshots.save(snap))
      .then(async () => {
        // The marker says replay may start here; only then may the log before it go.
        await this.wal.saveSnapshot({ index, term: snap.metadata.term });
        if (this.o.snapshots.load) this.storage.releaseSnapshotData(index);
        const compactTo = index - (this.o.snapshotCatchupEntries ?? SNAPSHOT_CATCHUP_ENTRIES);
        if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
        await this.wal.releaseTo(index);
        await this.o.snapshots.releaseOlderThan?.(index);
        this.o.log('info', 'saved snapshot', { index });
        // The store's encoding and the compacted entries (up to --snapshot-count of them) are garbage now: collected
        // once the server is idle, not in the middle of the requests that keep it busy.
        collectGarbageWhenIdle();
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
