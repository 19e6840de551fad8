/**
 * What the server applies log entries through: one applier per kind of entry (entry.ts), each behind the same
 * interface, as etcd layers its appliers. A new kind (v3, lease, auth) is a new applier registered with the
 * dispatcher; no other applier changes.
 */

/** Where the entry is in the log, and which request it is. */
export interface ApplyContext {
  index: number;
  term: number;
  /** The request's ID (0 when no client waits). */
  requestId: number;
  /** The entry's encoding version (one of the applier's `versions`). */
  version: number;
  /**
   * Written by the first release, before entries had an envelope: applied as that release applied it, so that a
   * member replaying it and one that has it in a snapshot of that release end in the same state.
   */
  legacy: boolean;
}

/** What applying answers the waiting client: a result, or an error that is part of the answer (not a failure). */
export interface ApplyResult {
  result?: unknown;
  error?: Error;
}

export interface Applier {
  /** The encoding versions of its kind that this release reads; an entry of another version is skipped. */
  readonly versions: readonly number[];
  /**
   * Applies an entry's payload. Deterministic: every member answers the same from the same log. Expected refusals
   * (a v2 compare that fails, a membership change that is not valid) are returned as `error`; a throw is a bug,
   * which the dispatcher logs and turns into the same error answer on every member.
   */
  apply(payload: Uint8Array, ctx: ApplyContext): ApplyResult;
}
