import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

/** A node of the v2 keys API as the server sends it. */
export interface V2Node {
  key: string;
  dir?: boolean;
  value?: string;
  nodes?: V2Node[];
  createdIndex: number;
  modifiedIndex: number;
  expiration?: string;
  ttl?: number;
}

export interface V2Response {
  action: string;
  node: V2Node;
  prevNode?: V2Node;
  /** The X-Etcd-Index header. */
  index: number;
}

export interface V2Member {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

/** An error answered by etcd: {"errorCode","message","cause","index"}. */
export class EtcdError extends Error {
  constructor(readonly errorCode: number, readonly etcdMessage: string, readonly cause_: string, readonly index: number) {
    super(`${errorCode}: ${etcdMessage} (${cause_}) [${index}]`);
    this.name = 'EtcdError';
  }

  toJSON(): object {
    return { errorCode: this.errorCode, message: this.etcdMessage, cause: this.cause_, index: this.index };
  }
}

/** No endpoint could be reached: the message and details are the Go client's. */
export class ClusterError extends Error {
  /** connectionErrors: whether every endpoint failed to connect (etcdctl's isConnectionError), not e.g. with a 5xx. */
  constructor(readonly errors: string[], readonly connectionErrors = true) {
    super(`client: etcd cluster is unavailable or misconfigured${errors.map((e, i) => `; error #${i}: ${e}\n`).join('')}`);
    this.name = 'ClusterError';
  }

  detail(): string {
    return this.errors.map((e, i) => `error #${i}: ${e}\n`).join('');
  }
}

/** Another answer that is neither a v2 response nor an etcd error (e.g. a proxy's). */
export class UnexpectedResponseError extends Error {}

export interface ClientOptions {
  endpoints: string[];
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  insecureSkipVerify?: boolean;
  /** Time to wait for response headers from one endpoint, in ms (etcdctl's --timeout). */
  headerTimeoutMs: number;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  body?: string;
  contentType?: string;
  /** A watch: no header timeout. */
  waitForever?: boolean;
  /**
   * As the Go client's one-shot requests (a create with prevExist=false): the first failure is the answer, not a
   * ClusterError collecting every endpoint's.
   */
  oneShot?: boolean;
}

/** A failed round trip; `connection`: it failed to connect or read (Go's dial/read net.OpError), not e.g. a timeout. */
class RoundTripError extends Error {
  constructor(message: string, readonly connection: boolean) {
    super(message);
  }
}

function roundTripError(err: NodeJS.ErrnoException, url: URL): RoundTripError {
  return new RoundTripError(describeNetError(err, url), ['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH'].includes(err.code ?? ''));
}

function describeNetError(err: NodeJS.ErrnoException, url: URL): string {
  const hostport = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  if (err.code === 'ECONNREFUSED') return `dial tcp ${hostport}: connect: connection refused`;
  if (err.code === 'ENOTFOUND') return `dial tcp: lookup ${url.hostname}: no such host`;
  if (err.code === 'ETIMEDOUT' || err.code === 'TIMEOUT') return `client: endpoint ${url.origin} exceeded header timeout`;
  return `${err.code ?? 'error'}: ${err.message}`;
}

/** A node as the Go client decodes it: fields the server leaves out (the root's key and indexes) are zero values. */
function goNodeOf(n: V2Node | undefined): V2Node | undefined {
  if (!n) return undefined;
  return { ...n, key: n.key ?? '', createdIndex: n.createdIndex ?? 0, modifiedIndex: n.modifiedIndex ?? 0, nodes: n.nodes?.map((c) => goNodeOf(c)!) };
}

/** A v2 HTTP client over a list of endpoints: each request goes to the first that answers (as Go's client does). */
export class V2Client {
  private endpoints: string[];
  private readonly agentOpts: https.AgentOptions;

  constructor(readonly opts: ClientOptions) {
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.agentOpts = {
      cert: opts.certFile ? fs.readFileSync(opts.certFile) : undefined,
      key: opts.keyFile ? fs.readFileSync(opts.keyFile) : undefined,
      ca: opts.caFile ? fs.readFileSync(opts.caFile) : undefined,
      rejectUnauthorized: !opts.insecureSkipVerify,
    };
  }

  currentEndpoints(): string[] {
    return [...this.endpoints];
  }

