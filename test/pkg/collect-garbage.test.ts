import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Collection, MAX_LIVE_HEAP_BYTES, collectGarbage, collectGarbageAfterGrowth, collectionDue, collectGarbageWhenIdle } from '../../server/pkg/collect-garbage';

const nextTurn = () => new Promise((r) => setImmediate(r));

test('garbage is collected once the caller\'s turn is over, without gc() showing up among the program\'s globals', async () => {
  let garbage: number[] | undefined = new Array(100000).fill(1);
  const ref = new WeakRef(garbage);
  garbage = undefined;
  collectGarbage();
  await nextTurn();
  await nextTurn();
  expect(ref.deref()).toBeUndefined();
  expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  // Asked again, it collects again.
  let more: number[] | undefined = new Array(1000).fill(2);
  const ref2 = new WeakRef(more);
  more = undefined;
  collectGarbage();
  await nextTurn();
  await nextTurn();
  expect(ref2.deref()).toBeUndefined();
});

test('asked to collect when idle, it waits while the event loop is busy, then collects once it is idle', async () => {
  // A large array lives outside the young generation: only a full collection frees it.
  let garbage: number[] | undefined = new Array(200000).fill(3);
  const ref = new WeakRef(garbage);
  garbage = undefined;
  collectGarbageWhenIdle();
  collectGarbageWhenIdle();
  // Busy (turns that compute without allocating, as a server under load is busy) for 2.5 s: no collection.
  const busyUntil = Date.now() + 2500;
  while (Date.now() < busyUntil) {
    const t = Date.now() + 20;
    while (Date.now() < t) {
      // busy
    }
    await nextTurn();
  }
  expect(ref.deref()).toBeDefined();
  // Idle: collected within a couple of seconds.
  const deadline = Date.now() + 5000;
  while (ref.deref() !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(ref.deref()).toBeUndefined();
}, 15000);

test('after the heap has grown, a collection once idle gives the old generation\'s half-empty pages back (compacting)', async () => {
  const oldSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_size;
  // V8's own full collection, as V8 runs it (it moves objects out of only the emptiest pages, a few MB at most).
  v8.setFlagsFromString('--expose-gc');
  const plainGC = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  plainGC();
  const before = oldSpace();
  const collections: Collection[] = [];
  const stop = collectGarbageAfterGrowth({ minGrowthBytes: 8 * 1024 * 1024, growthPerLive: 0, maxLiveHeapBytes: Infinity, collected: (c) => collections.push(c) });
  try {
    // A burst: 600,000 small objects, alive long enough to be moved to the old generation (scavenges survived).
    let burst: { i: number; s: string }[] | undefined = [];
    for (let i = 0; i < 600000; i++) burst.push({ i, s: `value ${i}` });
    for (let round = 0; round < 10; round++) {
      new Array(100000).fill(0).map((x, i) => ({ x, i })); // young garbage: scavenges
      await nextTurn();
    }
    plainGC();
    const full = oldSpace();
    // The burst ends; every other object stays alive: every page the burst filled is half empty.
    const kept = burst.filter((_, i) => i % 2 === 0);
    const dropped = new WeakRef(burst[1]);
    burst = undefined;
    const deadline = Date.now() + 10000;
    while (dropped.deref() !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(dropped.deref()).toBeUndefined();
    await nextTurn();
    // The live half moved together: the pages that held the other half (of what the burst took) are given back.
    const burstBytes = full - before;
    expect(burstBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(full - oldSpace()).toBeGreaterThan(burstBytes * 0.3);
    expect(kept.length).toBe(300000);
    // Reported: one collection, which gave memory back.
    expect(collections).toHaveLength(1);
    expect(collections[0].after).toBeLessThan(collections[0].before);
  } finally {
    stop();
  }
}, 20000);

test.each([
  // now, base, live, of which objects (MiB), due?
  [100, 60, 30, 20, true, 'grown 40 MiB with 30 alive: past the 32 MiB floor and half of what is alive'],
  [90, 60, 20, 10, false, 'grown 30 MiB with 20 alive: not past the 32 MiB floor'],
  [200, 60, 100, 50, true, 'grown 140 MiB with 100 alive'],
  [100, 60, 100, 50, false, 'grown 40 MiB with 100 alive: not yet half of it'],
  [1000, 300, 200, MAX_LIVE_HEAP_BYTES / 2 ** 20 + 1, false, 'more live objects than a pause is allowed for'],
] as [number, number, number, number, boolean, string][])('collectionDue(now %d, base %d, live %d MiB, %d of objects) is %s: %s', (now, base, live, liveHeap, due) => {
  const M = 2 ** 20;
  expect(collectionDue(now * M, base * M, live * M, liveHeap * M, 32 * M, 0.5)).toBe(due);
});
