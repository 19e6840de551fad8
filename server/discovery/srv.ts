/**
 * DNS SRV discovery (etcd's pkg/srv and embed's GetDNSClusterNames): the initial cluster from the
 * `_etcd-server-ssl._tcp.<domain>` (https) and `_etcd-server._tcp.<domain>` (http) records, a `-<name>` suffix on the
 * service with --discovery-srv-name; clients' endpoints from `_etcd-client-ssl._tcp` / `_etcd-client._tcp`.
 *
 * A record whose target resolves to one of this member's advertised peer addresses (IP:port, after resolving both)
 * is this member, named --name; every other record is a member named "0", "1", … in the order found (counted per
 * service, so an https and an http record can share a name, and are then one member with two URLs, as in etcd).
 *
 * Lookups use the system's resolver (/etc/resolv.conf, as Go's does); nothing here can point them elsewhere. Tests
 * give a member its own resolv.conf in a private mount namespace (test/support/dns.ts).
 */
import * as dns from 'node:dns';
import * as net from 'node:net';

export interface SRVRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

export interface Resolver {
  resolveSrv(name: string): Promise<SRVRecord[]>;
  /** host to its addresses, IPv4 first where there are both (as Go's ResolveTCPAddr picks). */
  lookup(host: string): Promise<string[]>;
}

/** The system's resolver. */
export const systemResolver: Resolver = {
  resolveSrv: (name) => dns.promises.resolveSrv(name),
  lookup: async (host) => (await dns.promises.lookup(host, { all: true })).map((a) => a.address),
};

/** A lookup error as Go words it: `lookup NAME on SERVER: no such host`. */
function lookupError(name: string, err: NodeJS.ErrnoException): Error {
  const server = dns.getServers()[0];
  const on = server ? ` on ${net.isIPv6(server) ? `[${server}]:53` : /:\d+$/.test(server) ? server : `${server}:53`}` : '';
  const why = err.code === 'ENOTFOUND' || err.code === 'ENODATA' || err.code === 'NXDOMAIN' ? 'no such host' : err.code === 'ETIMEOUT' ? 'i/o timeout' : err.code === 'ECONNREFUSED' ? 'read: connection refused' : err.message;
  return new Error(`lookup ${name}${on}: ${why}`);
}

/** Go's ResolveTCPAddr: `ip:port` of host:port (IPv4 preferred), as Go's TCPAddr.String() prints it. */
async function resolveTCPAddr(r: Resolver, host: string, port: string, shown = host): Promise<string> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  let ip: string;
  if (net.isIP(bare)) ip = bare;
  else {
    let addrs: string[];
    try {
      addrs = await r.lookup(bare);
    } catch (err) {
      throw lookupError(shown, err as NodeJS.ErrnoException);
    }
    ip = addrs.find((a) => net.isIPv4(a)) ?? addrs[0];
    if (ip === undefined) throw new Error(`lookup ${shown}: no such host`);
  }
  return net.isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** host and port of a URL's authority (Go's url.Host split). */
function hostPort(u: string): { host: string; port: string } {
  const url = new URL(u);
  return { host: url.hostname, port: url.port || (url.protocol === 'https:' ? '443' : '80') };
}

/** SRV records sorted as Go's LookupSRV sorts them: by priority, then heavier weights first. */
async function lookupSRV(r: Resolver, service: string, domain: string): Promise<SRVRecord[]> {
  const name = `_${service}._tcp.${domain}`;
  let recs: SRVRecord[];
  try {
    recs = await r.resolveSrv(name);
  } catch (err) {
    throw lookupError(name, err as NodeJS.ErrnoException);
  }
  return [...recs].sort((a, b) => a.priority - b.priority || b.weight - a.weight);
}

/**
 * etcd's srv.GetCluster: `name=scheme://target:port` for each record of one service; this member's name where a
 * record's address is one of its advertised peer URLs'.
 */
