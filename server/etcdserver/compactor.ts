/**
 * Auto compaction of the v3 store (--auto-compaction-mode, --auto-compaction-retention), as etcd 3.4's
 * v3compactor does it, on the leader only:
 * - periodic: keeps `retention` of history. Every retention/10 (at most 6 minutes) the current revision is noted;
 *   once `retention` has passed since the start (then every min(retention, 1 h)), the store is compacted at the
 *   revision noted `retention` ago.
 * - revision: every 5 minutes, compacts at the current revision minus `retention` (when that moved on).
 * A compaction at a revision already compacted counts as done. Time is injected (tests drive it).
 */
import { goParseDuration } from '../pkg/go-compat';

export type CompactionMode = 'periodic' | 'revision';

export interface CompactorDeps {
  mode: CompactionMode;
  /** periodic: milliseconds; revision: revisions. */
  retention: number;
  rev(): number;
  compact(rev: number): Promise<void>;
  isLeader(): boolean;
  log(level: 'info' | 'warn', msg: string, meta: Record<string, unknown>): void;
  now(): number;
  setTimer(fn: () => void, ms: number): { clear(): void };
}

/** etcd's revision-mode check interval. */
export const REVISION_INTERVAL_MS = 5 * 60 * 1000;
const HOUR = 3600 * 1000;

/**
 * etcd's parseCompactionRetention: a plain non-negative integer is hours (periodic) or revisions (revision);
 * otherwise a Go duration (periodic). Milliseconds or revisions; 0: no auto compaction.
 */
export function parseCompactionRetention(mode: CompactionMode, retention: string): number {
  if (/^\+?[0-9]+$/.test(retention)) {
    const n = Number(retention);
    return mode === 'revision' ? n : n * HOUR;
  }
  try {
    const ms = goParseDuration(retention);
    if (mode === 'revision') throw new Error(`a revision retention must be a number of revisions, not ${JSON.stringify(retention)}`);
    if (ms < 0) throw new Error(`negative retention ${JSON.stringify(retention)}`);
    return ms;
  } catch (err) {
    throw new Error(`error parsing CompactionRetention: ${(err as Error).message}`);
  }
}

export class Compactor {
  private timer: { clear(): void } | undefined;
  private stopped = false;

  constructor(private readonly d: CompactorDeps) {}

  start(): void {
    if (this.d.retention <= 0) return;
    if (this.d.mode === 'periodic') this.runPeriodic();
    else this.runRevision();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    this.timer = this.d.setTimer(fn, ms);
  }

  private async compact(rev: number, meta: Record<string, unknown>, what: string): Promise<boolean> {
    const start = this.d.now();
    this.d.log('info', `starting auto ${what} compaction`, { revision: rev, ...meta });
    try {
      await this.d.compact(rev);
    } catch (err) {
      if (!/required revision has been compacted/.test((err as Error).message)) {
        this.d.log('warn', `failed auto ${what} compaction`, { revision: rev, ...meta, error: (err as Error).message });
        return false;
      }
    }
    this.d.log('info', `completed auto ${what} compaction`, { revision: rev, ...meta, took: `${this.d.now() - start}ms` });
    return true;
  }

  private runPeriodic(): void {
    const period = this.d.retention;
    const compactInterval = Math.min(period, HOUR);
    const retryInterval = compactInterval / 10;
    const retentions = Math.floor(period / retryInterval) + 1;
    const revs: number[] = [];
    let lastSuccess = this.d.now();
    let baseInterval = period;
    const meta = { 'compact-period': `${period}ms` };
    const tick = (): void => {
      revs.push(this.d.rev());
      if (revs.length > retentions) revs.shift(); // revs[0] is the revision of `period` ago
      this.schedule(() => void step(), retryInterval);
    };
    const step = async (): Promise<void> => {
      if (this.d.isLeader() && this.d.now() - lastSuccess >= baseInterval) {
        baseInterval = compactInterval;
        if (await this.compact(revs[0], meta, 'periodic')) lastSuccess = this.d.now();
      }
      tick();
    };
    tick();
  }

  private runRevision(): void {
    let prev = 0;
    const meta = { 'revision-compaction-retention': this.d.retention };
    const step = async (): Promise<void> => {
      const rev = this.d.rev() - this.d.retention;
      if (this.d.isLeader() && rev > 0 && rev !== prev && (await this.compact(rev, meta, 'revision'))) prev = rev;
      this.schedule(() => void step(), REVISION_INTERVAL_MS);
    };
    this.schedule(() => void step(), REVISION_INTERVAL_MS);
  }
}
