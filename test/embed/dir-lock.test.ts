/**
 * One member per data dir: a second process started on a data dir in use waits until the first has stopped (as
 * etcd's flocks make it), then starts on the data the first left, instead of both writing one WAL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockDir } from '../../server/pkg/dir-lock';
import { eventually } from '../support/cluster';
import { request } from '../support/http';
import { freePort, spawnOurEtcd, type RunningEtcd } from '../support/real-etcd';

jest.setTimeout(90_000);

let dir: string;
const procs: RunningEtcd[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dir-lock-'));
});
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a lock is held until released; a second taker waits, warns once, then gets it; another dir is free', async () => {
  const warnings: string[] = [];
  const first = await lockDir(dir, (m) => warnings.push(m));
  const other = mkdtempSync(path.join(os.tmpdir(), 'dir-lock-other-'));
  try {
    (await lockDir(other, (m) => warnings.push(m))).release();
    let got = false;
    const second = lockDir(dir, (m) => warnings.push(m), { warnAfterMs: 200 }).then((l) => {
      got = true;
      return l;
    });
    await eventually('the waiting taker to warn', async () => (warnings.length ? true : undefined));
    expect(got).toBe(false);
    expect(warnings).toEqual([`data dir ${dir} is in use by another process (another member on the same data dir?); waiting for it to stop`]);
    first.release();
    (await second).release();
    expect(warnings).toHaveLength(1);
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});

test('a second member started on a data dir in use waits; once the first is killed it serves the first one\'s data', async () => {
  const clientURL = `http://127.0.0.1:${await freePort()}`;
  const peerURL = `http://127.0.0.1:${await freePort()}`;
  const where = { clientURL, peerURL, dataDir: path.join(dir, 'data') };
  const args = [
    '--name', 'm', '--data-dir', where.dataDir, '--enable-v2=true',
    '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
    '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `m=${peerURL}`,
  ];
  const first = await spawnOurEtcd(args, where);
  procs.push(first);
  expect((await request(clientURL, 'PUT', '/v2/keys/k', { body: 'value=v1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(201);
  const second = await spawnOurEtcd(args, where, { wait: false });
  procs.push(second);
  // It says why it waits (after etcd's 10 s), and meanwhile neither exits nor touches the data.
  await eventually('the second member to say it waits', async () => (second.output().includes('is in use by another process') ? true : undefined), 30_000);
  expect(second.output()).not.toContain('listening for peers');
  await first.signal('SIGKILL');
  const got = await eventually('the second member to serve', async () => {
    const r = await request(clientURL, 'GET', '/v2/keys/k', { timeoutMs: 1000 });
    return r.status === 200 ? JSON.parse(r.body) : undefined;
  }, 30_000);
  expect(got.node.value).toBe('v1');
});
