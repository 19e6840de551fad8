/** A small HTTP client for tests: one request, the whole answer. */
import * as http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  /** A form body (sent as application/x-www-form-urlencoded) or raw text with its own content type. */
  form?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
  agent?: http.Agent;
}

export function request(base: string, method: string, path: string, o: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers };
    let payload: string | Buffer | undefined = o.body;
    if (o.form !== undefined) {
      payload = o.form;
      headers['Content-Type'] ??= 'application/x-www-form-urlencoded';
    }
    if (payload !== undefined) headers['Content-Length'] = String(Buffer.byteLength(payload));
    const req = http.request(new URL(path, base), { method, headers, agent: o.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs ?? 15000, () => req.destroy(new Error(`${method} ${path}: no answer in ${o.timeoutMs ?? 15000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
