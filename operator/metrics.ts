/** The operator's Prometheus metrics (prom-client, own registry). */
import * as client from 'prom-client';

export class OperatorMetrics {
  readonly registry = new client.Registry();
  readonly reconciles = new client.Counter({ name: 'etcd_operator_reconciles_total', help: 'Reconciles run, by result (ok, error).', labelNames: ['result'], registers: [this.registry] });
  readonly errors = new client.Counter({ name: 'etcd_operator_reconcile_errors_total', help: 'Reconciles that failed.', registers: [this.registry] });
  readonly duration = new client.Histogram({
    name: 'etcd_operator_reconcile_duration_seconds',
    help: 'Time one reconcile took.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly actions = new client.Counter({ name: 'etcd_operator_actions_total', help: 'Actions taken on clusters, by kind.', labelNames: ['action'], registers: [this.registry] });
  readonly conflicts = new client.Counter({ name: 'etcd_operator_api_conflicts_total', help: 'API 409 conflicts answered by re-reading.', registers: [this.registry] });
  readonly leader = new client.Gauge({ name: 'etcd_operator_is_leader', help: '1 while this replica holds the leader lease.', registers: [this.registry] });
  readonly queueDepth = new client.Gauge({ name: 'etcd_operator_workqueue_depth', help: 'Keys waiting in the work queue.', registers: [this.registry] });
  /** Per EtcdBackup, from its status (so they are right after a restart of the operator too). */
  readonly backupLastSuccess = new client.Gauge({
    name: 'etcd_operator_backup_last_success_timestamp_seconds',
    help: 'When the last successful snapshot of an EtcdBackup was taken (Unix time).',
    labelNames: ['namespace', 'backup', 'cluster'],
    registers: [this.registry],
  });
  readonly backupLastSize = new client.Gauge({ name: 'etcd_operator_backup_last_size_bytes', help: 'Size of the last successful snapshot of an EtcdBackup.', labelNames: ['namespace', 'backup', 'cluster'], registers: [this.registry] });
  readonly backupLastRevision = new client.Gauge({ name: 'etcd_operator_backup_last_revision', help: 'The store revision in the last successful snapshot of an EtcdBackup.', labelNames: ['namespace', 'backup', 'cluster'], registers: [this.registry] });
  readonly backups = new client.Counter({ name: 'etcd_operator_backups_total', help: 'Backup runs finished, by result (succeeded, failed).', labelNames: ['namespace', 'backup', 'result'], registers: [this.registry] });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'etcd_operator_' });
    // prom-client's nodejs_active_{handles,requests,resources}_total are gauges named like counters, which Prometheus'
    // conventions (and `promtool check metrics`) reject; each is the sum of the by-type gauge beside it, so drop them.
    for (const m of this.registry.getMetricsAsArray()) {
      if (m.name.endsWith('_total') && !(m instanceof client.Counter)) this.registry.removeSingleMetric(m.name);
    }
  }
}
