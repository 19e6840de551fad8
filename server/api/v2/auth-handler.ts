import * as http from 'node:http';
import { DEFAULT_COST } from '../../auth/bcrypt';
import { hashPasswordAsync } from '../../auth/bcrypt-pool';
import { V2AuthAccess } from '../../auth/v2/access';
import { V2AuthError, V2Role, roleJSON, userJSON, userWithRolesJSON } from '../../auth/v2/model';
import { InvalidRecordError, V2AuthOp, V2AuthResult, V2AuthStore, encodeV2AuthOp } from '../../auth/v2/store';
import { EntryKind } from '../../etcdserver/entry';
import type { EtcdServer } from '../../etcdserver/server';
import { GoPanic, goPathUnescape } from '../../pkg/go-compat';
import { goJSONString } from '../../pkg/go-json';
import { readBody } from '../read-body';
import { AuthRequest, parseAuthRequest } from './auth-request';

/** The largest body read (etcd reads any; this bounds what one request can hold in memory). */
const MAX_AUTH_BODY = 32 * 1024 * 1024;

export interface AuthHandlerDeps {
  server: Pick<EtcdServer, 'cluster' | 'proposeEntry'>;
  store: V2AuthStore;
  access: V2AuthAccess;
  /** bcrypt's cost for new passwords: etcd's v2 auth always uses bcrypt.DefaultCost. */
  bcryptCost?: number;
  log?: (level: 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** etcd's httptypes.HTTPError: {"message": ...} without a newline. */
const messageJSON = (message: string): string => `{"message":${goJSONString(message)}}`;

/**
 * The /v2/auth handler, as etcd 3.4's (v2http/client_auth.go): reads answered from this member's store, changes
 * proposed to the log (EntryKind.V2Auth) and answered once applied here.
 */
export function authHandler(deps: AuthHandlerDeps): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { server, store, access } = deps;
  const json = (): Record<string, string> => ({ 'X-Etcd-Cluster-Id': server.cluster.id, 'Content-Type': 'application/json' });
  return (req, res) => {
    handle(req, res).catch((err: Error) => {
      // Where etcd's handler panics (a user or role name that is a directory of /2), the connection just ends.
      if (err instanceof GoPanic) return void req.socket.destroy();
      // etcd's answer to an error it did not expect: a timeout of the log, a record that does not decode.
      if (!(err instanceof InvalidRecordError)) deps.log?.('error', 'v2 auth request failed', { error: err.message });
      if (!res.headersSent) send(res, 500, json(), messageJSON('Internal Server Error'));
      else res.end();
    });
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    let body: string | undefined;
    if (method === 'PUT') {
      const b = await readBody(req, MAX_AUTH_BODY);
      if (!b) return send(res, 413, { 'Content-Type': 'application/json' }, messageJSON('request entity too large'));
      body = b.toString('utf8');
    } else req.resume();
    const r = parseAuthRequest(method, goPathUnescape(rawPath) ?? rawPath, q >= 0 ? url.slice(q + 1) : '', body);
    if (r.kind === 'notFound') return send(res, 404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }, '404 page not found\n');
    // etcd serves the auth API once the cluster version is known (its capabilities).
    if (server.cluster.version === undefined) return send(res, 500, { 'Content-Type': 'application/json' }, messageJSON('Not capable of accessing auth feature during rolling upgrades.'));
    if (r.kind === 'methodNotAllowed') {
      return send(res, 405, { Allow: r.allow, 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }, 'Method Not Allowed\n');
    }
    if (r.kind === 'invalidPath') return send(res, 400, { 'Content-Type': 'application/json' }, messageJSON('Invalid path'));
    // Reading whether auth is on is open to all; everything else needs the root role.
    if (r.kind !== 'getEnabled' && !(await access.hasRootAccess(req))) return send(res, 401, { 'Content-Type': 'application/json' }, messageJSON('Insufficient credentials'));
    const answer = await serve(r);
    send(res, answer.status, json(), answer.body);
  }

