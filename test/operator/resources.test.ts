/** The objects the operator builds: member pods (flags, TLS, storage, pod settings), services, PDB. */
import { specProblems, withDefaults, type EtcdCluster } from '../../operator/api/types';
import { backupJob, clientService, etcdArgs, memberPod, memberPVC, metricsService, peerService, podDisruptionBudget } from '../../operator/resources';
import type { EtcdBackup } from '../../operator/api/types';
import { podFromPeerURL, tlsSecrets, versionOfImage } from '../../operator/api/naming';

const c = (spec: Partial<EtcdCluster['spec']> = {}): EtcdCluster => ({
  apiVersion: 'etcd.ts-etcd.io/v1alpha1',
  kind: 'EtcdCluster',
  metadata: { name: 'db', namespace: 'prod', uid: 'u-1' },
  spec: withDefaults(spec),
});
const flag = (args: string[], n: string): string | undefined => args.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);

test('TLS switches URLs to https and mounts the secrets; pass-through cannot override membership flags', () => {
  const x = c({ tls: { clientSecret: 'cs', peerSecret: 'ps' }, etcd: { extraArgs: { 'auto-compaction-retention': '1', 'initial-cluster': 'evil=http://x', '--quota-backend-bytes': '8589934592' } } });
  const args = etcdArgs(x, x.spec, 'db-0', 'new', [{ name: 'db-0', peerURL: 'https://db-0.db.prod.svc:2380' }]);
  expect(flag(args, 'listen-client-urls')).toBe('https://0.0.0.0:2379');
  expect(flag(args, 'advertise-client-urls')).toBe('https://db-0.db.prod.svc:2379');
  expect(flag(args, 'initial-advertise-peer-urls')).toBe('https://db-0.db.prod.svc:2380');
  expect(flag(args, 'client-cert-auth')).toBe('true');
  expect(flag(args, 'peer-trusted-ca-file')).toBe('/etc/etcd/tls/peer/ca.crt');
  expect(flag(args, 'auto-compaction-retention')).toBe('1');
  expect(flag(args, 'quota-backend-bytes')).toBe('8589934592');
  expect(args.filter((a) => a.startsWith('--initial-cluster='))).toEqual(['--initial-cluster=db-0=https://db-0.db.prod.svc:2380']);
  const pod = memberPod(x, x.spec, 'db-0', 'new', [{ name: 'db-0', peerURL: 'https://db-0.db.prod.svc:2380' }]) as unknown as { spec: { volumes: { name: string; secret?: { secretName: string } }[]; containers: { readinessProbe: Record<string, unknown> }[] } };
  expect(pod.spec.volumes.map((v) => v.secret?.secretName).filter(Boolean)).toEqual(['cs', 'ps']);
  // the kubelet has no client certificate: readiness is /health on the plain-HTTP metrics port
  expect(pod.spec.containers[0].readinessProbe).toMatchObject({ httpGet: { path: '/health', port: 2381, scheme: 'HTTP' } });
});

test('the backend quota becomes --quota-backend-bytes; none given, none passed', () => {
  const x = c({ etcd: { quotaBackendBytes: 4294967296 } });
  expect(flag(etcdArgs(x, x.spec, 'db-0', 'new', []), 'quota-backend-bytes')).toBe('4294967296');
  expect(flag(etcdArgs(c(), c().spec, 'db-0', 'new', []), 'quota-backend-bytes')).toBeUndefined();
});

test('auto-compaction settings become the etcd flags; revision mode wants a count', () => {
  const x = c({ etcd: { autoCompactionMode: 'revision', autoCompactionRetention: '1000' } });
  const args = etcdArgs(x, x.spec, 'db-0', 'new', []);
  expect([flag(args, 'auto-compaction-mode'), flag(args, 'auto-compaction-retention')]).toEqual(['revision', '1000']);
  expect(specProblems(x.spec)).toEqual([]);
  expect(specProblems(c({ etcd: { autoCompactionMode: 'revision', autoCompactionRetention: '1h' } }).spec)).toEqual(['spec.etcd.autoCompactionRetention must be a number of revisions in revision mode, got "1h"']);
  expect(specProblems(c({ etcd: { autoCompactionMode: 'periodic', autoCompactionRetention: '1h' } }).spec)).toEqual([]);
  expect(flag(etcdArgs(c(), c().spec, 'db-0', 'new', []), 'auto-compaction-mode')).toBeUndefined();
});

