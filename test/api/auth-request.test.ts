/**
 * The v2 auth API's request parsing (etcd 3.4's client_auth.go with Go's encoding/json), and the pure parts of the
 * auth model: merges, permission matching, the JSON etcd writes. Each expectation is an answer Debian's etcd gave
 * (test/api/v2-auth-side-by-side.test.ts sends many of the same requests to both servers).
 */
import { AuthRequest, parseAuthRequest } from '../../server/api/v2/auth-request';
import { V2AuthError, V2Role, mergeRole, mergeUser, roleHasAccess, roleJSON, userJSON } from '../../server/auth/v2/model';
import { GoPanic } from '../../server/pkg/go-compat';
import { goDecodeFirst, goJSONString, goUnmarshal } from '../../server/pkg/go-json';

const put = (p: string, body: string): AuthRequest => parseAuthRequest('PUT', p, '', body);
const refusal = (r: AuthRequest): [number, string] | undefined => {
  const x = (r as { put?: unknown }).put;
  return x instanceof V2AuthError ? [x.status, x.message] : undefined;
};

describe('routes and methods', () => {
  test.each([
    ['GET', '/v2/auth/enable', { kind: 'getEnabled' }],
    ['PUT', '/v2/auth/enable', { kind: 'enable' }],
    ['DELETE', '/v2/auth/enable', { kind: 'disable' }],
    ['POST', '/v2/auth/enable', { kind: 'methodNotAllowed', allow: 'GET,PUT,DELETE' }],
    ['GET', '/v2/auth/users', { kind: 'listUsers', badQuery: false }],
    ['GET', '/v2/auth/users/', { kind: 'listUsers', badQuery: false }],
    ['PUT', '/v2/auth/roles', { kind: 'methodNotAllowed', allow: 'GET' }],
    ['HEAD', '/v2/auth/roles', { kind: 'methodNotAllowed', allow: 'GET' }],
    ['GET', '/v2/auth/users/alice', { kind: 'getUser', name: 'alice', badQuery: false }],
    ['GET', '/v2/auth/users/alice/', { kind: 'getUser', name: 'alice', badQuery: false }],
    ['DELETE', '/v2/auth/roles/r', { kind: 'deleteRole', name: 'r' }],
    ['PATCH', '/v2/auth/users/alice', { kind: 'methodNotAllowed', allow: 'GET,PUT,DELETE' }],
    // The path is checked before the method, as etcd does.
    ['PATCH', '/v2/auth/users/a/b', { kind: 'invalidPath' }],
    ['GET', '/v2/auth/roles/a/b', { kind: 'invalidPath' }],
    ['GET', '/v2/auth/enable/', { kind: 'notFound' }],
    ['GET', '/v2/auth/', { kind: 'notFound' }],
    ['GET', '/v2/auth/usersx', { kind: 'notFound' }],
  ])('%s %s', (method, p, want) => {
    expect(parseAuthRequest(method, p, '', undefined)).toEqual(want);
  });

  test("a query Go's ParseForm refuses is marked (etcd answers 500 after its read); the role GET never parses it", () => {
    expect(parseAuthRequest('GET', '/v2/auth/users', 'a;b', undefined)).toEqual({ kind: 'listUsers', badQuery: true });
    expect(parseAuthRequest('GET', '/v2/auth/users/x', '%zz', undefined)).toEqual({ kind: 'getUser', name: 'x', badQuery: true });
    expect(parseAuthRequest('GET', '/v2/auth/roles/x', 'a;b', undefined)).toEqual({ kind: 'getRole', name: 'x' });
  });
});

