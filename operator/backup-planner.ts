/**
 * The backup planner (pure: observed state and `now` in, the next status and actions out): what one EtcdBackup needs
 * done. A run is a Job (operator/resources.ts `backupJob`) whose pod streams a snapshot from a healthy member
 * (operator/backup-agent.ts) to the claim and reports what it wrote in its termination message.
 *
 *  - each finished run is counted once, in the order the runs were due: a success becomes `lastBackup` (time,
 *    revision, size, SHA-256, member) and the list of snapshots kept on the claim; a failure `lastFailure`;
 *  - a one-off backup (no schedule) runs once, as soon as its cluster is available; a scheduled one runs when its
 *    schedule comes due (missed runs count as one, the latest, as CronJobs do), never two at once (a run due while one
 *    is active is skipped), never while suspended, and only when the cluster is available (else skipped, with a
 *    warning) — a snapshot is taken from a healthy member of a cluster with a quorum;
 *  - finished Jobs are kept for a while (the last 3 successful and the last failed), then deleted — once a stored
 *    status has counted them.
 */
import {
  DEFAULT_RETENTION,
  type BackupPhase,
  type BackupRecord,
  type EtcdBackupSpec,
  type EtcdBackupStatus,
} from './api/types';
import { lastRunBetween, nextRun, parseSchedule, ScheduleError, type Schedule } from './cron';

/** What a backup pod reports (its termination message, JSON). */
export type AgentResult =
  | { ok: true; file: string; member?: string; endpoint: string; time: string; size: number; sha256: string; revision: number; totalKey?: number; kept: string[] }
  | { ok: false; error: string };

export interface JobView {
  name: string;
  /** When the run was due (ms), from the Job's annotation. */
  scheduledTime: number;
  state: 'active' | 'succeeded' | 'failed';
  /** The pod's report, once it ended (a failure may have none: killed, deadline). */
  result?: AgentResult;
  /** Why it failed, as the Job says (BackoffLimitExceeded, DeadlineExceeded: its message). */
  failure?: string;
  finishedAt?: number;
}

export interface BackupObserved {
  spec: EtcdBackupSpec;
  status: EtcdBackupStatus;
  generation?: number;
  /** The EtcdBackup's creation (ms): a schedule counts from there. */
  createdAt: number;
  now: number;
  /** The Jobs it owns. */
  jobs: JobView[];
  /** The cluster it backs up: whether it has a quorum and a member to take the snapshot from. */
  cluster: { exists: boolean; available: boolean; endpoints: string[] };
}

export interface BackupEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface BackupPlan {
  status: EtcdBackupStatus;
  /** A run to start: a Job with this name, due at this time, snapshotting from these endpoints (in order). */
  createJob?: { name: string; scheduledTime: number; endpoints: string[] };
  deleteJobs: string[];
  events: BackupEvent[];
  /** Newly counted successes (for metrics). */
  succeeded: (BackupRecord & { job: string })[];
  failed: string[];
  requeueAfterMs?: number;
}

const KEEP_SUCCEEDED_JOBS = 3;
const KEEP_FAILED_JOBS = 1;
/** How soon to look again when waiting for the cluster (one-off) or a Job. */
const RETRY_MS = 5000;

/** Times in the status are whole seconds (RFC 3339); so are due times, so that a run compares equal to its record. */
const seconds = (ms: number): number => Math.floor(ms / 1000) * 1000;
const rfc3339 = (ms: number): string => new Date(seconds(ms)).toISOString().replace(/\.\d{3}Z$/, 'Z');
const parseTime = (s: string | undefined): number | undefined => (s ? Date.parse(s) : undefined);

/** A Job name for the run due at `t`: `<backup>-<unix seconds>` (cut to fit Kubernetes' 63-character label values). */
export function jobName(backup: string, t: number): string {
  const suffix = `-${Math.floor(t / 1000)}`;
  return `${backup.slice(0, 63 - suffix.length).replace(/[-.]+$/, '')}${suffix}`;
}

