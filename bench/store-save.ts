/**
 * How long a snapshot of the v2 store holds the event loop (issue 19), in one process, without a server: a store of
 * N keys (100-byte values under one directory, as bench/run.ts fills it) saved all at once (save() and the snapshot
 * container, as every snapshot was taken before) and in turns (saveInTurns() and the container copied in turns, as
 * the server takes them now), with a ticker on the event loop that records the longest gap between its turns.
 * Both must give the same bytes.
 *
 *   npm run build && node dist/bench/store-save.js            # 100,000 and 250,000 keys
 *   BENCH_SAVE_KEYS=50000,200000 BENCH_SAVE_ROUNDS=5 node dist/bench/store-save.js
 */
import { PART_MEMBERSHIP, PART_V2STORE, encodeSnapshotData, encodeSnapshotDataInTurns } from '../server/etcdserver/snapshot-data';
import { V2Store } from '../server/store';
import { median } from './v3';

const KEYS = (process.env.BENCH_SAVE_KEYS ?? '100000,250000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_SAVE_ROUNDS ?? 5);

/** Runs `work` while a ticker counts the event loop's turns; the longest gap between two turns, and the total time. */
async function ticking<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number; totalMs: number; turns: number }> {
  let done = false;
  let last = performance.now();
  let maxGapMs = 0;
  let turns = 0;
  const tick = () => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    turns++;
    if (!done) setImmediate(tick);
  };
  const t0 = performance.now();
  setImmediate(tick);
  const result = await work();
  done = true;
  const totalMs = performance.now() - t0;
  maxGapMs = Math.max(maxGapMs, performance.now() - last);
  return { result, maxGapMs, totalMs, turns };
}

async function main(): Promise<void> {
  console.log(`v2 store snapshot: the longest hold of the event loop, medians of ${ROUNDS} rounds (node ${process.version})`);
  console.log('   keys     MB | all at once: held ms | in turns: longest turn ms  total ms  turns');
  for (const n of KEYS) {
    const s = new V2Store();
    const value = 'v'.repeat(100);
    for (let i = 0; i < n; i++) s.set(`/bench/run/0/${i}`, false, value, { expireTime: 0 });
    const membership = Buffer.from('{}');
    const once: number[] = [];
    const gaps: number[] = [];
    const totals: number[] = [];
    const turns: number[] = [];
    let mb = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const a = await ticking(async () => encodeSnapshotData(new Map([[PART_MEMBERSHIP, membership], [PART_V2STORE, s.save()]])));
      once.push(a.maxGapMs);
      const b = await ticking(async () => encodeSnapshotDataInTurns(new Map<string, Buffer | Buffer[]>([[PART_MEMBERSHIP, membership], [PART_V2STORE, await s.saveInTurns()]])));
      if (!b.result.equals(a.result)) throw new Error('the save in turns differs from the save at once');
      gaps.push(b.maxGapMs);
      totals.push(b.totalMs);
      turns.push(b.turns);
      mb = a.result.length / 1048576;
    }
    console.log(`${String(n).padStart(7)} ${mb.toFixed(1).padStart(6)} | ${median(once).toFixed(1).padStart(20)} | ${median(gaps).toFixed(1).padStart(25)} ${median(totals).toFixed(1).padStart(9)} ${median(turns).toFixed(0).padStart(6)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
