#!/usr/bin/env node
/**
 * `etcd-operator`: runs the EtcdCluster and EtcdBackup controllers with leader election, /metrics and /healthz.
 *
 *   etcd-operator [--kubeconfig FILE | --server URL] [--namespace NS] [--metrics-addr 0.0.0.0:8080]
 *                 [--leader-elect=true] [--lease-namespace NS] [--lease-name etcd-operator] [--identity ID]
 *                 [--lease-duration 15s] [--renew-deadline 10s] [--retry-period 2s] [--resync 60s]
 *                 [--member-url-template URL] [--service-url-template URL]
 *                 [--etcd-ca FILE --etcd-cert FILE --etcd-key FILE] [--log-level info]
 *                 [--backup-image ts-etcd/etcd-operator:0.1.0] [--auto-tls-validity 2160h]
 *   etcd-operator backup ...   (what a backup Job runs: operator/backup-agent.ts)
 *
 * Without --kubeconfig/--server the configuration comes from the pod's service account (in cluster) or
 * $KUBECONFIG / ~/.kube/config. Member client URLs are the in-cluster DNS names unless --member-url-template
 * (with {pod} {cluster} {namespace} {scheme}) says otherwise — for running outside the cluster, and for tests.
 */
import * as http from 'node:http';
import * as os from 'node:os';
import * as winston from 'winston';
import * as k8s from '@kubernetes/client-node';
import { BACKUP_KIND, BACKUP_PLURAL, GROUP, LABEL_MANAGED_BY, MANAGER, PLURAL, VERSION, type EtcdCluster, type EtcdClusterSpec } from './api/types';
import { BackupReconciler } from './backup-reconciler';
import { tlsSecrets } from './api/naming';
import { CertManager } from './certs';
import { CertificateRequests } from './cert-manager';
import { backupMain } from './backup-agent';
import { KubeApi, paths, type Connection, type ListResult } from './kube-api';
import { EtcdV3, dnsEndpoints, templateEndpoints, tlsFromFiles, type TLSMaterial } from './etcd-v3';
import { Reconciler } from './reconciler';
import { Controller, type Source } from './controller';
import { LeaderElector } from './leader-election';
import { OperatorMetrics } from './metrics';

export interface Flags {
  kubeconfig?: string;
  server?: string;
  namespace?: string;
  metricsAddr: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  resyncMs: number;
  memberURLTemplate?: string;
  serviceURLTemplate?: string;
  etcdCA?: string;
  etcdCert?: string;
  etcdKey?: string;
  logLevel: string;
  orphanGraceMs?: number;
  failedMemberTimeoutMs?: number;
  /** The image backup Jobs run (this program's: `etcd-operator backup`). */
  backupImage: string;
  /** spec.tls.auto: how long member and client certificates are valid (renewed with a third of it left). */
  autoTLSValidityMs: number;
}

/** This build's operator image, the default image of backup Jobs. */
export const DEFAULT_BACKUP_IMAGE = 'ts-etcd/etcd-operator:0.1.0';

export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new Error(`bad duration ${JSON.stringify(v)} (want e.g. 500ms, 15s, 2m)`);
  const n = Number(m[1]);
  return Math.round(n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] as number));
}