export function planBackup(name: string, o: BackupObserved): BackupPlan {
  const status: EtcdBackupStatus = { ...o.status, observedGeneration: o.generation };
  const out: BackupPlan = { status, deleteJobs: [], events: [], succeeded: [], failed: [] };

  // Each finished run, once, in the order they were due.
  const counted = parseTime(status.lastFinishedScheduleTime) ?? -Infinity;
  const finished = o.jobs.filter((j) => j.state !== 'active').sort((a, b) => a.scheduledTime - b.scheduledTime);
  for (const j of finished) {
    if (seconds(j.scheduledTime) <= counted) continue;
    status.lastFinishedScheduleTime = rfc3339(j.scheduledTime);
    if (j.state === 'succeeded' && j.result?.ok) {
      const r = j.result;
      const rec: BackupRecord & { job: string } = { file: r.file, time: r.time, revision: r.revision, size: r.size, sha256: r.sha256, member: r.member, job: j.name };
      status.lastBackup = rec;
      status.lastSuccessfulTime = r.time;
      status.succeeded = (status.succeeded ?? 0) + 1;
      // what is on the claim now: the agent's list, with what we know of each file
      const known = new Map((status.backups ?? []).map((b) => [b.file, b]));
      const { job: _job, ...mine } = rec;
      known.set(r.file, mine);
      status.backups = [...r.kept].sort().map((f) => known.get(f) ?? { file: f });
      out.succeeded.push(rec);
      out.events.push({ type: 'Normal', reason: 'BackupSucceeded', message: `snapshot ${r.file} of revision ${r.revision} (${r.size} bytes, sha256 ${r.sha256.slice(0, 16)}…) from ${r.member ?? r.endpoint}; ${r.kept.length} kept` });
    } else {
      const why = j.result && !j.result.ok ? j.result.error : j.failure ?? 'the backup pod failed without a report';
      status.lastFailure = { time: rfc3339(j.finishedAt ?? o.now), job: j.name, message: why };
      status.failed = (status.failed ?? 0) + 1;
      out.failed.push(j.name);
      out.events.push({ type: 'Warning', reason: 'BackupFailed', message: `backup ${j.name} failed: ${why}` });
    }
  }

  // Finished Jobs beyond the history kept go — only those a stored status counted already (a Job counted just now
  // stays until the status saying so is written: if that write fails, the next reconcile counts it again).
  const old = (state: JobView['state'], keep: number): string[] =>
    finished
      .filter((j) => j.state === state && seconds(j.scheduledTime) <= counted)
      .slice(0, -keep || undefined)
      .map((j) => j.name);
  out.deleteJobs = [...old('succeeded', KEEP_SUCCEEDED_JOBS), ...old('failed', KEEP_FAILED_JOBS)];

  const active = o.jobs.filter((j) => j.state === 'active');
  status.active = active.length > 0 ? active.map((j) => j.name) : undefined;

  let schedule: Schedule | undefined;
  if (o.spec.schedule !== undefined) {
    try {
      schedule = parseSchedule(o.spec.schedule);
    } catch (e) {
      if (!(e instanceof ScheduleError)) throw e;
      return finish(out, 'Failed', `spec.schedule: ${e.message}`);
    }
  }
  const retention = o.spec.retention ?? DEFAULT_RETENTION;
  if (!Number.isInteger(retention) || retention < 1) return finish(out, 'Failed', `spec.retention must be at least 1, got ${retention}`);
  if (!o.cluster.exists) {
    out.requeueAfterMs = RETRY_MS;
    return finish(out, active.length > 0 ? 'Running' : 'Pending', `EtcdCluster ${o.spec.clusterName} not found`);
  }

  // One-off: one run, as soon as the cluster can give a snapshot.
  if (!schedule) {
    // started: a status that says so, or a Job of ours (the status write after creating it may have been lost)
    if (status.lastScheduleTime === undefined && o.jobs.length === 0) {
      if (!o.cluster.available || o.cluster.endpoints.length === 0) {
        out.requeueAfterMs = RETRY_MS;
        return finish(out, 'Pending', `waiting for EtcdCluster ${o.spec.clusterName} to be available`);
      }
      return start(out, name, seconds(o.now), o.cluster.endpoints, 'Running', 'taking a snapshot');
    }
    if (status.lastScheduleTime === undefined) status.lastScheduleTime = rfc3339(Math.min(...o.jobs.map((j) => j.scheduledTime)));
    if (active.length > 0) return finish(out, 'Running', `backup ${active[0].name} running`);
    if (status.lastBackup) return finish(out, 'Succeeded', `snapshot ${status.lastBackup.file} taken`);
    if (status.lastFailure) return finish(out, 'Failed', status.lastFailure.message);
    out.requeueAfterMs = RETRY_MS;
    return finish(out, 'Running', 'waiting for the backup Job');
  }

  // Scheduled.
  const since = parseTime(status.lastScheduleTime) ?? o.createdAt;
  const due = o.spec.suspend ? undefined : lastRunBetween(schedule, since, o.now);
  if (due !== undefined) {
    status.lastScheduleTime = rfc3339(due);
    if (active.length > 0) {
      out.events.push({ type: 'Warning', reason: 'BackupSkipped', message: `the run due ${rfc3339(due)} is skipped: ${active[0].name} is still running` });
    } else if (!o.cluster.available || o.cluster.endpoints.length === 0) {
      out.events.push({ type: 'Warning', reason: 'BackupSkipped', message: `the run due ${rfc3339(due)} is skipped: EtcdCluster ${o.spec.clusterName} is not available` });
    } else {
      const next = nextRun(schedule, due);
      status.nextScheduleTime = next === undefined ? undefined : rfc3339(next);
      out.requeueAfterMs = next === undefined ? undefined : Math.max(0, next - o.now) + 50;
      return start(out, name, due, o.cluster.endpoints, 'Running', `taking the snapshot due ${rfc3339(due)}`);
    }
  }
  const next = o.spec.suspend ? undefined : nextRun(schedule, parseTime(status.lastScheduleTime) ?? o.createdAt);
  status.nextScheduleTime = next === undefined ? undefined : rfc3339(next);
  // a little past the due time, so that the run is due when we look
  out.requeueAfterMs = next === undefined ? undefined : Math.max(0, next - o.now) + 50;
  if (active.length > 0) return finish(out, 'Running', `backup ${active[0].name} running`);
  if (o.spec.suspend) return finish(out, 'Suspended', 'spec.suspend is set: no new runs');
  return finish(out, 'Scheduled', next === undefined ? 'the schedule never comes due' : `next run at ${rfc3339(next)}`);
}

function start(out: BackupPlan, name: string, due: number, endpoints: string[], phase: BackupPhase, message: string): BackupPlan {
  const job = jobName(name, due);
  out.createJob = { name: job, scheduledTime: due, endpoints };
  out.status.lastScheduleTime = rfc3339(due);
  out.status.active = [...(out.status.active ?? []), job];
  out.events.push({ type: 'Normal', reason: 'BackupStarted', message: `${message}: Job ${job}` });
  return finish(out, phase, message);
}

function finish(out: BackupPlan, phase: BackupPhase, message: string): BackupPlan {
  out.status.phase = phase;
  out.status.message = message;
  return out;
}
