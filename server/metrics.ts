import * as client from 'prom-client';
import { EtcdServer } from './etcdserver/server';
import { StateType } from './raft';
import { StoreStats, V2Store } from './store';

/** etcd's write actions (the action label of etcd_debugging_store_writes_total) and the store statistics behind them. */
const STORE_WRITES: [string, keyof StoreStats, keyof StoreStats][] = [
  ['set', 'setsSuccess', 'setsFail'],
  ['create', 'createSuccess', 'createFail'],
  ['update', 'updateSuccess', 'updateFail'],
  ['delete', 'deleteSuccess', 'deleteFail'],
  ['compareAndSwap', 'compareAndSwapSuccess', 'compareAndSwapFail'],
  ['compareAndDelete', 'compareAndDeleteSuccess', 'compareAndDeleteFail'],
];

/** A gauge whose value is read at scrape time. */
export function gaugeOf(r: client.Registry, name: string, help: string, read: () => number): client.Gauge {
  return new client.Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
}

/** A counter of a monotonic count kept elsewhere, read at scrape time (promtool wants counters for *_total names). */
export function counterOf(r: client.Registry, name: string, help: string, read: () => number): client.Counter {
  let seen = 0;
  return new client.Counter({
    name,
    help,
    registers: [r],
    collect() {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = Math.max(seen, now);
    },
  });
}

/**
 * Prometheus metrics under etcd's names, plus the process metrics. Values the server already counts are read at
 * scrape time; monotonic ones are exposed as counters (so that `promtool check metrics` accepts their _total names).
 */
export class ServerMetrics {
  readonly registry = new client.Registry();
  readonly walFsync: client.Histogram;
  readonly backendCommit: client.Histogram;
  private server: EtcdServer | undefined;
  private store: V2Store | undefined;
  private readonly peerSentBytes: client.Counter<'To'>;
  private readonly peerReceivedBytes: client.Counter<'From'>;
  private readonly peerSentFailures: client.Counter<'To'>;
  private readonly peerReceivedFailures: client.Counter<'From'>;
  private readonly peerRoundTripTime: client.Histogram<'To'>;
  private readonly activePeers: client.Gauge<'Local' | 'Remote'>;
  private readonly disconnectedPeers: client.Counter<'Local' | 'Remote'>;
  private readonly snapshotSendDuration: client.Histogram<'To'>;
  private readonly snapshotReceiveDuration: client.Histogram<'From'>;

