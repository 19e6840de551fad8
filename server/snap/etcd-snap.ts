/**
 * Reads etcd 3.4's snap files (etcdserver/api/snap), to convert its data dir: `<term>-<index>.snap` (16 hex digits
 * each) holding a snappb.Snapshot {crc, data}, data a raftpb.Snapshot and crc its CRC-32C.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { crc32c } from '../mvcc/store';
import { EtcdSnapshot, decodeEtcdSnapshot } from '../raft/etcd-raftpb';

const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export function readEtcdSnapFile(file: string): EtcdSnapshot {
  const buf = fs.readFileSync(file);
  if (buf.length === 0) throw new Error(`${path.basename(file)} is empty`);
  const r = new BinaryReader(buf);
  let crc = 0;
  let data: Buffer | undefined;
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === 0) crc = r.uint32();
    else if (no === 2 && wt === 2) data = Buffer.from(r.bytes());
    else r.skip(wt, no);
  }
  if (!data) throw new Error(`${path.basename(file)} holds no snapshot`);
  if (crc32c(data) !== crc) throw new Error(`${path.basename(file)}: CRC mismatch`);
  return decodeEtcdSnapshot(data);
}

/**
 * The newest snap file the WAL marks (etcd's LoadNewestAvailable), or undefined when there is none. A file that
 * does not read is passed over (as etcd passes over it), and told to `warn`.
 */
export function newestEtcdSnapshot(dir: string, marked: { index: number; term: number }[], warn: (msg: string) => void): { file: string; snap: EtcdSnapshot } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => SNAP_RE.test(n));
  } catch {
    return undefined;
  }
  names.sort().reverse();
  for (const name of names) {
    const m = SNAP_RE.exec(name)!;
    const term = parseInt(m[1], 16);
    const index = parseInt(m[2], 16);
    if (!marked.some((s) => s.index === index && s.term === term)) continue;
    const file = path.join(dir, name);
    try {
      const snap = readEtcdSnapFile(file);
      if (snap.index !== index || snap.term !== term) throw new Error(`${name} holds the snapshot at index ${snap.index}, term ${snap.term}`);
      return { file, snap };
    } catch (err) {
      warn(`etcd snap file ${name} does not read (${(err as Error).message}): an older one is used`);
    }
  }
  return undefined;
}
