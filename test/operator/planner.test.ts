/** The planner, table-driven: every observed situation → exactly one action, with its reason. */
import { plan, upgradeProblem, type MemberView, type Observed, type PodView, type Action } from '../../operator/planner';
import { withDefaults, type EtcdClusterSpec } from '../../operator/api/types';

const NS = 'ns';
const C = 'ex';
const NOW = 1_000_000_000;
const url = (pod: string): string => `http://${pod}.${C}.${NS}.svc:2380`;
const id = (i: number): string => `10${i}`;

/** A started, ready, healthy member i (pod ex-i). */
function pod(i: number, o: Partial<PodView> = {}): PodView {
  return { name: `${C}-${i}`, phase: 'Running', ready: true, deleting: false, version: '3.4.34', runningVersion: '3.4.34', clusterState: i === 0 ? 'new' : 'existing', createdAt: NOW - 3_600_000, ...o };
}
function member(i: number, started = true, isLearner = false): MemberView {
  return { id: id(i), name: started ? `${C}-${i}` : '', peerURLs: [url(`${C}-${i}`)], clientURLs: started ? [`http://${C}-${i}.${C}.${NS}.svc:2379`] : [], isLearner };
}
/** Member i as a learner (added with MemberAdd is_learner; started unless said otherwise). */
const learner = (i: number, started = true): MemberView => member(i, started, true);
/** The one way the planner grows a cluster: member i added as a learner. */
const add = (i: number): Action => ({ kind: 'addMember', pod: `${C}-${i}`, peerURL: url(`${C}-${i}`), learner: true });
const promote = (i: number): Action => ({ kind: 'promoteMember', id: id(i), pod: `${C}-${i}` });
interface Situation {
  spec?: Partial<EtcdClusterSpec>;
  pods?: PodView[];
  members?: MemberView[] | null;
  unhealthy?: string[];
  leader?: number;
  bootstrapped?: boolean;
  /** Pods whose data volume exists (default: with spec.storage, every member's; without, none). */
  volumes?: string[];
  /** The membership the status last saw (default: the members, when given). */
  lastMembers?: { name: string; id?: string }[];
  restore?: Observed['restore'];
  defragment?: Observed['defragment'];
  certificates?: Observed['certificates'];
  now?: number;
}
function observe(s: Situation): Observed {
  const pods = s.pods ?? [];
  const healthy: Record<string, boolean> = {};
  for (const p of pods) healthy[p.name] = p.ready && !(s.unhealthy ?? []).includes(p.name);
  return {
    cluster: C,
    namespace: NS,
    spec: withDefaults({ size: 3, ...s.spec }),
    pods,
    members: s.members === null ? undefined : s.members,
    healthy,
    leaderId: s.leader === undefined ? id(0) : id(s.leader),
    bootstrapped: s.bootstrapped ?? (s.members !== null && (s.members ?? []).length > 0),
    now: NOW,
    volumes: s.volumes ?? (s.spec?.storage ? [...(s.members ?? []).map((m) => podOf(m)), ...(s.lastMembers ?? []).map((m) => m.name)] : undefined),
    lastMembers: s.lastMembers ?? s.members?.map((m) => ({ name: m.name, id: m.id })),
    restore: s.restore,
    createdAt: NOW - 3_600_000,
    defragment: s.defragment,
    certificates: s.certificates,
    ...(s.now !== undefined ? { now: s.now } : {}),
  };
}
const podOf = (m: MemberView): string => m.peerURLs[0].split('//')[1].split('.')[0];
const three = (o: (i: number) => Partial<PodView> = () => ({})): PodView[] => [0, 1, 2].map((i) => pod(i, o(i)));
const members3 = (): MemberView[] => [0, 1, 2].map((i) => member(i));
const PVC = { storage: { volumeClaimTemplate: { spec: {} } } };
/** What the status last saw of a 3-member cluster (names and IDs). */
const last3 = [0, 1, 2].map((i) => ({ name: `${C}-${i}`, id: id(i) }));
const all3 = [0, 1, 2].map((i) => ({ name: `${C}-${i}`, peerURL: url(`${C}-${i}`) }));
/** A member that is down: its pod runs, unready (no leader to be healthy with) for a while. */
const down: Partial<PodView> = { ready: false, unreadySince: NOW - 5000 };
const recreate = (i: number): Action => ({ kind: 'createPod', pod: `${C}-${i}`, state: 'existing', memberId: id(i), initialCluster: all3 });
const recycle = (i: number): Action => ({ kind: 'deletePod', pod: `${C}-${i}`, keepVolume: true });

interface Row {
  name: string;
  s: Situation;
  action: Action | Action['kind'];
  reason?: string;
  phase?: string;
  degraded?: string | null;
}