export function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    metricsAddr: '0.0.0.0:8080',
    leaderElect: true,
    leaseNamespace: process.env.POD_NAMESPACE ?? 'etcd-operator',
    leaseName: 'etcd-operator',
    identity: process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    resyncMs: 60_000,
    logLevel: 'info',
    backupImage: DEFAULT_BACKUP_IMAGE,
    autoTLSValidityMs: 90 * 24 * 3_600_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(`usage: etcd-operator [flags]; see the header of operator/main.ts or README\n`);
      process.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unexpected argument ${a}`);
    const name = m[1];
    const val = (): string => {
      if (m[2] !== undefined) return m[2];
      const v = argv[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      return v;
    };
    switch (name) {
      case 'kubeconfig': f.kubeconfig = val(); break;
      case 'server': f.server = val(); break;
      case 'namespace': f.namespace = val() || undefined; break;
      case 'metrics-addr': f.metricsAddr = val(); break;
      case 'leader-elect': f.leaderElect = m[2] === undefined ? true : m[2] !== 'false'; break;
      case 'lease-namespace': f.leaseNamespace = val(); break;
      case 'lease-name': f.leaseName = val(); break;
      case 'identity': f.identity = val(); break;
      case 'lease-duration': f.leaseDurationMs = parseDuration(val()); break;
      case 'renew-deadline': f.renewDeadlineMs = parseDuration(val()); break;
      case 'retry-period': f.retryPeriodMs = parseDuration(val()); break;
      case 'resync': f.resyncMs = parseDuration(val()); break;
      case 'member-url-template': f.memberURLTemplate = val(); break;
      case 'service-url-template': f.serviceURLTemplate = val(); break;
      case 'etcd-ca': f.etcdCA = val(); break;
      case 'etcd-cert': f.etcdCert = val(); break;
      case 'etcd-key': f.etcdKey = val(); break;
      case 'log-level': f.logLevel = val(); break;
      case 'orphan-grace': f.orphanGraceMs = parseDuration(val()); break;
      case 'failed-member-timeout': f.failedMemberTimeoutMs = parseDuration(val()); break;
      case 'backup-image': f.backupImage = val(); break;
      case 'auto-tls-validity': f.autoTLSValidityMs = parseDuration(val()); break;
      default: throw new Error(`unknown flag --${name}`);
    }
  }
  if (f.renewDeadlineMs >= f.leaseDurationMs) throw new Error('--renew-deadline must be shorter than --lease-duration');
  return f;
}

function kubeConfig(f: Flags): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (f.server) {
    kc.loadFromOptions({
      // client-node refuses plain http unless TLS verification is (meaninglessly) off; https keeps verification
      clusters: [{ name: 'c', server: f.server, skipTLSVerify: f.server.startsWith('http:') }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
      currentContext: 'c',
    });
  } else if (f.kubeconfig) {
    kc.loadFromFile(f.kubeconfig);
  } else {
    kc.loadFromDefault();
  }
  return kc;
}

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv);
  const log = winston.createLogger({
    level: f.logLevel,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: MANAGER, identity: f.identity },
    transports: [new winston.transports.Console()],
  });
  const kc = kubeConfig(f);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kube configuration');
  const conn: Connection = { server: cluster.server, configure: (opts) => kc.applyToHTTPSOptions(opts) };
  const kube = new KubeApi(conn, `${MANAGER}/${f.identity}`);
  const metrics = new OperatorMetrics();

  const defaultTLS: TLSMaterial = tlsFromFiles({ caFile: f.etcdCA, certFile: f.etcdCert, keyFile: f.etcdKey });
  const perSecret = new Map<string, { rv: string; tls: TLSMaterial }>();
  /** A v3 session for one reconcile, with the cluster's operator secret when it names one (re-read when it changes). */
  const etcdFor = async (c: EtcdCluster, spec: EtcdClusterSpec): Promise<EtcdV3> => {
    const secretName = tlsSecrets(spec, c.metadata.name as string).operator;
    if (!secretName) return new EtcdV3(defaultTLS);
    const ns = c.metadata.namespace as string;
    const secret = await kube.get<{ metadata: { resourceVersion?: string }; data?: Record<string, string> }>(paths.core(ns, 'secrets', secretName));
    // spec.tls.certManager: until cert-manager issued it, no member is created (the planner asks for it, then waits)
    if (!secret && spec.tls?.certManager) return new EtcdV3(defaultTLS);
    if (!secret) throw new Error(`secret ${ns}/${secretName} (${spec.tls?.auto ? "spec.tls.auto's client certificate" : 'spec.tls.operatorSecret'}) not found`);
    const key = `${ns}/${secretName}`;
    const cached = perSecret.get(key);
    if (cached && cached.rv === secret.metadata.resourceVersion) return new EtcdV3(cached.tls);
    const b = (k: string): Buffer | undefined => (secret.data?.[k] ? Buffer.from(secret.data[k], 'base64') : undefined);
    const tls: TLSMaterial = { ca: b('ca.crt'), cert: b('tls.crt'), key: b('tls.key') };
    perSecret.set(key, { rv: secret.metadata.resourceVersion ?? '', tls });
    return new EtcdV3(tls);
  };

  const reconciler = new Reconciler({
    kube,
    endpoints: f.memberURLTemplate ? templateEndpoints(f.memberURLTemplate, f.serviceURLTemplate) : dnsEndpoints,
    etcdFor,
    log,
    instance: f.identity,
    orphanGraceMs: f.orphanGraceMs,
    failedMemberTimeoutMs: f.failedMemberTimeoutMs,
    certs: new CertManager({ kube, log, validityMs: f.autoTLSValidityMs }),
    certificates: new CertificateRequests(kube),
    onAction: (kind) => metrics.actions.inc({ action: kind }),
    onConflict: () => metrics.conflicts.inc(),
  });

  const backupReconciler = new BackupReconciler({ kube, log, instance: f.identity, image: f.backupImage, metrics });

  const gv = `${GROUP}/${VERSION}`;
  const within = (group: string, plural: string): string => (f.namespace ? `${group}/namespaces/${f.namespace}/${plural}` : `${group}/${plural}`);
  const managed = `${LABEL_MANAGED_BY}=${MANAGER}`;
  const informer = (path: string, selector?: string): Source<k8s.KubernetesObject> =>
    k8s.makeInformer<k8s.KubernetesObject>(kc, path, async () => toList(await kube.list<k8s.KubernetesObject>(path, selector)), selector) as unknown as Source<k8s.KubernetesObject>;
  /** EtcdClusters (and their pods); EtcdBackups (and their Jobs). */
  const makeControllers = (): Controller[] => [
    new Controller({ clusters: informer(within(`/apis/${gv}`, PLURAL)), pods: informer(within('/api/v1', 'pods'), managed), reconciler, log, metrics, resyncMs: f.resyncMs }),
    new Controller({
      clusters: informer(within(`/apis/${gv}`, BACKUP_PLURAL)),
      pods: informer(within('/apis/batch/v1', 'jobs'), managed),
      reconciler: backupReconciler,
      ownerKind: BACKUP_KIND,
      names: [BACKUP_PLURAL, 'jobs'],
      log,
      resyncMs: f.resyncMs,
    }),
  ];

  let controllers: Controller[] = [];
  let elector: LeaderElector | undefined;
  let leading = !f.leaderElect;

  const [host, portStr] = splitHostPort(f.metricsAddr);
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    } else if (req.url === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ leader: leading, identity: f.identity }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portStr), host, () => resolve());
  });
  const addr = server.address();
  log.info('serving /metrics and /healthz', { address: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : String(addr) });

  const startController = (): void => {
    controllers = makeControllers();
    for (const c of controllers) {
      c.start().catch((e: Error) => {
        log.error('controller failed to start', { error: e.message });
        process.exit(1);
      });
    }
  };
  const stopControllers = (): Promise<unknown> => Promise.allSettled(controllers.map((c) => c.stop()));

  let stopping = false;
  const shutdown = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down');
    await stopControllers();
    await elector?.stop(true);
    server.close();
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));

  if (f.leaderElect) {
    elector = new LeaderElector({
      kube,
      namespace: f.leaseNamespace,
      name: f.leaseName,
      identity: f.identity,
      leaseDurationMs: f.leaseDurationMs,
      renewDeadlineMs: f.renewDeadlineMs,
      retryPeriodMs: f.retryPeriodMs,
      log,
      onStartedLeading: () => {
        leading = true;
        metrics.leader.set(1);
        startController();
      },
      onStoppedLeading: () => {
        // like kube-controller-manager: a replica that lost the lease stops at once and lets its Deployment restart it
        leading = false;
        metrics.leader.set(0);
        log.error('leadership lost; exiting');
        void stopControllers().finally(() => process.exit(1));
      },
    });
    elector.start();
  } else {
    metrics.leader.set(1);
    startController();
  }
}

function toList(l: ListResult<k8s.KubernetesObject>): k8s.KubernetesListObject<k8s.KubernetesObject> {
  return { apiVersion: l.apiVersion, kind: l.kind, metadata: { resourceVersion: l.metadata?.resourceVersion }, items: l.items ?? [] };
}

function splitHostPort(addr: string): [string, string] {
  const i = addr.lastIndexOf(':');
  if (i < 0) return ['0.0.0.0', addr];
  return [addr.slice(0, i) || '0.0.0.0', addr.slice(i + 1)];
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv[0] === 'backup') {
    backupMain(argv.slice(1)).then(
      (code) => process.exit(code),
      (e: Error) => {
        process.stderr.write(`etcd-operator backup: ${e.message}\n`);
        process.exit(2);
      },
    );
  } else {
    main(argv).catch((e: Error) => {
      process.stderr.write(`etcd-operator: ${e.message}\n`);
      process.exit(2);
    });
  }
}
