/**
 * Watch under bad or heavy use, against our member: 10,000 watchers on one stream, a client that stops reading its
 * stream while megabytes of events are written (the server keeps serving, its queue for that client stays bounded,
 * and when the client reads again it gets every event once, in order), and requests a client sends without reading
 * the answers.
 */
import { PutRequest, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { request } from '../support/http';
import { TestWatchStream } from '../support/watch-client';
import { ourMemberWithConn } from '../support/our-member';

jest.setTimeout(240_000);

const b = (s: string) => Buffer.from(s);
const member = ourMemberWithConn('watch-limits');

async function metric(name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec((await request(member.etcd().clientURL, 'GET', '/metrics')).body);
  if (!m) throw new Error(`no ${name}`);
  return Number(m[1]);
}

async function eventually(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 30000; !(await cond()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // the server's metrics follow
  }
}

test('10,000 watchers on one stream: all created, each event to every watcher of its key, all gone with the stream', async () => {
  const w = new TestWatchStream(member.conn().watchClient);
  for (let i = 0; i < 5000; i++) {
    w.create({ key: b(`many/${i}`) });
    w.create({ key: b('many/'), rangeEnd: b('many0') });
  }
  await w.until((got) => got.length === 10000, '10,000 created answers', 60000);
  expect(new Set(w.got.map((r) => r.watchId)).size).toBe(10000);
  expect(w.got.every((r) => r.created && !r.canceled)).toBe(true);
  expect(await metric('etcd_debugging_mvcc_watcher_total')).toBe(10000);
  const rev = (await member.conn().kv.put(PutRequest.fromPartial({ key: b('many/7'), value: b('x') }))).header!.revision;
  await w.until((got) => got.length === 10000 + 5001, 'the event to the 5,001 watchers of many/7', 60000);
  const events = w.got.slice(10000);
  expect(events.every((r) => r.events.length === 1 && r.events[0].kv!.modRevision === rev && r.header!.revision === rev)).toBe(true);
  // the key watcher of many/7 is the 15th created (ids are given in order), and the 5,000 range watchers
  expect(new Set(events.map((r) => r.watchId))).toEqual(new Set([14n, ...Array.from({ length: 5000 }, (_, i) => BigInt(2 * i + 1))]));
  // the member still answers
  expect((await member.conn().kv.range(RangeRequest.fromPartial({ key: b('many/7') }))).kvs[0].value.toString()).toBe('x');
  w.close();
  await eventually('the watchers gone', async () => (await metric('etcd_debugging_mvcc_watcher_total')) === 0 && (await metric('etcd_debugging_mvcc_watch_stream_total')) === 0);
});

test('a client that stops reading: the member goes on serving, keeps a bounded queue for it, and it gets every event once when it reads again', async () => {
  const w = new TestWatchStream(member.conn().watchClient);
  w.create({ key: b('slow/'), rangeEnd: b('slow0') });
  await w.until((got) => got.length === 1, 'created');
  const heapBefore = await metric('nodejs_heap_size_used_bytes');
  w.call.pause(); // reads nothing more: HTTP/2 flow control stops the member's writes to it
  const value = Buffer.alloc(10 * 1024, 'v');
  const writes = 3000; // 30 MB of events
  let first = 0n;
  let last = 0n;
  for (let i = 0; i < writes; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => member.conn().kv.put(PutRequest.fromPartial({ key: b(`slow/${(i + j) % 100}`), value }))));
    for (const r of batch) {
      const rev = r.header!.revision;
      if (!first || rev < first) first = rev;
      if (rev > last) last = rev;
    }
  }
  // its watcher fell behind; what waits for it is at most etcd's 128 responses (here one event each)
  await eventually('the watcher to be slow', async () => (await metric('etcd_debugging_mvcc_slow_watcher_total')) === 1);
  expect(await metric('etcd_debugging_mvcc_pending_events_total')).toBeLessThanOrEqual(128);
  // the member answers others meanwhile
  expect((await member.conn().kv.range(RangeRequest.fromPartial({ key: b('slow/'), rangeEnd: b('slow0'), countOnly: true }))).count).toBe(100n);
  // and its heap holds nothing like the 30 MB written (the lowest of a few samples: garbage is collected between)
  let heap = Infinity;
  for (let i = 0; i < 10; i++) {
    heap = Math.min(heap, await metric('nodejs_heap_size_used_bytes'));
    await new Promise((r) => setTimeout(r, 100)); // samples across collections
  }
  expect(heap - heapBefore).toBeLessThan(15 * 1024 * 1024);
  // it reads again: every event, once, in revision order
  w.call.resume();
  await w.until((got) => got.slice(1).reduce((n, r) => n + r.events.length, 0) >= writes, 'every event', 120000);
  const revs = w.got.slice(1).flatMap((r) => r.events.map((e) => e.kv!.modRevision));
  expect(revs).toEqual(Array.from({ length: writes }, (_, i) => first + BigInt(i)));
  expect(last).toBe(first + BigInt(writes - 1));
  await eventually('the watcher synced', async () => (await metric('etcd_debugging_mvcc_slow_watcher_total')) === 0);
  w.close();
});

test('requests sent without reading the answers: the member stops reading them, and answers them all once read', async () => {
  const w = new TestWatchStream(member.conn().watchClient);
  w.call.pause();
  const n = 20000;
  for (let i = 0; i < n; i++) w.create({ key: b(`flood/${i}`) });
  // the member still serves others
  expect((await member.conn().kv.put(PutRequest.fromPartial({ key: b('flood/x'), value: b('1') }))).header!.revision).toBeGreaterThan(0n);
  w.call.resume();
  await w.until((got) => got.length === n, 'every created answer', 120000);
  expect(w.got.map((r) => r.watchId)).toEqual(Array.from({ length: n }, (_, i) => BigInt(i)));
  w.close();
});
