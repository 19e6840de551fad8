import { EntryKind, decodeEntry } from '../entry';
import { Applier, ApplyResult } from './applier';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;

/** The answer for an entry this release cannot apply (an unknown kind or encoding version). */
export class UnknownEntryError extends Error {
  constructor(kind: number, version: number) {
    super(`etcdserver: entry of kind ${EntryKind[kind] ?? kind} version ${version} is not known to this release`);
    this.name = 'UnknownEntryError';
  }
}

/** The answer for an entry whose applier threw (the same on every member, so their states stay alike). */
export class ApplyFailedError extends Error {
  constructor(cause: Error) {
    super(`etcdserver: applying the request failed: ${cause.message}`);
    this.name = 'ApplyFailedError';
  }
}

/**
 * Applies Normal entries by kind. Apply is total: whatever an entry holds, the member goes on to the next one.
 * - an entry whose kind or version this release does not know (a newer release wrote it) is logged with its index
 *   and skipped without touching any state: every member of this release skips it alike;
 * - an applier that throws is logged with the entry's index and kind, and its waiting client gets ApplyFailedError;
 *   the member neither stops nor retries the entry.
 */
export class ApplyDispatcher {
  private readonly appliers = new Map<number, Applier>();

  constructor(private readonly log: Log) {}

  register(kind: EntryKind, applier: Applier): void {
    if (this.appliers.has(kind)) throw new Error(`an applier for ${EntryKind[kind]} entries is registered already`);
    this.appliers.set(kind, applier);
  }

  has(kind: EntryKind): boolean {
    return this.appliers.has(kind);
  }

  /** Applies one non-empty Normal entry; returns the request it answers (0: none) and the answer. */
  apply(data: Uint8Array, index: number, term: number): { requestId: number; answer: ApplyResult } {
    let e;
    try {
      e = decodeEntry(data);
    } catch (err) {
      this.log('error', 'skipped a log entry that does not decode', { index, error: (err as Error).message });
      return { requestId: 0, answer: { error: err as Error } };
    }
    const applier = this.appliers.get(e.kind);
    if (!applier || !applier.versions.includes(e.version)) {
      this.log('warn', 'skipped a log entry of a kind or version this release does not know', { index, kind: EntryKind[e.kind] ?? e.kind, version: e.version });
      return { requestId: e.requestId, answer: { error: new UnknownEntryError(e.kind, e.version) } };
    }
    try {
      return { requestId: e.requestId, answer: applier.apply(e.payload, { index, term, requestId: e.requestId, version: e.version, legacy: e.legacy === true }) };
    } catch (err) {
      this.log('error', 'applying a log entry failed; it is answered with an error and the member goes on', { index, kind: EntryKind[e.kind], error: (err as Error).message });
      return { requestId: e.requestId, answer: { error: new ApplyFailedError(err as Error) } };
    }
  }
}