  async function serve(r: AuthRequest): Promise<{ status: number; body: string }> {
    const fail = (e: V2AuthError) => ({ status: e.status, body: messageJSON(e.message) });
    const ok = (body: string, status = 200) => ({ status, body: body === '' ? '' : `${body}\n` });
    const internalError = { status: 500, body: messageJSON('Internal Server Error') };
    const change = async (op: V2AuthOp): Promise<V2AuthResult | V2AuthError> => {
      const w = await server.proposeEntry(EntryKind.V2Auth, encodeV2AuthOp(op));
      if (w.error instanceof V2AuthError) return w.error;
      if (w.error) throw w.error;
      return w.result as V2AuthResult;
    };
    // bcrypt runs on a worker thread (bcrypt-pool.ts): a password change does not stall the member.
    const hash = async (password: string): Promise<string> => (password === '' ? '' : (await hashPasswordAsync(password, deps.bcryptCost ?? DEFAULT_COST)).toString());
    switch (r.kind) {
      case 'getEnabled':
        return ok(`{"enabled":${store.enabled()}}`);
      case 'enable':
      case 'disable': {
        const done = await change({ op: r.kind });
        return done instanceof V2AuthError ? fail(done) : ok('');
      }
      case 'listUsers': {
        const names = store.allUsers();
        if (r.badQuery) return internalError;
        const users = names.flatMap((name) => {
          const u = store.getUser(name);
          if (!u) return [];
          const roles = (u.roles ?? []).flatMap((rn) => {
            try {
              return store.getRole(rn) ?? [];
            } catch (err) {
              // etcd passes over a role it cannot read here.
              if (err instanceof InvalidRecordError) return [];
              throw err;
            }
          });
          return [userWithRolesJSON(u.user, roles)];
        });
        return ok(`{"users":${users.length ? `[${users.join(',')}]` : 'null'}}`);
      }
      case 'listRoles': {
        const names = store.allRoles();
        if (r.badQuery) return internalError;
        const roles = names.flatMap((name) => store.getRole(name) ?? []);
        return ok(`{"roles":[${roles.map(roleJSON).join(',')}]}`);
      }
      case 'getUser': {
        const u = store.getUser(r.name);
        if (!u) return fail(new V2AuthError(404, `auth: User ${r.name} does not exist.`));
        if (r.badQuery) return internalError;
        const roles: V2Role[] = [];
        for (const rn of u.roles ?? []) {
          const role = store.getRole(rn);
          if (!role) return fail(new V2AuthError(404, `auth: Role ${rn} does not exist.`));
          roles.push(role);
        }
        return ok(userWithRolesJSON(u.user, roles));
      }
      case 'getRole': {
        const role = store.getRole(r.name);
        return role ? ok(roleJSON(role)) : fail(new V2AuthError(404, `auth: Role ${r.name} does not exist.`));
      }
      case 'deleteUser':
      case 'deleteRole': {
        const done = await change({ op: r.kind, name: r.name });
        return done instanceof V2AuthError ? fail(done) : ok('');
      }
      case 'putUser': {
        if (r.put instanceof V2AuthError) return fail(r.put);
        const { mode, user } = r.put;
        // A create without a password is refused before anything is hashed or logged, as in etcd.
        if (mode === 'create' && user.password === '') return fail(new V2AuthError(400, `auth: Cannot create user ${user.user} with an empty password`));
        const op: V2AuthOp = mode === 'update'
          ? { op: 'updateUser', name: user.user, password: await hash(user.password), grant: user.grant, revoke: user.revoke }
          : { op: 'putUser', user: { ...user, password: await hash(user.password) }, createOnly: mode === 'create' };
        const done = await change(op);
        if (done instanceof V2AuthError) return fail(done);
        return ok(userJSON(done.user!), done.created ? 201 : 200);
      }
      case 'putRole': {
        if (r.put instanceof V2AuthError) return fail(r.put);
        const { mode, role } = r.put;
        const done = await change(mode === 'create' ? { op: 'createRole', role } : { op: 'updateRole', role });
        if (done instanceof V2AuthError) return fail(done);
        return ok(roleJSON(done.role!), mode === 'create' ? 201 : 200);
      }
      default:
        throw new Error(`v2 auth: unexpected request ${r.kind}`);
    }
  }
}
