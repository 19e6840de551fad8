/**
 * v2 auth in a 3-member cluster: users, roles and the enabled flag go through the log into every member's v2 store
 * (/2), so every member answers the same and enforces the same Basic credentials; a member that missed changes
 * catches up by a snapshot that holds them; and all of it survives a restart of one member and of the whole
 * cluster. Changes are made through Debian's etcdctl (v2) and raw requests.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';

jest.setTimeout(240_000);

const run = promisify(execFile);

const ROOT = 'root:rootpw';
const basic = (creds: string) => ({ Authorization: `Basic ${Buffer.from(creds).toString('base64')}` });

/** Debian's etcdctl (v2), run without blocking this process: the members' peer traffic passes through its proxies. */
async function etcdctl(m: MemberSlot, ...args: string[]): Promise<string> {
  try {
    const r = await run('/usr/bin/etcdctl', ['--endpoints', m.clientURL, ...args], { env: { ...process.env, ETCDCTL_API: '2' }, encoding: 'utf8', timeout: 30000 });
    return r.stdout;
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    throw new Error(`etcdctl ${args.join(' ')}: exit ${e.code}: ${e.stderr}`);
  }
}

/** What a member says about auth: the flag, users and roles in full (as root), and the store's index. */
async function authView(m: MemberSlot): Promise<{ enabled: string; users: string; roles: string }> {
  const enabled = await request(m.clientURL, 'GET', '/v2/auth/enable');
  const users = await request(m.clientURL, 'GET', '/v2/auth/users', { headers: basic(ROOT) });
  const roles = await request(m.clientURL, 'GET', '/v2/auth/roles', { headers: basic(ROOT) });
  return { enabled: `${enabled.status} ${enabled.body}`, users: `${users.status} ${users.body}`, roles: `${roles.status} ${roles.body}` };
}

/** Waits until every running member shows the same auth view as `want` (reads are local: followers catch up). */
async function expectEverywhere(c: TestCluster, want: { enabled: string; users: string; roles: string }): Promise<void> {
  for (const m of c.running()) {
    await eventually(`${m.name} to show the same users and roles`, async () => (JSON.stringify(await authView(m)) === JSON.stringify(want) ? true : undefined));
  }
}

let keys = 0;

/**
 * The key permissions a member enforces, as status codes: a guest's read, alice's read and write (password given),
 * a read with a wrong password, bob's write. Each write is of a new key (201).
 */
async function enforced(m: MemberSlot, password: string): Promise<number[]> {
  const get = (creds?: string) => request(m.clientURL, 'GET', '/v2/keys/pub/a', { headers: creds ? basic(creds) : {} });
  const put = (creds: string) => request(m.clientURL, 'PUT', `/v2/keys/pub/k${keys++}`, { form: `value=${m.name}`, headers: basic(creds) });
  return [
    (await get()).status,
    (await get(`alice:${password}`)).status,
    (await put(`alice:${password}`)).status,
    (await get('alice:wrong')).status,
    (await put(`bob:bobpw`)).status,
  ];
}

