/**
 * Runtime membership: add, remove and replace members through the members API (ours and Debian's etcdctl), and a
 * member of another cluster (another --initial-cluster-token) refused.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';
import { spawnOurEtcd } from '../support/real-etcd';

const ETCDCTL = '/usr/bin/etcdctl';

/** Debian's etcdctl (v2), run asynchronously: the peer proxies live in this process and must keep forwarding. */
function etcdctl(endpoints: string[], ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ETCDCTL, ['--endpoints', endpoints.join(','), ...args], { env: { ...process.env, ETCDCTL_API: '2' }, encoding: 'utf8', timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function members(m: MemberSlot): Promise<{ id: string; name: string; peerURLs: string[]; clientURLs: string[] }[]> {
  return (JSON.parse((await request(m.clientURL, 'GET', '/v2/members')).body) as { members: { id: string; name: string; peerURLs: string[]; clientURLs: string[] }[] }).members;
}

async function putOK(m: MemberSlot, key: string, value: string): Promise<number> {
  const a = await request(m.clientURL, 'PUT', `/v2/keys${key}`, { form: `value=${value}` });
  expect([200, 201]).toContain(a.status);
  return (JSON.parse(a.body) as { node: { modifiedIndex: number } }).node.modifiedIndex;
}

describe('runtime membership', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await TestCluster.start(3);
  });
  afterAll(async () => c?.stop());

  test("Debian's etcdctl lists the members, reports the cluster healthy, and adds a member that then joins", async () => {
    const endpoints = c.members.map((m) => m.clientURL);
    const list = await etcdctl(endpoints, 'member', 'list');
    expect(list.status).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const m of c.members) {
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${m.id}: name=${m.name} peerURLs=${m.peerURL} clientURLs=${m.clientURL} isLeader=(true|false)$`)));
    }
    expect(lines.filter((l) => l.endsWith('isLeader=true'))).toHaveLength(1);

    const health = await etcdctl(endpoints, 'cluster-health');
    expect(health.status).toBe(0);
    expect(health.stdout).toMatch(/cluster is healthy\n$/);
    for (const m of c.members) expect(health.stdout).toContain(`member ${m.id} is healthy: got healthy result from ${m.clientURL}`);

    await putOK(c.members[0], '/before-join', 'x');
    // etcdctl member add prints the settings the new member starts with: start it with exactly those.
    const slot = await c.newSlot('m3');
    // etcd (and ours) refuse an add until the member asked has been connected to every voter for 5 s.
    const add = await eventually('the cluster to accept a member add', async () => {
      const r = await etcdctl(endpoints, 'member', 'add', 'm3', slot.peerURL);
      return r.status === 0 ? r : undefined;
    });
    expect(add.stderr).toBe('');
    const env = Object.fromEntries([...add.stdout.matchAll(/^(ETCD_[A-Z_]+)="(.*)"$/gm)].map((x) => [x[1], x[2]]));
    expect(add.stdout).toMatch(/^Added member named m3 with ID [0-9a-f]+ to cluster/);
    expect(env.ETCD_NAME).toBe('m3');
    expect(env.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');
    expect(env.ETCD_INITIAL_CLUSTER.split(',').sort()).toEqual([...c.members.filter((m) => m !== slot).map((m) => `${m.name}=${m.peerURL}`), `m3=${slot.peerURL}`].sort());
    slot.id = /with ID ([0-9a-f]+)/.exec(add.stdout)![1];
    await c.launch(slot, ['--initial-cluster', env.ETCD_INITIAL_CLUSTER, '--initial-cluster-state', env.ETCD_INITIAL_CLUSTER_STATE]);
    await eventually('the new member to have the earlier write', async () => {
      const a = await request(slot.clientURL, 'GET', '/v2/keys/before-join');
      return a.status === 200 ? true : undefined;
    });
    await eventually('every member to list m3 with its client URL', async () => {
      for (const m of c.running()) {
        const m3 = (await members(m)).find((x) => x.id === slot.id);
        if (!m3 || m3.name !== 'm3' || m3.clientURLs[0] !== slot.clientURL) return undefined;
      }
      return true;
    });
    // Four voters now: writes need three of them, and the newcomer is one.
    const idx = await putOK(slot, '/after-join', 'y');
    for (const m of c.running()) expect(JSON.parse((await request(m.clientURL, 'GET', '/v2/keys/after-join?quorum=true')).body).node.modifiedIndex).toBe(idx);
  });

  test('a removed member stops, and the others go on without it', async () => {
    const leader = await c.waitForLeader();
    const victim = c.running().find((m) => m !== leader)!;
    const a = await request(leader.clientURL, 'DELETE', `/v2/members/${victim.id}`);
    expect(a.status).toBe(204);
    await expect(victim.proc!.exited).resolves.toBe(0);
    victim.proc = undefined;
    // The victim stopped once it applied its removal; the others apply it in their own time.
    for (const m of c.running()) await eventually(`${m.name} to drop the removed member`, async () => ((await members(m)).some((x) => x.id === victim.id) ? undefined : true));
    const again = await request(leader.clientURL, 'DELETE', `/v2/members/${victim.id}`);
    expect({ status: again.status, body: JSON.parse(again.body) }).toEqual({ status: 410, body: { message: `Member permanently removed: ${victim.id}` } });
    await putOK(leader, '/after-remove', 'z');
  });

  test('a dead member is replaced by a new one with a new data dir', async () => {
    const leader = await c.waitForLeader();
    const dead = c.running().find((m) => m !== leader)!;
    await c.kill(dead);
    // A removal needs the leader connected, for 5 s, to a quorum of the members that stay: retried until then.
    await eventually('the removal to be accepted', async () => ((await request(leader.clientURL, 'DELETE', `/v2/members/${dead.id}`)).status === 204 ? true : undefined));
    const fresh = await c.addMember(leader, 'replacement');
    await eventually('the replacement to serve the data', async () => ((await request(fresh.clientURL, 'GET', '/v2/keys/after-remove')).status === 200 ? true : undefined));
    expect((await members(leader)).map((m) => m.name).sort()).toEqual(c.running().map((m) => m.name).sort());
  });

  test('strict reconfiguration: an add is refused while any voter is not connected (here: a member added but never started)', async () => {
    const leader = await c.waitForLeader();
    const add = (port: number) => request(leader.clientURL, 'POST', '/v2/members', { body: JSON.stringify({ peerURLs: [`http://127.0.0.1:${port}`] }), headers: { 'Content-Type': 'application/json' } });
    // The first add goes through once every voter has been connected for 5 s (a refused add changes nothing).
    const first = await eventually('the first add to be accepted', async () => {
      const a = await add(60000);
      return a.status === 201 ? (JSON.parse(a.body) as { id: string }).id : undefined;
    });
    // The added member never starts: this member is not connected to it, so no further add is allowed, as in etcd.
    const second = await add(60001);
    expect({ status: second.status, body: JSON.parse(second.body) }).toEqual({ status: 500, body: { message: 'Internal Server Error' } });
    expect((await members(leader)).map((m) => m.id)).toContain(first);
    expect((await members(leader)).some((m) => m.peerURLs.includes('http://127.0.0.1:60001'))).toBe(false);
    // Removing the unstarted member is allowed (the others are a connected quorum), and writes go on.
    expect((await request(leader.clientURL, 'DELETE', `/v2/members/${first}`)).status).toBe(204);
    await putOK(leader, '/after-strict', 'ok');
  });

  test('a member started with another --initial-cluster-token is refused and never merges', async () => {
    const before = await members(c.running()[0]);
    const intruder = await c.newSlot('intruder');
    const initial = c.initialCluster([...c.running(), intruder]);
    intruder.proc = await spawnOurEtcd(
      [...c.args(intruder, ['--initial-cluster', initial, '--initial-cluster-state', 'new']).filter((a, i, all) => all[i - 1] !== '--initial-cluster-token' && a !== '--initial-cluster-token'), '--initial-cluster-token', 'another-token'],
      { clientURL: intruder.clientURL, peerURL: intruder.peerURL, dataDir: path.join(c.root, 'intruder') },
      { wait: false },
    );
    await eventually('the intruder to be refused by a peer', async () => (/belongs to another cluster/.test(intruder.proc!.output()) ? true : undefined));
    await eventually('a member to refuse the intruder', async () => (c.running().some((m) => /refused a peer request from another cluster/.test(m.proc!.output())) ? true : undefined));
    for (const m of c.running().filter((x) => x !== intruder)) expect(await members(m)).toEqual(before);
    await putOK(c.running()[0], '/after-intruder', 'still fine');
    await c.kill(intruder);
  });
});
