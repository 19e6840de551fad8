/**
 * The planner: observed state of one EtcdCluster → the ONE next safe action, with the reason for it.
 *
 * Pure (no I/O, no clock: `now` comes in). Level-triggered: it looks only at what is there now (pods, the members
 * list as etcd reports it, health), never at what the operator did last, so it can be re-run at any time and after
 * any crash and still say the right thing. Each action is small and safe on its own; the next reconcile observes its
 * effect before anything else happens.
 *
 * The rules, in order (the first that applies wins):
 *  1. an invalid spec, or `paused`: act on nothing;
 * 1c. spec.tls.certManager: cert-manager's Certificate CRD not served: report it (CertManagerNotInstalled), act on
 *     nothing; the client certificate (the operator's) not issued yet: ask for it, then wait for it; and whatever
 *     the rules below decide, a member's pod is created only once cert-manager has filled its Secret (ask for its
 *     Certificate first, then wait);
 *  2. a pod being deleted: wait for it to go;
 *  3. a member whose data is on its own volume (PersistentVolumeClaim) and whose pod is gone or ended (Succeeded,
 *     Failed): give it its pod back on that volume (a terminal pod is deleted first, keeping the volume). This
 *     changes no membership — the same member restarts from its own data — so it needs no quorum and comes before
 *     every quorum check: it is how a cluster that lost 2 of 3 pods, or all of them, gets its quorum back. The
 *     members are etcd's members list, or, when no member answers, the membership the status last saw;
 * 4r. a new cluster with spec.restore, before any member answers: create each member's pod, its data dir restored from
 *     the backup's snapshot by an init container (etcd's disaster recovery), all started `new` with the whole cluster;
 *  4. no pods and no members: bootstrap the seed (`--initial-cluster-state new`) — unless the cluster had members
 *     before (then every member and its data are gone: report Degraded, never silently re-create an empty etcd);
 *  5. members API unreachable: wait for the seed, or report Degraded;
 *  6. a member that was added but has no pod: create its pod (`existing`, the full `--initial-cluster`) — even
 *     without quorum, since a pod can only help;
 *     fewer healthy voting members than the quorum of the voters (learners count toward no quorum; nobody joining):
 *     Degraded (QuorumLost), act on nothing — any membership change needs a quorum to commit, and deleting pods could
 *     only make it worse;
 *  7. a pod that is not a member (removed, or a leftover): delete it (it cannot vote, so this is always safe); a
 *     young pod gets a grace period (a lagging members list may not show its just-added member yet);
 *  8. a member whose peer URL is not one of this cluster's pods: remove it (guarded like any removal);
 *  9. a failed member (pod gone or ended with no volume to come back to, or unready for longer than the grace
 *     period): remove it from the members list (its pod then becomes step 7, and the cluster grows back by step 11);
 *     a learner may always go (it holds no vote), a voter only if the rest is still a quorum of the smaller cluster;
 * 10. a member not ready yet (joining, catching up as a learner, restarting after an upgrade): wait;
 * 11. more members than spec.size: remove one — a learner first, never the leader, unready ones first, then the
 *     newest; else a learner (every member healthy): promote it, which etcd allows once it has caught up with the
 *     leader (until then the promotion is answered "not in sync" and tried again); else fewer members than spec.size:
 *     add one as a learner (MemberAdd is_learner). A learner changes no quorum, so growing never risks one: the
 *     cluster's quorum grows only at the promotion, when the new member is already up to date and healthy;
 * 12. a member running another version than spec.version: upgrade it in place (the pod's image; the container
 *     restarts, its emptyDir/PVC stays) — followers first, the leader last; minor downgrades and minor skips refused;
 * 13. otherwise: nothing to do.
 */
import type { DefragmentStatus, EtcdClusterSpec, Phase } from './api/types';
import { lastRunBetween, nextRun, parseSchedule, ScheduleError } from './cron';
import { quorum, specProblems } from './api/types';
import { clientTLSSecretName, memberPodName, memberTLSSecretName, ordinalOf, peerURL, podFromPeerURL } from './api/naming';

