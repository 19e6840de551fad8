import { ProposalDroppedError } from '../raft';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** Where a proposal ended up in the log, and what applying it answered. */
export interface WriteResult {
  result: unknown;
  error?: Error;
  index: number;
  term: number;
}

interface Waiter {
  /** What was proposed (the entry's data, a conf change's context): an applied entry with the ID is ours if it is this. */
  data: Uint8Array | undefined;
  resolve: (r: WriteResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** What the proposals need of the member. */
export interface ProposalHost {
  stopped(): boolean;
  hasLeader(): boolean;
  /** Calls `fn` once when a leader becomes known; returns how to stop waiting. */
  onLeader(fn: () => void): () => void;
  /** The time a client waits for its proposal to apply. */
  timeoutMs(): number;
  /** The error for a proposal started at `start` (performance.now() ms) that timed out, with etcd's cause. */
  timeoutError(start: number): Error;
  stoppedError(): Error;
  now(): number;
}

/**
 * The clients waiting for their proposals to commit and apply on this member, by request ID: each gets the
 * applier's answer, or a timeout (etcd's request timeout), or the member's stop. A proposal made while no leader is
 * known waits for one within the timeout, as etcd's clients do.
 */
export class Proposals {
  private readonly waiters = new Map<number, Waiter>();
  /** Proposals that timed out or were dropped (etcd_server_proposals_failed_total). */
  failed = 0;
  /** Applied entries of other members that carried the request ID of a proposal waiting here. */
  collisions = 0;

  constructor(private readonly host: ProposalHost) {}

  get pending(): number {
    return this.waiters.size;
  }

  /**
   * Sends a proposal with `send` (which throws ProposalDroppedError while there is no leader) and resolves with
   * its answer. With `untilLeader`, a dropped proposal is sent again once a leader is known.
   */
  submit(requestId: number, send: () => void, untilLeader: boolean, data?: Uint8Array): Promise<WriteResult> {
    if (this.host.stopped()) return Promise.reject(this.host.stoppedError());
    const start = performance.now();
    return new Promise<WriteResult>((resolve, reject) => {
      this.wait(requestId, start, this.host.timeoutMs(), resolve, reject, data);
      try {
        send();
      } catch (err) {
        this.drop(requestId);
        if (untilLeader && err instanceof ProposalDroppedError) return this.retryUntilLeader(requestId, send, start, resolve, reject, data);
        reject(err as Error);
      }
    });
  }

  /**
   * Hands an applied entry's answer to the client waiting for it on this member, if any: the one that proposed this
   * `data` (another member's entry may carry the same request ID, see RequestIdGenerator; it is not ours to answer).
   */
  answer(requestId: number | undefined, r: WriteResult, data?: Uint8Array): void {
    if (!requestId) return;
    const w = this.waiters.get(requestId);
    if (!w) return;
    if (w.data && data && w.data !== data && !sameBytes(w.data, data)) {
      this.collisions++;
      return;
    }
    this.waiters.delete(requestId);
    clearTimeout(w.timer);
    w.resolve(r);
  }

  failAll(err: Error): void {
    for (const [, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }

  private wait(requestId: number, start: number, ms: number, resolve: (r: WriteResult) => void, reject: (e: Error) => void, data: Uint8Array | undefined): void {
    const timer = setTimeout(() => {
      this.waiters.delete(requestId);
      this.fail(reject, this.host.timeoutError(start));
    }, ms);
    this.waiters.set(requestId, { data, resolve, reject, timer });
  }

  private drop(requestId: number): void {
    const w = this.waiters.get(requestId);
    if (w) clearTimeout(w.timer);
    this.waiters.delete(requestId);
  }

  private fail(reject: (e: Error) => void, err: Error): void {
    this.failed++;
    reject(err);
  }

  private retryUntilLeader(requestId: number, send: () => void, start: number, resolve: (r: WriteResult) => void, reject: (e: Error) => void, data: Uint8Array | undefined): void {
    const h = this.host;
    const deadline = h.now() + h.timeoutMs();
    const tryAgain = (): void => {
      if (h.stopped()) return reject(h.stoppedError());
      if (h.hasLeader()) {
        this.wait(requestId, start, Math.max(1, deadline - h.now()), resolve, reject, data);
        try {
          send();
          return;
        } catch (err) {
          this.drop(requestId);
          if (!(err instanceof ProposalDroppedError)) return reject(err as Error);
        }
      }
      if (h.now() >= deadline) return this.fail(reject, h.timeoutError(start));
      // Wait for a leader, but not past the deadline: then the client gets etcd's timeout error.
      const stopWaiting = h.onLeader(() => {
        clearTimeout(timer);
        tryAgain();
      });
      const timer = setTimeout(() => {
        stopWaiting();
        tryAgain();
      }, Math.max(1, deadline - h.now()));
    };
    tryAgain();
  }
}
