/**
 * --discovery: members given the same discovery URL form one cluster of the token's size, through our v2 keys API or
 * Debian's etcd as the discovery service; Debian's etcd members bootstrap through ours, and a token can mix members of
 * both. Each failure (a full cluster, a registered member again, a duplicate name, a missing token, a bad size key, a
 * service that answers garbage, conflicting flags) is compared with Debian's etcd, line for line; an unreachable
 * service is retried with etcd's backoff until it answers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually } from '../support/cluster';
import {
  Impl,
  clusterView,
  etcdmainErrors,
  memberArgs,
  newToken,
  registrations,
  startDiscoveryService,
  startForwardProxy,
  startMember,
} from '../support/discovery';
import { request } from '../support/http';
import { PeerProxy } from '../support/peer-proxy';
import { OUR_ETCD, RunningEtcd, explainFailure, freePort, runRealEtcd, spawnOurEtcd, spawnRealEtcd } from '../support/real-etcd';

const IMPLS: Impl[] = ['ours', 'etcd'];

describe('bootstrap by discovery URL (--discovery)', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'discovery-'));
  const procs: RunningEtcd[] = [];
  const track = (p: RunningEtcd): RunningEtcd => {
    procs.push(p);
    return p;
  };
  let dirs = 0;
  const dir = (name: string): string => path.join(root, `${name}-${dirs++}`);
  const services = new Map<Impl, RunningEtcd>();
  const service = async (impl: Impl): Promise<RunningEtcd> => {
    if (!services.has(impl)) services.set(impl, track(await startDiscoveryService(impl, root)));
    return services.get(impl)!;
  };

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    rmSync(root, { recursive: true, force: true });
  });

  /** Starts members of the given implementations with one discovery URL, all at once; each waits for the others. */
  const bootstrap = async (url: string, impls: Impl[], extra: string[] = []): Promise<RunningEtcd[]> => {
    const started = await Promise.allSettled(impls.map((impl, i) => startMember(impl, `m${i + 1}`, dir(`m${i + 1}`), ['--discovery', url, ...extra])));
    for (const r of started) if (r.status === 'fulfilled') track(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    return started.map((r) => (r as PromiseFulfilledResult<RunningEtcd>).value);
  };

  /** Every member sees the same cluster of `names`; the token holds exactly their registrations (ID → name=peerURL). */
  const expectOneCluster = async (members: RunningEtcd[], url: string, names: string[]): Promise<void> => {
    const views = await Promise.all(members.map(clusterView));
    expect(views[0].members.map((m) => m.name)).toEqual(names);
    for (const v of views) expect(v).toEqual(views[0]);
    const regs = await registrations(url);
    expect(regs).toEqual(new Map(views[0].members.map((m) => [m.id, `${m.name}=${m.peerURLs.join(`,${m.name}=`)}`])));
    // And it is one replicated store: a write through the first member is read back through the last.
    const put = await request(members[0].clientURL, 'PUT', '/v2/keys/bootstrapped', { form: `value=${url}` });
    expect(put.status).toBe(201);
    const got = await request(members[members.length - 1].clientURL, 'GET', '/v2/keys/bootstrapped?quorum=true');
    expect(JSON.parse(got.body).node.value).toBe(url);
  };

  /** A member expected to fail: started without waiting, its exit code and etcdmain error lines. */
  const failing = async (impl: Impl, name: string, url: string, extra: string[] = []): Promise<{ code: number | string; errors: string[]; output: string }> => {
    const m = track(await startMember(impl, name, dir(name), ['--discovery', url, ...extra], { wait: false }));
    const code = await m.exited;
    return { code, errors: etcdmainErrors(m.output(), url), output: m.output() };
  };

  for (const svc of IMPLS) {
    test(`three of our members given one URL form one 3-member cluster (${svc === 'ours' ? 'our' : "Debian's etcd's"} v2 keys API as the service); a 4th gets "cluster is full"`, async () => {
      const url = await newToken(await service(svc), `three-${svc}`, 3);
      const members = await bootstrap(url, ['ours', 'ours', 'ours']);
      await explainFailure(members.map((proc, i) => ({ name: `m${i + 1}`, proc })), () => expectOneCluster(members, url, ['m1', 'm2', 'm3']));
      const fourth = await failing('ours', 'm4', url, ['--discovery-fallback', 'exit']);
      expect(fourth.code).toBe(1);
      expect(fourth.errors).toEqual(['failed to join discovery cluster (discovery: cluster is full)']);
      // The default fallback (proxy) also exits here: this server has no v2 proxy, and says so.
      const fifth = await failing('ours', 'm5', url);
      expect(fifth.code).toBe(1);
      expect(fifth.output).toContain('which this server does not have');
      expect((await registrations(url)).size).toBe(3);
    });
  }

  test("Debian's etcd members bootstrap through our discovery service, and from one token both servers compute the same cluster", async () => {
    const svc = await service('ours');
    const url = await newToken(svc, 'debian-three', 3);
    const members = await bootstrap(url, ['etcd', 'etcd', 'etcd']);
    await explainFailure(members.map((proc, i) => ({ name: `etcd m${i + 1}`, proc })), () => expectOneCluster(members, url, ['m1', 'm2', 'm3']));
    // Member IDs come from the peer URLs and the discovery URL as the token: members of both servers on one token
    // register and find the same members, and so start the same cluster ID. (They cannot then run one cluster: the
    // peer protocol between our members is not etcd's rafthttp.)
    const mixedURL = await newToken(svc, 'mixed', 3);
    const impls: Impl[] = ['ours', 'etcd', 'ours'];
    const mixed = await Promise.all(impls.map(async (impl, i) => track(await startMember(impl, `m${i + 1}`, dir(`mixed${i + 1}`), ['--discovery', mixedURL], { wait: false }))));
    const clusterIds = await explainFailure(mixed.map((proc, i) => ({ name: `${impls[i]} m${i + 1}`, proc })), () =>
      Promise.all(mixed.map((m) => eventually('the cluster ID it starts', async () => /(?:cluster=|in cluster )([0-9a-f]+)/.exec(m.output())?.[1]))),
    );
    expect(new Set(clusterIds).size).toBe(1);
    const regs = await registrations(mixedURL);
    expect([...regs.values()].map((v) => v.split('=')[0]).sort()).toEqual(['m1', 'm2', 'm3']);
  });

  test('a member past the size, a member registered before, and a duplicate name: the same errors and exit as etcd', async () => {
    const svc = await service('ours');
    for (const impl of IMPLS) {
      // Full: a size-1 token taken by a first member.
      const fullURL = await newToken(svc, `full-${impl}`, 1);
      track(await startMember(impl, 'first', dir('first'), ['--discovery', fullURL]));
      const full = await failing(impl, 'late', fullURL, ['--discovery-fallback', 'exit']);
      expect([impl, full.code, full.errors]).toEqual([impl, 1, ['failed to join discovery cluster (discovery: cluster is full)']]);

      // Registered before: the member registers and waits, dies, and starts again on an empty data dir.
      const dupURL = await newToken(svc, `dup-id-${impl}`, 2);
      const { args, where } = await memberArgs('again', dir('again'), ['--discovery', dupURL]);
      const spawn = impl === 'ours' ? spawnOurEtcd : spawnRealEtcd;
      const first = track(await spawn(args, where, { wait: false }));
      await eventually('the first registration', async () => ((await registrations(dupURL)).size === 1 ? true : undefined));
      await first.stop();
      const fresh = args.map((a) => (a === where.dataDir ? `${where.dataDir}-fresh` : a));
      const second = track(await spawn(fresh, { ...where, dataDir: `${where.dataDir}-fresh` }, { wait: false }));
      expect(await second.exited).toBe(1);
      expect([impl, etcdmainErrors(second.output(), dupURL)]).toEqual([
        impl,
        [
          'member "again" has previously registered with discovery service token (TOKEN).',
          `But etcd could not find valid cluster configuration in the given data dir (${where.dataDir}-fresh).`,
        ],
      ]);

      // Duplicate name: two members called "same" fill a size-2 token; both find the name twice and exit.
      const nameURL = await newToken(svc, `dup-name-${impl}`, 2);
      const both = await Promise.all([failing(impl, 'same', nameURL), failing(impl, 'same', nameURL)]);
      for (const b of both) {
        expect([impl, b.code, b.errors]).toEqual([
          impl,
          1,
          [
            'member with duplicated name has registered with discovery service token(TOKEN).',
            'please check (cURL) the discovery token for more information.',
            'please do not reuse the discovery token and generate a new one to bootstrap the cluster.',
          ],
        ]);
      }
    }
  });

  test("a missing token, a bad size key and a service that answers garbage: etcd's errors, side by side, and no member", async () => {
    const svc = await service('ours');
    const badSize = await newToken(svc, 'bad-size', 'three');
    // A token whose directory exists without its size key.
    expect((await request(svc.clientURL, 'PUT', '/v2/keys/discovery/no-size/someone', { form: 'value=x=http://10.0.0.1:2380' })).status).toBe(201);
    const garbage = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html><body>not etcd</body></html>');
    });
    const gport = await freePort();
    await new Promise<void>((r) => garbage.listen(gport, '127.0.0.1', r));
    try {
      const cases: [string, string][] = [
        [`${svc.clientURL}/v2/keys/discovery/no-such-token`, 'failed to join discovery cluster (100: Key not found (/discovery/no-such-token) [INDEX])'],
        [`${svc.clientURL}/v2/keys/discovery/no-size`, 'failed to join discovery cluster (100: Key not found (/discovery/no-size/_config) [INDEX])'],
        [badSize, 'failed to join discovery cluster (discovery: size key is bad)'],
        [`http://127.0.0.1:${gport}/0123456789abcdef`, 'failed to join discovery cluster (discovery: bad discovery endpoint)'],
      ];
      for (const [url, want] of cases) {
        const seen = await Promise.all(IMPLS.map((impl) => failing(impl, 'lonely', url)));
        for (const [i, s] of seen.entries()) {
          expect([IMPLS[i], s.code, s.errors.map((e) => e.replace(/\[\d+\]\)$/, '[INDEX])'))]).toEqual([IMPLS[i], 1, [want]]);
        }
      }
      // A URL that can never be reached (etcd 3.4 retries it forever with this error): exits at once.
      for (const [url, scheme] of [['notaurl', ''], ['ftp://127.0.0.1:1/token', 'ftp']]) {
        const s = await failing('ours', 'lonely', url);
        expect([s.code, s.errors]).toEqual([1, [`failed to join discovery cluster (unsupported protocol scheme "${scheme}")`]]);
      }
      // A registration that is no `name=peerURL`: each server registers, and the cluster it completes cannot be read.
      for (const impl of IMPLS) {
        const url = await newToken(svc, `bad-entry-${impl}`, 2);
        expect((await request(svc.clientURL, 'PUT', `/v2/keys/discovery/bad-entry-${impl}/1234`, { form: 'value=garbage' })).status).toBe(201);
        const s = await failing(impl, 'lonely', url);
        expect([impl, s.code, s.errors]).toEqual([impl, 1, ['failed to join discovery cluster (discovery: invalid URL)']]);
      }
      // Nothing was registered under the missing token (nor anywhere else by these members).
      expect((await request(svc.clientURL, 'GET', '/v2/keys/discovery/no-such-token')).status).toBe(404);
    } finally {
      garbage.closeAllConnections();
      garbage.close();
    }
  });

  test("an unreachable discovery service is retried with etcd's backoff until it answers; the members then bootstrap", async () => {
    const port = await freePort();
    const urlOf = (impl: Impl) => `http://127.0.0.1:${port}/v2/keys/discovery/later-${impl}`;
    const pairs = await Promise.all(
      IMPLS.map((impl) => Promise.all(['p1', 'p2'].map(async (name) => track(await startMember(impl, name, dir(name), ['--discovery', urlOf(impl)], { wait: false }))))),
    );
    for (const m of pairs.flat()) {
      await eventually('the first retry line', async () => (m.output().includes(`cluster status check: error connecting to http://127.0.0.1:${port}, retrying in 2s`) ? true : undefined));
      expect(m.output()).toContain(`dial tcp 127.0.0.1:${port}: connect: connection refused`);
    }
    // The service comes up on that port with a token of size 2 for each pair: each pair forms one cluster. The tokens
    // are made before the port answers (a member that reached the service first would find no token and stop).
    const { args, where } = await memberArgs('late-service', dir('late-service'), []);
    const svc = track(await spawnOurEtcd(args, where));
    for (const impl of IMPLS) await newToken(svc, `later-${impl}`, 2);
    const front = new PeerProxy(Number(new URL(where.clientURL).port), () => false);
    await front.listen(port);
    try {
      for (const [i, pair] of pairs.entries()) {
        await explainFailure(pair.map((proc, j) => ({ name: `${IMPLS[i]} p${j + 1}`, proc })), async () => {
          const views = await eventually('both members to serve', async () => {
            const vs = await Promise.all(pair.map(clusterView));
            return vs.every((v) => v.members.length === 2) ? vs : undefined;
          }, 90000); // the next retry may be 2+4+8+16 s after the first, on a loaded machine
          expect(views[1]).toEqual(views[0]);
        });
      }
    } finally {
      await front.close();
    }
  }, 150000);

  test('a member restarted on its data dir with the same --discovery flag (a host reboot) ignores the token and serves, as etcd', async () => {
    const svc = await service('ours');
    for (const impl of IMPLS) {
      const url = await newToken(svc, `reboot-${impl}`, 1);
      const { args, where } = await memberArgs('rebooted', dir('rebooted'), ['--discovery', url]);
      const spawn = impl === 'ours' ? spawnOurEtcd : spawnRealEtcd;
      const first = track(await spawn(args, where));
      const before = await clusterView(first);
      await first.signal('SIGTERM'); // a clean stop (etcd re-raises the signal, ours exits 0)
      const again = track(await spawn(args, where));
      expect([impl, await clusterView(again)]).toEqual([impl, before]);
      expect(again.output()).toContain(`discovery token ignored since a cluster has already been initialized. Valid log found at "${where.dataDir}/member/wal"`);
      expect((await registrations(url)).size).toBe(1);
    }
  });

  test('--discovery-proxy: both servers reach the service through an HTTP proxy', async () => {
    const svc = await service('ours');
    const proxy = await startForwardProxy();
    try {
      for (const impl of IMPLS) {
        const url = await newToken(svc, `proxied-${impl}`, 1);
        const m = track(await startMember(impl, 'proxied', dir('proxied'), ['--discovery', url, '--discovery-proxy', proxy.url]));
        expect((await clusterView(m)).members.map((x) => x.name)).toEqual(['proxied']);
        expect(proxy.seen).toContain(`${url}/_config/size?quorum=false&recursive=false&sorted=false`);
      }
    } finally {
      await proxy.close();
    }
  });

  test('--discovery with --initial-cluster (or --discovery-srv) is refused with etcd\'s words', () => {
    const bad = [
      ['--discovery', 'http://127.0.0.1:1/x', '--initial-cluster', 'default=http://localhost:2380'],
      ['--discovery', 'http://127.0.0.1:1/x', '--discovery-srv', 'example.com'],
      ['--discovery-srv', 'example.com', '--initial-cluster', 'default=http://localhost:2380'],
    ];
    const text = 'error verifying flags, multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"';
    for (const args of bad) {
      const theirs = runRealEtcd(['--data-dir', dir('conflict'), ...args], root);
      const ours = spawnSync(process.execPath, [OUR_ETCD, '--data-dir', dir('conflict'), ...args], { encoding: 'utf8', timeout: 15000 });
      expect([theirs.status, theirs.stderr.includes(text)]).toEqual([1, true]);
      expect([ours.status, ours.stderr]).toEqual([1, expect.stringContaining(text)]);
    }
  });
});