export interface PodView {
  name: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  ready: boolean;
  deleting: boolean;
  /** The version its spec asks for (image tag). */
  version?: string;
  /** The version its container is actually running (containerStatuses image tag), if known. */
  runningVersion?: string;
  /** `new` (the seed) or `existing`. */
  clusterState?: 'new' | 'existing';
  /** The member ID it was created for (annotation), if known. */
  memberId?: string;
  createdAt?: number;
  /** Since when the pod has been not ready (ms since epoch), if it is not. */
  unreadySince?: number;
  /** Whether it has a persistent volume claim (its data survives the pod). */
  persistent?: boolean;
}

export interface MemberView {
  /** Hex ID (etcd's uint64 as the members list is printed). */
  id: string;
  /** Empty until the member has started. */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  /** A learner: it receives the log but does not vote (and counts toward no quorum) until it is promoted. */
  isLearner?: boolean;
}

/** What cert-manager has done for a cluster (spec.tls.certManager). */
export interface CertificatesView {
  /** Whether the API serves cert-manager.io/v1 certificates (its CRD is installed). */
  installed: boolean;
  /** Secret names of the cluster's Certificates that exist. */
  requested: string[];
  /** Secret names that hold a certificate (tls.crt, tls.key and ca.crt). */
  issued: string[];
}

export interface Observed {
  cluster: string;
  namespace: string;
  spec: EtcdClusterSpec;
  pods: PodView[];
  /** The members list from the etcd cluster; undefined when no member answered. */
  members?: MemberView[];
  /** Pod name → the member answered /health with true. */
  healthy: Record<string, boolean>;
  /** The leader's member ID, if known. */
  leaderId?: string;
  /** Whether this cluster ever had members (from its status). */
  bootstrapped: boolean;
  now: number;
  /** A pod that is not a member is deleted only after this long (members lists can lag a just-added member). */
  orphanGraceMs?: number;
  /** A running member unready for longer than this is replaced. */
  failedMemberTimeoutMs?: number;
  /** Pod names whose data volume (PersistentVolumeClaim) exists: those members can come back with their data. */
  volumes?: string[];
  /** The membership the status last saw (pod names, IDs): who the members are when none answers. */
  lastMembers?: { name: string; id?: string }[];
  /** spec.restore, resolved: the claim and snapshot file every member is seeded from, or why there is none. */
  restore?: { claim: string; file: string } | { problem: string };
  /** The EtcdCluster's creation (ms): a defragmentation schedule counts from there. */
  createdAt?: number;
  /** Scheduled defragmentation as the status last said. */
  defragment?: DefragmentStatus;
  /** spec.tls.certManager: the Certificates and their Secrets. */
  certificates?: CertificatesView;
}

export type Action =
  | { kind: 'none' }
  | { kind: 'wait' }
  | { kind: 'refuse' }
  | { kind: 'bootstrap'; pod: string; peerURL: string }
  /** spec.tls.certManager: a cert-manager Certificate for a member's Secret (`pod`) or, without a pod, the client's. */
  | { kind: 'requestCertificate'; secret: string; pod?: string }
  /** A member of a cluster seeded from a backup: its data dir restored from the snapshot, then started (`new`). */
  | { kind: 'restoreMember'; pod: string; initialCluster: { name: string; peerURL: string }[]; claim: string; file: string }
  /** Always as a learner: it changes no quorum until it is promoted. */
  | { kind: 'addMember'; pod: string; peerURL: string; learner: true }
  /** A learner that has caught up becomes a voter (etcd refuses while it lags: retried later). */
  | { kind: 'promoteMember'; id: string; pod: string }
  | { kind: 'createPod'; pod: string; state: 'existing'; initialCluster: { name: string; peerURL: string }[]; memberId?: string }
  | { kind: 'removeMember'; id: string; pod?: string }
  /** keepVolume: the pod goes, its member and volume stay (the member gets a new pod on it next). */
  | { kind: 'deletePod'; pod: string; keepVolume?: boolean }
  | { kind: 'upgradeMember'; pod: string; from?: string; to: string }
  /** Maintenance.Defragment of one member (it stays serving; its writes wait while its store is copied). */
  | { kind: 'defragMember'; pod: string; id: string };

