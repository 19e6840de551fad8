/**
 * The watchable store (etcd's mvcc/watchable_store.go): watchers of keys and ranges, told of every write of the
 * store in revision order.
 *
 * A synced watcher has seen every revision up to the store's: each write txn's events go to it as the txn ends
 * (txnEnded, on the apply path; with no watcher that costs one test). An unsynced watcher is behind: it started at a
 * past revision, the store was replaced by a snapshot, or its client fell behind (its stream's queue was full when
 * events came, etcd's "slow watcher"). Unsynced watchers are caught up from the store's history (LMDB, and the write
 * buffer not committed yet) in rounds of at most MAX_WATCHERS_PER_SYNC watchers and a bounded window of versions,
 * one event loop turn each, so writes are not held up; a watcher whose stream is full is left out of the rounds
 * until its client reads again. A slow watcher so costs no memory but its own: no events are kept for it, they are
 * read back when it can take them (etcd keeps a batch per "victim"). A watcher that needs a compacted revision is
 * told the compaction revision and dropped, as etcd does.
 *
 * Responses go to a WatchSink, one per client stream (the gRPC layer's queue): watchable only asks it whether it has
 * room and hands it responses in order.
 */
import { Event, Event_EventType } from '../api/v3rpc/pb/mvccpb/kv';
import type { KeyValue } from '../api/v3rpc/pb/mvccpb/kv';
import { readU64, recordIsTombstone, recordKey, recordValue } from './codec';
import type { HistoryVersion, MvccStore, StagedWrite, StoreWatcher } from './store';
import { FROM_KEY_END, WatcherGroup } from './watcher-group';

/** etcd's maxWatchersPerSync. */
const MAX_WATCHERS_PER_SYNC = 512;
/** etcd's watchBatchMaxRevs: a catch-up response holds the events of at most this many revisions. */
const WATCH_BATCH_MAX_REVS = 1000;
/** A catch-up round reads at most this many versions (ending at a revision boundary)… */
const SYNC_MAX_VERSIONS = 10000;
/** …and about this many bytes of records. */
const SYNC_MAX_BYTES = 4 * 1024 * 1024;

export const ErrWatcherNotExist = 'mvcc: watcher does not exist';
export const ErrEmptyWatcherRange = 'mvcc: watcher range is empty';
export const ErrWatcherDuplicateID = 'mvcc: duplicate watch ID provided on the WatchStream';

/** An error of WatchStream.watch, with etcd's message (the create response's cancel_reason). */
export class WatchError extends Error {}

/** An event as sent: `encoded` caches its wire bytes (set by the gRPC layer; shared by every watcher sent it). */
export interface WatchEvent extends Event {
  encoded?: Uint8Array;
}

/** What a watcher is sent (etcd's mvcc.WatchResponse). */
export interface WatchResult {
  events: WatchEvent[];
  /** the store's revision the response reflects (the header's revision) */
  revision: number;
  /** non-zero: the watcher needed a compacted revision and is canceled */
  compactRevision: number;
}

/** A client stream's outgoing queue (the gRPC layer). */
export interface WatchSink {
  /** Whether a response can be queued now; false while the client is behind. */
  ready(): boolean;
  send(w: Watcher, r: WatchResult): void;
}

export interface WatchOptions {
  prevKv?: boolean;
  /** etcd's NOPUT / NODELETE filters */
  noPut?: boolean;
  noDelete?: boolean;
  /** for the gRPC layer: split large responses (etcd's fragment) */
  fragment?: boolean;
}

type State = 'synced' | 'unsynced' | 'compacted' | 'canceled';

export class Watcher {
  /** the lowest revision this watcher still needs (the next to send it) */
  minRev: number;
  state: State = 'unsynced';
  /** the sync round that chose it */
  round = 0;

  constructor(
    readonly id: bigint,
    /** the key or the range's begin as a latin1 string (one string for every watcher of the same key) */
    readonly ks: string,
    readonly endKs: string | undefined,
    startRev: number,
    readonly opts: WatchOptions,
    readonly stream: WatchStream,
  ) {
    this.minRev = startRev;
  }

  /** The events this watcher keeps of evs (its filters). */
  filter(evs: WatchEvent[]): WatchEvent[] {
    const { noPut, noDelete } = this.opts;
    if (!noPut && !noDelete) return evs;
    return evs.filter((e) => (e.type === Event_EventType.PUT ? !noPut : !noDelete));
  }
}

const EMPTY = Buffer.alloc(0);