  private once(endpoint: string, method: string, path: string, o: RequestOptions): Promise<RawResponse> {
    const url = new URL(endpoint + path);
    const mod = url.protocol === 'https:' ? https : http;
    const body = o.body;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          headers: body !== undefined ? { 'Content-Type': o.contentType ?? 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } : {},
          ...(url.protocol === 'https:' ? this.agentOpts : {}),
        },
        (res) => {
          clearTimeout(timer);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(roundTripError(err as NodeJS.ErrnoException, url)));
        },
      );
      const timer = o.waitForever
        ? undefined
        : setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), this.opts.headerTimeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(roundTripError(err as NodeJS.ErrnoException, url));
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /**
   * Sends to the endpoints in turn until one answers with a status below 500 (as the Go client's
   * httpClusterClient.Do): a 5xx counts as that member failing, and when every endpoint failed the answer is a
   * ClusterError listing each failure.
   */
  async request(method: string, path: string, o: RequestOptions = {}): Promise<RawResponse> {
    const errors: string[] = [];
    let connectionErrors = true;
    for (const ep of this.endpoints) {
      let raw: RawResponse;
      try {
        raw = await this.once(ep, method, path, o);
      } catch (err) {
        if (o.oneShot) throw err;
        errors.push((err as Error).message);
        if (!(err instanceof RoundTripError && err.connection)) connectionErrors = false;
        continue;
      }
      connectionErrors = false;
      if (Math.floor(raw.status / 100) === 5) {
        errors.push(
          raw.status === 500 || raw.status === 503
            ? `client: etcd member ${ep} has no leader`
            : `client: etcd member ${ep} returns server error [${http.STATUS_CODES[raw.status] ?? ''}]`,
        );
        if (o.oneShot) throw new Error(errors[0]);
        continue;
      }
      return raw;
    }
    throw new ClusterError(errors, connectionErrors);
  }

  /** Replaces the endpoints with the members' published client URLs (etcdctl does this unless --no-sync). */
  async sync(): Promise<void> {
    const members = await this.members();
    const urls = members.flatMap((m) => m.clientURLs);
    if (urls.length > 0) this.endpoints = urls.map((e) => e.replace(/\/+$/, ''));
  }

  static keyPath(key: string): string {
    const k = key.startsWith('/') ? key : `/${key}`;
    return '/v2/keys' + k.split('/').map((seg) => encodeURIComponent(seg)).join('/');
  }

  private static parse(raw: RawResponse): V2Response {
    let json: { action?: string; node?: V2Node; prevNode?: V2Node; errorCode?: number; message?: string; cause?: string; index?: number };
    try {
      json = JSON.parse(raw.body);
    } catch {
      throw new UnexpectedResponseError(`unexpected response from server (HTTP ${raw.status}): ${raw.body.slice(0, 200)}`);
    }
    if (typeof json.errorCode === 'number') {
      throw new EtcdError(json.errorCode, json.message ?? '', json.cause ?? '', json.index ?? 0);
    }
    if (!json.action || !json.node) throw new UnexpectedResponseError(`unexpected response from server (HTTP ${raw.status})`);
    const index = Number(raw.headers['x-etcd-index'] ?? 0);
    return { action: json.action, node: goNodeOf(json.node)!, prevNode: goNodeOf(json.prevNode), index };
  }

  async keys(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    key: string,
    query: Record<string, string>,
    form?: Record<string, string>,
    o: { waitForever?: boolean; oneShot?: boolean } = {},
  ): Promise<V2Response> {
    const qs = new URLSearchParams(query).toString();
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const raw = await this.request(method, V2Client.keyPath(key) + (qs ? `?${qs}` : ''), { body, ...o });
    return V2Client.parse(raw);
  }

  async members(): Promise<V2Member[]> {
    const raw = await this.request('GET', '/v2/members');
    assertStatus(raw, 200);
    return ((JSON.parse(raw.body) as { members?: V2Member[] }).members ?? []).map((m) => ({
      ...m,
      name: m.name ?? '',
      peerURLs: m.peerURLs ?? [],
      clientURLs: m.clientURLs ?? [],
    }));
  }

  async leader(): Promise<V2Member> {
    const raw = await this.request('GET', '/v2/members/leader');
    assertStatus(raw, 200);
    return JSON.parse(raw.body) as V2Member;
  }

  /** As the Go client's MembersAPI.Add: the URL is checked here first, 409 carries the server's message. */
  async addMember(peerURL: string): Promise<V2Member> {
    const urls = newURLs([peerURL]);
    const raw = await this.request('POST', '/v2/members', { body: JSON.stringify({ peerURLs: urls }), contentType: 'application/json' });
    assertStatus(raw, 201, 409);
    if (raw.status !== 201) throw membersError(raw);
    return JSON.parse(raw.body) as V2Member;
  }

  async removeMember(id: string): Promise<void> {
    const raw = await this.request('DELETE', `/v2/members/${encodeURIComponent(id)}`);
    assertStatus(raw, 204, 410);
  }

  async updateMember(id: string, peerURLs: string[]): Promise<void> {
    const urls = newURLs(peerURLs);
    const raw = await this.request('PUT', `/v2/members/${encodeURIComponent(id)}`, { body: JSON.stringify({ peerURLs: urls }), contentType: 'application/json' });
    assertStatus(raw, 204, 404, 409);
    if (raw.status !== 204) throw membersError(raw);
  }
}