export interface Plan {
  action: Action;
  phase: Phase;
  /** A CamelCase reason (for conditions and events) and a sentence. */
  reason: string;
  message: string;
  /** Set when the cluster is degraded (quorum lost, member unhealthy, refused spec...). */
  degraded?: { reason: string; message: string };
  /** status.defragment to write (once the action, if any, is done). */
  defragment?: DefragmentStatus;
  /** Look again then, at the latest (a schedule coming due). */
  requeueAfterMs?: number;
}

const DEFAULT_ORPHAN_GRACE_MS = 30_000;
const DEFAULT_FAILED_MEMBER_TIMEOUT_MS = 5 * 60_000;

interface Joined {
  member: MemberView;
  /** The pod name this member is (by name once started, by peer URL before). */
  podName?: string;
  pod?: PodView;
}

export function plan(o: Observed): Plan {
  const p = planMembers(o);
  if (!o.spec.tls?.certManager) return p;
  // 1c. a member's pod only once cert-manager filled its Secret
  const a = p.action;
  if (a.kind !== 'bootstrap' && a.kind !== 'createPod' && a.kind !== 'restoreMember') return p;
  return certificateFirst(o, memberTLSSecretName(a.pod), a.pod) ?? p;
}

/** spec.tls.certManager: ask for a Certificate not asked for yet, wait for one not issued yet; undefined once issued. */
function certificateFirst(o: Observed, secret: string, pod?: string): Plan | undefined {
  const certs = o.certificates ?? { installed: false, requested: [], issued: [] };
  if (certs.issued.includes(secret)) return undefined;
  const what = pod ? `member ${pod}'s certificate` : 'the client certificate';
  if (!certs.requested.includes(secret)) return act({ kind: 'requestCertificate', secret, ...(pod ? { pod } : {}) }, busyPhase(o), 'CertificateRequested', `asked cert-manager for ${what} (Certificate ${secret})`, o);
  return wait(busyPhase(o), 'WaitingForCertificate', `waiting for cert-manager to issue ${what} into Secret ${secret}`, o);
}

