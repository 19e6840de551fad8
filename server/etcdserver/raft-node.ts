import {
  Entry,
  EntryType,
  HardState,
  MemoryStorage,
  Message,
  MessageType,
  RawNode,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  StateType,
} from '../raft';

/** Where the Raft log becomes durable: the WAL. save() resolves only once the records are fsynced. */
export interface LogPersistence {
  /** sync false: nothing here needs an fsync before it is acted on (only the commit index moved). */
  save(hardState: HardState | undefined, entries: Entry[], sync: boolean): Promise<void>;
  saveSnapshot(marker: { index: number; term: number }): Promise<void>;
}

/** Where snapshots of the state machine are kept. */
export interface SnapshotPersistence {
  save(snapshot: Snapshot): Promise<void>;
}

export interface PeerSender {
  send(messages: Message[]): void;
}

/** The state machine side: applies committed entries, in order, synchronously. */
export interface Applier {
  /** A snapshot from the leader replaces the state machine (before the entries that follow it). */
  applySnapshot(snapshot: Snapshot): void;
  applyEntries(entries: Entry[]): void;
  readStates(states: ReadState[]): void;
  softState(state: SoftState): void;
}

export interface RaftNodeOptions {
  node: RawNode;
  storage: MemoryStorage;
  wal: LogPersistence;
  snapshotter: SnapshotPersistence;
  transport: PeerSender;
  applier: Applier;
  /** The heartbeat interval: one Raft tick. */
  tickMs: number;
  /** A persistence failure: the member must stop (acknowledging anything after it could lose writes). */
  onFatal: (err: Error) => void;
}

/**
 * Merges a leader's appends to the same follower that continue one another into one append, and a follower's
 * proposals forwarded to the leader into one proposal, order kept per peer. The core makes one append per proposal
 * (and one per commit advance) for each follower, and forwards each proposal on its own: a turn of the event loop
 * with 64 proposals would otherwise cost 64 frames to encode, decode, step and acknowledge, where one does. The merged
 * message is what the receiver would have made of them in turn: an append's entries and its latest commit; a
 * proposal's entries in order.
 */
export function coalesceMessages(msgs: Message[], maxBytes = MAX_COALESCED_BYTES): Message[] {
  if (msgs.length < 2) return msgs;
  const out: Message[] = [];
  /** Where in `out` the last message to each peer is, while it is an append that can still grow, and its data bytes. */
  const open = new Map<string, number>();
  const bytes = new Map<string, number>();
  const owned = new Set<Message>();
  for (const m of msgs) {
    const at = open.get(m.to);
    if (m.type !== MessageType.App && m.type !== MessageType.Prop) {
      if (at !== undefined) open.delete(m.to);
      out.push(m);
      continue;
    }
    if (at !== undefined) {
      const a = out[at];
      const n = a.entries.length;
      const size = bytes.get(m.to)! + dataBytes(m);
      if (m.type === a.type && m.term === a.term && size <= maxBytes && (m.type === MessageType.Prop ? allNormal(a) && allNormal(m) : continues(a, m))) {
        bytes.set(m.to, size);
        // The first merge copies the message and its entries (the core's are left alone); later ones add to the copy.
        let merged = a;
        if (!owned.has(a)) {
          merged = { ...a, entries: a.entries.slice() };
          owned.add(merged);
          out[at] = merged;
        }
        for (const e of m.entries) merged.entries.push(e);
        merged.commit = m.commit;
        continue;
      }
    }
    open.set(m.to, out.length);
    bytes.set(m.to, dataBytes(m));
    out.push(m);
  }
  return out;
}

/** Appends merge up to this much entry data (Raft's max message size): a merged frame stays within what one may be. */
export const MAX_COALESCED_BYTES = 1024 * 1024;

/** Whether append m starts where append a ends, carrying the same or a later commit. */
function continues(a: Message, m: Message): boolean {
  const n = a.entries.length;
  const lastTerm = n > 0 ? a.entries[n - 1].term : a.logTerm;
  return m.index === a.index + n && m.logTerm === lastTerm && m.commit >= a.commit;
}

/** A proposal of a configuration change goes alone: the leader refusing it (one pending already) drops only it. */
function allNormal(m: Message): boolean {
  for (const e of m.entries) if (e.type !== EntryType.Normal) return false;
  return true;
}

function dataBytes(m: Message): number {
  let n = 0;
  for (const e of m.entries) n += e.data.byteLength;
  return n;
}

