/** A bounded v2 write load over HTTP, for process-level tests of the built server. */
import * as http from 'node:http';

export interface Ack {
  value: string;
  modifiedIndex: number;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(url: string, method: string, body?: string, agent?: http.Agent, timeoutMs = 10000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request(url, { method, headers, agent: agent ?? false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface LoadOptions {
  /** Client URL of the server. */
  url: string;
  /** Key names are `${prefix}${n}` under /v2/keys/load/, values `v${n}`. */
  prefix: string;
  clients: number;
  maxWrites: number;
  maxMs: number;
  /** Called once, when this many writes have been acknowledged. */
  trigger?: { afterAcks: number; action: () => void };
}

export interface LoadResult {
  acked: Map<string, Ack>;
  /** Writes that got an answer other than 2xx. */
  refused: { key: string; status: number; body: string }[];
  /** Writes that got no answer (connection error: the server died). */
  unanswered: number;
  attempted: number;
  triggered: boolean;
}

/**
 * `clients` concurrent keep-alive clients PUT load/<prefix><n>=v<n> until maxWrites were attempted, maxMs passed,
 * or the connection fails (after which every client stops). Every 2xx answer is recorded with its modifiedIndex.
 */
export async function writeLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients });
  const res: LoadResult = { acked: new Map(), refused: [], unanswered: 0, attempted: 0, triggered: false };
  const deadline = Date.now() + o.maxMs;
  let next = 0;
  let broken = false;
  const client = async (): Promise<void> => {
    while (!broken && next < o.maxWrites && Date.now() < deadline) {
      const n = next++;
      const key = `load/${o.prefix}${n}`;
      const value = `v${n}`;
      res.attempted++;
      let a: HttpAnswer;
      try {
        a = await request(`${o.url}/v2/keys/${key}`, 'PUT', `value=${value}`, agent);
      } catch {
        res.unanswered++;
        broken = true;
        return;
      }
      if (a.status >= 200 && a.status < 300) {
        const node = (JSON.parse(a.body) as { node: { value: string; modifiedIndex: number } }).node;
        res.acked.set(key, { value: node.value, modifiedIndex: node.modifiedIndex });
        if (o.trigger && !res.triggered && res.acked.size >= o.trigger.afterAcks) {
          res.triggered = true;
          o.trigger.action();
        }
      } else {
        res.refused.push({ key, status: a.status, body: a.body });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.clients }, client));
  } finally {
    agent.destroy();
  }
  return res;
}

interface V2Node {
  key: string;
  value?: string;
  dir?: boolean;
  modifiedIndex: number;
  nodes?: V2Node[];
}

/** Every key under /load with its value and modifiedIndex, read back in one recursive GET. */
export async function readLoad(url: string): Promise<{ nodes: Map<string, Ack>; etcdIndex: number }> {
  const a = await request(`${url}/v2/keys/load?recursive=true`, 'GET');
  const nodes = new Map<string, Ack>();
  if (a.status === 404) return { nodes, etcdIndex: Number(a.headers['x-etcd-index']) };
  if (a.status !== 200) throw new Error(`GET /v2/keys/load: ${a.status} ${a.body}`);
  const walk = (n: V2Node): void => {
    if (n.dir) for (const c of n.nodes ?? []) walk(c);
    else nodes.set(n.key.replace(/^\//, ''), { value: n.value ?? '', modifiedIndex: n.modifiedIndex });
  };
  walk((JSON.parse(a.body) as { node: V2Node }).node);
  return { nodes, etcdIndex: Number(a.headers['x-etcd-index']) };
}

/** Describes every acknowledged write that is missing or different in `found` (empty: all present). */
export function missingAcks(acked: Map<string, Ack>, found: Map<string, Ack>): string[] {
  const out: string[] = [];
  for (const [k, want] of acked) {
    const got = found.get(k);
    if (!got) out.push(`${k}: acknowledged at ${want.modifiedIndex} with ${want.value}, missing`);
    else if (got.value !== want.value || got.modifiedIndex !== want.modifiedIndex) {
      out.push(`${k}: acknowledged ${want.value}@${want.modifiedIndex}, found ${got.value}@${got.modifiedIndex}`);
    }
  }
  return out;
}

/** Polls `cond` until it holds or the deadline passes. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 20));
  }
}

/** The member's client URLs as /v2/members lists them (etcd serves clients only once they are published). */
export async function publishedClientURLs(url: string): Promise<string[]> {
  const a = await request(`${url}/v2/members`, 'GET');
  return (JSON.parse(a.body) as { members: { clientURLs: string[] }[] }).members.flatMap((m) => m.clientURLs);
}
