/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews the lease every retry
 * period; a candidate takes the lease only when the record it observed has not changed for a whole lease duration
 * (measured on its own clock, so clock skew between replicas does not matter); every write is a compare-and-swap on
 * the resourceVersion (409 = someone else won, try again later); a leader that cannot renew within the renew
 * deadline stops leading; on shutdown the leader releases the lease so a standby takes over at once.
 */
import { ApiError, KubeApi, paths } from './kube-api';
import type { Logger } from './reconciler';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  kube: KubeApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

/** MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private observed?: { record: string; at: number };
  private lastRenew = 0;
  private readonly duration: number;
  private readonly deadline: number;
  private readonly retry: number;
  private readonly path: string;

  constructor(private readonly o: LeaderElectionOptions) {
    this.duration = o.leaseDurationMs ?? 15_000;
    this.deadline = o.renewDeadlineMs ?? 10_000;
    this.retry = o.retryPeriodMs ?? 2_000;
    this.path = paths.group('coordination.k8s.io/v1', o.namespace, 'leases', o.name);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.retry);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.o.log.info('became leader', { lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity });
          this.o.onStartedLeading();
        }
      }
    } catch (e) {
      this.o.log.warn('lease update failed', { error: (e as Error).message });
    }
    if (this.leading && Date.now() - this.lastRenew > this.deadline) {
      this.leading = false;
      this.o.log.error('lost the lease (could not renew within the renew deadline)', { identity: this.o.identity });
      this.o.onStoppedLeading();
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, identity } = this.o;
    const now = Date.now();
    const lease = await kube.get<Lease>(this.path);
    const mine: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.duration / 1000), acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 };
    if (!lease) {
      try {
        await kube.create(paths.group('coordination.k8s.io/v1', this.o.namespace, 'leases'), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: mine,
        });
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.code === 409) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify(spec);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const held = !!spec.holderIdentity && spec.holderIdentity !== identity;
    const duration = (spec.leaseDurationSeconds ?? Math.ceil(this.duration / 1000)) * 1000;
    if (held && now - this.observed.at < duration) {
      if (this.leading) {
        this.leading = false;
        this.o.log.error('another replica holds the lease', { holder: spec.holderIdentity });
        this.o.onStoppedLeading();
      }
      return false;
    }
    const next: LeaseSpec =
      spec.holderIdentity === identity
        ? { ...spec, renewTime: microTime(now), leaseDurationSeconds: mine.leaseDurationSeconds }
        : { ...mine, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 };
    try {
      await kube.replace(this.path, { ...lease, spec: next });
      this.observed = { record: JSON.stringify(next), at: now };
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 409) return false;
      throw e;
    }
  }

  /** Stop campaigning; a leader gives the lease up so a standby does not wait for it to expire. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading || !release) {
      this.leading = false;
      return;
    }
    this.leading = false;
    try {
      const lease = await this.o.kube.get<Lease>(this.path);
      if (lease?.spec?.holderIdentity === this.o.identity) {
        await this.o.kube.replace(this.path, { ...lease, spec: { ...lease.spec, holderIdentity: '', renewTime: microTime(Date.now()), leaseDurationSeconds: 1 } });
      }
    } catch (e) {
      this.o.log.warn('could not release the lease', { error: (e as Error).message });
    }
  }
}
