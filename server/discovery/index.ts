/**
 * Bootstrap by discovery: the initial cluster of a new member from a discovery URL (--discovery, v2.ts) or DNS SRV
 * records (--discovery-srv, srv.ts) instead of --initial-cluster, as etcd 3.4's embed and etcdserver decide it; and
 * what etcd's etcdmain says when discovery fails.
 *
 * --discovery-fallback: etcd 3.4 answers a full discovery cluster with `exit`, or (its default) `proxy`: it then runs
 * its v2-only HTTP proxy in front of the cluster. This server has no proxy mode, so a member past the size exits in
 * both cases, saying so.
 */
import { InitialMember, ServerConfig, parseInitialCluster } from '../config';
import { memberId } from '../membership/ids';
import { DiscoveryError, DiscoveryProblem } from './errors';
import type { Resolver } from './srv';
import type { DiscoveryLog } from './v2';

export { DiscoveryError, DiscoveryProblem } from './errors';

// The protocols (v2.ts, srv.ts) are loaded by a member that bootstraps with them only.
const v2 = (): typeof import('./v2') => require('./v2') as typeof import('./v2');
const srv = (): typeof import('./srv') => require('./srv') as typeof import('./srv');

export interface Bootstrap {
  initialCluster: InitialMember[];
  /** The cluster token member IDs are computed with: the discovery URL itself with --discovery, as etcd. */
  token: string;
  /**
   * The name peers' certificates are verified against, when not their host: etcd's DNS discovery with https records
   * and no --peer-trusted-ca-file (peers checked against the system's CAs) expects certificates for the domain.
   */
  peerServerName?: string;
}

export type BootstrapLog = (pkg: string, level: 'info' | 'warn' | 'error', msg: string, meta: Record<string, unknown>) => void;

/** etcd's URLsMap check: one peer URL named by two entries. */
function duplicateURL(m: Map<string, string[]>): boolean {
  const seen = new Set<string>();
  for (const urls of m.values()) {
    for (const u of urls) {
      if (seen.has(u)) return true;
      seen.add(u);
    }
  }
  return false;
}

/**
 * The initial cluster and token this member bootstraps with. `initialized`: its data dir already has a WAL, and then
 * discovery is not asked again (etcd warns that the token is ignored).
 */
export async function resolveBootstrap(cfg: ServerConfig, initialized: boolean, walDir: string, log: BootstrapLog, resolver?: Resolver): Promise<Bootstrap> {
  const d = cfg.discovery;
  if (d.url !== '') {
    const { Discovery, parseURLsMap, urlsMapString } = v2();
    if (initialized) {
      log('etcdserver', 'warn', 'discovery token is ignored since cluster already initialized; valid logs are found', {
        'wal-dir': walDir,
        capnslog: `discovery token ignored since a cluster has already been initialized. Valid log found at "${walDir}"`,
      });
      return { initialCluster: cfg.initialCluster, token: d.url };
    }
    if (cfg.initialClusterState === 'existing') throw new Error('discovery URL should not be set when joining existing initial cluster');
    const self = new Map(cfg.initialCluster.map((m) => [m.name, [...m.peerURLs].sort()]));
    let found: string;
    try {
      const discovery = new Discovery({
        url: d.url,
        proxy: d.proxy || undefined,
        id: memberId(cfg.initialAdvertisePeerURLs, d.url),
        config: urlsMapString(self),
        log: (level, msg, meta) => log('discovery', level, msg, meta),
      });
      found = await discovery.joinCluster();
    } catch (err) {
      if (err instanceof DiscoveryProblem && err.kind === 'fullCluster' && d.fallback === 'proxy') {
        log('etcdmain', 'warn', 'discovery cluster is full; --discovery-fallback=proxy asks for the v2 proxy, which this server does not have: exiting', {
          'fallback-proxy': 'proxy',
          capnslog: 'discovery cluster full: etcd would fall back to its v2 proxy (--discovery-fallback=proxy), which this server does not have; exiting',
        });
      }
      throw new DiscoveryError('join', err as Error);
    }
    const m = parseURLsMap(found)!;
    if (duplicateURL(m)) throw new Error(`discovery cluster ${urlsMapString(m)} has duplicate url`);
    return { initialCluster: parseInitialCluster(found), token: d.url };
  }
  if (d.srv !== '' && !initialized) {
    const { dnsClusterNames, sameResolvedURLs, systemResolver } = srv();
    const { parseURLsMap, urlsMapString } = v2();
    resolver ??= systemResolver;
    const { entries, errors } = await dnsClusterNames(resolver, { domain: d.srv, serviceName: d.srvName, name: cfg.name, advertisePeerURLs: cfg.initialAdvertisePeerURLs });
    for (const e of errors) log('embed', 'warn', 'failed to resolve during SRV discovery', { error: e.message, capnslog: `couldn't resolve during SRV discovery (${e.message})` });
    // Nothing found: etcd 3.4 reports the https lookup's error.
    if (entries.length === 0) throw new Error(`error setting up initial cluster: ${errors[0].message}`);
    for (const s of entries) log('embed', 'info', 'got bootstrap from DNS for etcd-server', { node: s, capnslog: `got bootstrap from DNS for etcd-server at ${s}` });
    const m = parseURLsMap(entries.join(','));
    if (!m) throw new Error(`error setting up initial cluster: invalid SRV records (${entries.join(',')})`);
    const own = m.get(cfg.name);
    if (!own) throw new Error(`error setting up initial cluster: cannot find local etcd member "${cfg.name}" in SRV records`);
    // As etcd's VerifyBootstrap: this member's entry and its advertised peer URLs must name the same addresses.
    if (!(await sameResolvedURLs(resolver, own, cfg.initialAdvertisePeerURLs).catch(() => false))) {
      throw new Error(`--initial-cluster has ${cfg.name}=${own.join(',')} but missing from --initial-advertise-peer-urls=${cfg.initialAdvertisePeerURLs.join(',')}`);
    }
    if (duplicateURL(m)) throw new Error(`initial cluster ${urlsMapString(m)} has duplicate url`);
    const peerServerName = entries.some((e) => e.includes('=https://')) && cfg.peerTLS.trustedCAFile === '' ? d.srv : undefined;
    return { initialCluster: [...m].map(([name, peerURLs]) => ({ name, peerURLs })), token: cfg.initialClusterToken, peerServerName };
  }
  return { initialCluster: cfg.initialCluster, token: cfg.initialClusterToken };
}

