/**
 * A controller: an informer of its primary resource (EtcdClusters, EtcdBackups) and informers of what those own (Pods,
 * Jobs) feed a work queue of primary keys; workers reconcile one key at a time each (never the same key twice at
 * once), retry failures with backoff, requeue when the reconciler asks (a busy cluster, a schedule coming due), and a
 * periodic resync re-reconciles every object (level-triggered: a missed event costs at most one resync period).
 */
import type { OwnerReference } from './api/types';
import { KIND } from './api/types';
import type { Logger } from './reconciler';
import { WorkQueue } from './workqueue';
import type { OperatorMetrics } from './metrics';

/** What the controller needs of an informer (client-node's makeInformer result has this shape). */
export interface Source<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(namespace?: string): T[];
}

interface Meta {
  metadata?: { name?: string; namespace?: string; ownerReferences?: OwnerReference[] };
}

export interface ControllerOptions {
  /** The primary resource's informer (its name in logs). */
  clusters: Source<Meta>;
  /** What the primary objects own: an owned object's change reconciles its controller owner. */
  pods: Source<Meta>;
  reconciler: { reconcile(namespace: string, name: string): Promise<{ requeueAfterMs?: number }> };
  /** The kind of the owner references that point at the primary resource (default EtcdCluster). */
  ownerKind?: string;
  /** Names for logs: the primary and the owned resource. */
  names?: [string, string];
  log: Logger;
  metrics?: OperatorMetrics;
  resyncMs?: number;
  workers?: number;
  queue?: WorkQueue;
  informerRestartMs?: number;
}

export class Controller {
  readonly queue: WorkQueue;
  private running = false;
  private resyncTimer?: NodeJS.Timeout;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private workers: Promise<void>[] = [];

  constructor(private readonly o: ControllerOptions) {
    this.queue = o.queue ?? new WorkQueue();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { clusters, pods, log } = this.o;
    const enqueueCluster = (c: Meta): void => {
      if (c.metadata?.namespace && c.metadata.name) this.queue.add(`${c.metadata.namespace}/${c.metadata.name}`);
    };
    clusters.on('add', enqueueCluster);
    clusters.on('update', enqueueCluster);
    clusters.on('delete', enqueueCluster);
    const enqueueOwner = (p: Meta): void => {
      const owner = p.metadata?.ownerReferences?.find((r) => r.kind === (this.o.ownerKind ?? KIND) && r.controller);
      if (owner && p.metadata?.namespace) this.queue.add(`${p.metadata.namespace}/${owner.name}`);
    };
    pods.on('add', enqueueOwner);
    pods.on('update', enqueueOwner);
    pods.on('delete', enqueueOwner);
    const [primaryName, ownedName] = this.o.names ?? ['etcdclusters', 'pods'];
    for (const [name, src] of [[primaryName, clusters], [ownedName, pods]] as const) {
      // client-node's informer stops on errors other than 410 Gone: start it again after a pause
      src.on('error', (err?: unknown) => {
        if (!this.running) return;
        log.warn('watch failed, restarting', { resource: name, error: err instanceof Error ? err.message : String(err) });
        const t = setTimeout(() => {
          this.restartTimers.delete(t);
          if (this.running) src.start().catch((e: unknown) => log.warn('informer restart failed', { resource: name, error: String(e) }));
        }, this.o.informerRestartMs ?? 1000);
        this.restartTimers.add(t);
      });
    }
    await Promise.all([clusters.start(), pods.start()]);
    const resync = this.o.resyncMs ?? 60_000;
    this.resyncTimer = setInterval(() => {
      for (const c of clusters.list()) enqueueCluster(c);
    }, resync);
    for (let i = 0; i < (this.o.workers ?? 2); i++) this.workers.push(this.work());
    log.info('controller started', { resyncMs: resync });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const t of this.restartTimers) clearTimeout(t);
    this.queue.shutdown();
    await Promise.allSettled([this.o.clusters.stop(), this.o.pods.stop()]);
    await Promise.allSettled(this.workers);
    this.workers = [];
  }

  private async work(): Promise<void> {
    const { reconciler, log, metrics } = this.o;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      metrics?.queueDepth.set(this.queue.length);
      const [ns, name] = key.split('/');
      const end = metrics?.duration.startTimer();
      try {
        const r = await reconciler.reconcile(ns, name);
        metrics?.reconciles.inc({ result: 'ok' });
        this.queue.forget(key);
        if (r.requeueAfterMs !== undefined) this.queue.addAfter(key, r.requeueAfterMs);
      } catch (e) {
        metrics?.reconciles.inc({ result: 'error' });
        metrics?.errors.inc();
        const delay = this.queue.addRateLimited(key);
        log.warn('reconcile failed', { cluster: key, error: (e as Error).message, retryInMs: delay });
      } finally {
        end?.();
        this.queue.done(key);
      }
    }
  }
}
