/**
 * The v2 auth API side by side: the same Debian etcdctl v2 commands (user, role, auth), the same raw HTTP requests
 * (/v2/auth/*, and /v2/keys and /v2/members with and without Basic credentials) and the same python3-etcd script go
 * to Debian's etcd 3.4.23 and to ours, and must get the same answers: etcdctl's output and exit code; the HTTP
 * status, body byte for byte, content type, X-Etcd-Index (absolute: the auth writes move the store's index as
 * etcd's do) and whether X-Etcd-Cluster-Id is sent; a dropped connection where etcd's handler panics.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { request } from '../support/http';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const ETCDCTL = '/usr/bin/etcdctl';
const PYTHON = '/usr/bin/python3';

type Step =
  | { ctl: string[]; input?: string }
  | { method: string; path: string; body?: string; auth?: string; header?: string };

const ctl = (...args: string[]): Step => ({ ctl: args });
const as = (creds: string, ...args: string[]): Step => ({ ctl: ['--username', creds, ...args] });
const req = (method: string, p: string, o: { body?: string; auth?: string; header?: string } = {}): Step => ({ method, path: p, ...o });

function runCtl(e: RunningEtcd, args: string[], input?: string): { out: string; err: string; code: number } {
  const r = spawnSync(ETCDCTL, ['--endpoints', e.clientURL, ...args], { env: { ...process.env, ETCDCTL_API: '2' }, input: input ?? '', encoding: 'utf8', timeout: 30000 });
  // The prompt for a password reads a pipe here: stty's complaint about it is no answer of the server.
  const clean = (s: string) => s.split(e.clientURL).join('ENDPOINT').split('\n').filter((l) => !l.startsWith('stty:')).join('\n');
  return { out: clean(r.stdout), err: clean(r.stderr), code: r.status ?? -1 };
}

interface HttpAnswer {
  status?: number;
  body?: string;
  contentType?: string;
  etcdIndex?: string;
  allow?: string;
  clusterId?: boolean;
  /** The server closed the connection without an answer (etcd's handler panicked). */
  dropped?: boolean;
}

async function runHttp(e: RunningEtcd, s: Extract<Step, { method: string }>): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (s.auth !== undefined) headers.Authorization = `Basic ${Buffer.from(s.auth).toString('base64')}`;
  if (s.header !== undefined) headers.Authorization = s.header;
  // A connection of its own: one that etcd drops must not take the next request with it.
  const agent = new http.Agent({ keepAlive: false });
  try {
    const a = await request(e.clientURL, s.method, s.path, { body: s.body, headers, agent });
    const h = (k: string) => (typeof a.headers[k] === 'string' ? (a.headers[k] as string) : undefined);
    return { status: a.status, body: a.body, contentType: h('content-type'), etcdIndex: h('x-etcd-index'), allow: h('allow'), clusterId: a.headers['x-etcd-cluster-id'] !== undefined };
  } catch (err) {
    if (/socket hang up|ECONNRESET/.test((err as Error).message)) return { dropped: true };
    throw err;
  } finally {
    agent.destroy();
  }
}

const U = '/v2/auth/users';
const R = '/v2/auth/roles';
const ROOT = 'root:rootpw';

