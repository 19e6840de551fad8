/**
 * The EtcdCluster custom resource (etcd.ts-etcd.io/v1alpha1): spec, status and the defaults the operator applies.
 * The CRD in manifests/crd.yaml carries the same defaults in its OpenAPI v3 schema; `withDefaults` makes the operator
 * independent of whether the API server applied them (older objects, tests).
 */

export const GROUP = 'etcd.ts-etcd.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'EtcdCluster';
export const PLURAL = 'etcdclusters';

export const DEFAULT_VERSION = '3.4.34';
export const DEFAULT_REPOSITORY = 'ts-etcd/etcd';
export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
/** Plain-HTTP /metrics and /health of every member (--listen-metrics-urls), scrapable without a client certificate. */
export const METRICS_PORT = 2381;
/** Where a member's volume is mounted; its data dir (the volume's root, or `data` in it for a restored cluster). */
export const DATA_DIR = '/var/lib/etcd';
/**
 * `etcdctl snapshot restore` makes the data dir and refuses one that exists, and a volume's root always does: a
 * cluster seeded from a backup keeps its members' data in a directory of the volume.
 */
export const RESTORED_DATA_DIR = '/var/lib/etcd/data';
export function dataDirOf(spec: { restore?: unknown }): string {
  return spec.restore ? RESTORED_DATA_DIR : DATA_DIR;
}

