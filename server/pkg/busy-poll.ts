/**
 * Busy polling: when the event loop expects an event very soon — a client's next request right after its answer,
 * the end of a WAL write — it keeps polling for it (epoll with a zero timeout, which a pending setImmediate gives)
 * until then, instead of going to sleep in epoll_wait and being woken by the kernel.
 *
 * Why: on this machine (a 2-core VM) a sleep and a wake-up cost more than the work of a request. A v2 GET at one
 * connection (wrk) took 80 µs a round trip; polling for the next request instead, 41 µs. With `npm run bench`
 * (medians of 3 pairs), v2 GET at one connection went from 0.87-0.98 to 1.55-1.79× etcd's rate and PUT from
 * 1.01-1.04 to 1.17-1.32×. Go's scheduler spins before it parks a thread, which is where etcd spends its extra CPU.
 *
 * How: a setImmediate keeps the loop's next poll for I/O from sleeping. Between two such turns, when the last one
 * brought nothing, it spins for up to 10 µs (a turn allocates, so turns back to back would feed the young
 * collector); when the loop is busy anyway (something arrived since the last turn: a request, a peer's messages) it
 * does not spin, and only its turns are added.
 *
 * It is bounded three ways:
 * - Each expectation has a window (BusyPoll.ANSWER_US, BusyPoll.WAL_WRITE_US); polling stops when the event arrives
 *   or the window ends.
 * - It polls only while polling pays: every expectation is scored, polled for or not, by whether its event came
 *   within its window (an average over the last 16 or so). Below one in two, nothing is polled for, so a slow disk or
 *   clients that pause between requests cost no CPU.
 * - It stops for a second when the CPU is not its own: a poll that got less than half of the wall-clock time it
 *   lasted as CPU time (other processes on the same cores, a container's CPU quota throttling it).
 * - It stops for two seconds when the cores are crowded: when the event loop's thread spent more than 15% of the last
 *   quarter second or so runnable but waiting for a core (Linux's /proc/thread-self/schedstat). A spin then takes a
 *   core from a process that has work, and a poll gets its CPU, so the rule above does not see it. Three members of
 *   one cluster on this 2-core machine wait 19-34% of the time under load (and ran 15-20% more writes without
 *   polling); one member under wrk, 0.2-6%.
 *
 * An idle member expects nothing, so it never polls.
 */

import { openSync, readSync } from 'node:fs';

export interface BusyPollClock {
  /** Milliseconds, monotonic (performance.now). */
  now(): number;
  /** This process's CPU time in milliseconds (user and system). */
  cpuMs(): number;
  /** Runs fn after the loop's next poll for I/O (setImmediate: that poll does not sleep). */
  soon(fn: () => void): void;
  /** Busy for about `us` microseconds, without turning the event loop. */
  spin(us: number): void;
  /**
   * Milliseconds the calling thread has spent runnable but waiting for a core, since it started; undefined where the
   * system does not say.
   */
  runQueueWaitMs(): number | undefined;
}

/**
 * The event loop thread's wait for a core: the second field of /proc/thread-self/schedstat (nanoseconds), read with
 * one pread of a file kept open (opened from the loop's thread, so it stays that thread's) into a buffer kept too.
 */
export function threadRunQueueWaitMs(): number | undefined {
  if (schedstatFd === undefined) {
    try {
      schedstatFd = openSync('/proc/thread-self/schedstat', 'r');
    } catch {
      schedstatFd = -1; // not Linux, or a kernel without schedstats
    }
  }
  if (schedstatFd < 0) return undefined;
  let n = 0;
  try {
    n = readSync(schedstatFd, schedstatBuf, 0, schedstatBuf.length, 0);
  } catch {
    return undefined;
  }
  // "<run ns> <wait ns> <timeslices>\n": the digits after the first space.
  let i = schedstatBuf.indexOf(32);
  if (i < 0 || i >= n) return undefined;
  let ns = 0;
  for (i++; i < n; i++) {
    const c = schedstatBuf[i];
    if (c < 48 || c > 57) break;
    ns = ns * 10 + (c - 48);
  }
  return ns / 1e6;
}
let schedstatFd: number | undefined;
const schedstatBuf = Buffer.alloc(96);

const nodeClock: BusyPollClock = {
  now: () => performance.now(),
  cpuMs: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  },
  soon: (fn) => void setImmediate(fn),
  spin: (us) => {
    const end = performance.now() + us / 1000;
    let checks = 0;
    do {
      for (let i = 0; i < spinStepsPerCheck; i++) spinSink = (spinSink + i) & 0xffff;
      checks++;
    } while (performance.now() < end);
    // About one clock read every SPIN_CHECK_US, whatever the speed of the code (interpreted at first, optimised later).
    if (checks > (2 * us) / SPIN_CHECK_US) spinStepsPerCheck *= 2;
    else if (checks < us / 2 / SPIN_CHECK_US && spinStepsPerCheck > 16) spinStepsPerCheck /= 2;
  },
  runQueueWaitMs: threadRunQueueWaitMs,
};

/**
 * The clock is read between runs of steps: each read of performance.now() allocates its number (16 bytes), and read
 * back to back through a 250 µs WAL write that was 28 KB a write.
 */
let spinStepsPerCheck = 64;
const SPIN_CHECK_US = 2;
/** What the spin computes (kept so that it is not optimised away), always a small integer: no number allocated. */
let spinSink = 0;

/** Events arrived, for every BusyPoll: what tells a poll that the loop is busy. */
let arrivals = 0;

/** Something else arrived (a peer's Raft messages): a busy loop, for every BusyPoll's next turn. */
export function noteArrival(): void {
  arrivals++;
}

