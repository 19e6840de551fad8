/**
 * A full garbage collection once the server is idle, after a burst of garbage (a snapshot's encoding, the log it
 * compacted): V8 collects only when the program allocates, so an idle server would otherwise keep that garbage
 * resident for as long as it stays idle (Go's runtime, etcd's, collects and returns memory on a timer). A full
 * collection holds the event loop 30-60 ms with a large heap: never while requests are being served. A busy server
 * allocates, and V8 collects on its own. The same after any burst of requests: a member watches its heap's growth
 * (collectGarbageAfterGrowth) and collects, compacting, once it goes idle.
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
/** Called after the pending collection. */
const afterCollection: (() => void)[] = [];

/**
 * Collects once the event loop has been idle for a whole IDLE_MS window (checked every window until it is). Calls
 * while one is pending add none: at most one collection per burst. `collected` is called after it.
 */
export function collectGarbageWhenIdle(collected?: () => void): void {
  if (collected) afterCollection.push(collected);
  if (pending) return;
  let since: EventLoopUtilization = performance.eventLoopUtilization();
  const check = () => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, since).utilization < IDLE_UTILIZATION) {
      pending = undefined;
      const callbacks = afterCollection.splice(0);
      collectGarbage();
      if (callbacks.length > 0) setImmediate(() => callbacks.forEach((f) => f())).unref();
      return;
    }
    since = now;
    pending = setTimeout(check, IDLE_MS).unref();
  };
  pending = setTimeout(check, IDLE_MS).unref();
}

/** Compaction on every full collection was asked for on node's command line: left on. */
const compactingByUser = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--compact[-_]on[-_]every[-_]full[-_]gc$/.test(a));

/**
 * A full, compacting collection, run once the caller's turn is over (when what it was holding is garbage too). V8's
 * own full collections move objects only out of the pages it judges fragmented enough, so after a burst most pages of
 * the old generation stay resident, each holding a few live objects among the dead; this one moves the live objects
 * together and gives the emptied pages back.
 */
export function collectGarbage(): void {
  if (!gc) {
    // V8's gc() without --expose-gc on the command line: only a new context gets it, the program's globals do not.
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as GC;
    // Off again: contexts made later (a vm script's, a test runner's next file) get no gc() either.
    v8.setFlagsFromString('--no-expose-gc');
  }
  setImmediate(compactingCollection).unref();
}

/** The event loop's pause in the last collection (ms). */
let lastPauseMs = 0;

function compactingCollection(): void {
  const start = performance.now();
  if (compactingByUser) gc!();
  else {
    v8.setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc!();
    } finally {
      v8.setFlagsFromString('--no-compact-on-every-full-gc');
    }
  }
  lastPauseMs = performance.now() - start;
}

/** V8 heap and external memory (Buffers) held, dead objects included until they are collected. */
function heapBytes(): number {
  const h = v8.getHeapStatistics();
  return h.total_heap_size + h.external_memory;
}

/** What is alive right after a full collection: objects (what the next collection marks and moves) and Buffers. */
function alive(): { heap: number; external: number } {
  const h = v8.getHeapStatistics();
  return { heap: h.used_heap_size, external: h.external_memory };
}

/** Growth beyond what the last collection left that is worth a collection once idle (at least). */
export const HEAP_GROWTH_BYTES = 32 * 1024 * 1024;
/**
 * No collection of its own past this many bytes of live objects: a full collection holds the event loop about 2 ms
 * a MiB of them here (36 ms at 15 MiB, 120 at 58, 360 at 178: a compacting gc() of small objects, node 20), and a
 * leader's heartbeats go every 100 ms. V8's own collector, which marks incrementally and concurrently, keeps such a
 * heap.
 */
export const MAX_LIVE_HEAP_BYTES = 64 * 1024 * 1024;

/**
 * Whether a heap of `now` bytes is due a collection, the last one having left `base` bytes of which `live` were alive
 * (objects and Buffers; `liveHeap` of them objects): grown by more than growthPerLive × live and by more than
 * minGrowth, with no more than maxLiveHeap bytes of live objects. Pure.
 */
export function collectionDue(now: number, base: number, live: number, liveHeap: number, minGrowth: number, growthPerLive: number, maxLiveHeap: number = MAX_LIVE_HEAP_BYTES): boolean {
  return liveHeap <= maxLiveHeap && now - base > Math.max(minGrowth, live * growthPerLive);
}

/** What one collection asked for by collectGarbageAfterGrowth did. */
export interface Collection {
  /** heap and external memory before and after (bytes) */
  before: number;
  after: number;
  /** how long the event loop was held (ms) */
  pauseMs: number;
}

/**
 * Watches the heap (checked every IDLE_MS): once it has grown past what the last collection left by half of what was
 * alive then (`growthPerLive`) and by at least `minGrowthBytes`, a collection once idle (collectGarbageWhenIdle). A
 * burst of requests leaves V8's old generation at several times what is alive (it lets it grow while the program
 * allocates fast and collects only when the program allocates again), and an idle or lightly loaded server would keep
 * that resident. Go's collector, etcd's, collects at twice the live heap (GOGC=100) and gives back what it freed; this
 * collects sooner, at one and a half times, since it runs only when the server is idle, where its pause is in nobody's
 * way. `collected` is told of each collection. Returns the function that stops the watch.
 */
export function collectGarbageAfterGrowth(
  o: { collected?: (c: Collection) => void; minGrowthBytes?: number; growthPerLive?: number; maxLiveHeapBytes?: number } = {},
): () => void {
  const { collected, minGrowthBytes = HEAP_GROWTH_BYTES, growthPerLive = 0.5, maxLiveHeapBytes = MAX_LIVE_HEAP_BYTES } = o;
  let base = heapBytes();
  let live = alive();
  let waiting = false;
  const timer = setInterval(() => {
    const now = heapBytes();
    if (now < base) base = now; // V8 collected on its own: growth counts from there
    if (waiting || !collectionDue(now, base, live.heap + live.external, live.heap, minGrowthBytes, growthPerLive, maxLiveHeapBytes)) return;
    waiting = true;
    collectGarbageWhenIdle(() => {
      waiting = false;
      base = heapBytes();
      live = alive();
      collected?.({ before: now, after: base, pauseMs: lastPauseMs });
    });
  }, IDLE_MS).unref();
  return () => clearInterval(timer);
}
