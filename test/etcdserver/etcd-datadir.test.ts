/**
 * Our server started on etcd 3.4's own data dirs, made by Debian's tools, side by side with what Debian's etcd
 * reports on the same data:
 * (a) a member of Debian's etcd that served writes (puts, overwrites, a delete, a txn, a lease with a key, a
 *     compaction, a user and a role), stopped cleanly with SIGTERM: without a snap file (the whole log in the WAL)
 *     and with one (--snapshot-count small: entries after the snapshot); and one killed while its backend had not
 *     committed the last writes (committed entries after the backend's consistent index, which must be applied);
 *     each with v2 keys written too (in the snapshot's v2 store and in the log);
 * (b) three data dirs from Debian's `etcdctl snapshot restore` (the TestIssue6361 case, for three members).
 * Our server converts each once (etcd's files kept in member.etcd-3.4/) and serves what Debian's etcd serves when
 * restarted on a copy of the same dir: keys, revisions, member and cluster IDs, leases, users and roles. A corrupt
 * etcd WAL is refused with etcd's files left as they were; a conversion interrupted before it was whole is
 * discarded and done again; one interrupted while being swapped in is finished.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertEntry } from '../../server/etcdserver/etcd-datadir';
import { RunningEtcd, freePort, spawnOurEtcd, spawnRealEtcd } from '../support/real-etcd';

jest.setTimeout(300_000);

const DEBIAN = '/usr/bin/etcdctl';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    // A command that reads no input may exit before it is written: that is not an error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

async function ctl(ep: string, args: string[], input = ''): Promise<string> {
  const r = await run(DEBIAN, [`--endpoints=${ep}`, '--command-timeout=20s', ...args], input);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

let dir: string;
const procs: RunningEtcd[] = [];
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-datadir-'));
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Member {
  name: string;
  dataDir: string;
  client: string;
  peer: string;
}

async function members(names: string[], dataDir: (name: string) => string): Promise<Member[]> {
  const out: Member[] = [];
  for (const name of names) out.push({ name, dataDir: dataDir(name), client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  return out;
}

function args(m: Member, all: Member[], token: string, extra: string[] = []): string[] {
  return [
    '--name', m.name, '--data-dir', m.dataDir,
    '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
    '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
    '--initial-cluster', all.map((x) => `${x.name}=${x.peer}`).join(','), '--initial-cluster-token', token,
    ...extra,
  ];
}

async function start(which: 'debian' | 'ours', ms: Member[], token: string, extra: string[] = []): Promise<RunningEtcd[]> {
  const spawn = which === 'debian' ? spawnRealEtcd : spawnOurEtcd;
  const ps = await Promise.all(ms.map((m) => spawn(args(m, ms, token, extra), { clientURL: m.client, peerURL: m.peer, dataDir: m.dataDir })));
  procs.push(...ps);
  return ps;
}

/** SIGTERM, as a clean stop: the process must exit by itself. */
async function stopAll(ps: RunningEtcd[]): Promise<void> {
  await Promise.all(ps.map((p) => p.signal('SIGTERM')));
}

/** JSON with etcd's 64-bit IDs kept exact (as strings). */
const parse = (text: string): unknown => JSON.parse(text.replace(/:(\d{16,})/g, ':"$1"'));

/** What a client relies on, as Debian's etcdctl shows it (the raft term left out: a restart moves it). */
async function observe(ep: string): Promise<Record<string, unknown>> {
  const get = parse(await ctl(ep, ['get', '', '--prefix', '-w', 'json'])) as { header: Record<string, unknown>; kvs?: unknown[] };
  const status = parse(await ctl(ep.split(',')[0], ['endpoint', 'status', '-w', 'json'])) as { Status: { header: Record<string, unknown> } }[];
  const list = parse(await ctl(ep, ['member', 'list', '-w', 'json'])) as { header: Record<string, unknown>; members: Record<string, unknown>[] };
  const leases = (await ctl(ep, ['lease', 'list'])).split('\n').slice(1).filter(Boolean).sort();
  const old = (parse(await ctl(ep, ['get', '', '--prefix', '--rev', '3', '-w', 'json'])) as { kvs?: unknown[] }).kvs;
  const compacted = await run(DEBIAN, [`--endpoints=${ep}`, 'get', 'k', '--rev', '1']);
  return {
    revision: get.header.revision,
    clusterId: get.header.cluster_id,
    memberId: status[0].Status.header.member_id,
    kvs: get.kvs ?? [],
    old,
    compacted: compacted.stderr.trim().split('\n').pop(),
    members: list.members.map((m) => ({ ID: m.ID, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs })).sort((a, b) => String(a.name).localeCompare(String(b.name))),
    leases,
    users: await ctl(ep, ['user', 'list']),
    roles: await ctl(ep, ['role', 'list']),
  };
}

