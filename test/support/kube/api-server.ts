/**
 * A small Kubernetes API server for tests — honest about what it is: an in-memory store behind the Kubernetes REST
 * conventions, for the resources the operator uses. Everything on 127.0.0.1, no auth.
 *
 * Implements:
 *  - resources: namespaces; core/v1 pods, services, endpoints (the process kubelet keeps them), events, persistentvolumeclaims, secrets, configmaps,
 *    serviceaccounts; policy/v1 poddisruptionbudgets; coordination.k8s.io/v1 leases; batch/v1 jobs (job-controller.ts
 *    runs them); etcd.ts-etcd.io/v1alpha1 etcdclusters and etcdbackups; and, stored only (no controllers), apps/v1 deployments, apiextensions.k8s.io/v1 CRDs and
 *    rbac.authorization.k8s.io/v1 roles and bindings, so `kubectl apply` can map the manifests;
 *    discovery documents (/api, /api/v1, /apis, /apis/<group>/<version>);
 *  - GET, LIST (?labelSelector= with =, ==, !=, exists, !key, in, notin; ?fieldSelector=metadata.name=),
 *    POST (name or generateName; 409 AlreadyExists; 404 when the namespace does not exist), PUT (409 Conflict when
 *    metadata.resourceVersion is stale; unconditional without it), PATCH (application/merge-patch+json,
 *    application/json-patch+json, and application/strategic-merge-patch+json applied AS A MERGE PATCH: lists are
 *    replaced, not merged by key), DELETE (preconditions uid/resourceVersion; propagationPolicy Orphan);
 *  - a global resourceVersion counter; metadata.uid, creationTimestamp, generation (1 on create, +1 when the spec
 *    — everything but metadata and status — changes);
 *  - the status subresource for pods, services, PDBs, PVCs, jobs, etcdclusters and etcdbackups: writes to the object ignore status,
 *    writes to /status change only status;
 *  - WATCH (?watch=true&resourceVersion=N): ADDED/MODIFIED/DELETED JSON lines from N on (from "now" with no N or
 *    "0", after synthetic ADDED events for what exists); an ERROR event with a 410 Status when N is older than the
 *    kept history; label selectors on watches send DELETED/ADDED when an object stops/starts matching;
 *    ?timeoutSeconds= closes the stream; no bookmarks;
 *  - garbage collection: deleting an object deletes (in the background, recursively) every object whose
 *    ownerReferences name its uid, and an object created with owners that no longer exist is deleted too;
 *    deleting a namespace deletes everything in it;
 *  - Status objects for errors (kind Status, reason, code, details);
 *  - custom resources of installed CRDs (those of manifests/ from the start, and any CRD written later): every write
 *    pruned of undeclared fields (a `Warning` header per field, or 400 with ?fieldValidation=Strict), defaulted and
 *    validated against the schema and its CEL rules (422 Invalid, as field errors); the /scale subresource (crds.ts).
 * Does not implement: authn/authz, admission beyond CRD schemas, finalizers and graceful deletion (a DELETE removes
 * the object at once — a pod never shows deletionTimestamp), server-side apply, field managers, pagination
 * (limit/continue), protobuf, table output, immutable-field checks of the built-in kinds.
 *
 * In-process, tests use `store` (the same code paths, same resourceVersions and watch events) to play kubelet.
 */
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { matches, parseSelector, SelectorError, type Requirement } from './selectors';
import { jsonPatch, mergePatch, PatchError } from './patch';
import { AdmissionError, CustomResources, getPath, manifestCRDs, setPath, type FieldValidation, type Installed } from './crds';

export interface KMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  [k: string]: unknown;
}
export interface KObj {
  apiVersion?: string;
  kind?: string;
  metadata: KMeta;
  [k: string]: unknown;
}

export interface ResourceType {
  group: string; // '' for core
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  status: boolean;
  shortNames?: string[];
  /** Another project's resource (cert-manager's): served only while a CRD installs it, as on a real cluster. */
  crdOnly?: boolean;
}