const rows: Row[] = [
  { name: 'empty cluster → bootstrap the seed', s: {}, action: { kind: 'bootstrap', pod: 'ex-0', peerURL: url('ex-0') }, reason: 'Bootstrapping', phase: 'Creating' },
  { name: 'seed pod starting, members API silent → wait', s: { pods: [pod(0, { phase: 'Pending', ready: false })], members: null }, action: 'wait', reason: 'WaitingForSeed' },
  { name: 'seed up, size 3 → add member 1', s: { pods: [pod(0)], members: [member(0)] }, action: add(1), reason: 'AddingMember' },
  {
    name: 'member added, no pod yet → its pod with the full initial cluster',
    s: { pods: [pod(0)], members: [member(0), member(1, false)] },
    action: { kind: 'createPod', pod: 'ex-1', state: 'existing', memberId: id(1), initialCluster: [{ name: 'ex-0', peerURL: url('ex-0') }, { name: 'ex-1', peerURL: url('ex-1') }] },
    reason: 'CreatingMemberPod',
  },
  { name: 'member joining (pod unready) → wait, never add the next one', s: { pods: [pod(0), pod(1, { ready: false, phase: 'Pending' })], members: [member(0), member(1, false)] }, action: 'wait', reason: 'WaitingForMember' },
  { name: 'two healthy of 2, size 3 → add member 2', s: { pods: [pod(0), pod(1)], members: [member(0), member(1)] }, action: add(2) },
  { name: 'steady 3 of 3 → nothing', s: { pods: three(), members: members3() }, action: 'none', reason: 'ReconcileComplete', phase: 'Running' },
  { name: 'scale 3 → 5: add one (ex-3)', s: { spec: { size: 5 }, pods: three(), members: members3() }, action: add(3) },
  { name: 'scale down 3 → 1: remove one non-leader (the newest) first', s: { spec: { size: 1 }, pods: three(), members: members3(), leader: 0 }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' }, reason: 'RemovingMember' },
  { name: 'scale down with the newest as leader: pick another non-leader', s: { spec: { size: 2 }, pods: three(), members: members3(), leader: 2 }, action: { kind: 'removeMember', id: id(1), pod: 'ex-1' } },
  { name: 'scale down: the removed member\'s pod is deleted next', s: { spec: { size: 1 }, pods: three(), members: [member(0), member(1)] }, action: { kind: 'deletePod', pod: 'ex-2' }, reason: 'DeletingPod' },
  { name: 'scale 2 → 1 with leader ex-1: remove ex-0', s: { spec: { size: 1 }, pods: [pod(0), pod(1)], members: [member(0), member(1)], leader: 1 }, action: { kind: 'removeMember', id: id(0), pod: 'ex-0' } },
  { name: 'pod terminating → wait for it', s: { spec: { size: 1 }, pods: [pod(0), pod(1, { deleting: true })], members: [member(0)] }, action: 'wait', reason: 'PodTerminating' },
  { name: 'quorum lost (1 of 3 healthy) → refuse, Degraded', s: { pods: three((i) => (i === 0 ? {} : { ready: false })), members: members3() }, action: 'refuse', reason: 'QuorumLost', degraded: 'QuorumLost', phase: 'Degraded' },
  { name: 'quorum lost even with a scale request → refuse', s: { spec: { size: 1 }, pods: three((i) => (i === 0 ? {} : { phase: 'Failed', ready: false })), members: members3() }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'a member pod deleted (emptyDir) → remove the member to replace it', s: { pods: [pod(0), pod(1)], members: members3() }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' }, reason: 'ReplacingFailedMember', degraded: 'MemberFailed' },
  { name: 'a member pod deleted (PVC) → re-create it with its name and data', s: { spec: { storage: { volumeClaimTemplate: { spec: {} } } }, pods: [pod(0), pod(1)], members: members3() }, action: { kind: 'createPod', pod: 'ex-2', state: 'existing', memberId: id(2), initialCluster: [0, 1, 2].map((i) => ({ name: `ex-${i}`, peerURL: url(`ex-${i}`) })) }, reason: 'RecreatingMemberPod' },
  { name: 'a member pod Failed → remove it first', s: { pods: three((i) => (i === 1 ? { phase: 'Failed', ready: false } : {})), members: members3() }, action: { kind: 'removeMember', id: id(1), pod: 'ex-1' }, reason: 'ReplacingFailedMember' },
  { name: 'after removing the failed member its pod goes', s: { pods: three((i) => (i === 1 ? { phase: 'Failed', ready: false } : {})), members: [member(0), member(2)] }, action: { kind: 'deletePod', pod: 'ex-1' } },
  { name: 'then the cluster grows back with a new name', s: { pods: [pod(0), pod(2)], members: [member(0), member(2)] }, action: add(3) },
  { name: 'member unready for a while (< timeout) → wait, Degraded', s: { pods: three((i) => (i === 2 ? { ready: false, unreadySince: NOW - 10_000 } : {})), members: members3() }, action: 'wait', degraded: 'MemberNotReady' },
  { name: 'member unready past the timeout → replaced', s: { pods: three((i) => (i === 2 ? { ready: false, unreadySince: NOW - 600_000 } : {})), members: members3() }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' } },
  { name: '2 of 3 healthy, scale up to 5 → wait (never grow on a sick cluster)', s: { spec: { size: 5 }, pods: three((i) => (i === 2 ? { ready: false, unreadySince: NOW - 1000 } : {})), members: members3() }, action: 'wait' },
  { name: '2 of 2 fine, but a failed member in a 2-member cluster cannot be removed safely', s: { spec: { size: 2 }, pods: [pod(0), pod(1, { phase: 'Failed', ready: false })], members: [member(0), member(1)] }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'rolling upgrade: a follower first (lowest ordinal non-leader)', s: { spec: { version: '3.4.35' }, pods: three(), members: members3(), leader: 0 }, action: { kind: 'upgradeMember', pod: 'ex-1', from: '3.4.34', to: '3.4.35' }, reason: 'UpgradingMember', phase: 'Upgrading' },
  { name: 'rolling upgrade: the restarted member must come back before the next', s: { spec: { version: '3.4.35' }, pods: three((i) => (i === 1 ? { version: '3.4.35', runningVersion: '3.4.34' } : {})), members: members3() }, action: 'wait', phase: 'Upgrading' },
  { name: 'rolling upgrade: the upgraded member unready → wait', s: { spec: { version: '3.4.35' }, pods: three((i) => (i === 1 ? { version: '3.4.35', runningVersion: '3.4.35', ready: false } : {})), members: members3() }, action: 'wait', phase: 'Upgrading' },
  { name: 'rolling upgrade: then the other follower', s: { spec: { version: '3.4.35' }, pods: three((i) => (i === 1 ? { version: '3.4.35', runningVersion: '3.4.35' } : {})), members: members3(), leader: 0 }, action: { kind: 'upgradeMember', pod: 'ex-2', from: '3.4.34', to: '3.4.35' } },
  { name: 'rolling upgrade: the leader last', s: { spec: { version: '3.4.35' }, pods: three((i) => (i === 0 ? {} : { version: '3.4.35', runningVersion: '3.4.35' })), members: members3(), leader: 0 }, action: { kind: 'upgradeMember', pod: 'ex-0', from: '3.4.34', to: '3.4.35' } },
  { name: 'upgrade skipping a minor → refused', s: { spec: { version: '3.6.0' }, pods: three(), members: members3() }, action: 'refuse', reason: 'UnsupportedUpgrade' },
  { name: 'minor downgrade → refused', s: { spec: { version: '3.3.9' }, pods: three(), members: members3() }, action: 'refuse', reason: 'UnsupportedUpgrade' },
  { name: 'a pod not in the members list, just created → wait for the list', s: { pods: [pod(0), pod(1), pod(2, { createdAt: NOW - 1000 })], members: [member(0), member(1)] }, action: 'wait', reason: 'WaitingForMembersList' },
  { name: 'a foreign member (unknown peer URL) → removed', s: { pods: three(), members: [...members3(), { id: 'abc', name: 'stranger', peerURLs: ['http://10.0.0.9:2380'], clientURLs: [] }] }, action: { kind: 'removeMember', id: 'abc', pod: undefined }, reason: 'RemovingForeignMember' },
  { name: 'joining member 1 → 2 (no quorum until it starts) → wait, not refuse', s: { spec: { size: 2 }, pods: [pod(0), pod(1, { ready: false, phase: 'Pending' })], members: [member(0), member(1, false)] }, action: 'wait', degraded: 'MemberJoining' },
  { name: 'joining member 1 → 2 whose pod is missing → create it even without quorum', s: { spec: { size: 2 }, pods: [pod(0)], members: [member(0), member(1, false)] }, action: 'createPod' },
  { name: 'everything gone after bootstrap → refuse (data lost), never re-bootstrap silently', s: { pods: [], members: null, bootstrapped: true }, action: 'refuse', reason: 'AllMembersLost', phase: 'Failed' },
  { name: 'members API unreachable, pods ready → wait', s: { pods: three(), members: null }, action: 'wait', reason: 'MembersUnreachable' },
  { name: 'members API unreachable, no pod ready → refuse', s: { pods: three(() => ({ ready: false })), members: null }, action: 'refuse', reason: 'MembersUnreachable' },
  { name: 'invalid size → refuse', s: { spec: { size: 0 }, pods: three(), members: members3() }, action: 'refuse', reason: 'InvalidSpec' },
  { name: 'paused → nothing', s: { spec: { size: 5, paused: true }, pods: three(), members: members3() }, action: 'none', reason: 'Paused' },
  { name: 'single member cluster, scale 1 → 2: a learner, like any other growth', s: { spec: { size: 2 }, pods: [pod(0)], members: [member(0)] }, action: add(1), reason: 'AddingMember' },
  { name: 'a new seed still starting (young pod, never ready) → wait, not Degraded', s: { spec: { size: 1 }, pods: [pod(0, { ready: false, createdAt: NOW - 2000 })], members: [member(0)] }, action: 'wait', reason: 'WaitingForMember', degraded: null },
  { name: 'the last member is never removed', s: { spec: { size: 1 }, pods: [pod(0, { phase: 'Failed', ready: false })], members: [member(0)] }, action: 'refuse', reason: 'QuorumLost' },
];

/**
 * Pods lost, with and without their volumes: a member with its volume always gets its pod back (no quorum needed,
 * no membership change); without volumes, only what a quorum allows.
 */
const lostRows: Row[] = [
  // 1 of 3 pods lost (a quorum remains)
  { name: '1 lost, volumes → its pod back on its volume', s: { spec: PVC, pods: [pod(0), pod(1)], members: members3() }, action: recreate(2), reason: 'RecreatingMemberPod', phase: 'Healing', degraded: 'MemberPodLost' },
  { name: '1 lost, no volumes → removed to be replaced', s: { pods: [pod(0), pod(1)], members: members3() }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' }, reason: 'ReplacingFailedMember' },
  { name: '1 lost, storage but its volume gone → removed to be replaced (never an empty data dir as the old member)', s: { spec: PVC, pods: [pod(0), pod(1)], members: members3(), volumes: ['ex-0', 'ex-1'] }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' }, reason: 'ReplacingFailedMember' },
  // 2 of 3 pods lost: the survivor still lists the members (a local read), or answers nothing
  { name: '2 lost, volumes, the survivor answers → the first lost one back', s: { spec: PVC, pods: [pod(0, down)], members: members3() }, action: recreate(1), reason: 'RecreatingMemberPod' },
  { name: '2 lost, volumes, nobody answers → back from the membership the status last saw', s: { spec: PVC, pods: [pod(0, down)], members: null, lastMembers: last3 }, action: recreate(1), reason: 'RecreatingMemberPod' },
  { name: '2 lost, volumes, one back already → the other one', s: { spec: PVC, pods: [pod(0, down), pod(1, { ready: false, phase: 'Pending', createdAt: NOW - 100 })], members: null, lastMembers: last3 }, action: recreate(2) },
  { name: '2 lost, no volumes, the survivor answers → QuorumLost, nothing done', s: { pods: [pod(0, down)], members: members3() }, action: 'refuse', reason: 'QuorumLost', phase: 'Degraded' },
  { name: '2 lost, no volumes, nobody answers → MembersUnreachable, nothing done', s: { pods: [pod(0, down)], members: null, lastMembers: last3, bootstrapped: true }, action: 'refuse', reason: 'MembersUnreachable' },
  // all 3 pods lost
  { name: 'all lost, volumes → the first back on its volume (not AllMembersLost)', s: { spec: PVC, pods: [], members: null, lastMembers: last3, bootstrapped: true }, action: recreate(0), reason: 'RecreatingMemberPod', phase: 'Healing' },
  { name: 'all lost, volumes, two back and starting → the third', s: { spec: PVC, pods: [0, 1].map((i) => pod(i, { ready: false, phase: 'Pending', createdAt: NOW - 100 })), members: null, lastMembers: last3, bootstrapped: true }, action: recreate(2) },
  { name: 'all lost, volumes, all back and starting → wait for them (Degraded until they answer)', s: { spec: PVC, pods: three(() => ({ ready: false, createdAt: NOW - 100 })), members: null, lastMembers: last3, bootstrapped: true }, action: 'wait', reason: 'WaitingForMembers', degraded: 'MembersUnreachable' },
  { name: 'all lost, no volumes → AllMembersLost, never an empty seed', s: { pods: [], members: null, lastMembers: last3, bootstrapped: true }, action: 'refuse', reason: 'AllMembersLost', phase: 'Failed' },
  { name: 'all lost, storage but only 2 volumes left → those 2 come back', s: { spec: PVC, pods: [pod(0, { ready: false, phase: 'Pending', createdAt: NOW - 100 })], members: null, lastMembers: last3, bootstrapped: true, volumes: ['ex-0', 'ex-2'] }, action: recreate(2) },
  { name: '2 of 3 back on volumes with quorum, the third had none → then it is replaced', s: { spec: PVC, pods: [pod(0), pod(2)], members: members3(), volumes: ['ex-0', 'ex-2'] }, action: { kind: 'removeMember', id: id(1), pod: 'ex-1' }, reason: 'ReplacingFailedMember' },
  // pods that ended (Succeeded: a graceful node shutdown; Failed: evicted, node lost)
  { name: '1 Succeeded, volumes → deleted keeping its volume (to start again on it)', s: { spec: PVC, pods: three((i) => (i === 1 ? { phase: 'Succeeded', ready: false } : {})), members: members3() }, action: recycle(1), reason: 'RecyclingMemberPod', degraded: 'MemberPodEnded' },
  { name: '1 Failed, volumes → deleted keeping its volume', s: { spec: PVC, pods: three((i) => (i === 1 ? { phase: 'Failed', ready: false } : {})), members: members3() }, action: recycle(1), reason: 'RecyclingMemberPod' },
  { name: '1 Succeeded, no volumes → removed to be replaced', s: { pods: three((i) => (i === 1 ? { phase: 'Succeeded', ready: false } : {})), members: members3() }, action: { kind: 'removeMember', id: id(1), pod: 'ex-1' }, reason: 'ReplacingFailedMember' },
  { name: '2 Failed, volumes → the first deleted keeping its volume', s: { spec: PVC, pods: three((i) => (i === 0 ? down : { phase: 'Failed', ready: false })), members: members3() }, action: recycle(1) },
  { name: '2 Failed, no volumes → QuorumLost', s: { pods: three((i) => (i === 0 ? down : { phase: 'Failed', ready: false })), members: members3() }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'all Succeeded, volumes, nobody answers → the first deleted keeping its volume', s: { spec: PVC, pods: three(() => ({ phase: 'Succeeded', ready: false })), members: null, lastMembers: last3, bootstrapped: true }, action: recycle(0), reason: 'RecyclingMemberPod' },
  { name: 'all Failed, volumes, nobody answers → the first deleted keeping its volume', s: { spec: PVC, pods: three(() => ({ phase: 'Failed', ready: false })), members: null, lastMembers: last3, bootstrapped: true }, action: recycle(0) },
  { name: 'all Succeeded, no volumes → MembersUnreachable, nothing done', s: { pods: three(() => ({ phase: 'Succeeded', ready: false })), members: null, lastMembers: last3, bootstrapped: true }, action: 'refuse', reason: 'MembersUnreachable' },
  { name: 'a Succeeded pod being deleted → wait for it to go first', s: { spec: PVC, pods: three((i) => (i === 0 ? { phase: 'Succeeded', ready: false, deleting: true } : { phase: 'Succeeded', ready: false })), members: null, lastMembers: last3, bootstrapped: true }, action: 'wait', reason: 'PodTerminating' },
  // what is not a member's own pod is not brought back
  { name: 'an added member that never started, its volume there → its first pod (step 6, not a re-creation)', s: { spec: PVC, pods: [pod(0), pod(1)], members: [member(0), member(1), member(2, false)] }, action: 'createPod', reason: 'CreatingMemberPod' },
  { name: 'a volume whose member was removed → nothing comes back for it', s: { spec: { ...PVC, size: 2 }, pods: [pod(0), pod(1)], members: [member(0), member(1)], volumes: ['ex-0', 'ex-1', 'ex-2'], lastMembers: last3 }, action: 'none' },
];

/**
 * Learners: a member joins as a learner (no quorum change), is promoted once it is up and healthy (etcd then decides
 * whether it has caught up), and never counts toward a quorum before that.
 */
const learnerRows: Row[] = [
  { name: 'seed up, size 3 → ex-1 added as a learner', s: { pods: [pod(0)], members: [member(0)] }, action: add(1), reason: 'AddingMember', phase: 'Scaling' },
  {
    name: 'learner added, no pod yet → its pod (existing, the full initial cluster)',
    s: { pods: [pod(0)], members: [member(0), learner(1, false)] },
    action: { kind: 'createPod', pod: 'ex-1', state: 'existing', memberId: id(1), initialCluster: [{ name: 'ex-0', peerURL: url('ex-0') }, { name: 'ex-1', peerURL: url('ex-1') }] },
    reason: 'CreatingMemberPod',
  },
  { name: 'learner starting (not published yet) → wait, nothing else', s: { pods: [pod(0), pod(1, { ready: false, phase: 'Pending', createdAt: NOW - 500 })], members: [member(0), learner(1, false)] }, action: 'wait', reason: 'WaitingForMember', degraded: 'MemberNotReady' },
  { name: 'learner started, catching up (pod not ready) → wait', s: { pods: [pod(0), pod(1, { ready: false, unreadySince: NOW - 1000 })], members: [member(0), learner(1)] }, action: 'wait', reason: 'WaitingForMember' },
  { name: 'learner up and healthy → promote it', s: { pods: [pod(0), pod(1)], members: [member(0), learner(1)] }, action: promote(1), reason: 'PromotingMember', phase: 'Scaling' },
  { name: 'learner healthy in a 3 → 5 → promote ex-3 before adding ex-4', s: { spec: { size: 5 }, pods: [...three(), pod(3)], members: [...members3(), learner(3)] }, action: promote(3) },
  { name: 'promoted, still short of the size → the next learner', s: { spec: { size: 5 }, pods: [...three(), pod(3)], members: [...members3(), member(3)] }, action: add(4) },
  { name: 'a learner is promoted before any upgrade', s: { spec: { version: '3.4.35' }, pods: [pod(0), pod(1), pod(2)], members: [member(0), member(1), learner(2)] }, action: promote(2) },
  { name: 'a learner never makes a quorum: 1 of 3 voters healthy and a healthy learner → QuorumLost', s: { spec: { size: 4 }, pods: [...three((i) => (i === 0 ? {} : down)), pod(3)], members: [...members3(), learner(3)] }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'nor does a learner joining hide a lost quorum', s: { spec: { size: 4 }, pods: [...three((i) => (i === 0 ? {} : down)), pod(3, { ready: false, phase: 'Pending', createdAt: NOW - 100 })], members: [...members3(), learner(3, false)] }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'a learner is not needed for a quorum: 1 voter healthy, the learner down → the voter has it (wait for the learner)', s: { spec: { size: 2 }, pods: [pod(0), pod(1, down)], members: [member(0), learner(1)] }, action: 'wait', reason: 'WaitingForMember' },
  { name: 'shrinking while a learner is there → the learner goes first', s: { spec: { size: 3 }, pods: [...three(), pod(3)], members: [...members3(), learner(3)], leader: 0 }, action: { kind: 'removeMember', id: id(3), pod: 'ex-3' }, reason: 'RemovingMember' },
  { name: 'size lowered below the voters with a learner there → still the learner first', s: { spec: { size: 1 }, pods: [pod(0), pod(1), pod(2)], members: [member(0), member(1), learner(2)], leader: 0 }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' } },
  { name: 'a learner whose pod is lost (no volume) → removed, whatever the voters (it holds no vote)', s: { spec: { size: 3 }, pods: [pod(0), pod(1)], members: [member(0), member(1), learner(2)] }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' }, reason: 'ReplacingFailedMember' },
  { name: 'a voter in the same place could not go (2 of 2 needed)', s: { spec: { size: 3 }, pods: [pod(0), pod(1, { phase: 'Failed', ready: false })], members: [member(0), member(1)] }, action: 'refuse', reason: 'QuorumLost' },
  { name: 'a learner with its volume whose pod is lost → its pod back on the volume', s: { spec: { ...PVC, size: 3 }, pods: [pod(0), pod(1)], members: [member(0), member(1), learner(2)] }, action: recreate(2), reason: 'RecreatingMemberPod' },
  { name: 'the leader is never the one removed, a learner is', s: { spec: { size: 2 }, pods: three(), members: [member(0), member(1), learner(2)], leader: 2 }, action: { kind: 'removeMember', id: id(2), pod: 'ex-2' } },
];

/** A cluster seeded from a backup (spec.restore): every member restored from one snapshot, started together. */
const RESTORE = { restore: { backupName: 'nightly' } };
const SRC = { claim: 'backups', file: 'nightly-20240310T101530Z.db' };
const restoreMember = (i: number): Action => ({ kind: 'restoreMember', pod: `${C}-${i}`, initialCluster: all3, ...SRC });
const restoreRows: Row[] = [
  { name: 'restore, nothing yet → ex-0 seeded from the snapshot, with the whole cluster', s: { spec: RESTORE, restore: SRC, members: null, bootstrapped: false }, action: restoreMember(0), reason: 'RestoringMember', phase: 'Creating' },
  { name: 'restore, ex-0 there → ex-1 (one pod per step, lowest first)', s: { spec: RESTORE, restore: SRC, pods: [pod(0, { ready: false, phase: 'Pending', createdAt: NOW - 100 })], members: null, bootstrapped: false }, action: restoreMember(1) },
  { name: 'restore, every pod there, no member answers yet → wait for them to elect', s: { spec: RESTORE, restore: SRC, pods: three(() => ({ ready: false, phase: 'Pending', createdAt: NOW - 100 })), members: null, bootstrapped: false }, action: 'wait', reason: 'WaitingForRestore', phase: 'Creating' },
  { name: 'restore, its backup has no snapshot → Failed, said why, nothing created', s: { spec: RESTORE, restore: { problem: 'EtcdBackup nightly has no successful snapshot yet' }, members: null, bootstrapped: false }, action: 'refuse', reason: 'RestoreSourceUnavailable', phase: 'Failed' },
  { name: 'restore, a member pod failed (its restore or start) → Failed', s: { spec: RESTORE, restore: SRC, pods: three((i) => (i === 1 ? { phase: 'Failed', ready: false } : { ready: false, createdAt: NOW - 100 })), members: null, bootstrapped: false }, action: 'refuse', reason: 'RestoreFailed' },
  { name: 'restored and answering → the usual rules (nothing to do)', s: { spec: RESTORE, restore: SRC, pods: three(), members: members3() }, action: 'none' },
  { name: 'restored once, later every member lost (no volumes) → AllMembersLost, never restored again on its own', s: { spec: RESTORE, pods: [], members: null, lastMembers: last3, bootstrapped: true }, action: 'refuse', reason: 'AllMembersLost' },
];

/** spec.defragment: one member at a time, followers first, the leader last, each only while every member is healthy. */
const DEFRAG = { defragment: { schedule: '@every 10m' } };
const defrag = (i: number): Action => ({ kind: 'defragMember', pod: `${C}-${i}`, id: id(i) });
const RUN = { due: new Date(NOW - 60_000).toISOString().replace('.000Z', 'Z'), done: [] as string[] };
const defragRows: Row[] = [
  { name: 'defragment due, leader ex-0 → ex-1 first', s: { spec: DEFRAG, pods: three(), members: members3(), leader: 0, defragment: { lastScheduleTime: new Date(NOW - 11 * 60_000).toISOString() } }, action: defrag(1), reason: 'Defragmenting', phase: 'Running' },
  { name: 'defragment run going on, ex-1 done → ex-2', s: { spec: DEFRAG, pods: three(), members: members3(), leader: 0, defragment: { running: { ...RUN, done: ['ex-1'] } } }, action: defrag(2) },
  { name: 'defragment run, the followers done → the leader last', s: { spec: DEFRAG, pods: three(), members: members3(), leader: 0, defragment: { running: { ...RUN, done: ['ex-1', 'ex-2'] } } }, action: defrag(0) },
  { name: 'defragment run, the leader (ex-1) is not first', s: { spec: DEFRAG, pods: three(), members: members3(), leader: 1, defragment: { running: RUN } }, action: defrag(0) },
  { name: 'defragment run, a member unready → wait for it, no defragmentation', s: { spec: DEFRAG, pods: three((i) => (i === 2 ? { ready: false, unreadySince: NOW - 1000 } : {})), members: members3(), defragment: { running: { ...RUN, done: ['ex-1'] } } }, action: 'wait', reason: 'WaitingForMember' },
  { name: 'defragment run, a learner joining → promoted first', s: { spec: { ...DEFRAG, size: 4 }, pods: [...three(), pod(3)], members: [...members3(), learner(3)], defragment: { running: RUN } }, action: promote(3) },
  { name: 'defragment run, every member done → nothing (the run completes)', s: { spec: DEFRAG, pods: three(), members: members3(), defragment: { running: { ...RUN, done: ['ex-0', 'ex-1', 'ex-2'] } } }, action: 'none', reason: 'ReconcileComplete' },
  { name: 'defragment not due → nothing', s: { spec: DEFRAG, pods: three(), members: members3(), defragment: { lastScheduleTime: new Date(NOW - 60_000).toISOString() } }, action: 'none' },
];

/** spec.tls.certManager: cert-manager installed, the client certificate first, each member's pod only once its Secret is filled. */
const CM = { tls: { certManager: { issuerRef: { name: 'ca' } } } };
const certs = (requested: string[], issued: string[] = requested, installed = true): Observed['certificates'] => ({ installed, requested, issued });
const https = (pod: string): string => `https://${pod}.${C}.${NS}.svc:2380`;
const certManagerRows: Row[] = [
  { name: 'certManager, CRD not installed → CertManagerNotInstalled, nothing created', s: { spec: CM, certificates: certs([], [], false) }, action: 'refuse', reason: 'CertManagerNotInstalled', phase: 'Creating', degraded: 'CertManagerNotInstalled' },
  { name: 'certManager, CRD not observed at all → the same refusal', s: { spec: CM }, action: 'refuse', reason: 'CertManagerNotInstalled' },
  { name: 'certManager, CRD gone under a running cluster → Degraded, nothing done', s: { spec: CM, pods: three(), members: members3(), certificates: certs([], [], false) }, action: 'refuse', phase: 'Degraded' },
  { name: 'certManager, nothing asked yet → the client certificate first', s: { spec: CM, certificates: certs([]) }, action: { kind: 'requestCertificate', secret: 'ex-client-tls' }, reason: 'CertificateRequested', phase: 'Creating' },
  { name: 'certManager, client certificate asked, not issued → wait for it', s: { spec: CM, certificates: certs(['ex-client-tls'], []) }, action: 'wait', reason: 'WaitingForCertificate' },
  { name: "certManager, client issued → the seed's certificate before the seed", s: { spec: CM, certificates: certs(['ex-client-tls']) }, action: { kind: 'requestCertificate', secret: 'ex-0-tls', pod: 'ex-0' }, reason: 'CertificateRequested' },
  { name: "certManager, the seed's certificate asked, not issued → wait, no pod", s: { spec: CM, certificates: certs(['ex-client-tls', 'ex-0-tls'], ['ex-client-tls']) }, action: 'wait', reason: 'WaitingForCertificate' },
  { name: "certManager, the seed's Secret filled → bootstrap over https", s: { spec: CM, certificates: certs(['ex-client-tls', 'ex-0-tls']) }, action: { kind: 'bootstrap', pod: 'ex-0', peerURL: https('ex-0') }, reason: 'Bootstrapping' },
  {
    name: "certManager, member 1 added, its certificate not asked → asked for before its pod",
    s: { spec: CM, pods: [pod(0)], members: [member(0), { ...member(1, false), peerURLs: [https('ex-1')] }], certificates: certs(['ex-client-tls', 'ex-0-tls']) },
    action: { kind: 'requestCertificate', secret: 'ex-1-tls', pod: 'ex-1' },
  },
  {
    name: 'certManager, member 1 added, its Secret filled → its pod',
    s: { spec: CM, pods: [pod(0)], members: [member(0), { ...member(1, false), peerURLs: [https('ex-1')] }], certificates: certs(['ex-client-tls', 'ex-0-tls', 'ex-1-tls']) },
    action: 'createPod',
    reason: 'CreatingMemberPod',
  },
  { name: 'certManager, membership changes need no new certificate (adding a learner)', s: { spec: CM, pods: [pod(0)], members: [member(0)], certificates: certs(['ex-client-tls', 'ex-0-tls']) }, action: 'addMember' },
  { name: 'certManager with a named Secret → InvalidSpec', s: { spec: { tls: { ...CM.tls, clientSecret: 'c' } }, certificates: certs([]) }, action: 'refuse', reason: 'InvalidSpec' },
];

describe('planner', () => {
  test.each([...rows, ...lostRows, ...learnerRows, ...restoreRows, ...defragRows, ...certManagerRows].map((r) => [r.name, r] as const))('%s', (_name, r) => {
    const p = plan(observe(r.s));
    if (typeof r.action === 'string') expect(p.action.kind).toBe(r.action);
    else expect(p.action).toEqual(r.action);
    if (r.reason) expect(p.reason).toBe(r.reason);
    if (r.phase) expect(p.phase).toBe(r.phase);
    if (r.degraded) expect(p.degraded?.reason).toBe(r.degraded);
    if (r.degraded === null) expect(p.degraded).toBeUndefined();
    expect(p.message.length).toBeGreaterThan(0);
  });

  /** A tiny simulated world: apply each action's effect, let joined members become ready, re-plan. */
  let quorumKept: (() => boolean)[] = [];
  function simulate(start: Situation, steps: number, settle = true): { actions: Action[]; final: Observed } {
    let pods = [...(start.pods ?? [])];
    let members = start.members === null ? undefined : [...(start.members ?? [])];
    const spec = withDefaults({ size: 3, ...start.spec });
    const actions: Action[] = [];
    let nextId = 500;
    let leader = start.leader === undefined ? id(0) : id(start.leader);
    for (let i = 0; i < steps; i++) {
      const o: Observed = { cluster: C, namespace: NS, spec, pods, members, healthy: Object.fromEntries(pods.map((p) => [p.name, p.ready])), leaderId: leader, bootstrapped: (members ?? []).length > 0, now: NOW };
      if (quorumKept.length > 0 && !quorumKept[quorumKept.length - 1]()) throw new Error(`quorum lost after ${JSON.stringify(actions[actions.length - 1])}`);
      const p = plan(o);
      const a = p.action;
      if (a.kind === 'none') return { actions, final: o };
      if (a.kind === 'refuse') throw new Error(`refused: ${p.message}`);
      if (a.kind !== 'wait') actions.push(a);
      quorumKept.push(() => {
        // after every action: the voters that are up are still a quorum of the voters (learners vote in nothing)
        const voters = (members ?? []).filter((m) => !m.isLearner);
        const up = voters.filter((m) => pods.some((x) => x.ready && m.peerURLs[0] === url(x.name))).length;
        return voters.length === 0 || up >= Math.floor(voters.length / 2) + 1;
      });
      switch (a.kind) {
        case 'bootstrap':
          pods.push(pod(Number(a.pod.split('-')[1]), { ready: false, phase: 'Pending', createdAt: NOW }));
          break;
        case 'addMember':
          members = [...(members ?? []), { id: String(nextId++), name: '', peerURLs: [a.peerURL], clientURLs: [], isLearner: a.learner }];
          break;
        case 'promoteMember':
          members = (members ?? []).map((m) => (m.id === a.id ? { ...m, isLearner: false } : m));
          break;
        case 'createPod':
          pods.push(pod(Number(a.pod.split('-')[1]), { ready: false, phase: 'Pending', createdAt: NOW, clusterState: 'existing', memberId: a.memberId }));
          break;
        case 'removeMember':
          members = (members ?? []).filter((m) => m.id !== a.id);
          if (leader === a.id) leader = members[0].id;
          break;
        case 'deletePod':
          pods = pods.filter((x) => x.name !== a.pod);
          break;
        case 'upgradeMember':
          pods = pods.map((x) => (x.name === a.pod ? { ...x, version: a.to, ready: false } : x));
          break;
        case 'wait':
          if (!settle) break;
          // the kubelet and etcd catch up: pods start, members learn their names
          pods = pods.map((x) => ({ ...x, phase: 'Running', ready: true, runningVersion: x.version }));
          if (!members?.length) members = [{ id: id(0), name: pods[0].name, peerURLs: [url(pods[0].name)], clientURLs: [] }];
          members = members.map((m) => (m.name === '' ? { ...m, name: m.peerURLs[0].split('//')[1].split('.')[0] } : m));
          break;
      }
    }
    throw new Error(`not converged after ${steps} steps: ${JSON.stringify(actions)}`);
  }
  const kinds = (as: Action[]): string[] => as.map((a) => `${a.kind}${'pod' in a && a.pod ? ':' + a.pod : ''}`);

  beforeEach(() => {
    quorumKept = [];
  });
  test('creating a 3-member cluster: seed, then one learner at a time (add, pod, promote); the quorum never at risk', () => {
    const r = simulate({}, 50);
    expect(kinds(r.actions)).toEqual(['bootstrap:ex-0', 'addMember:ex-1', 'createPod:ex-1', 'promoteMember:ex-1', 'addMember:ex-2', 'createPod:ex-2', 'promoteMember:ex-2']);
    expect(r.final.members?.every((m) => !m.isLearner)).toBe(true);
  });
  test('scale 3 → 1: one member at a time, members API remove before the pod delete', () => {
    const r = simulate({ spec: { size: 1 }, pods: three(), members: members3(), leader: 0 }, 50);
    expect(kinds(r.actions)).toEqual(['removeMember:ex-2', 'deletePod:ex-2', 'removeMember:ex-1', 'deletePod:ex-1']);
  });
  test('scale 3 → 5 → 3', () => {
    const up = simulate({ spec: { size: 5 }, pods: three(), members: members3() }, 50);
    expect(kinds(up.actions)).toEqual(['addMember:ex-3', 'createPod:ex-3', 'promoteMember:ex-3', 'addMember:ex-4', 'createPod:ex-4', 'promoteMember:ex-4']);
    const down = simulate({ spec: { size: 3 }, pods: up.final.pods, members: up.final.members, leader: 0 }, 50);
    expect(kinds(down.actions)).toEqual(['removeMember:ex-4', 'deletePod:ex-4', 'removeMember:ex-3', 'deletePod:ex-3']);
  });
  test('rolling upgrade of 5: followers in order, the leader last, one at a time', () => {
    const pods = [0, 1, 2, 3, 4].map((i) => pod(i));
    const members = [0, 1, 2, 3, 4].map((i) => member(i));
    const r = simulate({ spec: { size: 5, version: '3.5.0' }, pods, members, leader: 2 }, 50);
    expect(kinds(r.actions)).toEqual(['upgradeMember:ex-0', 'upgradeMember:ex-1', 'upgradeMember:ex-3', 'upgradeMember:ex-4', 'upgradeMember:ex-2']);
  });
  test('never two actions at once: without the world settling, one add + its pod, then only waits', () => {
    let thrown: Error | undefined;
    try {
      simulate({ spec: { size: 5 }, pods: three(), members: members3() }, 10, false);
    } catch (e) {
      thrown = e as Error;
    }
    expect(thrown?.message).toMatch(/not converged/);
    const actions = JSON.parse(thrown!.message.split(': ').slice(1).join(': '));
    expect(actions.map((a: Action) => a.kind)).toEqual(['addMember', 'createPod']);
  });
  test('defragment: the run recorded step by step, completed, the next one said and looked for', () => {
    const first = plan(observe({ spec: DEFRAG, pods: three(), members: members3(), leader: 0, defragment: { lastScheduleTime: new Date(NOW - 11 * 60_000).toISOString() } }));
    const due = new Date(NOW - 60_000).toISOString().replace('.000Z', 'Z');
    expect(first.defragment).toMatchObject({ lastScheduleTime: due, running: { due, done: ['ex-1'] }, nextScheduleTime: new Date(NOW + 9 * 60_000).toISOString().replace('.000Z', 'Z') });
    const done = plan(observe({ spec: DEFRAG, pods: three(), members: members3(), defragment: { lastScheduleTime: due, running: { due, done: ['ex-1', 'ex-2', 'ex-0'] } } }));
    expect(done.defragment).toEqual({ lastScheduleTime: due, nextScheduleTime: new Date(NOW + 9 * 60_000).toISOString().replace('.000Z', 'Z'), lastCompletionTime: new Date(NOW).toISOString().replace('.000Z', 'Z') });
    expect(done.requeueAfterMs).toBe(9 * 60_000 + 50);
    const bad = plan(observe({ spec: { defragment: { schedule: 'weekly' } }, pods: three(), members: members3() }));
    expect([bad.action.kind, bad.defragment?.message]).toEqual(['none', 'spec.defragment.schedule: a schedule has 5 fields (minute hour day-of-month month day-of-week), got 1 in "weekly"']);
  });
  test('upgrade path rules', () => {
    expect(upgradeProblem('3.4.34', '3.5.0')).toBeUndefined();
    expect(upgradeProblem('3.4.34', '3.4.1')).toBeUndefined();
    expect(upgradeProblem('3.4.34', '3.6.0')).toMatch(/one minor/);
    expect(upgradeProblem('3.5.0', '3.4.34')).toMatch(/downgrading/);
    expect(upgradeProblem('3.5.0', '4.0.0')).toMatch(/major/);
  });
});
