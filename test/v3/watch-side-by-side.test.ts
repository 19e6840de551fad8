/**
 * The Watch service against Debian's etcd 3.4, side by side: the same watch requests and the same writes on a
 * fresh member of each, over gRPC, must give the same responses for every watcher (created and canceled answers,
 * etcd's errors, events with their revisions, prev_kv, filters, catch-up from past revisions, compaction, progress,
 * fragments). Both stores start at revision 1, so revisions compare as they are.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WatchCreateRequest_FilterType, type WatchResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { request } from '../support/http';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';
import { byWatcher, connect, describe, TestWatchStream, type WatchConn } from '../support/watch-client';

jest.setTimeout(120_000);

const b = (s: string) => Buffer.from(s);
const ALL = Buffer.from([0]);

interface Side {
  name: string;
  etcd: RunningEtcd;
  conn: WatchConn;
  ids: { clusterId: bigint; memberId: bigint };
  streams: TestWatchStream[];
}

let dir: string;
let sides: Side[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'watch-sbs-'));
  // progress notifications every 300 ms, for the watchers that ask for them
  const args = ['--experimental-watch-progress-notify-interval=300ms'];
  const [ours, real] = await Promise.all([startOurEtcd(path.join(dir, 'ours'), args), startRealEtcd(path.join(dir, 'real'), args)]);
  sides = await Promise.all(
    [['ours', ours], ['etcd', real]].map(async ([name, etcd]) => {
      const conn = connect((etcd as RunningEtcd).clientURL);
      const h = (await conn.kv.range(RangeRequest.fromPartial({ key: b('x') }))).header!;
      return { name: name as string, etcd: etcd as RunningEtcd, conn, ids: { clusterId: h.clusterId, memberId: h.memberId }, streams: [] };
    }),
  );
});

afterAll(async () => {
  for (const s of sides) {
    for (const w of s.streams) w.close();
    s.conn.close();
  }
  await Promise.all(sides.map((s) => s.etcd.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function openStream(s: Side): TestWatchStream {
  const w = new TestWatchStream(s.conn.watchClient);
  s.streams.push(w);
  return w;
}

/** Runs the same steps on both sides, one side after the other. */
async function both(f: (s: Side, i: number) => Promise<void> | void): Promise<void> {
  for (const [i, s] of sides.entries()) await f(s, i);
}

/**
 * Waits until both sides' streams show the same responses per watcher (the wait ends when they agree; a
 * difference that stays is reported), and checks every header carries the side's own cluster and member ids.
 */
async function agree(pick: (s: Side) => TestWatchStream, what: string): Promise<Record<string, string[]>> {
  const [a, e] = sides.map(pick);
  const same = () => JSON.stringify(byWatcher(a.got)) === JSON.stringify(byWatcher(e.got));
  for (const deadline = Date.now() + 15000; !same() && Date.now() < deadline; ) await Promise.race([a.next(1000), e.next(1000)]);
  expect([what, byWatcher(a.got)]).toEqual([what, byWatcher(e.got)]);
  for (const [i, s] of sides.entries()) {
    for (const r of [a, e][i].got) expect([s.name, r.header?.clusterId, r.header?.memberId]).toEqual([s.name, s.ids.clusterId, s.ids.memberId]);
  }
  return byWatcher(a.got);
}

const put = (s: Side, key: string, value: string | Buffer) => s.conn.kv.put(PutRequest.fromPartial({ key: b(key), value: typeof value === 'string' ? b(value) : value }));