export const RESOURCES: ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, status: true },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true, status: true },
  { group: '', version: 'v1', plural: 'endpoints', kind: 'Endpoints', namespaced: true, status: false },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true, status: false },
  { group: '', version: 'v1', plural: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true, status: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, status: false },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true, status: false },
  { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, status: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true, status: false },
  { group: 'etcd.ts-etcd.io', version: 'v1alpha1', plural: 'etcdclusters', kind: 'EtcdCluster', namespaced: true, status: true, shortNames: ['etcd'] },
  { group: 'etcd.ts-etcd.io', version: 'v1alpha1', plural: 'etcdbackups', kind: 'EtcdBackup', namespaced: true, status: true, shortNames: ['etcdbackup'] },
  { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true, status: true },
  { group: 'cert-manager.io', version: 'v1', plural: 'certificates', kind: 'Certificate', namespaced: true, status: true, shortNames: ['cert'], crdOnly: true },
  // stored like the others, for `kubectl apply` of the manifests (no controllers behind them: a Deployment makes no pods)
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, status: false },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true, status: true },
  { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false, status: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', kind: 'ClusterRole', namespaced: false, status: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false, status: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', kind: 'Role', namespaced: true, status: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', kind: 'RoleBinding', namespaced: true, status: false },
];

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface Change {
  rv: number;
  type: WatchType;
  rt: ResourceType;
  obj: KObj;
  prev?: KObj;
}

export class ApiStatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
  toStatus(): Record<string, unknown> {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, details: this.details, code: this.code };
  }
}

const gv = (rt: ResourceType): string => (rt.group ? `${rt.group}/${rt.version}` : rt.version);
const qualified = (rt: ResourceType): string => (rt.group ? `${rt.plural}.${rt.group}` : rt.plural);
const clone = <T>(x: T): T => structuredClone(x);

export interface RequestRecord {
  seq: number;
  method: string;
  path: string;
  status: number;
  userAgent?: string;
}

/** A shared, ordered record of what happened (API writes, etcd member changes, kubelet) for ordering assertions. */
export class Journal {
  readonly entries: { seq: number; what: string }[] = [];
  private n = 0;
  add(what: string): number {
    this.entries.push({ seq: ++this.n, what });
    return this.n;
  }
  indexOf(re: RegExp): number {
    return this.entries.findIndex((e) => re.test(e.what));
  }
  all(re: RegExp): string[] {
    return this.entries.filter((e) => re.test(e.what)).map((e) => e.what);
  }
}

/** Options of one write: how a custom resource's unknown fields are answered, and where the warnings go. */
export interface WriteOptions {
  fieldValidation?: FieldValidation;
  warnings?: string[];
}

export type WriteHook = (req: { method: string; rt: ResourceType; namespace?: string; name?: string; subresource?: string; body?: KObj }) => void | { code: number; reason: string; message: string };

export class Store {
  /** The installed CRDs: every write of their custom resources is pruned, defaulted and validated (crds.ts). */
  readonly crds = new CustomResources();
  private rv = 0;
  private readonly objects = new Map<string, KObj>();
  private readonly history: Change[] = [];
  private readonly historyLimit: number;
  private readonly listeners = new Set<(c: Change) => void>();
  constructor(
    readonly journal: Journal,
    historyLimit = 20_000,
  ) {
    this.historyLimit = historyLimit;
  }

  get resourceVersion(): number {
    return this.rv;
  }
  /** The oldest resourceVersion a watch may start from. */
  get oldestWatchable(): number {
    return this.history.length > 0 ? this.history[0].rv - 1 : this.rv;
  }

  static key(rt: ResourceType, ns: string | undefined, name: string): string {
    return `${qualified(rt)}/${rt.namespaced ? ns ?? '' : ''}/${name}`;
  }
  static rt(plural: string): ResourceType {
    const rt = RESOURCES.find((r) => r.plural === plural);
    if (!rt) throw new Error(`unknown resource ${plural}`);
    return rt;
  }

