/**
 * The watchable store: events in revision order to synced watchers, catch-up of watchers that start in the past or
 * fall behind (from LMDB and from the write buffer), prev_kv, filters, compaction, snapshots, and a slow client that
 * costs no memory while it does not read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Event_EventType } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { MvccStore } from '../../server/mvcc/store';
import { WatchableStore, WatchError, type WatchResult, type WatchSink, type WatchStream, type Watcher } from '../../server/mvcc/watchable';

const b = (s: string) => Buffer.from(s);
let dir: string;
let s: MvccStore;
let ws: WatchableStore;
let index = 0;

function put(...kvs: string[]): number {
  const t = s.write(++index);
  for (let i = 0; i < kvs.length; i += 2) t.put(b(kvs[i]), b(kvs[i + 1]), 0n);
  t.end();
  return s.rev();
}

function del(key: string, end?: string): number {
  const t = s.write(++index);
  t.deleteRange(b(key), end === undefined ? undefined : b(end));
  t.end();
  return s.rev();
}

/** A client stream's queue: `cap` responses before it is full; `taken` holds what the client read. */
class Sink implements WatchSink {
  cap = Infinity;
  queue: { w: Watcher; r: WatchResult }[] = [];
  taken: { id: bigint; r: WatchResult }[] = [];
  stream!: WatchStream;

  ready(): boolean {
    return this.queue.length < this.cap;
  }

  send(w: Watcher, r: WatchResult): void {
    if (!this.ready()) throw new Error('sent to a full sink');
    this.queue.push({ w, r });
  }

  /** The client reads everything queued. */
  read(): void {
    for (const { w, r } of this.queue) this.taken.push({ id: w.id, r });
    this.queue = [];
    this.stream.ready();
  }

  /** Events read so far as "TYPE key=value@mod (prev)" lines, per watch id. */
  events(id = 0n): string[] {
    return this.taken
      .filter((t) => t.id === id)
      .flatMap((t) => t.r.events)
      .map((e) => `${e.type === Event_EventType.PUT ? 'PUT' : 'DELETE'} ${e.kv!.key}=${e.kv!.value}@${e.kv!.modRevision}${e.prevKv ? ` (${e.prevKv.value}@${e.prevKv.modRevision})` : ''}`);
  }
}

function stream(): Sink {
  const sink = new Sink();
  sink.stream = ws.newWatchStream(sink);
  return sink;
}

