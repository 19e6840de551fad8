/**
 * Snapshots and restore: `etcdctl snapshot save` (Debian's, which checks the SHA-256 trailer, and ours) of a member
 * of ours, `snapshot status`, and `snapshot restore` of that file into the data dirs of a new three-member cluster
 * (new cluster and member IDs, as a bootstrap with that token computes them), which serves the same keys at the same
 * revisions, history included, and takes writes. The snapshot files of the first releases (LMDB) still restore;
 * damaged files are refused with what is wrong. A snapshot saved under writes is one point in time. (Between Debian's
 * etcd and ours: etcd-snapshot-side-by-side.test.ts.)
 */
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KVClient, PutRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { decodeKeyValue } from '../../server/etcdserver/etcd-backend';
import { Cluster } from '../../server/membership/cluster';
import { BoltReader } from '../../server/mvcc/bbolt/reader';
import { MvccStore } from '../../server/mvcc/store';
import { eventually } from '../support/cluster';
import { OUR_ETCD, RunningEtcd, freePort, spawnOurEtcd, startOurEtcd } from '../support/real-etcd';

jest.setTimeout(180_000);

const DEBIAN = '/usr/bin/etcdctl';
const OURS = path.join(path.dirname(OUR_ETCD), 'etcdctl', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(bin: 'debian' | 'ours', args: string[], cwd?: string): Promise<Run> {
  const [cmd, pre] = bin === 'debian' ? [DEBIAN, []] : [process.execPath, [OURS]];
  return new Promise((resolve) => {
    execFile(cmd, [...pre, '--command-timeout=15s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, cwd, timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function ok(bin: 'debian' | 'ours', args: string[]): Promise<string> {
  const r = await etcdctl(bin, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Keys, values and revisions, as a range answers them (the IDs of the header left out). */
async function content(url: string): Promise<unknown> {
  const r = JSON.parse(await ok('debian', [`--endpoints=${url}`, 'get', '', '--prefix', '-w', 'json'])) as { header: { revision: number }; kvs?: unknown[] };
  return { revision: r.header.revision, kvs: r.kvs ?? [] };
}

let dir: string;
const procs: RunningEtcd[] = [];
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'restore-'));
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

test('save, status and restore into a new three-member cluster that serves the same data', async () => {
  const src = await startOurEtcd(path.join(dir, 'source'));
  procs.push(src);
  const ep = `--endpoints=${src.clientURL}`;
  for (let i = 0; i < 20; i++) await ok('debian', [ep, 'put', `k${i}`, `v${i}`]);
  await ok('debian', [ep, 'put', 'k3', 'again']);
  await ok('debian', [ep, 'del', 'k5']);
  await ok('debian', [ep, 'compaction', '4']);
  const before = await content(src.clientURL);

  // Debian's etcdctl saves it (it checks that the file ends in a SHA-256), and so does ours: both whole and verified.
  const debianFile = path.join(dir, 'debian.db');
  const oursFile = path.join(dir, 'ours.db');
  expect(await ok('debian', [ep, 'snapshot', 'save', debianFile])).toBe(`Snapshot saved at ${debianFile}\n`);
  expect(await ok('ours', [ep, 'snapshot', 'save', oursFile])).toBe(`Snapshot saved at ${oursFile}\n`);
  for (const f of [debianFile, oursFile]) {
    const data = readFileSync(f);
    expect(data.length % 512).toBe(32);
    expect(createHash('sha256').update(data.subarray(0, data.length - 32)).digest()).toEqual(data.subarray(data.length - 32));
  }

  // snapshot status: the same for both files (the same data), the revision of the last write; Debian's etcdctl reads
  // the file (etcd's backend, a bbolt file) and says the same.
  const status = JSON.parse(await ok('ours', ['snapshot', 'status', oursFile, '-w', 'json'])) as { hash: number; revision: number; totalKey: number; totalSize: number };
  expect(JSON.parse(await ok('ours', ['snapshot', 'status', debianFile, '-w', 'json']))).toEqual(status);
  expect(JSON.parse(await ok('debian', ['snapshot', 'status', oursFile, '-w', 'json']))).toEqual(status);
  expect(status).toEqual({ hash: expect.any(Number), revision: 23, totalKey: expect.any(Number), totalSize: statSync(oursFile).size - 32 });
  expect(await ok('ours', ['snapshot', 'status', oursFile])).toBe(`${status.hash.toString(16)}, 23, ${status.totalKey}, ${(await ok('ours', ['snapshot', 'status', oursFile, '-w', 'table'])).split('\n')[3].split('|')[4].trim()}\n`);

  // Restore into three data dirs of a new cluster.
  const names = ['r1', 'r2', 'r3'];
  const ports = await Promise.all(names.map(async () => ({ client: await freePort(), peer: await freePort() })));
  const peer = (i: number) => `http://127.0.0.1:${ports[i].peer}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  for (const [i, n] of names.entries()) {
    const r = await etcdctl('ours', ['snapshot', 'restore', oursFile, '--name', n, '--data-dir', path.join(dir, n), '--initial-cluster', initial, '--initial-cluster-token', 'restored', '--initial-advertise-peer-urls', peer(i)]);
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(r.stderr.split('\n').filter((l) => l).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['restoring snapshot', 'added member', 'added member', 'added member', 'restored snapshot']);
  }
  const members = await Promise.all(names.map((n, i) => {
    const clientURL = `http://127.0.0.1:${ports[i].client}`;
    return spawnOurEtcd([
      '--name', n, '--data-dir', path.join(dir, n), '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i), '--initial-cluster', initial, '--initial-cluster-token', 'restored',
      '--heartbeat-interval', '50', '--election-timeout', '500',
    ], { clientURL, peerURL: peer(i), dataDir: path.join(dir, n) });
  }));
  procs.push(...members);
  // The IDs a bootstrap of these members with that token computes, not the source's.
  const want = Cluster.fromInitialCluster(names.map((n, i) => ({ name: n, peerURLs: [peer(i)] })), 'restored');
  const list = JSON.parse((await ok('debian', [`--endpoints=${members[0].clientURL}`, 'member', 'list', '-w', 'json'])).replace(/":(\d{16,})/g, '":"$1"')) as { header: { cluster_id: string }; members: { ID: string; name: string }[] };
  expect(BigInt(list.header.cluster_id).toString(16)).toBe(want.id);
  expect(list.members.map((m) => [BigInt(m.ID).toString(16), m.name]).sort()).toEqual(want.list().map((m) => [m.id, m.name]).sort());
  // Every member: the same keys at the same revisions, history (since the compaction) included.
  for (const m of members) {
    await eventually(`${m.clientURL} to serve the restored data`, async () => (JSON.stringify(await content(m.clientURL)) === JSON.stringify(before) ? true : undefined));
    expect(await ok('debian', [`--endpoints=${m.clientURL}`, 'get', 'k3', '--rev', '5', '--print-value-only'])).toBe('v3\n');
    expect((await etcdctl('debian', [`--endpoints=${m.clientURL}`, 'get', 'k3', '--rev', '3'])).stderr).toContain('required revision has been compacted');
  }
  expect(await ok('debian', [`--endpoints=${members[1].clientURL}`, 'put', 'after', 'restore'])).toBe('OK\n');
  for (const m of members) {
    await eventually(`${m.clientURL} to apply the new write`, async () => ((await ok('debian', [`--endpoints=${m.clientURL}`, 'get', 'after', '--consistency=s', '--print-value-only'])) === 'restore\n' ? true : undefined));
  }
  const hashes = JSON.parse(await ok('debian', [`--endpoints=${members.map((m) => m.clientURL).join(',')}`, 'endpoint', 'hashkv', '-w', 'json'])) as { HashKV: { hash: number } }[];
  expect(new Set(hashes.map((h) => h.HashKV.hash)).size).toBe(1);
});

test('restore refuses an existing data dir, a snapshot whose digest does not match, one without a digest unless told', async () => {
  const snap = path.join(dir, 'ours.db');
  const target = path.join(dir, 'refused');
  const exists = await etcdctl('ours', ['snapshot', 'restore', snap, '--data-dir', path.join(dir, 'r1')]);
  expect([exists.code, exists.stderr.split('\n').slice(-2)[0]]).toEqual([1, `Error: data-dir "${path.join(dir, 'r1')}" exists`]);
  const bad = path.join(dir, 'bad.db');
  const data = readFileSync(snap);
  data[100] ^= 0xff;
  writeFileSync(bad, data);
  const mismatch = await etcdctl('ours', ['snapshot', 'restore', bad, '--data-dir', target]);
  expect([mismatch.code, mismatch.stderr]).toEqual([1, expect.stringMatching(/Error: expected sha256 \[(\d+ ){31}\d+\], got \[(\d+ ){31}\d+\]\n$/)]);
  expect(existsSync(target)).toBe(false);
  // A store's file copied from a data dir has no digest: refused, unless --skip-hash-check.
  const raw = path.join(dir, 'raw.db');
  copyFileSync(path.join(dir, 'r1', 'member', 'v3', 'data.mdb'), raw);
  const noHash = await etcdctl('ours', ['snapshot', 'restore', raw, '--data-dir', target]);
  expect(noHash.stderr).toContain('Error: snapshot missing hash but --skip-hash-check=false');
  expect((await etcdctl('ours', ['snapshot', 'restore', raw, '--data-dir', target, '--skip-hash-check'])).code).toBe(0);
  expect(existsSync(path.join(target, 'member', 'v3', 'data.mdb'))).toBe(true);
});

test('a snapshot file of the first releases (the LMDB file of the v3 store, and its digest) still restores and gives its status', async () => {
  const store = MvccStore.open(path.join(dir, 'lmdb-source'));
  let index = 0;
  for (let i = 0; i < 10; i++) {
    const t = store.write(++index);
    t.put(Buffer.from(`old${i % 4}`), Buffer.from(`value${i}`), 0n);
    t.end();
  }
  const lmdb = path.join(dir, 'lmdb.db');
  await store.snapshot(lmdb);
  await store.close();
  const data = readFileSync(lmdb);
  writeFileSync(lmdb, Buffer.concat([data, createHash('sha256').update(data).digest()]));
  const status = JSON.parse(await ok('ours', ['snapshot', 'status', lmdb, '-w', 'json'])) as { revision: number; totalSize: number };
  expect([status.revision, status.totalSize]).toEqual([11, data.length]);
  // Debian's etcdctl reads bbolt only.
  expect(await etcdctl('debian', ['snapshot', 'status', lmdb])).toEqual({ code: 1, stdout: '', stderr: 'Error: invalid database\n' });
  const [client, peer] = [await freePort(), await freePort()];
  const peerURL = `http://127.0.0.1:${peer}`;
  const clientURL = `http://127.0.0.1:${client}`;
  const target = path.join(dir, 'from-lmdb');
  await ok('ours', ['snapshot', 'restore', lmdb, '--name', 'l1', '--data-dir', target, '--initial-cluster', `l1=${peerURL}`, '--initial-advertise-peer-urls', peerURL]);
  const m = await spawnOurEtcd(['--name', 'l1', '--data-dir', target, '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL, '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `l1=${peerURL}`], { clientURL, peerURL, dataDir: target });
  procs.push(m);
  const got = (await content(clientURL)) as { revision: number; kvs: { key: string; mod_revision: number }[] };
  expect([got.revision, got.kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString(), kv.mod_revision])]).toEqual([11, [['old0', 10], ['old1', 11], ['old2', 8], ['old3', 9]]]);
});

test('a damaged bbolt snapshot: restore and status say what is wrong and where, and leave no data dir', async () => {
  const good = readFileSync(path.join(dir, 'ours.db'));
  const db = good.subarray(0, good.length - 32);
  const withDigest = (b: Buffer) => Buffer.concat([b, createHash('sha256').update(b).digest()]);
  // A leaf page whose type is no page type (its digest made to match, so only the page is wrong).
  const bad = Buffer.from(db);
  const leaf = [...Array(bad.length / 4096).keys()].find((p) => p >= 2 && bad.readUInt16LE(p * 4096 + 8) === 0x02)!;
  bad.writeUInt16LE(0x20, leaf * 4096 + 8);
  const badFile = path.join(dir, 'bad-page.db');
  writeFileSync(badFile, withDigest(bad));
  const target = path.join(dir, 'not-restored');
  const restore = await etcdctl('ours', ['snapshot', 'restore', badFile, '--data-dir', target]);
  expect(restore.code).toBe(1);
  expect(restore.stderr).toMatch(new RegExp(`Error: .*page ${leaf}: invalid type: unknown<20>`));
  expect(existsSync(target)).toBe(false);
  const status = await etcdctl('ours', ['snapshot', 'status', badFile]);
  expect([status.code, status.stderr]).toEqual([1, `Error: snapshot file integrity check failed. 1 errors found.\npage ${leaf}: invalid type: unknown<20>\n`]);
  // The same page with the original digest (the import, checked at the same time, stops at the page first): etcd's
  // refusal of the digest, not the page's error; and a value's byte changed (the import takes it): refused too.
  const pageAndDigest = path.join(dir, 'bad-page-digest.db');
  writeFileSync(pageAndDigest, Buffer.concat([bad, good.subarray(good.length - 32)]));
  const value = Buffer.from(good);
  value[leaf * 4096 + 4000] ^= 0xff;
  const valueFile = path.join(dir, 'bad-value.db');
  writeFileSync(valueFile, value);
  for (const f of [pageAndDigest, valueFile]) {
    const r = await etcdctl('ours', ['snapshot', 'restore', f, '--data-dir', target]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/\nError: expected sha256 \[(\d+ ){31}\d+\], got \[(\d+ ){31}\d+\]\n$/)]);
    expect(existsSync(target)).toBe(false);
  }
  // Cut short: its digest is gone; without the check, the file is too short for its pages.
  const cut = path.join(dir, 'cut.db');
  writeFileSync(cut, db.subarray(0, db.length - 4096 * 2 + 100));
  expect((await etcdctl('ours', ['snapshot', 'restore', cut, '--data-dir', target])).stderr).toContain('Error: snapshot missing hash but --skip-hash-check=false');
  const skipped = await etcdctl('ours', ['snapshot', 'restore', cut, '--data-dir', target, '--skip-hash-check']);
  expect([skipped.code, skipped.stderr]).toEqual([1, expect.stringMatching(/Error: file truncated: the database takes \d+ pages of 4096 bytes/)]);
  expect(existsSync(target)).toBe(false);
});