function planMembers(o: Observed): Plan {
  const { cluster, namespace, spec } = o;
  const problems = specProblems(spec);
  if (problems.length > 0) {
    return refuse('Failed', 'InvalidSpec', problems.join('; '));
  }
  if (spec.paused) {
    return { action: { kind: 'none' }, phase: 'Running', reason: 'Paused', message: 'spec.paused is set: not acting' };
  }
  // 1c. cert-manager there, and the operator's client certificate issued
  if (spec.tls?.certManager) {
    if (!o.certificates?.installed) {
      return refuse(busyPhase(o) === 'Creating' ? 'Creating' : 'Degraded', 'CertManagerNotInstalled', "spec.tls.certManager: cert-manager's CRD certificates.cert-manager.io is not installed; no member is created until it is");
    }
    const client = certificateFirst(o, clientTLSSecretName(cluster));
    if (client) return client;
  }
  const deleting = o.pods.find((p) => p.deleting);
  if (deleting) {
    return wait(busyPhase(o), 'PodTerminating', `waiting for pod ${deleting.name} to terminate`, o);
  }
  const pods = o.pods;
  // An empty list is no answer (etcd always lists at least the member answering).
  const members = o.members !== undefined && o.members.length > 0 ? o.members : undefined;

  // 3. Members come back on their volumes, quorum or not.
  const back = backOnVolume(o, members);
  if (back) return back;

  // 4r. A cluster seeded from a backup: every member restored from the snapshot and started at once.
  if (spec.restore && !o.bootstrapped && members === undefined) return restoring(o);

  // 4. Nothing there yet.
  if (pods.length === 0 && (members === undefined || members.length === 0)) {
    if (o.bootstrapped) {
      return refuse('Failed', 'AllMembersLost', 'every member pod is gone and no member answers: the data is lost; delete and re-create the EtcdCluster (or restore a backup)');
    }
    const pod = memberPodName(cluster, nextOrdinal(o));
    return {
      action: { kind: 'bootstrap', pod, peerURL: peerURL(cluster, namespace, pod, spec) },
      phase: 'Creating',
      reason: 'Bootstrapping',
      message: `creating the seed member ${pod} (--initial-cluster-state new)`,
    };
  }

  // 5. The members API did not answer.
  if (members === undefined) {
    if (pods.length === 1 && pods[0].clusterState === 'new' && !o.bootstrapped && pods[0].phase !== 'Failed') {
      return wait('Creating', 'WaitingForSeed', `waiting for the seed member ${pods[0].name} to start`, o);
    }
    if (!pods.some((p) => p.ready)) {
      // Members just given their pods back (step 3) take a moment to start and elect: wait for them, still Degraded.
      const startingFor = o.failedMemberTimeoutMs ?? DEFAULT_FAILED_MEMBER_TIMEOUT_MS;
      const starting = pods.find((p) => p.phase !== 'Failed' && p.phase !== 'Succeeded' && p.createdAt !== undefined && o.now - p.createdAt < startingFor);
      if (starting) {
        return wait(busyPhase(o), 'WaitingForMembers', `no member answers yet; waiting for member ${starting.name} to start`, o, {
          reason: 'MembersUnreachable',
          message: 'no member is ready and the members API does not answer',
        });
      }
      return refuse('Degraded', 'MembersUnreachable', 'no member is ready and the members API does not answer');
    }
    return wait('Degraded', 'MembersUnreachable', 'the members API does not answer; waiting', o, {
      reason: 'MembersUnreachable',
      message: 'ready members exist but the members API does not answer',
    });
  }

  // Join members with their pods.
  const podByName = new Map(pods.map((p) => [p.name, p]));
  const joined: Joined[] = members.map((m) => {
    // By peer URL: the operator chose it when it added the member, and it is there before the member starts.
    const podName = m.peerURLs.map((u) => podFromPeerURL(u, cluster, namespace)).find((x) => x !== undefined);
    return { member: m, podName, pod: podName === undefined ? undefined : podByName.get(podName) };
  });
  const memberPods = new Set(joined.map((j) => j.podName).filter((x): x is string => x !== undefined));
  const isHealthy = (j: Joined): boolean => j.pod !== undefined && j.pod.ready && o.healthy[j.pod.name] === true;
  // Only voters make a quorum: a learner neither counts toward it nor is needed for it.
  const voters = joined.filter((j) => !j.member.isLearner);
  const total = voters.length;
  const healthy = voters.filter(isHealthy).length;
  const q = quorum(total);

  // 6a. Added, pod not created yet: create it (it can only help, even without quorum: 1 → 2 has none until it joins).
  const unstarted = joined.find((j) => j.member.name === '' && j.pod === undefined);
  if (unstarted && unstarted.podName !== undefined) {
    const initialCluster = joined.map((j) => ({ name: j.podName as string, peerURL: j.member.peerURLs[0] }));
    return act(
      { kind: 'createPod', pod: unstarted.podName, state: 'existing', initialCluster, memberId: unstarted.member.id },
      'Scaling',
      'CreatingMemberPod',
      `creating pod ${unstarted.podName} for the added member ${unstarted.member.id}`,
      o,
    );
  }

  // 6b. Quorum lost: no membership change can commit; do nothing that could make it worse.
  if (healthy < q) {
    // A member still starting (added and not yet published, or its pod young and never ready, like the seed of a
    // new cluster) is not a lost one: wait for it without raising the alarm.
    const startingFor = o.failedMemberTimeoutMs ?? DEFAULT_FAILED_MEMBER_TIMEOUT_MS;
    const starting = (j: Joined): boolean =>
      j.pod !== undefined &&
      j.pod.phase !== 'Failed' &&
      j.pod.phase !== 'Succeeded' &&
      (j.member.name === '' || (!j.pod.ready && j.pod.unreadySince === undefined && j.pod.createdAt !== undefined && o.now - j.pod.createdAt < startingFor));
    const joining = voters.find(starting);
    if (joining) {
      const message = `waiting for member ${joining.podName} to start (${healthy} of ${total} healthy, quorum ${q})`;
      // An added member the quorum now needs: the cluster cannot commit until it joins, which is worth saying.
      if (joining.member.name === '') return wait(busyPhase(o), 'WaitingForMember', message, o, { reason: 'MemberJoining', message: `quorum needs the joining member ${joining.podName}` });
      return wait(busyPhase(o), 'WaitingForMember', message, o);
    }
    return refuse('Degraded', 'QuorumLost', `only ${healthy} of ${total} voting members are healthy, ${q} are needed for quorum; not acting`);
  }

  // 7. Pods that are not members.
  const grace = o.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS;
  for (const p of pods) {
    if (memberPods.has(p.name)) continue;
    const idKnownGone = p.memberId !== undefined && !members.some((m) => m.id === p.memberId);
    const old = p.createdAt === undefined || o.now - p.createdAt >= grace;
    if (idKnownGone || old || p.phase === 'Failed' || p.phase === 'Succeeded') {
      return act({ kind: 'deletePod', pod: p.name }, 'Healing', 'DeletingPod', `pod ${p.name} is not a member of the cluster; deleting it`, o);
    }
    return wait(busyPhase(o), 'WaitingForMembersList', `pod ${p.name} is not in the members list yet`, o);
  }

  // Members that are not ours (a peer URL we cannot map to a pod): remove them, they cannot be managed.
  const foreign = joined.find((j) => j.podName === undefined);
  if (foreign) {
    return guardedRemove(o, joined, foreign, healthy, 'RemovingForeignMember', `member ${foreign.member.id} (${foreign.member.peerURLs.join(',')}) is not one of this cluster's pods; removing it`);
  }

  // 9. Failed members (with no volume to come back to: step 3 brought those back).
  const timeout = o.failedMemberTimeoutMs ?? DEFAULT_FAILED_MEMBER_TIMEOUT_MS;
  for (const j of joined) {
    const p = j.pod;
    if (p === undefined && j.member.name !== '') {
      return guardedRemove(o, joined, j, healthy, 'ReplacingFailedMember', `member ${j.podName} lost its pod (and its data); removing it to replace it`);
    }
    if (p === undefined) continue;
    const terminal = p.phase === 'Failed' || p.phase === 'Succeeded';
    const stuck = !isHealthy(j) && p.unreadySince !== undefined && o.now - p.unreadySince >= timeout;
    if (terminal || stuck) {
      const why = terminal ? `pod ${p.name} is ${p.phase}` : `member ${p.name} has been unready for more than ${Math.round(timeout / 1000)}s`;
      return guardedRemove(o, joined, j, healthy, 'ReplacingFailedMember', `${why}; removing it to replace it`);
    }
  }

  // 10. Someone is not ready: let it settle before anything else.
  const unready = joined.find((j) => !isHealthy(j));
  if (unready) {
    const upgrading = unready.pod?.runningVersion !== undefined && unready.pod.runningVersion !== unready.pod.version;
    return wait(upgrading ? 'Upgrading' : busyPhase(o), 'WaitingForMember', `waiting for member ${unready.podName} to become ready`, o, {
      reason: 'MemberNotReady',
      message: `member ${unready.podName} is not ready`,
    });
  }
  const restarting = joined.find((j) => j.pod?.runningVersion !== undefined && j.pod.runningVersion !== j.pod.version);
  if (restarting) {
    return wait('Upgrading', 'WaitingForMember', `waiting for member ${restarting.podName} to restart with ${restarting.pod?.version}`, o);
  }

  // 11. Size: shrink first (a learner before any voter), then promote a learner that is there, then grow by one learner.
  if (joined.length > spec.size) {
    const victim = pickToRemove(cluster, joined, o.leaderId);
    return guardedRemove(o, joined, victim, healthy, 'RemovingMember', `removing ${victim.member.isLearner ? 'learner' : 'member'} ${victim.podName} (${joined.length} → ${joined.length - 1} of ${spec.size})`, 'Scaling');
  }
  const learner = joined.find((j) => j.member.isLearner);
  if (learner) {
    // Every member is healthy here (step 10), the learner too: with it the voters are a quorum of the bigger cluster.
    return act(
      { kind: 'promoteMember', id: learner.member.id, pod: learner.podName as string },
      'Scaling',
      'PromotingMember',
      `promoting learner ${learner.podName} to a voting member (${total} → ${total + 1} voters of ${spec.size})`,
      o,
    );
  }
  if (joined.length < spec.size) {
    const pod = memberPodName(cluster, nextOrdinal(o));
    return act(
      { kind: 'addMember', pod, peerURL: peerURL(cluster, namespace, pod, spec), learner: true },
      'Scaling',
      'AddingMember',
      `adding member ${pod} as a learner (${total} → ${total + 1} of ${spec.size})`,
      o,
    );
  }

  // 12. Version.
  const outdated = joined.filter((j) => j.pod !== undefined && j.pod.version !== spec.version);
  if (outdated.length > 0) {
    for (const j of outdated) {
      const bad = upgradeProblem(j.pod?.version, spec.version);
      if (bad) return refuse('Running', 'UnsupportedUpgrade', `member ${j.podName}: ${bad}`);
    }
    const order = [...outdated].sort((a, b) => {
      const la = a.member.id === o.leaderId ? 1 : 0;
      const lb = b.member.id === o.leaderId ? 1 : 0;
      return la - lb || (ordinalOf(cluster, a.podName ?? '') ?? 0) - (ordinalOf(cluster, b.podName ?? '') ?? 0);
    });
    const j = order[0];
    return act(
      { kind: 'upgradeMember', pod: j.podName as string, from: j.pod?.version, to: spec.version },
      'Upgrading',
      'UpgradingMember',
      `upgrading member ${j.podName} from ${j.pod?.version} to ${spec.version}${j.member.id === o.leaderId ? ' (the leader, last)' : ''}`,
      o,
    );
  }

  // 13. Scheduled defragmentation.
  const none: Plan = { action: { kind: 'none' }, phase: 'Running', reason: 'ReconcileComplete', message: `${total} of ${spec.size} members healthy at ${spec.version}` };
  return spec.defragment ? defragment(o, joined, none) : none;
}

