/**
 * A v2 keys API load generator: `connections` keep-alive connections each issue requests back to back, bounded by
 * a request count and a time limit. Reports throughput and latency percentiles.
 */
import * as http from 'node:http';
import * as https from 'node:https';

export type Workload = 'put' | 'get';

export interface LoadOptions {
  endpoint: string;
  workload: Workload;
  connections: number;
  /** Stop after this many requests in all... */
  maxRequests: number;
  /** ...or after this long, whichever comes first. */
  maxSeconds: number;
  valueSize: number;
  /** For https:// endpoints: client certificate, key and CA. */
  tls?: https.AgentOptions;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  throughput: number;
  p50ms: number;
  p99ms: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return sorted[i];
}

function request(agent: http.Agent, url: URL, method: string, body: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method,
        agent,
        headers: body !== undefined ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } : undefined,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = o.endpoint.startsWith('https:') ? new https.Agent({ keepAlive: true, maxSockets: o.connections, ...o.tls }) : new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const base = o.endpoint.replace(/\/+$/, '');
  const value = 'v'.repeat(o.valueSize);
  const putBody = `value=${value}`;
  // GET reads one key, written first.
  if (o.workload === 'get') await request(agent, new URL(`${base}/v2/keys/bench-get`), 'PUT', putBody);
  const latencies = new Float64Array(o.maxRequests);
  let issued = 0;
  let done = 0;
  let errors = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(o.maxSeconds * 1e9));
  const run = `${process.pid}-${Date.now()}`;
  const worker = async (conn: number): Promise<void> => {
    for (;;) {
      if (issued >= o.maxRequests || process.hrtime.bigint() >= deadline) return;
      const n = issued++;
      const t0 = process.hrtime.bigint();
      try {
        const status =
          o.workload === 'put'
            ? await request(agent, new URL(`${base}/v2/keys/bench/${run}/${conn}/${n}`), 'PUT', putBody)
            : await request(agent, new URL(`${base}/v2/keys/bench-get`), 'GET', undefined);
        if (status >= 300) errors++;
      } catch {
        errors++;
      }
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: o.connections }, (_, i) => worker(i)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  const sorted = latencies.subarray(0, done).sort();
  return { requests: done, errors, seconds, throughput: done / seconds, p50ms: percentile(sorted, 50), p99ms: percentile(sorted, 99) };
}

/**
 * Load that is not measured, run on every server right after it starts (etcd and ours alike): a server that was
 * just started is measured in its steady state, not in its first second (Node compiles hot code as it runs; a Go
 * binary does not need to). BENCH_WARMUP_SECONDS (default 1; 0 turns it off).
 */
export async function warmUp(endpoint: string, tls?: https.AgentOptions): Promise<void> {
  const seconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
  if (!(seconds > 0)) return;
  await runLoad({ endpoint, workload: 'put', connections: 16, maxRequests: 50000, maxSeconds: seconds, valueSize: 64, tls });
  await runLoad({ endpoint, workload: 'get', connections: 16, maxRequests: 50000, maxSeconds: seconds / 2, valueSize: 64, tls });
}
