/**
 * Bootstrap-by-discovery helpers: a discovery service (one of our members, Debian's etcd, or Debian's
 * discovery.etcd.io in front of either), tokens, members started with --discovery, a forward HTTP proxy for
 * --discovery-proxy, and what a cluster says of itself.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { eventually } from './cluster';
import { request } from './http';
import { RunningEtcd, freePort, spawnOurEtcd, spawnRealEtcd } from './real-etcd';

export type Impl = 'ours' | 'etcd';

/** A member's flags with fresh loopback ports, bootstrapping with `bootstrap` (e.g. --discovery URL). */
export async function memberArgs(name: string, dataDir: string, bootstrap: string[]): Promise<{ args: string[]; where: { clientURL: string; peerURL: string; dataDir: string } }> {
  const clientURL = `http://127.0.0.1:${await freePort()}`;
  const peerURL = `http://127.0.0.1:${await freePort()}`;
  const args = [
    '--name', name, '--data-dir', dataDir, '--enable-v2=true',
    '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
    '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
    '--heartbeat-interval', '50', '--election-timeout', '500',
    ...bootstrap,
  ];
  return { args, where: { clientURL, peerURL, dataDir } };
}

/** Starts a member of either implementation; `healthy`: wait until it serves with a leader (else until it listens). */
export async function startMember(impl: Impl, name: string, dataDir: string, bootstrap: string[], o: { healthy?: boolean; wait?: boolean } = {}): Promise<RunningEtcd> {
  const { args, where } = await memberArgs(name, dataDir, bootstrap);
  return impl === 'ours' ? spawnOurEtcd(args, where, o) : spawnRealEtcd(args, where, o);
}

/** A single-member etcd of either implementation to serve as the discovery service (v2 on). */
export function startDiscoveryService(impl: Impl, root: string): Promise<RunningEtcd> {
  return startMember(impl, 'discovery', path.join(root, `service-${impl}`), []);
}

/** Makes a token of `size` on an etcd used directly as the discovery service; answers its discovery URL. */
export async function newToken(service: RunningEtcd, token: string, size: number | string): Promise<string> {
  const a = await request(service.clientURL, 'PUT', `/v2/keys/discovery/${token}/_config/size`, { form: `value=${size}` });
  if (a.status !== 201) throw new Error(`cannot make token ${token}: ${a.status} ${a.body}`);
  return `${service.clientURL}/v2/keys/discovery/${token}`;
}

export interface ClusterView {
  clusterId: string;
  members: { id: string; name: string; peerURLs: string[] }[];
}

/** The cluster a member belongs to, as its /v2/members and X-Etcd-Cluster-ID say. */
export async function clusterView(m: RunningEtcd): Promise<ClusterView> {
  const a = await request(m.clientURL, 'GET', '/v2/members');
  const members = (JSON.parse(a.body) as { members: { id: string; name: string; peerURLs: string[] }[] }).members.map(({ id, name, peerURLs }) => ({ id, name, peerURLs }));
  return { clusterId: String(a.headers['x-etcd-cluster-id']), members: members.sort((x, y) => x.name.localeCompare(y.name)) };
}

/** The registrations under a token: member ID (the key's last segment) to value. */
export async function registrations(tokenURL: string): Promise<Map<string, string>> {
  const u = new URL(tokenURL);
  const a = await request(u.origin, 'GET', u.pathname);
  const nodes = (JSON.parse(a.body) as { node: { nodes?: { key: string; value?: string }[] } }).node.nodes ?? [];
  return new Map(nodes.filter((n) => !n.key.endsWith('/_config')).map((n) => [n.key.slice(n.key.lastIndexOf('/') + 1), n.value ?? '']));
}

/** Debian's discovery.etcd.io (package etcd-discovery), the server behind discovery.etcd.io, on a free port. */
export const DISCOVERY_IO = '/usr/bin/discovery.etcd.io';

export interface DiscoveryIO {
  url: string;
  output(): string;
  stop(): Promise<void>;
  /** PUT /new?size=N, as its README says: answers the new token's URL. */
  newToken(size: number): Promise<string>;
}

export async function startDiscoveryIO(etcdClientURL: string): Promise<DiscoveryIO> {
  if (!existsSync(DISCOVERY_IO)) throw new Error(`${DISCOVERY_IO} is missing: install Debian's etcd-discovery (apt-get install -y etcd-discovery), as .ci/run does`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(DISCOVERY_IO, ['--etcd', etcdClientURL, '--host', url, '--addr', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const io: DiscoveryIO = {
    url,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    newToken: async (size) => {
      const a = await request(url, 'PUT', `/new?size=${size}`);
      if (a.status !== 200) throw new Error(`discovery.etcd.io /new: ${a.status} ${a.body}`);
      return a.body.trim();
    },
  };
  await eventually('discovery.etcd.io to listen', async () => {
    if (proc.exitCode !== null) throw new Error(`discovery.etcd.io exited: ${out}`);
    return (await request(url, 'GET', '/robots.txt', { timeoutMs: 1000 })).status === 200 ? true : undefined;
  });
  return io;
}

/** A forward HTTP proxy (absolute-form requests) that records the URLs it was asked for. */
export async function startForwardProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const target = new URL(req.url ?? '/');
    const out = http.request(target, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(out);
  });
  const port = await freePort();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** The `E | etcdmain: …` lines of a capnslog output, the token URL replaced by TOKEN (to compare two servers). */
export function etcdmainErrors(output: string, token: string): string[] {
  return output
    .split('\n')
    .filter((l) => / [EC] \| etcdmain: /.test(l))
    .map((l) => l.replace(/^.* [EC] \| etcdmain: /, '').split(token).join('TOKEN'));
}