const rfc3339 = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Step 13: when a run of spec.defragment's schedule is due (missed runs count as one), every member is defragmented
 * in turn — followers first (lowest ordinal first), the leader last, since a member's writes wait while its store is
 * copied — one per reconcile, each only once every member is healthy again (steps 6–10 come first). The run's
 * progress is in status.defragment, so it goes on after a restart of the operator.
 */
function defragment(o: Observed, joined: Joined[], none: Plan): Plan {
  const spec = o.spec;
  const prev = o.defragment ?? {};
  let schedule;
  try {
    schedule = parseSchedule(spec.defragment?.schedule ?? '');
  } catch (e) {
    if (!(e instanceof ScheduleError)) throw e;
    return { ...none, defragment: { ...prev, running: undefined, nextScheduleTime: undefined, message: `spec.defragment.schedule: ${e.message}` } };
  }
  const st: DefragmentStatus = { ...prev, message: undefined };
  let run = prev.running;
  if (!run) {
    const due = lastRunBetween(schedule, prev.lastScheduleTime ? Date.parse(prev.lastScheduleTime) : (o.createdAt ?? o.now), o.now);
    if (due !== undefined) {
      run = { due: rfc3339(due), done: [] };
      st.lastScheduleTime = run.due;
    }
  }
  const next = nextRun(schedule, st.lastScheduleTime ? Date.parse(st.lastScheduleTime) : (o.createdAt ?? o.now));
  st.nextScheduleTime = next === undefined ? undefined : rfc3339(next);
  const requeueAfterMs = next === undefined ? undefined : Math.max(0, next - o.now) + 50;
  if (run) {
    const order = joined
      .filter((j) => j.podName !== undefined)
      .sort((a, b) => Number(a.member.id === o.leaderId) - Number(b.member.id === o.leaderId) || (ordinalOf(o.cluster, a.podName ?? '') ?? 0) - (ordinalOf(o.cluster, b.podName ?? '') ?? 0));
    const todo = order.filter((j) => !run.done.includes(j.podName as string));
    if (todo.length > 0) {
      const j = todo[0];
      const leader = j.member.id === o.leaderId;
      return {
        action: { kind: 'defragMember', pod: j.podName as string, id: j.member.id },
        phase: 'Running',
        reason: 'Defragmenting',
        message: `defragmenting member ${j.podName}${leader ? ' (the leader, last)' : ''}: ${run.done.length + 1} of ${order.length} in the run due ${run.due}`,
        defragment: { ...st, running: { due: run.due, done: [...run.done, j.podName as string] } },
      };
    }
    st.running = undefined;
    st.lastCompletionTime = rfc3339(o.now);
  }
  return { ...none, defragment: st, requeueAfterMs };
}

