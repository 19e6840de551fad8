/**
 * The Kubernetes objects the operator creates for an EtcdCluster (pure builders): member Pods (and their PVCs), the
 * headless peer Service, the client Service, the PodDisruptionBudget and Events. Every object carries the cluster's
 * labels and a controller owner reference to the EtcdCluster, so deleting the EtcdCluster garbage-collects them.
 */
import {
  API_VERSION,
  ANN_CLUSTER_STATE,
  ANN_SCHEDULED_TIME,
  BACKUP_DIR,
  BACKUP_KIND,
  DEFAULT_BACKUP_TIMEOUT_SECONDS,
  DEFAULT_RETENTION,
  LABEL_BACKUP,
  dataDirOf,
  ANN_MEMBER_ID,
  APP_NAME,
  CLIENT_PORT,
  DATA_DIR,
  KIND,
  LABEL_APP,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
  LABEL_MANAGED_BY,
  MANAGER,
  METRICS_PORT,
  PEER_PORT,
  quorum,
  type EtcdBackup,
  type EtcdCluster,
  type EtcdClusterSpec,
  type ObjectMeta,
  type OwnerReference,
} from './api/types';
import { advertiseClientURL, clientScheme, clientServiceName, imageOf, metricsServiceName, pdbName, peerScheme, peerServiceName, peerURL, tlsSecrets } from './api/naming';

/** A Kubernetes object as plain JSON (what goes over the wire). */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta & { generateName?: string };
  [k: string]: unknown;
}

export const TLS_DIR = '/etc/etcd/tls';

export function selectorLabels(cluster: string): Record<string, string> {
  return { [LABEL_APP]: APP_NAME, [LABEL_CLUSTER]: cluster };
}
export function ownedLabels(cluster: string): Record<string, string> {
  return { ...selectorLabels(cluster), [LABEL_MANAGED_BY]: MANAGER };
}
/** `labelSelector` for everything the operator owns for this cluster. */
export function clusterSelector(cluster: string): string {
  return Object.entries(selectorLabels(cluster)).map(([k, v]) => `${k}=${v}`).join(',');
}

export function ownerRef(c: EtcdCluster): OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: c.metadata.name as string, uid: c.metadata.uid as string, controller: true, blockOwnerDeletion: true };
}

function meta(c: EtcdCluster, name: string, extra: Partial<ObjectMeta> = {}): ObjectMeta {
  return {
    name,
    namespace: c.metadata.namespace,
    ...extra,
    labels: { ...(extra.labels ?? {}), ...ownedLabels(c.metadata.name as string) },
    ownerReferences: [ownerRef(c)],
  };
}

/** The etcd command line of a member. */
export function etcdArgs(
  c: EtcdCluster,
  spec: EtcdClusterSpec,
  pod: string,
  state: 'new' | 'existing',
  initialCluster: { name: string; peerURL: string }[],
): string[] {
  const name = c.metadata.name as string;
  const ns = c.metadata.namespace as string;
  const cs = clientScheme(spec);
  const ps = peerScheme(spec);
  const args = [
    `--name=${pod}`,
    `--data-dir=${dataDirOf(spec)}`,
    `--listen-client-urls=${cs}://0.0.0.0:${CLIENT_PORT}`,
    `--advertise-client-urls=${advertiseClientURL(name, ns, pod, spec)}`,
    `--listen-peer-urls=${ps}://0.0.0.0:${PEER_PORT}`,
    `--initial-advertise-peer-urls=${peerURL(name, ns, pod, spec)}`,
    `--initial-cluster=${initialCluster.map((m) => `${m.name}=${m.peerURL}`).join(',')}`,
    `--initial-cluster-state=${state}`,
    `--initial-cluster-token=${name}`,
    // /metrics and /health over plain HTTP whatever the client URLs' TLS: Prometheus and the kubelet's readiness
    // probe need no client certificate (etcd serves nothing else there)
    `--listen-metrics-urls=http://0.0.0.0:${METRICS_PORT}`,
    // the v2 keys API stays on for clients of the members (the operator itself speaks v3 gRPC only)
    '--enable-v2=true',
  ];
  const e = spec.etcd ?? {};
  if (e.heartbeatInterval !== undefined) args.push(`--heartbeat-interval=${e.heartbeatInterval}`);
  if (e.electionTimeout !== undefined) args.push(`--election-timeout=${e.electionTimeout}`);
  if (e.snapshotCount !== undefined) args.push(`--snapshot-count=${e.snapshotCount}`);
  if (e.quotaBackendBytes !== undefined) args.push(`--quota-backend-bytes=${e.quotaBackendBytes}`);
  if (e.autoCompactionMode !== undefined) args.push(`--auto-compaction-mode=${e.autoCompactionMode}`);
  if (e.autoCompactionRetention !== undefined) args.push(`--auto-compaction-retention=${e.autoCompactionRetention}`);
  const secrets = tlsSecrets(spec, name, pod);
  if (secrets.client) {
    args.push(`--cert-file=${TLS_DIR}/client/tls.crt`, `--key-file=${TLS_DIR}/client/tls.key`, '--client-cert-auth=true', `--trusted-ca-file=${TLS_DIR}/client/ca.crt`);
  }
  if (secrets.peer) {
    args.push(`--peer-cert-file=${TLS_DIR}/peer/tls.crt`, `--peer-key-file=${TLS_DIR}/peer/tls.key`, '--peer-client-cert-auth=true', `--peer-trusted-ca-file=${TLS_DIR}/peer/ca.crt`);
  }
  const owned = new Set(args.map((a) => a.slice(2, a.indexOf('='))));
  for (const [k, v] of Object.entries(e.extraArgs ?? {})) {
    const flag = k.replace(/^-+/, '');
    // the operator's own flags decide membership and addresses; pass-through may not override them
    if (owned.has(flag)) continue;
    args.push(`--${flag}=${v}`);
  }
  return args;
}

