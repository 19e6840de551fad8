import * as client from 'prom-client';
import { EtcdServer } from './etcdserver/server';
import { StateType } from './raft';
import { V2Store } from './store';

/** Prometheus metrics under etcd's names, plus the process metrics. */
export class ServerMetrics {
  readonly registry = new client.Registry();
  readonly walFsync: client.Histogram;
  readonly proposalsFailed: client.Counter;
  private server: EtcdServer | undefined;
  private store: V2Store | undefined;

  constructor() {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r });
    this.walFsync = new client.Histogram({
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'The latency distributions of fsync called by WAL.',
      buckets: client.exponentialBuckets(0.001, 2, 14),
      registers: [r],
    });
    this.proposalsFailed = new client.Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers: [r] });
    const self = this;
    new client.Gauge({
      name: 'etcd_server_has_leader',
      help: 'Whether or not a leader exists. 1 is existence, 0 is not.',
      registers: [r],
      collect() {
        this.set(self.server && self.server.lead !== '' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'etcd_server_is_leader',
      help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.',
      registers: [r],
      collect() {
        this.set(self.server?.raftState === StateType.Leader ? 1 : 0);
      },
    });
    let seenChanges = 0;
    new client.Counter({
      name: 'etcd_server_leader_changes_seen_total',
      help: 'The number of leader changes seen.',
      registers: [r],
      collect() {
        const now = self.server?.leaderChanges ?? 0;
        if (now > seenChanges) this.inc(now - seenChanges);
        seenChanges = now;
      },
    });
    new client.Gauge({
      name: 'etcd_server_proposals_committed_total',
      help: 'The total number of consensus proposals committed.',
      registers: [r],
      collect() {
        this.set(self.server?.raftNode?.node.raft.raftLog.committed ?? 0);
      },
    });
    new client.Gauge({
      name: 'etcd_server_proposals_applied_total',
      help: 'The total number of consensus proposals applied.',
      registers: [r],
      collect() {
        this.set(self.server?.appliedIndex ?? 0);
      },
    });
    new client.Gauge({
      name: 'etcd_server_proposals_pending',
      help: 'The current number of pending proposals to commit.',
      registers: [r],
      collect() {
        this.set(self.server?.pendingProposals() ?? 0);
      },
    });
    new client.Gauge({
      name: 'etcd_debugging_store_watchers',
      help: 'Count of currently active watchers.',
      registers: [r],
      collect() {
        this.set(self.store?.hub.count ?? 0);
      },
    });
    let seenExpires = 0;
    new client.Counter({
      name: 'etcd_debugging_store_expires_total',
      help: 'Total number of expired keys.',
      registers: [r],
      collect() {
        const now = self.store?.stats.expireCount ?? 0;
        if (now > seenExpires) this.inc(now - seenExpires);
        seenExpires = now;
      },
    });
  }

  attach(server: EtcdServer, store: V2Store): void {
    this.server = server;
    this.store = store;
  }
}
