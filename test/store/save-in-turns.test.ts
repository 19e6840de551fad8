/**
 * The v2 store's save in turns (what the server's snapshots use): encoded over several turns of the event loop while
 * writes go on, it is exactly the state at its start, byte for byte what save() gave then.
 */
import { V2Store } from '../../server/store';

const T = Date.UTC(2030, 0, 1);
const nextTurn = () => new Promise((r) => setImmediate(r));

/** A store with `n` keys in /bulk (encoded first: created first) and a few of each kind after it. */
function filled(n: number): V2Store {
  const s = new V2Store(() => T);
  for (let i = 0; i < n; i++) s.set(`/bulk/${i}`, false, `b${i}`, { expireTime: 0 });
  s.set('/k/value', false, 'v0', { expireTime: 0 });
  s.set('/k/cas', false, 'c0', { expireTime: 0 });
  s.set('/k/ttl', false, 't0', { expireTime: T + 5000 });
  s.set('/k/expiring', false, 'e0', { expireTime: T + 1000 });
  s.set('/k/replaced', false, 'r0', { expireTime: 0 });
  s.set('/k/gone', false, 'g0', { expireTime: 0 });
  s.set('/tree/a/b/c', false, 'deep', { expireTime: 0 });
  s.set('/dirttl', true, '', { expireTime: T + 9000 });
  s.writeInternal('set', '/0/version', '3.4.0');
  return s;
}

/** Saves in turns of 0 ms; `between` runs between the first two slices (after the first few hundred nodes). */
async function saveWith(s: V2Store, between: () => void): Promise<{ data: Buffer; turns: number }> {
  let done = false;
  let turns = 0;
  const saving = s.saveInTurns(0).then((chunks) => {
    done = true;
    return Buffer.concat(chunks);
  });
  await nextTurn();
  between();
  while (!done) {
    turns++;
    await nextTurn();
  }
  return { data: await saving, turns };
}

test('writes of every kind made while a save is under way are not in it', async () => {
  const s = filled(2000);
  const before = s.save();
  const { data, turns } = await saveWith(s, () => {
    s.update('/k/value', 'v1', { expireTime: 0 });
    s.compareAndSwap('/k/cas', 'c0', 0, 'c1', { expireTime: T + 3000 });
    s.update('/k/ttl', '', { expireTime: T + 60000, refresh: true });
    s.update('/dirttl', '', { expireTime: 0 });
    s.set('/k/replaced', false, 'r1', { expireTime: 0 });
    s.delete('/k/gone', false, false);
    s.delete('/tree', true, true);
    s.create('/k', false, 'queued', true, { expireTime: 0 });
    s.set('/new/dir/key', false, 'n', { expireTime: 0 });
    s.set('/bulk/0', false, 'already encoded', { expireTime: 0 });
    s.set('/bulk/1999', false, 'changed', { expireTime: 0 });
    s.deleteExpiredKeys(T + 1500);
    s.writeInternal('set', '/0/version', '3.5.0');
    s.get('/k/value', false, false);
  });
  expect(turns).toBeGreaterThan(2);
  expect(data.equals(before)).toBe(true);
  // The writes are in the store itself, and in the next save.
  const after = new V2Store(() => T);
  after.recover(s.save());
  expect(after.get('/k/value', false, false).node.value).toBe('v1');
  expect(() => after.get('/tree/a/b/c', false, false)).toThrow();
  expect(after.readInternal('/0/version')).toBe('3.5.0');
  expect(after.currentIndex).toBe(s.currentIndex);
  const old = new V2Store(() => T);
  old.recover(data);
  expect(old.get('/tree/a/b/c', false, false).node.value).toBe('deep');
  expect(old.get('/k/expiring', false, false).node.value).toBe('e0');
  expect(old.readInternal('/0/version')).toBe('3.4.0');
});

test('one save in turns at a time; the store is back to plain writes after it', async () => {
  const s = filled(1000);
  const first = s.saveInTurns(0);
  expect(s.saving).toBe(true);
  expect(() => s.saveInTurns(0)).toThrow(/under way/);
  await first;
  expect(s.saving).toBe(false);
  // Synchronous saves during one give the state of the moment.
  const second = s.saveInTurns(0);
  s.set('/during', false, 'x', { expireTime: 0 });
  const now = s.save();
  await second;
  const r = new V2Store(() => T);
  r.recover(now);
  expect(r.get('/during', false, false).node.value).toBe('x');
});

test('a snapshot recovered while a save is under way leaves the save with the state at its start', async () => {
  const s = filled(2000);
  const before = s.save();
  const other = new V2Store(() => T);
  other.set('/elsewhere', false, 'y', { expireTime: 0 });
  const { data } = await saveWith(s, () => {
    s.recover(other.save());
    s.set('/elsewhere', false, 'z', { expireTime: 0 });
  });
  expect(data.equals(before)).toBe(true);
  expect(s.get('/elsewhere', false, false).node.value).toBe('z');
});
