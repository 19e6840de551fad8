/**
 * The member's side of the Maintenance service (etcd's maintenanceServer over EtcdServer): status from Raft and
 * the backend, hashes, alarms through the log, defragmentation and snapshots of the MVCC store (etcd's backend, a
 * bbolt file: etcd-backend.ts), leadership moves.
 */
import type { MaintenanceBackend, SnapshotOut } from '../api/v3rpc/maintenance';
import type { AlarmRequest, AlarmResponse, StatusResponse } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { AlarmType } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { ServerErrors } from '../api/v3rpc/errors';
import { NONE } from '../raft';
import { alarmString } from './alarms';
import type { V3Applier } from './apply-v3';
import type { EtcdServer } from './server';
import type { V3KV } from './v3-server';

/** The version Status reports: the server version /version reports. */
export const STATUS_VERSION = '3.4.0';

type Log = (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;

const id = (hex: string): bigint => (hex && hex !== NONE ? BigInt('0x' + hex) : 0n);

export class V3Maintenance implements MaintenanceBackend {
  constructor(
    private readonly server: EtcdServer,
    private readonly applier: V3Applier,
    private readonly kv: V3KV,
    private readonly log: Log = () => undefined,
  ) {}

  async status(): Promise<Omit<StatusResponse, 'header'>> {
    const s = this.server;
    const store = this.applier.store;
    const errors: string[] = [];
    if (s.lead === NONE) errors.push(ServerErrors.noLeader);
    for (const a of this.applier.alarms.get(AlarmType.NONE)) errors.push(alarmString(a));
    return {
      version: STATUS_VERSION,
      dbSize: BigInt(store.dbSize()),
      leader: id(s.lead),
      raftIndex: BigInt(s.committedIndex()),
      raftTerm: BigInt(s.raftNode ? s.term() : 0),
      raftAppliedIndex: BigInt(s.appliedIndex),
      errors,
      dbSizeInUse: BigInt(store.dbSizeInUse()),
      isLearner: s.isLearner(),
    };
  }

  hash(): Promise<{ hash: number; rev: number }> {
    return this.applier.store.hash();
  }

  hashKV(rev: number): Promise<{ hash: number; rev: number; compactRev: number }> {
    return this.applier.store.hashKV(rev);
  }

  alarm(r: AlarmRequest): Promise<AlarmResponse> {
    return this.kv.alarm(r);
  }

  async defragment(): Promise<void> {
    this.log('info', 'starting defragment', { capnslog: 'starting to defragment the storage backend...' });
    try {
      await this.applier.store.defrag();
    } catch (err) {
      this.log('warn', 'failed to defragment', { error: (err as Error).message, capnslog: `failed to defragment the storage backend (${(err as Error).message})` });
      throw err;
    }
    this.log('info', 'finished defragment', { capnslog: 'finished defragmenting the storage backend' });
  }

  async snapshot(out: SnapshotOut): Promise<void> {
    const store = this.applier.store;
    const cluster = this.server.cluster?.toJSON();
    const membership = cluster ? { members: cluster.members, removed: cluster.removed, version: cluster.version } : undefined;
    // etcd's backend as a bbolt file, made as it is sent from one consistent view of the store: etcd's etcdctl and
    // etcd read it. (The bbolt writer is loaded on the first snapshot: most servers never take one.)
    const { streamEtcdBackend } = require('./etcd-backend') as typeof import('./etcd-backend');
    await store.withSnapshotView((view) => streamEtcdBackend(view, membership, out));
  }

  isLeader(): boolean {
    return this.server.isLeader();
  }

  moveLeader(target: string): Promise<void> {
    return this.server.moveLeader(target);
  }
}
