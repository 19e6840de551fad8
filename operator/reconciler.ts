/**
 * One reconcile of one EtcdCluster: observe (pods, services, PDB, the members list and health as etcd reports them)
 * → plan (planner.ts: one safe action) → act → write status (phase, members, leader, conditions) → events.
 *
 * Idempotent: every action is safe to repeat (creates that find the object answer AlreadyExists, deletes of what is
 * gone answer NotFound, removing a removed member answers 404/410), so a crash or a stale cache costs a retry, never
 * a wrong step. API conflicts (409 on a stale resourceVersion) are answered by re-reading, never by overwriting.
 */
import {
  ANN_CLUSTER_STATE,
  ANN_MEMBER_ID,
  API_VERSION,
  BACKUP_PLURAL,
  GROUP,
  PLURAL,
  VERSION,
  quorum,
  withDefaults,
  type Condition,
  type EtcdBackup,
  type EtcdCluster,
  type EtcdClusterSpec,
  type EtcdClusterStatus,
  type MemberStatus,
} from './api/types';
import { clientServiceName, clientServiceURL, ordinalOf, versionOfImage } from './api/naming';
import { plan, type Action, type MemberView, type Observed, type Plan, type PodView } from './planner';
import { ApiError, KubeApi, paths } from './kube-api';
import { type EtcdV3, type Endpoints, type MemberStatusView } from './etcd-v3';
import * as R from './resources';
import type { KObject } from './resources';
import type { CertManager } from './certs';
import type { CertificateRequests } from './cert-manager';

export interface Logger {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
  debug(msg: string, meta?: Record<string, unknown>): void;
}

export interface ReconcilerOptions {
  kube: KubeApi;
  endpoints: Endpoints;
  /** A v3 session with a cluster's members (TLS from the cluster's operator secret, when it has one); closed after use. */
  etcdFor(c: EtcdCluster, spec: EtcdClusterSpec): Promise<EtcdV3>;
  log: Logger;
  /** Who we are (events' reportingInstance). */
  instance: string;
  now?: () => number;
  orphanGraceMs?: number;
  failedMemberTimeoutMs?: number;
  onAction?(kind: Action['kind']): void;
  onConflict?(): void;
  /** spec.tls.auto's certificates. */
  certs?: CertManager;
  /** spec.tls.certManager's Certificates. */
  certificates?: CertificateRequests;
}

export interface ReconcileResult {
  plan?: Plan;
  /** When to look again (ms); undefined: only on change or resync. */
  requeueAfterMs?: number;
}

interface PodObject extends KObject {
  spec?: { containers?: { name: string; image?: string }[]; volumes?: { persistentVolumeClaim?: unknown }[] };
  status?: {
    phase?: PodView['phase'];
    conditions?: { type: string; status: string; lastTransitionTime?: string }[];
    containerStatuses?: { name: string; image?: string; ready?: boolean }[];
  };
}

const clusterPath = (ns: string, name?: string): string => paths.group(`${GROUP}/${VERSION}`, ns, PLURAL, name);

export class Reconciler {
  private readonly now: () => number;
  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const { kube } = this.o;
    const c = await kube.get<EtcdCluster>(clusterPath(namespace, name));
    if (!c || c.metadata.deletionTimestamp) return {}; // gone: the garbage collector removes what it owned
    const spec = withDefaults(c.spec);

    await this.ensureOwned(c, R.peerService(c), paths.core(namespace, 'services', R.peerService(c).metadata.name));
    await this.ensureOwned(c, R.clientService(c), paths.core(namespace, 'services', R.clientService(c).metadata.name));
    await this.ensureOwned(c, R.metricsService(c), paths.core(namespace, 'services', R.metricsService(c).metadata.name));

