/**
 * The Kubernetes API permissions the operator needs: one table, which manifests/02-rbac.yaml grants exactly (no more).
 *
 * Tests hold the three together: test/operator/manifests.test.ts checks that the ClusterRole and the leader-election
 * Role grant exactly this table (and the finalizers rule that blockOwnerDeletion needs, derived from resources.ts'
 * ownerRef), and that every resource the operator's sources name is in it; test/operator/controller.test.ts maps every
 * request the running operator makes (`requestAttributes`, as kube-apiserver derives them) to this table and to the
 * manifests' rules. A new API use without an entry here and a rule there fails them.
 */
import { BACKUP_PLURAL, GROUP, PLURAL } from './api/types';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** An RBAC PolicyRule (the fields the operator's rules use). */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface Permission extends PolicyRule {
  /** cluster: the ClusterRole (EtcdClusters may live in any namespace); lease: the Role in the lease namespace. */
  scope: 'cluster' | 'lease';
  why: string;
}

export const PERMISSIONS: readonly Permission[] = [
  { scope: 'cluster', apiGroups: [GROUP], resources: [PLURAL], verbs: ['get', 'list', 'watch'], why: 'the informer (list, watch); each reconcile and status conflict reads its cluster' },
  { scope: 'cluster', apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ['update'], why: 'status writes: PUT .../status with the resourceVersion read' },
  {
    scope: 'cluster',
    apiGroups: [GROUP],
    resources: [`${PLURAL}/finalizers`],
    verbs: ['update'],
    why: 'owned objects carry ownerReferences with blockOwnerDeletion: true, which the OwnerReferencesPermissionEnforcement admission plugin allows only to who may update the owner\'s finalizers',
  },
  { scope: 'cluster', apiGroups: [GROUP], resources: [BACKUP_PLURAL], verbs: ['get', 'list', 'watch'], why: 'the EtcdBackup informer; each reconcile reads its backup; a restore reads the backup it names' },
  { scope: 'cluster', apiGroups: [GROUP], resources: [`${BACKUP_PLURAL}/status`], verbs: ['update'], why: 'EtcdBackup status writes (last snapshot, kept snapshots, schedule)' },
  { scope: 'cluster', apiGroups: [GROUP], resources: [`${BACKUP_PLURAL}/finalizers`], verbs: ['update'], why: 'backup Jobs carry an ownerReference to their EtcdBackup with blockOwnerDeletion: true' },
  { scope: 'cluster', apiGroups: ['batch'], resources: ['jobs'], verbs: ['list', 'watch', 'create', 'delete'], why: 'backup runs: the informer, created when due, old ones deleted' },
  { scope: 'cluster', apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'], why: "member pods: the informer, observe, create, upgrade in place (image), delete; backup pods' termination messages (list)" },
  { scope: 'cluster', apiGroups: [''], resources: ['services'], verbs: ['get', 'create', 'update'], why: 'the peer and client Services: created, brought back when changed' },
  { scope: 'cluster', apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list', 'create', 'delete'], why: "members' data volumes (spec.storage): listed (a member with its volume gets its pod back), created with the pod, deleted with a removed member" },
  { scope: 'cluster', apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ['get', 'create', 'update'], why: 'the PodDisruptionBudget: created, maxUnavailable kept in step with the size' },
  { scope: 'cluster', apiGroups: [''], resources: ['events'], verbs: ['create'], why: 'an Event for every action and refusal' },
  {
    scope: 'cluster',
    apiGroups: [''],
    resources: ['secrets'],
    verbs: ['get', 'create', 'update', 'delete'],
    why: "the operator's etcd client certificate (spec.tls.operatorSecret, or spec.tls.auto's); spec.tls.auto's CA and certificates: made, renewed, a removed member's deleted",
  },
  { scope: 'cluster', apiGroups: ['cert-manager.io'], resources: ['certificates'], verbs: ['list', 'create', 'delete'], why: "spec.tls.certManager: the cluster's Certificates listed (and whether cert-manager is installed), asked for, a removed member's deleted" },
  { scope: 'lease', apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'], why: 'leader election on one Lease' },
];

/** What kube-apiserver's authorizer is asked about a request (its RequestInfo): group, resource[/subresource], verb. */
export interface RequestAttributes {
  group: string;
  resource: string;
  verb: Verb;
  namespace?: string;
  name?: string;
}

/**
 * The attributes of a resource request (`/api/v1/...`, `/apis/<group>/<version>/...`), as kube-apiserver derives them:
 * GET of a name is get, of a collection list (watch with ?watch=true), POST create, PUT update, PATCH patch, DELETE
 * delete (deletecollection without a name). Undefined for non-resource paths (discovery, /healthz, ...).
 */
export function requestAttributes(method: string, url: string): RequestAttributes | undefined {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/').filter((p) => p !== '');
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1];
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  // /namespaces/<ns>/<resource>... (but /namespaces and /namespaces/<name> are the namespace resource itself)
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  const watch = ['true', '1'].includes(u.searchParams.get('watch') ?? '');
  const m = method.toUpperCase();
  let verb: Verb;
  if (m === 'GET' || m === 'HEAD') verb = name === undefined ? (watch ? 'watch' : 'list') : 'get';
  else if (m === 'POST') verb = 'create';
  else if (m === 'PUT') verb = 'update';
  else if (m === 'PATCH') verb = 'patch';
  else if (m === 'DELETE') verb = name === undefined ? 'deletecollection' : 'delete';
  else return undefined;
  return { group, resource: subresource ? `${resource}/${subresource}` : resource, verb, namespace, name };
}

/** Whether RBAC rules allow an attribute set (wildcards as RBAC has them: '*' in any list, 'pods/*'). */
export function allows(rules: readonly PolicyRule[], a: Pick<RequestAttributes, 'group' | 'resource' | 'verb'>): boolean {
  const [res] = a.resource.split('/');
  return rules.some(
    (r) =>
      (r.apiGroups.includes(a.group) || r.apiGroups.includes('*')) &&
      (r.resources.includes(a.resource) || r.resources.includes('*') || (a.resource.includes('/') && r.resources.includes(`${res}/*`))) &&
      (r.verbs.includes(a.verb) || r.verbs.includes('*')),
  );
}

/** Rules as "group|resource|verb" triples (for comparing rule sets however they are grouped). */
export function triples(rules: readonly PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  return [...out].sort();
}