/** Lets the catch-up rounds (one per event loop turn) run until cond holds (bounded: fails rather than hangs). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  if (!cond()) throw new Error(`never: ${what}`);
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'watchable-'));
  s = MvccStore.open(dir, { batchInterval: 5 });
  ws = new WatchableStore(s);
  index = 0;
});

afterEach(async () => {
  ws.close();
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a synced watcher gets each txn as one response at its revision, for its key, range, prefix or every key from one', () => {
  const k = stream();
  const ids = [
    k.stream.watch(0n, b('a'), undefined, 0),
    k.stream.watch(0n, b('a'), b('c'), 0),
    k.stream.watch(0n, b('b'), Buffer.alloc(0), 0),
  ];
  expect(ids).toEqual([0n, 1n, 2n]);
  put('a', '1'); // 2
  put('b', '1', 'c', '1', 'a', '2'); // 3: one txn, three keys
  del('a', 'z'); // 4
  put('aa', 'x'); // 5
  k.read();
  expect(k.events(0n)).toEqual(['PUT a=1@2', 'PUT a=2@3', 'DELETE a=@4']);
  expect(k.events(1n)).toEqual(['PUT a=1@2', 'PUT b=1@3', 'PUT a=2@3', 'DELETE a=@4', 'DELETE b=@4', 'PUT aa=x@5']);
  expect(k.events(2n)).toEqual(['PUT b=1@3', 'PUT c=1@3', 'DELETE b=@4', 'DELETE c=@4']);
  // one response per txn, its header revision the txn's
  expect(k.taken.filter((t) => t.id === 1n).map((t) => [t.r.revision, t.r.events.length])).toEqual([[2, 1], [3, 2], [4, 2], [5, 1]]);
  // a tombstone's kv has the key and the delete's revision only, as etcd's
  const tomb = k.taken.find((t) => t.id === 0n && t.r.revision === 4)!.r.events[0].kv!;
  expect([tomb.createRevision, tomb.version, tomb.lease, tomb.value.length]).toEqual([0n, 0n, 0n, 0]);
});

test('watch IDs: assigned from 0 past the ones in use, given ones kept, a duplicate or an empty range refused with etcd\'s words', () => {
  const k = stream();
  expect(k.stream.watch(1n, b('a'), undefined, 0)).toBe(1n);
  expect(k.stream.watch(0n, b('a'), undefined, 0)).toBe(0n);
  expect(k.stream.watch(0n, b('a'), undefined, 0)).toBe(2n);
  expect(() => k.stream.watch(2n, b('a'), undefined, 0)).toThrow(new WatchError('mvcc: duplicate watch ID provided on the WatchStream'));
  expect(() => k.stream.watch(0n, b('b'), b('a'), 0)).toThrow(new WatchError('mvcc: watcher range is empty'));
  expect(() => k.stream.watch(0n, b('b'), b('b'), 0)).toThrow('mvcc: watcher range is empty');
  expect(k.stream.cancel(7n)).toBe(false);
  expect(k.stream.cancel(2n)).toBe(true);
  expect(k.stream.cancel(2n)).toBe(false);
  expect(ws.counts.watchers).toBe(2);
  put('a', '1');
  k.read();
  expect(k.taken.map((t) => t.id).sort()).toEqual([0n, 1n]);
  k.stream.close();
  expect([ws.counts.watchers, ws.counts.streams]).toEqual([0, 0]);
});

test('a watcher from a past revision gets the history in order (committed and buffered), then every new write, nothing twice', async () => {
  for (let i = 0; i < 50; i++) put(`k${i % 7}`, `v${i}`); // 2..51
  s.flushSync(); // in LMDB
  for (let i = 50; i < 60; i++) put(`k${i % 7}`, `v${i}`); // 52..61, still in the write buffer
  const k = stream();
  k.stream.watch(0n, b('k'), b('l'), 10);
  expect(ws.slowWatchers()).toBe(1);
  put('k1', 'late'); // 62: while it catches up, it is not sent this directly
  await until(() => ws.slowWatchers() === 0, 'synced');
  put('k2', 'after'); // 63
  k.read();
  const want = [];
  for (let i = 8; i < 60; i++) want.push(`PUT k${i % 7}=v${i}@${i + 2}`);
  want.push('PUT k1=late@62', 'PUT k2=after@63');
  expect(k.events()).toEqual(want);
});

test('a watcher at a future revision starts there; start 0 is the next revision', () => {
  const k = stream();
  k.stream.watch(0n, b('a'), undefined, 4);
  k.stream.watch(0n, b('a'), undefined, 0);
  put('a', '1'); // 2
  put('a', '2'); // 3
  put('a', '3'); // 4
  k.read();
  expect(k.events(0n)).toEqual(['PUT a=3@4']);
  expect(k.events(1n)).toEqual(['PUT a=1@2', 'PUT a=2@3', 'PUT a=3@4']);
});

test('prev_kv: the previous version for updates and deletes (buffered, committed, or across a flush), none for a create', async () => {
  const k = stream();
  k.stream.watch(0n, b(''), Buffer.alloc(0), 0, { prevKv: true });
  put('a', '1'); // 2: create
  put('a', '2'); // 3: prev buffered
  s.flushSync();
  put('a', '3'); // 4: prev in LMDB
  del('a'); // 5
  put('a', '4'); // 6: a new generation: a create
  put('b', '1', 'a', '5'); // 7
  k.read();
  expect(k.events()).toEqual(['PUT a=1@2', 'PUT a=2@3 (1@2)', 'PUT a=3@4 (2@3)', 'DELETE a=@5 (3@4)', 'PUT a=4@6', 'PUT b=1@7', 'PUT a=5@7 (4@6)']);
  // the same from history, part committed and part buffered
  s.flushSync();
  put('a', '6'); // 8
  const h = stream();
  h.stream.watch(0n, b('a'), undefined, 2, { prevKv: true });
  await until(() => ws.slowWatchers() === 0, 'synced');
  h.read();
  expect(h.events()).toEqual(['PUT a=1@2', 'PUT a=2@3 (1@2)', 'PUT a=3@4 (2@3)', 'DELETE a=@5 (3@4)', 'PUT a=4@6', 'PUT a=5@7 (4@6)', 'PUT a=6@8 (5@7)']);
});

test('NOPUT and NODELETE filters; a txn whose events are all filtered out sends nothing', () => {
  const k = stream();
  k.stream.watch(0n, b('a'), b('z'), 0, { noPut: true });
  k.stream.watch(0n, b('a'), b('z'), 0, { noDelete: true });
  put('a', '1');
  put('b', '1', 'c', '1');
  del('a', 'c');
  k.read();
  expect(k.events(0n)).toEqual(['DELETE a=@4', 'DELETE b=@4']);
  expect(k.events(1n)).toEqual(['PUT a=1@2', 'PUT b=1@3', 'PUT c=1@3']);
  expect(k.taken.filter((t) => t.id === 0n)).toHaveLength(1);
});

test('a watcher from a compacted revision is told the compaction revision and dropped; one at the compaction revision is served', async () => {
  for (let i = 0; i < 10; i++) put('a', `${i}`); // 2..11
  await s.compact(6, ++index);
  const k = stream();
  k.stream.watch(0n, b('a'), undefined, 5);
  k.stream.watch(0n, b('a'), undefined, 6);
  await until(() => ws.slowWatchers() === 0, 'both handled');
  put('a', 'new'); // 12
  k.read();
  expect(k.taken.filter((t) => t.id === 0n).map((t) => t.r)).toEqual([{ events: [], revision: 0, compactRevision: 6 }]);
  expect(k.events(1n)).toEqual(['PUT a=4@6', 'PUT a=5@7', 'PUT a=6@8', 'PUT a=7@9', 'PUT a=8@10', 'PUT a=9@11', 'PUT a=new@12']);
  // still counted until its client cancels it, as etcd's
  expect(ws.counts.watchers).toBe(2);
  expect(k.stream.cancel(0n)).toBe(true);
  expect(ws.counts.watchers).toBe(1);
});

test('a client that does not read: its watchers fall behind, keep nothing meanwhile, and get every event once in order when it reads', async () => {
  const slow = stream();
  slow.cap = 4;
  const fast = stream();
  slow.stream.watch(0n, b('k'), b('l'), 0);
  slow.stream.watch(0n, b('k1'), undefined, 0, { prevKv: true });
  fast.stream.watch(0n, b('k'), b('l'), 0);
  for (let i = 0; i < 12000; i++) {
    put(`k${i % 10}`, `v${i}`);
    if (i % 1000 === 0) fast.read();
  }
  fast.read();
  // the slow client's queue is full and nothing else is kept for it; the fast one is synced and has everything
  expect(slow.queue).toHaveLength(4);
  expect(ws.slowWatchers()).toBe(2);
  expect(fast.events()).toHaveLength(12000);
  // it reads again: catch-up rounds fill its queue, one window at a time, until it is synced
  let reads = 0;
  while (ws.slowWatchers() > 0) {
    await until(() => !slow.ready() || ws.slowWatchers() === 0, 'a round');
    slow.read();
    reads++;
  }
  slow.read();
  const want = Array.from({ length: 12000 }, (_, i) => `PUT k${i % 10}=v${i}@${i + 2}`);
  expect(slow.events(0n)).toEqual(want);
  const k1: string[] = [];
  for (let i = 1; i < 12000; i += 10) k1.push(`PUT k1=v${i}@${i + 2}${i > 1 ? ` (v${i - 10}@${i - 8})` : ''}`);
  expect(slow.events(1n)).toEqual(k1);
  expect(reads).toBeGreaterThan(1);
  // no catch-up response carries more than 1,000 revisions (etcd's watchBatchMaxRevs)
  expect(Math.max(...slow.taken.map((t) => t.r.events.length))).toBe(1000);
  // then it is synced: new writes go to it directly
  put('k3', 'z');
  slow.read();
  expect(slow.events(0n).at(-1)).toBe(`PUT k3=z@${s.rev()}`);
});

test('a snapshot that replaces the store: synced watchers catch up from the new store', async () => {
  const other = mkdtempSync(path.join(tmpdir(), 'watchable-src-'));
  const src = MvccStore.open(other);
  for (let i = 0; i < 5; i++) {
    const t = src.write(i + 1);
    t.put(b('a'), b(`s${i}`), 0n);
    t.end();
  }
  const dump = src.dumpSync();
  await src.close();
  rmSync(other, { recursive: true, force: true });
  const k = stream();
  k.stream.watch(0n, b('a'), undefined, 0);
  put('a', 'local'); // 2
  s.loadSync(dump); // at revision 6 now
  await until(() => ws.slowWatchers() === 0, 'synced');
  put('a', 'after'); // 7
  k.read();
  expect(k.events()).toEqual(['PUT a=local@2', 'PUT a=s1@3', 'PUT a=s2@4', 'PUT a=s3@5', 'PUT a=s4@6', 'PUT a=after@7']);
});

test('progress: a synced watcher is told the current revision, an unsynced one nothing', () => {
  const k = stream();
  put('x', '1');
  k.stream.watch(0n, b('a'), undefined, 0);
  k.stream.watch(0n, b('a'), undefined, 1);
  k.stream.requestProgress(0n);
  k.stream.requestProgress(1n);
  k.stream.requestProgress(9n);
  expect(k.queue.map((q) => [q.w.id, q.r])).toEqual([[0n, { events: [], revision: 2, compactRevision: 0 }]]);
});

test('with no watcher, a write does not build events', () => {
  const notify = jest.spyOn(ws as unknown as { notify: () => void }, 'notify');
  put('a', '1');
  expect(notify).not.toHaveBeenCalled();
  const k = stream();
  k.stream.watch(0n, b('zzz'), undefined, 0);
  put('a', '2');
  expect(notify).toHaveBeenCalledTimes(1);
  expect(k.queue).toHaveLength(0);
});

test("a txn that also writes a lease's record (a revocation's) notifies watchers of its key writes, whatever they watch", () => {
  const k = stream();
  k.stream.watch(0n, b('free/0'), undefined, 0);
  k.stream.watch(0n, b('free/'), b('free0'), 0);
  k.stream.watch(0n, b('\0'), Buffer.alloc(0), 0);
  k.stream.watch(0n, b('a'), undefined, 0);
  s.stageLease({ id: 7n, ttl: 3, remainingTTL: 0 });
  const t0 = s.write(++index);
  t0.put(b('free/0'), b('v'), 7n);
  t0.end();
  // as the lessor revokes: the keys deleted and the lease's record removed in the same txn
  const t = s.write(++index);
  t.deleteRange(b('free/0'), undefined);
  s.stageLease({ id: 7n, removed: true });
  t.end();
  put('a', '1');
  k.read();
  expect([0n, 1n, 2n].map((id) => k.events(id))).toEqual([
    ['PUT free/0=v@2', 'DELETE free/0=@3'],
    ['PUT free/0=v@2', 'DELETE free/0=@3'],
    ['PUT free/0=v@2', 'DELETE free/0=@3', 'PUT a=1@4'],
  ]);
  expect(k.events(3n)).toEqual(['PUT a=1@4']);
});
