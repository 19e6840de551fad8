/**
 * etcd's snapshot restore (clientv3/snapshot Restore) for this server's data dir: a new member's data dir from a
 * snapshot file (what Maintenance.Snapshot streams: the v3 store's LMDB file and its SHA-256), with a new cluster of
 * the members given by --initial-cluster and --initial-cluster-token (new cluster and member IDs, as etcd computes
 * them). The v3 store keeps its keys, revisions, compaction and alarms; its consistent index becomes the number of
 * members, as etcd's does, so the new log's entries apply. A Raft snapshot at that index holds the new membership
 * and a v2 store with only its records (etcd's restore keeps no v2 keys either); the WAL holds its marker.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseInitialCluster, urlProblem } from '../config';
import { Cluster } from '../membership/cluster';
import { MvccStore } from '../mvcc/store';
import { ConfChangeType } from '../raft';
import { Snapshotter } from '../snap/snapshotter';
import { V2Store } from '../store';
import { WAL } from '../wal/wal';
import { V2Applier } from './apply/v2';
import { CONF_CHANGE_CONTEXT_VERSION, MembershipApplier } from './apply/membership';
import { PART_MEMBERSHIP, PART_V2STORE, PART_V3, encodeSnapshotData } from './snapshot-data';

export interface RestoreConfig {
  snapshotPath: string;
  name: string;
  /** Defaults to `<name>.etcd`. */
  dataDir?: string;
  /** Defaults to `<dataDir>/member/wal`. */
  walDir?: string;
  peerURLs: string[];
  initialCluster: string;
  initialClusterToken: string;
  skipHashCheck: boolean;
  /** etcd's log lines of the restore (zap fields). */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

const SHA256_SIZE = 32;

/** etcd's hasChecksum: a file whose size is a multiple of 512 plus 32 ends in a SHA-256 of what comes before. */
export const hasChecksum = (size: number): boolean => size % 512 === SHA256_SIZE;

/** Go's %v of a byte slice: [1 2 3]. */
const goBytes = (b: Buffer): string => `[${[...b].join(' ')}]`;

/** The v3 store's bytes in a snapshot file (the SHA-256 trailer cut), its digest checked unless told not to. */
export function snapshotDB(file: string, skipHashCheck: boolean): Buffer {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (err) {
    // Go's words for a file that cannot be opened.
    const e = err as NodeJS.ErrnoException;
    const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory' };
    throw new Error(`open ${file}: ${(e.code && why[e.code]) || e.message}`);
  }
  const withHash = hasChecksum(data.length);
  const db = withHash ? data.subarray(0, data.length - SHA256_SIZE) : data;
  if (!withHash && !skipHashCheck) throw new Error('snapshot missing hash but --skip-hash-check=false');
  if (withHash && !skipHashCheck) {
    const want = data.subarray(data.length - SHA256_SIZE);
    const got = createHash('sha256').update(db).digest();
    if (!want.equals(got)) throw new Error(`expected sha256 ${goBytes(want)}, got ${goBytes(got)}`);
  }
  return db;
}

/** etcd's ServerConfig.VerifyBootstrap for the restored member: it is in the cluster with the URLs it advertises. */
function verifyBootstrap(name: string, peerURLs: string[], initial: { name: string; peerURLs: string[] }[], initialCluster: string): void {
  const self = initial.find((m) => m.name === name);
  if (!self) throw new Error(`couldn't find local name "${name}" in the initial cluster configuration`);
  const mine = [...self.peerURLs].sort();
  const adv = [...peerURLs].sort();
  if (mine.join(',') !== adv.join(',')) {
    const missing = mine.filter((u) => !adv.includes(u));
    if (missing.length) throw new Error(`--initial-cluster has ${missing.map((u) => `${name}=${u}`).join(',')} but missing from --initial-advertise-peer-urls=${adv.join(',')}`);
    throw new Error(`--initial-advertise-peer-urls has ${adv.filter((u) => !mine.includes(u)).join(',')} but missing from --initial-cluster=${peerURLs.map((u) => `${name}=${u}`).join(',')}`);
  }
  const urls = initial.flatMap((m) => m.peerURLs);
  if (new Set(urls).size !== urls.length) throw new Error(`initial cluster ${initialCluster} has duplicate url`);
}