/** The options of a watcher with none (most): one object for all of them. */
const NO_OPTIONS: WatchOptions = Object.freeze({});

const sharedOptions = (o: WatchOptions): WatchOptions => (o.prevKv || o.noPut || o.noDelete || o.fragment ? o : NO_OPTIONS);

/** A version as an event (a tombstone is a DELETE whose kv has the key and the delete's revision only, as etcd's). */
function toEvent(main: number, rec: Buffer): WatchEvent {
  const key = recordKey(rec);
  if (recordIsTombstone(rec)) {
    return { type: Event_EventType.DELETE, kv: { key, createRevision: 0n, modRevision: BigInt(main), version: 0n, value: EMPTY, lease: 0n }, prevKv: undefined };
  }
  const kv: KeyValue = { key, createRevision: BigInt(readU64(rec, 1)), modRevision: BigInt(main), version: BigInt(readU64(rec, 9)), value: recordValue(rec), lease: rec.readBigInt64BE(17) };
  return { type: Event_EventType.PUT, kv, prevKv: undefined };
}

/** etcd's isCreateEvent: a PUT that created the key has no previous version to look for. */
const isCreate = (e: WatchEvent): boolean => e.type === Event_EventType.PUT && e.kv!.createRevision === e.kv!.modRevision;

/**
 * One version's event, and the same with prev_kv for the watchers that ask for it (looked up once, when one does).
 */
class VersionEvents {
  private withPrev: WatchEvent | undefined;

  constructor(
    private readonly store: MvccStore,
    readonly main: number,
    readonly ev: WatchEvent,
    private readonly write: StagedWrite | undefined,
  ) {}

  for(w: Watcher): WatchEvent {
    if (!w.opts.prevKv || isCreate(this.ev)) return this.ev;
    if (!this.withPrev) {
      const prevKv = this.store.prevVersion(this.ev.kv!.key, this.main, this.write);
      this.withPrev = prevKv ? { type: this.ev.type, kv: this.ev.kv, prevKv } : this.ev;
    }
    return this.withPrev;
  }
}

/** A watcher's events of one catch-up round. */
interface EventBatch {
  events: WatchEvent[];
  /** distinct revisions in events, the last of them, and the first left for a later round */
  revs: number;
  last: number;
  more: number;
}

/** The numbers etcd's mvcc metrics report (see mvcc/metrics.ts). */
export interface WatchCounts {
  watchers: number;
  streams: number;
  /** events handed to sinks and not yet sent to their clients, and events sent (the sinks keep them up to date) */
  pendingEvents: number;
  eventsSent: number;
}

export class WatchableStore implements StoreWatcher {
  private readonly synced = new WatcherGroup<Watcher>();
  private readonly unsynced = new WatcherGroup<Watcher>();
  /** streams with unsynced watchers, for choosing those whose client has room */
  private readonly behind = new Set<WatchStream>();
  readonly counts: WatchCounts = { watchers: 0, streams: 0, pendingEvents: 0, eventsSent: 0 };
  private syncScheduled = false;
  private round = 0;
  private closed = false;

  constructor(readonly store: MvccStore, private readonly log: (msg: string) => void = () => undefined) {
    store.watcher = this;
  }

  /** Watchers behind the store (etcd_debugging_mvcc_slow_watcher_total). */
  slowWatchers(): number {
    return this.unsynced.size;
  }

  newWatchStream(sink: WatchSink): WatchStream {
    this.counts.streams++;
    return new WatchStream(this, sink);
  }

  close(): void {
    this.closed = true;
    if (this.store.watcher === this) this.store.watcher = undefined;
  }

  /** @internal The string of a key some watcher already has, if one has: many watchers of a key keep one string. */
  intern(ks: string): string {
    return this.synced.keyString(ks) ?? this.unsynced.keyString(ks) ?? ks;
  }

  /** @internal etcd's watchableStore.watch: startRev 0 means the next revision. */
  add(w: Watcher): void {
    this.counts.watchers++;
    const cur = this.store.rev();
    if (w.minRev === 0 || w.minRev > cur) {
      w.minRev = Math.max(w.minRev, cur + 1);
      w.state = 'synced';
      this.synced.add(w);
    } else this.toUnsynced(w);
  }

  /** @internal */
  remove(w: Watcher): void {
    if (w.state === 'canceled') return;
    if (w.state === 'synced') this.synced.delete(w);
    else if (w.state === 'unsynced') this.fromUnsynced(w);
    w.state = 'canceled';
    this.counts.watchers--;
  }

