/**
 * The v3 KV service end to end, driven by Debian's etcdctl (v3) against our members: writes go through the log,
 * every member answers the same keys at the same revisions (linearizable and serializable reads, on followers
 * too), a kill -9 loses no acknowledged write, and a member that fell behind catches up by a snapshot that carries
 * the MVCC store.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';

jest.setTimeout(180_000);

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

function etcdctl(m: MemberSlot, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile('/usr/bin/etcdctl', [`--endpoints=${m.clientURL}`, '--command-timeout=15s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) p.stdin!.end(input);
  });
}

async function ok(m: MemberSlot, args: string[], input?: string): Promise<string> {
  const r = await etcdctl(m, args, input);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} on ${m.name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

interface RangeJSON {
  header: { revision: number; cluster_id: number; member_id: number };
  kvs?: { key: string; value: string; create_revision: number; mod_revision: number; version: number }[];
  count?: number;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function range(m: MemberSlot, extra: string[] = []): Promise<RangeJSON> {
  return JSON.parse(await ok(m, ['get', '', '--prefix', '-w', 'json', ...extra])) as RangeJSON;
}

/** What a range shows that must be equal on every member: keys, values and their revisions. */
const content = (r: RangeJSON) => ({ revision: r.header.revision, kvs: r.kvs ?? [] });

test('one member: put, get at past revisions, txn, delete, compaction; kill -9 and restart lose nothing acknowledged', async () => {
  c = await TestCluster.start(1);
  const [m] = c.members;
  expect(await ok(m, ['put', 'foo', 'bar'])).toBe('OK\n');
  expect(await ok(m, ['put', 'foo', 'baz'])).toBe('OK\n');
  expect(await ok(m, ['get', 'foo'])).toBe('foo\nbaz\n');
  // As etcd's: a new store is at revision 1, so the first write is revision 2.
  expect(await ok(m, ['get', 'foo', '--rev=2'])).toBe('foo\nbar\n');
  const txn = await ok(m, ['txn'], 'value("foo") = "baz"\n\nput foo qux\n\nput foo nope\n\n');
  expect(txn).toBe('SUCCESS\n\nOK\n');
  expect(await ok(m, ['del', 'foo'])).toBe('1\n');
  expect(await ok(m, ['compaction', '3'])).toBe('compacted revision 3\n');
  const old = await etcdctl(m, ['get', 'foo', '--rev=2']);
  expect([old.code, old.stderr]).toEqual([1, expect.stringContaining('etcdserver: mvcc: required revision has been compacted')]);

  for (let i = 0; i < 30; i++) await ok(m, ['put', `k${i}`, `v${i}`]);
  const before = content(await range(m));
  await c.kill(m);
  await c.restart(m);
  const after = content(await range(m));
  expect(after).toEqual(before);
  expect(after.kvs.map((kv) => Buffer.from(kv.key, 'base64').toString())).toEqual(Array.from({ length: 30 }, (_, i) => `k${i}`).sort());
  // The revision goes on from where it was, and the compaction is remembered.
  await ok(m, ['put', 'again', '1']);
  expect((await range(m)).header.revision).toBe(before.revision + 1);
  expect((await etcdctl(m, ['get', 'foo', '--rev=2'])).stderr).toContain('required revision has been compacted');
});

test('three members: every member serves the same keys and revisions; a member behind catches up by snapshot with the v3 data', async () => {
  c = await TestCluster.start(3, { args: ['--snapshot-count', '20', '--experimental-snapshot-catchup-entries', '10'] });
  const leader = await c.waitForLeader();
  const followers = c.members.filter((m) => m !== leader);
  for (let i = 0; i < 10; i++) await ok(i % 2 ? leader : followers[0], ['put', `a/${i}`, `x${i}`]);
  const want = content(await range(leader));
  expect(want.kvs).toHaveLength(10);
  for (const m of c.members) {
    expect([m.name, content(await range(m))]).toEqual([m.name, want]);
    await eventually(`${m.name} serializable read`, async () => (JSON.stringify(content(await range(m, ['--consistency=s']))) === JSON.stringify(want) ? true : undefined));
  }

  const behind = followers[1];
  await c.kill(behind);
  for (let i = 0; i < 45; i++) await ok(leader, ['put', `b/${i}`, `y${i}`]);
  await ok(leader, ['del', 'a/0']);
  await c.restart(behind);
  await eventually(`${behind.name} to get a snapshot`, async () => (/received a snapshot/.test(behind.proc!.output()) ? true : undefined));
  const now = content(await range(leader));
  expect(now.kvs).toHaveLength(54);
  expect(content(await range(behind))).toEqual(now);
  expect(readdirSync(path.join(behind.dataDir, 'member', 'snap')).some((n) => n.endsWith('.snap'))).toBe(true);

  // It goes on from there: new writes through it, and a restart of it replays nothing twice.
  await ok(behind, ['put', 'c', 'after-snapshot']);
  await c.kill(behind);
  await c.restart(behind);
  const final = content(await range(leader));
  expect(content(await range(behind))).toEqual(final);
  expect(final.kvs.find((kv) => kv.key === b64('c'))?.version).toBe(1);
});

test("Python's etcd3 client (python3-etcd3) against a member: put, get, prefix, a transaction, delete", async () => {
  c = await TestCluster.start(1);
  const [m] = c.members;
  const port = new URL(m.clientURL).port;
  const script = `
import etcd3
c = etcd3.client(host='127.0.0.1', port=${port})
c.put('/py/a', '1')
c.put('/py/b', '2')
v, meta = c.get('/py/a')
print('get', v.decode(), meta.version, meta.create_revision == meta.mod_revision)
print('prefix', sorted((v.decode(), m.key.decode()) for v, m in c.get_prefix('/py/')))
ok, _ = c.transaction(compare=[c.transactions.value('/py/a') == '1'], success=[c.transactions.put('/py/a', 'one')], failure=[])
print('txn', ok, c.get('/py/a')[0].decode())
print('delete', c.delete('/py/b'), c.get('/py/b')[0])
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toBe("get 1 1 True\nprefix [('1', '/py/a'), ('2', '/py/b')]\ntxn True one\ndelete True None\n");
  // What the client wrote is what etcdctl reads.
  expect(await ok(m, ['get', '/py/a', '--print-value-only'])).toBe('one\n');
});

test("the npm etcd3 client against a member: put, get, prefix, a transaction with revision compares, delete, errors", async () => {
  c = await TestCluster.start(1);
  const [m] = c.members;
  const client = new Etcd3({ hosts: m.clientURL });
  try {
    await client.put('/js/a').value('1');
    await client.put('/js/b').value('2');
    expect(await client.get('/js/a').string()).toBe('1');
    expect(await client.getAll().prefix('/js/').strings()).toEqual({ '/js/a': '1', '/js/b': '2' });
    const a = (await client.get('/js/a').exec()).kvs[0];
    const txn = await client.if('/js/a', 'Mod', '==', a.mod_revision).then(client.put('/js/a').value('one')).else(client.put('/js/a').value('lost')).commit();
    expect(txn.succeeded).toBe(true);
    const stale = await client.if('/js/a', 'Mod', '==', a.mod_revision).then(client.put('/js/a').value('stale')).commit();
    expect(stale.succeeded).toBe(false);
    expect(await client.get('/js/a').string()).toBe('one');
    expect((await client.delete().key('/js/b')).deleted).toBe('1');
    expect(await client.get('/js/b').string()).toBeNull();
    await expect(client.put('').value('x')).rejects.toThrow(/key is not provided/);
  } finally {
    client.close();
  }
});
