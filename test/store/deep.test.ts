/**
 * The v2 store with keys thousands of levels deep (issue 11: one such key used to crash every member at its next
 * snapshot): reads, listings, deletes, expiry, watches and snapshots at any depth, memory linear in the key, and
 * snapshots of the earlier release (format 1) still recovered as that release read them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { NodeExtern, V2Event, V2Store, eventJSON } from '../../server/store';

const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);
const none = { expireTime: 0 };
const chain = (levels: number) => '/a'.repeat(levels);

/** The chain of directories of a listing, followed with a loop: [depth, key of the bottom node]. */
function bottom(n: NodeExtern): [number, NodeExtern] {
  let depth = 0;
  while (n.nodes) {
    expect(n.nodes).toHaveLength(1);
    n = n.nodes[0];
    depth++;
  }
  return [depth, n];
}

test('a key 5,000 levels deep is written, read, listed (sorted or not), snapshotted, recovered and deleted', () => {
  const s = new V2Store(() => NOW);
  const key = `/deep${chain(5000)}`;
  const put = s.set(key, false, 'x', none);
  expect(put.isCreated()).toBe(true);
  expect(s.get(key, false, false).node).toEqual({ key, value: 'x', modifiedIndex: 1, createdIndex: 1 });
  for (const sorted of [false, true]) {
    const text = eventJSON(s.get('/', true, sorted));
    const answer = JSON.parse(text) as { action: string; node: NodeExtern };
    expect(answer.action).toBe('get');
    const [depth, leaf] = bottom(answer.node);
    expect([depth, leaf]).toEqual([5001, { key, value: 'x', modifiedIndex: 1, createdIndex: 1 }]);
  }
  const s2 = new V2Store(() => NOW);
  s2.recover(s.save());
  expect(eventJSON(s2.get('/deep', true, false))).toBe(eventJSON(s.get('/deep', true, false)));
  expect(s2.save().equals(s.save())).toBe(true);

  const del = s.delete('/deep', true, true);
  expect(del.toJSON()).toEqual({ action: 'delete', node: { key: '/deep', dir: true, modifiedIndex: 2, createdIndex: 1 }, prevNode: { key: '/deep', dir: true, modifiedIndex: 1, createdIndex: 1 } });
  expect(() => s.get(key, false, false)).toThrow('Key not found');
  expect(s.get('/', true, false).node).toEqual({ dir: true });
});

test('a deep directory expires with everything under it, the same way in a copy recovered from a snapshot', () => {
  const s = new V2Store(() => NOW);
  s.set(`/t${chain(3000)}/leaf`, false, 'x', { expireTime: NOW + 2000 });
  s.update('/t', '', { expireTime: NOW + 1000 });
  // The key and its 3,000 directories share a createdIndex and time: the ancestor expires first, in both copies.
  s.update('/t/a/a', '', { expireTime: NOW + 2000 });
  const copy = new V2Store(() => NOW);
  copy.recover(s.save());
  for (const st of [s, copy]) {
    const w = st.watch(`/t${chain(10)}`, false, false, 0);
    st.deleteExpiredKeys(NOW + 5000);
    expect(st.hasTTLKeys()).toBe(false);
    expect(() => st.get('/t', false, false)).toThrow('Key not found');
    expect(st.hub.history.toJSON().map((e) => [e.action, e.node.key])).toEqual([['set', `/t${chain(3000)}/leaf`], ['update', '/t'], ['update', '/t/a/a'], ['expire', '/t']]);
    expect(w.removed).toBe(true); // the watcher under the expired directory was told
  }
});

test('watchers below a recursively deleted deep directory get its delete; others do not', async () => {
  const s = new V2Store(() => NOW);
  s.set(`/w${chain(2000)}`, false, 'x', none);
  s.set('/other', false, 'y', none);
  const below = s.watch(`/w${chain(1500)}`, false, false, 0);
  const bottomKey = s.watch(`/w${chain(2000)}`, false, true, 0);
  const other = s.watch('/other', false, false, 0);
  s.delete('/w', true, true);
  const got = await Promise.all([below.next(), bottomKey.next()]);
  expect(got.map((e) => [e?.action, e?.node.key])).toEqual([['delete', '/w'], ['delete', '/w']]);
  expect(other.removed).toBe(false);
  // A write to a deep key reaches a recursive watcher far above it.
  s.set(`/w${chain(2000)}`, false, 'again', none);
  const top = s.watch('/w', true, false, 0);
  s.set(`/w${chain(2000)}`, false, 'third', none);
  expect((await top.next())?.node.value).toBe('third');
});

