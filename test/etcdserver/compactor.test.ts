/**
 * Auto compaction as etcd 3.4's v3compactor: which revision is compacted when, in periodic and revision mode, only
 * on the leader, with a simulated clock (the timers are the compactor's only source of time).
 */
import { Compactor, CompactorDeps, REVISION_INTERVAL_MS, parseCompactionRetention } from '../../server/etcdserver/compactor';

const HOUR = 3600_000;
const MIN = 60_000;

/** A clock and its timers, advanced by the test; the store's revision grows by `perMinute` each simulated minute. */
function harness(o: Pick<CompactorDeps, 'mode' | 'retention'>, perMinute = 10) {
  let now = 0;
  let leader = true;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  const compacted: { at: number; rev: number }[] = [];
  const deps: CompactorDeps = {
    ...o,
    rev: () => 1 + Math.floor((now / MIN) * perMinute),
    compact: async (rev) => void compacted.push({ at: now, rev }),
    isLeader: () => leader,
    log: () => undefined,
    now: () => now,
    setTimer: (fn, ms) => {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return { clear: () => void (t.live = false) };
    },
  };
  const c = new Compactor(deps);
  return {
    c,
    compacted,
    setLeader: (v: boolean) => void (leader = v),
    /** Runs every timer due up to `to`, in order, letting each one's async work settle. */
    async advanceTo(to: number) {
      for (;;) {
        const due = timers.filter((t) => t.live && t.at <= to).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        due.live = false;
        now = due.at;
        due.fn();
        for (let i = 0; i < 5; i++) await Promise.resolve();
      }
      now = to;
    },
  };
}

describe("--auto-compaction-retention as etcd's parseCompactionRetention reads it", () => {
  test('a plain number is hours (periodic) or revisions (revision); otherwise a Go duration', () => {
    expect(parseCompactionRetention('periodic', '1')).toBe(HOUR);
    expect(parseCompactionRetention('periodic', '0')).toBe(0);
    expect(parseCompactionRetention('periodic', '30m')).toBe(30 * MIN);
    expect(parseCompactionRetention('periodic', '1h30m')).toBe(90 * MIN);
    expect(parseCompactionRetention('revision', '1000')).toBe(1000);
    expect(() => parseCompactionRetention('periodic', 'ten')).toThrow(/^error parsing CompactionRetention: time: invalid duration "ten"$/);
    expect(() => parseCompactionRetention('revision', '1h')).toThrow(/error parsing CompactionRetention/);
  });
});

test('periodic, 1 hour: the first compaction after an hour at the revision of an hour ago, then hourly', async () => {
  const h = harness({ mode: 'periodic', retention: HOUR });
  h.c.start();
  await h.advanceTo(HOUR - 1);
  expect(h.compacted).toEqual([]);
  await h.advanceTo(HOUR);
  // Noted every 6 minutes; at 60 min the oldest of the 11 kept is the one noted at 0 (revision 1).
  expect(h.compacted).toEqual([{ at: HOUR, rev: 1 }]);
  await h.advanceTo(2 * HOUR);
  // Then every hour, at the oldest revision kept: noted 11 notes (66 minutes) before, as etcd's revs[0].
  expect(h.compacted).toEqual([{ at: HOUR, rev: 1 }, { at: 2 * HOUR, rev: 1 + 54 * 10 }]);
  h.c.stop();
  await h.advanceTo(5 * HOUR);
  expect(h.compacted).toHaveLength(2);
});

test('periodic, 10 minutes: compacts every 10 minutes at the oldest revision noted (one a minute, 11 kept)', async () => {
  const h = harness({ mode: 'periodic', retention: 10 * MIN });
  h.c.start();
  await h.advanceTo(30 * MIN);
  expect(h.compacted).toEqual([
    { at: 10 * MIN, rev: 1 },
    { at: 20 * MIN, rev: 1 + 9 * 10 },
    { at: 30 * MIN, rev: 1 + 19 * 10 },
  ]);
});

test('revision mode: every 5 minutes at the current revision minus the retention, when it moved on', async () => {
  const h = harness({ mode: 'revision', retention: 100 }, 10);
  h.c.start();
  await h.advanceTo(REVISION_INTERVAL_MS * 3);
  // At 5 min the revision is 51: 51 - 100 < 0, nothing; at 10 min 101 → 1; at 15 min 151 → 51.
  expect(h.compacted).toEqual([
    { at: 10 * MIN, rev: 1 },
    { at: 15 * MIN, rev: 51 },
  ]);
});

test('a follower does not compact; it starts when it becomes the leader', async () => {
  const h = harness({ mode: 'revision', retention: 10 });
  h.setLeader(false);
  h.c.start();
  await h.advanceTo(30 * MIN);
  expect(h.compacted).toEqual([]);
  h.setLeader(true);
  await h.advanceTo(35 * MIN);
  expect(h.compacted).toEqual([{ at: 35 * MIN, rev: 1 + 35 * 10 - 10 }]);
});

test('no retention, no compactor', async () => {
  const h = harness({ mode: 'periodic', retention: 0 });
  h.c.start();
  await h.advanceTo(10 * HOUR);
  expect(h.compacted).toEqual([]);
});
