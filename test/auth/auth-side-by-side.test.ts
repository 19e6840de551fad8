/**
 * v3 auth side by side: the same etcdctl commands (Debian's etcdctl 3.4) against Debian's etcd and ours — user and
 * role lifecycle, auth enable/disable, permission checks and every refusal — must print the same bytes and exit
 * alike. Then, at the gRPC level, what a stranger gets: a forged token, a token of a deleted user, a token older
 * than a change of the auth store.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AuthClient, KVClient, PutRequest, RangeRequest, TxnRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { AUTH_STEPS as STEPS } from '../support/auth-steps';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const ETCDCTL = '/usr/bin/etcdctl';

function ctl(e: RunningEtcd, args: string[], input?: string): { out: string; err: string; code: number } {
  const r = spawnSync(ETCDCTL, ['--endpoints', e.clientURL, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, input, encoding: 'utf8', timeout: 30000 });
  // clientv3's retry warning carries a time and a client id: compared without it.
  const err = r.stderr.split('\n').filter((l) => !l.startsWith('{"level":"warn"')).join('\n');
  return { out: r.stdout, err, code: r.status ?? -1 };
}


describe('v3 auth side by side with Debian etcd', () => {
  const dirs: string[] = [];
  let real: RunningEtcd;
  let ours: RunningEtcd;
  beforeAll(async () => {
    const d1 = mkdtempSync(path.join(os.tmpdir(), 'auth-real-'));
    const d2 = mkdtempSync(path.join(os.tmpdir(), 'auth-ours-'));
    dirs.push(d1, d2);
    [real, ours] = await Promise.all([startRealEtcd(d1), startOurEtcd(d2)]);
  }, 60000);
  afterAll(async () => {
    await Promise.all([real?.stop(), ours?.stop()]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('every etcdctl step prints and exits alike', () => {
    for (const step of STEPS) {
      const input = step.includes('passwd') ? 'newpw\n' : undefined;
      const want = ctl(real, step, input);
      const got = ctl(ours, step, input);
      expect({ step: step.join(' '), ...got }).toEqual({ step: step.join(' '), ...want });
    }
  }, 240000);
});

describe('v3 auth: a stranger is refused (ours)', () => {
  let dir: string;
  let ours: RunningEtcd;
  let auth: AuthClient;
  let kv: KVClient;
  const call = <Req, Res>(c: any, m: string, req: Req, md = new grpc.Metadata()): Promise<Res> =>
    new Promise((resolve, reject) => c[m](req, md, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
  const tok = (t: string) => {
    const md = new grpc.Metadata();
    md.set('token', t);
    return md;
  };
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'auth-grpc-'));
    ours = await startOurEtcd(dir);
    const target = ours.clientURL.replace('http://', '');
    auth = new AuthClient(target, grpc.credentials.createInsecure());
    kv = new KVClient(target, grpc.credentials.createInsecure());
    await call(auth, 'userAdd', { name: 'root', password: 'r', options: undefined });
    await call(auth, 'roleAdd', { name: 'root' });
    await call(auth, 'userGrantRole', { user: 'root', role: 'root' });
    await call(auth, 'userAdd', { name: 'u', password: 'p', options: undefined });
    await call(auth, 'roleAdd', { name: 'ro' });
    await call(auth, 'roleGrantPermission', { name: 'ro', perm: { permType: 0, key: Buffer.from('k'), rangeEnd: Buffer.from('l') } });
    await call(auth, 'userGrantRole', { user: 'u', role: 'ro' });
    await call(auth, 'authEnable', {});
  }, 60000);
  afterAll(async () => {
    auth?.close();
    kv?.close();
    await ours?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a forged token, a missing token and a read outside the role get etcd errors and no data', async () => {
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('k1') }), tok('forged.1'))).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('k1') }))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' });
    const { token } = await call<any, { token: string }>(auth, 'authenticate', { name: 'u', password: 'p' });
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('m') }), tok(token))).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    await expect(call(kv, 'put', PutRequest.fromPartial({ key: Buffer.from('k1'), value: Buffer.from('v') }), tok(token))).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
    const r = await call<any, { kvs: unknown[] }>(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('k'), rangeEnd: Buffer.from('l') }), tok(token));
    expect(r.kvs).toEqual([]);
    await expect(call(auth, 'authenticate', { name: 'u', password: 'wrong' })).rejects.toMatchObject({ details: 'etcdserver: authentication failed, invalid user ID or password' });
  });

  test('a change of password ends the user\'s tokens; a txn is checked op by op', async () => {
    const root = (await call<any, { token: string }>(auth, 'authenticate', { name: 'root', password: 'r' })).token;
    const { token } = await call<any, { token: string }>(auth, 'authenticate', { name: 'u', password: 'p' });
    await call(kv, 'put', PutRequest.fromPartial({ key: Buffer.from('k1'), value: Buffer.from('v') }), tok(root));
    await expect(
      call(kv, 'txn', TxnRequest.fromPartial({ success: [{ requestRange: { key: Buffer.from('k1') } }, { requestRange: { key: Buffer.from('zz') } }] }), tok(token)),
    ).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
    await call(auth, 'userChangePassword', { name: 'u', password: 'p2' }, tok(root));
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('k1') }), tok(token))).rejects.toMatchObject({ details: 'etcdserver: invalid auth token' });
  });
});
