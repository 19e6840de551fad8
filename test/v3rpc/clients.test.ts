/**
 * Real etcd v3 clients against the KV service: Debian's etcdctl (v3) and the Python etcd3 module put and get through
 * createV3Server, over a minimal in-test map backend (the MVCC store is tested on its own). What is checked here is
 * the wire: the clients' requests decode, our responses decode in Go and Python, the header ids come out exact.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { KVBackend } from '../../server/api/v3rpc/kv';
import { DeleteRangeResponse, PutResponse, RangeResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import type { KeyValue } from '../../server/api/v3rpc/pb/mvccpb/kv';
import { refusingBackend, startV3, TEST_HEADER, type RunningV3 } from '../support/v3-server';

const run = promisify(execFile);
const ETCDCTL = '/usr/bin/etcdctl';
const PYTHON = '/usr/bin/python3';

/** Single-key puts and gets, prefix gets and deletes, with revisions counted: just enough for these clients. */
function mapBackend(): KVBackend {
  const kvs = new Map<string, KeyValue>();
  let rev = 1n;
  const inRange = (k: Buffer, key: Buffer, end: Buffer) =>
    end.length === 0 ? k.equals(key) : Buffer.compare(k, key) >= 0 && (end.equals(Buffer.from([0])) || Buffer.compare(k, end) < 0);
  const select = (key: Buffer, end: Buffer) =>
    [...kvs.values()].filter((kv) => inRange(kv.key, key, end)).sort((a, b) => Buffer.compare(a.key, b.key));
  return {
    ...refusingBackend(),
    put: async (r) => {
      const prev = kvs.get(r.key.toString('latin1'));
      rev++;
      kvs.set(r.key.toString('latin1'), {
        key: r.key, value: r.value, lease: r.lease, createRevision: prev?.createRevision ?? rev, modRevision: rev, version: (prev?.version ?? 0n) + 1n,
      });
      return PutResponse.fromPartial({ header: { revision: rev }, prevKv: r.prevKv ? prev : undefined });
    },
    range: async (r) => {
      const found = select(r.key, r.rangeEnd);
      const limited = r.limit > 0n ? found.slice(0, Number(r.limit)) : found;
      return RangeResponse.fromPartial({
        header: { revision: rev },
        kvs: r.countOnly ? [] : limited.map((kv) => (r.keysOnly ? { ...kv, value: Buffer.alloc(0) } : kv)),
        more: limited.length < found.length,
        count: BigInt(found.length),
      });
    },
    deleteRange: async (r) => {
      const found = select(r.key, r.rangeEnd);
      if (found.length) rev++;
      for (const kv of found) kvs.delete(kv.key.toString('latin1'));
      return DeleteRangeResponse.fromPartial({ header: { revision: rev }, deleted: BigInt(found.length), prevKvs: r.prevKv ? found : [] });
    },
  };
}

describe('etcd\'s own v3 clients against the KV service', () => {
  let s: RunningV3;
  beforeAll(async () => { s = await startV3(mapBackend()); });
  afterAll(() => s.close());

  test('Debian\'s etcdctl: put, get (simple and json), get --prefix, del', async () => {
    if (!existsSync(ETCDCTL)) throw new Error(`${ETCDCTL} is missing: install Debian's etcd-client, as .ci/run does`);
    const ctl = async (...args: string[]) =>
      (await run(ETCDCTL, ['--endpoints', `127.0.0.1:${s.port}`, '--command-timeout', '5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;
    expect(await ctl('put', 'foo', 'bar')).toBe('OK\n');
    expect(await ctl('put', 'foo2', 'baz')).toBe('OK\n');
    expect(await ctl('get', 'foo')).toBe('foo\nbar\n');
    expect(await ctl('get', '--prefix', 'foo')).toBe('foo\nbar\nfoo2\nbaz\n');
    const json = JSON.parse((await ctl('get', 'foo', '-w', 'json')).replace(/("(?:cluster|member)_id":)(\d+)/g, '$1"$2"'));
    expect(json).toEqual({
      header: { cluster_id: String(TEST_HEADER.clusterId), member_id: String(TEST_HEADER.memberId), revision: 3, raft_term: 7 },
      kvs: [{ key: Buffer.from('foo').toString('base64'), create_revision: 2, mod_revision: 2, version: 1, value: Buffer.from('bar').toString('base64') }],
      count: 1,
    });
    expect(await ctl('del', 'foo')).toBe('1\n');
    expect(await ctl('get', 'foo')).toBe('');
  });

  test('Python etcd3: put, get, get_prefix', async () => {
    const script = `
import etcd3, sys
c = etcd3.client(host='127.0.0.1', port=${s.port}, timeout=5)
c.put('py/a', b'\\x00\\xffbinary')
c.put('py/b', 'two')
v, meta = c.get('py/a')
print(repr(v), meta.key, meta.version)
print(sorted(m.key.decode() for _, m in c.get_prefix('py/')))
print(c.get('py/missing'))
`;
    const { stdout } = await run(PYTHON, ['-c', script]);
    expect(stdout).toBe("b'\\x00\\xffbinary' b'py/a' 1\n['py/a', 'py/b']\n(None, None)\n");
  });
});