/**
 * Step 4r, etcd's disaster recovery: a new cluster of spec.size members whose data dirs are all made from one
 * snapshot (`etcdctl snapshot restore` with each member's name, the whole cluster and its token), started together
 * with `--initial-cluster-state new`. Their pods are created one per reconcile, lowest ordinal first; then waited for.
 */
function restoring(o: Observed): Plan {
  const { cluster, namespace, spec } = o;
  const src = o.restore;
  if (!src || 'problem' in src) {
    return refuse('Failed', 'RestoreSourceUnavailable', `cannot restore from EtcdBackup ${spec.restore?.backupName}: ${src && 'problem' in src ? src.problem : 'not resolved'}`);
  }
  const names = Array.from({ length: spec.size }, (_, i) => memberPodName(cluster, i));
  const initialCluster = names.map((n) => ({ name: n, peerURL: peerURL(cluster, namespace, n, spec) }));
  const missing = names.find((n) => !o.pods.some((p) => p.name === n));
  if (missing) {
    return act(
      { kind: 'restoreMember', pod: missing, initialCluster, claim: src.claim, file: src.file },
      'Creating',
      'RestoringMember',
      `seeding member ${missing} from snapshot ${src.file} (EtcdBackup ${spec.restore?.backupName}), ${initialCluster.length} members in all`,
      o,
    );
  }
  const failed = o.pods.find((p) => p.phase === 'Failed');
  if (failed) return refuse('Failed', 'RestoreFailed', `member ${failed.name} failed to restore or start from ${src.file}`);
  return wait('Creating', 'WaitingForRestore', `waiting for the ${names.length} restored members to start and elect a leader`, o);
}