/** A v2 keys API write (form-encoded, as etcdctl v2 sends it). */
async function v2(ep: string, method: string, key: string, form: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${ep}/v2/keys${key}`, { method, body: method === 'DELETE' ? undefined : new URLSearchParams(form) });
  if (res.status >= 300) throw new Error(`v2 ${method} ${key}: ${res.status} ${await res.text()}`);
}

/** The v2 keyspace, with every node's indexes. */
async function v2Keys(ep: string): Promise<unknown> {
  return ((await (await fetch(`${ep}/v2/keys/?recursive=true&sorted=true`)).json()) as { node: unknown }).node;
}

/** Writes of every kind a v3 member logs (and v2 keys writes when asked). */
async function load(ep: string, withV2 = false): Promise<void> {
  if (withV2) {
    await v2(ep, 'PUT', '/dir/a', { value: '1' });
    await v2(ep, 'PUT', '/empty', { dir: 'true' });
    await v2(ep, 'POST', '/queue', { value: 'first' });
  }
  for (let i = 0; i < 12; i++) await ctl(ep, ['put', `k${i % 5}`, `v${i}`]);
  await ctl(ep, ['put', 'k', 'first']);
  await ctl(ep, ['put', 'k', 'second']);
  await ctl(ep, ['del', 'k3']);
  // A txn of several writes: one revision, several sub-revisions.
  await ctl(ep, ['txn'], 'value("k") = "second"\n\nput t1 a\nput t2 b\ndel k1\n\nput t3 c\n\n');
  const lease = /lease ([0-9a-f]+) granted/.exec(await ctl(ep, ['lease', 'grant', '600']))![1];
  await ctl(ep, ['put', 'leased', 'x', '--lease', lease]);
  await ctl(ep, ['compact', '2']);
  await ctl(ep, ['user', 'add', 'alice:pw']);
  await ctl(ep, ['role', 'add', 'readers']);
  await ctl(ep, ['role', 'grant-permission', 'readers', 'read', 'k', 'l']);
  await ctl(ep, ['user', 'grant-role', 'alice', 'readers']);
  for (let i = 0; i < 5; i++) await ctl(ep, ['put', `late${i}`, `w${i}`]);
  if (withV2) {
    await v2(ep, 'PUT', '/dir/a', { value: '2', prevValue: '1' });
    await v2(ep, 'PUT', '/dir/b', { value: 'x' });
    await v2(ep, 'DELETE', '/dir/b');
  }
}

const ourLog = (p: RunningEtcd) => p.output();

describe('a member of Debian etcd that served writes', () => {
  for (const [label, extra, sig] of [
    ['stopped with SIGTERM, the whole log in the WAL', [], 'SIGTERM'],
    ['stopped with SIGTERM, a snap file and entries after it', ['--snapshot-count', '10'], 'SIGTERM'],
    // The backend commits only every hour: the last writes are in the WAL, after the backend's consistent index.
    ['killed with SIGKILL, entries after the backend\'s consistent index', ['--snapshot-count', '20', '--backend-batch-interval', '1h'], 'SIGKILL'],
  ] as [string, string[], NodeJS.Signals][]) {
    test(`${label}; with v2 keys`, async () => {
      const ms = await members(['m1'], (n) => path.join(dir, `${label.length}-${n}`));
      const v2on = ['--enable-v2=true'];
      const [etcd] = await start('debian', ms, 'tok', [...v2on, ...extra]);
      await load(ms[0].client, true);
      await etcd.signal(sig);
      const member = path.join(ms[0].dataDir, 'member');
      const files = (d: string) => readdirSync(d, { recursive: true }).map(String).sort();
      const before = files(member);
      if (extra.length) expect(before.some((f) => f.endsWith('.snap'))).toBe(true);
      // The reference: Debian's etcd restarted on a copy of the data dir.
      const copy = { ...ms[0], dataDir: `${ms[0].dataDir}.debian` };
      cpSync(ms[0].dataDir, copy.dataDir, { recursive: true });
      const [theirs] = await start('debian', [copy], 'tok', v2on);
      const want = { ...(await observe(ms[0].client)), v2: await v2Keys(ms[0].client) };
      await stopAll([theirs]);

      const [ours] = await start('ours', ms, 'tok', v2on);
      expect(ourLog(ours)).toMatch(/converted etcd 3\.4 data dir/);
      if (sig === 'SIGKILL') {
        const ci = Number(/consistent-index=(\d+)/.exec(ourLog(ours))![1]);
        const commit = Number(/"commit":(\d+)/.exec(ourLog(ours))![1]);
        expect(commit).toBeGreaterThan(ci);
      }
      expect({ ...(await observe(ms[0].client)), v2: await v2Keys(ms[0].client) }).toEqual(want);
      // etcd's files are kept as they were.
      expect(files(path.join(ms[0].dataDir, 'member.etcd-3.4'))).toEqual(before);
      // It goes on serving writes, and a restart starts on our layout without converting again.
      await ctl(ms[0].client, ['put', 'after', 'conversion']);
      await stopAll([ours]);
      const [again] = await start('ours', ms, 'tok');
      expect(ourLog(again)).not.toMatch(/convert/);
      expect(await ctl(ms[0].client, ['get', 'after', '--print-value-only'])).toBe('conversion\n');
      await stopAll([again]);
    });
  }
});

test('three data dirs from Debian etcdctl snapshot restore serve what Debian etcd serves on them', async () => {
  const [src] = await members(['src'], (n) => path.join(dir, n));
  const [etcd] = await start('debian', [src], 'src-token');
  await load(src.client);
  const snap = path.join(dir, 'snap.db');
  await ctl(src.client, ['snapshot', 'save', snap]);
  await stopAll([etcd]);

  const ms = await members(['r1', 'r2', 'r3'], (n) => path.join(dir, n));
  const cluster = ms.map((m) => `${m.name}=${m.peer}`).join(',');
  for (const m of ms) {
    const r = await run(DEBIAN, ['snapshot', 'restore', snap, '--name', m.name, '--initial-cluster', cluster, '--initial-cluster-token', 'restored', '--initial-advertise-peer-urls', m.peer, '--data-dir', m.dataDir]);
    expect(r.code).toBe(0);
    cpSync(m.dataDir, `${m.dataDir}.debian`, { recursive: true });
  }
  const eps = ms.map((m) => m.client).join(',');
  // The reference: Debian's etcd on copies of the restored dirs.
  const copies = ms.map((m) => ({ ...m, dataDir: `${m.dataDir}.debian` }));
  const theirs = await start('debian', copies, 'restored');
  const want = await Promise.all(ms.map((m) => observe(m.client)));
  await stopAll(theirs);

  const ours = await start('ours', ms, 'restored');
  for (const p of ours) expect(ourLog(p)).toMatch(/converted etcd 3\.4 data dir/);
  expect(await Promise.all(ms.map((m) => observe(m.client)))).toEqual(want);
  // A write through one member reaches the others: they form one cluster.
  await ctl(ms[0].client, ['put', 'together', 'yes']);
  expect(await ctl(eps, ['get', 'together', '--print-value-only'])).toBe('yes\n');
  await stopAll(ours);
});

describe('conversions that fail or are interrupted', () => {
  /** A fresh restore made by Debian's etcdctl from a snapshot of a member with a few keys. */
  let snap: string;
  beforeAll(async () => {
    const [src] = await members(['s'], (n) => path.join(dir, `fail-${n}`));
    const [etcd] = await start('debian', [src], 'tok');
    await ctl(src.client, ['put', 'a', '1']);
    snap = path.join(dir, 'fail.db');
    await ctl(src.client, ['snapshot', 'save', snap]);
    await stopAll([etcd]);
  });

  async function restored(name: string): Promise<Member[]> {
    const ms = await members([name], (n) => path.join(dir, n));
    const r = await run(DEBIAN, ['snapshot', 'restore', snap, '--name', name, '--initial-cluster', `${name}=${ms[0].peer}`, '--initial-advertise-peer-urls', ms[0].peer, '--data-dir', ms[0].dataDir]);
    expect(r.code).toBe(0);
    return ms;
  }

  test('a corrupt etcd WAL is refused, naming the file, and etcd files are left as they were', async () => {
    const ms = await restored('corrupt');
    const walDir = path.join(ms[0].dataDir, 'member', 'wal');
    const seg = path.join(walDir, readdirSync(walDir).find((n) => n.endsWith('.wal'))!);
    const buf = readFileSync(seg);
    // A byte of the second record's data (the metadata; the first is the CRC record, 16 bytes): a CRC mismatch.
    const len = Number(buf.readBigUInt64LE(16) & 0xffffffffffffffn);
    buf[24 + len - 2] ^= 0xff;
    writeFileSync(seg, buf);
    const m = ms[0];
    const p = await spawnOurEtcd(args(m, ms, 'etcd-cluster'), { clientURL: m.client, peerURL: m.peer, dataDir: m.dataDir }, { wait: false });
    procs.push(p);
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toMatch(/cannot convert etcd 3\.4 data dir .*0000000000000000-0000000000000000\.wal is corrupt.*etcd's files are left as they were/);
    expect(readdirSync(m.dataDir).sort()).toEqual(['member']);
    expect(readFileSync(seg).equals(buf)).toBe(true);
  });

  test('a conversion interrupted before it was whole is discarded and done again', async () => {
    const ms = await restored('interrupted');
    const m = ms[0];
    // What a crash in the middle of converting leaves: a partial member.converting/, not marked done.
    mkdirSync(path.join(m.dataDir, 'member.converting', 'v3'), { recursive: true });
    writeFileSync(path.join(m.dataDir, 'member.converting', 'v3', 'data.mdb'), 'partial');
    const [p] = await start('ours', ms, 'etcd-cluster');
    expect(p.output()).toMatch(/discarding a partial conversion of etcd 3\.4 data dir/);
    expect(await ctl(m.client, ['get', 'a', '--print-value-only'])).toBe('1\n');
    expect(existsSync(path.join(m.dataDir, 'member.converting'))).toBe(false);
    await stopAll([p]);
  });
  test('a conversion interrupted while swapping it in is finished', async () => {
    const ms = await restored('swapping');
    const m = ms[0];
    const [first] = await start('ours', ms, 'etcd-cluster');
    await stopAll([first]);
    // What a crash between moving etcd's member/ aside and moving the finished conversion in leaves.
    renameSync(path.join(m.dataDir, 'member'), path.join(m.dataDir, 'member.converting'));
    writeFileSync(path.join(m.dataDir, 'member.converting', 'CONVERTED'), '');
    const [p] = await start('ours', ms, 'etcd-cluster');
    expect(p.output()).toMatch(/finished converting etcd 3\.4 data dir/);
    expect(await ctl(m.client, ['get', 'a', '--print-value-only'])).toBe('1\n');
    expect(readdirSync(m.dataDir).sort()).toEqual(['member', 'member.etcd-3.4']);
    await stopAll([p]);
  });
});

test('a log entry of a kind this server cannot carry is refused by name', () => {
  // raftpb.Entry {Type: EntryConfChangeV2, Term: 2, Index: 7, Data: ...}
  expect(() => convertEntry({ term: 2, index: 7, type: 2, data: Buffer.from([1]) }, new Map())).toThrow(/entry 7: a raft entry of type EntryConfChangeV2 cannot be carried over/);
  // A v2 request under etcd's v2 auth (/2): no form for it here.
  const v2 = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x03]), Buffer.from('PUT'), Buffer.from([0x1a, 0x0c]), Buffer.from('/2/users/bob')]);
  expect(() => convertEntry({ term: 2, index: 9, type: 0, data: v2 }, new Map())).toThrow(/entry 9: etcd's v2 request PUT \/2\/users\/bob cannot be carried over/);
});
