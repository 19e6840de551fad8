/**
 * Whether a start has anything of etcd 3.4's data dir to convert (etcd-datadir.ts): its member/ in etcd's layout,
 * or a conversion an earlier start left. Checked on every start; the converter itself (etcd's WAL, snap and bbolt
 * readers) is loaded only when there is something to convert.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MigrationLog } from './etcd-datadir';

/** Where the conversion is built. */
export const CONVERTING_DIR = 'member.converting';

/** Whether a member dir is in etcd's layout (its bbolt backend, not our v3 store). */
export function isEtcdMemberDir(memberDir: string): boolean {
  return fs.existsSync(path.join(memberDir, 'snap', 'db')) && !fs.existsSync(path.join(memberDir, 'v3', 'data.mdb'));
}

/** etcd-datadir.ts's migrateEtcdDataDir, when the data dir has anything for it; false (nothing converted) when not. */
export async function migrateEtcdDataDir(dataDir: string, o: { walDir?: string; log: MigrationLog }): Promise<boolean> {
  const member = path.join(dataDir, 'member');
  if (!fs.existsSync(path.join(dataDir, CONVERTING_DIR)) && !(fs.existsSync(member) && isEtcdMemberDir(member))) return false;
  return (require('./etcd-datadir') as typeof import('./etcd-datadir')).migrateEtcdDataDir(dataDir, o);
}