export function pvcName(pod: string): string {
  return `${pod}-data`;
}
/** The member pod a data PVC belongs to (pvcName's inverse), or undefined for another claim. */
export function podOfPVC(pvc: string): string | undefined {
  return pvc.endsWith('-data') ? pvc.slice(0, -'-data'.length) : undefined;
}

/** A snapshot a new member is seeded with before it starts (spec.restore): on this claim, this file. */
export interface RestoreSource {
  claim: string;
  file: string;
}

/** etcdctl in the etcd image (its entrypoint is the server). */
export const ETCDCTL_COMMAND = ['node', '/app/dist/server/etcdctl/main.js'];

export function memberPod(
  c: EtcdCluster,
  spec: EtcdClusterSpec,
  pod: string,
  state: 'new' | 'existing',
  initialCluster: { name: string; peerURL: string }[],
  memberId?: string,
  restore?: RestoreSource,
): KObject {
  const cluster = c.metadata.name as string;
  const p = spec.pod ?? {};
  const annotations: Record<string, string> = { ...(p.annotations ?? {}), [ANN_CLUSTER_STATE]: state };
  if (memberId) annotations[ANN_MEMBER_ID] = memberId;
  const volumes: Record<string, unknown>[] = [
    spec.storage?.volumeClaimTemplate ? { name: 'data', persistentVolumeClaim: { claimName: pvcName(pod) } } : { name: 'data', emptyDir: {} },
  ];
  const mounts: Record<string, unknown>[] = [{ name: 'data', mountPath: DATA_DIR }];
  const secrets = tlsSecrets(spec, cluster, pod);
  if (secrets.client) {
    volumes.push({ name: 'client-tls', secret: { secretName: secrets.client } });
    mounts.push({ name: 'client-tls', mountPath: `${TLS_DIR}/client`, readOnly: true });
  }
  if (secrets.peer) {
    volumes.push({ name: 'peer-tls', secret: { secretName: secrets.peer } });
    mounts.push({ name: 'peer-tls', mountPath: `${TLS_DIR}/peer`, readOnly: true });
  }
  // /health on the plain-HTTP metrics port: a real health check even when the client URLs want a client certificate.
  const readinessProbe = { httpGet: { path: '/health', port: METRICS_PORT, scheme: 'HTTP' }, periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 3 };
  const container: Record<string, unknown> = {
    name: 'etcd',
    image: imageOf(spec),
    // the image's entrypoint is etcd (images/etcd: node, its V8 flags, dist/server/main.js); only the flags are given
    args: etcdArgs(c, spec, pod, state, initialCluster),
    ports: [
      { name: 'client', containerPort: CLIENT_PORT },
      { name: 'peer', containerPort: PEER_PORT },
      { name: 'metrics', containerPort: METRICS_PORT },
    ],
    volumeMounts: mounts,
    // No liveness probe on purpose: a member restoring a big snapshot or catching up must not be killed for it.
    readinessProbe,
  };
  if (p.resources) container.resources = p.resources;
  const podSpec: Record<string, unknown> = {
    // hostname + subdomain = the headless Service: `<pod>.<cluster>.<ns>.svc` resolves to this pod
    hostname: pod,
    subdomain: peerServiceName(cluster),
    restartPolicy: 'Always',
    // The image runs etcd as uid/gid 1000; fsGroup makes a persistent volume mounted at the data dir writable to it.
    securityContext: { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, fsGroup: 1000 },
    containers: [container],
    volumes,
    affinity: p.affinity ?? {
      // spread members over nodes when possible (one node down must not take two members)
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(cluster) } } },
        ],
      },
    },
  };
  if (p.nodeSelector) podSpec.nodeSelector = p.nodeSelector;
  if (p.tolerations) podSpec.tolerations = p.tolerations;
  if (restore) {
    // etcd's disaster recovery: every member's data dir made from the one snapshot, with the member's own name, the
    // whole new cluster and its token (as it then starts with them), before the member starts
    volumes.push({ name: 'backup', persistentVolumeClaim: { claimName: restore.claim, readOnly: true } });
    podSpec.initContainers = [
      {
        name: 'restore',
        image: imageOf(spec),
        command: ETCDCTL_COMMAND,
        args: [
          'snapshot',
          'restore',
          `${BACKUP_DIR}/${restore.file}`,
          `--name=${pod}`,
          `--initial-cluster=${initialCluster.map((m) => `${m.name}=${m.peerURL}`).join(',')}`,
          `--initial-cluster-token=${cluster}`,
          `--initial-advertise-peer-urls=${peerURL(cluster, c.metadata.namespace as string, pod, spec)}`,
          `--data-dir=${dataDirOf(spec)}`,
        ],
        volumeMounts: [
          { name: 'data', mountPath: DATA_DIR },
          { name: 'backup', mountPath: BACKUP_DIR, readOnly: true },
        ],
        ...(p.resources ? { resources: p.resources } : {}),
      },
    ];
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta(c, pod, { labels: { ...(p.labels ?? {}) }, annotations }),
    spec: podSpec,
  };
}

