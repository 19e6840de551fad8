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
  constructor(readonly errors: string[]) {
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

function describeNetError(err: NodeJS.ErrnoException, url: URL): string {
  const hostport = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  if (err.code === 'ECONNREFUSED') return `dial tcp ${hostport}: connect: connection refused`;
  if (err.code === 'ENOTFOUND') return `dial tcp: lookup ${url.hostname}: no such host`;
  if (err.code === 'ETIMEDOUT' || err.code === 'TIMEOUT') return `client: endpoint ${url.origin} exceeded header timeout`;
  return `${err.code ?? 'error'}: ${err.message}`;
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

  private once(endpoint: string, method: string, path: string, body: string | undefined, waitForever: boolean): Promise<RawResponse> {
    const url = new URL(endpoint + path);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          headers: body !== undefined ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } : {},
          ...(url.protocol === 'https:' ? this.agentOpts : {}),
        },
        (res) => {
          clearTimeout(timer);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(new Error(describeNetError(err as NodeJS.ErrnoException, url))));
        },
      );
      const timer = waitForever
        ? undefined
        : setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), this.opts.headerTimeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(describeNetError(err as NodeJS.ErrnoException, url)));
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** Sends to the endpoints in turn until one answers; a ClusterError when none does. */
  async request(method: string, path: string, body?: string, waitForever = false): Promise<RawResponse> {
    const errors: string[] = [];
    for (const ep of this.endpoints) {
      try {
        return await this.once(ep, method, path, body, waitForever);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    throw new ClusterError(errors);
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
    return { action: json.action, node: json.node, prevNode: json.prevNode, index };
  }

  async keys(method: 'GET' | 'PUT' | 'POST' | 'DELETE', key: string, query: Record<string, string>, form?: Record<string, string>, waitForever = false): Promise<V2Response> {
    const qs = new URLSearchParams(query).toString();
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const raw = await this.request(method, V2Client.keyPath(key) + (qs ? `?${qs}` : ''), body, waitForever);
    return V2Client.parse(raw);
  }

  async members(): Promise<V2Member[]> {
    const raw = await this.request('GET', '/v2/members');
    if (raw.status !== 200) throw new UnexpectedResponseError(`unexpected status code ${raw.status}`);
    return (JSON.parse(raw.body) as { members: V2Member[] }).members.map((m) => ({ ...m, name: m.name ?? '', clientURLs: m.clientURLs ?? [] }));
  }

  async leader(): Promise<V2Member> {
    const raw = await this.request('GET', '/v2/members/leader');
    if (raw.status !== 200) throw new UnexpectedResponseError(`unexpected status code ${raw.status}`);
    return JSON.parse(raw.body) as V2Member;
  }

  async addMember(peerURL: string): Promise<V2Member> {
    const raw = await this.jsonRequest('POST', '/v2/members', JSON.stringify({ peerURLs: [peerURL] }));
    if (raw.status !== 201) throw membersError(raw);
    return JSON.parse(raw.body) as V2Member;
  }

  async removeMember(id: string): Promise<void> {
    const raw = await this.request('DELETE', `/v2/members/${encodeURIComponent(id)}`);
    if (raw.status !== 204) throw membersError(raw);
  }

  async updateMember(id: string, peerURLs: string[]): Promise<void> {
    const raw = await this.jsonRequest('PUT', `/v2/members/${encodeURIComponent(id)}`, JSON.stringify({ peerURLs }));
    if (raw.status !== 204) throw membersError(raw);
  }

  private async jsonRequest(method: string, path: string, body: string): Promise<RawResponse> {
    const errors: string[] = [];
    for (const ep of this.endpoints) {
      const url = new URL(ep + path);
      const mod = url.protocol === 'https:' ? https : http;
      try {
        return await new Promise<RawResponse>((resolve, reject) => {
          const req = mod.request(
            url,
            { method, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, ...(url.protocol === 'https:' ? this.agentOpts : {}) },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
            },
          );
          req.setTimeout(this.opts.headerTimeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
          req.on('error', (err) => reject(new Error(describeNetError(err as NodeJS.ErrnoException, url))));
          req.end(body);
        });
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    throw new ClusterError(errors);
  }
}

/** The members API answers errors as {"message": "..."}; the Go client prints that message. */
function membersError(raw: RawResponse): Error {
  try {
    const j = JSON.parse(raw.body) as { message?: string };
    if (j.message) return new Error(j.message);
  } catch {
    // not JSON
  }
  return new Error(`unexpected status code ${raw.status}`);
}
