/**
 * The etcd image in a container (podman's Docker-compatible API through testcontainers): the README's curl examples
 * against it, flags passed straight through the ENTRYPOINT, the HEALTHCHECK command (over http, and over https with
 * --auto-tls), the non-root user, and data kept in the volume across a restart. Needs `.ci/podman-setup.sh` (see engine-env.ts); fails, never skips, without it.
 */
import './engine-env';
import { GenericContainer, StartedTestContainer, Wait } from 'testcontainers';
import { buildTestImage, buildTestInputs, inspectImage, podman, removeImages, RUN_ID, singleMemberFlags, startContainer, testRef, TestInputs } from './support';
import { NODE_FLAGS } from '../../server/node-flags';

jest.setTimeout(120_000);

const IMAGE = testRef('etcd');
let inputs: TestInputs | undefined;
const volumes: string[] = [];

function start(name: string, volume?: string): Promise<StartedTestContainer> {
  let c = new GenericContainer(IMAGE)
    .withCommand(singleMemberFlags(name))
    .withExposedPorts(2379, 2380)
    .withWaitStrategy(Wait.forHttp('/health', 2379).forStatusCode(200))
    .withStartupTimeout(60_000);
  if (volume) c = c.withBindMounts([{ source: volume, target: '/var/lib/etcd' }]);
  return startContainer(c);
}

beforeAll(async () => {
  inputs = await buildTestInputs();
  await buildTestImage('etcd', IMAGE, inputs, { VERSION: '9.9.9-test', REVISION: 'abc123', SOURCE: 'https://example.invalid/ts-etcd' }, true);
}, 300_000);

afterAll(async () => {
  for (const v of volumes) await podman(['volume', 'rm', '--force', v]).catch(() => undefined);
  await removeImages([IMAGE, ...(inputs ? [inputs.app, inputs.base] : [])]);
}, 120_000);

test('the image: entrypoint, user, volume, ports, labels from the build arguments', async () => {
  const { Config } = await inspectImage(IMAGE);
  expect(Config.Entrypoint).toEqual(['node', ...NODE_FLAGS, '/app/dist/server/main.js']);
  expect(Config.User).toBe('1000:1000');
  expect(Object.keys(Config.ExposedPorts ?? {}).sort()).toEqual(['2379/tcp', '2380/tcp']);
  expect(Object.keys(Config.Volumes ?? {})).toEqual(['/var/lib/etcd']);
  expect(Config.WorkingDir).toBe('/var/lib/etcd');
  expect(Config.Labels).toMatchObject({
    'org.opencontainers.image.version': '9.9.9-test',
    'org.opencontainers.image.revision': 'abc123',
    'org.opencontainers.image.source': 'https://example.invalid/ts-etcd',
  });
  expect(Config.Healthcheck?.Test?.[0]).toBe('CMD');
});

test('arguments are etcd flags: --version and a bad flag', async () => {
  const v = await podman(['run', '--rm', IMAGE, '--version'], 60_000);
  expect(v.stdout).toMatch(/^etcd Version: \S+\nAPI Version: 3\.4\n/);
  await expect(podman(['run', '--rm', IMAGE, '--no-such-flag'], 60_000)).rejects.toThrow(/flag provided but not defined: -no-such-flag|no-such-flag/);
});

