/**
 * etcd's snapshot restore (clientv3/snapshot Restore) for this server's data dir: a new member's data dir from a
 * snapshot file (etcd's backend, a bbolt file, and its SHA-256, as etcd's and this server's Maintenance.Snapshot
 * stream it; or the LMDB file of the v3 store that the first releases streamed), with a new cluster of
 * the members given by --initial-cluster and --initial-cluster-token (new cluster and member IDs, as etcd computes
 * them). The v3 store keeps its keys, revisions, compaction and alarms; its consistent index becomes the number of
 * members, as etcd's does, so the new log's entries apply. A Raft snapshot at that index holds the new membership
 * and a v2 store with only its records (etcd's restore keeps no v2 keys either); the WAL holds its marker.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseInitialCluster, urlProblem } from '../config';
import { Cluster } from '../membership/cluster';
import { BoltReader } from '../mvcc/bbolt/reader';
import { BoltError } from '../mvcc/bbolt/page';
import { MvccStore } from '../mvcc/store';
import { ConfChangeType } from '../raft';
import { Snapshotter } from '../snap/snapshotter';
import { V2Store } from '../store';
import { WAL } from '../wal/wal';
import { V2Applier } from './apply/v2';
import { CONF_CHANGE_CONTEXT_VERSION, MembershipApplier } from './apply/membership';
import { etcdBackendImport, etcdSnapshotStatus, isBolt } from './etcd-backend';
import { PART_MEMBERSHIP, PART_V2STORE, PART_V3, encodeSnapshotData } from './snapshot-data';
import { sha256Prefix, sha256PrefixInBackground } from './snapshot-hash';

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

/** Go's words for a file that cannot be opened. */
function openError(file: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory' };
  return new Error(`open ${file}: ${(e.code && why[e.code]) || e.message}`);
}

/** A snapshot file's database: its size (the SHA-256 trailer left out) and format. */
export interface SnapshotDB {
  /** bytes of the file that are the database */
  size: number;
  /** etcd's (a bbolt file, what this server's Maintenance.Snapshot streams too) or an LMDB file (the first releases') */
  format: 'bbolt' | 'lmdb';
}

/** A snapshot file's database, and whether its SHA-256 trailer is to be checked; etcd's errors for what is not. */
function snapshotLayout(file: string, skipHashCheck: boolean): SnapshotDB & { checkHash: boolean } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw openError(file, err);
  }
  try {
    const total = fs.fstatSync(fd).size;
    const withHash = hasChecksum(total);
    const size = withHash ? total - SHA256_SIZE : total;
    if (!withHash && !skipHashCheck) throw new Error('snapshot missing hash but --skip-hash-check=false');
    const head = Buffer.alloc(20);
    fs.readSync(fd, head, 0, Math.min(20, size), 0);
    return { size, format: isBolt(head) ? 'bbolt' : 'lmdb', checkHash: withHash && !skipHashCheck };
  } finally {
    fs.closeSync(fd);
  }
}

/** etcd's refusal of a snapshot file whose SHA-256 trailer is not got, the hash of its database's size bytes. */
function verifyHash(file: string, size: number, got: Buffer): void {
  const want = Buffer.alloc(SHA256_SIZE);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, want, 0, SHA256_SIZE, size);
  } finally {
    fs.closeSync(fd);
  }
  if (!want.equals(got)) throw new Error(`expected sha256 ${goBytes(want)}, got ${goBytes(got)}`);
}

/**
 * Checks a snapshot file's SHA-256 trailer (read in chunks, never whole in memory) unless told not to, and tells
 * its database's size and format.
 */
export function snapshotDB(file: string, skipHashCheck: boolean): SnapshotDB {
  const { size, format, checkHash } = snapshotLayout(file, skipHashCheck);
  if (checkHash) verifyHash(file, size, sha256Prefix(file, size));
  return { size, format };
}

/**
 * Makes dir the v3 store of a snapshot file's database: etcd's backend imported (the same versions at the same
 * revisions, leases, auth, alarms), or an LMDB file copied, its consistent index set to consistentIndex.
 */
export async function restoreStore(file: string, db: SnapshotDB, dir: string, consistentIndex: number): Promise<void> {
  if (db.format === 'lmdb') {
    await MvccStore.restoreDB(dir, file, db.size, consistentIndex);
    return;
  }
  const reader = BoltReader.open(file, db.size);
  try {
    await MvccStore.importData(dir, etcdBackendImport(reader, consistentIndex));
  } finally {
    reader.close();
  }
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

  // The v3 store, imported while a worker thread checks the file's SHA-256 (one read of the file each, at once,
  // rather than a pass to check it first). A file that does not verify is refused as etcd refuses it, whatever the
  // import made of it, and an import that fails leaves no data dir behind.
  const db = snapshotLayout(cfg.snapshotPath, cfg.skipHashCheck);
  const hashed = db.checkHash ? sha256PrefixInBackground(cfg.snapshotPath, db.size) : undefined;
  hashed?.catch(() => undefined); // awaited below, after the import: not an unhandled rejection meanwhile
  const verified = async (): Promise<void> => {
    if (hashed) verifyHash(cfg.snapshotPath, db.size, await hashed);
  };
  const members = cluster.list();
  const index = members.length;
  try {
    await restoreStore(cfg.snapshotPath, db, v3Dir, index).catch(async (err: unknown) => {
      await verified();
      throw err;
    });
    await verified();
  } catch (err) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

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

/**
 * snapshot status of a file: etcd's (bbolt) as etcd's etcdctl computes it, an LMDB one (our first releases') over
 * its tables; "invalid database" for what is neither, as etcd's says.
 */
export async function snapshotStatus(file: string, scratch: string): Promise<{ hash: number; revision: number; totalKey: number; totalSize: number }> {
  let db: SnapshotDB;
  try {
    db = snapshotDB(file, true);
  } catch {
    throw new Error('invalid database');
  }
  if (db.format === 'bbolt') {
    let reader: BoltReader;
    try {
      reader = BoltReader.open(file, db.size);
    } catch (err) {
      // bbolt's Open errors: "invalid database", "version mismatch", "checksum error" (etcd's etcdctl prints them so).
      throw new Error(err instanceof BoltError && /^(invalid database|version mismatch|checksum error)$/.test(err.message) ? err.message : `invalid database (${(err as Error).message})`);
    }
    try {
      return etcdSnapshotStatus(reader);
    } finally {
      reader.close();
    }
  }
  try {
    return await MvccStore.dbStatus(file, db.size, scratch);
  } catch {
    throw new Error('invalid database');
  }
}
