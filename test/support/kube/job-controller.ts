/**
 * The Job controller's part for the test API server (batch/v1 Jobs, as kube-controller-manager runs them, for what
 * the operator's backup Jobs use): one pod at a time from the Job's template (named `<job>-<random>`, labelled
 * `job-name`, `batch.kubernetes.io/job-name` and `controller-uid`, owned by the Job), a new one after each failed pod
 * until `backoffLimit` failures, `activeDeadlineSeconds` (the running pod deleted, the Job Failed with
 * DeadlineExceeded); the Job's status: active/succeeded/failed counts, startTime, completionTime, and the Complete or
 * Failed condition (BackoffLimitExceeded). Parallelism and completions above 1, indexed Jobs, pod failure policies
 * and suspension are not implemented. The pods are run by the process kubelet like any other.
 */
import { randomBytes } from 'node:crypto';
import type { KObj, KubeApiServer } from './api-server';

interface JobSpec {
  backoffLimit?: number;
  activeDeadlineSeconds?: number;
  template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> };
}
interface JobStatus {
  active?: number;
  succeeded?: number;
  failed?: number;
  startTime?: string;
  completionTime?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string; lastProbeTime?: string; lastTransitionTime?: string }[];
}

const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export class JobController {
  private off?: () => void;
  private timer?: NodeJS.Timeout;
  private syncing = false;
  private again = false;

  constructor(private readonly api: KubeApiServer) {}

  start(): void {
    this.off = this.api.store.onChange((c) => {
      if (c.rt.plural === 'jobs' || c.rt.plural === 'pods') this.kick();
    });
    // deadlines pass without a change to notice them by
    this.timer = setInterval(() => this.kick(), 500);
  }

  stop(): void {
    this.off?.();
    clearInterval(this.timer);
  }

  private kick(): void {
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = true;
    // after the write that triggered it has been recorded (never inside another writer's call)
    setImmediate(() => {
      try {
        for (const job of this.api.store.list('jobs')) this.sync(job);
      } finally {
        this.syncing = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      }
    });
  }

  private sync(job: KObj): void {
    const ns = job.metadata.namespace as string;
    const name = job.metadata.name as string;
    const uid = job.metadata.uid as string;
    const spec = job.spec as JobSpec;
    const status: JobStatus = structuredClone((job.status as JobStatus | undefined) ?? {});
    const finished = status.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    const pods = this.api.store.list('pods', ns).filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === uid));
    const running = pods.filter((p) => !['Succeeded', 'Failed'].includes((p.status as { phase?: string } | undefined)?.phase ?? ''));
    const phase = (p: KObj): string => (p.status as { phase?: string } | undefined)?.phase ?? '';
    // counts never go down: a pod deleted since (by hand, by a deadline) was counted when it ended
    status.succeeded = Math.max(pods.filter((p) => phase(p) === 'Succeeded').length, status.succeeded ?? 0) || undefined;
    status.failed = Math.max(pods.filter((p) => phase(p) === 'Failed').length, status.failed ?? 0) || undefined;
    status.startTime ??= now();
    if (!finished) {
      const condition = (type: string, reason?: string, message?: string): void => {
        status.conditions = [...(status.conditions ?? []), { type, status: 'True', reason, message, lastProbeTime: now(), lastTransitionTime: now() }];
      };
      const deadline = spec.activeDeadlineSeconds !== undefined && Date.now() - Date.parse(status.startTime) > spec.activeDeadlineSeconds * 1000;
      if ((status.succeeded ?? 0) >= 1) {
        condition('Complete');
        status.completionTime = now();
      } else if ((status.failed ?? 0) > (spec.backoffLimit ?? 6)) {
        condition('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
      } else if (deadline) {
        for (const p of running) this.api.store.delete('pods', ns, p.metadata.name as string);
        condition('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
      } else if (running.length === 0) {
        this.createPod(job, spec);
      }
    }
    const active = this.api.store.list('pods', ns).filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === uid) && !['Succeeded', 'Failed'].includes((p.status as { phase?: string } | undefined)?.phase ?? '')).length;
    status.active = active || undefined;
    if (JSON.stringify(status) === JSON.stringify(job.status ?? {})) return;
    try {
      this.api.store.update('jobs', ns, name, { ...job, status }, 'status');
    } catch {
      // deleted or changed meanwhile: the next sync sees it
    }
  }

  private createPod(job: KObj, spec: JobSpec): void {
    const name = job.metadata.name as string;
    const uid = job.metadata.uid as string;
    try {
      this.api.store.create('pods', job.metadata.namespace as string, {
        metadata: {
          name: `${name}-${randomBytes(3).toString('hex').slice(0, 5)}`,
          labels: { ...(spec.template.metadata?.labels ?? {}), 'job-name': name, 'batch.kubernetes.io/job-name': name, 'controller-uid': uid, 'batch.kubernetes.io/controller-uid': uid },
          annotations: spec.template.metadata?.annotations,
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid, controller: true, blockOwnerDeletion: true } as never],
        },
        spec: structuredClone(spec.template.spec),
      });
    } catch {
      // the namespace is going: nothing to run
    }
  }
}
