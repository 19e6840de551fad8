/**
 * The JSON gateway (`/v3/`, `/v3beta/`) side by side with Debian's etcd 3.4.23: the same requests, in the same order,
 * to both; every answer's status, content type and body compared (cluster and member ids normalised). And the
 * Python `etcd3gw` module (`python3-etcd3gw`) against ours.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { withProtoNames } from '../../server/api/v3gw/gateway';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const run = promisify(execFile);

interface Answer {
  status: number;
  type: string;
  body: string;
}

function post(base: string, p: string, body: string | undefined, method = 'POST', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + p, { method, headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: text.replace(/"(cluster_id|member_id)":"\d+"/g, '"$1":"ID"') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** [path, body, method?]: KV through every route, errors of each kind, the prefixes, unknown routes and methods. */
const STEPS: [string, string | undefined, string?][] = [
  ['/v3/kv/put', JSON.stringify({ key: b64('foo'), value: b64('bar') })],
  ['/v3/kv/put', JSON.stringify({ key: b64('foo'), value: b64('baz'), prev_kv: true })],
  ['/v3/kv/put', JSON.stringify({ key: b64('foo1'), value: b64('x'), ignore_value: false })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo') })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), range_end: b64('fop'), sort_order: 'DESCEND', sort_target: 'KEY', limit: 1 })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), rangeEnd: b64('fop'), keys_only: true })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), range_end: b64('fop'), count_only: true })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), revision: '2' })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), revision: 100 })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), unknown_field: 1 })],
  ['/v3/kv/range', ''],
  ['/v3/kv/range', 'null'],
  ['/v3/kv/range', '[1]'],
  ['/v3/kv/range', '"x"'],
  ['/v3/kv/range', undefined, 'GET'],
  ['/v3/kv/range', '{}', 'PUT'],
  ['/v3/kv/nope', '{}'],
  ['/v3/nope', '{}'],
  ['/v3beta/kv/range', JSON.stringify({ key: b64('foo') })],
  ['/v3alpha/kv/range', JSON.stringify({ key: b64('foo') })],
  [
    '/v3/kv/txn',
    JSON.stringify({
      compare: [{ key: b64('foo'), result: 'EQUAL', target: 'VALUE', value: b64('baz') }, { key: b64('foo1'), target: 'VERSION', result: 'GREATER', version: '0' }],
      success: [{ request_range: { key: b64('foo') } }, { request_put: { key: b64('a'), value: b64('b') } }, { request_txn: { success: [{ request_delete_range: { key: b64('foo1') } }] } }],
      failure: [{ request_put: { key: b64('never'), value: b64('x') } }],
    }),
  ],
  ['/v3/kv/txn', JSON.stringify({ compare: [{ key: b64('foo'), result: 'NOT_EQUAL', target: 'MOD', mod_revision: '3' }], failure: [{ request_range: { key: b64('a'), keys_only: true } }] })],
  ['/v3/kv/txn', JSON.stringify({ success: [{ request_put: { key: b64('d'), value: b64('1') } }, { request_put: { key: b64('d'), value: b64('2') } }] })],
  ['/v3/kv/deleterange', JSON.stringify({ key: b64('a'), prev_kv: true })],
  ['/v3/kv/deleterange', JSON.stringify({ key: b64('zz') })],
  ['/v3/kv/compaction', JSON.stringify({ revision: '3', physical: true })],
  ['/v3/kv/compaction', JSON.stringify({ revision: '3' })],
  ['/v3/kv/range', JSON.stringify({ key: b64('foo'), revision: '2' })],
  ['/v3/kv/put', JSON.stringify({ key: '', value: b64('bar') })],
  ['/v3/kv/put', JSON.stringify({ key: b64('foo'), lease: '12345' })],
  ['/v3/kv/put', JSON.stringify({ key: b64('foo'), ignore_value: true, value: b64('v') })],
  // the Lock and Election services (a lease given, so that the keys are the same on both)
  ['/v3/lock/lock', JSON.stringify({ name: b64('lk'), lease: '12345' })],
  ['/v3/lease/grant', JSON.stringify({ ID: '1911', TTL: '60' })],
  ['/v3/lock/lock', JSON.stringify({ name: b64('lk'), lease: '1911' })],
  ['/v3beta/lock/lock', JSON.stringify({ name: b64('lk'), lease: 1911 })],
  ['/v3/lock/unlock', JSON.stringify({ key: b64('lk/777') })],
  ['/v3/lock/unlock', '{}'],
  ['/v3/election/leader', JSON.stringify({ name: b64('el') })],
  ['/v3/election/campaign', JSON.stringify({ name: b64('el'), lease: '1911', value: b64('v1') })],
  ['/v3/election/leader', JSON.stringify({ name: b64('el') })],
  ['/v3/election/proclaim', JSON.stringify({ value: b64('v2') })],
  ['/v3/election/proclaim', JSON.stringify({ leader: { name: b64('el'), key: b64('el/777'), rev: '9', lease: '1911' }, value: b64('v2') })],
  ['/v3/election/proclaim', JSON.stringify({ leader: { name: b64('el'), key: b64('el/777'), rev: '30', lease: '1911' }, value: b64('v3') })],
  ['/v3beta/election/leader', JSON.stringify({ name: b64('el') })],
  ['/v3/election/resign', '{}'],
  ['/v3/election/resign', JSON.stringify({ leader: { name: b64('el'), key: b64('el/777'), rev: '9', lease: '1911' } })],
  ['/v3/election/leader', JSON.stringify({ name: b64('el') })],
];

describe('the JSON gateway, side by side with Debian etcd', () => {
  const dirs: string[] = [];
  const servers: RunningEtcd[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('the same requests get the same answers: status, content type and body', async () => {
    const dir = (n: string) => {
      const d = mkdtempSync(path.join(os.tmpdir(), `gw-${n}-`));
      dirs.push(d);
      return d;
    };
    const etcd = await startRealEtcd(dir('etcd'));
    servers.push(etcd);
    const ours = await startOurEtcd(dir('ours'));
    servers.push(ours);
    for (const [p, body, method] of STEPS) {
      const [a, b] = [await post(etcd.clientURL, p, body, method), await post(ours.clientURL, p, body, method)];
      expect({ step: `${method ?? 'POST'} ${p} ${body}`, ...b }).toEqual({ step: `${method ?? 'POST'} ${p} ${body}`, ...a });
    }
  });

  test("malformed JSON is refused with gRPC's InvalidArgument, as grpc-gateway does (the parser's words differ)", async () => {
    const ours = servers[1];
    const a = await post(ours.clientURL, '/v3/kv/range', '{bad');
    expect(a.status).toBe(400);
    expect(JSON.parse(a.body)).toMatchObject({ code: 3 });
  });

  test('the Python etcd3gw client puts, gets, lists a prefix, deletes and runs a txn through ours', async () => {
    const port = new URL(servers[1].clientURL).port;
    const script = `
from etcd3gw.client import Etcd3Client
c = Etcd3Client(host='127.0.0.1', port=${port}, api_path='/v3/')
c.put('py/a', '1')
c.put('py/b', '2')
print(c.get('py/a'))
print(sorted(v.decode() if isinstance(v, bytes) else v for v, _ in c.get_prefix('py/')))
print(c.delete('py/a'))
print(c.get('py/a'))
print(c.transaction({'compare': [], 'success': [{'request_put': {'key': 'cHkvYw==', 'value': 'Mw=='}}], 'failure': []})['succeeded'])
print(c.get('py/c'))
`;
    const { stdout } = await run('/usr/bin/python3', ['-c', script], { timeout: 30_000 });
    expect(stdout.split('\n')).toEqual(["[b'1']", "['1', '2']", 'True', '[]', 'True', "[b'3']", '']);
  });
});

test('field names come out as in the .proto files, nested messages and lists included', () => {
  expect(withProtoNames({ header: { clusterId: '1', raftTerm: '2' }, members: [{ ID: '3', peerURLs: ['u'], isLearner: true }] }, 'etcdserverpb.MemberListResponse')).toEqual({
    header: { cluster_id: '1', raft_term: '2' },
    members: [{ ID: '3', peerURLs: ['u'], isLearner: true }],
  });
  expect(withProtoNames({ header: { raftTerm: '2' }, raftTerm: '5', dbSizeInUse: '1' }, 'etcdserverpb.StatusResponse')).toEqual({ header: { raft_term: '2' }, raftTerm: '5', dbSizeInUse: '1' });
});