  /** @internal a progress notification for a synced watcher (etcd's progress): nothing when it is behind or full */
  progress(w: Watcher): void {
    if (w.state === 'synced' && w.stream.sink.ready()) w.stream.sink.send(w, { events: [], revision: this.store.rev(), compactRevision: 0 });
  }

  /** @internal the stream's client took responses: its unsynced watchers can go on. */
  streamReady(s: WatchStream): void {
    if (s.unsynced.size) this.scheduleSync();
  }

  private toUnsynced(w: Watcher): void {
    w.state = 'unsynced';
    this.unsynced.add(w);
    w.stream.unsynced.add(w);
    this.behind.add(w.stream);
    this.scheduleSync();
  }

  private fromUnsynced(w: Watcher): void {
    this.unsynced.delete(w);
    w.stream.unsynced.delete(w);
    if (!w.stream.unsynced.size) this.behind.delete(w.stream);
  }

  private toSynced(w: Watcher): void {
    this.fromUnsynced(w);
    w.state = 'synced';
    this.synced.add(w);
  }

  // ---- StoreWatcher ----

  txnEnded(rev: number, writes: readonly StagedWrite[], from: number, to: number): void {
    if (!this.synced.size) return;
    try {
      this.notify(rev, writes, from, to);
    } catch (err) {
      // A bug here must not fail the apply of the entry (every member applies it alike).
      this.log(`watch: failed to notify watchers at revision ${rev}: ${(err as Error).stack ?? err}`);
    }
  }

  restored(): void {
    // etcd's Restore: every synced watcher catches up from the new store.
    for (const w of [...this.synced]) {
      this.synced.delete(w);
      this.toUnsynced(w);
    }
  }

  /** etcd's notify: the txn's events to the synced watchers of their keys; a watcher whose client is full falls behind. */
  private notify(rev: number, writes: readonly StagedWrite[], from: number, to: number): void {
    let batches: Map<Watcher, WatchEvent[]> | undefined;
    for (let i = from; i < to; i++) {
      const wr = writes[i];
      // a lease's or a meta value's write in the same txn (a revocation removes its lease's record): no key's
      if (wr.rev === undefined) continue;
      let ve: VersionEvents | undefined;
      this.synced.match(wr.ks, (w) => {
        if (rev < w.minRev) return; // a watcher that starts at a later revision
        ve ??= new VersionEvents(this.store, rev, toEvent(rev, wr.rec), wr);
        batches ??= new Map();
        const b = batches.get(w);
        if (b) b.push(ve.for(w));
        else batches.set(w, [ve.for(w)]);
      });
    }
    if (!batches) return;
    for (const [w, all] of batches) {
      const events = w.filter(all);
      if (!events.length) {
        w.minRev = rev + 1; // all filtered out: nothing to send
        continue;
      }
      if (w.stream.sink.ready()) {
        w.stream.sink.send(w, { events, revision: rev, compactRevision: 0 });
        // what it has seen, should a snapshot send it back to history (etcd keeps the start revision: it would
        // send these again)
        w.minRev = rev + 1;
      } else {
        // its client is behind: it is caught up from history from this revision once it reads again
        this.synced.delete(w);
        w.minRev = rev;
        this.toUnsynced(w);
      }
    }
  }

