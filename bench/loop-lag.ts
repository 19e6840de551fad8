/**
 * Preloaded into a server under measurement (`node -r dist/bench/loop-lag.js server.js …`, LOOP_LAG_FILE set): its
 * event-loop delay, as perf_hooks samples it every 10 ms. On SIGUSR2 it writes what it saw since the last SIGUSR2
 * (max and percentiles, ms, and a sequence number) to LOOP_LAG_FILE as JSON and starts over: the bench reads one
 * window per load run (bench/snapshot-lag.ts). With LOOP_LAG_TRACE=1 it also prints each stall and GC pause as it
 * happens.
 */
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.LOOP_LAG_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let seq = 0;
  process.on('SIGUSR2', () => {
    const ms = (ns: number) => ns / 1e6;
    writeFileSync(file, JSON.stringify({ seq: ++seq, maxMs: ms(h.max), p99Ms: ms(h.percentile(99)), p999Ms: ms(h.percentile(99.9)), meanMs: ms(h.mean) }));
    h.reset();
  });
}

// LOOP_LAG_TRACE=1: every stall of the loop over 20 ms and every GC pause over 5 ms, to stderr, as they happen.
if (process.env.LOOP_LAG_TRACE === '1') {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.duration > 5) process.stderr.write(`LAG gc ${(e as unknown as { detail?: { kind?: number } }).detail?.kind} ${e.duration.toFixed(1)} ms\n`);
  }).observe({ entryTypes: ['gc'] });
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (now - last > 25) process.stderr.write(`LAG loop ${(now - last - 5).toFixed(1)} ms\n`);
    last = now;
  }, 5).unref();
}
