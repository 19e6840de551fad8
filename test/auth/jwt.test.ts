/**
 * v3 auth with `--auth-token jwt` (RS256 keys made here): a token carries the auth revision it was issued at, so
 * after any change of users or roles it gets etcd's "revision of auth store is old" and the client must
 * authenticate again; a token signed by another key is refused.
 */
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AuthClient, KVClient, PutRequest, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { RunningEtcd, startOurEtcd } from '../support/real-etcd';

const call = <Res>(c: any, m: string, req: unknown, md = new grpc.Metadata()): Promise<Res> =>
  new Promise((resolve, reject) => c[m](req, md, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
const tok = (t: string) => {
  const md = new grpc.Metadata();
  md.set('token', t);
  return md;
};

describe('v3 auth with JWT tokens (ours)', () => {
  let dir: string;
  let ours: RunningEtcd;
  let auth: AuthClient;
  let kv: KVClient;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'auth-jwt-'));
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path.join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(path.join(dir, 'priv.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    ours = await startOurEtcd(path.join(dir, 'data'), ['--auth-token', `jwt,pub-key=${dir}/pub.pem,priv-key=${dir}/priv.pem,sign-method=RS256`]);
    const target = ours.clientURL.replace('http://', '');
    auth = new AuthClient(target, grpc.credentials.createInsecure());
    kv = new KVClient(target, grpc.credentials.createInsecure());
    await call(auth, 'userAdd', { name: 'root', password: 'r', options: undefined });
    await call(auth, 'userGrantRole', { user: 'root', role: 'root' });
    await call(auth, 'authEnable', {});
  }, 60000);
  afterAll(async () => {
    auth?.close();
    kv?.close();
    await ours?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a token from before a change of the auth store is old; a forged one is invalid', async () => {
    const { token } = await call<{ token: string }>(auth, 'authenticate', { name: 'root', password: 'r' });
    expect(token.split('.')).toHaveLength(3);
    await call(kv, 'put', PutRequest.fromPartial({ key: Buffer.from('a'), value: Buffer.from('1') }), tok(token));
    await call(auth, 'roleAdd', { name: 'x' }, tok(token));
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('a') }), tok(token))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: revision of auth store is old' });
    await expect(call(kv, 'put', PutRequest.fromPartial({ key: Buffer.from('a'), value: Buffer.from('2') }), tok(token))).rejects.toMatchObject({ details: 'etcdserver: revision of auth store is old' });
    const fresh = (await call<{ token: string }>(auth, 'authenticate', { name: 'root', password: 'r' })).token;
    const r = await call<{ kvs: { value: Buffer }[] }>(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('a') }), tok(fresh));
    expect(r.kvs.map((k) => k.value.toString())).toEqual(['1']);
    const [h, b] = fresh.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ username: 'root', revision: 99, exp: 9e9 })).toString('base64url')}.${fresh.split('.')[2]}`;
    await expect(call(kv, 'range', RangeRequest.fromPartial({ key: Buffer.from('a') }), tok(forged))).rejects.toMatchObject({ details: 'etcdserver: invalid auth token' });
    expect(b).toBeTruthy();
  });
});