test('the answer of a deep listing is the text JSON.stringify gives where JSON.stringify can make it', () => {
  const s = new V2Store(() => NOW);
  s.set(`/x${chain(1000)}/v`, false, 'deep "quoted" \u2028 value', { expireTime: NOW + 10_000 });
  s.set('/x/a/_hidden', false, 'h', none);
  s.set('/x/a/b', true, '', none);
  s.set('/x/ü', false, 'é', none);
  for (const sorted of [false, true]) {
    const e = s.get('/x', true, sorted);
    expect(eventJSON(e)).toBe(JSON.stringify(e));
  }
  const leaf = s.get(`/x${chain(1000)}/v`, false, false);
  expect(eventJSON(leaf)).toBe(JSON.stringify(leaf));
});

test('memory for a 5,000-level key is linear in its length (the built server store, measured after GC)', () => {
  const dist = path.resolve(__dirname, '../../dist/server/store/index.js');
  if (!existsSync(dist)) throw new Error(`${dist} is missing: build with npx tsc -p tsconfig.json first`);
  const script = `
    const { V2Store } = require(${JSON.stringify(dist)});
    const s = new V2Store(Date.now);
    gc(); const before = process.memoryUsage().heapUsed;
    s.set('/deep' + '/a'.repeat(5000), false, 'x', { expireTime: 0 });
    gc(); const after = process.memoryUsage().heapUsed;
    process.stdout.write(String(after - before));`;
  const grown = Number(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' }));
  // About 1 MB; full paths on every directory (the earlier store) take 25 MB of strings alone.
  expect(grown).toBeLessThan(5 * 1024 * 1024);
  const s = new V2Store(() => NOW);
  s.set('/deep' + chain(5000), false, 'x', none);
  expect(s.save().length).toBeLessThan(200 * 1024);
});

describe('a snapshot of the earlier release (format 1)', () => {
  const dir = path.join(__dirname, 'fixtures');
  const v1 = readFileSync(path.join(dir, 'v1-snapshot.json'));
  const expected = JSON.parse(readFileSync(path.join(dir, 'v1-expected.json'), 'utf8')) as {
    index: number;
    reads: Record<'root' | 'hidden' | 'c', object>;
    history: object[];
    stats: object;
  };
  const reads = (s: V2Store) => ({ root: s.get('/', true, true), hidden: s.get('/_hidden', true, true), c: s.get('/dir/c', false, false) });
  const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

  test('recovers as that release read it, and again after a snapshot in format 2', () => {
    const s = new V2Store(() => NOW);
    s.recover(v1);
    expect(s.currentIndex).toBe(expected.index);
    expect(s.hub.history.toJSON().map(json)).toEqual(expected.history);
    const stats = { ...expected.stats } as Record<string, number>;
    // That release's reads above were counted before it saved; ours are counted now, after recovering them.
    stats.getsSuccess += 3;
    const got = json(reads(s));
    expect(got).toEqual(expected.reads);
    expect(s.statsJSON()).toEqual(stats);
    const v2 = s.save();
    expect(v2.toString('utf8', 0, 40)).toMatch(/^\{"format":"v2store","version":2,/);
    const s2 = new V2Store(() => NOW);
    s2.recover(v2);
    expect(s2.save().equals(v2)).toBe(true);
    expect(json(reads(s2))).toEqual(expected.reads);
  });

  test('its TTLs still run', () => {
    const s = new V2Store(() => NOW);
    s.recover(v1);
    s.deleteExpiredKeys(NOW + 31_000);
    expect(s.hub.history.toJSON().slice(-1).map((e: V2Event) => [e.action, e.node.key])).toEqual([['expire', '/dir/b']]);
    s.deleteExpiredKeys(NOW + 120_000);
    expect(() => s.get('/ttl-dir', false, false)).toThrow('Key not found');
    expect(() => s.get('/dir/c', false, false)).toThrow('Key not found');
    expect(s.hasTTLKeys()).toBe(false);
  });
});

test('a snapshot of a format version this server does not know is refused, and the store is left as it was', () => {
  const s = new V2Store(() => NOW);
  s.set('/k', false, 'v', none);
  const future = Buffer.from('{"format":"v2store","version":3,"index":1,"nodes":1,"history":0}\n[0,"",0,0,0]\n');
  expect(() => s.recover(future)).toThrow('store: snapshot format version 3 is not one this server reads (2)');
  expect(s.get('/k', false, false).node.value).toBe('v');
});
