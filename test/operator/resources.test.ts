/** The objects the operator builds: member pods (flags, TLS, storage, pod settings), services, PDB. */
import { specProblems, withDefaults, type EtcdCluster } from '../../operator/api/types';
import { clientService, etcdArgs, memberPod, memberPVC, metricsService, peerService, podDisruptionBudget } from '../../operator/resources';
import { podFromPeerURL, versionOfImage } from '../../operator/api/naming';

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