test('creates, writes, txns, deletes, history, cancels, progress and compaction answer alike', async () => {
  await both((s) => {
    const w = openStream(s);
    w.create({ key: b('a') }); // 0
    w.create({ key: b('p/'), rangeEnd: b('p0'), prevKv: true, filters: [WatchCreateRequest_FilterType.NODELETE] }); // 1
    w.create({ key: b('m'), rangeEnd: ALL }); // 2: every key from m
    w.create({ key: b('x'), rangeEnd: b('z'), watchId: 100n });
    w.create({ key: b('y'), watchId: 100n }); // duplicate ID
    w.create({ key: b('b'), rangeEnd: b('a') }); // empty range
    w.create({ key: Buffer.alloc(0), rangeEnd: ALL, prevKv: true }); // 3: every key
    w.create({ key: b('a'), startRevision: 5n }); // 4: from a future revision
    w.create({ key: b('a'), filters: [WatchCreateRequest_FilterType.NOPUT] }); // 5
    w.create({ key: b('q'), filters: [WatchCreateRequest_FilterType.NOPUT, WatchCreateRequest_FilterType.NODELETE] }); // 6
  });
  await both((s) => s.streams[0].until((got) => got.length === 10, 'created answers'));
  await agree((s) => s.streams[0], 'created answers');
  await both(async (s) => {
    await put(s, 'a', '1'); // 2
    await put(s, 'p/1', 'x'); // 3
    await put(s, 'p/1', 'y'); // 4
    await s.conn.kv.txn(TxnRequest.fromPartial({
      success: [{ requestPut: { key: b('a'), value: b('2') } }, { requestPut: { key: b('p/2'), value: b('z') } }, { requestPut: { key: b('x1'), value: b('q') } }, { requestPut: { key: b('m'), value: b('1') } }],
    })); // 5
    await s.conn.kv.deleteRange(DeleteRangeRequest.fromPartial({ key: b('p/'), rangeEnd: b('p0') })); // 6
    await s.conn.kv.deleteRange(DeleteRangeRequest.fromPartial({ key: b('a') })); // 7
    await put(s, 'zz', '1'); // 8
    await put(s, 'q', '1'); // 9
    await s.conn.kv.deleteRange(DeleteRangeRequest.fromPartial({ key: b('nothing') })); // no revision
    await s.streams[0].until((got) => got.some((r) => r.watchId === 3n && r.header!.revision === 9n), 'the last write');
  });
  await agree((s) => s.streams[0], 'events of the writes');
  // from a past revision: the history, then what comes
  const has = (id: bigint, n: number, events = false) => (got: WatchResponse[]) => got.filter((r) => r.watchId === id && (!events || r.events.length)).length >= n;
  await both(async (s) => {
    s.streams[0].create({ key: Buffer.alloc(0), rangeEnd: ALL, startRevision: 3n, prevKv: true }); // 7
    await s.streams[0].until(has(7n, 1, true), 'the history');
  });
  await agree((s) => s.streams[0], 'history from revision 3');
  await both(async (s) => {
    s.streams[0].cancel(999n); // unknown: no answer
    s.streams[0].cancel(0n);
    await s.streams[0].until((got) => got.some((r) => r.watchId === 0n && r.canceled), 'the cancel');
    await put(s, 'a', '3'); // 10: not to watcher 0 any more
    await s.streams[0].until(has(7n, 2, true), 'the put');
  });
  await agree((s) => s.streams[0], 'cancels');
  await both(async (s) => {
    s.streams[0].progress();
    await s.streams[0].until(has(-1n, 3), 'the progress answer');
  });
  await agree((s) => s.streams[0], 'a progress request');
  // compaction: a watch from before it is told the compaction revision and canceled
  await both(async (s) => {
    await s.conn.kv.compact(CompactionRequest.fromPartial({ revision: 6n, physical: true }));
    s.streams[0].create({ key: b('a'), startRevision: 3n }); // 8
    s.streams[0].create({ key: b('a'), startRevision: 7n, prevKv: true }); // 9: the delete at 7, its prev_kv kept by the compaction
    await s.streams[0].until((got) => has(8n, 2)(got) && has(9n, 1, true)(got), 'the compaction answers');
  });
  const final = await agree((s) => s.streams[0], 'watches around a compaction');
  expect(final['8']).toEqual(['id=8 rev=10 created', 'id=8 rev=0 canceled compact=6']);
  await both(async (s) => {
    s.streams[0].cancel(8n); // canceled by the compaction, still known to the stream
    await s.streams[0].until(has(8n, 3), 'the cancel');
    await put(s, 'a', '4');
    await s.streams[0].until(has(7n, 3, true), 'the put');
  });
  await agree((s) => s.streams[0], 'cancel of a compacted watcher');
});