test('a snapshot saved while writes go on is one point in time: every write up to its revision, none after; the member serves meanwhile', async () => {
  const src = await startOurEtcd(path.join(dir, 'busy'));
  procs.push(src);
  const ep = `--endpoints=${src.clientURL}`;
  const kv = new KVClient(new URL(src.clientURL).host, grpc.credentials.createInsecure());
  try {
    const put = (key: string, value: Buffer) =>
      new Promise<number>((resolve, reject) => kv.put(PutRequest.fromPartial({ key: Buffer.from(key), value }), (err, r) => (err ? reject(err) : resolve(Number(r!.header!.revision)))));
    // 64 MiB of values bigger than a page: a snapshot of many runs of pages, made over many turns of the event loop.
    const big = Buffer.alloc(64 * 1024, 'b');
    for (let i = 0; i < 1024; i += 16) await Promise.all(Array.from({ length: 16 }, (_, j) => put(`big${String(i + j).padStart(4, '0')}`, big)));

    // One client writes fresh keys all along, from before the save until after it.
    const acked: { key: string; rev: number; at: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const key = `w${String(i).padStart(6, '0')}`;
        const rev = await put(key, Buffer.from(`v${i}`));
        acked.push({ key, rev, at: performance.now() });
      }
    })();
    await eventually('writes before the save', async () => (acked.length >= 20 ? true : undefined));
    const file = path.join(dir, 'busy.db');
    expect(await ok('debian', [ep, 'snapshot', 'save', file])).toBe(`Snapshot saved at ${file}\n`);
    const saved = performance.now();
    await eventually('writes after the save', async () => (acked.some((a) => a.at > saved) ? true : undefined));
    writing = false;
    await writer;

    const status = JSON.parse(await ok('debian', ['snapshot', 'status', file, '-w', 'json'])) as { revision: number; totalSize: number };
    expect(JSON.parse(await ok('ours', ['snapshot', 'status', file, '-w', 'json']))).toEqual(status);
    const rev = status.revision;
    // The key bucket: every revision from the first put's to the snapshot's, one version each (one put each).
    const data = readFileSync(file);
    const db = path.join(dir, 'busy-db.db');
    writeFileSync(db, data.subarray(0, data.length - 32));
    const r = BoltReader.open(db);
    const inFile = new Map<string, number>();
    const revs: number[] = [];
    try {
      for (const e of r.bucket('key')!.entries()) {
        revs.push(Number(e.key.readBigUInt64BE(0)));
        const v = decodeKeyValue(e.value, 'test');
        inFile.set(v.key.toString(), v.mod);
      }
    } finally {
      r.close();
    }
    expect(revs).toEqual(Array.from({ length: rev - 1 }, (_, i) => i + 2));
    // Every write acknowledged at or before that revision is in it, at its revision; none after it.
    expect(acked.some((a) => a.rev <= rev)).toBe(true);
    expect(acked.filter((a) => inFile.get(a.key) !== (a.rev <= rev ? a.rev : undefined))).toEqual([]);
    // Writes after the snapshot's revision were acknowledged before the save was over: served while it streamed.
    expect(acked.filter((a) => a.rev > rev && a.at < saved).length).toBeGreaterThan(0);

    // Debian's etcdctl and ours restore it (each checks its digest and its pages).
    for (const bin of ['debian', 'ours'] as const) {
      const to = path.join(dir, `busy-restored-${bin}`);
      const restored = await etcdctl(bin, ['snapshot', 'restore', file, '--data-dir', to]);
      expect([bin, restored.code]).toEqual([bin, 0]);
    }
  } finally {
    kv.close();
  }
});
