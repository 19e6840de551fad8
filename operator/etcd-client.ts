/**
 * The operator's view of an etcd cluster over its client URLs: the v2 members API (list, add, remove, leader) and
 * /health. How a member's client URL is reached is pluggable (`Endpoints`): in the cluster it is the member's DNS
 * name under the headless Service; tests and out-of-cluster runs map pods to other URLs with templates.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as fs from 'node:fs';
import type { EtcdClusterSpec } from './api/types';
import { advertiseClientURL, clientServiceURL } from './api/naming';
import type { MemberView } from './planner';

export interface Endpoints {
  /** The client URL of one member pod. */
  member(cluster: string, namespace: string, pod: string, spec: EtcdClusterSpec): string;
  /** The cluster's client Service URL. */
  service(cluster: string, namespace: string, spec: EtcdClusterSpec): string;
}

/** In-cluster DNS: `<pod>.<cluster>.<ns>.svc:2379` and `<cluster>-client.<ns>.svc:2379`. */
export const dnsEndpoints: Endpoints = {
  member: (cluster, ns, pod, spec) => advertiseClientURL(cluster, ns, pod, spec),
  service: (cluster, ns, spec) => clientServiceURL(cluster, ns, spec),
};

/** Templates with {pod}, {cluster}, {namespace}, {scheme}: e.g. `http://127.0.0.1:9000/{namespace}/{pod}`. */
export function templateEndpoints(memberTemplate: string, serviceTemplate?: string): Endpoints {
  const fill = (t: string, v: Record<string, string>): string => t.replace(/\{(\w+)\}/g, (m, k: string) => v[k] ?? m);
  return {
    member: (cluster, namespace, pod, spec) => fill(memberTemplate, { cluster, namespace, pod, scheme: spec.tls?.clientSecret ? 'https' : 'http' }),
    service: (cluster, namespace, spec) =>
      serviceTemplate
        ? fill(serviceTemplate, { cluster, namespace, scheme: spec.tls?.clientSecret ? 'https' : 'http' })
        : clientServiceURL(cluster, namespace, spec),
  };
}

export interface TLSMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}
export function tlsFromFiles(f: { caFile?: string; certFile?: string; keyFile?: string }): TLSMaterial {
  return {
    ca: f.caFile ? fs.readFileSync(f.caFile) : undefined,
    cert: f.certFile ? fs.readFileSync(f.certFile) : undefined,
    key: f.keyFile ? fs.readFileSync(f.keyFile) : undefined,
  };
}

export class EtcdError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class EtcdClient {
  private readonly agentOptions: https.AgentOptions;
  private readonly httpAgent = new http.Agent({ keepAlive: false });
  private httpsAgent?: https.Agent;

  constructor(
    private readonly timeoutMs = 3000,
    tls: TLSMaterial = {},
  ) {
    this.agentOptions = { ca: tls.ca, cert: tls.cert, key: tls.key };
  }

  async members(base: string): Promise<MemberView[]> {
    const r = await this.request(base, 'GET', '/v2/members');
    expectStatus(r, [200], 'list members');
    const body = JSON.parse(r.body) as { members?: Partial<MemberView>[] };
    return (body.members ?? []).map((m) => ({ id: String(m.id), name: m.name ?? '', peerURLs: m.peerURLs ?? [], clientURLs: m.clientURLs ?? [] }));
  }

  async leader(base: string): Promise<MemberView | undefined> {
    const r = await this.request(base, 'GET', '/v2/members/leader');
    if (r.status === 503) return undefined;
    expectStatus(r, [200], 'leader');
    const m = JSON.parse(r.body) as Partial<MemberView>;
    return { id: String(m.id), name: m.name ?? '', peerURLs: m.peerURLs ?? [], clientURLs: m.clientURLs ?? [] };
  }

  async addMember(base: string, peerURL: string): Promise<MemberView> {
    const r = await this.request(base, 'POST', '/v2/members', JSON.stringify({ peerURLs: [peerURL] }));
    expectStatus(r, [201], `add member ${peerURL}`);
    const m = JSON.parse(r.body) as Partial<MemberView>;
    return { id: String(m.id), name: m.name ?? '', peerURLs: m.peerURLs ?? [peerURL], clientURLs: m.clientURLs ?? [] };
  }

  /** Remove a member; a member already gone (404, 410) counts as removed. */
  async removeMember(base: string, id: string): Promise<void> {
    const r = await this.request(base, 'DELETE', `/v2/members/${encodeURIComponent(id)}`);
    expectStatus(r, [204, 404, 410], `remove member ${id}`);
  }

  async health(base: string): Promise<boolean> {
    try {
      const r = await this.request(base, 'GET', '/health');
      return r.status === 200 && (JSON.parse(r.body) as { health?: unknown }).health === 'true';
    } catch {
      return false;
    }
  }

  private request(base: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
    const url = new URL(base.replace(/\/+$/, '') + path);
    const isHttps = url.protocol === 'https:';
    if (isHttps && !this.httpsAgent) this.httpsAgent = new https.Agent({ ...this.agentOptions, keepAlive: false });
    const lib = isHttps ? https : http;
    const headers: Record<string, string> = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: isHttps ? this.httpsAgent : this.httpAgent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new EtcdError(`${method} ${url.href}: no answer in ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(e instanceof EtcdError ? e : new EtcdError(`${method} ${url.href}: ${e.message}`)));
      req.end(body);
    });
  }
}

function expectStatus(r: { status: number; body: string }, ok: number[], what: string): void {
  if (!ok.includes(r.status)) {
    let msg = r.body.trim();
    try {
      const j = JSON.parse(r.body) as { message?: string };
      if (j.message) msg = j.message;
    } catch {
      // not JSON
    }
    throw new EtcdError(`${what}: HTTP ${r.status} ${msg}`.trim(), r.status);
  }
}
