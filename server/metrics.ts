import * as client from 'prom-client';
import { EtcdServer } from './etcdserver/server';
import { StateType } from './raft';
import { StoreStats, V2Store } from './store';

/** etcd's store statistics behind etcd_debugging_store_{reads,writes}_total, by the action label etcd uses. */
const STORE_READS: [keyof StoreStats, string][] = [['getsSuccess', 'get']];
const STORE_WRITES: [keyof StoreStats, string][] = [
  ['setsSuccess', 'set'],
  ['createSuccess', 'create'],
  ['updateSuccess', 'update'],
  ['deleteSuccess', 'delete'],
  ['compareAndSwapSuccess', 'compareAndSwap'],
  ['compareAndDeleteSuccess', 'compareAndDelete'],
];

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
    const gauge = (name: string, help: string, read: () => number) =>
      new client.Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
    const counter = (name: string, help: string, read: () => number) => {
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
    };
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
    const byAction = (name: string, help: string, fields: [keyof StoreStats, string][]) => {
      const seen = new Map<string, number>();
      return new client.Counter({
        name,
        help,
        labelNames: ['action'],
        registers: [r],
        collect() {
          const stats = st()?.stats;
          if (!stats) return;
          for (const [field, action] of fields) {
            const before = seen.get(action) ?? 0;
            if (stats[field] > before) this.inc({ action }, stats[field] - before);
            seen.set(action, Math.max(before, stats[field]));
          }
        },
      });
    };
    byAction('etcd_debugging_store_reads_total', 'Total number of reads action by (get/getRecursive), local to this member.', STORE_READS);
    byAction('etcd_debugging_store_writes_total', 'Total number of writes (e.g. set/compareAndDelete) seen by this member.', STORE_WRITES);
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

  private onAttach: () => void = () => undefined;

  attach(server: EtcdServer, store: V2Store): void {
    this.server = server;
    this.store = store;
    this.onAttach();
  }
}
