/**
 * A short seeded robustness run in CI: a 3-member cluster under concurrent v2 clients and random faults (kill -9 and
 * restart, SIGSTOP/SIGCONT, partitions, one-way loss), every history checked whole; and the negative control, stale
 * reads from a cut-off follower, caught by the checker. The seed is printed; ROBUST_SEED=N replays one
 * (ROBUST_SECONDS sets the length). Long runs: `npm run robustness` (README).
 */
import { runRobustness, summary } from './runner';

const seed = Number(process.env.ROBUST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const seconds = Number(process.env.ROBUST_SECONDS ?? 40);

test(`a seeded run with faults keeps every register linearizable, loses no acknowledged write and ends with equal stores (seed ${seed})`, async () => {
  const lines: string[] = [];
  const report = await runRobustness({
    seed,
    durationMs: seconds * 1000,
    maxOps: 50000,
    clients: 6,
    registers: 4,
    faults: ['kill', 'stop', 'partition', 'oneway'],
    ttl: true,
    requestTimeoutMs: 4000,
    control: true,
    log: (l) => lines.push(l),
  });
  const text = `${summary(report)}\n(replay: ROBUST_SEED=${seed} npx jest test/robustness/robustness.test.ts)\n${lines.join('\n')}`;
  console.log(text);
  // Each violation is printed whole (with the smallest illegal fragment of a register's history).
  expect({ seed, violations: report.violations }).toEqual({ seed, violations: [] });
  // The run did what it is for: faults of every kind were injected under load, and the checker had work.
  expect(report.faults.total).toBeGreaterThanOrEqual(4);
  expect(report.ops.byOutcome.ok).toBeGreaterThan(300);
  expect(report.linearizability?.verdict).toBe('ok');
  expect(report.linearizability?.ops).toBeGreaterThan(100);
  // The negative control: reads without quorum=true from a follower cut off from the leader were stale after an
  // acknowledged write, and the checker said so.
  expect(report.control?.staleReads).toBeGreaterThan(0);
  expect(report.control?.verdict).toBe('illegal');
  expect(report.control?.minimal.length).toBeGreaterThanOrEqual(2);
}, (seconds + 110) * 1000);