describe('a member in a container', () => {
  let c: StartedTestContainer;
  let url = '';
  beforeAll(async () => {
    c = await start('s1');
    url = `http://${c.getHost()}:${c.getMappedPort(2379)}`;
  }, 120_000);
  afterAll(async () => {
    await c?.stop({ timeout: 10_000 });
  }, 60_000);

  const form = (body: Record<string, string>) => ({
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body).toString(),
  });

  test('the README: set, get, delete, TTL, key not found', async () => {
    // curl -L http://127.0.0.1:2379/v2/keys/message -XPUT -d value="Hello"
    let r = await fetch(`${url}/v2/keys/message`, { method: 'PUT', ...form({ value: 'Hello' }) });
    expect(r.status).toBe(201);
    const set = (await r.json()) as { action: string; node: { key: string; value: string; modifiedIndex: number; createdIndex: number } };
    expect(set).toEqual({ action: 'set', node: { key: '/message', value: 'Hello', modifiedIndex: expect.any(Number), createdIndex: set.node.modifiedIndex } });
    expect(r.headers.get('x-etcd-index')).toBe(String(set.node.modifiedIndex));

    // curl -L http://127.0.0.1:2379/v2/keys/message
    r = await fetch(`${url}/v2/keys/message`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ action: 'get', node: set.node });

    // curl -L http://127.0.0.1:2379/v2/keys/message -XDELETE
    r = await fetch(`${url}/v2/keys/message`, { method: 'DELETE' });
    expect(r.status).toBe(200);
    const del = (await r.json()) as { action: string; node: { modifiedIndex: number } };
    expect(del).toEqual({
      action: 'delete',
      node: { key: '/message', modifiedIndex: set.node.modifiedIndex + 1, createdIndex: set.node.createdIndex },
      prevNode: set.node,
    });

    // curl -L http://127.0.0.1:2379/v2/keys/foo -XPUT -d value=bar -d ttl=20
    r = await fetch(`${url}/v2/keys/foo?ttl=20`, { method: 'PUT', ...form({ value: 'bar' }) });
    expect(r.status).toBe(201);
    const ttl = (await r.json()) as { node: { ttl: number; expiration: string } };
    expect(ttl).toMatchObject({ action: 'set', node: { key: '/foo', value: 'bar', ttl: 20 } });
    expect(Date.parse(ttl.node.expiration) - Date.now()).toBeGreaterThan(10_000);

    // curl -L http://127.0.0.1:2379/v2/keys/message  → 404, errorCode 100
    r = await fetch(`${url}/v2/keys/message`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ errorCode: 100, message: 'Key not found', cause: '/message', index: expect.any(Number) });
  });

  test('/health and /version', async () => {
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ health: 'true' });
    expect(await (await fetch(`${url}/version`)).json()).toEqual({ etcdserver: expect.any(String), etcdcluster: expect.any(String) });
  });

  test("the image's HEALTHCHECK command passes inside the container", async () => {
    const { Config } = await inspectImage(IMAGE);
    const test = Config.Healthcheck?.Test ?? [];
    expect(test[0]).toBe('CMD');
    const res = await c.exec(test.slice(1));
    expect(res.exitCode).toBe(0);
  });

  test('runs as uid 1000 with its data in the volume', async () => {
    const res = await c.exec(['node', '-e', 'const fs=require("fs");console.log(process.getuid(), fs.statSync("/var/lib/etcd/s1.etcd/member/wal").isDirectory(), fs.statSync("/var/lib/etcd/s1.etcd").uid)']);
    expect(res.exitCode).toBe(0);
    expect(res.output.trim()).toBe('1000 true 1000');
  });
});

test("the HEALTHCHECK passes for a member serving https client URLs (--auto-tls), reading its flags", async () => {
  // https client URLs with a self-signed certificate; the peer side stays http. The flags are separate words (as the
  // operator's pods and `docker run` pass them), and HEALTHCHECK_URL is not set: the probe finds the https URL itself.
  const flags = singleMemberFlags('tls').map((f) => f.replace(/^http:\/\/(0\.0\.0\.0|127\.0\.0\.1):2379$/, 'https://$1:2379'));
  expect(flags).toEqual(expect.arrayContaining(['https://0.0.0.0:2379', 'https://127.0.0.1:2379']));
  const c = await startContainer(
    new GenericContainer(IMAGE)
      .withCommand([...flags, '--auto-tls'])
      .withExposedPorts(2379, 2380)
      .withWaitStrategy(Wait.forHttp('/health', 2379).usingTls().allowInsecure().forStatusCode(200))
      .withStartupTimeout(60_000),
  );
  try {
    const { Config } = await inspectImage(IMAGE);
    const probe = (Config.Healthcheck?.Test ?? []).slice(1);
    expect(probe[0]).toBe('node');
    const ok = await c.exec(probe);
    expect([ok.exitCode, ok.output]).toEqual([0, expect.any(String)]); // the output explains a failure
    // it is TLS that made the difference: the same probe told to use plain http fails against this member
    const plain = await c.exec(probe, { env: { HEALTHCHECK_URL: 'http://127.0.0.1:2379/health' } });
    expect(plain.exitCode).toBe(1);
  } finally {
    await c.stop({ timeout: 10_000 });
  }
});

test('the data survives a restart on the same named volume (graceful stop on SIGTERM)', async () => {
  const volume = `ts-etcd-test-${RUN_ID}`;
  volumes.push(volume);
  await podman(['volume', 'create', volume]);
  let c = await start('s2', volume);
  try {
    let url = `http://${c.getHost()}:${c.getMappedPort(2379)}`;
    const r = await fetch(`${url}/v2/keys/kept`, { method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'value=across-restarts' });
    expect(r.status).toBe(201);
    const t0 = Date.now();
    await c.stop({ timeout: 10_000 });
    expect(Date.now() - t0).toBeLessThan(9_000); // stopped on SIGTERM, not killed after the timeout
    c = await start('s2', volume);
    url = `http://${c.getHost()}:${c.getMappedPort(2379)}`;
    const got = (await (await fetch(`${url}/v2/keys/kept`)).json()) as { node: { value: string } };
    expect(got.node.value).toBe('across-restarts');
  } finally {
    await c.stop({ timeout: 10_000 });
  }
});