function assertStatus(raw: RawResponse, ...want: number[]): void {
  if (!want.includes(raw.status)) throw new Error(`unexpected status code ${raw.status}`);
}

/** Go's %q for the strings that reach it here. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** Go's net/url.Parse, as far as etcd's checks of a peer URL can tell: the parts, or url.Parse's error text. */
function goParseURL(raw: string): { scheme: string; userinfo: string; host: string; path: string; query?: string; fragment?: string; opaque?: string } {
  const fail = (msg: string): never => {
    throw new Error(`parse ${goQuote(raw)}: ${msg}`);
  };
  if (/[\x00-\x1f\x7f]/.test(raw)) fail('net/url: invalid control character in URL');
  let rest = raw;
  let fragment: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let scheme = '';
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(rest);
  if (m) {
    scheme = m[1].toLowerCase();
    rest = rest.slice(m[0].length);
  } else if (rest.startsWith(':')) {
    fail('missing protocol scheme');
  }
  let query: string | undefined;
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (!rest.startsWith('/')) {
    if (scheme !== '') return { scheme, userinfo: '', host: '', path: '', query, fragment, opaque: rest };
    const colon = rest.indexOf(':');
    const slash = rest.indexOf('/');
    if (colon >= 0 && (slash < 0 || colon < slash)) fail('first path segment in URL cannot contain colon');
  }
  let userinfo = '';
  let host = '';
  if ((scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    const slash = authority.indexOf('/');
    rest = slash >= 0 ? authority.slice(slash) : '';
    if (slash >= 0) authority = authority.slice(0, slash);
    const at = authority.lastIndexOf('@');
    if (at >= 0) {
      userinfo = authority.slice(0, at);
      authority = authority.slice(at + 1);
    }
    const validPort = (p: string) => p === '' || /^:\d*$/.test(p);
    if (authority.startsWith('[')) {
      const close = authority.lastIndexOf(']');
      if (close < 0) fail("missing ']' in host");
      const port = authority.slice(close + 1);
      if (!validPort(port)) fail(`invalid port ${goQuote(port)} after host`);
    } else {
      const colon = authority.lastIndexOf(':');
      if (colon >= 0 && !validPort(authority.slice(colon))) fail(`invalid port ${goQuote(authority.slice(colon))} after host`);
    }
    host = authority;
  }
  return { scheme, userinfo, host, path: rest, query, fragment };
}

/** Go's net.SplitHostPort, reduced to whether it accepts the host. */
function goSplitsHostPort(hostport: string): boolean {
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) return false;
    const after = hostport.slice(close + 1);
    return after.startsWith(':') && !after.slice(1).includes(':') && !hostport.slice(1, close).includes('[');
  }
  const colon = hostport.lastIndexOf(':');
  if (colon < 0) return false;
  const h = hostport.slice(0, colon);
  return !h.includes(':') && !h.includes('[') && !h.includes(']') && !hostport.slice(colon + 1).includes(']');
}

/** etcd's types.NewURLs, which the Go client applies to a member's peer URLs before sending them: sorted. */
export function newURLs(strs: string[]): string[] {
  if (strs.length === 0) throw new Error('no valid URLs given');
  const all = strs.map((raw) => {
    const s = raw.trim();
    const u = goParseURL(s);
    if (!['http', 'https', 'unix', 'unixs'].includes(u.scheme)) throw new Error(`URL scheme must be http, https, unix, or unixs: ${s}`);
    if (!goSplitsHostPort(u.host)) throw new Error(`URL address does not have the form "host:port": ${s}`);
    if (u.path !== '') throw new Error(`URL must not contain a path: ${s}`);
    return `${u.scheme}://${u.userinfo ? `${u.userinfo}@` : ''}${u.host}${u.query !== undefined && u.query !== '' ? `?${u.query}` : ''}${u.fragment ? `#${u.fragment}` : ''}`;
  });
  return all.sort();
}

/** The members API answers a conflict (or an unknown member) as {"message": "..."}; the Go client prints that message. */
function membersError(raw: RawResponse): Error {
  let j: { message?: unknown };
  try {
    j = JSON.parse(raw.body) as { message?: unknown };
  } catch (err) {
    return new Error((err as Error).message);
  }
  return new Error(typeof j?.message === 'string' ? j.message : '');
}