test('metrics: every member serves plain-HTTP /metrics on 2381 (TLS or not), and a headless metrics Service selects them', () => {
  for (const tls of [undefined, { clientSecret: 'cs', peerSecret: 'ps' }]) {
    const x = c({ tls, etcd: { extraArgs: { 'listen-metrics-urls': 'https://0.0.0.0:9999' } } });
    const args = etcdArgs(x, x.spec, 'db-0', 'new', []);
    expect(args.filter((a) => a.startsWith('--listen-metrics-urls='))).toEqual(['--listen-metrics-urls=http://0.0.0.0:2381']);
    const pod = memberPod(x, x.spec, 'db-0', 'new', []) as unknown as { spec: { containers: { ports: { name: string; containerPort: number }[]; readinessProbe: unknown }[] } };
    expect(pod.spec.containers[0].ports).toContainEqual({ name: 'metrics', containerPort: 2381 });
  }
  const svc = metricsService(c()) as unknown as { metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string>; ownerReferences: unknown[] }; spec: Record<string, unknown> };
  expect(svc.metadata.name).toBe('db-metrics');
  expect(svc.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'etcd', 'etcd.ts-etcd.io/cluster': 'db', 'app.kubernetes.io/component': 'metrics' });
  expect(svc.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '2381' });
  expect(svc.metadata.ownerReferences).toHaveLength(1);
  expect(svc.spec).toEqual({
    clusterIP: 'None',
    publishNotReadyAddresses: true,
    selector: { 'app.kubernetes.io/name': 'etcd', 'etcd.ts-etcd.io/cluster': 'db' },
    ports: [{ name: 'metrics', port: 2381, targetPort: 2381 }],
  });
});