  onChange(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private record(type: WatchType, rt: ResourceType, obj: KObj, prev?: KObj): void {
    const c: Change = { rv: Number(obj.metadata.resourceVersion), type, rt, obj: clone(obj), prev: prev && clone(prev) };
    this.history.push(c);
    if (this.history.length > this.historyLimit) this.history.shift();
    this.journal.add(`${type} ${rt.plural}/${obj.metadata.namespace ? obj.metadata.namespace + '/' : ''}${obj.metadata.name}`);
    for (const l of [...this.listeners]) l(c);
  }

  changesSince(rv: number): Change[] {
    return this.history.filter((c) => c.rv > rv);
  }

  get(rt: ResourceType | string, ns: string | undefined, name: string): KObj | undefined {
    const t = typeof rt === 'string' ? Store.rt(rt) : rt;
    const o = this.objects.get(Store.key(t, ns, name));
    return o && clone(o);
  }

  list(rt: ResourceType | string, ns?: string, selector: Requirement[] = [], nameField?: string): KObj[] {
    const t = typeof rt === 'string' ? Store.rt(rt) : rt;
    const prefix = `${qualified(t)}/`;
    const out: KObj[] = [];
    for (const [k, o] of this.objects) {
      if (!k.startsWith(prefix)) continue;
      if (t.namespaced && ns !== undefined && o.metadata.namespace !== ns) continue;
      if (nameField !== undefined && o.metadata.name !== nameField) continue;
      if (!matches(selector, o.metadata.labels)) continue;
      out.push(clone(o));
    }
    return out.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  }

  private checkNamespace(rt: ResourceType, ns: string | undefined): void {
    if (!rt.namespaced) return;
    if (!ns) throw new ApiStatusError(400, 'BadRequest', 'the namespace of the object is not set');
    if (!this.objects.has(Store.key(RESOURCES[0], undefined, ns))) {
      throw new ApiStatusError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
    }
  }

  create(rtIn: ResourceType | string, ns: string | undefined, body: KObj, o: WriteOptions = {}): KObj {
    const rt = typeof rtIn === 'string' ? Store.rt(rtIn) : rtIn;
    this.checkNamespace(rt, ns);
    let obj = clone(body);
    obj.metadata = { ...(obj.metadata ?? {}) };
    if (rt.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== ns) {
        throw new ApiStatusError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = ns;
    }
    if (!obj.metadata.name) {
      if (!obj.metadata.generateName) throw new ApiStatusError(422, 'Invalid', `${rt.kind} is invalid: metadata.name: Required value: name or generateName is required`);
      obj.metadata.name = `${obj.metadata.generateName}${Math.random().toString(36).slice(2, 7)}`;
    }
    const key = Store.key(rt, ns, obj.metadata.name);
    if (this.objects.has(key)) {
      throw new ApiStatusError(409, 'AlreadyExists', `${qualified(rt)} "${obj.metadata.name}" already exists`, { name: obj.metadata.name, group: rt.group, kind: rt.plural });
    }
    obj.apiVersion = gv(rt);
    obj.kind = rt.kind;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    obj.metadata.generation = 1;
    obj.metadata.resourceVersion = String(++this.rv);
    delete obj.metadata.deletionTimestamp;
    if (rt.plural === 'namespaces') obj.status = { phase: 'Active' };
    obj = this.admit(rt, obj, undefined, o);
    this.objects.set(key, obj);
    this.record('ADDED', rt, obj);
    // as the real garbage collector: a dependent created after its owner is gone (a racing writer) is collected too
    const owners = obj.metadata.ownerReferences ?? [];
    if (owners.length > 0) {
      setImmediate(() => {
        const live = new Set([...this.objects.values()].map((o) => o.metadata.uid));
        const cur = this.objects.get(key);
        if (cur && cur.metadata.uid === obj.metadata.uid && !owners.some((r) => live.has(r.uid))) {
          try {
            this.delete(rt, ns, obj.metadata.name as string);
          } catch {
            // gone already
          }
        }
      });
    }
    return clone(obj);
  }

  /** PUT semantics: the whole object (or, with subresource 'status', only its status). */
  update(rtIn: ResourceType | string, ns: string | undefined, name: string, body: KObj, subresource?: 'status', o: WriteOptions = {}): KObj {
    const rt = typeof rtIn === 'string' ? Store.rt(rtIn) : rtIn;
    const key = Store.key(rt, ns, name);
    const cur = this.objects.get(key);
    if (!cur) throw notFound(rt, name);
    if (body.metadata?.name !== undefined && body.metadata.name !== name) throw new ApiStatusError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    const want = body.metadata?.resourceVersion;
    if (want !== undefined && want !== '' && want !== cur.metadata.resourceVersion) throw conflict(rt, name);
    let next: KObj;
    if (subresource === 'status') {
      next = { ...clone(cur), status: clone(body.status) };
    } else {
      next = clone(body);
      next.metadata = {
        ...clone(body.metadata ?? {}),
        name,
        namespace: cur.metadata.namespace,
        uid: cur.metadata.uid,
        creationTimestamp: cur.metadata.creationTimestamp,
        generation: cur.metadata.generation,
      };
      if (cur.metadata.deletionTimestamp) next.metadata.deletionTimestamp = cur.metadata.deletionTimestamp;
      if (rt.status) {
        if (cur.status === undefined) delete next.status;
        else next.status = clone(cur.status);
      }
    }
    next.apiVersion = gv(rt);
    next.kind = rt.kind;
    next = this.admit(rt, next, cur, o);
    if (subresource !== 'status' && specOf(next) !== specOf(cur)) next.metadata.generation = (cur.metadata.generation ?? 1) + 1;
    if (JSON.stringify({ ...next, metadata: { ...next.metadata, resourceVersion: '' } }) === JSON.stringify({ ...cur, metadata: { ...cur.metadata, resourceVersion: '' } })) {
      return clone(cur); // a no-op write does not bump the resourceVersion (as the real API server)
    }
    next.metadata.resourceVersion = String(++this.rv);
    this.objects.set(key, next);
    this.record('MODIFIED', rt, next, cur);
    return clone(next);
  }

  patch(rtIn: ResourceType | string, ns: string | undefined, name: string, contentType: string, patch: unknown, subresource?: 'status', o: WriteOptions = {}): KObj {
    const rt = typeof rtIn === 'string' ? Store.rt(rtIn) : rtIn;
    const cur = this.objects.get(Store.key(rt, ns, name));
    if (!cur) throw notFound(rt, name);
    let next: KObj;
    try {
      if (contentType.startsWith('application/json-patch+json')) next = jsonPatch(clone(cur), patch as never) as KObj;
      else if (contentType.startsWith('application/merge-patch+json') || contentType.startsWith('application/strategic-merge-patch+json')) next = mergePatch(clone(cur), patch) as KObj;
      else throw new ApiStatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
    } catch (e) {
      if (e instanceof PatchError) throw new ApiStatusError(422, 'Invalid', e.message);
      throw e;
    }
    // a resourceVersion in the patch is a precondition; otherwise the patch applies to the current object
    const pre = (patch as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
    if (!Array.isArray(patch) && pre !== undefined && pre !== cur.metadata.resourceVersion) throw conflict(rt, name);
    next.metadata = { ...next.metadata, resourceVersion: cur.metadata.resourceVersion };
    return this.update(rt, ns, name, next, subresource, o);
  }

  /**
   * Admission of a write: a custom resource of an installed CRD is pruned, defaulted and validated (against `old` for
   * transition rules); a CRD is installed (or refused) as it is written.
   */
  private admit(rt: ResourceType, obj: KObj, old: KObj | undefined, o: WriteOptions): KObj {
    if (rt.plural === 'customresourcedefinitions') {
      try {
        this.crds.install(obj);
      } catch (e) {
        if (e instanceof AdmissionError) throw new ApiStatusError(e.code, e.reason, e.message);
        throw e;
      }
      return obj;
    }
    const c = rt.group ? this.crds.get(rt.group, rt.plural) : undefined;
    if (!c) return obj;
    try {
      return this.crds.admit(c, obj, old, o.fieldValidation ?? 'Warn', o.warnings ?? []);
    } catch (e) {
      if (e instanceof AdmissionError) throw new ApiStatusError(e.code, e.reason, e.message, e.causes.length > 0 ? { name: obj.metadata.name, group: c.group, kind: c.kind, causes: e.causes } : undefined);
      throw e;
    }
  }

  delete(rtIn: ResourceType | string, ns: string | undefined, name: string, opts: { uid?: string; resourceVersion?: string; propagationPolicy?: string } = {}): KObj {
    const rt = typeof rtIn === 'string' ? Store.rt(rtIn) : rtIn;
    const key = Store.key(rt, ns, name);
    const cur = this.objects.get(key);
    if (!cur) throw notFound(rt, name);
    if (opts.uid !== undefined && opts.uid !== cur.metadata.uid) {
      throw new ApiStatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(rt)} "${name}": Precondition failed: UID in precondition: ${opts.uid}, UID in object meta: ${cur.metadata.uid}`);
    }
    if (opts.resourceVersion !== undefined && opts.resourceVersion !== cur.metadata.resourceVersion) throw conflict(rt, name);
    this.objects.delete(key);
    if (rt.plural === 'customresourcedefinitions') this.crds.uninstall(name);
    const gone = clone(cur);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record('DELETED', rt, gone, cur);
    if (rt.plural === 'namespaces') {
      for (const [k, o] of [...this.objects]) {
        if (o.metadata.namespace === name) {
          const t = RESOURCES.find((r) => k.startsWith(`${qualified(r)}/`));
          if (t) this.delete(t, name, o.metadata.name as string);
        }
      }
    }
    const uid = cur.metadata.uid;
    if (opts.propagationPolicy === 'Orphan') {
      for (const [k, o] of [...this.objects]) {
        if ((o.metadata.ownerReferences ?? []).some((r) => r.uid === uid)) {
          const t = RESOURCES.find((r) => k.startsWith(`${qualified(r)}/`)) as ResourceType;
          const next = clone(o);
          next.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
          this.update(t, o.metadata.namespace, o.metadata.name as string, next);
        }
      }
    } else {
      // the garbage collector: dependents go after their owner (background propagation)
      setImmediate(() => this.collectGarbage(uid as string));
    }
    return gone;
  }

  private collectGarbage(ownerUid: string): void {
    for (const [k, o] of [...this.objects]) {
      const refs = o.metadata.ownerReferences ?? [];
      if (!refs.some((r) => r.uid === ownerUid)) continue;
      const t = RESOURCES.find((r) => k.startsWith(`${qualified(r)}/`)) as ResourceType;
      // an object with another owner that still exists stays (as the real collector does)
      const others = refs.filter((r) => r.uid !== ownerUid);
      const alive = others.some((r) => [...this.objects.values()].some((x) => x.metadata.uid === r.uid));
      if (alive) continue;
      try {
        this.delete(t, o.metadata.namespace, o.metadata.name as string);
      } catch {
        // already gone
      }
    }
  }
}

function specOf(o: KObj): string {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return JSON.stringify(rest);
}
function notFound(rt: ResourceType, name: string): ApiStatusError {
  return new ApiStatusError(404, 'NotFound', `${qualified(rt)} "${name}" not found`, { name, group: rt.group, kind: rt.plural });
}
function conflict(rt: ResourceType, name: string): ApiStatusError {
  return new ApiStatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(rt)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, group: rt.group, kind: rt.plural });
}

interface Route {
  rt: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export class KubeApiServer {
  readonly journal: Journal;
  readonly store: Store;
  readonly requests: RequestRecord[] = [];
  private server?: http.Server;
  private readonly watches = new Set<http.ServerResponse>();
  /** Called before every write; may change the store (play another writer) or return an error to answer with. */
  beforeWrite?: WriteHook;
  url = '';

  /** API warnings answered to clients (unknown fields dropped), with who wrote. */
  readonly warnings: { userAgent?: string; method: string; path: string; warning: string }[] = [];

  /** `crds`: the CRDs installed from the start (default: those of manifests/, as after `kubectl apply -f manifests/`). */
  constructor(journal = new Journal(), o: { crds?: KObj[] } = {}) {
    this.journal = journal;
    this.store = new Store(journal);
    for (const ns of ['default', 'kube-system']) this.store.create('namespaces', undefined, { metadata: { name: ns } });
    for (const crd of o.crds ?? manifestCRDs()) this.store.create('customresourcedefinitions', undefined, crd);
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.end();
    this.watches.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private route(pathname: string): Route | 'discovery' | undefined {
    const parts = pathname.split('/').filter((p) => p !== '');
    let group = '';
    let version: string;
    let rest: string[];
    if (parts[0] === 'api') {
      if (parts.length <= 2) return 'discovery';
      version = parts[1];
      rest = parts.slice(2);
    } else if (parts[0] === 'apis') {
      if (parts.length <= 3) return 'discovery';
      group = parts[1];
      version = parts[2];
      rest = parts.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const rt = RESOURCES.find((r) => r.group === group && r.version === version && r.plural === rest[0]);
    if (!rt || !this.served(rt)) return undefined;
    if (!rt.namespaced && namespace !== undefined) return undefined;
    return { rt, namespace, name: rest[1], subresource: rest[2] };
  }

  /** Whether the API serves a resource type now (one of another project only while its CRD is installed). */
  private served(rt: ResourceType): boolean {
    return !rt.crdOnly || this.store.crds.get(rt.group, rt.plural) !== undefined;
  }

  private discovery(pathname: string): unknown {
    const parts = pathname.split('/').filter((p) => p !== '');
    if (parts[0] === 'api' && parts.length === 1) return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    if (parts[0] === 'apis' && parts.length === 1) {
      const groups = [...new Set(RESOURCES.filter((r) => r.group && this.served(r)).map((r) => `${r.group}/${r.version}`))].map((g) => {
        const [name, version] = g.split('/');
        return { name, versions: [{ groupVersion: g, version }], preferredVersion: { groupVersion: g, version } };
      });
      return { kind: 'APIGroupList', apiVersion: 'v1', groups };
    }
    const group = parts[0] === 'api' ? '' : parts[1];
    const version = parts[0] === 'api' ? parts[1] : parts[2];
    const rs = RESOURCES.filter((r) => r.group === group && r.version === version && this.served(r));
    if (rs.length === 0) return undefined;
    const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: rs.flatMap((r) => [
        { name: r.plural, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs, shortNames: r.shortNames },
        ...(r.status ? [{ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] }] : []),
        ...(this.scaleOf(r) ? [{ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] }] : []),
      ]),
    };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    const rec: RequestRecord = { seq: 0, method, path: u.pathname + u.search, status: 0, userAgent: req.headers['user-agent'] };
    this.requests.push(rec);
    const warnings: string[] = [];
    const send = (code: number, body: unknown): void => {
      rec.status = code;
      for (const w of warnings) this.warnings.push({ userAgent: rec.userAgent, method, path: rec.path, warning: w });
      // RFC 7234 warn-code 299 and warn-agent "-", as kube-apiserver's Warning headers
      if (warnings.length > 0 && code < 300) res.setHeader('Warning', warnings.map((w) => `299 - ${JSON.stringify(w)}`));
      if (method !== 'GET') rec.seq = this.journal.add(`${method} ${u.pathname} ${code}`);
      res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString();
      const r = this.route(u.pathname);
      if (r === 'discovery') {
        const d = this.discovery(u.pathname);
        return d ? send(200, d) : send(404, new ApiStatusError(404, 'NotFound', 'the server could not find the requested resource').toStatus());
      }
      if (!r) return send(404, new ApiStatusError(404, 'NotFound', 'the server could not find the requested resource').toStatus());
      const { rt, namespace, name, subresource } = r;
      const scale = subresource === 'scale' ? this.scaleOf(rt) : undefined;
      if (subresource !== undefined && !(subresource === 'status' && rt.status) && !scale) {
        return send(404, new ApiStatusError(404, 'NotFound', 'the server could not find the requested resource').toStatus());
      }
      let body: KObj | undefined;
      if (text !== '') {
        try {
          body = JSON.parse(text) as KObj;
        } catch {
          return send(400, new ApiStatusError(400, 'BadRequest', 'the request body is not JSON').toStatus());
        }
      }
      if (method !== 'GET' && this.beforeWrite) {
        const injected = this.beforeWrite({ method, rt, namespace, name, subresource, body });
        if (injected) return send(injected.code, new ApiStatusError(injected.code, injected.reason, injected.message).toStatus());
      }
      const fv = u.searchParams.get('fieldValidation') ?? 'Warn';
      if (fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') return send(400, new ApiStatusError(400, 'BadRequest', `fieldValidation must be one of "Ignore", "Strict" or "Warn", got "${fv}"`).toStatus());
      const wo: WriteOptions = { fieldValidation: fv, warnings };
      if (scale && name !== undefined) return send(200, this.scale(scale, method, rt, namespace, name, body, String(req.headers['content-type'] ?? ''), wo));
      const selector = parseSelector(u.searchParams.get('labelSelector'));
      const fieldSel = u.searchParams.get('fieldSelector');
      const nameField = fieldSel?.match(/^metadata\.name=(.*)$/)?.[1];
      const ns = rt.namespaced ? namespace : undefined;
      switch (method) {
        case 'GET':
          if (name === undefined) {
            if (u.searchParams.get('watch') === 'true' || u.searchParams.get('watch') === '1') return this.watch(req, res, rec, rt, ns, selector, nameField, u.searchParams);
            return send(200, {
              apiVersion: gv(rt),
              kind: `${rt.kind}List`,
              metadata: { resourceVersion: String(this.store.resourceVersion) },
              items: this.store.list(rt, ns, selector, nameField),
            });
          } else {
            const o = this.store.get(rt, ns, name);
            return o ? send(200, o) : send(404, notFound(rt, name).toStatus());
          }
        case 'POST':
          if (name !== undefined || !body) return send(405, new ApiStatusError(405, 'MethodNotAllowed', 'POST goes to a collection with a body').toStatus());
          return send(201, this.store.create(rt, rt.namespaced ? namespace : undefined, body, wo));
        case 'PUT':
          if (name === undefined || !body) return send(405, new ApiStatusError(405, 'MethodNotAllowed', 'PUT needs a name and a body').toStatus());
          return send(200, this.store.update(rt, ns, name, body, subresource === 'status' ? 'status' : undefined, wo));
        case 'PATCH':
          if (name === undefined || body === undefined) return send(405, new ApiStatusError(405, 'MethodNotAllowed', 'PATCH needs a name and a body').toStatus());
          return send(200, this.store.patch(rt, ns, name, String(req.headers['content-type'] ?? ''), body, subresource === 'status' ? 'status' : undefined, wo));
        case 'DELETE': {
          if (name === undefined) return send(405, new ApiStatusError(405, 'MethodNotAllowed', 'collection deletes are not implemented').toStatus());
          const opts = (body ?? {}) as { preconditions?: { uid?: string; resourceVersion?: string }; propagationPolicy?: string };
          return send(200, this.store.delete(rt, ns, name, { ...opts.preconditions, propagationPolicy: opts.propagationPolicy ?? u.searchParams.get('propagationPolicy') ?? undefined }));
        }
        default:
          return send(405, new ApiStatusError(405, 'MethodNotAllowed', `${method} is not supported`).toStatus());
      }
    } catch (e) {
      if (e instanceof ApiStatusError) return send(e.code, e.toStatus());
      if (e instanceof SelectorError) return send(400, new ApiStatusError(400, 'BadRequest', e.message).toStatus());
      return send(500, new ApiStatusError(500, 'InternalError', (e as Error).stack ?? String(e)).toStatus());
    }
  }

  /** The /scale subresource of a custom resource whose CRD declares one. */
  private scaleOf(rt: ResourceType): (Installed & { scale: NonNullable<Installed['scale']> }) | undefined {
    const c = rt.group ? this.store.crds.get(rt.group, rt.plural) : undefined;
    return c?.scale ? (c as Installed & { scale: NonNullable<Installed['scale']> }) : undefined;
  }

  /**
   * GET, PUT and PATCH of an autoscaling/v1 Scale: replicas read from and written to the CRD's specReplicasPath
   * (the write is an update of the custom resource, validated like any), status replicas from statusReplicasPath.
   */
  private scale(c: Installed & { scale: NonNullable<Installed['scale']> }, method: string, rt: ResourceType, ns: string | undefined, name: string, body: KObj | undefined, contentType: string, wo: WriteOptions): unknown {
    const cur = this.store.get(rt, ns, name);
    if (!cur) throw notFound(rt, name);
    const toScale = (o: KObj): KObj => {
      const selector = c.scale.labelSelectorPath ? getPath(o, c.scale.labelSelectorPath) : undefined;
      return {
        kind: 'Scale',
        apiVersion: 'autoscaling/v1',
        metadata: { name, namespace: o.metadata.namespace, uid: o.metadata.uid, resourceVersion: o.metadata.resourceVersion, creationTimestamp: o.metadata.creationTimestamp },
        spec: { replicas: getPath(o, c.scale.specReplicasPath) ?? 0 },
        status: { replicas: getPath(o, c.scale.statusReplicasPath) ?? 0, ...(typeof selector === 'string' ? { selector } : {}) },
      };
    };
    if (method === 'GET') return toScale(cur);
    let want: KObj;
    if (method === 'PUT' && body) want = body;
    else if (method === 'PATCH' && body !== undefined) {
      try {
        if (contentType.startsWith('application/json-patch+json')) want = jsonPatch(toScale(cur), body as never) as KObj;
        else if (contentType.startsWith('application/merge-patch+json') || contentType.startsWith('application/strategic-merge-patch+json')) want = mergePatch(toScale(cur), body) as KObj;
        else throw new ApiStatusError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format');
      } catch (e) {
        if (e instanceof PatchError) throw new ApiStatusError(422, 'Invalid', e.message);
        throw e;
      }
    } else throw new ApiStatusError(405, 'MethodNotAllowed', `${method} is not supported on scale`);
    const rv = want.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== cur.metadata.resourceVersion) throw conflict(rt, name);
    const replicas = (want.spec as { replicas?: unknown } | undefined)?.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw new ApiStatusError(422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`);
    }
    setPath(cur as unknown as Record<string, unknown>, c.scale.specReplicasPath, replicas);
    return toScale(this.store.update(rt, ns, name, cur, undefined, wo));
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, rec: RequestRecord, rt: ResourceType, ns: string | undefined, selector: Requirement[], nameField: string | undefined, q: URLSearchParams): void {
    rec.status = 200;
    const rvParam = q.get('resourceVersion');
    const from = rvParam === null || rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const write = (type: string, object: unknown): void => {
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    if (from !== undefined && (Number.isNaN(from) || from < this.store.oldestWatchable)) {
      write('ERROR', new ApiStatusError(410, 'Expired', `too old resource version: ${rvParam} (${this.store.oldestWatchable})`).toStatus());
      res.end();
      return;
    }
    const inScope = (o: KObj | undefined): boolean =>
      o !== undefined && (ns === undefined || o.metadata.namespace === ns) && (nameField === undefined || o.metadata.name === nameField) && matches(selector, o.metadata.labels);
    const deliver = (c: Change): void => {
      if (c.rt !== rt) return;
      const now = inScope(c.obj);
      const before = c.type === 'MODIFIED' ? inScope(c.prev) : now;
      if (c.type === 'MODIFIED' && before && !now) return write('DELETED', c.obj);
      if (c.type === 'MODIFIED' && !before && now) return write('ADDED', c.obj);
      if (now) write(c.type, c.obj);
    };
    if (from === undefined) {
      for (const o of this.store.list(rt, ns, selector, nameField)) write('ADDED', o);
    } else {
      for (const c of this.store.changesSince(from)) deliver(c);
    }
    const off = this.store.onChange(deliver);
    this.watches.add(res);
    const close = (): void => {
      off();
      this.watches.delete(res);
    };
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    let timer: NodeJS.Timeout | undefined;
    if (timeout > 0) timer = setTimeout(() => res.end(), timeout * 1000);
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      close();
    });
    req.on('close', close);
  }
}
