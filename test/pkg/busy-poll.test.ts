/**
 * BusyPoll's decisions, on a clock the test moves: when it polls, for how long, when it stops polling (a low hit
 * rate, a CPU it does not get, cores crowded with other work) and when it starts again. The loop's turns are the test's own queue.
 */
import { readFileSync } from 'node:fs';
import { BusyPoll, BusyPollClock, threadRunQueueWaitMs } from '../../server/pkg/busy-poll';

class FakeClock implements BusyPollClock {
  t = 0;
  cpu = 0;
  /** The CPU time a spin is given, as a share of its wall-clock time (1: the CPU is ours). */
  cpuShare = 1;
  queue: (() => void)[] = [];
  turns = 0;
  spun = 0;
  /** The thread's total wait for a core (ms); undefined: the system does not say. */
  waited: number | undefined = 0;
  now(): number {
    return this.t;
  }
  cpuMs(): number {
    return this.cpu;
  }
  soon(fn: () => void): void {
    this.queue.push(fn);
  }
  runQueueWaitMs(): number | undefined {
    return this.waited;
  }
  spin(us: number): void {
    this.t += us / 1000;
    this.cpu += (us / 1000) * this.cpuShare;
    this.spun += us;
  }
  /** Runs the loop's queued turns until none is left, or until `untilMs`; each turn costs 1 µs. */
  run(untilMs = Infinity): void {
    while (this.queue.length > 0 && this.t < untilMs) this.turn();
  }
  /** Runs the next queued turn. */
  turn(): void {
    const fn = this.queue.shift();
    if (!fn) throw new Error('no turn queued');
    this.turns++;
    this.t += 0.001;
    this.cpu += 0.001 * this.cpuShare;
    fn();
  }
  /** Time passing with the loop asleep (no CPU used). */
  sleep(ms: number): void {
    this.t += ms;
  }
}

