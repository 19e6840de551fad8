/**
 * Moving a cluster's data between Debian's etcd 3.4.23 and ours with v3 snapshots, both ways, side by side:
 * (a) Debian's etcd with keys written over many revisions (overwrites, deletes, a txn of several writes, a value
 *     bigger than a page, a compaction), leases with keys, users and roles with auth enabled → Debian's `etcdctl
 *     snapshot save` → our `etcdctl snapshot restore` into three members of ours → every answer the same as
 *     Debian's etcd gives: the keys with their revisions and versions (`get -w json`), every past revision since the
 *     compaction, the compacted ones refused, the leases and their keys, users, roles and their permissions;
 * (b) the same data in a three-member cluster of ours → Debian's `etcdctl snapshot save` against it → Debian's
 *     `snapshot status` reads it (as ours does) → Debian's `snapshot restore` into three members of Debian's etcd,
 *     which serve the same answers.
 */
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuthClient, AuthenticateRequest, KVClient, RangeRequest, RangeResponse, RequestOp, TxnRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { eventually } from '../support/cluster';
import { OUR_ETCD, RunningEtcd, explainFailure, freePort, spawnOurEtcd, spawnRealEtcd } from '../support/real-etcd';

jest.setTimeout(300_000);

const DEBIAN = '/usr/bin/etcdctl';
const OURS = path.join(path.dirname(OUR_ETCD), 'etcdctl', 'main.js');
const ROOT = ['--user', 'root:rootpw'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(bin: 'debian' | 'ours', args: string[]): Promise<Run> {
  const [cmd, pre] = bin === 'debian' ? [DEBIAN, []] : [process.execPath, [OURS]];
  return new Promise((resolve) => {
    execFile(cmd, [...pre, '--command-timeout=20s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function ok(bin: 'debian' | 'ours', args: string[]): Promise<string> {
  const r = await etcdctl(bin, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

let dir: string;
const procs: RunningEtcd[] = [];
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-snapshot-'));
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** A unary gRPC call as a promise. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function call<Res>(client: grpc.Client, m: (...args: any[]) => grpc.ClientUnaryCall, req: unknown, md = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => m.call(client, req, md, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

/** The same writes to a fresh server (or cluster) at ep: many revisions, leases, users and roles, then auth on. */
async function load(ep: string): Promise<void> {
  const e = `--endpoints=${ep}`;
  for (let i = 0; i < 30; i++) await ok('debian', [e, 'put', `k${i % 10}`, `v${i}`]);
  // A txn writing three keys and deleting one: one revision, four sub-revisions.
  const kv = new KVClient(new URL(ep.split(',')[0]).host, grpc.credentials.createInsecure());
  try {
    const op = (o: Partial<RequestOp>) => RequestOp.fromPartial(o);
    await call(kv, kv.txn, TxnRequest.fromPartial({ success: [
      op({ requestPut: { key: Buffer.from('t1'), value: Buffer.from('a') } as never }),
      op({ requestPut: { key: Buffer.from('t2'), value: Buffer.from('b') } as never }),
      op({ requestDeleteRange: { key: Buffer.from('k1') } as never }),
      op({ requestPut: { key: Buffer.from('t3'), value: Buffer.alloc(0) } as never }),
    ] }));
  } finally {
    kv.close();
  }
  await ok('debian', [e, 'del', 'k3']);
  await ok('debian', [e, 'del', 'k8', 'k9']);
  await ok('debian', [e, 'put', 'big', 'x'.repeat(10_000)]);
  await ok('debian', [e, 'compaction', '15']);
  const grant = async (ttl: number) => (await ok('debian', [e, 'lease', 'grant', String(ttl)])).split(' ')[1];
  const l1 = await grant(600);
  await ok('debian', [e, 'put', 'l1a', 'x', `--lease=${l1}`]);
  await ok('debian', [e, 'put', 'l1b', 'y', `--lease=${l1}`]);
  await ok('debian', [e, 'put', 'l2', 'z', `--lease=${await grant(900)}`]);
  await grant(300);
  for (let i = 0; i < 5; i++) await ok('debian', [e, 'put', `k${i}`, `after${i}`]);
  await ok('debian', [e, 'user', 'add', 'root:rootpw']);
  await ok('debian', [e, 'user', 'grant-role', 'root', 'root']);
  await ok('debian', [e, 'user', 'add', 'alice:alicepw']);
  await ok('debian', [e, 'role', 'add', 'reader']);
  await ok('debian', [e, 'role', 'grant-permission', 'reader', 'read', 'k0', 'k5']);
  await ok('debian', [e, 'role', 'grant-permission', '--prefix', 'reader', 'readwrite', 'l1']);
  await ok('debian', [e, 'user', 'grant-role', 'alice', 'reader']);
  await ok('debian', [e, 'auth', 'enable']);
}

/** A JSON answer of etcdctl without what is the member's own (its IDs and Raft term). */
function plain(json: string): unknown {
  // (64-bit numbers as text: a lease ID or member ID does not fit a double)
  return JSON.parse(json.replace(/":(\d{16,})/g, '":"$1"'), (k, v) => (['cluster_id', 'member_id', 'raft_term'].includes(k) ? undefined : v));
}

/** Everything a client sees of the data at ep (one member): as comparable values. */
async function observe(ep: string): Promise<Record<string, unknown>> {
  const e = `--endpoints=${ep}`;
  const o: Record<string, unknown> = {};
  const get = plain(await ok('debian', [e, ...ROOT, 'get', '', '--prefix', '-w', 'json'])) as { header: { revision: number } };
  o.get = get;
  const current = get.header.revision;
  o.keysOnly = await ok('debian', [e, ...ROOT, 'get', '', '--prefix', '--keys-only', '--limit', '5', '-w', 'json']).then(plain);
  // Every revision, read through gRPC with root's token: the history since the compaction, the compacted ones refused.
  const host = new URL(ep).host;
  const creds = grpc.credentials.createInsecure();
  const auth = new AuthClient(host, creds);
  const kv = new KVClient(host, creds);
  try {
    const { token } = await call<{ token: string }>(auth, auth.authenticate, AuthenticateRequest.fromPartial({ name: 'root', password: 'rootpw' }));
    const md = new grpc.Metadata();
    md.set('token', token);
    const history: unknown[] = [];
    for (let rev = 1; rev <= current + 1; rev++) {
      try {
        const r = await call<RangeResponse>(kv, kv.range, RangeRequest.fromPartial({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]), revision: BigInt(rev) }), md);
        history.push({ rev, kvs: r.kvs.map((x) => ({ ...x, key: `${x.key}`, value: x.value.length > 100 ? `${x.value.length} bytes` : `${x.value}`, createRevision: `${x.createRevision}`, modRevision: `${x.modRevision}`, version: `${x.version}`, lease: `${x.lease}` })), count: `${r.count}` });
      } catch (err) {
        history.push({ rev, error: (err as grpc.ServiceError).details });
      }
    }
    o.history = history;
  } finally {
    auth.close();
    kv.close();
  }
  const leases = (await ok('debian', [e, ...ROOT, 'lease', 'list'])).split('\n').slice(1).filter((l) => l).sort();
  o.leases = leases;
  // (the time left aside, and the keys sorted: etcd lists them in its Go map's random order)
  o.leaseKeys = await Promise.all(leases.map(async (id) => (await ok('debian', [e, ...ROOT, 'lease', 'timetolive', id, '--keys']))
    .replace(/remaining\(\d+s\)/, 'remaining(…)').replace(/keys\(\[(.*)\]\)/, (_, k: string) => `keys([${k.split(' ').sort().join(' ')}])`)));
  o.users = await ok('debian', [e, ...ROOT, 'user', 'list']);
  o.roles = await ok('debian', [e, ...ROOT, 'role', 'list']);
  o.alice = await ok('debian', [e, ...ROOT, 'user', 'get', 'alice', '--detail']);
  o.reader = await ok('debian', [e, ...ROOT, 'role', 'get', 'reader']);
  // The permissions at work: alice reads k0-k4, writes l1* (a delete of nothing: allowed, and changes nothing), nothing else.
  const as = async (args: string[]) => {
    const r = await etcdctl('debian', [e, '--user', 'alice:alicepw', ...args]);
    return r.code === 0 ? r.stdout : r.stderr.split('\n').filter((l) => l.startsWith('Error'))[0];
  };
  o.aliceReads = [await as(['get', 'k2', '--print-value-only']), await as(['get', 'k7']), await as(['del', 'l1none']), await as(['del', 'k0'])];
  o.noUser = (await etcdctl('debian', [e, 'get', 'k2'])).stderr.split('\n').filter((l) => l.startsWith('Error'))[0];
  return o;
}

/** Three members of one server (ours or Debian's) on data dirs a snapshot restore made (or new ones). */
async function startThree(kind: 'ours' | 'debian', names: string[], opts: { restoreFrom?: string; bin?: 'debian' | 'ours'; token: string }): Promise<RunningEtcd[]> {
  const ports = await Promise.all(names.map(async () => ({ client: await freePort(), peer: await freePort() })));
  const peer = (i: number) => `http://127.0.0.1:${ports[i].peer}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  if (opts.restoreFrom) {
    for (const [i, n] of names.entries()) {
      await ok(opts.bin!, ['snapshot', 'restore', opts.restoreFrom, '--name', n, '--data-dir', path.join(dir, n), '--initial-cluster', initial, '--initial-cluster-token', opts.token, '--initial-advertise-peer-urls', peer(i)]);
    }
  }
  const spawn = kind === 'ours' ? spawnOurEtcd : spawnRealEtcd;
  const members = await Promise.all(names.map((n, i) => {
    const clientURL = `http://127.0.0.1:${ports[i].client}`;
    return spawn([
      '--name', n, '--data-dir', path.join(dir, n), '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i), '--initial-cluster', initial, '--initial-cluster-token', opts.token,
      '--heartbeat-interval', '50', '--election-timeout', '500',
    ], { clientURL, peerURL: peer(i), dataDir: path.join(dir, n) });
  }));
  procs.push(...members);
  return members;
}

test("(a) Debian's etcd → its snapshot → our restore into three members: every answer the same", async () => {
  const [etcd] = await startThree('debian', ['e1'], { token: 'source' });
  await load(etcd.clientURL);
  const want = await observe(etcd.clientURL);
  const file = path.join(dir, 'from-etcd.db');
  await ok('debian', [`--endpoints=${etcd.clientURL}`, ...ROOT, 'snapshot', 'save', file]);
  // Our status of etcd's file is etcd's etcdctl's.
  expect(await ok('ours', ['snapshot', 'status', file, '-w', 'json'])).toBe(await ok('debian', ['snapshot', 'status', file, '-w', 'json']));

  const members = await startThree('ours', ['a1', 'a2', 'a3'], { restoreFrom: file, bin: 'ours', token: 'restored-a' });
  await explainFailure(members.map((m, i) => ({ name: `a${i + 1}`, proc: m })), async () => {
    for (const m of members) {
      await eventually(`${m.clientURL} to serve`, async () => ((await etcdctl('debian', [`--endpoints=${m.clientURL}`, ...ROOT, 'get', 'k0'])).code === 0 ? true : undefined));
      expect(await observe(m.clientURL)).toEqual(want);
    }
    // The restored cluster takes writes at the next revision, on every member.
    const rev = (want.get as { header: { revision: number } }).header.revision;
    await ok('debian', [`--endpoints=${members[2].clientURL}`, ...ROOT, 'put', 'new', 'one']);
    for (const m of members) {
      await eventually(`${m.clientURL} to apply the write`, async () => {
        const r = JSON.parse(await ok('debian', [`--endpoints=${m.clientURL}`, ...ROOT, 'get', 'new', '--consistency=s', '-w', 'json'])) as { kvs?: { mod_revision: number }[] };
        return r.kvs?.[0]?.mod_revision === rev + 1 ? true : undefined;
      });
    }
  });
});

/** What (b)'s snapshot from-ours.db holds, as a client sees it. */
let fromOursWant: Record<string, unknown> | undefined;

test("(b) our cluster → Debian's snapshot save → Debian's status and restore into Debian's etcd: the same answers", async () => {
  const ours = await startThree('ours', ['b1', 'b2', 'b3'], { token: 'source-b' });
  const eps = ours.map((m) => m.clientURL).join(',');
  await load(eps);
  const want = await observe(ours[1].clientURL);
  fromOursWant = want;
  const file = path.join(dir, 'from-ours.db');
  // etcdctl saves from one member (a follower here, as any).
  await ok('debian', [`--endpoints=${ours[1].clientURL}`, ...ROOT, 'snapshot', 'save', file]);
  const status = await ok('debian', ['snapshot', 'status', file, '-w', 'json']);
  expect(JSON.parse(status)).toEqual({ hash: expect.any(Number), revision: (want.get as { header: { revision: number } }).header.revision, totalKey: expect.any(Number), totalSize: expect.any(Number) });
  expect(await ok('ours', ['snapshot', 'status', file, '-w', 'json'])).toBe(status);

  const etcds = await startThree('debian', ['d1', 'd2', 'd3'], { restoreFrom: file, bin: 'debian', token: 'restored-b' });
  await explainFailure(etcds.map((m, i) => ({ name: `d${i + 1}`, proc: m })), async () => {
    for (const m of etcds) expect(await observe(m.clientURL)).toEqual(want);
    await ok('debian', [`--endpoints=${etcds[0].clientURL}`, ...ROOT, 'put', 'new', 'one']);
  });
});

test("our server starts on a data dir that etcd's snapshot restore made, converting it (test/etcdserver/etcd-datadir.test.ts compares it all)", async () => {
  const [client, peer] = [await freePort(), await freePort()];
  const peerURL = `http://127.0.0.1:${peer}`;
  const clientURL = `http://127.0.0.1:${client}`;
  const target = path.join(dir, 'etcd-layout');
  await ok('debian', ['snapshot', 'restore', path.join(dir, 'from-ours.db'), '--name', 'x1', '--data-dir', target, '--initial-cluster', `x1=${peerURL}`, '--initial-advertise-peer-urls', peerURL]);
  const m = await spawnOurEtcd(['--name', 'x1', '--data-dir', target, '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL, '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `x1=${peerURL}`], { clientURL, peerURL, dataDir: target });
  procs.push(m);
  expect(m.output()).toContain(`converted etcd 3.4 data dir; etcd's files are kept (data-dir=${target}, etcd-files=${target}/member.etcd-3.4`);
  expect(await observe(clientURL)).toEqual(fromOursWant);
});
