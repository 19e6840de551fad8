/**
 * The members' metrics, scraped by Debian's real Prometheus (/usr/bin/prometheus): the operator brings up a
 * 3-member cluster of real member processes (test/operator/e2e-env.ts) whose members listen for /metrics on the
 * plain-HTTP port 2381, and a headless metrics Service over them. Prometheus must find the members from that Service
 * and scrape them with no client certificate; a PromQL query over its HTTP API must then answer
 * etcd_server_has_leader = 1 for every member.
 *
 * Debian builds Prometheus without its Kubernetes service discovery (no kubernetes_sd_configs), so the test stands in
 * for it: an http_sd_configs endpoint serves, from the test API server, what kubernetes_sd role `endpoints` would give
 * — one target per address of every Service annotated prometheus.io/scrape=true, on its port named `metrics`, with the
 * pod and the Service's labels — so the targets come from the Service and its Endpoints, not from the test.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import * as yaml from 'js-yaml';
import { E2EEnv } from './e2e-env';
import { freePort } from '../support/real-etcd';
import { waitFor } from '../support/kube/kubelet';
import { request } from '../support/http';

const PROMETHEUS = '/usr/bin/prometheus';
const NS = 'mon';
const NAME = 'mon';

jest.setTimeout(90_000);

const env = new E2EEnv(NS);
let failed = false;
let prom: ChildProcess | undefined;
let promOut = '';
let promURL = '';
let sd: http.Server | undefined;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prometheus-'));

beforeAll(async () => {
  if (!fs.existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: apt-get install -y prometheus (as .ci/run does)`);
  await env.start('e2e-prometheus-operator', ['--resync', '2s', '--log-level', 'debug']);
});
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});
afterAll(async () => {
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom?.once('exit', r));
    prom.kill('SIGTERM');
    await exited;
  }
  await new Promise((r) => (sd ? sd.close(r) : r(undefined)));
  if (failed) process.stderr.write(`prometheus output:\n${promOut.slice(-4000)}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  await env.stop(failed, 'e2e-prometheus');
});

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}
async function query(q: string): Promise<Series[]> {
  const r = await request(promURL, 'GET', `/api/v1/query?query=${encodeURIComponent(q)}`, { timeoutMs: 3000 });
  const body = JSON.parse(r.body) as { status: string; data: { result: Series[] } };
  if (body.status !== 'success') throw new Error(r.body);
  return body.data.result;
}

test('the operator makes a metrics Service; its Endpoints name every member on the metrics port', async () => {
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME },
    spec: { size: 3, etcd: { heartbeatInterval: 50, electionTimeout: 500 } },
  });
  await env.converged(NAME, 3);
  const svc = env.api.store.get('services', NS, `${NAME}-metrics`);
  expect(svc?.spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 2381 }] });
  const pods = env.pods(NAME);
  const ep = await waitFor('the metrics Endpoints', () => {
    const e = env.api.store.get('endpoints', NS, `${NAME}-metrics`) as { subsets?: { addresses?: { ip: string }[]; ports: { name: string; port: number }[] }[] } | undefined;
    return e?.subsets?.[0]?.addresses?.length === 3 ? e : undefined;
  });
  expect(ep.subsets?.[0].addresses?.map((a) => a.ip).sort()).toEqual(pods.map((p) => p.ip).sort());
  expect(ep.subsets?.[0].ports).toEqual([{ name: 'metrics', port: 2381, protocol: 'TCP' }]);
  // plain HTTP: no client certificate, no TLS at all
  for (const p of pods) expect((await request(`http://${p.ip}:2381`, 'GET', '/metrics')).body).toMatch(/^etcd_server_has_leader 1$/m);
});

/** kubernetes_sd role `endpoints` with the usual annotation-driven relabelling, as http_sd target groups. */
function endpointTargets(): { targets: string[]; labels: Record<string, string> }[] {
  const out: { targets: string[]; labels: Record<string, string> }[] = [];
  for (const svc of env.api.store.list('services', NS)) {
    if (svc.metadata.annotations?.['prometheus.io/scrape'] !== 'true') continue;
    const ep = env.api.store.get('endpoints', NS, svc.metadata.name as string) as { subsets?: { addresses?: { ip: string; targetRef?: { name: string } }[]; ports?: { name?: string; port: number }[] }[] } | undefined;
    for (const sub of ep?.subsets ?? []) {
      for (const port of (sub.ports ?? []).filter((p) => p.name === 'metrics')) {
        for (const a of sub.addresses ?? []) {
          out.push({ targets: [`${a.ip}:${port.port}`], labels: { etcd_cluster: svc.metadata.labels?.['etcd.ts-etcd.io/cluster'] ?? '', pod: a.targetRef?.name ?? '', service: svc.metadata.name as string } });
        }
      }
    }
  }
  return out;
}

test("Debian's Prometheus discovers the members through the metrics Service and every member says it has a leader", async () => {
  sd = http.createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(endpointTargets())));
  await new Promise<void>((r) => sd?.listen(0, '127.0.0.1', () => r()));
  const port = await freePort();
  promURL = `http://127.0.0.1:${port}`;
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: 'etcd', http_sd_configs: [{ url: `http://127.0.0.1:${(sd.address() as AddressInfo).port}/`, refresh_interval: '1s' }] }],
  };
  const cfg = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(cfg, yaml.dump(config));
  prom = spawn(PROMETHEUS, [`--config.file=${cfg}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  prom.stdout?.on('data', (d: Buffer) => (promOut += d.toString()));
  prom.stderr?.on('data', (d: Buffer) => (promOut += d.toString()));
  await waitFor('Prometheus to be ready', async () => {
    if (prom?.exitCode !== null) throw new Error(`prometheus exited: ${promOut.slice(-2000)}`);
    return (await request(promURL, 'GET', '/-/ready', { timeoutMs: 1000 })).status === 200;
  }, 30_000, 200);

  const pods = env.pods(NAME).map((p) => p.name).sort();
  const series = await waitFor(
    'etcd_server_has_leader of every member in Prometheus',
    async () => {
      const s = await query('etcd_server_has_leader');
      return s.length === 3 && s.every((x) => x.value[1] === '1') ? s : undefined;
    },
    60_000,
    500,
  );
  expect(series.map((s) => s.metric.pod).sort()).toEqual(pods);
  for (const s of series) expect(s.metric).toMatchObject({ __name__: 'etcd_server_has_leader', job: 'etcd', etcd_cluster: NAME, service: `${NAME}-metrics`, instance: `${env.kubelet.ipOf(NS, s.metric.pod)}:2381` });
  // the scrapes themselves: three healthy targets, over plain HTTP
  const up = await query('up{job="etcd"}');
  expect(up.map((u) => [u.metric.pod, u.value[1]]).sort()).toEqual(pods.map((p) => [p, '1']));
  const targets = JSON.parse((await request(promURL, 'GET', '/api/v1/targets?state=active')).body) as { data: { activeTargets: { scrapeUrl: string; health: string }[] } };
  expect(targets.data.activeTargets.map((t) => t.scrapeUrl).sort()).toEqual(env.pods(NAME).map((p) => `http://${p.ip}:2381/metrics`).sort());
  // eslint-disable-next-line no-console
  console.log(`Prometheus: ${series.map((s) => `${s.metric.pod}=${s.value[1]}`).join(' ')}`);
});