  constructor(version: string) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r });
    // Gauges that prom-client names *_total, which Prometheus' conventions (and promtool) reserve for counters.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(name);
    const srv = () => this.server;
    const st = () => this.store;
    this.walFsync = new client.Histogram({
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'The latency distributions of fsync called by WAL.',
      buckets: client.exponentialBuckets(0.001, 2, 14),
      registers: [r],
    });
    this.backendCommit = new client.Histogram({
      name: 'etcd_disk_backend_commit_duration_seconds',
      help: 'The latency distributions of commit called by backend (here: writing a snapshot of the store).',
      buckets: client.exponentialBuckets(0.001, 2, 14),
      registers: [r],
    });
    this.peerSentBytes = new client.Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'The total number of bytes sent to peers.', labelNames: ['To'], registers: [r] });
    this.peerReceivedBytes = new client.Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'The total number of bytes received from peers.', labelNames: ['From'], registers: [r] });
    this.peerSentFailures = new client.Counter({ name: 'etcd_network_peer_sent_failures_total', help: 'The total number of send failures from peers.', labelNames: ['To'], registers: [r] });
    this.peerReceivedFailures = new client.Counter({ name: 'etcd_network_peer_received_failures_total', help: 'The total number of receive failures from peers.', labelNames: ['From'], registers: [r] });
    this.peerRoundTripTime = new client.Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers', labelNames: ['To'], buckets: client.exponentialBuckets(0.0001, 2, 16), registers: [r] });
    this.activePeers = new client.Gauge({ name: 'etcd_network_active_peers', help: 'The current number of active peer connections.', labelNames: ['Local', 'Remote'], registers: [r] });
    this.disconnectedPeers = new client.Counter({ name: 'etcd_network_disconnected_peers_total', help: 'The total number of disconnected peers.', labelNames: ['Local', 'Remote'], registers: [r] });
    // etcd's snapshot_send_success/_failures counters lack the _total suffix promtool requires: the durations
    // (whose counts are the number of snapshots that got through) are exposed under etcd's names.
    this.snapshotSendDuration = new client.Histogram({ name: 'etcd_network_snapshot_send_total_duration_seconds', help: 'Total latency distributions of v3 snapshot sends', labelNames: ['To'], buckets: client.exponentialBuckets(0.1, 2, 10), registers: [r] });
    this.snapshotReceiveDuration = new client.Histogram({ name: 'etcd_network_snapshot_receive_total_duration_seconds', help: 'Total latency distributions of v3 snapshot receives', labelNames: ['From'], buckets: client.exponentialBuckets(0.1, 2, 10), registers: [r] });
    const gauge = (name: string, help: string, read: () => number) => gaugeOf(r, name, help, read);
    const counter = (name: string, help: string, read: () => number) => counterOf(r, name, help, read);
    gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (srv() && srv()!.lead !== '' ? 1 : 0));
    gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (srv()?.raftState === StateType.Leader ? 1 : 0));
    counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.', () => srv()?.leaderChanges ?? 0);
    counter('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => srv()?.raftNode?.node.raft.raftLog.committed ?? 0);
    counter('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => srv()?.appliedIndex ?? 0);
    counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.', () => srv()?.proposalsFailed ?? 0);
    gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => srv()?.pendingProposals() ?? 0);
    const id = new client.Gauge({ name: 'etcd_server_id', help: 'Server or member ID in hexadecimal format. 1 for \'server_id\' label with current ID.', labelNames: ['server_id'], registers: [r] });
    const ver = new client.Gauge({ name: 'etcd_server_version', help: 'Which version is running. 1 for \'server_version\' label with current version.', labelNames: ['server_version'], registers: [r] });
    ver.set({ server_version: version }, 1);
    this.onAttach = () => id.set({ server_id: this.server!.id }, 1);
    gauge('etcd_debugging_store_watchers', 'Count of currently active watchers.', () => st()?.hub.count ?? 0);
    counter('etcd_debugging_store_expires_total', 'Total number of expired keys.', () => st()?.stats.expireCount ?? 0);
    // By action, as etcd counts them: a failed read or write counts in *_total and in *_failed_total.
    const byAction = (name: string, help: string, read: (store: V2Store) => [string, number][]) => {
      const seen = new Map<string, number>();
      return new client.Counter({
        name,
        help,
        labelNames: ['action'],
        registers: [r],
        collect() {
          const store = st();
          if (!store) return;
          for (const [action, now] of read(store)) {
            const before = seen.get(action) ?? 0;
            if (now > before) this.inc({ action }, now - before);
            seen.set(action, Math.max(before, now));
          }
        },
      });
    };
    byAction('etcd_debugging_store_reads_total', 'Total number of reads action by (get/getRecursive), local to this member.', (s) => Object.entries(s.reads));
    byAction('etcd_debugging_store_reads_failed_total', 'Failed read actions by (get/getRecursive), local to this member.', (s) => Object.entries(s.readsFailed));
    byAction('etcd_debugging_store_writes_total', 'Total number of writes (e.g. set/compareAndDelete) seen by this member.', (s) =>
      STORE_WRITES.map(([action, ok, fail]) => [action, s.stats[ok] + s.stats[fail]]),
    );
    byAction('etcd_debugging_store_writes_failed_total', 'Failed write actions (e.g. set/compareAndDelete), seen by this member.', (s) =>
      STORE_WRITES.map(([action, , fail]) => [action, s.stats[fail]]),
    );
    counter('etcd_debugging_store_watch_requests_total', 'Total number of incoming watch requests (new or reestablished).', () => st()?.watchRequests ?? 0);
  }

  peerSent(to: string, bytes: number): void {
    this.peerSentBytes.inc({ To: to }, bytes);
  }

  peerReceived(from: string, bytes: number): void {
    this.peerReceivedBytes.inc({ From: from }, bytes);
  }

  peerSendFailed(to: string): void {
    this.peerSentFailures.inc({ To: to });
  }

  peerReceiveFailed(from: string): void {
    this.peerReceivedFailures.inc({ From: from });
  }

  peerRoundTrip(to: string, seconds: number): void {
    this.peerRoundTripTime.observe({ To: to }, seconds);
  }

  peerActive(local: string, peer: string, active: boolean): void {
    const labels = { Local: local, Remote: peer };
    if (active) this.activePeers.inc(labels);
    else {
      this.activePeers.dec(labels);
      this.disconnectedPeers.inc(labels);
    }
  }

  snapshotSent(to: string, seconds: number, ok: boolean): void {
    if (ok) this.snapshotSendDuration.observe({ To: to }, seconds);
  }

  snapshotReceived(from: string, seconds: number, ok: boolean): void {
    if (ok) this.snapshotReceiveDuration.observe({ From: from }, seconds);
  }

  private onAttach: () => void = () => undefined;

  attach(server: EtcdServer, store: V2Store): void {
    this.server = server;
    this.store = store;
    this.onAttach();
  }
}
