/**
 * Starting on etcd 3.4's data dir: member/ in etcd's layout (member/wal in etcd's WAL format, member/snap/*.snap
 * raftpb snapshots, member/snap/db its bbolt backend; what etcd writes, and what etcd's `etcdctl snapshot restore`
 * makes) is converted once into this server's layout, then the member starts as usual.
 *
 * - The v3 store is etcd's backend imported (etcd-backend.ts) with its consistent index, so the WAL's v3 entries
 *   after it apply on start and those before do not, as on etcd.
 * - The newest snap file the WAL marks becomes a snapshot of ours at the same index and term: the membership and
 *   cluster version from etcd's v2 store (/0), its v2 keys (/1) with their indexes; etcd's v2 auth (/2) is not
 *   carried (a data dir with v2 auth enabled is refused).
 * - The WAL: the same member and cluster IDs, hard state, snapshot marker and entries after the snapshot, each in
 *   our envelope: v3 requests (etcd's InternalRaftRequest, the same bytes), v2 requests (member attributes, cluster
 *   version, keys writes, SYNC) and conf changes. An entry of a kind that cannot be carried is refused by name.
 *
 * Nothing of etcd's is changed until the conversion is whole: it is built in member.converting/, marked done, then
 * member/ is moved aside to member.etcd-3.4/ (kept: nothing is lost) and member.converting/ takes its place. A start
 * that finds a conversion interrupted finishes it (marked done) or discards it and converts again (not marked).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { InternalRaftRequest } from '../api/v3rpc/pb/etcdserverpb/raft_internal';
import { Request as V2Request } from '../api/v3rpc/pb/etcdserverpb/etcdserver';
import { Cluster, Member } from '../membership/cluster';
import { BoltReader } from '../mvcc/bbolt/reader';
import { MvccStore } from '../mvcc/store';
import { ConfChangeType, Entry, EntryType, HardState, encodeConfChange } from '../raft';
import {
  ETCD_CC_ADD_LEARNER_NODE,
  ETCD_CC_ADD_NODE,
  ETCD_CC_REMOVE_NODE,
  ETCD_CC_UPDATE_NODE,
  ETCD_ENTRY_CONF_CHANGE,
  ETCD_ENTRY_NORMAL,
  EtcdEntry,
  EtcdSnapshot,
  decodeEtcdConfChange,
  decodeEtcdWalMetadata,
} from '../raft/etcd-raftpb';
import { newestEtcdSnapshot } from '../snap/etcd-snap';
import { Snapshotter } from '../snap/snapshotter';
import { V2Store } from '../store';
import { StoreNode } from '../store/node';
import { decodeStore, encodeStore } from '../store/snapshot';
import { entriesAfter, readEtcdWAL } from '../wal/etcd-wal';
import { WAL, fsyncDir } from '../wal/wal';
import { V2Applier } from './apply/v2';
import { CONF_CHANGE_CONTEXT_VERSION, ConfChangeContext, MembershipApplier } from './apply/membership';
import { EntryKind, MembershipOp, encodeEntry, encodeMembershipOp } from './entry';
import { etcdBackendImport } from './etcd-backend';
import { CONVERTING_DIR, isEtcdMemberDir } from './etcd-datadir-check';
import { Method, WriteRequest, encodeRequest } from './request';
import { PART_MEMBERSHIP, PART_V2STORE, PART_V3, encodeSnapshotData } from './snapshot-data';

/** Where etcd's member/ is kept once converted. */
export const ETCD_ORIGINAL_DIR = 'member.etcd-3.4';
/** Written last into CONVERTING_DIR: the conversion is whole. */
const DONE_MARK = 'CONVERTED';

export type MigrationLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;


/**
 * Converts dataDir's member/ from etcd 3.4's layout to ours when it is etcd's (or finishes a conversion a crash
 * interrupted). Returns whether it converted. Throws (changing nothing of etcd's) when it cannot.
 */
