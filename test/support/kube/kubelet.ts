/**
 * A fake kubelet for the test API server: it "runs" the pods of EtcdCluster members by starting/stopping their
 * member in the FakeEtcd stand-in, and writes pod status (phase, Ready condition, containerStatuses) through the
 * /status subresource the way the kubelet does. An image change in the pod spec restarts the container (the member
 * stops, then starts again on the same data). Pods that fail to start stay Running and unready (CrashLoopBackOff).
 * Work happens on timers (a few ms), never synchronously inside the API request that caused it.
 */
import type { KObj, KubeApiServer } from './api-server';
import type { FakeEtcd } from './fake-etcd';

const CLUSTER_LABEL = 'etcd.ts-etcd.io/cluster';

interface PodSpec {
  containers?: { name: string; image?: string; args?: string[] }[];
}

export class FakeKubelet {
  private off?: () => void;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Map<string, string>(); // ns/pod → image running
  /** Pods (ns/name) this kubelet will not start (a node that is down). */
  readonly broken = new Set<string>();

  constructor(
    private readonly api: KubeApiServer,
    private readonly etcd: FakeEtcd,
    private readonly delayMs = 20,
  ) {}

  start(): void {
    this.off = this.api.store.onChange((c) => {
      if (c.rt.plural !== 'pods') return;
      const pod = c.obj;
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
      if (c.type === 'DELETED') {
        this.later(() => this.stop(pod));
        return;
      }
      const ctr = (pod.spec as PodSpec | undefined)?.containers?.[0];
      if (this.running.get(key) !== ctr?.image) this.later(() => this.sync(key));
    });
    for (const p of this.api.store.list('pods')) this.later(() => this.sync(`${p.metadata.namespace}/${p.metadata.name}`));
  }

  stopAll(): void {
    this.off?.();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private later(fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, this.delayMs);
    this.timers.add(t);
  }

  /** The member's process dies and keeps crashing (the container restarts, unready) until recover(). */
  crash(ns: string, name: string): void {
    const key = `${ns}/${name}`;
    this.broken.add(key);
    const pod = this.api.store.get('pods', ns, name);
    if (!pod) return;
    this.etcd.stopMember(ns, pod.metadata.labels?.[CLUSTER_LABEL] as string, name);
    this.writeStatus(ns, name, { phase: 'Running', ready: false, image: this.running.get(key) ?? '', reason: 'CrashLoopBackOff' });
  }

  recover(ns: string, name: string): void {
    const key = `${ns}/${name}`;
    this.broken.delete(key);
    this.running.delete(key);
    this.later(() => this.sync(key));
  }

  private stop(pod: KObj): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    this.running.delete(key);
    const cluster = pod.metadata.labels?.[CLUSTER_LABEL];
    if (cluster) this.etcd.stopMember(pod.metadata.namespace as string, cluster, pod.metadata.name as string);
  }

  /** Bring the pod to what its spec says. */
  private sync(key: string): void {
    const [ns, name] = key.split('/');
    const pod = this.api.store.get('pods', ns, name);
    if (!pod || this.broken.has(key)) return;
    const ctr = (pod.spec as PodSpec | undefined)?.containers?.[0];
    if (!ctr) return;
    const cluster = pod.metadata.labels?.[CLUSTER_LABEL] as string;
    const was = this.running.get(key);
    if (was === ctr.image) return;
    if (was !== undefined) {
      // the image changed: the container restarts (unready while it does)
      this.etcd.stopMember(ns, cluster, name);
      this.writeStatus(ns, name, { phase: 'Running', ready: false, image: was, reason: 'Restarting' });
    }
    this.running.set(key, ctr.image as string);
    const ok = this.etcd.startMember(ns, cluster, name, ctr.args ?? []);
    this.later(() => this.writeStatus(ns, name, { phase: 'Running', ready: ok, image: ctr.image as string, reason: ok ? undefined : 'CrashLoopBackOff' }));
  }

  private writeStatus(ns: string, name: string, s: { phase: string; ready: boolean; image: string; reason?: string }): void {
    const pod = this.api.store.get('pods', ns, name);
    if (!pod) return;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const old = (pod.status as { conditions?: { type: string; status: string; lastTransitionTime: string }[] } | undefined)?.conditions?.find((c) => c.type === 'Ready');
    const status = s.ready ? 'True' : 'False';
    pod.status = {
      phase: s.phase,
      podIP: '127.0.0.1',
      conditions: [{ type: 'Ready', status, lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now }],
      containerStatuses: [
        { name: 'etcd', image: s.image, ready: s.ready, restartCount: 0, state: s.reason === 'CrashLoopBackOff' ? { waiting: { reason: 'CrashLoopBackOff' } } : { running: { startedAt: now } } },
      ],
    };
    try {
      this.api.store.update('pods', ns, name, pod, 'status');
    } catch {
      // deleted or changed meanwhile: the watch brings us back
    }
  }
}

/** Wait until `fn` returns a truthy value (polled; bounded by the deadline). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 25): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<Awaited<T>>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
