/**
 * `etcd-operator backup`: what a backup Job's pod runs. It takes a v3 snapshot (Maintenance.Snapshot) from the first
 * of the given members that is healthy (knows a leader, no alarm, not a learner), writes it to the backup claim as
 * `<prefix><UTC time>.db` (a `.part` file renamed once whole and synced), checks the SHA-256 the member sent, then
 * checks the file as `etcdctl snapshot restore` will (the digest again, from the disk, and the store in it: its
 * revision), deletes the oldest snapshots of the same prefix beyond the retention, and reports what it did as JSON
 * on stdout and in the container's termination message, which the operator reads from the pod's status.
 *
 *   etcd-operator backup --endpoints URL[,URL...] --dir DIR --prefix NAME- [--retention N]
 *                        [--cacert FILE --cert FILE --key FILE] [--termination-log /dev/termination-log]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { snapshotDB, snapshotStatus } from '../server/etcdserver/restore';
import { EtcdV3, tlsFromFiles, type TLSMaterial } from './etcd-v3';
import type { AgentResult } from './backup-planner';

export interface AgentOptions {
  endpoints: string[];
  dir: string;
  prefix: string;
  retention: number;
  tls?: TLSMaterial;
  now?: () => Date;
  log?: (line: string) => void;
}

/** Kubernetes keeps at most this much of a termination message. */
const TERMINATION_MESSAGE_MAX = 4096;

/** `<prefix>20240310T101530Z.db`: names that sort by time. */
export function snapshotFileName(prefix: string, t: Date): string {
  return `${prefix}${t.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}.db`;
}
const isOurs = (prefix: string, f: string): boolean => f.startsWith(prefix) && /^\d{8}T\d{6}Z\.db$/.test(f.slice(prefix.length));

export async function runBackup(o: AgentOptions): Promise<AgentResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const etcd = new EtcdV3(o.tls ?? {}, 5000);
  const problems: string[] = [];
  try {
    for (const endpoint of o.endpoints) {
      let member: string | undefined;
      try {
        const st = await etcd.status(endpoint);
        if (st.isLearner) throw new Error('a learner (not in sync for sure)');
        if (st.leader === '0') throw new Error('no leader');
        if (st.errors.length > 0) throw new Error(`alarms: ${st.errors.join(', ')}`);
        member = (await etcd.members(endpoint)).find((m) => m.id === st.id)?.name || st.id;
      } catch (e) {
        problems.push(`${endpoint}: ${(e as Error).message}`);
        log(`skipping ${endpoint}: ${(e as Error).message}`);
        continue;
      }
      const time = (o.now ?? (() => new Date()))();
      const file = snapshotFileName(o.prefix, time);
      const final = path.join(o.dir, file);
      const part = `${final}.part`;
      const fd = fs.openSync(part, 'w', 0o600);
      let r: { size: number; sha256: string };
      try {
        log(`taking a snapshot from ${member} (${endpoint}) to ${final}`);
        r = await etcd.snapshot(endpoint, (chunk) => {
          fs.writeSync(fd, chunk);
        });
        fs.fsyncSync(fd);
      } catch (e) {
        fs.closeSync(fd);
        fs.rmSync(part, { force: true });
        problems.push(`${endpoint}: ${(e as Error).message}`);
        log(`snapshot from ${endpoint} failed: ${(e as Error).message}`);
        continue;
      }
      fs.closeSync(fd);
      fs.renameSync(part, final);
      syncDir(o.dir);
      // What restore will read: the digest checked again from the disk, and the store opened for its revision.
      const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-backup-'));
      let revision: number;
      let totalKey: number;
      try {
        snapshotDB(final, false);
        ({ revision, totalKey } = await snapshotStatus(final, scratch));
      } catch (e) {
        fs.rmSync(final, { force: true });
        throw new Error(`${final} does not read back: ${(e as Error).message}`);
      } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
      }
      const kept = prune(o.dir, o.prefix, o.retention, log);
      return { ok: true, file, member, endpoint, time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'), size: r.size, sha256: r.sha256, revision, totalKey, kept };
    }
    return { ok: false, error: `no member gave a snapshot: ${problems.join('; ') || 'no endpoints'}` };
  } finally {
    etcd.close();
  }
}

/** Deletes this backup's oldest snapshots beyond `retention` (and parts of interrupted runs); returns those kept. */
function prune(dir: string, prefix: string, retention: number, log: (l: string) => void): string[] {
  const names = fs.readdirSync(dir);
  for (const f of names) {
    if (f.endsWith('.db.part') && isOurs(prefix, f.slice(0, -'.part'.length))) fs.rmSync(path.join(dir, f), { force: true });
  }
  const ours = names.filter((f) => isOurs(prefix, f)).sort();
  const gone = ours.slice(0, Math.max(0, ours.length - retention));
  for (const f of gone) {
    log(`retention ${retention}: deleting ${f}`);
    fs.rmSync(path.join(dir, f), { force: true });
  }
  if (gone.length > 0) syncDir(dir);
  return ours.slice(gone.length);
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The command: flags in, exit code out (0 with a snapshot, 1 without); the report on stdout and the termination log. */
export async function backupMain(argv: string[]): Promise<number> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`backup: unexpected argument ${argv[i]}`);
    flags.set(m[1], m[2] ?? argv[++i] ?? '');
  }
  const known = ['endpoints', 'dir', 'prefix', 'retention', 'cacert', 'cert', 'key', 'termination-log'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`backup: unknown flag --${k}`);
  const need = (k: string): string => {
    const v = flags.get(k);
    if (!v) throw new Error(`backup: --${k} is required`);
    return v;
  };
  const retention = Number(flags.get('retention') ?? '5');
  if (!Number.isInteger(retention) || retention < 1) throw new Error(`backup: --retention must be a whole number of at least 1`);
  let result: AgentResult;
  try {
    result = await runBackup({
      endpoints: need('endpoints').split(',').filter((e) => e !== ''),
      dir: need('dir'),
      prefix: need('prefix'),
      retention,
      tls: tlsFromFiles({ caFile: flags.get('cacert'), certFile: flags.get('cert'), keyFile: flags.get('key') }),
    });
  } catch (e) {
    result = { ok: false, error: (e as Error).message };
  }
  const text = JSON.stringify(result);
  process.stdout.write(`${text}\n`);
  const tlog = flags.get('termination-log');
  if (tlog) fs.writeFileSync(tlog, text.length <= TERMINATION_MESSAGE_MAX ? text : JSON.stringify({ ...result, kept: [] }).slice(0, TERMINATION_MESSAGE_MAX));
  return result.ok ? 0 : 1;
}