/** Auth off: users, roles and grants made and refused through etcdctl and the API itself. */
const SETUP: Step[] = [
  req('GET', '/v2/auth/enable'), req('GET', U), req('GET', R), req('GET', `${R}/root`), req('GET', `${U}/nobody`), req('GET', `${R}/nobody`),
  ctl('user', 'list'), ctl('role', 'list'),
  // Enabling is refused without a root user; disabling what is off, too.
  ctl('auth', 'enable'), req('PUT', '/v2/auth/enable'), req('DELETE', '/v2/auth/enable'),
  // The first write makes /2, /2/users, /2/roles and /2/enabled: the index moves by 5.
  ctl('user', 'add', 'root:rootpw'), req('GET', '/v2/keys/'),
  ctl('user', 'add', 'alice:alicepw'), { ctl: ['user', 'add', 'bob'], input: 'bobpw\n' }, ctl('user', 'add', 'alice:again'),
  ctl('role', 'add', 'reader'), ctl('role', 'add', 'writer'), ctl('role', 'add', 'reader'), ctl('role', 'add', 'root'),
  ctl('role', 'grant', 'reader', '--path', '/pub/*', '--read'),
  ctl('role', 'grant', 'writer', '--path', '/pub/*', '--readwrite'),
  ctl('role', 'grant', 'writer', '--path', '/single', '--write'),
  ctl('role', 'grant', 'reader', '--path', '/pub/*', '--read'),
  ctl('role', 'grant', 'nobody', '--path', '/x', '--read'),
  ctl('role', 'get', 'reader'), ctl('role', 'get', 'writer'), ctl('role', 'get', 'root'), ctl('role', 'get', 'nobody'), ctl('role', 'list'),
  ctl('user', 'grant', 'alice', '--roles', 'reader'), ctl('user', 'grant', 'bob', '--roles', 'writer,reader'),
  ctl('user', 'grant', 'bob', '--roles', 'writer'), ctl('user', 'grant', 'nobody', '--roles', 'reader'),
  ctl('user', 'get', 'alice'), ctl('user', 'get', 'bob'), ctl('user', 'get', 'root'), ctl('user', 'get', 'nobody'), ctl('user', 'list'),
  ctl('user', 'revoke', 'bob', '--roles', 'reader'), ctl('user', 'revoke', 'bob', '--roles', 'reader'),
  ctl('role', 'revoke', 'writer', '--path', '/single', '--write'), ctl('role', 'revoke', 'writer', '--path', '/never', '--read'), ctl('role', 'get', 'writer'),
  { ctl: ['user', 'passwd', 'alice'], input: 'alicepw2\n' },
  ctl('user', 'remove', 'nobody'), ctl('role', 'remove', 'nobody'), ctl('role', 'remove', 'root'),
  req('GET', U), req('GET', R), req('GET', `${U}/bob`), req('GET', `${R}/writer`),
  // The API's own answers to bad input.
  req('PUT', `${U}/carol`, { body: '' }), req('PUT', `${U}/carol`, { body: '{"user":"carol",' }), req('PUT', `${U}/carol`, { body: '{"user":5}' }),
  req('PUT', `${U}/carol`, { body: '[]' }), req('PUT', `${U}/carol`, { body: 'null' }), req('PUT', `${U}/carol`, { body: '{"user":"dave","password":"p"}' }),
  req('PUT', `${U}/carol`, { body: '{"user":"carol"}' }), req('PUT', `${U}/carol`, { body: '{"user":"carol","roles":["reader"]}' }),
  req('PUT', `${U}/carol`, { body: '{"user":"carol","roles":["reader"],"grant":["writer"]}' }),
  req('PUT', `${U}/carol`, { body: '{"user":"carol","grant":["writer"]}' }),
  req('PUT', `${U}/carol`, { body: '{"User":"carol","PASSWORD":"c","roles":["reader","reader","ghost"],"extra":{"x":[1,{}]}} trailing' }),
  req('GET', `${U}/carol`), req('PUT', `${U}/carol`, { body: '{"user":"carol"}' }), req('PUT', `${U}/carol`, { body: '{"user":"carol","grant":[],"revoke":[]}' }),
  req('PUT', `${U}/carol`, { body: '{"user":"carol","revoke":["ghost"]}' }), req('GET', `${U}/carol`),
  req('PUT', `${R}/r2`, { body: '{"role":"r2","grant":{}}' }), req('GET', `${R}/r2`), req('PUT', `${R}/r2`, { body: '{"role":"r2","revoke":{"kv":{"read":["/x"]}}}' }),
  req('PUT', `${R}/r3`, { body: '{"role":"r3","permissions":{"kv":{"read":["/b","/a","/a"]}}}' }),
  req('PUT', `${R}/r3`, { body: '{"role":"r3","grant":{"kv":{"write":["/w"]}},"permissions":{"kv":{"read":["/z"]}}}' }),
  req('PUT', `${R}/r3`, { body: '{"role":"r3","grant":{"kv":{"write":["/w","/w"]}}}' }), req('PUT', `${R}/r3`, { body: '{"role":"r3","permissions":"x"}' }),
  req('PUT', `${R}/r3`, { body: '{"role":"other"}' }), req('PUT', `${R}/root`, { body: '{"role":"root","grant":{"kv":{"read":["/a"]}}}' }),
  req('DELETE', `${U}/ghost`), req('DELETE', `${R}/ghost`), req('PUT', `${R}/ghost`, { body: '{"role":"ghost","revoke":{"kv":{"read":["/a"]}}}' }),
  req('GET', `${R}/a/b`), req('PUT', `${U}/a/b`), req('GET', `${U}/alice/`), req('PATCH', `${U}/alice`), req('POST', U), req('HEAD', R),
  req('GET', `${U}?a;b`), req('GET', `${U}/alice?a;b`), req('GET', `${U}/ghost?a;b`), req('GET', '/v2/auth/enable/'), req('GET', '/v2/auth/'),
  req('GET', `${U}/%3Cb%3E`), req('PUT', `${U}/%3Cb%3E`, { body: '{"user":"<b>","password":"x","roles":["a\\u0000b","\\u2028"]}' }), req('GET', U),
  req('DELETE', `${U}/%3Cb%3E`),
];

