/**
 * etcd's mvcc and gRPC metrics after the same v3 requests, side by side with Debian's etcd: the same names and the
 * same values where they count what the requests did (operations, keys, revisions, handled calls by code).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { request } from '../support/http';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(60_000);

let dir: string;
let ours: RunningEtcd;
let real: RunningEtcd;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'v3-metrics-'));
  [ours, real] = await Promise.all([startOurEtcd(path.join(dir, 'ours')), startRealEtcd(path.join(dir, 'real'))]);
});

afterAll(async () => {
  await Promise.all([ours?.stop(), real?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A sample's value by name and labels, whatever order the labels are printed in. */
function metric(text: string, name: string, labels = ''): number | undefined {
  const norm = (l: string) => l.replace(/^\{|\}$/g, '').split(',').filter((x) => x !== '').sort().join(',');
  const want = norm(labels);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && norm(m[2] ?? '') === want) return Number(m[3]);
  }
  return undefined;
}

function etcdctl(m: RunningEtcd, ...args: string[]): { status: number | null } {
  return spawnSync('/usr/bin/etcdctl', [`--endpoints=${m.clientURL}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
}

test('after the same puts, gets, a txn, a delete and a bad request, both servers count the same', async () => {
  for (const m of [ours, real]) {
    for (const k of ['a', 'b', 'c']) execFileSync('/usr/bin/etcdctl', [`--endpoints=${m.clientURL}`, 'put', k, 'value-of-' + k], { env: { ...process.env, ETCDCTL_API: '3' } });
    execFileSync('/usr/bin/etcdctl', [`--endpoints=${m.clientURL}`, 'get', 'a'], { env: { ...process.env, ETCDCTL_API: '3' } });
    execFileSync('/usr/bin/etcdctl', [`--endpoints=${m.clientURL}`, 'del', 'c'], { env: { ...process.env, ETCDCTL_API: '3' } });
    expect(etcdctl(m, 'put', '', 'x').status).not.toBe(0); // empty key: InvalidArgument
  }
  const [mine, theirs] = await Promise.all([ours, real].map(async (m) => (await request(m.clientURL, 'GET', '/metrics')).body));
  for (const name of [
    'etcd_mvcc_put_total',
    'etcd_debugging_mvcc_put_total',
    'etcd_mvcc_delete_total',
    'etcd_debugging_mvcc_keys_total',
    'etcd_debugging_mvcc_current_revision',
    'etcd_debugging_mvcc_compact_revision',
    'etcd_debugging_mvcc_total_put_size_in_bytes',
  ]) {
    expect([name, metric(mine, name)]).toEqual([name, metric(theirs, name)]);
  }
  expect(metric(mine, 'etcd_debugging_mvcc_keys_total')).toBe(2);
  expect(metric(mine, 'etcd_debugging_mvcc_current_revision')).toBe(5);
  for (const name of ['etcd_mvcc_db_total_size_in_bytes', 'etcd_mvcc_db_total_size_in_use_in_bytes', 'etcd_mvcc_range_total']) {
    expect([name, metric(theirs, name) !== undefined, (metric(mine, name) ?? -1) > 0]).toEqual([name, true, true]);
  }
  for (const [method, code] of [['Put', 'OK'], ['Range', 'OK'], ['DeleteRange', 'OK'], ['Put', 'InvalidArgument']]) {
    const labels = `{grpc_code="${code}",grpc_method="${method}",grpc_service="etcdserverpb.KV",grpc_type="unary"}`;
    expect([method, code, metric(mine, 'grpc_server_handled_total', labels)]).toEqual([method, code, metric(theirs, 'grpc_server_handled_total', labels)]);
  }
});
