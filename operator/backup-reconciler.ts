/**
 * One reconcile of one EtcdBackup: observe (its Jobs and what their pods reported, its cluster's availability and
 * members) → plan (backup-planner.ts) → act (create the due run's Job, delete old Jobs) → status, events, metrics.
 */
import {
  ANN_SCHEDULED_TIME,
  API_VERSION,
  BACKUP_KIND,
  BACKUP_PLURAL,
  GROUP,
  LABEL_BACKUP,
  PLURAL,
  VERSION,
  withDefaults,
  type EtcdBackup,
  type EtcdBackupStatus,
  type EtcdCluster,
} from './api/types';
import { advertiseClientURL, tlsSecrets } from './api/naming';
import { planBackup, type AgentResult, type BackupObserved, type JobView } from './backup-planner';
import { ApiError, KubeApi, paths } from './kube-api';
import type { Logger, ReconcileResult } from './reconciler';
import * as R from './resources';
import type { KObject } from './resources';
import type { OperatorMetrics } from './metrics';

export interface BackupReconcilerOptions {
  kube: KubeApi;
  log: Logger;
  instance: string;
  /** The image backup Jobs run (`etcd-operator backup`). */
  image: string;
  metrics?: OperatorMetrics;
  now?: () => number;
}

interface JobObject extends KObject {
  status?: { active?: number; succeeded?: number; failed?: number; completionTime?: string; conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] };
}
interface PodObject extends KObject {
  status?: { phase?: string; containerStatuses?: { name: string; state?: { terminated?: { exitCode?: number; message?: string; finishedAt?: string } } }[] };
}

const backupPath = (ns: string, name?: string): string => paths.group(`${GROUP}/${VERSION}`, ns, BACKUP_PLURAL, name);
const jobsPath = (ns: string, name?: string): string => paths.group('batch/v1', ns, 'jobs', name);

export class BackupReconciler {
  private readonly now: () => number;
  constructor(private readonly o: BackupReconcilerOptions) {
    this.now = o.now ?? Date.now;
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const { kube } = this.o;
    const b = await kube.get<EtcdBackup>(backupPath(namespace, name));
    if (!b || b.metadata.deletionTimestamp) return {}; // its Jobs go with it (owner references)
    const cluster = b.spec.clusterName ? await kube.get<EtcdCluster>(paths.group(`${GROUP}/${VERSION}`, namespace, PLURAL, b.spec.clusterName)) : undefined;
    const status = b.status ?? {};
    const counted = status.lastFinishedScheduleTime ? Date.parse(status.lastFinishedScheduleTime) : -Infinity;
    const jobs = await this.jobs(b, counted);
    const observed: BackupObserved = {
      spec: b.spec,
      status,
      generation: b.metadata.generation,
      createdAt: b.metadata.creationTimestamp ? Date.parse(b.metadata.creationTimestamp) : this.now(),
      now: this.now(),
      jobs,
      cluster: clusterView(cluster),
    };
    const p = planBackup(name, observed);

    if (p.createJob) {
      const job = R.backupJob(b, p.createJob.name, p.createJob.scheduledTime, { endpoints: p.createJob.endpoints, tlsSecret: cluster ? tlsSecrets(withDefaults(cluster.spec), cluster.metadata.name as string).operator : undefined }, this.o.image);
      try {
        await kube.create(jobsPath(namespace), job);
      } catch (e) {
        if (!(e instanceof ApiError && e.isAlreadyExists)) throw e;
      }
    }
    for (const j of p.deleteJobs) await kube.delete(jobsPath(namespace, j), { propagationPolicy: 'Background' });
    for (const ev of p.events) await this.event(b, ev.type, ev.reason, ev.message);
    const m = this.o.metrics;
    for (const rec of p.succeeded) {
      m?.backups.inc({ namespace, backup: name, result: 'succeeded' });
      this.o.log.info('backup succeeded', { backup: `${namespace}/${name}`, job: rec.job, file: rec.file, revision: rec.revision, size: rec.size, sha256: rec.sha256 });
    }
    for (const job of p.failed) {
      m?.backups.inc({ namespace, backup: name, result: 'failed' });
      this.o.log.warn('backup failed', { backup: `${namespace}/${name}`, job, message: p.status.lastFailure?.message });
    }
    const last = p.status.lastBackup;
    if (m && last?.time) {
      const labels = { namespace, backup: name, cluster: b.spec.clusterName };
      m.backupLastSuccess.set(labels, Date.parse(last.time) / 1000);
      if (last.size !== undefined) m.backupLastSize.set(labels, last.size);
      if (last.revision !== undefined) m.backupLastRevision.set(labels, last.revision);
    }
    await this.writeStatus(b, p.status);
    return { requeueAfterMs: p.requeueAfterMs ?? (p.status.active ? 2000 : undefined) };
  }