test('pod settings, storage, owner references', () => {
  const x = c({
    version: '3.4.35',
    pod: { resources: { limits: { memory: '1Gi' } }, nodeSelector: { disk: 'ssd' }, tolerations: [{ key: 'k', operator: 'Exists' }], labels: { team: 't' }, annotations: { a: 'b' } },
    storage: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'] } } },
  });
  const pod = memberPod(x, x.spec, 'db-1', 'existing', [], 'abc') as unknown as {
    metadata: { labels: Record<string, string>; annotations: Record<string, string>; ownerReferences: unknown[] };
    spec: { nodeSelector: unknown; tolerations: unknown; volumes: { persistentVolumeClaim?: { claimName: string } }[]; containers: { image: string; resources: unknown }[]; affinity: unknown; securityContext: unknown };
  };
  // The image runs as uid 1000: the claim mounted at the data dir must be writable to it.
  expect(pod.spec.securityContext).toEqual({ runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, fsGroup: 1000 });
  expect(pod.spec.containers[0].image).toBe('ts-etcd/etcd:3.4.35');
  expect(pod.spec.containers[0].resources).toEqual({ limits: { memory: '1Gi' } });
  expect(pod.spec.nodeSelector).toEqual({ disk: 'ssd' });
  expect(pod.spec.tolerations).toEqual([{ key: 'k', operator: 'Exists' }]);
  expect(pod.spec.volumes[0].persistentVolumeClaim?.claimName).toBe('db-1-data');
  expect(pod.metadata.labels).toMatchObject({ team: 't', 'etcd.ts-etcd.io/cluster': 'db', 'app.kubernetes.io/managed-by': 'etcd-operator' });
  expect(pod.metadata.annotations).toMatchObject({ a: 'b', 'etcd.ts-etcd.io/initial-cluster-state': 'existing', 'etcd.ts-etcd.io/member-id': 'abc' });
  expect(pod.metadata.ownerReferences).toEqual([{ apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', name: 'db', uid: 'u-1', controller: true, blockOwnerDeletion: true }]);
  expect(pod.spec.affinity).toHaveProperty('podAntiAffinity');
  expect(memberPVC(x, x.spec, 'db-1')).toMatchObject({ kind: 'PersistentVolumeClaim', metadata: { name: 'db-1-data' }, spec: { accessModes: ['ReadWriteOnce'] } });
});

test('services and the PDB keep quorum', () => {
  expect(peerService(c()).spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
  expect(clientService(c()).metadata.name).toBe('db-client');
  const pdb = (n: number): unknown => (podDisruptionBudget(c({ size: n }), withDefaults({ size: n })).spec as { maxUnavailable: number }).maxUnavailable;
  expect([1, 2, 3, 4, 5, 7].map(pdb)).toEqual([0, 0, 1, 1, 2, 3]);
});

test('naming helpers', () => {
  expect(podFromPeerURL('http://db-3.db.prod.svc:2380', 'db', 'prod')).toBe('db-3');
  expect(podFromPeerURL('http://db-3.other.prod.svc:2380', 'db', 'prod')).toBeUndefined();
  expect(podFromPeerURL('http://10.0.0.1:2380', 'db', 'prod')).toBeUndefined();
  expect(versionOfImage('registry:5000/ts-etcd/etcd:3.4.34')).toBe('3.4.34');
  expect(versionOfImage('registry:5000/ts-etcd/etcd')).toBeUndefined();
});

test('a restored cluster: each member pod restores the snapshot in an init container (its name, the whole cluster, the token), into the data dir it then starts from', () => {
  const x = c({ restore: { backupName: 'nightly' } });
  const ic = [0, 1, 2].map((i) => ({ name: `db-${i}`, peerURL: `http://db-${i}.db.prod.svc:2380` }));
  const pod = memberPod(x, x.spec, 'db-1', 'new', ic, undefined, { claim: 'backups', file: 'nightly-1.db' }) as unknown as {
    spec: { initContainers: { name: string; image: string; command: string[]; args: string[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[]; containers: { args: string[] }[]; volumes: { name: string; persistentVolumeClaim?: { claimName: string; readOnly?: boolean } }[] };
  };
  const init = pod.spec.initContainers[0];
  expect(init).toMatchObject({ name: 'restore', image: 'ts-etcd/etcd:3.4.34', command: ['node', '/app/dist/server/etcdctl/main.js'] });
  expect(init.args).toEqual([
    'snapshot', 'restore', '/backups/nightly-1.db', '--name=db-1',
    `--initial-cluster=${ic.map((m) => `${m.name}=${m.peerURL}`).join(',')}`, '--initial-cluster-token=db',
    '--initial-advertise-peer-urls=http://db-1.db.prod.svc:2380', '--data-dir=/var/lib/etcd/data',
  ]);
  expect(init.volumeMounts).toEqual([{ name: 'data', mountPath: '/var/lib/etcd' }, { name: 'backup', mountPath: '/backups', readOnly: true }]);
  expect(pod.spec.volumes).toContainEqual({ name: 'backup', persistentVolumeClaim: { claimName: 'backups', readOnly: true } });
  // the member starts from there, with the same name, cluster and token
  const args = pod.spec.containers[0].args;
  expect([flag(args, 'data-dir'), flag(args, 'name'), flag(args, 'initial-cluster'), flag(args, 'initial-cluster-token'), flag(args, 'initial-cluster-state')]).toEqual([
    '/var/lib/etcd/data', 'db-1', ic.map((m) => `${m.name}=${m.peerURL}`).join(','), 'db', 'new',
  ]);
  // pods made later (a member added, a pod given back) use the same data dir, with no init container
  const later = memberPod(x, x.spec, 'db-3', 'existing', ic) as unknown as { spec: { initContainers?: unknown; containers: { args: string[] }[] } };
  expect(later.spec.initContainers).toBeUndefined();
  expect(flag(later.spec.containers[0].args, 'data-dir')).toBe('/var/lib/etcd/data');
  // a cluster not restored keeps its data at the volume's root, as before
  expect(flag(etcdArgs(c(), c().spec, 'db-0', 'new', []), 'data-dir')).toBe('/var/lib/etcd');
});

test('a backup Job: the operator image runs `backup` against the given members, onto the claim, reporting in its termination message', () => {
  const b: EtcdBackup = { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdBackup', metadata: { name: 'nightly', namespace: 'prod', uid: 'u-9' }, spec: { clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'backups' } }, retention: 3 } };
  const job = backupJob(b, 'nightly-1710036000', Date.parse('2024-03-10T02:00:00Z'), { endpoints: ['http://db-1.db.prod.svc:2379', 'http://db-0.db.prod.svc:2379'], tlsSecret: 'op' }, 'ts-etcd/etcd-operator:0.1.0') as unknown as {
    metadata: { annotations: Record<string, string>; labels: Record<string, string>; ownerReferences: unknown[] };
    spec: { backoffLimit: number; activeDeadlineSeconds: number; template: { spec: { restartPolicy: string; containers: { image: string; args: string[]; terminationMessagePath: string }[]; volumes: { name: string; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string } }[] } } };
  };
  expect(job.metadata.annotations['etcd.ts-etcd.io/scheduled-time']).toBe('2024-03-10T02:00:00.000Z');
  expect(job.metadata.labels).toMatchObject({ 'etcd.ts-etcd.io/backup': 'nightly', 'etcd.ts-etcd.io/cluster': 'db', 'app.kubernetes.io/managed-by': 'etcd-operator' });
  expect(job.metadata.ownerReferences).toEqual([{ apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdBackup', name: 'nightly', uid: 'u-9', controller: true, blockOwnerDeletion: true }]);
  expect(job.spec).toMatchObject({ backoffLimit: 2, activeDeadlineSeconds: 600 });
  const pod = job.spec.template.spec;
  expect(pod.restartPolicy).toBe('Never');
  expect(pod.containers[0].image).toBe('ts-etcd/etcd-operator:0.1.0');
  expect(pod.containers[0].terminationMessagePath).toBe('/dev/termination-log');
  expect(pod.containers[0].args).toEqual([
    'backup', '--endpoints=http://db-1.db.prod.svc:2379,http://db-0.db.prod.svc:2379', '--dir=/backups', '--prefix=nightly-', '--retention=3',
    '--termination-log=/dev/termination-log', '--cacert=/etc/etcd/tls/operator/ca.crt', '--cert=/etc/etcd/tls/operator/tls.crt', '--key=/etc/etcd/tls/operator/tls.key',
  ]);
  expect(pod.volumes).toEqual(expect.arrayContaining([{ name: 'backups', persistentVolumeClaim: { claimName: 'backups' } }, { name: 'etcd-tls', secret: { secretName: 'op' } }]));
});

test("spec.tls.auto: https URLs, each member with its own certificate's Secret for client and peer URLs; backup Jobs use the client certificate", () => {
  const x = c({ tls: { auto: true } });
  const pod = memberPod(x, x.spec, 'db-2', 'existing', [{ name: 'db-2', peerURL: 'https://db-2.db.prod.svc:2380' }]) as unknown as { spec: { volumes: { name: string; secret?: { secretName: string } }[]; containers: { args: string[] }[] } };
  expect(pod.spec.volumes.filter((v) => v.secret).map((v) => [v.name, v.secret?.secretName])).toEqual([['client-tls', 'db-2-tls'], ['peer-tls', 'db-2-tls']]);
  const args = pod.spec.containers[0].args;
  expect([flag(args, 'listen-client-urls'), flag(args, 'advertise-client-urls'), flag(args, 'initial-advertise-peer-urls')]).toEqual(['https://0.0.0.0:2379', 'https://db-2.db.prod.svc:2379', 'https://db-2.db.prod.svc:2380']);
  expect([flag(args, 'client-cert-auth'), flag(args, 'peer-client-cert-auth'), flag(args, 'trusted-ca-file')]).toEqual(['true', 'true', '/etc/etcd/tls/client/ca.crt']);
  const b: EtcdBackup = { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdBackup', metadata: { name: 'n', namespace: 'prod', uid: 'u' }, spec: { clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'b' } } } };
  const job = backupJob(b, 'n-1', 0, { endpoints: [], tlsSecret: tlsSecrets(x.spec, 'db').operator }, 'img') as unknown as { spec: { template: { spec: { volumes: { secret?: { secretName: string } }[] } } } };
  expect(job.spec.template.spec.volumes.map((v) => v.secret?.secretName).filter(Boolean)).toEqual(['db-client-tls']);
});
