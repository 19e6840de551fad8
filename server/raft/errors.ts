/** Errors the Raft core reports to its host. */

/** The requested index is older than the log's first index: it was compacted into a snapshot. */
export class CompactedError extends Error {
  constructor(index: number, firstIndex: number) {
    super(`requested index ${index} is unavailable due to compaction (first index ${firstIndex})`);
    this.name = 'CompactedError';
  }
}

/** The requested index is past the last index the storage holds. */
export class UnavailableError extends Error {
  constructor(index: number) {
    super(`requested entry at index ${index} is unavailable`);
    this.name = 'UnavailableError';
  }
}

/** The storage cannot produce a snapshot right now; the leader retries later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  constructor() {
    super('snapshot is temporarily unavailable');
    this.name = 'SnapshotTemporarilyUnavailableError';
  }
}

/** A snapshot older than the one the storage already has. */
export class SnapshotOutOfDateError extends Error {
  constructor(index: number, current: number) {
    super(`requested snapshot index ${index} is older than the existing snapshot ${current}`);
    this.name = 'SnapshotOutOfDateError';
  }
}

/**
 * A proposal (or read request, or leader transfer) that this node cannot take: there is no leader to forward it
 * to, the leader is transferring leadership, a configuration change is still pending, or this node was removed.
 */
export class ProposalDroppedError extends Error {
  constructor(reason: string) {
    super(`raft proposal dropped: ${reason}`);
    this.name = 'ProposalDroppedError';
  }
}
