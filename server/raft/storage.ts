import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors';
import { ConfState, Entry, EntryType, HardState, Snapshot, emptyHardState } from './types';

/**
 * Where the Raft core reads the stable log from. The host writes to it (after making the writes durable) and the
 * core only reads. Indexes below firstIndex() are compacted into snapshot().
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxSize bytes of data but always at least one entry if any is in range. */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** The term of entry i, for i in [firstIndex()-1, lastIndex()]. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export function entrySize(e: Entry): number {
  // The data plus a fixed allowance for term, index and type, as they cost bytes on the wire too.
  return e.data.length + 24;
}

/** Keeps the longest prefix of ents whose total size is within maxSize, and at least one entry. */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]);
    if (size > maxSize) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

export function emptySnapshot(): Snapshot {
  return { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
}

/**
 * An in-memory Storage. The server keeps the log since the last snapshot here and makes it durable with the WAL;
 * tests use it alone. ents[0] is a placeholder carrying the snapshot's index and term.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];
  /** The index of the snapshot whose data was released; 0 if none. */
  private released = 0;

  /** initialConfState: the membership a restarted or crafted log starts from (before any snapshot). */
  constructor(initialConfState?: ConfState) {
    if (initialConfState) this.snap.metadata.confState = { voters: [...initialConfState.voters], learners: [...initialConfState.learners] };
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  hardStateNow(): HardState {
    return { ...this.hardState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new Error(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.ents.length === 1) throw new UnavailableError(lo);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw new CompactedError(i, offset + 1);
    if (i - offset >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Drops the data of the snapshot at `index` (if it is still the current one) once the host has it on disk: it is
   * the whole application state, and only a peer that catches up by snapshot needs it, which the host then reads
   * back (dataReleased). snapshot() returns it with empty data from then on.
   */
  releaseSnapshotData(index: number): void {
    if (this.snap.metadata.index !== index || index === 0) return;
    this.snap = { metadata: this.snap.metadata, data: new Uint8Array(0) };
    this.released = index;
  }

  /** Whether snap is the current snapshot with its data released (releaseSnapshotData). */
  dataReleased(snap: Snapshot): boolean {
    return this.released !== 0 && snap.metadata.index === this.released && snap.data.length === 0;
  }

  /** Replaces the contents with a snapshot (a follower received it from the leader). */
  applySnapshot(snap: Snapshot): void {
    const cur = this.snap.metadata.index;
    if (snap.metadata.index <= cur) throw new SnapshotOutOfDateError(snap.metadata.index, cur);
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Records a snapshot of the application state at index i (which must be applied). */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapshotOutOfDateError(i, this.snap.metadata.index);
    const offset = this.ents[0].index;
    if (i > this.lastIndex()) throw new Error(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = { metadata: { index: i, term: this.ents[i - offset].term, confState }, data };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex; they must be covered by a snapshot. */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw new CompactedError(compactIndex, offset + 1);
    if (compactIndex > this.lastIndex()) {
      throw new Error(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const rest = this.ents.slice(i);
    rest[0] = { term: rest[0].term, index: rest[0].index, type: EntryType.Normal, data: new Uint8Array(0) };
    this.ents = rest;
  }

  /** Appends entries that are now durable; an entry that conflicts replaces the tail from its index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all already compacted
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const offset = entries[0].index - this.ents[0].index;
    if (this.ents.length > offset) {
      this.ents = this.ents.slice(0, offset);
      for (const e of entries) this.ents.push(e);
    } else if (this.ents.length === offset) {
      for (const e of entries) this.ents.push(e);
    } else {
      throw new Error(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    }
  }
}
