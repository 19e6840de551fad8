/**
 * Short seeded robustness runs in CI: a 3-member cluster under concurrent clients and random faults (kill -9 and
 * restart, SIGSTOP/SIGCONT, partitions, one-way loss; for v3 also SIGTERM and a member removed and added back),
 * every history checked whole: one run with the v2 workload, one with the v3 workload (through gRPC: registers, Txn
 * compare-and-swap, deletes, leases with keep-alives, watchers that reconnect), each with its negative control (stale
 * reads from a cut-off follower) caught by the checker. The seed is printed; ROBUST_SEED=N replays one
 * (ROBUST_SECONDS sets the length of each run). Long runs: `npm run robustness` (README).
 */
import { FAULT_KINDS, type FaultKind } from './faults';
import { DEFAULTS, runRobustness, summary } from './runner';

const seed = Number(process.env.ROBUST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const seconds = Number(process.env.ROBUST_SECONDS ?? 40);
/** ROBUST_FAULTS=kill,stop,... narrows the faults (e.g. to replay one kind). */
const only = process.env.ROBUST_FAULTS?.split(',') as FaultKind[] | undefined;

test(`v2: a seeded run with faults keeps every register linearizable, loses no acknowledged write and ends with equal stores (seed ${seed})`, async () => {
  const lines: string[] = [];
  const report = await runRobustness({
    seed,
    durationMs: seconds * 1000,
    maxOps: 50000,
    clients: 6,
    registers: 4,
    v2: true,
    v3: false,
    faults: only ?? ['kill', 'stop', 'partition', 'oneway'],
    ttl: true,
    requestTimeoutMs: 4000,
    control: true,
    log: (l) => lines.push(l),
  });
  const text = `${summary(report)}\n(replay: ROBUST_SEED=${seed} npx jest test/robustness/robustness.test.ts -t v2)\n${lines.join('\n')}`;
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
}, (seconds + 200) * 1000);

test(`v3: a seeded run with faults keeps every key linearizable, every watch whole, every lease's keys while it lives, and ends with one HashKV (seed ${seed})`, async () => {
  const lines: string[] = [];
  const report = await runRobustness({
    ...DEFAULTS,
    seed,
    durationMs: seconds * 1000,
    maxOps: 50000,
    v2: false,
    v3: { clients: 4, registers: 3, leaseClients: 2, watchers: 2, requestTimeoutMs: 4000 },
    // Every kind, a member removed and added back and a graceful stop (SIGTERM) among them.
    faults: only ?? FAULT_KINDS,
    control: true,
    log: (l) => lines.push(l),
  });
  const text = `${summary(report)}\n(replay: ROBUST_SEED=${seed} npx jest test/robustness/robustness.test.ts -t v3)\n${lines.join('\n')}`;
  console.log(text);
  expect({ seed, violations: report.violations }).toEqual({ seed, violations: [] });
  const v3 = report.v3!;
  // (A member removed and added back, or stopped gracefully, takes 10 to 15 s: fewer faults fit.)
  expect(report.faults.total).toBeGreaterThanOrEqual(2);
  expect(v3.ops.byOutcome.ok).toBeGreaterThan(300);
  expect(v3.linearizability.verdict).toBe('ok');
  expect(v3.linearizability.ops).toBeGreaterThan(100);
  // The watchers moved between members (and across faults), and saw every revision.
  expect(v3.watch.sessions).toBeGreaterThan(2 * v3.watch.watchers);
  expect(v3.watch.revisions).toBeGreaterThan(100);
  // Leases were kept alive, and some expired.
  expect(v3.leases.keepAlives).toBeGreaterThan(5);
  expect(v3.leases.expired).toBeGreaterThan(0);
  expect(v3.members?.hashes.length).toBe(3);
  // The negative control: serializable reads on a cut-off follower were stale, and the checker said so.
  expect(v3.control?.staleReads).toBeGreaterThan(0);
  expect(v3.control?.verdict).toBe('illegal');
  expect(v3.control?.minimal.length).toBeGreaterThanOrEqual(2);
}, (seconds + 300) * 1000);
