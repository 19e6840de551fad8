/**
 * The operator image in a container against the test Kubernetes API server (test/support/kube/api-server.ts, on
 * the host's loopback; the container shares the host's network): it serves /healthz, takes the lease, and acts on
 * an EtcdCluster by creating its members' pods. Without any cluster configuration it fails with a clear message.
 */
import './engine-env';
import * as net from 'net';
import { GenericContainer, StartedTestContainer, Wait } from 'testcontainers';
import { KubeApiServer } from '../support/kube/api-server';
import { buildTestImage, buildTestInputs, inspectImage, podman, removeImages, testRef, TestInputs } from './support';

jest.setTimeout(120_000);

const IMAGE = testRef('operator');
let inputs: TestInputs | undefined;

beforeAll(async () => {
  inputs = await buildTestInputs();
  await buildTestImage('operator', IMAGE, inputs);
}, 300_000);

afterAll(async () => {
  await removeImages([IMAGE, ...(inputs ? [inputs.app, inputs.base] : [])]);
}, 120_000);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

test('the image: the operator command as entrypoint, non-root, /healthz health check', async () => {
  const { Config } = await inspectImage(IMAGE);
  expect(Config.Entrypoint).toEqual(['node', '/app/dist/operator/main.js']);
  expect(Config.User).toBe('1000:1000');
  expect(Object.keys(Config.ExposedPorts ?? {})).toEqual(['8080/tcp']);
  expect(Config.Healthcheck?.Test?.join(' ')).toContain('/healthz');
});

test('--help, and a clear message (not a crash) on a bad flag', async () => {
  expect((await podman(['run', '--rm', IMAGE, '--help'], 60_000)).stdout).toMatch(/usage: etcd-operator/);
  // The operator must exit with its own message, not crash on a missing module.
  const err = await podman(['run', '--rm', IMAGE, '--no-such-flag'], 60_000).then(
    () => undefined,
    (e: Error) => e.message,
  );
  expect(err).toMatch(/etcd-operator: unknown flag --no-such-flag/);
  expect(err).not.toMatch(/Cannot find module|SyntaxError/);
});

describe('against the test API server', () => {
  let api: KubeApiServer;
  let op: StartedTestContainer | undefined;
  let port = 0;

  beforeAll(async () => {
    api = new KubeApiServer();
    await api.start();
    port = await freePort();
    op = await new GenericContainer(IMAGE)
      .withNetworkMode('host')
      .withCommand([`--server=${api.url}`, '--namespace=default', `--metrics-addr=127.0.0.1:${port}`, '--lease-namespace=default', '--identity=op-test', '--resync=5s'])
      .withEnvironment({ HEALTHCHECK_URL: `http://127.0.0.1:${port}/healthz` })
      .withWaitStrategy(Wait.forLogMessage(/serving \/metrics and \/healthz/))
      .withStartupTimeout(60_000)
      .start();
  }, 120_000);

  afterAll(async () => {
    await op?.stop({ timeout: 10_000 }).catch(() => undefined);
    await api?.stop();
  }, 60_000);

  test('serves /healthz; its HEALTHCHECK passes', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const { Config } = await inspectImage(IMAGE);
    expect((await op!.exec(Config.Healthcheck!.Test!.slice(1))).exitCode).toBe(0);
  });

  test('takes the lease and creates the pods of an EtcdCluster', async () => {
    api.store.create('etcdclusters', 'default', {
      apiVersion: 'etcd.ts-etcd.io/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name: 'demo', namespace: 'default' },
      spec: { size: 1 },
    });
    const deadline = Date.now() + 60_000;
    let pods: ReturnType<KubeApiServer['store']['list']> = [];
    while (Date.now() < deadline) {
      pods = api.store.list('pods', 'default').filter((p) => p.metadata.labels?.['etcd.ts-etcd.io/cluster'] === 'demo');
      if (pods.length > 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(api.store.get('leases', 'default', 'etcd-operator')).toBeDefined();
    expect(pods.length).toBeGreaterThan(0);
    const spec = pods[0].spec as { containers: { image: string }[] };
    expect(spec.containers[0].image).toMatch(/^ts-etcd\/etcd:/);
  });
});
