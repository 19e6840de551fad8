/**
 * The bench's load generator, against a plain HTTP server of the test's own: a fixed amount of work ends the run at
 * its count, not at the time bound (the 3-member rows give both servers the same writes by it), for wrk and for the
 * Node generator alike; and wrk's own report is read as wrk printed it.
 */
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { WRK, parseWrk, runLoad } from '../../bench/v2-load';

let server: http.Server;
let url: string;
let answered = 0;
const paths = new Set<string>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      answered++;
      paths.add(req.url ?? '');
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  answered = 0;
  paths.clear();
});

// wrk is Debian's package (.ci/run installs it); the bench falls back to the Node generator without it, and so
// does this test's first case then: the count must hold either way.
test('a PUT load of a fixed count ends at that count, long before its time bound', async () => {
  // (the bound is far from both the count's time and jest's 60 s timeout)
  const started = performance.now();
  const r = await runLoad({ endpoint: url, workload: 'put', connections: 8, maxRequests: Infinity, requests: 3000, maxSeconds: 50, valueSize: 64 });
  const elapsed = (performance.now() - started) / 1000;
  expect(r.generator).toBe(existsSync(WRK) ? 'wrk' : 'node');
  expect(r.errors).toBe(0);
  // wrk ends at its next 0.1 s check after the count: a few more answers, never fewer.
  expect(r.requests).toBeGreaterThanOrEqual(3000);
  expect(r.requests).toBeLessThanOrEqual(answered);
  // Ended by the count, not by the 50 s bound (3,000 PUTs take well under a second here).
  expect(elapsed).toBeLessThan(25);
  expect(r.seconds).toBeLessThan(25);
  // Fresh keys: every write has its own path.
  expect(paths.size).toBe(answered);
});

test('the Node generator stops exactly at the count', async () => {
  const r = await runLoad({ endpoint: url, workload: 'put', connections: 8, maxRequests: Infinity, requests: 500, maxSeconds: 30, valueSize: 64, generator: 'node' });
  expect(r.requests).toBe(500);
  expect(answered).toBe(500);
});

test('a count is refused for GET loads', async () => {
  await expect(runLoad({ endpoint: url, workload: 'get', connections: 1, maxRequests: Infinity, requests: 10, maxSeconds: 1, valueSize: 64 })).rejects.toThrow(/PUT loads only/);
});

test("wrk's report is read: requests, time, percentiles in their units, errors and its CPU", () => {
  const out = [
    'Running 1s test @ http://127.0.0.1:2379',
    '  1 threads and 8 connections',
    '  Latency Distribution',
    '     50%  812.00us',
    '     75%    1.01ms',
    '     90%    1.20ms',
    '     99%    2.01s',
    '  21298 requests in 499.94ms, 9.93MB read',
    '  Non-2xx or 3xx responses: 3',
    'Requests/sec:  42601.37',
    '0m0.010s 0m0.002s',
    '0m0.300s 0m0.100s',
  ].join('\n');
  const r = parseWrk(out);
  expect(r).toMatchObject({ requests: 21298, errors: 3, throughput: 42601.37, generator: 'wrk' });
  expect(r.p50ms).toBeCloseTo(0.812, 9);
  expect(r.p99ms).toBeCloseTo(2010, 9);
  expect(r.seconds).toBeCloseTo(0.49994, 5);
  expect(r.generatorCpu).toBeCloseTo(0.4 / 0.49994, 5);
});