export async function migrateEtcdDataDir(dataDir: string, o: { walDir?: string; log: MigrationLog }): Promise<boolean> {
  const member = path.join(dataDir, 'member');
  const staging = path.join(dataDir, CONVERTING_DIR);
  const original = path.join(dataDir, ETCD_ORIGINAL_DIR);
  if (fs.existsSync(staging)) {
    if (fs.existsSync(path.join(staging, DONE_MARK))) {
      // Whole, but the swap was interrupted: finish it.
      if (fs.existsSync(member) && isEtcdMemberDir(member) && !fs.existsSync(original)) await fsp.rename(member, original);
      if (fs.existsSync(member) || !fs.existsSync(original)) {
        throw new Error(`${dataDir} holds a finished conversion of etcd's data dir in ${CONVERTING_DIR}/ but ${fs.existsSync(member) ? 'also a member/ dir' : `no ${ETCD_ORIGINAL_DIR}/ with etcd's files`}: not starting on an unclear data dir (move the one that is not wanted away)`);
      }
      await commit(dataDir, staging, member);
      o.log('info', 'finished converting etcd 3.4 data dir (an earlier start was interrupted while swapping it in)', { 'data-dir': dataDir, 'etcd-files': original });
      return true;
    }
    if (!fs.existsSync(member) || !isEtcdMemberDir(member)) {
      throw new Error(`${dataDir} holds a partial conversion of etcd's data dir (${CONVERTING_DIR}/, never finished) and no etcd member/ dir to convert again: not starting on it`);
    }
    o.log('warn', 'discarding a partial conversion of etcd 3.4 data dir (an earlier start was interrupted or failed); converting again from etcd\'s files', { 'data-dir': dataDir, partial: staging });
    await fsp.rm(staging, { recursive: true, force: true });
  }
  if (!fs.existsSync(member) || !isEtcdMemberDir(member)) return false;
  if (o.walDir) throw new Error(`${dataDir} is etcd 3.4's data dir: converting it with a separate --wal-dir is not supported (start without --wal-dir once, with etcd's WAL in member/wal)`);
  if (fs.existsSync(original)) throw new Error(`${dataDir} is etcd 3.4's data dir, but ${ETCD_ORIGINAL_DIR}/ exists already (an earlier conversion's etcd files): move it away to convert again`);
  o.log('info', 'converting etcd 3.4 data dir to this server\'s layout', { 'data-dir': dataDir, 'etcd-files-kept-in': original });
  let summary: Record<string, unknown>;
  try {
    summary = await convert(member, staging, o.log);
    const fh = await fsp.open(path.join(staging, DONE_MARK), 'w');
    try {
      await fh.writeFile(`converted from etcd 3.4's ${member}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(staging);
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw new Error(`cannot convert etcd 3.4 data dir ${dataDir}: ${(err as Error).message}; etcd's files are left as they were`);
  }
  await fsp.rename(member, original);
  await commit(dataDir, staging, member);
  o.log('info', 'converted etcd 3.4 data dir; etcd\'s files are kept', { 'data-dir': dataDir, 'etcd-files': original, ...summary });
  return true;
}

async function commit(dataDir: string, staging: string, member: string): Promise<void> {
  await fsp.rename(staging, member);
  await fsyncDir(dataDir);
  await fsp.rm(path.join(member, DONE_MARK), { force: true });
}

const hex = (id: bigint): string => id.toString(16);

/** The consistent index in etcd's backend (its meta bucket). */
function consistentIndexOf(reader: BoltReader): number {
  const meta = reader.bucket('meta');
  if (!meta) throw new Error('member/snap/db has no meta bucket: not an etcd backend');
  for (const e of meta.entries()) {
    if (e.key.toString('latin1') === 'consistent_index') {
      if (e.value.length !== 8) throw new Error(`member/snap/db: consistent_index is ${e.value.length} bytes`);
      return Number(e.value.readBigUInt64BE(0));
    }
  }
  return 0;
}

/** Builds our member dir in `out` from etcd's in `member`. */
async function convert(member: string, out: string, log: MigrationLog): Promise<Record<string, unknown>> {
  const wal = readEtcdWAL(path.join(member, 'wal'));
  if (wal.tornAt) log('warn', 'etcd WAL ends in a torn write (a crash while writing): read up to it, as etcd reads it', { at: wal.tornAt });
  const meta = decodeEtcdWalMetadata(wal.metadata);
  if (meta.nodeId === 0n || meta.clusterId === 0n) throw new Error('its WAL metadata has no member or cluster ID');
  const memberId = hex(meta.nodeId);
  const clusterIdHex = hex(meta.clusterId);
  const found = newestEtcdSnapshot(path.join(member, 'snap'), wal.snapshots, (m) => log('warn', m));
  const snap = found?.snap;
  if (snap?.joint) throw new Error(`snap file ${path.basename(found!.file)} holds a joint configuration, which this server has no form for`);
  const start = snap ? snap.index : 0;
  const entries = entriesAfter(wal.entries, start);

  const dbFile = path.join(member, 'snap', 'db');
  const reader = BoltReader.open(dbFile);
  let consistentIndex: number;
  let rev: number;
  try {
    consistentIndex = consistentIndexOf(reader);
    if (snap && consistentIndex < snap.index) {
      throw new Error(`its backend (consistent index ${consistentIndex}) is older than its newest snapshot (index ${snap.index}): etcd would open ${snap.index.toString(16).padStart(16, '0')}.snap.db instead; start etcd 3.4 on it once and stop it cleanly, then convert`);
    }
    rev = (await MvccStore.importData(path.join(out, 'v3'), etcdBackendImport(reader, consistentIndex))).rev;
  } finally {
    reader.close();
  }

  // The membership as of the snapshot, then the log's changes on top, to give removals their member.
  const members = new Map<string, Member>();
  let snapshotData: Buffer | undefined;
  if (snap) {
    const built = convertSnapshotData(snap, clusterIdHex, memberId, log);
    for (const m of built.cluster.list()) members.set(m.id, m);
    snapshotData = built.data;
    await new Snapshotter(path.join(out, 'snap')).save({
      metadata: { index: snap.index, term: snap.term, confState: { voters: snap.voters.map(hex), learners: snap.learners.map(hex) } },
      data: snapshotData,
    });
  } else {
    fs.mkdirSync(path.join(out, 'snap'), { recursive: true });
  }

  const converted = entries.map((e) => convertEntry(e, members));
  const hs: HardState = { term: wal.hardState.term, vote: wal.hardState.vote === 0n ? '' : hex(wal.hardState.vote), commit: wal.hardState.commit };
  const ours = await WAL.create(path.join(out, 'wal'), Buffer.from(JSON.stringify({ memberId, clusterId: clusterIdHex })));
  try {
    if (snap) await ours.saveSnapshot({ index: snap.index, term: snap.term });
    const BATCH = 4096;
    for (let i = 0; i < converted.length; i += BATCH) await ours.save(hs, converted.slice(i, i + BATCH), true);
    await ours.save(hs, [], true);
  } finally {
    await ours.close();
  }
  return {
    'member-id': memberId,
    'cluster-id': clusterIdHex,
    snapshot: snap ? `${path.basename(found!.file)} (index ${snap.index}, term ${snap.term})` : 'none',
    'consistent-index': consistentIndex,
    revision: rev,
    'wal-entries': converted.length,
    'hard-state': hs,
  };
}

/** etcd's membership.Member as JSON (a conf change's context): its ID is taken from the conf change, exactly. */
function etcdMember(id: string, context: Buffer, what: string): Member {
  let j: { peerURLs?: unknown; name?: unknown; clientURLs?: unknown; isLearner?: unknown };
  try {
    j = JSON.parse(context.toString('utf8')) as typeof j;
  } catch {
    throw new Error(`${what}: its context is not etcd's member JSON`);
  }
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
  return { id, name: typeof j.name === 'string' ? j.name : '', peerURLs: strings(j.peerURLs), clientURLs: strings(j.clientURLs), isLearner: j.isLearner === true };
}

const V2_METHODS = new Set(['PUT', 'POST', 'DELETE', 'QGET', 'GET', 'HEAD', 'SYNC']);

/**
 * Whether an entry's data is a bare etcdserverpb.Request (v2) rather than an InternalRaftRequest: etcd tells them by
 * whether InternalRaftRequest decodes; a v2 request's field 2 is its method (a string such as "PUT"), where an
 * InternalRaftRequest's is a nested v2 request (a message starting with its ID's tag).
 */
function isBareV2(data: Buffer): boolean {
  try {
    const r = V2Request.decode(data);
    return r.Method !== undefined && V2_METHODS.has(r.Method);
  } catch {
    return false;
  }
}

const ns2ms = (ns: bigint | undefined): number => (ns ? Number(ns / 1_000_000n) : 0);

/**
 * A message's field `no` as written (the last one), or undefined when absent: for what the decoder cannot tell, an
 * optional field's absence (the v2 request's PrevExist is a nullable bool) and a nested message's own bytes.
 */
function rawField(buf: Uint8Array, no: number): { wt: number; varint?: bigint; bytes?: Uint8Array } | undefined {
  const r = new BinaryReader(buf);
  let found: { wt: number; varint?: bigint; bytes?: Uint8Array } | undefined;
  while (r.pos < r.len) {
    const [n, wt] = r.tag();
    if (n === no && wt === WireType.Varint) found = { wt, varint: BigInt(r.uint64()) };
    else if (n === no && wt === WireType.LengthDelimited) found = { wt, bytes: r.bytes() };
    else r.skip(wt, n);
  }
  return found;
}

function membershipEntry(e: EtcdEntry, op: MembershipOp): Entry {
  return { term: e.term, index: e.index, type: EntryType.Normal, data: encodeEntry(EntryKind.Membership, 0, encodeMembershipOp(op)) };
}

/** A v2 request of etcd's log (its bytes) as ours: membership records, keys writes, SYNC; anything else is refused. */
function convertV2(e: EtcdEntry, raw: Uint8Array): Entry {
  const r = V2Request.decode(raw);
  const prevExist = rawField(raw, 8)?.varint;
  const p = r.Path ?? '';
  const method = r.Method ?? '';
  const what = `entry ${e.index}: etcd's v2 request ${method} ${p}`;
  const attrs = /^\/0\/members\/([0-9a-f]{1,16})\/attributes$/.exec(p);
  if (method === 'PUT' && attrs) {
    const a = JSON.parse(r.Val ?? '{}') as { name?: string; clientURLs?: string[] };
    return membershipEntry(e, { op: 'attributes', id: attrs[1], name: a.name ?? '', clientURLs: a.clientURLs ?? [] });
  }
  const raftAttrs = /^\/0\/members\/([0-9a-f]{1,16})\/raftAttributes$/.exec(p);
  if (method === 'PUT' && raftAttrs) {
    const a = JSON.parse(r.Val ?? '{}') as { peerURLs?: string[] };
    return membershipEntry(e, { op: 'peerURLs', id: raftAttrs[1], peerURLs: a.peerURLs ?? [] });
  }
  if (method === 'PUT' && p === '/0/version') return membershipEntry(e, { op: 'clusterVersion', version: r.Val ?? '' });
  // Reads through the log (quorum GET) change nothing: the no-op entry keeps the index.
  if (method === 'QGET' || method === 'GET' || method === 'HEAD') return { term: e.term, index: e.index, type: EntryType.Normal, data: new Uint8Array() };
  const req: WriteRequest = {
    id: 0,
    method: Method.SYNC,
    path: '',
    value: r.Val ?? '',
    dir: r.Dir ?? false,
    prevValue: r.PrevValue ?? '',
    prevIndex: Number(r.PrevIndex ?? 0n),
    prevExist: prevExist === undefined ? undefined : prevExist !== 0n,
    expiration: ns2ms(r.Expiration),
    refresh: r.Refresh ?? false,
    recursive: r.Recursive ?? false,
    time: ns2ms(r.Time),
  };
  if (method === 'SYNC') return { term: e.term, index: e.index, type: EntryType.Normal, data: encodeEntry(EntryKind.V2, 0, encodeRequest(req)) };
  const key = /^\/1(\/.*)?$/.exec(p);
  const m = method === 'PUT' ? Method.PUT : method === 'POST' ? Method.POST : method === 'DELETE' ? Method.DELETE : undefined;
  if (!key || m === undefined) throw new Error(`${what} cannot be carried over (this server has no form for it)`);
  return { term: e.term, index: e.index, type: EntryType.Normal, data: encodeEntry(EntryKind.V2, 0, encodeRequest({ ...req, method: m, path: key[1] || '/' })) };
}

/** Requests our auth store applies (EntryKind.Auth); the rest of an InternalRaftRequest is the v3 applier's. */
const AUTH_FIELDS = [
  'authEnable', 'authDisable', 'authenticate', 'authUserAdd', 'authUserDelete', 'authUserGet', 'authUserChangePassword', 'authUserGrantRole',
  'authUserRevokeRole', 'authUserList', 'authRoleList', 'authRoleAdd', 'authRoleDelete', 'authRoleGet', 'authRoleGrantPermission', 'authRoleRevokePermission',
] as const;
const V3_FIELDS = ['range', 'put', 'deleteRange', 'txn', 'compaction', 'leaseGrant', 'leaseRevoke', 'alarm', 'leaseCheckpoint'] as const;

/** One entry of etcd's log as ours (same index and term); throws, naming it, on one that cannot be carried. */
export function convertEntry(e: EtcdEntry, members: Map<string, Member>): Entry {
  if (e.type === ETCD_ENTRY_NORMAL) {
    if (e.data.length === 0) return { term: e.term, index: e.index, type: EntryType.Normal, data: new Uint8Array() };
    if (isBareV2(e.data)) return convertV2(e, e.data);
    let r: InternalRaftRequest;
    try {
      r = InternalRaftRequest.decode(e.data);
    } catch (err) {
      throw new Error(`entry ${e.index}: neither an InternalRaftRequest nor a v2 request (${(err as Error).message})`);
    }
    if (r.v2) return convertV2(e, rawField(e.data, 2)?.bytes ?? new Uint8Array());
    const rec = r as unknown as Record<string, unknown>;
    if (AUTH_FIELDS.some((f) => rec[f] !== undefined)) return { term: e.term, index: e.index, type: EntryType.Normal, data: encodeEntry(EntryKind.Auth, 0, e.data) };
    if (V3_FIELDS.some((f) => rec[f] !== undefined)) return { term: e.term, index: e.index, type: EntryType.Normal, data: encodeEntry(EntryKind.V3, 0, e.data) };
    throw new Error(`entry ${e.index}: an InternalRaftRequest with no request this server applies cannot be carried over`);
  }
  if (e.type !== ETCD_ENTRY_CONF_CHANGE) throw new Error(`entry ${e.index}: a raft entry of type ${e.type === 2 ? 'EntryConfChangeV2' : e.type} cannot be carried over (etcd 3.4 writes none)`);
  const cc = decodeEtcdConfChange(e.data);
  const id = hex(cc.nodeId);
  const what = `entry ${e.index}: conf change for member ${id}`;
  const conf = (type: ConfChangeType, ctx: ConfChangeContext): Entry => ({
    term: e.term,
    index: e.index,
    type: EntryType.ConfChange,
    data: encodeConfChange({ type, nodeId: id, context: Buffer.from(JSON.stringify({ ...ctx, v: CONF_CHANGE_CONTEXT_VERSION })) }),
  });
  switch (cc.type) {
    case ETCD_CC_ADD_NODE:
    case ETCD_CC_ADD_LEARNER_NODE: {
      const m = etcdMember(id, cc.context, what);
      const before = members.get(id);
      members.set(id, before ? { ...before, isLearner: m.isLearner } : m);
      return conf(cc.type === ETCD_CC_ADD_NODE ? ConfChangeType.AddNode : ConfChangeType.AddLearnerNode, { member: m, ...(before?.isLearner && cc.type === ETCD_CC_ADD_NODE ? { promote: true } : {}) });
    }
    case ETCD_CC_REMOVE_NODE: {
      const m = members.get(id) ?? { id, name: '', peerURLs: [], clientURLs: [], isLearner: false };
      members.delete(id);
      return conf(ConfChangeType.RemoveNode, { member: m });
    }
    case ETCD_CC_UPDATE_NODE: {
      // etcd changes a member's peer URLs by a conf change that changes no configuration; ours is a membership entry.
      const m = etcdMember(id, cc.context, what);
      const before = members.get(id);
      if (before) members.set(id, { ...before, peerURLs: m.peerURLs });
      return membershipEntry(e, { op: 'peerURLs', id, peerURLs: m.peerURLs });
    }
    default:
      throw new Error(`${what}: conf change type ${cc.type} cannot be carried over`);
  }
}

/** A node of etcd's v2 store as its snapshot (store.Save, JSON) holds it. */
interface EtcdV2Node {
  Path?: string;
  CreatedIndex?: number;
  ModifiedIndex?: number;
  ExpireTime?: string;
  Value?: string;
  Children?: Record<string, EtcdV2Node> | null;
}

const isDirNode = (n: EtcdV2Node): boolean => n.Children !== undefined && n.Children !== null;

function expireMs(t: string | undefined): number {
  if (!t || t.startsWith('0001-01-01')) return 0;
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) throw new Error(`v2 store: expiration time ${t} does not parse`);
  return ms;
}

/** etcd's /1 subtree as our store's nodes (children in creation order, as ours keep them). */
function keysTree(n: EtcdV2Node | undefined): StoreNode {
  const root = new StoreNode('', 0, 0, undefined, true);
  const stack: { from: EtcdV2Node; to: StoreNode }[] = n && isDirNode(n) ? [{ from: n, to: root }] : [];
  while (stack.length) {
    const { from, to } = stack.pop()!;
    const kids = Object.entries(from.Children ?? {}).sort((a, b) => (a[1].CreatedIndex ?? 0) - (b[1].CreatedIndex ?? 0));
    for (const [name, k] of kids) {
      const dir = isDirNode(k);
      const node = new StoreNode(name, k.CreatedIndex ?? 0, k.ModifiedIndex ?? 0, to, dir);
      if (!dir) node.value = k.Value ?? '';
      node.expireTime = expireMs(k.ExpireTime);
      to.children!.set(name, node);
      if (dir) stack.push({ from: k, to: node });
    }
  }
  return root;
}

/**
 * Our snapshot data from etcd's (its v2 store as JSON): the membership and cluster version (/0) recorded as ours
 * records them, and the v2 keys (/1).
 */
function convertSnapshotData(snap: EtcdSnapshot, clusterIdHex: string, localId: string, log: MigrationLog): { cluster: Cluster; data: Buffer } {
  let st: { Root?: EtcdV2Node; CurrentIndex?: number };
  try {
    st = JSON.parse(snap.data.toString('utf8')) as typeof st;
  } catch {
    throw new Error(`the snapshot at index ${snap.index} does not hold etcd's v2 store (JSON)`);
  }
  const top = st.Root?.Children ?? {};
  const internal = top['0']?.Children ?? {};
  const v2auth = top['2']?.Children ?? {};
  if (v2auth.enabled?.Value === 'true') throw new Error('its v2 store has v2 auth enabled, which this conversion does not carry over (disable v2 auth on etcd first)');
  if (Object.keys(v2auth).length) log('warn', 'etcd\'s v2 auth users and roles (v2 store /2, auth disabled) are not carried over', {});

  const store = new V2Store(Date.now);
  const v2 = new V2Applier(store);
  const cluster = new Cluster(clusterIdHex);
  const applier = new MembershipApplier({
    localId: () => localId,
    cluster: () => cluster,
    record: (op, p, value) => v2.recordInternal(op, p, value),
    readRecord: (p) => v2.readInternal(p),
    log: () => undefined,
  });
  const ctx = { index: snap.index, term: snap.term, requestId: 0, version: 1, legacy: false };
  const members = Object.entries(internal.members?.Children ?? {}).sort((a, b) => (a[1].CreatedIndex ?? 0) - (b[1].CreatedIndex ?? 0));
  for (const [id, n] of members) {
    const kids = n.Children ?? {};
    const ra = JSON.parse(kids.raftAttributes?.Value ?? '{}') as { peerURLs?: string[]; isLearner?: boolean };
    const m: Member = { id, name: '', peerURLs: ra.peerURLs ?? [], clientURLs: [], isLearner: ra.isLearner === true };
    const r = applier.applyConfChange({ type: m.isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: id }, { member: m, v: CONF_CHANGE_CONTEXT_VERSION });
    if (r.error) throw r.error;
    if (kids.attributes?.Value) {
      const a = JSON.parse(kids.attributes.Value) as { name?: string; clientURLs?: string[] };
      applier.apply(encodeMembershipOp({ op: 'attributes', id, name: a.name ?? '', clientURLs: a.clientURLs ?? [] }), ctx);
    }
  }
  const removed = Object.keys(internal.removed_members?.Children ?? {});
  for (const id of removed) v2.recordInternal('create', `/0/removed_members/${id}`, '');
  if (internal.version?.Value) applier.apply(encodeMembershipOp({ op: 'clusterVersion', version: internal.version.Value }), ctx);
  const j = cluster.toJSON();
  const restored = Cluster.fromJSON({ ...j, removed: [...j.removed, ...removed] });
  const ours = decodeStore(v2.save());
  const v2part = encodeStore({ index: st.CurrentIndex ?? 0, root: keysTree(top['1']), history: [], internal: ours.internal });
  const data = encodeSnapshotData(new Map([
    [PART_MEMBERSHIP, Buffer.from(JSON.stringify(restored.toJSON()))],
    [PART_V2STORE, v2part],
    [PART_V3, Buffer.from([0])],
  ]));
  return { cluster: restored, data };
}