export interface ExplainLine {
  level: 'error' | 'warn' | 'info';
  msg: string;
  fields: Record<string, unknown>;
  capnslog: string;
}

/** What etcd's etcdmain logs when discovery failed, before exiting 1 (its zap messages; its capnslog lines and levels). */
export function explainDiscoveryError(err: DiscoveryError, cfg: ServerConfig): ExplainLine[] {
  const token = cfg.discovery.url;
  const kind = err.cause_ instanceof DiscoveryProblem ? err.cause_.kind : undefined;
  const line = (level: ExplainLine['level'], msg: string, capnslog: string, fields: Record<string, unknown> = {}): ExplainLine => ({ level, msg, fields, capnslog });
  if (kind === 'duplicateID') {
    return [
      line('error', 'member has been registered with discovery service', `member "${cfg.name}" has previously registered with discovery service token (${token}).`, { name: cfg.name, 'discovery-token': token, error: err.cause_.message }),
      line('error', 'but could not find valid cluster configuration', `But etcd could not find valid cluster configuration in the given data dir (${cfg.dataDir}).`, { 'data-dir': cfg.dataDir }),
      line('info', 'check data dir if previous bootstrap succeeded', 'Please check the given data dir path if the previous bootstrap succeeded'),
      line('info', 'or use a new discovery token if previous bootstrap failed', 'or use a new discovery token if the previous bootstrap failed.'),
    ];
  }
  if (kind === 'duplicateName') {
    return [
      line('error', 'member with duplicated name has already been registered', `member with duplicated name has registered with discovery service token(${token}).`, { 'discovery-token': token, error: err.cause_.message }),
      line('error', 'cURL the discovery token URL for details', 'please check (cURL) the discovery token for more information.'),
      line('error', 'do not reuse discovery token; generate a new one to bootstrap a cluster', 'please do not reuse the discovery token and generate a new one to bootstrap the cluster.'),
    ];
  }
  return [
    line('error', 'failed to bootstrap; discovery token was already used', err.message, { 'discovery-token': token, error: err.message }),
    line('info', 'do not reuse discovery token; generate a new one to bootstrap a cluster', `discovery token ${token} was used, but failed to bootstrap the cluster.`),
    line('info', 'do not reuse discovery token; generate a new one to bootstrap a cluster', 'please generate a new discovery token and try to bootstrap again.'),
  ];
}

export type { DiscoveryLog };
