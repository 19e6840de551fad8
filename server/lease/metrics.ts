/** etcd's lease metrics (lease/metrics.go), on the server's registry. */
import * as client from 'prom-client';

export class LeaseMetrics {
  readonly granted: client.Counter;
  readonly revoked: client.Counter;
  readonly renewed: client.Counter;
  readonly ttls: client.Histogram;
  /** etcd_debugging_server_lease_expired_total: leases the leader revoked because they expired. */
  readonly expired: client.Counter;

  constructor(r: client.Registry) {
    const registers = [r];
    this.granted = new client.Counter({ name: 'etcd_debugging_lease_granted_total', help: 'The total number of granted leases.', registers });
    this.revoked = new client.Counter({ name: 'etcd_debugging_lease_revoked_total', help: 'The total number of revoked leases.', registers });
    this.renewed = new client.Counter({ name: 'etcd_debugging_lease_renewed_total', help: 'The number of renewed leases seen by the leader.', registers });
    // 1 second -> 3 months, as etcd's ExponentialBuckets(1, 2, 24)
    this.ttls = new client.Histogram({ name: 'etcd_debugging_lease_ttl_total', help: 'Bucketed histogram of lease TTLs.', buckets: client.exponentialBuckets(1, 2, 24), registers });
    this.expired = new client.Counter({ name: 'etcd_debugging_server_lease_expired_total', help: 'The total number of expired leases.', registers });
  }
}
