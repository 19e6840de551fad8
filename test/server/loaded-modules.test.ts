/**
 * What a started, idle server has loaded (issue 19: idle memory): none of the code it needs only on a first request
 * of a kind (the admin endpoints' express app, the JSON gateway), only for another command (etcd gateway, etcdctl,
 * the operator's Kubernetes client) or only in a rare case (the etcd 3.4 data dir converter, the bbolt snapshot
 * writer, discovery); and each lazily loaded part still answers once asked for.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request } from '../support/http';
import { OUR_ETCD, RunningEtcd, freePort, spawnEtcd } from '../support/real-etcd';

jest.setTimeout(60_000);

let dir: string;
let ours: RunningEtcd;
const listFile = () => path.join(dir, 'modules.json');

/** The modules the server has loaded now (a preload writes require.cache's keys on SIGUSR2). */
async function loaded(): Promise<string[]> {
  rmSync(listFile(), { force: true });
  process.kill(ours.pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  while (!existsSync(listFile())) {
    if (Date.now() > deadline) throw new Error('the server wrote no module list');
    await new Promise((r) => setTimeout(r, 20));
  }
  return JSON.parse(readFileSync(listFile(), 'utf8')) as string[];
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'loaded-modules-'));
  const preload = path.join(dir, 'list-modules.js');
  // Written whole to a temporary name first: the test never reads half a list.
  writeFileSync(preload, `process.on('SIGUSR2', () => { const fs = require('fs'); fs.writeFileSync(${JSON.stringify(listFile() + '.tmp')}, JSON.stringify(Object.keys(require.cache))); fs.renameSync(${JSON.stringify(listFile() + '.tmp')}, ${JSON.stringify(listFile())}); });\n`);
  const [cport, pport] = [await freePort(), await freePort()];
  const clientURL = `http://127.0.0.1:${cport}`;
  const peerURL = `http://127.0.0.1:${pport}`;
  const args = ['--require', preload, OUR_ETCD, '--data-dir', path.join(dir, 'data'), '--enable-v2=true', '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL, '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `default=${peerURL}`];
  ours = await spawnEtcd(process.execPath, args, { clientURL, peerURL, dataDir: path.join(dir, 'data') });
});

afterAll(async () => {
  await ours?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const NOT_AT_START = [
  '/node_modules/express/',
  '/node_modules/node-forge/',
  '/node_modules/js-yaml/',
  '/node_modules/@kubernetes/',
  '/dist/server/etcdctl/',
  '/dist/server/etcdmain/gateway.js',
  '/dist/server/proxy/',
  '/dist/server/api/v3gw/gateway.js',
  '/dist/server/etcdserver/etcd-datadir.js',
  '/dist/server/etcdserver/etcd-backend.js',
  '/dist/server/mvcc/bbolt/',
  '/dist/server/discovery/v2.js',
  '/dist/server/discovery/srv.js',
  '/dist/operator/',
  '/dist/ignition/',
];

test('a started server (it answered /health) has loaded none of the code it needs only later or elsewhere', async () => {
  const mods = await loaded();
  expect(mods.some((m) => m.endsWith('/dist/server/embed/etcd.js'))).toBe(true); // the list is the server's
  expect(NOT_AT_START.filter((p) => mods.some((m) => m.includes(p)))).toEqual([]);
});

test('the lazily loaded parts answer their first request, and are loaded then', async () => {
  const members = await request(ours.clientURL, 'GET', '/v2/members');
  expect(members.status).toBe(200);
  expect(JSON.parse(members.body).members).toHaveLength(1);
  const range = await request(ours.clientURL, 'POST', '/v3/kv/range', { body: JSON.stringify({ key: Buffer.from('k').toString('base64') }) });
  expect(range.status).toBe(200);
  expect(JSON.parse(range.body).header.revision).toBeDefined();
  const mods = await loaded();
  expect(mods.some((m) => m.includes('/node_modules/express/'))).toBe(true);
  expect(mods.some((m) => m.endsWith('/dist/server/api/v3gw/gateway.js'))).toBe(true);
});