    // spec.tls.auto: the CA and the operator's client certificate first (the session below presents it)
    let renewAt = spec.tls?.auto ? await this.certs().ensureShared(c) : undefined;
    const etcd = await this.o.etcdFor(c, spec);
    try {
      const r = await this.reconcileWith(c, spec, etcd, (t) => (renewAt = Math.min(renewAt ?? t, t)));
      if (renewAt === undefined) return r;
      const certs = Math.max(0, renewAt - this.now()) + 50;
      return { ...r, requeueAfterMs: Math.min(r.requeueAfterMs ?? certs, certs) };
    } finally {
      etcd.close();
    }
  }

  private certs(): CertManager {
    if (!this.o.certs) throw new Error('spec.tls.auto: this operator makes no certificates (no certificate manager)');
    return this.o.certs;
  }

  private certificates(): CertificateRequests {
    if (!this.o.certificates) throw new Error('spec.tls.certManager: this operator asks for no certificates');
    return this.o.certificates;
  }

  private async reconcileWith(c: EtcdCluster, spec: EtcdClusterSpec, etcd: EtcdV3, renewal: (at: number) => void): Promise<ReconcileResult> {
    const namespace = c.metadata.namespace as string;
    const name = c.metadata.name as string;
    const observed = await this.observe(c, spec, etcd);
    if (spec.tls?.auto) {
      // every member's certificate renewed in time (the kubelet updates the mounted files, the member reloads them)
      for (const p of observed.pods) if (!p.deleting) renewal(await this.certs().ensureMember(c, p.name));
    }
    await this.ensurePDB(c, spec, observed.members?.length ?? 0);
    let p = plan(observed);
    this.o.log.debug('plan', { cluster: `${namespace}/${name}`, action: p.action, reason: p.reason, message: p.message });

    let actionError: Error | undefined;
    if (p.action.kind !== 'none' && p.action.kind !== 'wait' && p.action.kind !== 'refuse') {
      try {
        const done = await this.act(c, spec, p, observed, etcd);
        if (typeof done === 'object') p = { ...p, message: done.message };
        if (done === 'notYet') {
          // etcd said "not yet" (a learner still catching up): no action taken, look again soon
          p = { ...p, action: { kind: 'wait' }, reason: 'WaitingForLearner', message: `learner ${(p.action as { pod?: string }).pod} is not in sync with the leader yet; promoting it once it is` };
          this.o.log.info('not yet', { cluster: `${namespace}/${name}`, message: p.message });
        } else {
          this.o.onAction?.(p.action.kind);
          await this.event(c, 'Normal', p.reason, p.message);
          this.o.log.info('action', { cluster: `${namespace}/${name}`, action: p.action.kind, reason: p.reason, message: p.message });
        }
      } catch (e) {
        actionError = e as Error;
        this.o.log.warn('action failed', { cluster: `${namespace}/${name}`, action: p.action.kind, error: (e as Error).message });
        await this.event(c, 'Warning', `${p.reason}Failed`, `${p.message}: ${(e as Error).message}`);
      }
    }

    const status = this.status(c, spec, observed, p, actionError);
    await this.writeStatus(c, status, p);
    if (actionError) throw actionError;
    const busy = p.action.kind !== 'none' && p.action.kind !== 'refuse';
    const waitMs = p.reason === 'WaitingForLearner' ? 1000 : 2000;
    const after = busy ? (p.action.kind === 'wait' ? waitMs : 500) : p.action.kind === 'refuse' ? 10_000 : undefined;
    return { plan: p, requeueAfterMs: after === undefined ? p.requeueAfterMs : Math.min(after, p.requeueAfterMs ?? after) };
  }

  // ---- observe ----

  /** spec.restore resolved: the backup's claim and the snapshot file (the named one, or its last successful one). */
  private async resolveRestore(c: EtcdCluster, spec: EtcdClusterSpec): Promise<{ claim: string; file: string; revision?: number; sha256?: string } | { problem: string }> {
    const r = spec.restore;
    if (!r) return { problem: 'no spec.restore' };
    const b = await this.o.kube.get<EtcdBackup>(paths.group(`${GROUP}/${VERSION}`, c.metadata.namespace as string, BACKUP_PLURAL, r.backupName));
    if (!b) return { problem: `EtcdBackup ${r.backupName} not found` };
    const file = r.file ?? b.status?.lastBackup?.file;
    if (!file) return { problem: `EtcdBackup ${r.backupName} has no successful snapshot yet` };
    const known = b.status?.backups?.find((x) => x.file === file);
    return { claim: b.spec.storage.persistentVolumeClaim.claimName, file, revision: known?.revision, sha256: known?.sha256 };
  }

  private async observe(c: EtcdCluster, spec: EtcdClusterSpec, etcd: EtcdV3): Promise<Observed & { leaderName?: string }> {
    const ns = c.metadata.namespace as string;
    const cluster = c.metadata.name as string;
    const list = await this.o.kube.list<PodObject>(paths.core(ns, 'pods'), R.clusterSelector(cluster));
    const pods = list.items.filter((p) => (p.metadata.ownerReferences ?? []).some((r) => r.uid === c.metadata.uid)).map((p) => podView(p));
    // Which members still have their data: with spec.storage, the PVCs there are (ours, not being deleted).
    let volumes: string[] | undefined;
    if (spec.storage?.volumeClaimTemplate) {
      const pvcs = await this.o.kube.list<KObject>(paths.core(ns, 'persistentvolumeclaims'), R.clusterSelector(cluster));
      volumes = pvcs.items
        .filter((v) => !v.metadata.deletionTimestamp && (v.metadata.ownerReferences ?? []).some((r) => r.uid === c.metadata.uid))
        .map((v) => R.podOfPVC(v.metadata.name as string))
        .filter((x): x is string => x !== undefined);
    }
    const url = (pod: string): string => this.o.endpoints.member(cluster, ns, pod, spec);

    // Status and health of every running pod, in parallel (Status says who the member is and whom it follows).
    const healthy: Record<string, boolean> = {};
    const statuses = new Map<string, MemberStatusView>();
    await Promise.all(
      pods.map(async (p) => {
        healthy[p.name] = false;
        if (p.phase !== 'Running' || p.deleting) return;
        try {
          const st = await etcd.status(url(p.name));
          statuses.set(p.name, st);
          healthy[p.name] = await etcd.health(url(p.name), st);
        } catch {
          // no answer: not healthy
        }
      }),
    );
    // The leader: a member that says it leads, else the one most members follow.
    let leaderPod = [...statuses].find(([, st]) => st.leader !== '0' && st.leader === st.id)?.[0];
    let leaderId = leaderPod ? statuses.get(leaderPod)?.id : mostCommon([...statuses.values()].map((st) => st.leader).filter((l) => l !== '0'));
    if (!leaderPod) leaderPod = [...statuses].find(([, st]) => st.id === leaderId)?.[0];
    // The members list, from the leader when there is one (the freshest view), else from any voter that answers, else
    // through the client Service.
    const order = [
      ...(leaderPod ? [leaderPod] : []),
      ...pods.filter((p) => healthy[p.name] && !statuses.get(p.name)?.isLearner).map((p) => p.name),
      ...[...statuses].filter(([, st]) => !st.isLearner).map(([pod]) => pod),
    ];
    const candidates = [...new Set([...order.map(url), this.o.endpoints.service(cluster, ns, spec)])];
    let members: MemberView[] | undefined;
    for (const base of candidates) {
      try {
        members = await etcd.members(base);
        break;
      } catch {
        continue;
      }
    }
    if (leaderId && members && !members.some((m) => m.id === leaderId)) leaderId = undefined;
    const leaderName = members?.find((m) => m.id === leaderId)?.name;
    const bootstrapped = (c.status?.members?.length ?? 0) > 0;
    const restore = spec.restore && !bootstrapped ? await this.resolveRestore(c, spec) : undefined;
    const certificates = spec.tls?.certManager ? await this.certificates().observe(c) : undefined;
    return {
      certificates,
      cluster,
      namespace: ns,
      spec,
      pods,
      members,
      healthy,
      leaderId,
      leaderName,
      bootstrapped,
      restore,
      createdAt: c.metadata.creationTimestamp ? Date.parse(c.metadata.creationTimestamp) : undefined,
      defragment: c.status?.defragment,
      volumes,
      lastMembers: c.status?.members?.map((m) => ({ name: m.name, id: m.id })),
      now: this.now(),
      orphanGraceMs: this.o.orphanGraceMs,
      failedMemberTimeoutMs: this.o.failedMemberTimeoutMs,
    };
  }

  // ---- act ----

  /**
   * Carries out one action; 'notYet' when etcd answered that it cannot be done yet (nothing changed); a message when
   * there is more to say than the plan's (what a defragmentation freed).
   */
  private async act(c: EtcdCluster, spec: EtcdClusterSpec, p: Plan, o: Observed, etcd: EtcdV3): Promise<void | 'notYet' | { message: string }> {
    const ns = c.metadata.namespace as string;
    const cluster = c.metadata.name as string;
    const a = p.action;
    const kube = this.o.kube;
    const leaderURL = (): string => {
      const leader = o.members?.find((m) => m.id === o.leaderId);
      const pod = leader && o.pods.find((x) => x.name === leader.name);
      return pod ? this.o.endpoints.member(cluster, ns, pod.name, spec) : this.o.endpoints.service(cluster, ns, spec);
    };
    const createPod = async (pod: string, state: 'new' | 'existing', initialCluster: { name: string; peerURL: string }[], memberId?: string, restore?: R.RestoreSource): Promise<void> => {
      // its certificate is there before it (a pod waits for the Secrets it mounts)
      if (spec.tls?.auto) await this.certs().ensureMember(c, pod);
      if (spec.storage?.volumeClaimTemplate) await this.createIgnoringExisting(paths.core(ns, 'persistentvolumeclaims'), R.memberPVC(c, spec, pod));
      await this.createIgnoringExisting(paths.core(ns, 'pods'), R.memberPod(c, spec, pod, state, initialCluster, memberId, restore));
    };
    switch (a.kind) {
      case 'requestCertificate':
        return this.certificates().request(c, spec.tls?.certManager as NonNullable<NonNullable<EtcdClusterSpec['tls']>['certManager']>, a.pod);
      case 'bootstrap':
        return createPod(a.pod, 'new', [{ name: a.pod, peerURL: a.peerURL }]);
      case 'createPod':
        return createPod(a.pod, a.state, a.initialCluster, a.memberId);
      case 'restoreMember':
        return createPod(a.pod, 'new', a.initialCluster, undefined, { claim: a.claim, file: a.file });
      case 'addMember': {
        const m = await etcd.addMember(leaderURL(), a.peerURL, a.learner);
        this.o.log.info('member added', { cluster: `${ns}/${cluster}`, id: m.id, peerURL: a.peerURL, learner: m.isLearner });
        return;
      }
      case 'promoteMember':
        return (await etcd.promoteMember(leaderURL(), a.id)) ? undefined : 'notYet';
      case 'defragMember': {
        const url = this.o.endpoints.member(cluster, ns, a.pod, spec);
        const before = await etcd.status(url);
        await etcd.defragment(url);
        const after = await etcd.status(url);
        return { message: `${p.message}: its store ${before.dbSize} → ${after.dbSize} bytes (${before.dbSizeInUse} in use)` };
      }
      case 'removeMember':
        return etcd.removeMember(leaderURL(), a.id);
      case 'deletePod': {
        const pod = await kube.get<PodObject>(paths.core(ns, 'pods', a.pod));
        if (!pod) return;
        await kube.delete(paths.core(ns, 'pods', a.pod), { uid: pod.metadata.uid });
        if (a.keepVolume) return; // the member stays: its next pod starts on this volume
        // a removed member's data must never come back, nor its certificate serve another
        await kube.delete(paths.core(ns, 'persistentvolumeclaims', R.pvcName(a.pod)));
        if (spec.tls?.auto) await this.certs().deleteMember(c, a.pod);
        if (spec.tls?.certManager) await this.certificates().deleteMember(c, a.pod);
        return;
      }
      case 'upgradeMember':
        return this.updateWithRetry<PodObject>(paths.core(ns, 'pods', a.pod), (pod) => {
          const ctr = pod.spec?.containers?.find((x) => x.name === 'etcd');
          if (!ctr) throw new Error(`pod ${a.pod} has no etcd container`);
          ctr.image = `${spec.repository}:${a.to}`;
          return true;
        });
      default:
        return;
    }
  }

  /** Creates `obj`; false when it exists already (created meanwhile: nothing to do). */
  private async createIgnoringExisting(collection: string, obj: KObject): Promise<boolean> {
    try {
      await this.o.kube.create(collection, obj);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.isAlreadyExists) return false;
      throw e;
    }
  }

  /** Read-modify-write with the resourceVersion; on 409 read again and redo the change (bounded). */
  private async updateWithRetry<T extends KObject>(path: string, change: (obj: T) => boolean): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const obj = await this.o.kube.get<T>(path);
      if (!obj) return;
      if (!change(obj)) return;
      try {
        await this.o.kube.replace(path, obj);
        return;
      } catch (e) {
        if (e instanceof ApiError && e.isConflict) {
          this.o.log.info('conflict, re-reading', { path });
          this.o.onConflict?.();
          continue;
        }
        throw e;
      }
    }
    throw new Error(`${path}: still conflicting after 5 attempts`);
  }

  /** Create an owned object, or bring the fields we set back when someone changed them; never take over a stranger's. */
  private async ensureOwned(c: EtcdCluster, want: KObject, path: string): Promise<void> {
    const live = await this.o.kube.get<KObject>(path);
    if (!live) {
      if (await this.createIgnoringExisting(path.slice(0, path.lastIndexOf('/')), want)) {
        await this.event(c, 'Normal', 'Created', `created ${want.kind} ${want.metadata.name}`);
      }
      return;
    }
    if (!(live.metadata.ownerReferences ?? []).some((r) => r.uid === c.metadata.uid)) {
      await this.event(c, 'Warning', 'NotOwned', `${want.kind} ${want.metadata.name} exists and is not owned by this EtcdCluster; leaving it alone`);
      return;
    }
    const wantSpec = want.spec as Record<string, unknown>;
    if (R.specDiffers(live.spec as Record<string, unknown>, wantSpec)) {
      await this.updateWithRetry<KObject>(path, (obj) => {
        obj.spec = { ...(obj.spec as Record<string, unknown>), ...wantSpec };
        return true;
      });
      await this.event(c, 'Normal', 'Updated', `brought the spec of ${want.kind} ${want.metadata.name} back to what the EtcdCluster asks`);
    }
  }

  /** maxUnavailable from the smaller of the wanted and the current size, so a growing cluster is not over-promised. */
  private async ensurePDB(c: EtcdCluster, spec: EtcdClusterSpec, members: number): Promise<void> {
    const n = members > 0 ? Math.min(spec.size, members) : spec.size;
    const want = R.podDisruptionBudget(c, { ...spec, size: n });
    await this.ensureOwned(c, want, paths.group('policy/v1', c.metadata.namespace as string, 'poddisruptionbudgets', want.metadata.name));
  }

  // ---- status ----

  private status(c: EtcdCluster, spec: EtcdClusterSpec, o: Observed & { leaderName?: string }, p: Plan, actionError?: Error): EtcdClusterStatus {
    const ns = c.metadata.namespace as string;
    const cluster = c.metadata.name as string;
    const prev = c.status ?? {};
    // No member answering is not an empty membership: the last one seen stays (none of it ready), so that the
    // cluster still counts as bootstrapped and a lost cluster is never silently re-created from an empty seed.
    const members: MemberStatus[] =
      o.members === undefined
        ? (prev.members ?? []).map((m) => ({ ...m, ready: false }))
        : o.members.map((m) => {
            const podName = m.name || o.pods.find((x) => m.peerURLs.some((u) => u.includes(`//${x.name}.`)))?.name || '';
            const pod = o.pods.find((x) => x.name === podName);
            const ms: MemberStatus = { name: podName, id: m.id, ready: pod !== undefined && pod.ready && o.healthy[pod.name] === true, version: pod?.runningVersion ?? pod?.version };
            if (m.isLearner) ms.learner = true;
            return ms;
          });
    members.sort((a, b) => (ordinalOf(cluster, a.name) ?? 0) - (ordinalOf(cluster, b.name) ?? 0));
    // Availability is the voters' quorum: a learner neither counts toward it nor is needed for it.
    const voters = members.filter((m) => !m.learner);
    const ready = voters.filter((m) => m.ready).length;
    const total = voters.length;
    const available = total > 0 && ready >= quorum(total);
    const readyAll = members.filter((m) => m.ready).length;
    const versions = [...new Set(members.map((m) => m.version).filter((v): v is string => !!v))];
    const now = new Date(this.now()).toISOString();
    const gen = c.metadata.generation;
    const progressing = p.action.kind !== 'none' && p.action.kind !== 'refuse';
    const degraded = p.degraded ?? (actionError ? { reason: `${p.reason}Failed`, message: actionError.message } : undefined);
    const conds: Condition[] = [
      available
        ? { type: 'Available', status: 'True', reason: 'QuorumHealthy', message: `${ready} of ${total} members healthy (quorum ${quorum(total)})`, lastTransitionTime: now, observedGeneration: gen }
        : { type: 'Available', status: 'False', reason: total === 0 ? 'NoMembers' : 'QuorumLost', message: total === 0 ? 'no member answers yet' : `${ready} of ${total} members healthy, quorum is ${quorum(total)}`, lastTransitionTime: now, observedGeneration: gen },
      { type: 'Progressing', status: progressing ? 'True' : 'False', reason: p.reason, message: p.message, lastTransitionTime: now, observedGeneration: gen },
      degraded
        ? { type: 'Degraded', status: 'True', reason: degraded.reason, message: degraded.message, lastTransitionTime: now, observedGeneration: gen }
        : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no member failed and nothing was refused', lastTransitionTime: now, observedGeneration: gen },
    ];
    // keep lastTransitionTime when the status did not change
    for (const cond of conds) {
      const old = prev.conditions?.find((x) => x.type === cond.type);
      if (old && old.status === cond.status) cond.lastTransitionTime = old.lastTransitionTime;
    }
    return {
      phase: p.phase,
      size: members.length,
      readyMembers: readyAll,
      ready: `${readyAll}/${spec.size}`,
      members,
      leader: o.leaderName || undefined,
      currentVersion: versions.length === 1 ? versions[0] : versions.length > 1 ? versions.sort().join(',') : prev.currentVersion,
      targetVersion: spec.version,
      clientURL: clientServiceURL(cluster, ns, spec),
      clientService: clientServiceName(cluster),
      observedGeneration: gen,
      lastAction: p.action.kind === 'none' || p.action.kind === 'wait' || p.action.kind === 'refuse' ? prev.lastAction : `${p.reason}: ${p.message}`,
      restoredFrom: prev.restoredFrom ?? restoredFrom(spec, o.restore),
      // a run's progress is written once its step is done; without spec.defragment there is none
      defragment: !spec.defragment ? undefined : actionError ? prev.defragment : (p.defragment ?? prev.defragment),
      conditions: conds,
    };
  }

  /** PUT /status with the resourceVersion we read; on 409 re-read, and write only if the spec we acted on is current. */
  private async writeStatus(c: EtcdCluster, status: EtcdClusterStatus, p: Plan): Promise<void> {
    const ns = c.metadata.namespace as string;
    const name = c.metadata.name as string;
    const path = `${clusterPath(ns, name)}/status`;
    // Events on transitions of Degraded (the refusal itself has no action event).
    const oldDeg = c.status?.conditions?.find((x) => x.type === 'Degraded');
    const newDeg = status.conditions?.find((x) => x.type === 'Degraded');
    if (newDeg && newDeg.status === 'True' && (oldDeg?.status !== 'True' || oldDeg.reason !== newDeg.reason) && p.action.kind === 'refuse') {
      await this.event(c, 'Warning', newDeg.reason, newDeg.message);
    }
    let cur: EtcdCluster = c;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (sameStatus(cur.status, status)) return;
      try {
        await this.o.kube.replace(path, { apiVersion: API_VERSION, kind: cur.kind, metadata: cur.metadata, spec: cur.spec, status });
        return;
      } catch (e) {
        if (!(e instanceof ApiError) || !e.isConflict) throw e;
        this.o.log.info('status conflict, re-reading', { cluster: `${ns}/${name}` });
        this.o.onConflict?.();
        const fresh = await this.o.kube.get<EtcdCluster>(clusterPath(ns, name));
        if (!fresh) return;
        // the spec changed under us: this status describes an older generation; the next reconcile writes the new one
        if (fresh.metadata.generation !== c.metadata.generation) throw new ApiError(409, 'Conflict', 'spec changed during reconcile');
        cur = fresh;
      }
    }
    throw new Error(`status of ${ns}/${name}: still conflicting after 5 attempts`);
  }

  async event(c: EtcdCluster, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      await this.o.kube.create(paths.core(c.metadata.namespace as string, 'events'), R.event(c, type, reason, message, this.o.instance, new Date(this.now())));
    } catch (e) {
      this.o.log.warn('could not record event', { reason, error: (e as Error).message });
    }
  }
}