/** Labels the operator puts on what it owns. */
export const LABEL_CLUSTER = 'etcd.ts-etcd.io/cluster';
export const LABEL_APP = 'app.kubernetes.io/name';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const APP_NAME = 'etcd';
export const MANAGER = 'etcd-operator';
/** Annotations on member pods. */
export const ANN_CLUSTER_STATE = 'etcd.ts-etcd.io/initial-cluster-state';
export const ANN_MEMBER_ID = 'etcd.ts-etcd.io/member-id';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface PodSettings {
  resources?: ResourceRequirements;
  nodeSelector?: Record<string, string>;
  /** A core/v1 Affinity, passed through untouched. */
  affinity?: Record<string, unknown>;
  /** core/v1 Tolerations, passed through untouched. */
  tolerations?: Record<string, unknown>[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface StorageSpec {
  /** A PersistentVolumeClaim spec (core/v1 PersistentVolumeClaimSpec); without it members use an emptyDir. */
  volumeClaimTemplate?: { spec: Record<string, unknown> };
}

export interface TLSSpec {
  /**
   * The operator makes the certificates: a CA (Secret `<cluster>-ca`), for each member a certificate for its client
   * and peer URLs (Secret `<pod>-tls`), and a client certificate (Secret `<cluster>-client-tls`) the operator and the
   * backup Jobs use; each renewed before it expires. Not together with the named Secrets below.
   */
  auto?: boolean;
  /**
   * cert-manager issues the certificates: the operator asks for a `cert-manager.io/v1` Certificate per member (its
   * Secret `<pod>-tls`) and one client certificate (`<cluster>-client-tls`), and starts a member once its Secret is
   * there; cert-manager renews them. Not together with auto or the named Secrets below.
   */
  certManager?: CertManagerTLS;
  /** Secret (tls.crt, tls.key, ca.crt) the members serve clients with; clients must present a cert signed by ca.crt. */
  clientSecret?: string;
  /** Secret (tls.crt, tls.key, ca.crt) the members use between themselves. */
  peerSecret?: string;
  /** Secret (tls.crt, tls.key, ca.crt) the operator presents to the members' client URLs. */
  operatorSecret?: string;
}

export interface CertManagerTLS {
  /** The cert-manager Issuer (same namespace) or ClusterIssuer that signs every certificate. */
  issuerRef: { name: string; kind?: 'Issuer' | 'ClusterIssuer'; group?: string };
  /** Certificate.spec.duration (a Go duration, "2160h"); cert-manager's default when unset. */
  duration?: string;
  /** Certificate.spec.renewBefore; cert-manager's default when unset. */
  renewBefore?: string;
}

export interface EtcdOptions {
  heartbeatInterval?: number;
  electionTimeout?: number;
  snapshotCount?: number;
  /** --quota-backend-bytes: past it the members raise NOSPACE and refuse writes (0: etcd's 2 GiB; at most 8 GiB). */
  quotaBackendBytes?: number;
  /** --auto-compaction-mode: `periodic` (the retention is a duration, "1h", or hours) or `revision` (a count). */
  autoCompactionMode?: 'periodic' | 'revision';
  /** --auto-compaction-retention: how much history the members keep ("0": all of it, etcd's default). */
  autoCompactionRetention?: string;
  /** Any other etcd flags, as `name: value` (without the leading dashes). */
  extraArgs?: Record<string, string>;
}

/** Seed a new cluster from a backup (etcd's disaster recovery: every member restored from one snapshot). */
export interface RestoreSpec {
  /** The EtcdBackup (same namespace) whose PersistentVolumeClaim holds the snapshot. */
  backupName: string;
  /** The snapshot file on that claim; default: the backup's last successful one (status.lastBackup.file). */
  file?: string;
}

export interface EtcdClusterSpec {
  size: number;
  version: string;
  repository: string;
  pod?: PodSettings;
  storage?: StorageSpec;
  tls?: TLSSpec;
  etcd?: EtcdOptions;
  /** Stop acting (status is still reported). */
  paused?: boolean;
  /** Create the cluster from a backup instead of empty; read only at creation. */
  restore?: RestoreSpec;
  /** Defragment the members' stores on a schedule, one member at a time, the leader last. */
  defragment?: DefragmentSpec;
}

export interface DefragmentSpec {
  /** Cron (5 fields, UTC) or `@every <duration>`. */
  schedule: string;
}

/** Scheduled defragmentation: the run going on (members done so far), and when the last and next runs are. */
export interface DefragmentStatus {
  /** When the latest run was due. */
  lastScheduleTime?: string;
  nextScheduleTime?: string;
  /** The run in progress: the members defragmented so far in it. */
  running?: { due: string; done: string[] };
  lastCompletionTime?: string;
  /** Why there are no runs (a schedule that does not parse). */
  message?: string;
}

export type Phase = 'Creating' | 'Running' | 'Scaling' | 'Upgrading' | 'Healing' | 'Degraded' | 'Failed';

export interface MemberStatus {
  name: string;
  id?: string;
  ready: boolean;
  version?: string;
  /** A learner (joined, catching up, not voting yet); absent for voting members. */
  learner?: boolean;
}

export interface Condition {
  type: 'Available' | 'Progressing' | 'Degraded';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface EtcdClusterStatus {
  phase?: Phase;
  size?: number;
  readyMembers?: number;
  /** "2/3", for the printer column. */
  ready?: string;
  members?: MemberStatus[];
  leader?: string;
  currentVersion?: string;
  targetVersion?: string;
  clientURL?: string;
  clientService?: string;
  observedGeneration?: number;
  /** The last action taken, for people reading `kubectl get -o yaml`. */
  lastAction?: string;
  /** The snapshot the cluster was created from (spec.restore), once its members were seeded with it. */
  restoredFrom?: { backup: string; file: string; revision?: number; sha256?: string };
  defragment?: DefragmentStatus;
  conditions?: Condition[];
}

export interface EtcdCluster {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: EtcdClusterSpec;
  status?: EtcdClusterStatus;
}

/** The spec with every default filled in (also validates what the schema would have; returns problems). */
export function withDefaults(spec: Partial<EtcdClusterSpec> | undefined): EtcdClusterSpec {
  const s = spec ?? {};
  return {
    ...s,
    size: s.size ?? 3,
    version: s.version ?? DEFAULT_VERSION,
    repository: s.repository ?? DEFAULT_REPOSITORY,
  };
}

/** Problems with a (defaulted) spec that the CRD schema would also reject; the operator refuses to act on them. */
export function specProblems(spec: EtcdClusterSpec): string[] {
  const out: string[] = [];
  if (!Number.isInteger(spec.size) || spec.size < 1 || spec.size > 9) out.push(`spec.size must be an integer 1..9, got ${spec.size}`);
  if (!/^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(spec.version)) out.push(`spec.version must look like 3.4.34, got ${JSON.stringify(spec.version)}`);
  const e = spec.etcd;
  if (e?.heartbeatInterval !== undefined && e.electionTimeout !== undefined && e.electionTimeout < 5 * e.heartbeatInterval) {
    out.push(`spec.etcd.electionTimeout (${e.electionTimeout}) should be at least 5 × heartbeatInterval (${e.heartbeatInterval})`);
  }
  if (e?.autoCompactionMode === 'revision' && e.autoCompactionRetention !== undefined && !/^\d+$/.test(e.autoCompactionRetention)) {
    out.push(`spec.etcd.autoCompactionRetention must be a number of revisions in revision mode, got ${JSON.stringify(e.autoCompactionRetention)}`);
  }
  const t = spec.tls;
  if (t?.certManager && (t.clientSecret || t.peerSecret || t.operatorSecret)) out.push('spec.tls.certManager has cert-manager issue the certificates: name no Secrets with it');
  return out;
}

export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

// ---- EtcdBackup ----

export const BACKUP_KIND = 'EtcdBackup';
export const BACKUP_PLURAL = 'etcdbackups';
/** Labels and annotations of backup Jobs. */
export const LABEL_BACKUP = 'etcd.ts-etcd.io/backup';
export const ANN_SCHEDULED_TIME = 'etcd.ts-etcd.io/scheduled-time';
/** Where a backup Job mounts the backup claim, and a restore init container too. */
export const BACKUP_DIR = '/backups';
export const DEFAULT_RETENTION = 5;
export const DEFAULT_BACKUP_TIMEOUT_SECONDS = 600;

export interface EtcdBackupSpec {
  /** The EtcdCluster (same namespace) to back up. */
  clusterName: string;
  /** Where the snapshots go: an existing PersistentVolumeClaim (the operator does not create it). */
  storage: { persistentVolumeClaim: { claimName: string } };
  /** Cron (5 fields, UTC) or `@every <duration>`; without it, one backup, now. */
  schedule?: string;
  /** How many snapshots of this EtcdBackup to keep on the claim (older ones are deleted after a success). */
  retention?: number;
  /** No new scheduled runs (a running one finishes). */
  suspend?: boolean;
  /** A run that takes longer fails (the Job's activeDeadlineSeconds). */
  timeoutSeconds?: number;
}

/** One snapshot on the claim. */
export interface BackupRecord {
  /** File name on the claim. */
  file: string;
  /** When it was taken (RFC 3339). */
  time?: string;
  /** The store's revision in it. */
  revision?: number;
  /** Bytes, with the SHA-256 trailer. */
  size?: number;
  /** The SHA-256 of the store (the file's last 32 bytes), hex. */
  sha256?: string;
  /** The member it was taken from. */
  member?: string;
}

export type BackupPhase = 'Pending' | 'Running' | 'Scheduled' | 'Suspended' | 'Succeeded' | 'Failed';

export interface EtcdBackupStatus {
  phase?: BackupPhase;
  message?: string;
  /** The Jobs running now. */
  active?: string[];
  /** When the latest run was due (scheduled) or started (one-off). */
  lastScheduleTime?: string;
  nextScheduleTime?: string;
  lastSuccessfulTime?: string;
  /** The due time of the newest finished run already counted here (so each run is counted once). */
  lastFinishedScheduleTime?: string;
  lastBackup?: BackupRecord & { job?: string };
  lastFailure?: { time: string; job: string; message: string };
  /** The snapshots kept on the claim, oldest first. */
  backups?: BackupRecord[];
  succeeded?: number;
  failed?: number;
  observedGeneration?: number;
}

export interface EtcdBackup {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: EtcdBackupSpec;
  status?: EtcdBackupStatus;
}
