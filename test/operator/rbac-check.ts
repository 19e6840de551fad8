/** What the running operator asked of the API server, held against operator/rbac.ts and manifests/02-rbac.yaml. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import type { KubeApiServer } from '../support/kube/api-server';
import { PERMISSIONS, allows, requestAttributes, type PolicyRule } from '../../operator/rbac';

/**
 * RBAC against what the operator really did: every API request it made (the test API server records them all; only
 * operator processes talk to it over HTTP) maps, as kube-apiserver's authorizer sees it, to an entry of
 * operator/rbac.ts's table and to a rule of manifests/02-rbac.yaml (the lease Role for the lease namespace, the
 * ClusterRole for the rest); and every owner reference with blockOwnerDeletion on an object it created needs update on
 * the owner's finalizers (OwnerReferencesPermissionEnforcement). Returns the distinct "group|resource|verb" it saw.
 */
export function checkRBAC(api: KubeApiServer, NS: string, LEASE_NS: string): string[] {
  type Role = { kind: string; metadata: { name: string; namespace?: string }; rules: PolicyRule[] };
  const docs = yaml.loadAll(fs.readFileSync(path.join(__dirname, '../../manifests/02-rbac.yaml'), 'utf8')) as Role[];
  const clusterRole = docs.find((d) => d.kind === 'ClusterRole') as Role;
  const leaseRole = docs.find((d) => d.kind === 'Role') as Role;
  expect(leaseRole.metadata.namespace).toBe(LEASE_NS);
  const table = (scope: 'cluster' | 'lease'): PolicyRule[] => PERMISSIONS.filter((p) => p.scope === scope);
  const seen = new Set<string>();
  const problems: string[] = [];
  const nonResource: string[] = [];
  for (const r of api.requests) {
    const a = requestAttributes(r.method, r.path);
    if (!a) {
      nonResource.push(`${r.method} ${r.path}`);
      continue;
    }
    seen.add(`${a.group}|${a.resource}|${a.verb}`);
    const lease = a.group === 'coordination.k8s.io' && a.resource === 'leases';
    // leases only in the lease namespace (the Role's), everything else under the ClusterRole
    if (lease && a.namespace !== LEASE_NS) problems.push(`${r.method} ${r.path}: a lease outside ${LEASE_NS}`);
    if (!allows(lease ? leaseRole.rules : clusterRole.rules, a)) problems.push(`${r.method} ${r.path}: ${a.verb} ${a.group}/${a.resource} not granted by manifests/02-rbac.yaml`);
    if (!allows(table(lease ? 'lease' : 'cluster'), a)) problems.push(`${r.method} ${r.path}: ${a.verb} ${a.group}/${a.resource} not in operator/rbac.ts`);
  }
  const owned = ['pods', 'services', 'poddisruptionbudgets', 'persistentvolumeclaims', 'jobs'].flatMap((k) => api.store.list(k, NS));
  const refs = owned.flatMap((o) => (o.metadata.ownerReferences ?? []) as { apiVersion: string; kind: string; blockOwnerDeletion?: boolean }[]);
  expect(refs.length).toBeGreaterThan(0);
  for (const ref of refs.filter((x) => x.blockOwnerDeletion && x.apiVersion.startsWith('etcd.ts-etcd.io/'))) {
    const need = { group: ref.apiVersion.split('/')[0], resource: `${ref.kind.toLowerCase()}s/finalizers`, verb: 'update' as const };
    if (!allows(clusterRole.rules, need) || !allows(table('cluster'), need)) problems.push(`blockOwnerDeletion on a ${ref.kind} reference: update on ${need.group}/${need.resource} not granted`);
  }
  expect(problems).toEqual([]);
  expect(nonResource).toEqual([]);
  return [...seen].sort();
}