test('large responses: whole without fragment, in parts with it (from history and live)', async () => {
  const big = (c: string) => Buffer.alloc(900 * 1024, c);
  await both(async (s) => {
    const w = openStream(s);
    const start = (await put(s, 'f/1', big('a'))).header!.revision;
    await put(s, 'f/2', big('b'));
    await put(s, 'f/3', big('c'));
    w.create({ key: b('f/'), rangeEnd: b('f0'), startRevision: start, fragment: true, prevKv: true, watchId: 1n });
    w.create({ key: b('f/'), rangeEnd: b('f0'), startRevision: start, watchId: 2n });
    await w.until((got) => got.filter((r) => r.events.length).length >= 3, 'the history');
    await s.conn.kv.deleteRange(DeleteRangeRequest.fromPartial({ key: b('f/'), rangeEnd: b('f0') }));
  });
  const got = await agree((s) => s.streams[1], 'fragments');
  expect(got['1'].filter((l) => l.includes(' fragment'))).toHaveLength(2);
});

test('progress_notify: a quiet watcher is told the revision at each interval', async () => {
  await both(async (s) => {
    const w = openStream(s);
    w.create({ key: b('quiet'), progressNotify: true });
    await w.until((got) => got.length >= 3, 'two progress notifications');
  });
  const [ours, theirs] = sides.map((s) => s.streams[2].got.slice(0, 3).map(describe));
  expect(ours).toEqual(theirs);
  const rev = (await sides[0].conn.kv.range(RangeRequest.fromPartial({ key: b('x') }))).header!.revision;
  expect(ours).toEqual([`id=0 rev=${rev} created`, `id=0 rev=${rev}`, `id=0 rev=${rev}`]);
});

test('a stream ends when its client cancels it; the watchers are gone from the store', async () => {
  const s = sides[0];
  const w = openStream(s);
  w.create({ key: b('gone') });
  await w.until((got: WatchResponse[]) => got.length === 1, 'created');
  w.close();
  const other = openStream(s);
  other.create({ key: b('gone') });
  await other.until((got) => got.length === 1, 'created');
  await put(s, 'gone', '1');
  await other.until((got) => got.length === 2, 'the event');
  expect(w.got).toHaveLength(1);
});

/** The samples of the watch metrics, by name and labels. */
async function watchMetrics(s: Side): Promise<Record<string, number>> {
  const text = (await request(s.etcd.clientURL, 'GET', '/metrics')).body;
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? '').replace(/^\{|\}$/g, '').split(',').filter((x) => x !== '').sort().join(',');
    if (/^etcd_debugging_mvcc_(watcher|watch_stream|slow_watcher|pending_events|events)_total$/.test(m[1]) || labels.includes('grpc_service="etcdserverpb.Watch"')) {
      out[`${m[1]}{${labels}}`] = Number(m[3]);
    }
  }
  return out;
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) d[k] = v - (before[k] ?? 0);
  return d;
}

test('metrics: watchers, streams, events and stream messages counted as etcd counts them', async () => {
  const deltas: Record<string, number>[][] = [];
  await both(async (s) => {
    // every stream ended: none open, every one started is handled
    const idle = async () => {
      for (const deadline = Date.now() + 10000; Date.now() < deadline; ) {
        const m = await watchMetrics(s);
        let open = 0;
        for (const [k, v] of Object.entries(m)) {
          if (k.startsWith('grpc_server_started_total')) open += v;
          if (k.startsWith('grpc_server_handled_total')) open -= v;
        }
        if (m['etcd_debugging_mvcc_watch_stream_total{}'] === 0 && open === 0) return;
        await new Promise((r) => setTimeout(r, 50)); // the server sees the cancels shortly
      }
      throw new Error(`${s.name}: streams still open`);
    };
    // the earlier tests' streams closed first (one sends progress notifications)
    for (const w of s.streams.splice(0)) w.close();
    await idle();
    const before = await watchMetrics(s);
    const w = openStream(s);
    w.create({ key: b('metric/a') });
    w.create({ key: b('metric/'), rangeEnd: b('metric0') });
    w.create({ key: b('metric/z') });
    await w.until((got) => got.length === 3, 'created');
    await put(s, 'metric/a', '1');
    await w.until((got) => got.length === 5, 'the events');
    const open = delta(await watchMetrics(s), before);
    w.close();
    await idle();
    deltas.push([open, delta(await watchMetrics(s), before)]);
  });
  expect(deltas[0]).toEqual(deltas[1]);
  expect(deltas[0][0]).toEqual({
    'etcd_debugging_mvcc_watcher_total{}': 3,
    'etcd_debugging_mvcc_watch_stream_total{}': 1,
    'etcd_debugging_mvcc_events_total{}': 2,
    'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}': 1,
    'grpc_server_msg_received_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}': 3,
    'grpc_server_msg_sent_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}': 5,
  });
});