/** What a restored cluster says it came from, once its members are being seeded. */
function restoredFrom(spec: EtcdClusterSpec, restore: Observed['restore']): EtcdClusterStatus['restoredFrom'] {
  if (!spec.restore || !restore || 'problem' in restore) return undefined;
  const r = restore as { file: string; revision?: number; sha256?: string };
  return { backup: spec.restore.backupName, file: r.file, ...(r.revision !== undefined ? { revision: r.revision } : {}), ...(r.sha256 ? { sha256: r.sha256 } : {}) };
}

function mostCommon(xs: string[]): string | undefined {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function sameStatus(a: EtcdClusterStatus | undefined, b: EtcdClusterStatus): boolean {
  return JSON.stringify(a ?? {}) === JSON.stringify(b);
}

export function podView(p: PodObject): PodView {
  const readyCond = p.status?.conditions?.find((x) => x.type === 'Ready');
  const ready = readyCond?.status === 'True';
  const ctr = p.spec?.containers?.find((x) => x.name === 'etcd') ?? p.spec?.containers?.[0];
  const cs = p.status?.containerStatuses?.find((x) => x.name === 'etcd');
  const created = p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : undefined;
  const state = p.metadata.annotations?.[ANN_CLUSTER_STATE];
  return {
    name: p.metadata.name as string,
    phase: p.status?.phase ?? 'Pending',
    ready,
    deleting: !!p.metadata.deletionTimestamp,
    version: versionOfImage(ctr?.image),
    runningVersion: versionOfImage(cs?.image),
    clusterState: state === 'new' || state === 'existing' ? state : undefined,
    memberId: p.metadata.annotations?.[ANN_MEMBER_ID],
    createdAt: created,
    unreadySince: ready ? undefined : readyCond?.lastTransitionTime ? Date.parse(readyCond.lastTransitionTime) : created,
    persistent: (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim !== undefined),
  };
}