describe('user bodies', () => {
  test('the three kinds of PUT', () => {
    expect(put('/v2/auth/users/a', '{"user":"a","password":"p"}')).toMatchObject({ put: { mode: 'createOrUpdate', user: { user: 'a', password: 'p', roles: null } } });
    expect(put('/v2/auth/users/a', '{"user":"a","password":"p","roles":["r"]}')).toMatchObject({ put: { mode: 'create', user: { roles: ['r'] } } });
    expect(put('/v2/auth/users/a', '{"user":"a","grant":["r"],"revoke":[]}')).toMatchObject({ put: { mode: 'update', user: { grant: ['r'], revoke: [] } } });
    // Empty grant and revoke lists are no update: a create or update, as etcd reads len() == 0.
    expect(put('/v2/auth/users/a', '{"user":"a","grant":[],"revoke":[]}')).toMatchObject({ put: { mode: 'createOrUpdate' } });
  });

  test.each([
    ['', 'Invalid JSON in request body.'],
    ['   ', 'Invalid JSON in request body.'],
    ['{"user":"a",', 'Invalid JSON in request body.'],
    ['{"user":"a",}', 'Invalid JSON in request body.'],
    ['{"user":5}', 'Invalid JSON in request body.'],
    ['{"user":"a","roles":"r"}', 'Invalid JSON in request body.'],
    ['{"user":"a","roles":[1]}', 'Invalid JSON in request body.'],
    ['[]', 'Invalid JSON in request body.'],
    ['"a"', 'Invalid JSON in request body.'],
    ['null', 'User JSON name does not match the name in the URL'],
    ['{"user":"b"}', 'User JSON name does not match the name in the URL'],
    // A wrong type is an error even when a later value of the same key is right.
    ['{"user":5,"user":"a"}', 'Invalid JSON in request body.'],
    ['{"user":"a","roles":["r"],"grant":["g"]}', 'User JSON contains both roles and grant/revoke'],
  ])('%j is refused: %s', (body, message) => {
    expect(refusal(put('/v2/auth/users/a', body))).toEqual([400, message]);
  });

  test("Go's decoding: the first value only, keys in any case, unknown keys skipped, the last duplicate wins", () => {
    expect(put('/v2/auth/users/a', ' {"USER":"a","PassWord":"p","extra":{"x":[1,{"y":null}]}} trailing {')).toMatchObject({ put: { user: { user: 'a', password: 'p' } } });
    expect(put('/v2/auth/users/a', '{"user":"a","roles":["x"],"ROLES":null}')).toMatchObject({ put: { mode: 'createOrUpdate', user: { roles: null } } });
    expect(put('/v2/auth/users/a', '{"user":"a","roles":["x",null]}')).toMatchObject({ put: { user: { roles: ['x', ''] } } });
    // ſ (U+017F) folds to s, as Go's matching of field names does.
    expect(put('/v2/auth/users/a', '{"uſer":"a","password":"p"}')).toMatchObject({ put: { user: { user: 'a' } } });
  });
});

describe('role bodies', () => {
  test('create, update, and the refusals', () => {
    expect(put('/v2/auth/roles/r', '{"role":"r","grant":{}}')).toMatchObject({ put: { mode: 'create', role: { grant: { kv: { read: null, write: null } } } } });
    expect(put('/v2/auth/roles/r', '{"role":"r","revoke":{"kv":{"read":["/x"]}}}')).toMatchObject({ put: { mode: 'update' } });
    expect(refusal(put('/v2/auth/roles/r', '{"role":"r","grant":{"kv":{"read":["/a"]}},"permissions":{"kv":{"write":["/b"]}}}'))).toEqual([400, 'Role JSON contains both permissions and grant/revoke']);
    expect(refusal(put('/v2/auth/roles/r', '{"role":"s"}'))).toEqual([400, 'Role JSON name does not match the name in the URL']);
    expect(refusal(put('/v2/auth/roles/r', '{"role":"r","permissions":5}'))).toEqual([400, 'Invalid JSON in request body.']);
    expect(refusal(put('/v2/auth/roles/r', '{"role":"r","grant":[]}'))).toEqual([400, 'Invalid JSON in request body.']);
  });

  test('a struct decodes into the one there is (its fields merge); a pointer set to null is gone', () => {
    expect(put('/v2/auth/roles/r', '{"role":"r","permissions":{"kv":{"read":["/a"]}},"permissions":{"kv":{"write":["/b"]}}}')).toMatchObject({
      put: { role: { permissions: { kv: { read: ['/a'], write: ['/b'] } } } },
    });
    expect(put('/v2/auth/roles/r', '{"role":"r","grant":{"kv":{"read":["/a"]}},"grant":null}')).toMatchObject({ put: { mode: 'create', role: { grant: null } } });
  });
});

