/**
 * The v2 auth API's requests (/v2/auth/enable, /users[/<name>], /roles[/<name>]) read exactly as etcd 3.4's
 * v2http does (client_auth.go): its routes, methods, path checks and JSON bodies, with Go's JSON decoding. Pure:
 * what the handler then does (checks, the log, the answer) is in auth-handler.ts.
 */
import { goDecodeFirst } from '../../pkg/go-json';
import { goCleanPath } from '../../pkg/go-compat';
import { V2AuthError, V2Role, V2User, decodeRole, decodeUser, permissionsEmpty } from '../../auth/v2/model';
import { KeyRequestError, parseForm } from './key-request';

export const AUTH_PREFIX = '/v2/auth';

/** A user PUT: a create (roles given), a create or a password change (neither roles nor grants), or an update. */
export interface UserPut {
  mode: 'create' | 'createOrUpdate' | 'update';
  /** As the client sent it; its password in clear. */
  user: V2User;
}

/** A role PUT: a create (stored as given) or a grant/revoke. */
export interface RolePut {
  mode: 'create' | 'update';
  role: V2Role;
}

export type AuthRequest =
  /** None of etcd's auth routes: Go's 404 page. */
  | { kind: 'notFound' }
  | { kind: 'methodNotAllowed'; allow: string }
  | { kind: 'invalidPath' }
  | { kind: 'getEnabled' }
  | { kind: 'enable' }
  | { kind: 'disable' }
  /** `badQuery`: the query does not parse (Go's ParseForm), which etcd answers with a 500 after its read. */
  | { kind: 'listUsers'; badQuery: boolean }
  | { kind: 'listRoles'; badQuery: boolean }
  | { kind: 'getUser'; name: string; badQuery: boolean }
  | { kind: 'getRole'; name: string }
  | { kind: 'deleteUser'; name: string }
  | { kind: 'deleteRole'; name: string }
  /** `put` is etcd's answer when the body is refused (checked after the caller's credentials). */
  | { kind: 'putUser'; name: string; put: UserPut | V2AuthError }
  | { kind: 'putRole'; name: string; put: RolePut | V2AuthError };

const badJSON = (): V2AuthError => new V2AuthError(400, 'Invalid JSON in request body.');

/**
 * Reads a request to /v2/auth/…: `path` is the decoded, clean URL path (Go's ServeMux has redirected any other),
 * `query` the raw query, `body` the body of a PUT. The result says what etcd would do, in etcd's order of checks.
 */
export function parseAuthRequest(method: string, path: string, query: string, body: string | undefined): AuthRequest {
  if (path === `${AUTH_PREFIX}/enable`) {
    if (method === 'GET') return { kind: 'getEnabled' };
    if (method === 'PUT') return { kind: 'enable' };
    if (method === 'DELETE') return { kind: 'disable' };
    return { kind: 'methodNotAllowed', allow: 'GET,PUT,DELETE' };
  }
  let entity: 'users' | 'roles' | undefined;
  for (const e of ['users', 'roles'] as const) if (path === `${AUTH_PREFIX}/${e}` || path.startsWith(`${AUTH_PREFIX}/${e}/`)) entity = e;
  if (!entity) return { kind: 'notFound' };
  // "/users/<name>" after the prefix, cleaned (a trailing slash goes); the name is one segment.
  const pieces = goCleanPath(path.slice(AUTH_PREFIX.length)).split('/');
  const badQuery = (): boolean => {
    try {
      parseForm(query, undefined);
      return false;
    } catch (err) {
      if (err instanceof KeyRequestError) return true;
      throw err;
    }
  };
  if (pieces.length === 2) {
    if (method !== 'GET') return { kind: 'methodNotAllowed', allow: 'GET' };
    return entity === 'users' ? { kind: 'listUsers', badQuery: badQuery() } : { kind: 'listRoles', badQuery: badQuery() };
  }
  if (pieces.length !== 3) return { kind: 'invalidPath' };
  const name = pieces[2];
  switch (method) {
    case 'GET':
      return entity === 'users' ? { kind: 'getUser', name, badQuery: badQuery() } : { kind: 'getRole', name };
    case 'DELETE':
      return entity === 'users' ? { kind: 'deleteUser', name } : { kind: 'deleteRole', name };
    case 'PUT':
      return entity === 'users' ? { kind: 'putUser', name, put: userPut(name, body ?? '') } : { kind: 'putRole', name, put: rolePut(name, body ?? '') };
    default:
      return { kind: 'methodNotAllowed', allow: 'GET,PUT,DELETE' };
  }
}

function userPut(name: string, body: string): UserPut | V2AuthError {
  const user = decodeUser(goDecodeFirst(body));
  if (!user) return badJSON();
  if (user.user !== name) return new V2AuthError(400, 'User JSON name does not match the name in the URL');
  if (!user.grant?.length && !user.revoke?.length) return { mode: user.roles?.length ? 'create' : 'createOrUpdate', user };
  if (user.roles?.length) return new V2AuthError(400, 'User JSON contains both roles and grant/revoke');
  return { mode: 'update', user };
}

function rolePut(name: string, body: string): RolePut | V2AuthError {
  const role = decodeRole(goDecodeFirst(body));
  if (!role) return badJSON();
  if (role.role !== name) return new V2AuthError(400, 'Role JSON name does not match the name in the URL');
  if (permissionsEmpty(role.grant) && permissionsEmpty(role.revoke)) return { mode: 'create', role };
  if (!permissionsEmpty(role.permissions)) return new V2AuthError(400, 'Role JSON contains both permissions and grant/revoke');
  return { mode: 'update', role };
}
