/**
 * The leadership check before lease renewals and revocations: one ReadIndex round at a time, a caller that comes
 * during a round waits for the next one (the one in flight began before it asked), and a round that fails says no.
 */
import { LeadershipCheck } from '../../server/etcdserver/v3-lease';

test('callers during a round share the next one; a failed round answers false', async () => {
  const rounds: { resolve: (v: boolean) => void; reject: (e: Error) => void }[] = [];
  const check = new LeadershipCheck(() => new Promise<boolean>((resolve, reject) => rounds.push({ resolve, reject })));
  const a = check.confirm();
  const b = check.confirm();
  const c = check.confirm();
  expect(rounds).toHaveLength(1);
  rounds[0].resolve(true);
  expect(await a).toBe(true);
  // b and c asked after the first round began: one more round for both of them
  await new Promise(setImmediate);
  expect(rounds).toHaveLength(2);
  rounds[1].reject(new Error('no quorum'));
  expect([await b, await c]).toEqual([false, false]);
  // idle again: the next caller starts a round of its own
  const d = check.confirm();
  expect(rounds).toHaveLength(3);
  rounds[2].resolve(false);
  expect(await d).toBe(false);
});
