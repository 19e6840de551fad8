/**
 * The built server's process lifecycle: a graceful SIGTERM under load, bad flags, and --enable-v2=false, checked
 * against Debian's real etcd where etcd defines the behaviour.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { OUR_ETCD, RunningEtcd, freePort, runRealEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';
import { missingAcks, publishedClientURLs, readLoad, request, waitFor, writeLoad } from './load';

let root: string;
const running = new Set<RunningEtcd>();

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'etcd-lifecycle-'));
});
afterAll(async () => {
  await Promise.all([...running].map((e) => e.stop()));
  rmSync(root, { recursive: true, force: true });
});

async function track(p: Promise<RunningEtcd>): Promise<RunningEtcd> {
  const e = await p;
  running.add(e);
  return e;
}

/** Whether a new TCP connection to the URL's port is refused (the listener is closed). */
function refused(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/** A PUT whose body is sent in two parts, so that it is in flight for as long as the test wants. */
function splitPut(
  url: string,
  key: string,
  value: string,
): { connected: Promise<void>; sendRest: () => void; answer: Promise<{ status: number; body: string }> } {
  const body = `value=${value}`;
  const req = http.request(`${url}/v2/keys/${key}`, {
    method: 'PUT',
    agent: false,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length },
  });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.setTimeout(15000, () => req.destroy(new Error('no answer within 15 s')));
  });
  const connected = new Promise<void>((resolve) => req.once('socket', (sock) => sock.once('connect', () => resolve())));
  req.write(body.slice(0, 3));
  return { connected, sendRest: () => req.end(body.slice(3)), answer };
}

test('SIGTERM under load: requests in flight are answered, the process exits 0, and a restart has the data', async () => {
  const dir = path.join(root, 'sigterm');
  const ports = { client: await freePort(), peer: await freePort() };
  const e = await track(startOurEtcd(dir, [], ports));
  expect(await publishedClientURLs(e.clientURL)).toEqual([e.clientURL]);
  // A request that has started (headers and part of the body are in) when the signal comes.
  const slow = splitPut(e.clientURL, 'slow', 'finished-after-sigterm');
  await slow.connected;
  let exited: Promise<number | string> | undefined;
  const load = await writeLoad({
    url: e.clientURL,
    prefix: 'k',
    clients: 12,
    maxWrites: 3000,
    maxMs: 15000,
    trigger: { afterAcks: 300, action: () => (exited = e.signal('SIGTERM')) },
  });
  expect(load.triggered).toBe(true);
  // Requests are answered (with success) or refused at the connection, never with an error status.
  expect(load.refused).toEqual([]);
  // The listener closes, yet the member keeps running until the started request is answered.
  await waitFor('the client listener to close', () => refused(e.clientURL));
  slow.sendRest();
  const a = await slow.answer;
  expect(a.status).toBe(201);
  expect(JSON.parse(a.body)).toMatchObject({ action: 'set', node: { key: '/slow', value: 'finished-after-sigterm' } });
  expect(await exited).toBe(0);
  running.delete(e);
  expect(e.output()).toMatch(/received terminated signal, shutting down/);

  const again = await track(startOurEtcd(dir, [], ports));
  const { nodes } = await readLoad(again.clientURL);
  expect(missingAcks(load.acked, nodes)).toEqual([]);
  const slowNow = await request(`${again.clientURL}/v2/keys/slow`, 'GET');
  expect(JSON.parse(slowNow.body)).toMatchObject({ node: { value: 'finished-after-sigterm' } });
  await again.stop();
  running.delete(again);
});

test('SIGTERM with gRPC clients connected: an idle connection is closed at once (GOAWAY), a watch stream is cut after its grace', async () => {
  const grpc = await import('@grpc/grpc-js');
  const { KVClient, WatchClient, RangeRequest, WatchRequest } = await import('../../server/api/v3rpc/pb/etcdserverpb/rpc');
  const ports = { client: await freePort(), peer: await freePort() };
  const e = await track(startOurEtcd(path.join(root, 'sigterm-grpc'), [], ports));
  const target = new URL(e.clientURL).host;
  const kv = new KVClient(target, grpc.credentials.createInsecure());
  // one finished call: the connection stays open, idle
  await new Promise<void>((resolve, reject) => kv.range(RangeRequest.fromPartial({ key: Buffer.from('a') }), (err) => (err ? reject(err) : resolve())));
  const t0 = Date.now();
  const idleExit = await e.signal('SIGTERM');
  const idleMs = Date.now() - t0;
  running.delete(e);
  kv.close();
  expect(idleExit).toBe(0);
  // before, the member waited 5 s for the client's connection to go (as a Kubernetes grace period of 5 s would not)
  expect(idleMs).toBeLessThan(1500);

  const again = await track(startOurEtcd(path.join(root, 'sigterm-grpc'), [], ports));
  const watch = new WatchClient(target, grpc.credentials.createInsecure());
  const stream = watch.watch();
  const ended = new Promise<string>((resolve) => {
    stream.on('error', (err: { code: number }) => resolve(`error ${err.code}`));
    stream.on('end', () => resolve('end'));
  });
  const created = new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.write(WatchRequest.fromPartial({ createRequest: { key: Buffer.from('w') } }));
  await created;
  const t1 = Date.now();
  const watchExit = await again.signal('SIGTERM');
  const watchMs = Date.now() - t1;
  running.delete(again);
  expect(watchExit).toBe(0);
  // the open watch is given its grace (2 s), then cut: the member is gone well within 5 s
  expect(watchMs).toBeGreaterThanOrEqual(1500);
  expect(watchMs).toBeLessThan(4500);
  expect(await ended).toMatch(/^(end|error \d+)$/);
  watch.close();
});

