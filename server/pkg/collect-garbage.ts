/**
 * A full garbage collection once the server is idle, after a burst of garbage (a snapshot's encoding, the log it
 * compacted): V8 collects only when the program allocates, so an idle server would otherwise keep that garbage
 * resident for as long as it stays idle (Go's runtime, etcd's, collects and returns memory on a timer). A full
 * collection holds the event loop 30-60 ms with a large heap: never while requests are being served. A busy server
 * allocates, and V8 collects on its own.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

type GC = () => void;
let gc: GC | undefined;

/** The event loop is idle when it was busy less than this share of an IDLE_MS window. */
const IDLE_UTILIZATION = 0.05;
const IDLE_MS = 1000;

let pending: NodeJS.Timeout | undefined;

/**
 * Collects once the event loop has been idle for a whole IDLE_MS window (checked every window until it is). Calls
 * while one is pending add none: at most one collection per burst.
 */
export function collectGarbageWhenIdle(): void {
  if (pending) return;
  let since: EventLoopUtilization = performance.eventLoopUtilization();
  const check = () => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, since).utilization < IDLE_UTILIZATION) {
      pending = undefined;
      collectGarbage();
      return;
    }
    since = now;
    pending = setTimeout(check, IDLE_MS).unref();
  };
  pending = setTimeout(check, IDLE_MS).unref();
}

/** A full collection, run once the caller's turn is over (when what it was holding is garbage too). */
export function collectGarbage(): void {
  if (!gc) {
    // V8's gc() without --expose-gc on the command line: only a new context gets it, the program's globals do not.
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as GC;
    // Off again: contexts made later (a vm script's, a test runner's next file) get no gc() either.
    v8.setFlagsFromString('--no-expose-gc');
  }
  setImmediate(gc!).unref();
}
