import { SimOptions, Simulation } from './simulation';

/**
 * Many seeds of the deterministic simulation. A failure names its seed and options; replay one with
 *   SIM_SEED=<seed> npx jest test/raft/simulation
 */
const SEEDS = Number(process.env.SIM_SEEDS ?? 200);
const ONLY = process.env.SIM_SEED !== undefined ? Number(process.env.SIM_SEED) : undefined;

const base: SimOptions = {
  nodes: 3,
  chaosTicks: 600,
  preVote: true,
  checkQuorum: true,
  lossRate: 0.05,
  dupRate: 0.02,
  maxDelay: 3,
  crashRate: 0.01,
  partitionRate: 0.01,
  proposeRate: 0.6,
  readRate: 0.2,
  maxSizePerMsg: 4096,
  snapshotEvery: 25,
  confChangeRate: 0,
  livenessBound: 400,
};

const configs: { name: string; opts: SimOptions }[] = [
  { name: '3 nodes, PreVote + CheckQuorum', opts: { ...base } },
  { name: '5 nodes, PreVote + CheckQuorum', opts: { ...base, nodes: 5 } },
  { name: '3 nodes, plain Raft, heavy loss', opts: { ...base, preVote: false, checkQuorum: false, lossRate: 0.2, dupRate: 0.05 } },
  { name: '5 nodes, PreVote only, many crashes', opts: { ...base, nodes: 5, checkQuorum: false, crashRate: 0.03, partitionRate: 0.02 } },
  // Members removed, added (as voters or learners) and promoted, one at a time, under the same faults.
  { name: '3-7 nodes, membership changes', opts: { ...base, confChangeRate: 0.03 } },
  // One entry per append and short leaderships: the conditions of the paper's Figure 8 (an entry of an older term
  // replicated to a majority by a later leader must not count as committed until an entry of its own term does).
  {
    name: '5 nodes, one entry per append, leader churn',
    opts: { ...base, nodes: 5, maxSizePerMsg: 1, crashRate: 0.05, lossRate: 0.1, maxDelay: 6, proposeRate: 0.3, snapshotEvery: 8 },
  },
];

describe.each(configs)('deterministic simulation: $name', ({ opts }) => {
  const seeds = ONLY !== undefined ? [ONLY] : Array.from({ length: SEEDS }, (_, i) => i + 1);
  test(`${seeds.length} seeds × ${opts.chaosTicks} ticks of chaos, then heal`, () => {
    const totals = { committed: 0, leaderChanges: 0, crashes: 0, snapshotsSent: 0, readsServed: 0, acked: 0, membersAdded: 0, membersRemoved: 0, appliedEarly: 0, sentEarly: 0 };
    for (const seed of seeds) {
      let r;
      try {
        r = new Simulation(seed, opts).run();
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(`simulation failed with seed ${seed} (replay: SIM_SEED=${seed} npx jest test/raft/simulation): ${msg}\noptions: ${JSON.stringify(opts)}`);
      }
      totals.committed += r.committed;
      totals.leaderChanges += r.leaderChanges;
      totals.crashes += r.crashes;
      totals.snapshotsSent += r.snapshotsSent;
      totals.readsServed += r.readsServed;
      totals.acked += r.acked;
      totals.membersAdded += r.membersAdded;
      totals.membersRemoved += r.membersRemoved;
      totals.appliedEarly += r.appliedEarly;
      totals.sentEarly += r.sentEarly;
    }
    // The faults must actually have happened, or the run proves little.
    expect(totals.crashes).toBeGreaterThan(0);
    expect(totals.leaderChanges).toBeGreaterThan(seeds.length);
    expect(totals.acked).toBeGreaterThan(0);
    if (ONLY === undefined) {
      expect(totals.snapshotsSent).toBeGreaterThan(0);
      expect(totals.readsServed).toBeGreaterThan(0);
      // The server's between-Readies paths (early apply, a leader's early sends) were taken too.
      expect(totals.appliedEarly).toBeGreaterThan(0);
      expect(totals.sentEarly).toBeGreaterThan(0);
      if (opts.confChangeRate > 0) {
        expect(totals.membersAdded).toBeGreaterThan(seeds.length);
        expect(totals.membersRemoved).toBeGreaterThan(seeds.length);
      }
    }
    if (process.env.SIM_VERBOSE) console.log(JSON.stringify(totals));
  });
});
