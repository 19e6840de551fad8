import { collectGarbage } from '../../server/pkg/collect-garbage';

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