export function memberPVC(c: EtcdCluster, spec: EtcdClusterSpec, pod: string): KObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: meta(c, pvcName(pod)),
    spec: spec.storage?.volumeClaimTemplate?.spec ?? {},
  };
}

export function peerService(c: EtcdCluster): KObject {
  const cluster = c.metadata.name as string;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, peerServiceName(cluster)),
    spec: {
      clusterIP: 'None',
      // members must resolve each other before they are ready, or a cluster could never form
      publishNotReadyAddresses: true,
      selector: selectorLabels(cluster),
      ports: [
        { name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT },
        { name: 'peer', port: PEER_PORT, targetPort: PEER_PORT },
      ],
    },
  };
}

export function clientService(c: EtcdCluster): KObject {
  const cluster = c.metadata.name as string;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, clientServiceName(cluster)),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(cluster),
      ports: [{ name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT }],
    },
  };
}

/**
 * The metrics Service: headless, over every member (ready or not: an unready member's metrics say why), port
 * `metrics`, with the usual prometheus.io annotations for annotation-driven scrape configs; a ServiceMonitor selects it
 * by its labels (`app.kubernetes.io/component: metrics`).
 */
export function metricsService(c: EtcdCluster): KObject {
  const cluster = c.metadata.name as string;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, metricsServiceName(cluster), {
      labels: { [LABEL_COMPONENT]: 'metrics' },
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT), 'prometheus.io/path': '/metrics', 'prometheus.io/scheme': 'http' },
    }),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(cluster),
      ports: [{ name: 'metrics', port: METRICS_PORT, targetPort: METRICS_PORT }],
    },
  };
}

/** Voluntary disruptions (drains) may take at most size - quorum members at once. */
export function podDisruptionBudget(c: EtcdCluster, spec: EtcdClusterSpec): KObject {
  const cluster = c.metadata.name as string;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(c, pdbName(cluster)),
    spec: { maxUnavailable: spec.size - quorum(spec.size), selector: { matchLabels: selectorLabels(cluster) } },
  };
}