export async function getCluster(r: Resolver, scheme: 'http' | 'https', service: string, name: string, domain: string, advertisePeerURLs: string[]): Promise<string[]> {
  const own = new Map<string, string>();
  for (const u of advertisePeerURLs) {
    const { host, port } = hostPort(u);
    own.set(await resolveTCPAddr(r, host, port), u);
  }
  let recs: SRVRecord[];
  try {
    recs = await lookupSRV(r, service, domain);
  } catch (err) {
    throw new Error(`error querying DNS SRV records for _${service} ${(err as Error).message}`);
  }
  const parts: string[] = [];
  let lastErr: Error | undefined;
  let tempName = 0;
  for (const rec of recs) {
    const port = String(rec.port);
    let addr: string;
    try {
      // Go's SRV targets end with a dot, and its lookup errors name them so.
      addr = await resolveTCPAddr(r, rec.name, port, rec.name.endsWith('.') ? rec.name : `${rec.name}.`);
    } catch (err) {
      lastErr = err as Error;
      continue;
    }
    const mine = own.get(addr);
    const n = mine !== undefined ? name : String(tempName++);
    const shortHost = rec.name.replace(/\.$/, '');
    const urlHost = net.isIPv6(shortHost) ? `[${shortHost}]:${port}` : `${shortHost}:${port}`;
    if (mine !== undefined && new URL(mine).protocol !== `${scheme}:`) {
      lastErr = new Error(`bootstrap at ${scheme}://${urlHost} from DNS for ${service} has scheme mismatch with expected peer ${mine}`);
    } else parts.push(`${n}=${scheme}://${urlHost}`);
  }
  if (parts.length === 0) throw new Error(`error querying DNS SRV records for _${service} ${lastErr?.message ?? 'no usable records'}`);
  return parts;
}

export interface SRVClusterResult {
  /** `name=url` entries, https ones first. */
  entries: string[];
  /** The lookups that failed (both kinds are asked; one failing is only warned about). */
  errors: Error[];
}

/**
 * The initial cluster from both server services. etcd 3.4.23 drops the http records whenever their lookup succeeds
 * (an inverted test in its GetDNSClusterNames, fixed in 3.5), so only `_etcd-server-ssl` works there; here both
 * kinds count, as etcd 3.5 and etcd's documentation have it, and discovery fails only when neither gave a member.
 */
export async function dnsClusterNames(r: Resolver, o: { domain: string; serviceName: string; name: string; advertisePeerURLs: string[] }): Promise<SRVClusterResult> {
  const suffix = o.serviceName ? `-${o.serviceName}` : '';
  const entries: string[] = [];
  const errors: Error[] = [];
  for (const [scheme, service] of [['https', `etcd-server-ssl${suffix}`], ['http', `etcd-server${suffix}`]] as const) {
    try {
      entries.push(...(await getCluster(r, scheme, service, o.name, o.domain, o.advertisePeerURLs)));
    } catch (err) {
      errors.push(err as Error);
    }
  }
  return { entries, errors };
}

/** etcdctl's client endpoints from `_etcd-client-ssl._tcp` (https) and `_etcd-client._tcp` (http), as srv.GetClient. */
export async function getClientEndpoints(r: Resolver, domain: string, serviceName: string): Promise<string[]> {
  const out: string[] = [];
  const errors: string[] = [];
  const suffix = serviceName ? `-${serviceName}` : '';
  for (const [scheme, service] of [['https', `etcd-client-ssl${suffix}`], ['http', `etcd-client${suffix}`]] as const) {
    try {
      for (const rec of await lookupSRV(r, service, domain)) {
        // As Go's: the SRV target as the DNS answer has it, with its final dot.
        const host = rec.name.endsWith('.') ? rec.name : `${rec.name}.`;
        out.push(`${scheme}://${host}:${rec.port}`);
      }
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length === 2) throw new Error(`dns lookup errors: ${errors[0]} and ${errors[1]}`);
  return out;
}

/** Whether two lists of URLs name the same addresses once resolved (etcd's netutil.URLStringsEqual). */
export async function sameResolvedURLs(r: Resolver, a: string[], b: string[]): Promise<boolean> {
  if (a.length !== b.length) return false;
  const norm = async (list: string[]) =>
    (
      await Promise.all(
        list.map(async (u) => {
          const { host, port } = hostPort(u);
          return `${new URL(u).protocol}//${await resolveTCPAddr(r, host, port)}`;
        }),
      )
    ).sort();
  const [x, y] = await Promise.all([norm(a), norm(b)]);
  return x.every((v, i) => v === y[i]);
}