export async function restoreSnapshot(cfg: RestoreConfig): Promise<void> {
  for (const u of cfg.peerURLs) {
    const why = urlProblem(u.trim());
    if (why) throw new Error(why);
  }
  let initial: { name: string; peerURLs: string[] }[];
  try {
    initial = parseInitialCluster(cfg.initialCluster);
  } catch (err) {
    throw new Error((err as Error).message.replace(/^invalid value .* for --initial-cluster: /, ''));
  }
  verifyBootstrap(cfg.name, cfg.peerURLs.map((u) => u.trim()), initial, cfg.initialCluster);
  const cluster = Cluster.fromInitialCluster(initial, cfg.initialClusterToken);
  const dataDir = cfg.dataDir || `${cfg.name}.etcd`;
  if (fs.existsSync(dataDir)) throw new Error(`data-dir "${dataDir}" exists`);
  let walDir = cfg.walDir || '';
  if (walDir === '') walDir = path.join(dataDir, 'member', 'wal');
  else if (fs.existsSync(walDir)) throw new Error(`wal-dir "${walDir}" exists`);
  const snapDir = path.join(dataDir, 'member', 'snap');
  const v3Dir = path.join(dataDir, 'member', 'v3');
  const where = { path: cfg.snapshotPath, 'wal-dir': walDir, 'data-dir': dataDir, 'snap-dir': snapDir };
  cfg.log?.('restoring snapshot', where);

  // The v3 store, checked first (nothing is written for a snapshot that does not verify).
  const db = snapshotDB(cfg.snapshotPath, cfg.skipHashCheck);
  const members = cluster.list();
  const index = members.length;
  await MvccStore.restoreDB(v3Dir, db, index);

  // The membership, as a bootstrap of these members leaves it (and the v2 store's records of it), in a Raft snapshot.
  const self = cluster.memberByName(cfg.name)!;
  const store = new V2Store(Date.now);
  const v2 = new V2Applier(store);
  const restored = new Cluster(cluster.id);
  const applier = new MembershipApplier({
    localId: () => self.id,
    cluster: () => restored,
    record: (op, p, value) => v2.recordInternal(op, p, value),
    readRecord: (p) => v2.readInternal(p),
    log: () => undefined,
  });
  for (const m of members) {
    const r = applier.applyConfChange({ type: ConfChangeType.AddNode, nodeId: m.id, context: new Uint8Array() }, { member: m, v: CONF_CHANGE_CONTEXT_VERSION });
    if (r.error) throw r.error;
    cfg.log?.('added member', { 'cluster-id': cluster.id, 'local-member-id': '0', 'added-peer-id': m.id, 'added-peer-peer-urls': m.peerURLs });
  }
  const data = encodeSnapshotData(new Map([
    [PART_MEMBERSHIP, Buffer.from(JSON.stringify(restored.toJSON()))],
    [PART_V2STORE, v2.save()],
    [PART_V3, Buffer.from([0])],
  ]));
  const term = 1;
  const confState = { voters: members.map((m) => m.id), learners: [] };
  await new Snapshotter(snapDir).save({ metadata: { index, term, confState }, data });
  const wal = await WAL.create(walDir, Buffer.from(JSON.stringify({ memberId: self.id, clusterId: cluster.id })));
  try {
    await wal.saveSnapshot({ index, term });
    await wal.save({ term, vote: members[0].id, commit: index }, [], true);
  } finally {
    await wal.close();
  }
  cfg.log?.('restored snapshot', where);
}
