/**
 * Preloaded into a server under measurement (`node -r dist/bench/loop-lag.js server.js …`, LOOP_LAG_FILE set): its
 * event-loop delay, as perf_hooks samples it every 10 ms. On SIGUSR2 it writes what it saw since the last SIGUSR2
 * (max and percentiles, ms, and a sequence number) to LOOP_LAG_FILE as JSON and starts over: the bench reads one
 * window per load run (bench/snapshot-lag.ts).
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

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