/** Auth on: who may read and write which keys, with Basic credentials, wrong ones, none (the guest role). */
const ENABLED: Step[] = [
  ctl('auth', 'enable'), ctl('auth', 'enable'), req('GET', '/v2/auth/enable'),
  ctl('user', 'list'), as(ROOT, 'user', 'list'), as('root:wrong', 'user', 'list'), as('alice:alicepw2', 'user', 'list'), as('alice:alicepw', 'user', 'list'),
  as(ROOT, 'role', 'list'), as(ROOT, 'role', 'get', 'guest'), as(ROOT, 'user', 'get', 'root'),
  req('GET', U), req('GET', U, { auth: ROOT }), req('GET', U, { auth: 'root:wrong' }), req('GET', U, { auth: 'alice:alicepw2' }),
  req('GET', U, { header: 'Bearer abc' }), req('GET', U, { header: 'Basic !!!' }), req('GET', U, { header: 'basic cm9vdDpyb290cHc=' }),
  req('DELETE', '/v2/auth/enable'), req('DELETE', `${U}/root`, { auth: ROOT }),
  // The default guest role: every key, read and write.
  req('PUT', '/v2/keys/pub/a', { body: 'value=1' }), req('GET', '/v2/keys/pub/a'), req('GET', '/v2/keys/'), req('GET', '/v2/keys'),
  as(ROOT, 'role', 'revoke', 'guest', '--path', '/*', '--write'), as(ROOT, 'role', 'get', 'guest'),
  req('PUT', '/v2/keys/pub/x', { body: 'value=1' }), req('GET', '/v2/keys/pub/a'), req('GET', '/v2/keys/pub/a?recursive=true'),
  // A reader reads its prefix only; with a wrong password it is refused even what the guest may read.
  req('GET', '/v2/keys/pub/a', { auth: 'alice:alicepw2' }), req('PUT', '/v2/keys/pub/b', { body: 'value=2', auth: 'alice:alicepw2' }),
  req('GET', '/v2/keys/pub?recursive=true', { auth: 'alice:alicepw2' }), req('GET', '/v2/keys/pub/?recursive=true', { auth: 'alice:alicepw2' }),
  req('GET', '/v2/keys/other', { auth: 'alice:alicepw2' }), req('GET', '/v2/keys/pub/a', { auth: 'alice:alicepw' }),
  req('GET', '/v2/keys/pub/a', { auth: 'nobody:x' }), req('GET', '/v2/keys/pub/a?recursive=maybe', { auth: 'alice:alicepw' }),
  // A writer writes its prefix only.
  req('PUT', '/v2/keys/pub/b', { body: 'value=2', auth: 'bob:bobpw' }), req('DELETE', '/v2/keys/pub/b', { auth: 'bob:bobpw' }),
  req('PUT', '/v2/keys/single', { body: 'value=2', auth: 'bob:bobpw' }), req('PUT', '/v2/keys/pub', { body: 'dir=true', auth: 'bob:bobpw' }),
  as('alice:alicepw2', 'get', '/pub/a'), as('alice:alicepw2', 'set', '/pub/c', 'x'), as('bob:bobpw', 'set', '/pub/c', 'x'), ctl('get', '/pub/c'),
  as('bob:bobpw', 'ls', '/pub'), as('alice:alicepw2', 'ls', '--recursive', '/pub'), as('bob:wrong', 'rm', '/pub/c'), as(ROOT, 'rm', '/pub/c'),
  // The members API: reads open, changes for root only.
  req('PUT', '/v2/members/abc', { body: '{}', auth: 'alice:alicepw2' }), req('DELETE', '/v2/members/abc'), req('POST', '/v2/members', { body: '{}', auth: 'bob:bobpw' }),
  // A user with an empty role name, and an empty user name: etcd's handler panics.
  req('PUT', `${U}/eve`, { body: '{"user":"eve","password":"e","roles":[""]}', auth: ROOT }), req('GET', `${U}/eve`, { auth: ROOT }),
  req('GET', '/v2/keys/pub/a', { auth: 'eve:e' }), req('GET', '/v2/keys/pub/a', { auth: ':e' }), req('DELETE', `${U}/eve`, { auth: ROOT }),
  as(ROOT, 'user', 'remove', 'root'), as(ROOT, 'role', 'remove', 'guest'), req('GET', '/v2/keys/pub/a'), req('PUT', '/v2/keys/pub/a', { body: 'value=3' }),
  as(ROOT, 'auth', 'disable'), ctl('auth', 'disable'), req('PUT', '/v2/keys/pub/a', { body: 'value=4' }),
  ctl('user', 'remove', 'alice'), ctl('role', 'remove', 'reader'), ctl('user', 'list'), ctl('role', 'list'), req('GET', U), req('GET', '/v2/keys/'),
];