/** Runs our etcd command to its exit (bad flags exit by themselves), bounded by a timeout. */
function runOurs(args: string[], cwd: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [OUR_ETCD, ...args], { cwd, encoding: 'utf8', timeout: 15000 });
  return { status: r.status, stderr: `${r.stderr}${r.stdout}` };
}

test.each([[['--bogus']], [['--snapshot-count=abc']], [['--snapshot-count', 'abc']]])(
  'bad flags %j: a non-zero exit with etcd\'s message and usage, and no data dir created',
  (args) => {
    const dir = mkdtempSync(path.join(root, 'flags-'));
    const dataDir = path.join(dir, 'data');
    const real = runRealEtcd([...args, '--data-dir', dataDir], dir);
    const ours = runOurs([...args, '--data-dir', dataDir], dir);
    expect(real.status).toBe(2);
    expect(ours.status).toBe(real.status);
    const [realFirst, ...realRest] = real.stderr.split('\n');
    const [oursFirst, ...oursRest] = ours.stderr.split('\n');
    // The flag package's message ("flag provided but not defined: -bogus", "invalid value ... for flag ..."), then
    // etcd's usage lines.
    expect(oursFirst.startsWith(realFirst)).toBe(true);
    expect(oursRest).toEqual(realRest);
    expect(existsSync(dataDir)).toBe(false);
  },
);

test('--enable-v2=false: the v2 API answers 404 as the real etcd does, the rest is served', async () => {
  const [real, ours] = await Promise.all([
    track(startRealEtcd(path.join(root, 'v2off-real'), ['--enable-v2=false'])),
    track(startOurEtcd(path.join(root, 'v2off-ours'), ['--enable-v2=false'])),
  ]);
  const probes: [string, string, string?][] = [
    ['GET', '/v2/keys/foo'],
    ['PUT', '/v2/keys/foo', 'value=1'],
    ['GET', '/v2/keys'],
    ['GET', '/v2/keys/?recursive=true'],
    ['DELETE', '/v2/keys/foo'],
    ['GET', '/v2/members'],
    ['POST', '/v2/members', '{"peerURLs":["http://127.0.0.1:1"]}'],
    ['GET', '/v2/machines'],
    ['GET', '/v2/stats/self'],
    ['GET', '/v2/stats/store'],
    ['GET', '/v2/stats/leader'],
    ['GET', '/v2'],
    ['GET', '/health'],
    ['GET', '/version'],
  ];
  const diffs: string[] = [];
  for (const [method, p, body] of probes) {
    const [r, o] = await Promise.all([request(real.clientURL + p, method, body), request(ours.clientURL + p, method, body)]);
    const summary = (a: typeof r) => ({
      status: a.status,
      type: p.startsWith('/v2') ? a.headers['content-type'] : '',
      body: p === '/version' ? '' : a.body,
    });
    if (JSON.stringify(summary(r)) !== JSON.stringify(summary(o))) {
      diffs.push(`${method} ${p}\n  real: ${JSON.stringify(summary(r))}\n  ours: ${JSON.stringify(summary(o))}`);
    }
  }
  expect(diffs).toEqual([]);
  const m = await request(`${ours.clientURL}/metrics`, 'GET');
  expect(m.status).toBe(200);
  await Promise.all([real.stop(), ours.stop()]);
  running.delete(real);
  running.delete(ours);
});

test('--wal-dir holds the WAL, --listen-metrics-urls serves /metrics and /health only, --log-level=warn keeps info out', async () => {
  const dataDir = path.join(root, 'flags-data');
  const walDir = path.join(root, 'flags-wal');
  const metricsURL = `http://127.0.0.1:${await freePort()}`;
  const ports = { client: await freePort(), peer: await freePort() };
  const args = ['--wal-dir', walDir, '--listen-metrics-urls', metricsURL, '--log-level', 'warn'];
  const first = await track(startOurEtcd(dataDir, args, ports));
  expect((await request(`${first.clientURL}/v2/keys/flags`, 'PUT', 'value=kept')).status).toBe(201);
  expect(readdirSync(walDir).some((n) => n.endsWith('.wal'))).toBe(true);
  expect(existsSync(path.join(dataDir, 'member', 'wal'))).toBe(false);
  const metrics = await request(`${metricsURL}/metrics`, 'GET');
  expect(metrics.status).toBe(200);
  expect(metrics.body).toMatch(/^etcd_server_has_leader 1$/m);
  expect((await request(`${metricsURL}/health`, 'GET')).body).toBe('{"health":"true"}');
  for (const p of ['/v2/members', '/v2/keys/flags', '/version']) expect((await request(`${metricsURL}${p}`, 'GET')).status).toBe(404);
  expect(first.output()).not.toMatch(/ I \| /);
  // A restart on the same directories finds the write in the WAL dir.
  expect(await first.signal('SIGTERM')).toBe(0);
  running.delete(first);
  const second = await track(startOurEtcd(dataDir, args, ports));
  const again = await request(`${second.clientURL}/v2/keys/flags`, 'GET');
  expect(JSON.parse(again.body).node.value).toBe('kept');
});
