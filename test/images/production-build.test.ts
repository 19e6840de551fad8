/**
 * The Dockerfiles' standard path, their build stage (`npm ci` with dev dependencies, `tsc`, `npm prune
 * --omit=dev`) and default target, run for real: no registry is reachable from a build here, so npm runs offline
 * from a copy of the host's npm cache, through a global npmrc mounted into the build — the Dockerfile itself is
 * unchanged. The second image reuses the first one's build stage (same instructions, same layer cache). The build image is the Node stand-in with a shell, cp, mkdir and the host's npm.
 * Builds in a podman store of its own (removed afterwards), so nothing it leaves can touch the other tests' images.
 */
import './engine-env';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildImage, buildNodeBase, podman, REPO, RUN_ID } from './support';

jest.setTimeout(600_000);

const store = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-etcd-store-'));
const G = ['--root', path.join(store, 'root'), '--runroot', path.join(store, 'run')];
const BASE = `localhost/ts-etcd-test/node-base:${RUN_ID}`;
const BUILD = `localhost/ts-etcd-test/node-build:${RUN_ID}`;
const volumes: string[] = [];

beforeAll(async () => {
  const cache = execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', env: process.env }).trim();
  if (!fs.existsSync(path.join(cache, '_cacache'))) throw new Error(`no npm cache at ${cache}: run \`npm ci\` first`);
  fs.cpSync(path.join(cache, '_cacache'), path.join(store, 'npm-cache/_cacache'), { recursive: true });
  // Whatever the lock needs and the copy lacks (a cache filled by `npm install` rather than `npm ci` can miss
  // metadata) is fetched on the host, where the registry is reachable.
  const warm = path.join(store, 'warm');
  fs.mkdirSync(warm);
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(REPO, f), path.join(warm, f));
  execFileSync('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--cache', path.join(store, 'npm-cache')], {
    cwd: warm,
    env: process.env,
    stdio: 'ignore',
    timeout: 240_000,
  });
  fs.rmSync(warm, { recursive: true, force: true });
  fs.writeFileSync(path.join(store, 'npmrc'), 'offline=true\ncache=/npm-cache\naudit=false\nfund=false\nupdate-notifier=false\n');
  volumes.push(`${path.join(store, 'npm-cache')}:/npm-cache`, `${path.join(store, 'npmrc')}:/usr/local/etc/npmrc:ro`);
  await buildNodeBase(BASE, { podmanArgs: G });
  await buildNodeBase(BUILD, { podmanArgs: G, buildTools: true });
}, 300_000);

afterAll(async () => {
  await podman([...G, 'rmi', '--all', '--force'], 120_000).catch(() => undefined);
  fs.rmSync(store, { recursive: true, force: true });
}, 180_000);

describe.each(['etcd', 'operator'])('%s image through its build stage', (which) => {
  const tag = `localhost/ts-etcd-test/${which}-built:${RUN_ID}`;
  test('compiles in the build stage and ships dist/ with production dependencies only', async () => {
    await buildImage({
      podmanArgs: G,
      dockerfile: path.join(REPO, 'images', which, 'Dockerfile'),
      context: REPO,
      tags: [tag],
      args: { BASE_IMAGE: BASE, BUILD_IMAGE: BUILD },
      volumes,
    });
    const check = await podman([...G, 'run', '--rm', '--entrypoint', 'node', tag, '-e', `
      const fs = require('fs');
      const has = (p) => fs.existsSync(p);
      console.log(JSON.stringify({
        entry: has('/app/dist/${which === 'etcd' ? 'server' : 'operator'}/main.js'),
        prod: ['express', 'winston', 'prom-client', 'js-yaml', '@kubernetes/client-node'].filter((p) => has('/app/node_modules/' + p)).length,
        dev: ['typescript', 'jest', '@swc/core', 'testcontainers', '@cdktf/hcl2json', 'dockerfile-ast'].filter((p) => has('/app/node_modules/' + p)),
        sources: has('/app/server') || has('/app/test') || has('/app/tsconfig.json'),
        npmInRuntime: has('/usr/local/bin/npm'),
        appOwner: fs.statSync('/app/dist').uid,
        dataOwner: has('/var/lib/etcd') ? fs.statSync('/var/lib/etcd').uid : null,
      }));`], 60_000);
    expect(JSON.parse(check.stdout)).toEqual({ entry: true, prod: 5, dev: [], sources: false, npmInRuntime: false, appOwner: 0, dataOwner: which === 'etcd' ? 1000 : null });
    const run = await podman([...G, 'run', '--rm', tag, which === 'etcd' ? '--version' : '--help'], 60_000);
    expect(run.stdout).toMatch(which === 'etcd' ? /^etcd Version: / : /usage: etcd-operator/);
  });
});
