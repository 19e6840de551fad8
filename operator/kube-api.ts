/**
 * A small JSON REST client for the Kubernetes API: get/list/create/replace/merge-patch/delete on plain objects.
 *
 * It does not depend on @kubernetes/client-node: the connection (server URL, auth headers, TLS agent) comes from a
 * `Connection`, which main.ts builds from a client-node KubeConfig (in-cluster, kubeconfig file, or loadFromOptions).
 * Plain JSON keeps every field as the API server sent it (no model classes, no Date conversion), and makes the
 * subresources (`/status`) and conflict handling explicit.
 */
import * as http from 'node:http';
import * as https from 'node:https';

export interface Connection {
  server: string;
  /** Adds auth headers and the agent to request options (client-node: `kc.applyToHTTPSOptions`). */
  configure(opts: https.RequestOptions): Promise<void>;
}

export interface Status {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
  get isConflict(): boolean {
    return this.code === 409 && this.reason !== 'AlreadyExists';
  }
  get isAlreadyExists(): boolean {
    return this.code === 409 && this.reason === 'AlreadyExists';
  }
  get isNotFound(): boolean {
    return this.code === 404;
  }
}

export interface ListResult<T> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string };
  items: T[];
}

/** Resource paths. */
export const paths = {
  core: (ns: string, plural: string, name?: string): string => `/api/v1/namespaces/${ns}/${plural}${name ? `/${name}` : ''}`,
  group: (gv: string, ns: string, plural: string, name?: string): string => `/apis/${gv}/namespaces/${ns}/${plural}${name ? `/${name}` : ''}`,
};

export class KubeApi {
  constructor(
    private readonly conn: Connection,
    private readonly userAgent = 'etcd-operator',
    private readonly timeoutMs = 15000,
  ) {}

  /** GET; undefined on 404. */
  async get<T>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (e) {
      if (e instanceof ApiError && e.isNotFound) return undefined;
      throw e;
    }
  }
  list<T>(path: string, labelSelector?: string): Promise<ListResult<T>> {
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return this.request<ListResult<T>>('GET', path + q);
  }
  create<T>(collectionPath: string, body: unknown): Promise<T> {
    return this.request<T>('POST', collectionPath, body);
  }
  /** PUT: the body's metadata.resourceVersion makes it a compare-and-swap (409 Conflict when stale). */
  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }
  mergePatch<T>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, patch, 'application/merge-patch+json');
  }
  /** DELETE; false when it was already gone. `uid` makes it a precondition (do not delete a re-created namesake). */
  async delete(path: string, opts: { uid?: string; propagationPolicy?: 'Background' | 'Foreground' | 'Orphan' } = {}): Promise<boolean> {
    const body: Record<string, unknown> = { kind: 'DeleteOptions', apiVersion: 'v1' };
    if (opts.uid) body.preconditions = { uid: opts.uid };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    try {
      await this.request('DELETE', path, body);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.isNotFound) return false;
      throw e;
    }
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const url = new URL(this.conn.server.replace(/\/+$/, '') + path);
    const opts: https.RequestOptions = { method, headers: { Accept: 'application/json', 'User-Agent': this.userAgent } };
    await this.conn.configure(opts);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = (opts.headers ?? {}) as Record<string, string>;
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    opts.headers = headers;
    const lib = url.protocol === 'https:' ? https : http;
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = lib.request(url, opts, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        r.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
    let parsed: unknown;
    try {
      parsed = res.text === '' ? undefined : JSON.parse(res.text);
    } catch {
      parsed = undefined;
    }
    if (res.status < 200 || res.status > 299) {
      const st = (parsed ?? {}) as Status;
      throw new ApiError(res.status, st.reason ?? '', `${method} ${path}: ${res.status} ${st.message ?? res.text.slice(0, 200)}`);
    }
    return parsed as T;
  }
}
