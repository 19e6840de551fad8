/**
 * The real discovery service: Debian's discovery.etcd.io (package etcd-discovery), the server behind
 * discovery.etcd.io, keeps its tokens in an etcd over the v2 API. Backed by one of our members it is a real
 * application on our v2 API; three of our members bootstrap from one of its tokens, as its README says. The same
 * again with Debian's etcd in both roles, side by side: the same cluster shape, the same error for a 4th member and
 * for tokens it does not know.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DiscoveryIO, Impl, clusterView, etcdmainErrors, registrations, startDiscoveryIO, startDiscoveryService, startMember } from '../support/discovery';
import { RunningEtcd, explainFailure } from '../support/real-etcd';

describe('discovery.etcd.io (Debian etcd-discovery) as the discovery service', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'discovery-io-'));
  const procs: RunningEtcd[] = [];
  const ios: DiscoveryIO[] = [];
  let dirs = 0;
  const dir = (name: string): string => path.join(root, `${name}-${dirs++}`);

  afterAll(async () => {
    await Promise.all([...procs.map((p) => p.stop()), ...ios.map((d) => d.stop())]);
    rmSync(root, { recursive: true, force: true });
  });

  /** What one implementation does in both roles: the cluster its members form, and the errors past it. */
  const run = async (impl: Impl) => {
    const backend = await startDiscoveryService(impl, root);
    procs.push(backend);
    const io = await startDiscoveryIO(backend.clientURL);
    ios.push(io);
    const token = await io.newToken(3);
    expect(token).toMatch(new RegExp(`^${io.url}/[0-9a-f]{32}$`));
    const started = await Promise.allSettled(['m1', 'm2', 'm3'].map((name) => startMember(impl, name, dir(name), ['--discovery', token])));
    for (const r of started) if (r.status === 'fulfilled') procs.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const members = started.map((r) => (r as PromiseFulfilledResult<RunningEtcd>).value);
    const views = await explainFailure(members.map((proc, i) => ({ name: `${impl} m${i + 1}`, proc })), () => Promise.all(members.map(clusterView)));
    for (const v of views) expect(v).toEqual(views[0]);
    // The token, read back through discovery.etcd.io, holds the three registrations under the members' IDs.
    const regs = await registrations(token);
    expect(regs).toEqual(new Map(views[0].members.map((m) => [m.id, `${m.name}=${m.peerURLs[0]}`])));

    const failing = async (name: string, url: string) => {
      const m = await startMember(impl, name, dir(name), ['--discovery', url, '--discovery-fallback', 'exit'], { wait: false });
      procs.push(m);
      return { code: await m.exited, errors: etcdmainErrors(m.output(), url).map((e) => e.replace(/\[\d+\]\)$/, '[INDEX])')) };
    };
    const fourth = await failing('m4', token);
    // A token of the right form it never made: its etcd's "Key not found"; another form: its router's 404 page.
    const unknown = await failing('stray', `${io.url}/0123456789abcdef0123456789abcdef`);
    const malformed = await failing('stray', `${io.url}/not-a-token`);
    return { names: views[0].members.map((m) => m.name), size: views[0].members.length, fourth, unknown, malformed };
  };

  test('three members bootstrap from one token; a 4th and unknown tokens get the same errors with our etcd behind it as with Debian\'s', async () => {
    const ours = await run('ours');
    const theirs = await run('etcd');
    expect(ours).toEqual(theirs);
    expect(ours.names).toEqual(['m1', 'm2', 'm3']);
    expect(ours.fourth).toEqual({ code: 1, errors: ['failed to join discovery cluster (discovery: cluster is full)'] });
    expect(ours.unknown).toEqual({ code: 1, errors: ['failed to join discovery cluster (100: Key not found (/_etcd/registry/0123456789abcdef0123456789abcdef) [INDEX])'] });
    expect(ours.malformed).toEqual({ code: 1, errors: ['failed to join discovery cluster (discovery: bad discovery endpoint)'] });
  }, 120000);
});