/**
 * The host loop around the pure Raft core, in the order that keeps acknowledged writes durable: persist the
 * Ready (WAL fsync), then send its messages, then apply its committed entries, then advance. While one Ready is
 * being fsynced, new proposals gather in the core and go out together in the next one (group commit).
 */
export class RaftNode {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  private readonly o: RaftNodeOptions;
  private ticker: NodeJS.Timeout | undefined;
  private processing: Promise<void> | undefined;
  private scheduled = false;
  private stopped = false;
  private failed: Error | undefined;
  private isLeader = false;
  private leaderFlushScheduled = false;

  constructor(o: RaftNodeOptions) {
    this.o = o;
    this.node = o.node;
    this.storage = o.storage;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.node.tick();
      this.schedule();
    }, this.o.tickMs);
    this.schedule();
  }

  /** Run the host loop soon (after the current I/O callbacks, so that concurrent requests batch up). */
  schedule(): void {
    if (this.scheduled || this.processing || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.processing || this.stopped) return;
      // .finally runs asynchronously, so `processing` is set before it is cleared even when there is no Ready.
      this.processing = this.process().finally(() => {
        this.processing = undefined;
        if (!this.stopped && this.node.hasReady()) this.schedule();
      });
    });
  }

  private async process(): Promise<void> {
    try {
      while (!this.stopped && this.node.hasReady()) await this.handle(this.node.ready());
    } catch (err) {
      this.failed = err as Error;
      this.stopped = true;
      this.o.onFatal(err as Error);
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const { wal, snapshotter, storage, transport, applier } = this.o;
    if (rd.snapshot) {
      // The snapshot file first, then its marker in the WAL: a marker never points at a missing snapshot.
      await snapshotter.save(rd.snapshot);
      await wal.saveSnapshot({ index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term });
      storage.applySnapshot(rd.snapshot);
    }
    if (rd.softState) {
      this.isLeader = rd.softState.raftState === StateType.Leader;
      applier.softState(rd.softState);
    }
    // A leader may send its appends while it writes them itself (Raft thesis 10.2.1): its own acknowledgement still
    // waits for its fsync. Anyone else's messages (votes, acknowledgements) promise what is on disk: they wait.
    const sendFirst = this.isLeader;
    if (sendFirst && rd.messages.length > 0) transport.send(coalesceMessages(rd.messages));
    const saved = rd.hardState || rd.entries.length > 0 ? wal.save(rd.hardState, rd.entries, rd.mustSync) : undefined;
    // Committed entries are on a quorum's disks already: apply them while this Ready's write is in flight.
    try {
      if (rd.snapshot) applier.applySnapshot(rd.snapshot);
      if (rd.committedEntries.length > 0) applier.applyEntries(rd.committedEntries);
    } finally {
      if (saved) await saved;
    }
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    if (!sendFirst && rd.messages.length > 0) transport.send(coalesceMessages(rd.messages));
    if (rd.readStates.length > 0) applier.readStates(rd.readStates);
    this.node.advance(rd);
  }

  /**
   * Applies, right away, entries that became committed while a Ready is being persisted and are durable here
   * already (typically: followers acknowledged what this leader wrote in the previous Ready). Without this they
   * would wait for the write in flight and come in the next Ready.
   */
  applyCommittedNow(): void {
    if (!this.processing || this.stopped) return;
    try {
      const ents = this.node.takeCommitted();
      if (ents.length === 0) return;
      this.o.applier.applyEntries(ents);
      this.node.appliedTo(ents[ents.length - 1].index, ents);
    } catch (err) {
      // As in the host loop: a failure to apply stops the member, never the process from inside a socket callback.
      this.failed = err as Error;
      this.stopped = true;
      this.o.onFatal(err as Error);
    }
  }

  /**
   * A leader sends its new appends and heartbeats at once, even while a Ready is being persisted: otherwise a
   * proposal arriving during the leader's write would reach the followers only after that write.
   */
  sendLeaderMessagesSoon(): void {
    if (this.leaderFlushScheduled || !this.processing) return;
    this.leaderFlushScheduled = true;
    // After the current I/O callbacks, so that the appends of many proposals go out together.
    setImmediate(() => {
      this.leaderFlushScheduled = false;
      if (!this.processing || this.stopped) return;
      const msgs = this.node.takeLeaderMessages();
      if (msgs.length > 0) this.o.transport.send(coalesceMessages(msgs));
    });
  }

  /** Stops ticking and waits for the Ready in progress to be persisted and applied. */
  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    const inFlight = this.processing;
    this.stopped = true;
    if (inFlight) await inFlight;
  }

  failure(): Error | undefined {
    return this.failed;
  }
}