  /** Its Jobs, with what the pods of the finished ones not yet counted reported. */
  private async jobs(b: EtcdBackup, counted: number): Promise<JobView[]> {
    const ns = b.metadata.namespace as string;
    const list = await this.o.kube.list<JobObject>(jobsPath(ns), `${LABEL_BACKUP}=${b.metadata.name}`);
    const out: JobView[] = [];
    for (const j of list.items) {
      if (!(j.metadata.ownerReferences ?? []).some((r) => r.uid === b.metadata.uid)) continue;
      const scheduled = Date.parse(j.metadata.annotations?.[ANN_SCHEDULED_TIME] ?? j.metadata.creationTimestamp ?? '');
      const cond = (t: string) => j.status?.conditions?.find((c) => c.type === t && c.status === 'True');
      const complete = cond('Complete');
      const failed = cond('Failed');
      const view: JobView = { name: j.metadata.name as string, scheduledTime: Number.isNaN(scheduled) ? 0 : scheduled, state: complete ? 'succeeded' : failed ? 'failed' : 'active' };
      if (view.state !== 'active' && Math.floor(view.scheduledTime / 1000) * 1000 > counted) {
        const at = (complete ?? failed)?.lastTransitionTime ?? j.status?.completionTime;
        view.finishedAt = at ? Date.parse(at) : undefined;
        if (failed) view.failure = `${failed.reason ?? 'Failed'}: ${failed.message ?? 'the Job failed'}`;
        view.result = await this.report(ns, view.name, view.state === 'succeeded');
      }
      out.push(view);
    }
    return out;
  }

  /** The backup pod's termination message: of the pod that succeeded, or of the last one that failed. */
  private async report(ns: string, job: string, succeeded: boolean): Promise<AgentResult | undefined> {
    const pods = await this.o.kube.list<PodObject>(paths.core(ns, 'pods'), `job-name=${job}`);
    const ended = pods.items
      .filter((p) => (succeeded ? p.status?.phase === 'Succeeded' : p.status?.phase === 'Failed'))
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    for (const p of ended.reverse()) {
      const msg = p.status?.containerStatuses?.find((c) => c.name === 'backup')?.state?.terminated?.message;
      if (!msg) continue;
      try {
        return JSON.parse(msg) as AgentResult;
      } catch {
        return { ok: false, error: msg.slice(0, 500) };
      }
    }
    return undefined;
  }

  private async writeStatus(b: EtcdBackup, status: EtcdBackupStatus): Promise<void> {
    if (JSON.stringify(b.status ?? {}) === JSON.stringify(status)) return;
    const path = `${backupPath(b.metadata.namespace as string, b.metadata.name)}/status`;
    // a conflict (someone changed it since we read it) is left to the next reconcile, which reads it again
    await this.o.kube.replace(path, { apiVersion: API_VERSION, kind: BACKUP_KIND, metadata: b.metadata, spec: b.spec, status });
  }

  private async event(b: EtcdBackup, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      await this.o.kube.create(paths.core(b.metadata.namespace as string, 'events'), R.event({ metadata: b.metadata, kind: BACKUP_KIND }, type, reason, message, this.o.instance, new Date(this.now())));
    } catch (e) {
      this.o.log.warn('could not record event', { reason, error: (e as Error).message });
    }
  }
}

/**
 * Whether the cluster can give a snapshot (a quorum: Available), and from whom: its ready voting members' in-cluster
 * client URLs (the Job runs in the cluster), followers first and the leader last, to spare the leader the work.
 */
function clusterView(c: EtcdCluster | undefined): BackupObserved['cluster'] {
  if (!c) return { exists: false, available: false, endpoints: [] };
  const spec = withDefaults(c.spec);
  const st = c.status ?? {};
  const available = st.conditions?.some((x) => x.type === 'Available' && x.status === 'True') ?? false;
  const members = (st.members ?? []).filter((m) => m.ready && !m.learner && m.name !== '');
  members.sort((a, b) => Number(a.name === st.leader) - Number(b.name === st.leader));
  return { exists: true, available, endpoints: members.map((m) => advertiseClientURL(c.metadata.name as string, c.metadata.namespace as string, m.name, spec)) };
}