/**
 * Step 3: the first member (lowest ordinal) that has its data volume but no running pod gets its pod back — created
 * when it is gone, deleted first when it ended (Succeeded after a graceful node shutdown, Failed): a terminal pod
 * never runs again. Only started members: an added member that never started is step 6's.
 */
function backOnVolume(o: Observed, members: MemberView[] | undefined): Plan | undefined {
  if (!o.volumes || o.volumes.length === 0) return undefined;
  const volumes = new Set(o.volumes);
  // Who the members are: etcd's list when a member answers, else what the status last saw.
  const known: { pod: string; id?: string; peerURL: string }[] = [];
  if (members) {
    for (const m of members) {
      const pod = m.peerURLs.map((u) => podFromPeerURL(u, o.cluster, o.namespace)).find((x) => x !== undefined);
      if (pod !== undefined) known.push({ pod, id: m.id, peerURL: m.peerURLs[0] });
    }
  } else {
    for (const m of o.lastMembers ?? []) {
      if (m.name !== '') known.push({ pod: m.name, id: m.id, peerURL: peerURL(o.cluster, o.namespace, m.name, o.spec) });
    }
  }
  const started = (k: { pod: string; id?: string }): boolean => members === undefined || members.some((m) => m.id === k.id && m.name !== '');
  const candidates = known
    .filter((k) => volumes.has(k.pod) && started(k))
    .sort((a, b) => (ordinalOf(o.cluster, a.pod) ?? 0) - (ordinalOf(o.cluster, b.pod) ?? 0));
  const lost = candidates.find((k) => !o.pods.some((p) => p.name === k.pod));
  if (lost) {
    return act(
      { kind: 'createPod', pod: lost.pod, state: 'existing', initialCluster: known.map((k) => ({ name: k.pod, peerURL: k.peerURL })), memberId: lost.id },
      'Healing',
      'RecreatingMemberPod',
      `member ${lost.pod} lost its pod; re-creating it on its persistent volume (the same member on its own data: no quorum needed)`,
      o,
      { reason: 'MemberPodLost', message: `member ${lost.pod} has no pod` },
    );
  }
  const ended = candidates.map((k) => o.pods.find((p) => p.name === k.pod)).find((p) => p !== undefined && (p.phase === 'Succeeded' || p.phase === 'Failed'));
  if (ended) {
    return act(
      { kind: 'deletePod', pod: ended.name, keepVolume: true },
      'Healing',
      'RecyclingMemberPod',
      `pod ${ended.name} is ${ended.phase}; deleting it to start the member again on its persistent volume`,
      o,
      { reason: 'MemberPodEnded', message: `member ${ended.name}'s pod is ${ended.phase}` },
    );
  }
  return undefined;
}

