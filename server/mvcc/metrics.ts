/**
 * etcd's mvcc metrics (mvcc/metrics.go) for the v3 store: operations counted by the applier, sizes and revisions
 * read from the store at scrape time.
 */
import * as client from 'prom-client';
import { counterOf, gaugeOf } from '../metrics';
import type { MvccStore } from './store';
import type { WatchableStore } from './watchable';

/** Operations applied to the v3 store, counted as etcd's mvcc counts them (per operation, txns per write txn). */
export interface MvccOpCounts {
  range: number;
  put: number;
  delete: number;
  txn: number;
  putBytes: number;
}

export function newOpCounts(): MvccOpCounts {
  return { range: 0, put: 0, delete: 0, txn: 0, putBytes: 0 };
}

export function registerMvccMetrics(r: client.Registry, store: MvccStore, ops: MvccOpCounts): void {
  const gauge = (name: string, help: string, read: () => number) => gaugeOf(r, name, help, read);
  const counter = (name: string, help: string, read: () => number) => counterOf(r, name, help, read);
  for (const ns of ['etcd', 'etcd_debugging']) {
    counter(`${ns}_mvcc_range_total`, 'Total number of ranges seen by this member.', () => ops.range);
    counter(`${ns}_mvcc_put_total`, 'Total number of puts seen by this member.', () => ops.put);
    counter(`${ns}_mvcc_delete_total`, 'Total number of deletes seen by this member.', () => ops.delete);
    counter(`${ns}_mvcc_txn_total`, 'Total number of txns seen by this member.', () => ops.txn);
    gauge(`${ns}_mvcc_db_total_size_in_bytes`, 'Total size of the underlying database physically allocated in bytes.', () => store.dbSize());
  }
  gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => store.keyCount());
  gauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', () => store.dbSizeInUse());
  gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => store.rev());
  gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => store.compactRev());
  gauge('etcd_debugging_mvcc_total_put_size_in_bytes', 'The total size of put kv pairs seen by this member.', () => ops.putBytes);
}

/** etcd's watch metrics (mvcc/metrics.go), read from the watchable store at scrape time. */
export function registerWatchMetrics(r: client.Registry, w: WatchableStore): void {
  const c = w.counts;
  gaugeOf(r, 'etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', () => c.streams);
  gaugeOf(r, 'etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => c.watchers);
  gaugeOf(r, 'etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', () => w.slowWatchers());
  counterOf(r, 'etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.', () => c.eventsSent);
  gaugeOf(r, 'etcd_debugging_mvcc_pending_events_total', 'Total number of pending events to be sent.', () => c.pendingEvents);
}