test('auth data is on every member, caught up by snapshot, and survives restarts', async () => {
  const c = await TestCluster.start(3, { args: ['--snapshot-count', '20', '--experimental-snapshot-catchup-entries', '5'] });
  try {
    const leader = await c.waitForLeader();
    const follower = c.members.find((m) => m !== leader)!;
    // As etcd's, a member serves the auth API once the cluster version is decided (until then: 500, not capable).
    for (const m of c.members) await eventually(`${m.name} to serve the auth API`, async () => ((await request(m.clientURL, 'GET', '/v2/auth/enable')).status === 200 ? true : undefined));
    // Through a follower: its changes are proposed to the leader and applied everywhere.
    await etcdctl(follower, 'user', 'add', ROOT);
    await etcdctl(follower, 'user', 'add', 'alice:alicepw');
    await etcdctl(follower, 'user', 'add', 'bob:bobpw');
    await etcdctl(leader, 'role', 'add', 'reader');
    await etcdctl(leader, 'role', 'grant', 'reader', '--path', '/pub/*', '--read');
    await etcdctl(leader, 'role', 'add', 'writer');
    await etcdctl(leader, 'role', 'grant', 'writer', '--path', '/pub/*', '--readwrite');
    await etcdctl(follower, 'user', 'grant', 'alice', '--roles', 'reader');
    await etcdctl(follower, 'user', 'grant', 'bob', '--roles', 'writer');
    expect((await request(leader.clientURL, 'PUT', '/v2/keys/pub/a', { form: 'value=1' })).status).toBe(201);
    expect(await etcdctl(follower, 'auth', 'enable')).toBe('Authentication Enabled\n');
    // The guest may read, not write.
    await etcdctl(leader, '--username', ROOT, 'role', 'revoke', 'guest', '--path', '/*', '--write');

    const view = await authView(leader);
    expect(view.enabled).toBe('200 {"enabled":true}\n');
    expect(JSON.parse(view.users.slice(4)).users.map((u: { user: string }) => u.user)).toEqual(['alice', 'bob', 'root']);
    expect(JSON.parse(view.roles.slice(4)).roles.map((r: { role: string }) => r.role)).toEqual(['guest', 'reader', 'root', 'writer']);
    await expectEverywhere(c, view);
    // Every member enforces the same: guest reads, the reader reads but does not write, a wrong password is
    // refused, the writer writes.
    for (const m of c.members) expect([m.name, await enforced(m, 'alicepw')]).toEqual([m.name, [200, 200, 401, 401, 201]]);
    const index = async (m: MemberSlot) => (await request(m.clientURL, 'GET', '/v2/keys/pub/a?quorum=true')).headers['x-etcd-index'];
    const indexes = await Promise.all(c.members.map(index));
    expect(new Set(indexes).size).toBe(1);

    // A member misses a password change and a grant; the others' logs are compacted past them, so it catches up
    // by a snapshot, which carries /2.
    const behind = follower;
    await c.kill(behind);
    const now = await c.waitForLeader();
    const pw = await request(now.clientURL, 'PUT', '/v2/auth/users/alice', { body: '{"user":"alice","password":"newpw"}', headers: basic(ROOT) });
    expect([pw.status, pw.body]).toEqual([200, '{"user":"alice","roles":["reader"]}\n']);
    await etcdctl(now, '--username', ROOT, 'user', 'grant', 'alice', '--roles', 'writer');
    for (let i = 0; i < 40; i++) expect((await request(now.clientURL, 'PUT', `/v2/keys/pub/w${i}`, { form: `value=${i}`, headers: basic('bob:bobpw') })).status).toBe(201);
    await c.restart(behind);
    expect(behind.proc!.output()).toMatch(/received a snapshot/);
    const changed = await authView(now);
    expect(changed.users).toContain('"user":"alice","roles":[{"role":"reader"');
    await expectEverywhere(c, changed);
    for (const m of c.members) {
      await eventually(`${m.name} to take alice's new password`, async () => ((await request(m.clientURL, 'GET', '/v2/keys/pub/a', { headers: basic('alice:newpw') })).status === 200 ? true : undefined));
      expect([m.name, await enforced(m, 'newpw')]).toEqual([m.name, [200, 200, 201, 401, 201]]);
      expect((await request(m.clientURL, 'GET', '/v2/keys/pub/a', { headers: basic('alice:alicepw') })).status).toBe(401);
    }

    // The whole cluster stops and starts again: each member recovers /2 from its snapshot and its log.
    for (const m of c.members) await c.kill(m);
    await Promise.all(c.members.map((m) => c.launch(m, ['--initial-cluster', c.initialCluster(), '--initial-cluster-state', 'existing'], false)));
    await c.waitForLeader();
    await expectEverywhere(c, changed);
    for (const m of c.members) expect([m.name, await enforced(m, 'newpw')]).toEqual([m.name, [200, 200, 201, 401, 201]]);
    const after = await Promise.all(c.members.map(index));
    expect(new Set(after).size).toBe(1);
    // Disabling goes through the log too: every member opens up.
    const anyMember = await c.waitForLeader();
    await etcdctl(anyMember, '--username', ROOT, 'auth', 'disable');
    for (const m of c.members) {
      await eventually(`${m.name} to see auth disabled`, async () => ((await request(m.clientURL, 'GET', '/v2/auth/enable')).body === '{"enabled":false}\n' ? true : undefined));
      expect((await request(m.clientURL, 'PUT', `/v2/keys/open/${m.name}`, { form: 'value=1', headers: basic('alice:wrong') })).status).toBe(201);
    }
  } finally {
    await c.stop();
  }
});
