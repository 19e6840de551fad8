/**
 * etcd's v2 discovery protocol (etcd 3.4's etcdserver/api/v2discovery), over the v2 keys API of a discovery service
 * (discovery.etcd.io, or any etcd with v2 on): read the expected size from `<url>/_config/size`, register this member
 * under `<url>/<member-id>` (create-only, no TTL), wait for the others with a recursive watch, and take the first
 * `size` registrations by creation index as the initial cluster.
 *
 * As etcd 3.4 does, including where its code does less than it says: a missing size key is the service's own error
 * ("100: Key not found …"), not ErrSizeNotFound, because 3.4 tests the client's error by pointer and never matches;
 * an unreachable service (or a 5xx) is retried forever with a backoff of 2^n seconds capped at 256 s; a request that
 * gets no answer in 5 s ends the discovery.
 */
import { DiscoveryProblem } from './errors';
import { ClusterError, DiscoveryHTTP } from './http';

export { DISCOVERY_ERRORS, DiscoveryError, DiscoveryProblem, type DiscoveryProblemKind } from './errors';


/** The v2 client's texts for answers that are not a keys API response. */
const ERR_INVALID_JSON = 'client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint';
const ERR_EMPTY_BODY = 'client: response body is empty';

/** Go's client.DefaultRequestTimeout. */
const REQUEST_TIMEOUT_MS = 5000;
/** Past this many retries the backoff stops doubling (2^8 s). */
const MAX_EXPONENTIAL_RETRIES = 8;

export type DiscoveryLog = (level: 'info' | 'warn' | 'error', msg: string, meta: Record<string, unknown>) => void;

interface KeysNode {
  key: string;
  value?: string;
  nodes?: KeysNode[];
  createdIndex: number;
  modifiedIndex: number;
}

interface KeysResponse {
  node: KeysNode;
  index: number;
}

/** The keys API's error answer, as the Go client prints it. */
class KeysError extends Error {
  constructor(readonly code: number, message: string, cause: string, index: number) {
    super(`${code}: ${message} (${cause}) [${index}]`);
  }
}

class ClientError extends Error {}

export interface DiscoveryOptions {
  /** --discovery: the token's URL. */
  url: string;
  /** --discovery-proxy. */
  proxy?: string;
  /** This member's ID (hex), computed with the discovery URL as the cluster token. */
  id: string;
  /** This member's `name=peerURL,...` (sorted), the value it registers. */
  config: string;
  log: DiscoveryLog;
  /** Waits between retries (tests may shorten nothing: etcd's backoff is part of the behaviour). */
  sleep?: (ms: number) => Promise<void>;
}