describe('BusyPoll', () => {
  test('polls through the window, by spins between turns, and stops when the event arrives', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    p.expect(100);
    expect(p.isPolling).toBe(true);
    c.run(0.04); // 40 µs of polling, then the request comes
    expect(p.isPolling).toBe(true);
    p.arrived();
    c.run();
    expect(p.isPolling).toBe(false);
    expect(p.stats).toEqual({ expected: 1, met: 1, polls: 1, contended: 0, crowded: 0 });
    // Spins, not turns, fill the time: at most one turn per 10 µs of spin.
    expect(c.turns).toBeLessThanOrEqual(6);
    expect(c.spun).toBeGreaterThan(30);
  });

  test('a window that ends with nothing stops polling at its end', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    p.expect(100);
    c.run();
    expect(p.isPolling).toBe(false);
    expect(c.t).toBeGreaterThanOrEqual(0.1);
    expect(c.t).toBeLessThan(0.12);
  });

  test('expectations not met stop the polling; met again, it comes back', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    // Clients that pause 1 ms between requests: every window of 100 µs ends with nothing.
    let polls = 0;
    for (let i = 0; i < 40; i++) {
      p.expect(100);
      if (p.isPolling) polls++;
      c.run();
      c.sleep(1);
      p.arrived(); // late
    }
    expect(p.hitRate).toBeLessThan(0.5);
    // It polled for the first ones only (until the rate fell under one in two): about 11 of 40.
    expect(polls).toBeGreaterThan(5);
    expect(polls).toBeLessThan(16);
    const spunWhilePausing = c.spun;
    p.expect(100);
    expect(p.isPolling).toBe(false);
    c.sleep(1);
    p.arrived();
    expect(c.spun).toBe(spunWhilePausing);
    // Now requests come 20 µs after each answer: met even without polling, so the rate climbs back.
    for (let i = 0; i < 40; i++) {
      p.expect(100);
      c.sleep(0.02);
      p.arrived();
      c.run();
    }
    expect(p.hitRate).toBeGreaterThan(0.5);
    p.expect(100);
    expect(p.isPolling).toBe(true);
  });

  test('a poll that did not get the CPU stops polling for a second', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    c.cpuShare = 0.3; // another process has most of the core
    p.expect(500);
    c.run();
    expect(p.stats.contended).toBe(1);
    // Met expectations do not bring it back within the second.
    for (let i = 0; i < 5; i++) {
      p.expect(500);
      expect(p.isPolling).toBe(false);
      c.sleep(0.1);
      p.arrived();
    }
    c.sleep(1000);
    c.cpuShare = 1;
    p.expect(500);
    expect(p.isPolling).toBe(true);
    c.run();
    expect(p.stats.contended).toBe(1);
  });

  test('cores crowded with other work (the thread waits for one much of the time) stop polling for two seconds', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    // One answer a millisecond, each next request 40 µs later. The first reading only starts the window.
    const cycle = (waitedPerMs: number): boolean => {
      p.expect(100);
      const polled = p.isPolling;
      c.run(c.t + 0.04);
      p.arrived();
      c.run();
      c.sleep(1 - (c.t % 1));
      c.waited! += waitedPerMs;
      return polled;
    };
    // Waiting 5% of the time (one busy member beside its load generator): it keeps polling.
    for (let i = 0; i < 600; i++) expect(cycle(0.05)).toBe(true);
    expect(p.stats.crowded).toBe(0);
    // Waiting 30% (three busy members on two cores): within a check (a quarter second) it stops, for two seconds.
    let polled = 0;
    for (let i = 0; i < 2000; i++) if (cycle(0.3)) polled++;
    expect(p.stats.crowded).toBeGreaterThanOrEqual(1);
    expect(polled).toBeLessThan(2000 * 0.2);
    // Room again: within a pause and a check it polls every time.
    for (let i = 0; i < 2500; i++) cycle(0.02);
    for (let i = 0; i < 100; i++) expect(cycle(0.02)).toBe(true);
  });

  test('where the system does not say how long the thread waits, only the other rules apply', () => {
    const c = new FakeClock();
    c.waited = undefined;
    const p = new BusyPoll(c);
    for (let i = 0; i < 600; i++) {
      p.expect(100);
      expect(p.isPolling).toBe(true);
      c.run(c.t + 0.04);
      p.arrived();
      c.run();
      c.sleep(1);
    }
    expect(p.stats.crowded).toBe(0);
  });

  test("the loop thread's wait for a core is the kernel's (Linux: /proc/thread-self/schedstat)", () => {
    const fromKernel = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[1]) / 1e6;
    const before = fromKernel();
    const read = threadRunQueueWaitMs();
    const after = fromKernel();
    expect(read).toBeGreaterThanOrEqual(before);
    expect(read).toBeLessThanOrEqual(after);
    expect(threadRunQueueWaitMs()).toBeGreaterThanOrEqual(read!);
  });

  test('a busy loop only turns: no spin while other events arrive between turns', () => {
    const c = new FakeClock();
    const wal = new BusyPoll(c);
    const clients = new BusyPoll(c);
    wal.expect(500);
    // Requests keep arriving on other connections: every turn has some.
    for (let i = 0; i < 50; i++) {
      clients.arrived();
      c.turn();
    }
    expect(wal.isPolling).toBe(true);
    expect(c.spun).toBe(0);
    // Quiet again: the next empty turn spins.
    c.run(c.t + 0.05);
    expect(c.spun).toBeGreaterThan(20);
  });

  test('a second expectation while one is open extends the window; nothing expected, nothing polled', () => {
    const c = new FakeClock();
    const p = new BusyPoll(c);
    p.arrived(); // nothing was expected: no effect
    expect(p.stats).toEqual({ expected: 0, met: 0, polls: 0, contended: 0, crowded: 0 });
    p.expect(100);
    c.run(0.05);
    p.expect(500); // a WAL write starts while the first is open
    c.run();
    expect(c.t).toBeGreaterThanOrEqual(0.55);
    expect(p.stats.polls).toBe(1);
  });
});