/** Remove a member only if what stays is still a quorum of the smaller cluster, counting only healthy members. */
function guardedRemove(o: Observed, joined: Joined[], j: Joined, healthy: number, reason: string, message: string, phase: Phase = 'Healing'): Plan {
  const degraded0 = reason === 'RemovingMember' ? undefined : { reason: 'MemberFailed', message };
  // A learner votes in nothing: removing it leaves the quorum as it is (and needs that quorum to commit, which step 6 saw).
  if (j.member.isLearner) return act({ kind: 'removeMember', id: j.member.id, pod: j.podName }, phase, reason, message, o, degraded0);
  const total = joined.filter((x) => !x.member.isLearner).length;
  const healthyAfter = healthy - (j.pod !== undefined && j.pod.ready && o.healthy[j.pod.name] === true ? 1 : 0);
  if (total - 1 === 0) {
    return refuse('Degraded', 'LastMember', `not removing ${j.podName ?? j.member.id}: it is the last member`);
  }
  if (healthyAfter < quorum(total - 1)) {
    return refuse('Degraded', 'UnsafeToRemove', `removing ${j.podName ?? j.member.id} would leave ${healthyAfter} healthy of ${total - 1}, below quorum ${quorum(total - 1)}`);
  }
  return act({ kind: 'removeMember', id: j.member.id, pod: j.podName }, phase, reason, message, o, degraded0);
}

function pickToRemove(cluster: string, joined: Joined[], leaderId: string | undefined): Joined {
  const learner = joined.find((j) => j.member.isLearner);
  if (learner) return learner;
  const candidates = joined.filter((j) => j.member.id !== leaderId);
  const pool = candidates.length > 0 ? candidates : joined;
  return [...pool].sort((a, b) => {
    const ua = a.pod?.ready ? 0 : 1;
    const ub = b.pod?.ready ? 0 : 1;
    if (ua !== ub) return ub - ua;
    return (ordinalOf(cluster, b.podName ?? '') ?? -1) - (ordinalOf(cluster, a.podName ?? '') ?? -1);
  })[0];
}

/** etcd upgrades one minor version at a time and does not downgrade across minors. */
export function upgradeProblem(from: string | undefined, to: string): string | undefined {
  const a = parseVersion(from);
  const b = parseVersion(to);
  if (!a || !b) return undefined;
  if (a[0] !== b[0]) return `cannot change the major version (${from} → ${to})`;
  if (b[1] < a[1]) return `downgrading a minor version is not supported (${from} → ${to})`;
  if (b[1] > a[1] + 1) return `upgrade one minor version at a time (${from} → ${to})`;
  return undefined;
}
function parseVersion(v: string | undefined): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** What the cluster is busy with while waiting. */
function busyPhase(o: Observed): Phase {
  if (o.members === undefined || o.members.length === 0) return o.bootstrapped ? 'Healing' : 'Creating';
  if (o.members.length !== o.spec.size || o.members.some((m) => m.isLearner)) return 'Scaling';
  if (o.pods.some((p) => p.version !== undefined && p.version !== o.spec.version)) return 'Upgrading';
  return 'Healing';
}

function nextOrdinal(o: Observed): number {
  let max = -1;
  for (const p of o.pods) max = Math.max(max, ordinalOf(o.cluster, p.name) ?? -1);
  for (const m of o.members ?? []) {
    const name = m.peerURLs.map((u) => podFromPeerURL(u, o.cluster, o.namespace)).find((x) => x !== undefined) ?? m.name;
    if (name) max = Math.max(max, ordinalOf(o.cluster, name) ?? -1);
  }
  return max + 1;
}

function act(action: Action, phase: Phase, reason: string, message: string, _o: Observed, degraded?: Plan['degraded']): Plan {
  return { action, phase, reason, message, degraded };
}
function wait(phase: Phase, reason: string, message: string, _o: Observed, degraded?: Plan['degraded']): Plan {
  return { action: { kind: 'wait' }, phase, reason, message, degraded };
}
function refuse(phase: Phase, reason: string, message: string): Plan {
  return { action: { kind: 'refuse' }, phase, reason, message, degraded: { reason, message } };
}