/** Go's time.Duration printing for whole seconds: 2s, 1m4s, 4m16s. */
function goSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${s % 60}s` : `${s}s`;
}

/** Go's path.Join for the token and its keys: cleaned, rooted. */
function joinPath(...parts: string[]): string {
  const out: string[] = [];
  for (const seg of parts.join('/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

const base = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** A path as Go's url.URL prints it: each segment escaped but for the characters a path may hold. */
function escapePath(p: string): string {
  return p.split('/').map((seg) => encodeURIComponent(seg).replace(/%(21|24|26|27|28|29|2A|2B|2C|3B|3D|3A|40)/gi, (m) => decodeURIComponent(m))).join('/');
}

/** Go's url.Values.Encode of one value (QueryEscape: spaces as +). */
const formValue = (v: string): string => encodeURIComponent(v).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Parses `name=url,...` as etcd's types.NewURLsMap: names to their URLs; undefined when a URL is not etcd's form. */
export function parseURLsMap(s: string): Map<string, string[]> | undefined {
  const m = new Map<string, string[]>();
  if (s === '') return m;
  for (const part of s.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const u = eq < 0 ? '' : part.slice(eq + 1);
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      return undefined;
    }
    if (!['http:', 'https:', 'unix:', 'unixs:'].includes(url.protocol) || !/:\d+$/.test(url.host) || (url.pathname !== '' && url.pathname !== '/')) return undefined;
    m.set(name, [...(m.get(name) ?? []), u].sort());
  }
  return m;
}

/** A URLsMap as etcd prints it: `name=url` pairs, sorted. */
export function urlsMapString(m: Map<string, string[]>): string {
  return [...m].flatMap(([name, urls]) => urls.map((u) => `${name}=${u}`)).sort().join(',');
}

/** The protocol for one member: JoinCluster of etcd's v2discovery. */
export class Discovery {
  private readonly http: DiscoveryHTTP;
  /** The token's path: the keys live under it. */
  private readonly cluster: string;
  private readonly endpoint: string;
  private retries = 0;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly o: DiscoveryOptions) {
    // etcd retries a URL it can never reach (no scheme, ftp://…) forever; here that is an error at once, in its words.
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new Error('unsupported protocol scheme ""');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`unsupported protocol scheme "${u.protocol.replace(/:$/, '')}"`);
    this.cluster = u.pathname;
    this.endpoint = `${u.protocol}//${u.host}`;
    let proxy: URL | undefined;
    if (o.proxy) {
      proxy = proxyURL(o.proxy);
      o.log('info', 'running proxy with discovery', { 'proxy-url': proxy.href.replace(/\/$/, ''), capnslog: `using proxy "${proxy.href.replace(/\/$/, '')}"` });
    }
    this.http = new DiscoveryHTTP(proxy);
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  private selfKey(): string {
    return joinPath(this.cluster, this.o.id);
  }

  private url(key: string, query: string): URL {
    return new URL(`${this.endpoint}${escapePath(key)}?${query}`);
  }

  /** A keys API answer as the Go client decodes it. */
  private decode(a: { status: number; headers: Record<string, string | string[] | undefined>; body: string }): KeysResponse {
    if (a.status === 200 || a.status === 201) {
      if (a.body.length === 0) throw new ClientError(ERR_EMPTY_BODY);
      let v: unknown;
      try {
        v = JSON.parse(a.body);
      } catch {
        throw new ClientError(ERR_INVALID_JSON);
      }
      const node = (v as { node?: unknown } | null)?.node;
      if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof node !== 'object' || node === null) throw new ClientError(ERR_INVALID_JSON);
      const idx = a.headers['x-etcd-index'];
      return { node: node as KeysNode, index: typeof idx === 'string' && /^\d+$/.test(idx) ? Number(idx) : 0 };
    }
    let e: unknown;
    try {
      e = JSON.parse(a.body);
    } catch {
      throw new ClientError(ERR_INVALID_JSON);
    }
    if (e !== null && (typeof e !== 'object' || Array.isArray(e))) throw new ClientError(ERR_INVALID_JSON);
    const f = (e ?? {}) as { errorCode?: unknown; message?: unknown; cause?: unknown; index?: unknown };
    throw new KeysError(Number(f.errorCode ?? 0) || 0, String(f.message ?? ''), String(f.cause ?? ''), Number(f.index ?? 0) || 0);
  }

  private async get(key: string): Promise<KeysResponse> {
    return this.decode(await this.http.do({ method: 'GET', url: this.url(key, 'quorum=false&recursive=false&sorted=false'), timeoutMs: REQUEST_TIMEOUT_MS }));
  }

  /** The Go watcher's Next: the first event after waitIndex-1 (an empty answer is asked again). */
  private async next(key: string, waitIndex: number, recursive: boolean): Promise<KeysResponse> {
    for (;;) {
      const a = await this.http.do({ method: 'GET', url: this.url(key, `recursive=${recursive}&wait=true&waitIndex=${waitIndex}`) });
      try {
        return this.decode(a);
      } catch (err) {
        if (err instanceof ClientError && err.message === ERR_EMPTY_BODY) continue;
        throw err;
      }
    }
  }

  /** Registers this member, waits for the cluster to fill, and answers the initial cluster (`name=url,...`). */
  async joinCluster(): Promise<string> {
    // Fast path: a full cluster is refused before registering.
    await this.checkCluster();
    await this.createSelf();
    const { nodes, size, index } = await this.checkCluster();
    const all = await this.waitNodes(nodes, size, index);
    return nodesToCluster(all, size);
  }

  private async createSelf(): Promise<void> {
    let created: KeysResponse;
    try {
      const a = await this.http.do({ method: 'PUT', url: this.url(this.selfKey(), 'prevExist=false'), form: `value=${formValue(this.o.config)}`, timeoutMs: REQUEST_TIMEOUT_MS, oneShot: true });
      created = this.decode(a);
    } catch (err) {
      if (err instanceof KeysError && err.code === 105) throw new DiscoveryProblem('duplicateID');
      throw err;
    }
    // Wait until this registration is visible on the server answering.
    await this.next(this.selfKey(), created.node.createdIndex, false);
  }

  private async checkCluster(): Promise<{ nodes: KeysNode[]; size: number; index: number }> {
    const configKey = joinPath(this.cluster, '_config');
    let sizeResp: KeysResponse;
    try {
      sizeResp = await this.get(joinPath(configKey, 'size'));
    } catch (err) {
      if (err instanceof ClientError && err.message === ERR_INVALID_JSON) throw new DiscoveryProblem('badDiscoveryEndpoint');
      if (err instanceof ClusterError) {
        this.logClusterError(err, joinPath(configKey, 'size'));
        return this.checkClusterRetry();
      }
      throw err;
    }
    const v = sizeResp.node.value ?? '';
    if (!/^[0-9]+$/.test(v) || BigInt(v) > 0xffffffffffffffffn || BigInt(v) === 0n) throw new DiscoveryProblem('badSizeKey');
    const size = Number(v);
    let dir: KeysResponse;
    try {
      dir = await this.get(this.cluster);
    } catch (err) {
      if (err instanceof ClusterError) {
        this.logClusterError(err, this.cluster);
        return this.checkClusterRetry();
      }
      throw err;
    }
    const nodes = (dir.node.nodes ?? []).filter((n) => base(String(n.key)) !== '_config').sort((a, b) => (a.createdIndex ?? 0) - (b.createdIndex ?? 0));
    const self = base(this.selfKey());
    for (let i = 0; i < nodes.length; i++) {
      if (base(nodes[i].key) === self) break;
      if (i >= size - 1) throw new DiscoveryProblem('fullCluster');
    }
    return { nodes, size, index: dir.index };
  }

  private logClusterError(err: ClusterError, path: string): void {
    this.o.log('error', 'failed to get from discovery server', { 'discovery-url': this.endpoint, path, error: err.message, 'err-detail': err.detail(), capnslog: err.detail() });
  }

  private async backoff(step: string): Promise<void> {
    this.retries++;
    const seconds = 2 ** Math.min(this.retries, MAX_EXPONENTIAL_RETRIES);
    this.o.log('info', 'retry connecting to discovery service', { url: this.endpoint, reason: step, backoff: goSeconds(seconds), capnslog: `${step}: error connecting to ${this.endpoint}, retrying in ${goSeconds(seconds)}` });
    await this.sleep(seconds * 1000);
  }

  private async checkClusterRetry(): Promise<{ nodes: KeysNode[]; size: number; index: number }> {
    await this.backoff('cluster status check');
    return this.checkCluster();
  }

  private async waitNodes(found: KeysNode[], size: number, index: number): Promise<KeysNode[]> {
    const all = found.slice(0, size);
    const self = base(this.selfKey());
    for (const n of all) {
      const name = base(n.key);
      if (name === self) this.o.log('info', 'found self from discovery server', { 'discovery-url': this.endpoint, self: name, capnslog: `found self ${name} in the cluster` });
      else this.o.log('info', 'found peer from discovery server', { 'discovery-url': this.endpoint, peer: name, capnslog: `found peer ${name} in the cluster` });
    }
    let waitIndex = index + 1;
    while (all.length < size) {
      this.o.log('info', 'found peers from discovery server; waiting for more', {
        'discovery-url': this.endpoint,
        'found-peers': all.length,
        'needed-peers': size - all.length,
        capnslog: `found ${all.length} peer(s), waiting for ${size - all.length} more`,
      });
      let ev: KeysResponse;
      try {
        ev = await this.next(this.cluster, waitIndex, true);
      } catch (err) {
        if (err instanceof ClusterError) {
          this.o.log('error', err.detail(), {});
          await this.backoff('waiting for other nodes');
          const again = await this.checkCluster();
          return this.waitNodes(again.nodes, again.size, again.index);
        }
        throw err;
      }
      waitIndex = ev.node.modifiedIndex + 1;
      const name = base(String(ev.node.key));
      this.o.log('info', 'found peer from discovery server', { 'discovery-url': this.endpoint, peer: name, capnslog: `found peer ${name} in the cluster` });
      all.push(ev.node);
    }
    this.o.log('info', 'found all needed peers from discovery server', { 'discovery-url': this.endpoint, 'found-peers': all.length, capnslog: `found ${all.length} needed peer(s)` });
    return all;
  }
}

/** The registrations' values as an initial cluster; etcd's checks that they name `size` distinct members. */
function nodesToCluster(nodes: KeysNode[], size: number): string {
  const s = nodes.map((n) => n.value ?? '').join(',');
  const m = parseURLsMap(s);
  if (!m) throw new DiscoveryProblem('invalidURL');
  if (m.size !== size) throw new DiscoveryProblem('duplicateName');
  return s;
}

/** --discovery-proxy as etcd sanitizes it: a bare host:port is taken as http://host:port. */
function proxyURL(p: string): URL {
  try {
    const u = new URL(p);
    if (u.protocol.startsWith('http')) return u;
  } catch {
    // as etcd: try again with http:// in front
  }
  try {
    return new URL(`http://${p}`);
  } catch (err) {
    throw new Error(`invalid proxy address "${p}": ${(err as Error).message}`);
  }
}
