/**
 * A member of ours and a connection to it, for a jest test file (jest's hooks: not for the robustness runner, which
 * shares watch-client.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startOurEtcd, type RunningEtcd } from './real-etcd';
import { connect, type WatchConn } from './watch-client';

/**
 * For a test file against one member of ours: starts it (fresh data dir) with a connection before the tests, and
 * closes and stops both after them.
 */
export function ourMemberWithConn(prefix: string): { etcd: () => RunningEtcd; conn: () => WatchConn } {
  let dir: string;
  let etcd: RunningEtcd | undefined;
  let conn: WatchConn | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    etcd = await startOurEtcd(path.join(dir, 'ours'));
    conn = connect(etcd.clientURL);
  });
  afterAll(async () => {
    conn?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { etcd: () => etcd!, conn: () => conn! };
}