  private scheduleSync(): void {
    if (this.syncScheduled || this.closed) return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      if (this.closed) return;
      try {
        this.syncWatchers();
      } catch (err) {
        this.log(`watch: failed to sync watchers: ${(err as Error).stack ?? err}`);
      }
    });
  }

  /**
   * One catch-up round (etcd's syncWatchers): up to MAX_WATCHERS_PER_SYNC unsynced watchers whose clients have room
   * get the events of a bounded window of history from the lowest revision any of them needs; those that reach the
   * store's revision become synced. Another round follows while any can go on.
   */
  private syncWatchers(): void {
    const curRev = this.store.rev();
    const compactRev = this.store.compactRev();
    const round = ++this.round;
    const chosen: Watcher[] = [];
    let minRev = Infinity;
    const visited: WatchStream[] = [];
    for (const s of this.behind) {
      if (!s.sink.ready()) continue;
      visited.push(s);
      for (const w of s.unsynced) {
        if (chosen.length >= MAX_WATCHERS_PER_SYNC) break;
        if (w.minRev < compactRev) {
          // etcd answers the compaction revision and drops the watcher (the client cancels it or starts again)
          s.sink.send(w, { events: [], revision: 0, compactRevision: compactRev });
          this.fromUnsynced(w);
          w.state = 'compacted';
          if (!s.sink.ready()) break;
          continue;
        }
        if (w.minRev > curRev) {
          // moved here by a restore with a future start revision: it has nothing to catch up
          this.toSynced(w);
          continue;
        }
        w.round = round;
        chosen.push(w);
        if (w.minRev < minRev) minRev = w.minRev;
      }
      if (chosen.length >= MAX_WATCHERS_PER_SYNC) break;
    }
    // the streams served go last next round, so that many behind streams take turns
    for (const s of visited) {
      if (this.behind.delete(s)) this.behind.add(s);
    }
    if (chosen.length) {
      const batches = new Map<Watcher, EventBatch>();
      const next = this.store.readHistory(Math.max(minRev, 1), SYNC_MAX_VERSIONS, SYNC_MAX_BYTES, (v: HistoryVersion) => {
        let ve: VersionEvents | undefined;
        this.unsynced.match(v.write ? v.write.ks : recordKey(v.rec).toString('latin1'), (w) => {
          if (w.round !== round || v.main < w.minRev) return;
          let b = batches.get(w);
          if (!b) batches.set(w, (b = { events: [], revs: 0, last: 0, more: 0 }));
          if (b.more) return;
          if (v.main !== b.last) {
            if (b.revs === WATCH_BATCH_MAX_REVS) {
              b.more = v.main; // the rest in a later round, as etcd's moreRev
              return;
            }
            b.revs++;
            b.last = v.main;
          }
          ve ??= new VersionEvents(this.store, v.main, toEvent(v.main, v.rec), v.write);
          b.events.push(ve.for(w));
        });
      });
      for (const w of chosen) {
        if (w.state !== 'unsynced') continue;
        const b = batches.get(w);
        const events = b ? w.filter(b.events) : [];
        if (events.length) {
          if (!w.stream.sink.ready()) continue; // filled up by this round: it goes on from where it was
          w.stream.sink.send(w, { events, revision: curRev, compactRevision: 0 });
        }
        w.minRev = b?.more || next;
        if (w.minRev > curRev) this.toSynced(w);
      }
    }
    for (const s of this.behind) {
      if (s.sink.ready()) {
        this.scheduleSync();
        break;
      }
    }
  }
}

/**
 * The watchers of one client stream (etcd's mvcc watchStream): watch IDs given or assigned, cancel, progress.
 */
export class WatchStream {
  readonly watchers = new Map<bigint, Watcher>();
  /** @internal its unsynced watchers */
  readonly unsynced = new Set<Watcher>();
  private nextId = 0n;
  private closed = false;

  constructor(
    private readonly ws: WatchableStore,
    readonly sink: WatchSink,
  ) {}

  /** The store's current revision. */
  rev(): number {
    return this.ws.store.rev();
  }

  /**
   * etcd's WatchStream.Watch: watches key (end undefined), [key, end), or every key ≥ key (end empty), from
   * startRev (0: the next revision); id 0 assigns the lowest free ID from the last one assigned. Throws a
   * WatchError with etcd's message for an empty range or an ID in use.
   */
  watch(id: bigint, key: Buffer, end: Buffer | undefined, startRev: number, opts: WatchOptions = {}): bigint {
    if (end && end.length && Buffer.compare(key, end) >= 0) throw new WatchError(ErrEmptyWatcherRange);
    if (this.closed) throw new WatchError(ErrEmptyWatcherRange);
    if (id === 0n) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      throw new WatchError(ErrWatcherDuplicateID);
    }
    const endKs = end === undefined ? undefined : end.length ? end.toString('latin1') : FROM_KEY_END;
    const w = new Watcher(id, this.ws.intern(key.toString('latin1')), endKs, startRev, sharedOptions(opts), this);
    this.watchers.set(id, w);
    this.ws.add(w);
    return id;
  }

  /** Cancels a watcher: false when there is none by that ID (etcd's ErrWatcherNotExist). */
  cancel(id: bigint): boolean {
    const w = this.watchers.get(id);
    if (!w || this.closed) return false;
    this.ws.remove(w);
    this.watchers.delete(id);
    return true;
  }

  /** A progress notification for the watcher, if it is synced (etcd's RequestProgress). */
  requestProgress(id: bigint): void {
    const w = this.watchers.get(id);
    if (w) this.ws.progress(w);
  }

  /** The sink has room again. */
  ready(): void {
    this.ws.streamReady(this);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) this.ws.remove(w);
    this.watchers.clear();
    this.ws.counts.streams--;
  }
}
