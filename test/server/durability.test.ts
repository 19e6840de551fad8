/**
 * Crash durability of the built server: kill -9 in the middle of a concurrent write load, restart on the same data
 * dir and ports, and every write that was acknowledged must be there with the same value and modifiedIndex.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, appendFileSync, truncateSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecordType, decodeAt, isZeroFrom } from '../../server/wal/record';
import { RunningEtcd, freePort, startOurEtcd } from '../support/real-etcd';
import { Ack, missingAcks, publishedClientURLs, readLoad, request, waitFor, writeLoad } from './load';

let root: string;
const running = new Set<RunningEtcd>();

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'etcd-durability-'));
});
afterAll(async () => {
  await Promise.all([...running].map((e) => e.stop()));
  rmSync(root, { recursive: true, force: true });
});

async function start(dataDir: string, ports: { client: number; peer: number }, args: string[] = []): Promise<RunningEtcd> {
  const e = await startOurEtcd(dataDir, args, ports);
  running.add(e);
  // Healthy means serving clients, which etcd does only once the member's client URLs are published.
  expect(await publishedClientURLs(e.clientURL)).toEqual([e.clientURL]);
  return e;
}

async function kill(e: RunningEtcd): Promise<void> {
  await e.stop();
  running.delete(e);
}

async function freePorts(): Promise<{ client: number; peer: number }> {
  return { client: await freePort(), peer: await freePort() };
}

const walDir = (dataDir: string) => path.join(dataDir, 'member', 'wal');
const snapDir = (dataDir: string) => path.join(dataDir, 'member', 'snap');
const segments = (dataDir: string) => readdirSync(walDir(dataDir)).filter((n) => n.endsWith('.wal')).sort();
const snapshots = (dataDir: string) => readdirSync(snapDir(dataDir)).filter((n) => n.endsWith('.snap')).sort();

/** Checks that all acknowledged writes are present and unchanged, and that unacknowledged ones are whole. */
async function verify(e: RunningEtcd, acked: Map<string, Ack>): Promise<number> {
  const { nodes, etcdIndex } = await readLoad(e.clientURL);
  expect(missingAcks(acked, nodes)).toEqual([]);
  // A write that was in flight at the kill may or may not have survived, but never half of it.
  const bad = [...nodes].filter(([k, a]) => a.value !== `v${/(\d+)$/.exec(k)![1]}`);
  expect(bad).toEqual([]);
  const maxAcked = Math.max(0, ...[...acked.values()].map((a) => a.modifiedIndex));
  expect(etcdIndex).toBeGreaterThanOrEqual(maxAcked);
  return etcdIndex;
}

/** One round: load with `clients` clients, kill -9 once `killAfter` writes were acknowledged. */
async function loadAndKill(e: RunningEtcd, prefix: string, killAfter: number, maxWrites = 3000): Promise<Map<string, Ack>> {
  let killed: Promise<void> | undefined;
  const r = await writeLoad({
    url: e.clientURL,
    prefix,
    clients: 12,
    maxWrites,
    maxMs: 15000,
    trigger: { afterAcks: killAfter, action: () => (killed = kill(e)) },
  });
  expect(r.refused).toEqual([]);
  // The kill came from the acknowledgements, in the middle of the load: some writes never got an answer.
  expect(r.triggered).toBe(true);
  await killed;
  expect(r.acked.size).toBeGreaterThanOrEqual(killAfter);
  expect(r.acked.size).toBeLessThan(maxWrites);
  return r.acked;
}

test('acknowledged writes survive kill -9 in the middle of a write load, over several restarts', async () => {
  const dir = path.join(root, 'rounds');
  const ports = await freePorts();
  const acked = new Map<string, Ack>();
  let lastIndex = 0;
  for (let round = 0; round < 3; round++) {
    const e = await start(dir, ports);
    lastIndex = await verify(e, acked);
    for (const [k, a] of await loadAndKill(e, `r${round}-k`, 300 + 200 * round)) {
      // The store's index only grows: a restart never hands out an index again.
      expect(a.modifiedIndex).toBeGreaterThan(lastIndex);
      acked.set(k, a);
    }
  }
  const e = await start(dir, ports);
  await verify(e, acked);
  await kill(e);
});

test('with --snapshot-count=100 snapshots are taken during the load and restarts recover from them', async () => {
  const dir = path.join(root, 'snapshots');
  const ports = await freePorts();
  const args = ['--snapshot-count', '100', '--max-snapshots', '3'];
  const acked = new Map<string, Ack>();
  for (let round = 0; round < 3; round++) {
    const e = await start(dir, ports, args);
    await verify(e, acked);
    for (const [k, a] of await loadAndKill(e, `r${round}-k`, 700 + 300 * round)) acked.set(k, a);
    const snaps = snapshots(dir);
    // Several hundred writes with a snapshot every 100 entries: there are snapshots, and old ones are purged (a
    // kill between writing a snapshot and purging leaves one more).
    expect(snaps.length).toBeGreaterThan(0);
    expect(snaps.length).toBeLessThanOrEqual(4);
    for (const s of snaps) expect(statSync(path.join(snapDir(dir), s)).size).toBeGreaterThan(0);
    // The newest snapshot is recent: within a few snapshot intervals of the writes acknowledged so far.
    const newest = parseInt(snaps[snaps.length - 1].split('-')[1], 16);
    expect(newest).toBeGreaterThan(acked.size - 400);
    expect(segments(dir).length).toBeGreaterThan(0);
  }
  const e = await start(dir, ports, args);
  await verify(e, acked);
  // Still writable after recovering from a snapshot, with fresh indexes.
  const a = await request(`${e.clientURL}/v2/keys/after`, 'PUT', 'value=x');
  expect(a.status).toBe(201);
  const maxAcked = Math.max(...[...acked.values()].map((x) => x.modifiedIndex));
  expect((JSON.parse(a.body) as { node: { modifiedIndex: number } }).node.modifiedIndex).toBeGreaterThan(maxAcked);
  // Without a crash, the next snapshots bring the count back to --max-snapshots.
  const before = snapshots(dir);
  const more = await writeLoad({ url: e.clientURL, prefix: 'more-k', clients: 8, maxWrites: 350, maxMs: 15000 });
  expect(more.acked.size).toBe(350);
  await waitFor('old snapshots to be purged', () => snapshots(dir).length <= 3 && snapshots(dir).at(-1) !== before.at(-1));
  await kill(e);
});

