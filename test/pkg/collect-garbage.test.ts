import { collectGarbage, collectGarbageWhenIdle } from '../../server/pkg/collect-garbage';

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