/** Requests begun: a client's request, a read of a peer's Raft messages. */
let requests = 0;

/** A request begins (noteRequest) — the WAL's measure of how many clients the loop is serving at once. */
export function noteRequest(): void {
  requests++;
}

/** Requests begun so far. */
export function requestCount(): number {
  return requests;
}

/** How many recent expectations the score averages over, about. */
const SCORE_WEIGHT = 1 / 16;
/** Below this share of expectations met in their window, nothing is polled for. */
const MIN_SCORE = 0.5;
/**
 * Between two polls of the loop, a spin this long (µs). A poll is a turn of the event loop with a setImmediate (about
 * 1 µs here), and each allocates one: polling back to back through a WAL write allocated more than the write itself
 * and doubled the young collections (0.7 ms each), which showed in p99. An event that comes during the spin waits for
 * its end.
 */
const SPIN_SLICE_US = 10;
/** A poll this long or longer is checked for CPU it did not get. */
const CONTENTION_CHECK_MS = 0.2;
/** How long polling stops after a poll that did not get the CPU. */
const CONTENTION_PAUSE_MS = 1000;
/** How often (ms, at most) the thread's wait for a core is read, and the window it is measured over. */
const CROWD_CHECK_MS = 250;
/** Above this share of the window spent waiting for a core, the cores are crowded. */
const CROWDED_SHARE = 0.15;
/** How long polling stops when they are. */
const CROWDED_PAUSE_MS = 2000;

export class BusyPoll {
  /** A client's next request after its answer (a closed-loop client on loopback: 30-60 µs here). */
  static readonly ANSWER_US = 100;
  /** A WAL write with O_DSYNC (200-300 µs on this machine's disk). */
  static readonly WAL_WRITE_US = 500;

  /** The end of the open expectation's window (ms, the clock's). */
  private end = 0;
  /** An expectation whose event has not arrived yet. */
  private open = false;
  private score = 1;
  private polling = false;
  private pollStart = 0;
  private pollCpu = 0;
  private pausedUntil = 0;
  /** `arrivals` at the last turn. */
  private arrivalsSeen = -1;
  /** When the wait for a core was last read (the clock's ms; -Infinity: never), and what it was then. */
  private crowdCheckAt = -Infinity;
  private crowdWaitMs = 0;
  readonly stats = { expected: 0, met: 0, polls: 0, contended: 0, crowded: 0 };

  constructor(private readonly clock: BusyPollClock = nodeClock) {}

  /** The share of recent expectations met within their window (0..1). */
  get hitRate(): number {
    return this.score;
  }

  get isPolling(): boolean {
    return this.polling;
  }

  /** An event is expected within `us` microseconds: poll for it until then, if that has been paying. */
  expect(us: number): void {
    let now = this.clock.now();
    if (now - this.crowdCheckAt >= CROWD_CHECK_MS) {
      this.checkCrowding(now);
      now = this.clock.now(); // after the read, so that its time is not inside the poll's measure of the CPU it got
    }
    if (this.open && now > this.end) this.record(false);
    const end = now + us / 1000;
    if (!this.open || end > this.end) this.end = end;
    this.open = true;
    this.stats.expected++;
    if (this.polling || this.score < MIN_SCORE || now < this.pausedUntil) return;
    this.polling = true;
    this.stats.polls++;
    this.pollStart = now;
    this.pollCpu = this.clock.cpuMs();
    this.clock.soon(this.poll);
  }

  /** What was expected happened (a request was read, a write finished). */
  arrived(): void {
    arrivals++;
    if (!this.open) return;
    this.open = false;
    this.record(this.clock.now() <= this.end);
  }

  /** Stops polling for a while when the loop's thread waited for a core for much of the time since the last check. */
  private checkCrowding(now: number): void {
    const wait = this.clock.runQueueWaitMs();
    if (wait === undefined) {
      this.crowdCheckAt = Infinity; // never again
      return;
    }
    const window = now - this.crowdCheckAt;
    // A first reading, or one after a long quiet spell, only starts a window.
    if (window <= 4 * CROWD_CHECK_MS && wait - this.crowdWaitMs > CROWDED_SHARE * window) {
      this.pausedUntil = Math.max(this.pausedUntil, now + CROWDED_PAUSE_MS);
      this.stats.crowded++;
    }
    this.crowdCheckAt = now;
    this.crowdWaitMs = wait;
  }

  private record(met: boolean): void {
    this.score += SCORE_WEIGHT * ((met ? 1 : 0) - this.score);
    if (met) this.stats.met++;
  }

  private readonly poll = (): void => {
    const now = this.clock.now();
    if (this.open && now < this.end) {
      // A busy loop (something arrived since the last turn, for this or another BusyPoll) only turns: the next poll
      // for I/O comes soon enough, and a spin would hold back what is waiting. An empty turn spins before the next.
      if (arrivals === this.arrivalsSeen) this.clock.spin(Math.min((this.end - now) * 1000, SPIN_SLICE_US));
      this.arrivalsSeen = arrivals;
      this.clock.soon(this.poll);
      return;
    }
    this.polling = false;
    const wall = now - this.pollStart;
    if (wall >= CONTENTION_CHECK_MS && this.clock.cpuMs() - this.pollCpu < wall / 2) {
      this.pausedUntil = now + CONTENTION_PAUSE_MS;
      this.stats.contended++;
    }
  };
}

/**
 * Client connections' (v2 over HTTP/1.1, gRPC over HTTP/2): after an answer, the next request. One for all of them,
 * as any connection's request ends the wait. Other waits keep their own (the WAL's), so that each is scored alone.
 */
export const clientPoll = new BusyPoll();