/** An Event about one of our resources (an EtcdCluster, or another kind named by `kind`). */
export function event(c: { metadata: ObjectMeta; kind?: string }, type: 'Normal' | 'Warning', reason: string, message: string, instance: string, now: Date): KObject {
  const ts = now.toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${c.metadata.name}.`, namespace: c.metadata.namespace },
    involvedObject: { apiVersion: API_VERSION, kind: c.kind ?? KIND, name: c.metadata.name, namespace: c.metadata.namespace, uid: c.metadata.uid, resourceVersion: c.metadata.resourceVersion },
    reason,
    message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
    type,
    source: { component: MANAGER },
    reportingComponent: `${MANAGER}`,
    reportingInstance: instance,
    firstTimestamp: ts,
    lastTimestamp: ts,
    count: 1,
  };
}

/** Whether a live object's spec part still matches what we would build (only the fields we set). */
export function specDiffers(live: Record<string, unknown> | undefined, want: Record<string, unknown>): boolean {
  return !contains(live, want);
}
function contains(have: unknown, want: unknown): boolean {
  if (want === null || typeof want !== 'object') return have === want;
  if (Array.isArray(want)) {
    return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  }
  if (have === null || typeof have !== 'object' || Array.isArray(have)) return false;
  return Object.entries(want as Record<string, unknown>).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
}

/** Labels of a backup's Jobs (and their pods). */
export function backupLabels(b: EtcdBackup): Record<string, string> {
  return { [LABEL_APP]: APP_NAME, [LABEL_CLUSTER]: b.spec.clusterName, [LABEL_BACKUP]: b.metadata.name as string, [LABEL_MANAGED_BY]: MANAGER, [LABEL_COMPONENT]: 'backup' };
}

/** What the backup pod needs of the cluster: its members' client URLs to try in order, and TLS for them. */
export interface BackupTarget {
  endpoints: string[];
  /** spec.tls.operatorSecret of the cluster: the client certificate the snapshot is asked with. */
  tlsSecret?: string;
}

/**
 * One backup run: a Job whose pod runs `etcd-operator backup` (operator/backup-agent.ts) with the backup claim
 * mounted, reporting in its termination message; owned by the EtcdBackup, so deleting it deletes its Jobs.
 */
export function backupJob(b: EtcdBackup, name: string, scheduledTime: number, target: BackupTarget, image: string): KObject {
  const ns = b.metadata.namespace as string;
  const mounts: Record<string, unknown>[] = [
    { name: 'backups', mountPath: BACKUP_DIR },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const volumes: Record<string, unknown>[] = [
    { name: 'backups', persistentVolumeClaim: { claimName: b.spec.storage.persistentVolumeClaim.claimName } },
    { name: 'tmp', emptyDir: {} },
  ];
  const args = [
    'backup',
    `--endpoints=${target.endpoints.join(',')}`,
    `--dir=${BACKUP_DIR}`,
    `--prefix=${b.metadata.name}-`,
    `--retention=${b.spec.retention ?? DEFAULT_RETENTION}`,
    '--termination-log=/dev/termination-log',
  ];
  if (target.tlsSecret) {
    volumes.push({ name: 'etcd-tls', secret: { secretName: target.tlsSecret } });
    mounts.push({ name: 'etcd-tls', mountPath: `${TLS_DIR}/operator`, readOnly: true });
    args.push(`--cacert=${TLS_DIR}/operator/ca.crt`, `--cert=${TLS_DIR}/operator/tls.crt`, `--key=${TLS_DIR}/operator/tls.key`);
  }
  const labels = backupLabels(b);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: ns,
      labels,
      annotations: { [ANN_SCHEDULED_TIME]: new Date(scheduledTime).toISOString() },
      ownerReferences: [{ apiVersion: API_VERSION, kind: BACKUP_KIND, name: b.metadata.name as string, uid: b.metadata.uid as string, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      // a failed try is tried again twice (another member may answer); the run as a whole has a deadline
      backoffLimit: 2,
      activeDeadlineSeconds: b.spec.timeoutSeconds ?? DEFAULT_BACKUP_TIMEOUT_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          securityContext: { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, fsGroup: 1000 },
          containers: [
            {
              name: 'backup',
              image,
              args,
              volumeMounts: mounts,
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'File',
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            },
          ],
          volumes,
        },
      },
    },
  };
}