/** python3-etcd's auth module (etcd.auth), run against each server; what it prints must match. */
const PY_SCRIPT = String.raw`
import sys, etcd
from etcd import auth
host, port = sys.argv[1], int(sys.argv[2])
def show(label, f):
    try:
        print(label, 'ok', repr(f()))
    except Exception as e:
        print(label, 'raised', type(e).__name__, str(e).replace(str(port), 'PORT'))
c = etcd.Client(host=host, port=port)
rc = etcd.Client(host=host, port=port, username='root', password='rootpw')
uc = etcd.Client(host=host, port=port, username='pyuser', password='pypw')
bad = etcd.Client(host=host, port=port, username='pyuser', password='wrong')
def mkroot():
    u = auth.EtcdUser(c, 'root'); u.password = 'rootpw'; u.write()
show('auth active', lambda: auth.Auth(c).active)
show('create root', mkroot)
def mkrole():
    r = auth.EtcdRole(rc, 'pyrole'); r.grant('/py/*', 'RW'); r.grant('/ro', 'R'); r.write(); return sorted(r.acls.items())
show('create role', mkrole)
def mkuser():
    u = auth.EtcdUser(rc, 'pyuser'); u.password = 'pypw'; u.roles.add('pyrole'); u.write(); return sorted(u.roles)
show('create user', mkuser)
show('role names', lambda: auth.EtcdRole(rc, 'x').names)
def readrole():
    r = auth.EtcdRole(rc, 'pyrole'); r.read(); return sorted(r.acls.items())
show('read role', readrole)
def readuser(name):
    u = auth.EtcdUser(rc, name); u.read(); return sorted(u.roles)
show('read user', lambda: readuser('pyuser'))
show('read missing user', lambda: readuser('nobody'))
def activate(v):
    a = auth.Auth(rc); a.active = v; return a.active
show('enable', lambda: activate(True))
show('user names', lambda: auth.EtcdUser(rc, 'x').names)
show('user write', lambda: uc.write('/py/k', 'v').value)
show('user read', lambda: uc.read('/py/k').value)
show('user write outside', lambda: uc.write('/other', 'v').value)
show('wrong password', lambda: bad.read('/py/k').value)
show('guest read', lambda: c.read('/py/k').value)
show('guest reads a user', lambda: auth.EtcdUser(c, 'root').read())
def revoke():
    r = auth.EtcdRole(rc, 'pyrole'); r.read(); r.revoke('/py/*', 'W'); r.write(); return sorted(r.acls.items())
show('revoke', revoke)
show('user write after revoke', lambda: uc.write('/py/k', 'v2').value)
show('disable', lambda: activate(False))
def delete():
    auth.EtcdUser(rc, 'pyuser').delete(); auth.EtcdRole(rc, 'pyrole').delete(); return auth.EtcdUser(rc, 'x').names
show('delete', delete)
show('delete again', lambda: auth.EtcdRole(rc, 'pyrole').delete())
`;

describe('v2 auth API side by side with Debian etcd', () => {
  let dir: string;
  let real: RunningEtcd;
  let ours: RunningEtcd;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'v2-auth-'));
    [real, ours] = await Promise.all([startRealEtcd(path.join(dir, 'real')), startOurEtcd(path.join(dir, 'ours'))]);
  }, 60000);

  afterAll(async () => {
    await Promise.all([real?.stop(), ours?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectSame(steps: Step[]): Promise<void> {
    for (const s of steps) {
      const name = 'ctl' in s ? `etcdctl ${s.ctl.join(' ')}` : `${s.method} ${s.path} ${s.body ?? ''} ${s.auth ?? s.header ?? ''}`;
      const run = (e: RunningEtcd) => ('ctl' in s ? Promise.resolve(runCtl(e, s.ctl, s.input)) : runHttp(e, s));
      const want = await run(real);
      const got = await run(ours);
      expect({ step: name, ...got }).toEqual({ step: name, ...want });
    }
  }

  test('users, roles and grants: etcdctl and the API answer alike, refusals included', async () => {
    await expectSame(SETUP);
  }, 300000);

  test('auth enabled: Basic credentials, wrong ones and the guest role on /v2/keys, /v2/members and /v2/auth', async () => {
    await expectSame(ENABLED);
  }, 300000);

  test("python3-etcd's auth module gets the same answers", () => {
    const run = (e: RunningEtcd) => {
      const u = new URL(e.clientURL);
      // Fixed hash seed: the module sends its sets of paths in set order.
      const r = spawnSync(PYTHON, ['-c', PY_SCRIPT, u.hostname, u.port], { encoding: 'utf8', timeout: 120000, env: { ...process.env, PYTHONHASHSEED: '0' } });
      return { out: r.stdout, err: r.stderr, code: r.status };
    };
    const want = run(real);
    expect(want.code).toBe(0);
    expect(want.out).toContain('user write ok');
    expect(run(ours)).toEqual(want);
  }, 300000);
});
