/**
 * manifests/: every YAML parses; `kubectl apply --dry-run=client` accepts them; the samples validate against the CRD's
 * openAPIV3Schema; the CRD's defaults are the operator's; RBAC grants exactly operator/rbac.ts's table of what the
 * operator does (controller.test.ts checks the running operator's requests against both).
 *
 * kubectl without a cluster cannot do even a client-side dry run: `apply` maps every kind to a resource through the
 * API server's discovery documents (/api, /apis/...) and GETs the live object to decide create vs patch, so with no
 * server it fails with "unable to recognize ...: connection refused". We point it (through a throwaway kubeconfig) at
 * the test API server of test/support/kube, which serves discovery for the kinds in manifests/. `--validate=false`
 * is needed because kubectl's validation downloads the server's OpenAPI documents (/openapi/v3), which the test
 * server does not have ("failed to download openapi"); the schema check is done here instead, on the samples.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import * as yaml from 'js-yaml';
import { KubeApiServer } from '../support/kube/api-server';
import { applyDefaults, prune, structuralProblems, validate, type Schema } from '../support/kube/openapi-validate';
import {
  withDefaults,
  BACKUP_KIND,
  BACKUP_PLURAL,
  DEFAULT_BACKUP_TIMEOUT_SECONDS,
  DEFAULT_REPOSITORY,
  DEFAULT_RETENTION,
  DEFAULT_VERSION,
  GROUP,
  PLURAL,
  VERSION,
  KIND,
  type EtcdBackup,
  type EtcdCluster,
} from '../../operator/api/types';
import { PERMISSIONS, allows, triples, type PolicyRule, type Verb } from '../../operator/rbac';
import * as R from '../../operator/resources';
import { parseCompactionRetention } from '../../server/etcdserver/compactor';

const ROOT = path.join(__dirname, '..', '..');
const MANIFESTS = path.join(ROOT, 'manifests');

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  });
}
interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
}
const docs = (f: string): Doc[] => (yaml.loadAll(fs.readFileSync(f, 'utf8')) as (Doc | null)[]).filter((d): d is Doc => d !== null);
const all = (): Doc[] => yamlFiles(MANIFESTS).flatMap(docs);
type CRD = Doc & { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns: { name: string; jsonPath: string }[] }[] } };
const crd = (plural = PLURAL): CRD => all().find((d) => d.kind === 'CustomResourceDefinition' && d.metadata.name === `${plural}.${GROUP}`) as never;
const schema = (): Schema => crd().spec.versions[0].schema.openAPIV3Schema;
const backupSchema = (): Schema => crd(BACKUP_PLURAL).spec.versions[0].schema.openAPIV3Schema;

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('manifests', () => {
  test('every YAML file parses, and every document has apiVersion, kind and metadata.name', () => {
    const files = yamlFiles(MANIFESTS);
    expect(files.map((f) => path.relative(MANIFESTS, f)).sort()).toEqual(
      expect.arrayContaining(['01-crd.yaml', '01-crd-etcdbackup.yaml', '02-rbac.yaml', '03-deployment.yaml', 'samples/etcdcluster.yaml', 'samples/etcdcluster-tls.yaml', 'samples/etcdbackup.yaml', 'samples/etcdcluster-restore.yaml']),
    );
    for (const f of files) {
      const ds = docs(f);
      expect(ds.length).toBeGreaterThan(0);
      for (const d of ds) {
        expect(typeof d.apiVersion).toBe('string');
        expect(typeof d.kind).toBe('string');
        expect(typeof d.metadata?.name).toBe('string');
      }
    }
  });

  test('the CRD: group, version, status subresource, printer columns, a structural schema', () => {
    const c = crd();
    expect(c.metadata.name).toBe(`${PLURAL}.${GROUP}`);
    const spec = c.spec as unknown as { group: string; names: { kind: string; plural: string }; scope: string; versions: { name: string; served: boolean; storage: boolean; subresources: unknown; additionalPrinterColumns: { name: string; jsonPath: string }[] }[] };
    expect(spec.group).toBe(GROUP);
    expect(spec.names).toMatchObject({ kind: KIND, plural: PLURAL });
    expect(spec.scope).toBe('Namespaced');
    const v = spec.versions[0];
    expect(v).toMatchObject({ name: VERSION, served: true, storage: true, subresources: { status: {} } });
    expect(v.additionalPrinterColumns.map((p) => p.name)).toEqual(['Size', 'Ready', 'Leader', 'Version', 'Phase', 'Age']);
    expect(structuralProblems(schema())).toEqual([]);
    // every printer column points at a field of the schema (or metadata)
    for (const col of v.additionalPrinterColumns) {
      const parts = col.jsonPath.split('.').filter((x) => x !== '');
      if (parts[0] === 'metadata') continue;
      let s: Schema | undefined = schema();
      for (const p of parts) s = s?.properties?.[p];
      expect([col.name, s?.type]).toEqual([col.name, expect.any(String)]);
    }
  });

  test('the samples validate against the openAPIV3Schema of their kind (and bad ones do not)', () => {
    const all = yamlFiles(path.join(MANIFESTS, 'samples')).flatMap(docs);
    expect(all.map((s) => s.kind).sort()).toEqual(['EtcdBackup', 'EtcdCluster', 'EtcdCluster', 'EtcdCluster']);
    for (const s of all) {
      expect(s.apiVersion).toBe(`${GROUP}/${VERSION}`);
      const sch = s.kind === BACKUP_KIND ? backupSchema() : schema();
      expect(validate(sch, s)).toEqual([]);
      const unknown: string[] = [];
      prune(sch, s, unknown);
      expect(unknown).toEqual([]); // a real API server would drop them silently: a mistake in a sample
    }
    const samples = all.filter((s) => s.kind === KIND);
    const three = samples.find((s) => (s.spec as { tls?: unknown; restore?: unknown }).tls === undefined && !(s.spec as { restore?: unknown }).restore) as Doc;
    expect((three.spec as { size: number }).size).toBe(3);
    const tls = samples.find((s) => (s.spec as { tls?: unknown }).tls !== undefined) as Doc;
    expect(tls.spec).toMatchObject({ size: 3, tls: { clientSecret: expect.any(String), peerSecret: expect.any(String), operatorSecret: expect.any(String) } });
    // the validator does reject what the API server would
    const bad = (spec: unknown): string[] => validate(schema(), { ...three, spec });
    expect(bad({ size: 0 })).toEqual(['spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1']);
    expect(bad({ size: 'three' })).toEqual(['spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"']);
    expect(bad({ version: 'latest' })).toEqual([expect.stringMatching(/^spec.version: Invalid value: "latest": spec.version in body should match '/)]);
    const unknown: string[] = [];
    expect(prune(schema(), { ...three, spec: { sise: 3, size: 3 } }, unknown)).toMatchObject({ spec: { size: 3 } });
    expect(unknown).toEqual(['spec.sise']);
    expect(bad({ pod: { resources: { requests: { cpu: 1, memory: '1Gi' } } } })).toEqual([]);
    // what the CRD admits as a retention the members parse, and what it refuses they would not start with
    for (const r of ['0', '5', '1h', '30m', '1h30m', '1.5h', '100ms']) {
      expect([r, bad({ etcd: { autoCompactionRetention: r } })]).toEqual([r, []]);
      expect(parseCompactionRetention('periodic', r)).toBeGreaterThanOrEqual(0);
    }
    for (const r of ['1 hour', 'h', '-1h', '']) expect([r, bad({ etcd: { autoCompactionRetention: r } }).length]).toEqual([r, 1]);
    // a quota the members accept (etcd refuses more than 8 GiB), none below 0
    expect(bad({ etcd: { quotaBackendBytes: 8589934592 } })).toEqual([]);
    expect([bad({ etcd: { quotaBackendBytes: 8589934593 } }).length, bad({ etcd: { quotaBackendBytes: -1 } }).length]).toEqual([1, 1]);
    expect(bad({ etcd: { autoCompactionMode: 'daily' } })).toEqual(['spec.etcd.autoCompactionMode: Unsupported value: "daily": supported values: "periodic", "revision"']);
  });

  test('the CRD: /scale on spec.size (status.size), spec.tls and spec.storage fixed at creation by CEL rules', () => {
    const v = crd().spec.versions[0] as unknown as { subresources: { scale?: Record<string, string> } };
    expect(v.subresources.scale).toEqual({ specReplicasPath: '.spec.size', statusReplicasPath: '.status.size' });
    const spec = schema().properties?.spec as Schema;
    expect(spec.properties?.size.type).toBe('integer');
    expect((schema().properties?.status as Schema).properties?.size.type).toBe('integer');
    for (const f of ['tls', 'storage', 'restore']) {
      expect(spec.properties?.[f]['x-kubernetes-validations']?.[0]).toEqual({ rule: 'self == oldSelf', message: `spec.${f} is immutable` });
      expect(spec['x-kubernetes-validations']).toContainEqual({ rule: `has(self.${f}) == has(oldSelf.${f})`, message: `spec.${f} cannot be added or removed after creation` });
    }
  });

  describe('the CRD holds every field of operator/api/types.ts', () => {
    /**
     * Every field of the EtcdCluster type, optional ones too: a field added to operator/api/types.ts makes this
     * object fail to type-check until it is added here, and then the round trip below fails until the CRD has it
     * (a real API server would drop it silently).
     */
    type Full<T> = T extends (infer U)[] ? Full<U>[] : T extends object ? { [K in keyof T]-?: Full<T[K]> } : T;
    const full: Omit<Full<EtcdCluster>, 'metadata'> & Pick<EtcdCluster, 'metadata'> = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      metadata: { name: 'full', namespace: 'default', labels: { a: 'b' }, annotations: { c: 'd' } },
      spec: {
        size: 5,
        version: '3.4.35',
        repository: 'example.com/etcd',
        paused: true,
        pod: {
          resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
          tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'etcd', effect: 'NoSchedule' }],
          labels: { team: 'db' },
          annotations: { 'example.com/x': 'y' },
        },
        storage: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } }, storageClassName: 'fast' } } },
        tls: { auto: false, certManager: { issuerRef: { name: 'ca', kind: 'ClusterIssuer', group: 'cert-manager.io' }, duration: '2160h', renewBefore: '360h' }, clientSecret: 'c', peerSecret: 'p', operatorSecret: 'o' },
        etcd: { heartbeatInterval: 100, electionTimeout: 1000, snapshotCount: 10000, quotaBackendBytes: 4294967296, autoCompactionMode: 'periodic', autoCompactionRetention: '1h30m', extraArgs: { 'quota-backend-bytes': '8589934592' } },
        restore: { backupName: 'nightly', file: 'nightly-20240310T101530Z.db' },
        defragment: { schedule: '0 3 * * 0' },
      },
      status: {
        phase: 'Running',
        size: 5,
        readyMembers: 5,
        ready: '5/5',
        members: [{ name: 'full-0', id: '8e9e05c52164694d', ready: true, version: '3.4.35', learner: false }],
        leader: 'full-0',
        currentVersion: '3.4.35',
        targetVersion: '3.4.35',
        clientURL: 'https://full-client.default.svc:2379',
        clientService: 'full-client',
        observedGeneration: 1,
        lastAction: 'AddingMember: adding member full-4',
        restoredFrom: { backup: 'nightly', file: 'nightly-20240310T101530Z.db', revision: 1234, sha256: 'ab'.repeat(32) },
        defragment: { lastScheduleTime: '2024-03-10T03:00:00Z', nextScheduleTime: '2024-03-17T03:00:00Z', running: { due: '2024-03-10T03:00:00Z', done: ['full-1'] }, lastCompletionTime: '2024-03-03T03:00:12Z', message: 'x' },
        conditions: [{ type: 'Available', status: 'True', reason: 'QuorumHealthy', message: '5 of 5', lastTransitionTime: '2024-01-01T00:00:00Z', observedGeneration: 1 }],
      },
    };
    const api = new KubeApiServer();
    let url = '';
    beforeAll(async () => {
      url = await api.start();
    });
    afterAll(() => api.stop());
    const C = `/apis/${GROUP}/${VERSION}/namespaces/default/${PLURAL}`;
    const send = async (method: string, p: string, body: unknown): Promise<{ status: number; body: Record<string, unknown>; warning?: string }> => {
      const r = await fetch(`${url}${p}`, { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      return { status: r.status, body: (await r.json()) as Record<string, unknown>, warning: r.headers.get('warning') ?? undefined };
    };

    test('spec and status written through the API come back whole, with no warning', async () => {
      const { status, ...created } = full;
      const c = await send('POST', C, created);
      expect([c.status, c.warning]).toEqual([201, undefined]);
      expect(c.body.spec).toEqual(full.spec);
      const s = await send('PUT', `${C}/full/status`, { ...c.body, status });
      expect([s.status, s.warning]).toEqual([200, undefined]);
      expect(s.body.status).toEqual(full.status);
      expect(api.store.get(PLURAL, 'default', 'full')).toMatchObject({ spec: full.spec, status: full.status });
      expect(api.warnings).toEqual([]);
    });

    test('a field the CRD does not declare is dropped with a warning (refused with fieldValidation=Strict)', async () => {
      const { status: _s, ...created } = full;
      const extra = { ...created, metadata: { name: 'extra' }, spec: { ...created.spec, newField: 1, etcd: { ...created.spec.etcd, autoCompaction: '1h' } } };
      const c = await send('POST', C, extra);
      expect(c.status).toBe(201);
      expect(c.warning).toBe('299 - "unknown field \\"spec.etcd.autoCompaction\\"", 299 - "unknown field \\"spec.newField\\""');
      expect(c.body.spec).toEqual(full.spec);
      const strict = await send('POST', `${C}?fieldValidation=Strict`, { ...extra, metadata: { name: 'strict' } });
      expect(strict.status).toBe(400);
      expect(strict.body.message).toBe('EtcdCluster in version "v1alpha1" cannot be handled as a EtcdCluster: strict decoding error: unknown field "spec.etcd.autoCompaction", unknown field "spec.newField"');
    });
  });

  describe('the EtcdBackup CRD holds every field of operator/api/types.ts', () => {
    type Full<T> = T extends (infer U)[] ? Full<U>[] : T extends object ? { [K in keyof T]-?: Full<T[K]> } : T;
    const t = '2024-03-10T10:15:30Z';
    const rec = { file: 'nightly-20240310T101530Z.db', time: t, revision: 1234, size: 20512, sha256: 'cd'.repeat(32), member: 'db-1' };
    const full: Omit<Full<EtcdBackup>, 'metadata'> & Pick<EtcdBackup, 'metadata'> = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: BACKUP_KIND,
      metadata: { name: 'nightly', namespace: 'default' },
      spec: { clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'backups' } }, schedule: '0 2 * * *', retention: 7, suspend: false, timeoutSeconds: 300 },
      status: {
        phase: 'Scheduled',
        message: 'next run at 2024-03-11T02:00:00Z',
        active: ['nightly-1710036930'],
        lastScheduleTime: t,
        nextScheduleTime: t,
        lastSuccessfulTime: t,
        lastFinishedScheduleTime: t,
        lastBackup: { ...rec, job: 'nightly-1710036930' },
        lastFailure: { time: t, job: 'nightly-1709950530', message: 'no member gave a snapshot' },
        backups: [rec],
        succeeded: 3,
        failed: 1,
        observedGeneration: 2,
      },
    };
    const api = new KubeApiServer();
    let url = '';
    beforeAll(async () => {
      url = await api.start();
    });
    afterAll(() => api.stop());
    const C = `/apis/${GROUP}/${VERSION}/namespaces/default/${BACKUP_PLURAL}`;

    test('spec and status written through the API come back whole, with no warning; the defaults are the operator\'s', async () => {
      const send = async (method: string, p: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
        const r = await fetch(`${url}${p}`, { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
        return { status: r.status, body: (await r.json()) as Record<string, unknown> };
      };
      const { status, ...created } = full;
      const c = await send('POST', C, created);
      expect(c.status).toBe(201);
      expect(c.body.spec).toEqual(full.spec);
      const st = await send('PUT', `${C}/nightly/status`, { ...c.body, status });
      expect(st.status).toBe(200);
      expect(st.body.status).toEqual(full.status);
      expect(api.warnings).toEqual([]);
      const d = await send('POST', C, { apiVersion: `${GROUP}/${VERSION}`, kind: BACKUP_KIND, metadata: { name: 'once' }, spec: { clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'b' } } } });
      expect(d.body.spec).toEqual({ clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'b' } }, retention: DEFAULT_RETENTION, suspend: false, timeoutSeconds: DEFAULT_BACKUP_TIMEOUT_SECONDS });
      const bad = await send('POST', C, { apiVersion: `${GROUP}/${VERSION}`, kind: BACKUP_KIND, metadata: { name: 'bad' }, spec: { clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'b' } }, retention: 0 } });
      expect([bad.status, bad.body.message]).toEqual([422, expect.stringMatching(/spec.retention: Invalid value: 0/)]);
    });
  });

  test("the CRD's defaults are the operator's defaults", () => {
    const defaulted = applyDefaults(schema(), { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, metadata: { name: 'x' }, spec: {} }) as { spec: Record<string, unknown> };
    expect(defaulted.spec).toEqual({ size: 3, version: DEFAULT_VERSION, repository: DEFAULT_REPOSITORY, paused: false });
    expect(withDefaults({})).toMatchObject({ size: 3, version: DEFAULT_VERSION, repository: DEFAULT_REPOSITORY });
  });

  describe('RBAC', () => {
    type Role = Doc & { rules: PolicyRule[] };
    const clusterRole = (): Role => all().find((d) => d.kind === 'ClusterRole') as Role;
    const leaseRole = (): Role => all().find((d) => d.kind === 'Role') as Role;
    const table = (scope: 'cluster' | 'lease'): PolicyRule[] => PERMISSIONS.filter((p) => p.scope === scope);

    test("the ClusterRole grants exactly operator/rbac.ts's cluster-wide table: every verb on every resource, nothing else", () => {
      // both ways, verb by verb: a missing grant and a grant nothing uses both show up in the diff
      expect(triples(clusterRole().rules)).toEqual(triples(table('cluster')));
      for (const p of table('cluster')) {
        for (const g of p.apiGroups) for (const r of p.resources) for (const v of p.verbs) expect([g, r, v, allows(clusterRole().rules, { group: g, resource: r, verb: v as Verb })]).toEqual([g, r, v, true]);
      }
      // the table is not empty nor trivially shaped (it lists what the operator reads, writes and watches)
      expect(triples(table('cluster')).length).toBeGreaterThanOrEqual(20);
      for (const r of clusterRole().rules) {
        expect(r.verbs).not.toContain('*');
        expect(r.resources).not.toContain('*');
        expect(r.apiGroups).not.toContain('*');
      }
      // nothing it does not need: no write on EtcdCluster specs, no secret listing, leases not cluster-wide
      expect(allows(clusterRole().rules, { group: GROUP, resource: PLURAL, verb: 'update' })).toBe(false);
      expect(allows(clusterRole().rules, { group: '', resource: 'secrets', verb: 'list' })).toBe(false);
      expect(allows(clusterRole().rules, { group: 'coordination.k8s.io', resource: 'leases', verb: 'update' })).toBe(false);
    });

    test('the leader-election Role (in the lease namespace) grants exactly the lease part of the table', () => {
      expect(leaseRole().metadata.namespace).toBe('etcd-operator');
      expect(triples(leaseRole().rules)).toEqual(triples(table('lease')));
      expect(triples(leaseRole().rules)).toEqual(['coordination.k8s.io|leases|create', 'coordination.k8s.io|leases|get', 'coordination.k8s.io|leases|update']);
      // the bindings give both to the operator's service account
      const bindings = all().filter((d) => d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding') as (Doc & { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] })[];
      for (const [kind, role] of [['ClusterRole', clusterRole()], ['Role', leaseRole()]] as const) {
        const b = bindings.find((x) => x.roleRef.kind === kind && x.roleRef.name === role.metadata.name);
        expect(b?.subjects).toEqual([{ kind: 'ServiceAccount', name: 'etcd-operator', namespace: 'etcd-operator' }]);
        if (kind === 'Role') expect(b?.metadata.namespace).toBe(role.metadata.namespace);
      }
    });

    test("blockOwnerDeletion on the operator's owner references needs update on etcdclusters/finalizers, and has it", () => {
      const c = { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, metadata: { name: 'x', namespace: 'ns', uid: 'u-1' }, spec: { size: 3 } } as unknown as EtcdCluster;
      const spec = withDefaults(c.spec);
      const owned = [R.peerService(c), R.clientService(c), R.podDisruptionBudget(c, spec), R.memberPod(c, spec, 'x-0', 'new', []), R.memberPVC(c, spec, 'x-0')];
      const refs = owned.flatMap((o) => o.metadata.ownerReferences ?? []);
      expect(refs.length).toBe(owned.length);
      for (const ref of refs) {
        // OwnerReferencesPermissionEnforcement: setting blockOwnerDeletion needs update on the owner's finalizers
        if (!ref.blockOwnerDeletion) continue;
        expect(ref).toMatchObject({ apiVersion: `${GROUP}/${VERSION}`, kind: KIND });
        const need = { group: ref.apiVersion.split('/')[0], resource: `${PLURAL}/finalizers`, verb: 'update' as const };
        expect([need, allows(clusterRole().rules, need)]).toEqual([need, true]);
        expect([need, allows(table('cluster'), need)]).toEqual([need, true]);
      }
      expect(refs.some((r) => r.blockOwnerDeletion)).toBe(true); // today they all block: the rule is needed
      // backup Jobs are owned by their EtcdBackup the same way
      const b = { apiVersion: `${GROUP}/${VERSION}`, kind: BACKUP_KIND, metadata: { name: 'b', namespace: 'ns', uid: 'u-2' }, spec: { clusterName: 'x', storage: { persistentVolumeClaim: { claimName: 'c' } } } } as EtcdBackup;
      const jobRefs = R.backupJob(b, 'b-1', 0, { endpoints: ['http://x-0.x.ns.svc:2379'] }, 'img').metadata.ownerReferences ?? [];
      expect(jobRefs).toEqual([expect.objectContaining({ kind: BACKUP_KIND, blockOwnerDeletion: true })]);
      const need = { group: GROUP, resource: `${BACKUP_PLURAL}/finalizers`, verb: 'update' as const };
      expect([allows(clusterRole().rules, need), allows(table('cluster'), need)]).toEqual([true, true]);
    });

    test("every resource the operator's sources address is in the table (paths the tests cannot drive: PVCs, secrets)", () => {
      // paths.core(ns, 'pods'...), paths.group('policy/v1', ns, 'poddisruptionbudgets'...), '/api/v1/.../pods'
      const dir = path.join(ROOT, 'operator');
      const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && path.basename(f) !== 'rbac.ts');
      const used = new Set<string>();
      for (const f of files) {
        const src = fs.readFileSync(path.join(dir, f), 'utf8');
        for (const m of src.matchAll(/paths\.core\(\s*[^,()]+,\s*'([a-z]+)'/g)) used.add(`|${m[1]}`);
        for (const m of src.matchAll(/paths\.group\(\s*'([a-z0-9.-]+)\/v[0-9a-z]+'\s*,\s*[^,()]+,\s*'([a-z]+)'/g)) used.add(`${m[1]}|${m[2]}`);
        for (const m of src.matchAll(/\/api\/v1\/(?:namespaces\/\$\{[^}]+\}\/)?([a-z]+)[`']/g)) used.add(`|${m[1]}`);
        if (/paths\.group\(`\$\{GROUP\}\/\$\{VERSION\}`,\s*[^,()]+,\s*PLURAL/.test(src) || /\/apis\/\$\{gv\}\/(?:namespaces\/\$\{[^}]+\}\/)?\$\{PLURAL\}/.test(src)) used.add(`${GROUP}|${PLURAL}`);
        if (/paths\.group\(`\$\{GROUP\}\/\$\{VERSION\}`,\s*[^,()]+,\s*BACKUP_PLURAL/.test(src)) used.add(`${GROUP}|${BACKUP_PLURAL}`);
      }
      // the scan does find what the operator is known to use (so a broken pattern cannot pass silently)
      expect([...used].sort()).toEqual(
        expect.arrayContaining(['|events', '|persistentvolumeclaims', '|pods', '|secrets', '|services', 'coordination.k8s.io|leases', `${GROUP}|${PLURAL}`, `${GROUP}|${BACKUP_PLURAL}`, 'batch|jobs', 'policy|poddisruptionbudgets']),
      );
      const inTable = new Set(PERMISSIONS.flatMap((p) => p.apiGroups.flatMap((g) => p.resources.map((r) => `${g}|${r}`))));
      for (const u of used) expect([u, inTable.has(u)]).toEqual([u, true]);
    });
  });

  test('the Deployment runs ts-etcd/etcd-operator with leader election and probes on /healthz', () => {
    const d = all().find((x) => x.kind === 'Deployment') as Doc & { spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { image: string; args: string[]; livenessProbe: { httpGet: { path: string } } }[] } } } };
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toMatch(/^ts-etcd\/etcd-operator:[\w.-]+$/);
    expect(c.args).toContain('--leader-elect=true');
    // backup Jobs run the operator's own image
    expect(c.args).toContain(`--backup-image=${c.image}`);
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(d.spec.template.spec.serviceAccountName).toBe('etcd-operator');
    expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
  });

  describe('kubectl apply --dry-run=client', () => {
    // a cluster without the CRD yet (the test API server installs manifests/' CRDs unless told otherwise)
    const api = new KubeApiServer(undefined, { crds: [] });
    let kubeconfig = '';
    beforeAll(async () => {
      const url = await api.start();
      kubeconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-')), 'config');
      fs.writeFileSync(
        kubeconfig,
        yaml.dump({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'test', cluster: { server: url } }],
          users: [{ name: 'test', user: {} }],
          contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
          'current-context': 'test',
        }),
      );
    });
    afterAll(() => api.stop());

    test.each([['manifests/'], ['manifests/samples/']])('-f %s', async (dir) => {
      const r = await run('kubectl', ['--kubeconfig', kubeconfig, 'apply', '--dry-run=client', '--validate=false', '-f', path.join(ROOT, dir)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const expected = yamlFiles(path.join(ROOT, dir))
        .filter((f) => dir === 'manifests/samples/' || path.dirname(f) === MANIFESTS)
        .flatMap(docs);
      for (const d of expected) expect(r.stdout).toContain(`/${d.metadata.name} created (dry run)`);
      // a dry run creates nothing
      expect(api.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    });

    test('without a server kubectl cannot even dry-run (why the test API server is used)', async () => {
      const none = path.join(path.dirname(kubeconfig), 'none');
      fs.writeFileSync(none, fs.readFileSync(kubeconfig, 'utf8').replace(/server: .*/, 'server: http://127.0.0.1:9'));
      const r = await run('kubectl', ['--kubeconfig', none, 'apply', '--dry-run=client', '--validate=false', '-f', path.join(MANIFESTS, '00-namespace.yaml')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/unable to recognize|connection refused/);
    });
  });
});