describe('the model', () => {
  const role = (read: string[] | null, write: string[] | null): V2Role => ({ role: 'r', permissions: { kv: { read, write } }, grant: null, revoke: null });

  test('merges as etcd: sorted, unique, duplicates and ungranted roles refused', () => {
    const u = { user: 'u', password: 'h', roles: null, grant: null, revoke: null };
    expect(mergeUser(u, 'u', '', ['b', 'a'], null)).toEqual({ user: 'u', password: 'h', roles: ['a', 'b'], grant: null, revoke: null });
    expect(() => mergeUser({ ...u, roles: ['a'] }, 'u', '', ['a'], null)).toThrow('auth: Granting duplicate role a for user u');
    expect(() => mergeUser(u, 'u', '', null, ['a'])).toThrow('auth: Revoking ungranted role a for user u');
    const change = { ...role(null, null), grant: { kv: { read: ['/b', '/a'], write: null } } };
    expect(mergeRole(role(['/c'], null), change).permissions.kv).toEqual({ read: ['/a', '/b', '/c'], write: [] });
    expect(() => mergeRole(role(['/a'], null), change)).toThrow('auth: Granting duplicate read permission /a');
  });

  test('permissions: * is a prefix; a recursive request needs a *; an empty path is a panic, as in etcd', () => {
    const r = role(['/pub/*', '/one'], ['/w*']);
    expect([roleHasAccess(r, '/pub/a', false, false), roleHasAccess(r, '/pub', false, false), roleHasAccess(r, '/one', false, false), roleHasAccess(r, '/one', false, true)]).toEqual([true, false, true, false]);
    expect([roleHasAccess(r, '/pub/', false, true), roleHasAccess(r, '/wx/y', true, false), roleHasAccess(r, '/pub/a', true, false)]).toEqual([true, true, false]);
    expect(roleHasAccess({ ...role(null, null), role: 'root' }, '/anything', true, true)).toBe(true);
    expect(() => roleHasAccess(role([''], null), '/a', false, false)).toThrow(GoPanic);
  });

  test("the JSON etcd writes: nil lists as null, empty ones kept, omitempty fields, Go's escapes", () => {
    expect(roleJSON(role(null, []))).toBe('{"role":"r","permissions":{"kv":{"read":null,"write":[]}}}');
    expect(userJSON({ user: '<a&b>', password: '', roles: ['\u2028'], grant: [], revoke: null })).toBe('{"user":"\\u003ca\\u0026b\\u003e","roles":["\\u2028"]}');
    expect(goJSONString('\b\f\n\r\t"\\\u0001\ud800é😀')).toBe('"\\u0008\\u000c\\n\\r\\t\\"\\\\\\u0001\\ufffdé😀"');
  });
});

describe("Go's JSON reading", () => {
  test('numbers, literals and escapes as Go scans them', () => {
    expect(goDecodeFirst('01')).toEqual({ num: '0' });
    expect(goDecodeFirst('[01]')).toBeUndefined();
    expect(goDecodeFirst('1.')).toBeUndefined();
    expect(goDecodeFirst('1.5.3')).toEqual({ num: '1.5' });
    expect(goDecodeFirst('1e')).toBeUndefined();
    expect(goDecodeFirst('-')).toBeUndefined();
    expect(goDecodeFirst('nullx')).toBeNull();
    expect(goDecodeFirst('nul')).toBeUndefined();
    expect(goDecodeFirst('"\\ud83d\\ude00\\ud800x"')).toBe('😀\ufffdx');
    expect(goDecodeFirst('"a\tb"')).toBeUndefined();
    expect(goDecodeFirst('"\\x"')).toBeUndefined();
    expect(goUnmarshal('{} ')).toEqual({ pairs: [] });
    expect(goUnmarshal('{} x')).toBeUndefined();
  });

  test("nesting up to Go's limit of 10000 reads without exhausting the stack; deeper is an error", () => {
    expect(goDecodeFirst(`${'['.repeat(10000)}${']'.repeat(10000)}`)).toBeDefined();
    expect(goDecodeFirst(`${'['.repeat(10001)}${']'.repeat(10001)}`)).toBeUndefined();
    expect(refusal(put('/v2/auth/users/a', `{"user":"a","password":"p","x":${'['.repeat(9000)}${']'.repeat(9000)}}`))).toBeUndefined();
  });
});