/** Offsets of the records of a WAL segment, with their types. */
function records(file: string): { off: number; size: number; type: RecordType }[] {
  const buf = readFileSync(file);
  const out: { off: number; size: number; type: RecordType }[] = [];
  let off = 0;
  while (off < buf.length) {
    const r = decodeAt(buf, off);
    if (r.kind !== 'record') break;
    out.push({ off, size: r.size, type: r.record.type });
    off += r.size;
  }
  return out;
}

/**
 * Makes `data` the whole of what follows the segment's whole records, where the write a crash interrupted would have
 * gone (zeros after it, as in a preallocated segment; whatever the kill itself left there is replaced).
 */
function writeAfterRecords(file: string, data: Buffer): void {
  const recs = records(file);
  const last = recs[recs.length - 1];
  const buf = readFileSync(file);
  const at = last.off + last.size;
  writeFileSync(file, Buffer.concat([buf.subarray(0, at), data, Buffer.alloc(Math.max(0, buf.length - at - data.length))]));
}

test('a torn tail of the last WAL segment (garbage, a partial record, zero padding) is cut and nothing acknowledged is lost', async () => {
  const dir = path.join(root, 'torn');
  const ports = await freePorts();
  const acked = new Map<string, Ack>();
  const lastRecord = (f: string) => {
    const recs = records(f);
    const last = recs[recs.length - 1];
    return readFileSync(f).subarray(last.off, last.off + last.size);
  };
  // What a crash in the middle of a write leaves after the whole records (in a preallocated segment the zeros of its
  // unwritten space follow). Each returns whether the restart has a torn write to cut: bytes that were never
  // written read as zeros, so a record whose missing bytes were zeros anyway is whole, and is kept.
  const tails: [string, (file: string) => boolean][] = [
    ['garbage', (f) => {
      const g = Buffer.alloc(61, 0xa7);
      g.writeUInt32LE(4096, 0);
      writeAfterRecords(f, g);
      return true;
    }],
    ['a partial copy of the last record', (f) => {
      const rec = lastRecord(f);
      const kept = Math.max(9, Math.floor(rec.length / 2));
      writeAfterRecords(f, rec.subarray(0, kept));
      return !isZeroFrom(rec, kept);
    }],
    ['a whole record but its last bytes', (f) => {
      const rec = lastRecord(f);
      writeAfterRecords(f, rec.subarray(0, rec.length - 3));
      return !isZeroFrom(rec, rec.length - 3);
    }],
    ['a segment of the growing kind, extended by zeros but not written', (f) => {
      const recs = records(f);
      truncateSync(f, recs[recs.length - 1].off + recs[recs.length - 1].size);
      appendFileSync(f, Buffer.alloc(4096));
      return false;
    }],
  ];
  for (let round = 0; round < tails.length; round++) {
    const e = await start(dir, ports);
    await verify(e, acked);
    for (const [k, a] of await loadAndKill(e, `r${round}-k`, 200, 1500)) acked.set(k, a);
    const segs = segments(dir);
    const last = path.join(walDir(dir), segs[segs.length - 1]);
    const before = readFileSync(last);
    const torn = tails[round][1](last);
    expect(readFileSync(last).equals(before)).toBe(false);
    const again = await start(dir, ports);
    try {
      await verify(again, acked);
      if (torn) expect(again.output()).toMatch(/torn write/);
      else expect(again.output()).not.toMatch(/torn write/);
    } finally {
      await kill(again);
    }
  }
  const e = await start(dir, ports);
  await verify(e, acked);
  await kill(e);
});

test('a corrupted record in the middle of a WAL segment makes the server refuse to start, without touching the WAL', async () => {
  const dir = path.join(root, 'corrupt');
  const ports = await freePorts();
  const e = await start(dir, ports);
  const acked = await loadAndKill(e, 'k', 300, 1500);
  expect(acked.size).toBeGreaterThan(0);
  const file = path.join(walDir(dir), segments(dir)[0]);
  const entries = records(file).filter((r) => r.type === RecordType.Entry);
  expect(entries.length).toBeGreaterThan(100);
  // Flip one byte in the payload of an early entry, far from the tail.
  const victim = entries[Math.floor(entries.length / 4)];
  const buf = readFileSync(file);
  buf[victim.off + victim.size - 2] ^= 0x5a;
  writeFileSync(file, buf);
  const sizeBefore = buf.length;
  let err: Error | undefined;
  try {
    const bad = await start(dir, ports);
    await kill(bad);
  } catch (x) {
    err = x as Error;
  }
  expect(err?.message).toMatch(/exited with [1-9]\d* before becoming healthy/);
  expect(err?.message).toMatch(/corrupt at offset/);
  // Refusing must not "repair" the WAL by cutting it at the corruption.
  expect(statSync(file).size).toBe(sizeBefore);
  expect(readFileSync(file).equals(buf)).toBe(true);
});
