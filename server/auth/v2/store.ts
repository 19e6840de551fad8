/**
 * etcd 3.4's v2 auth store (etcdserver/api/v2auth): users, roles and the enabled flag, kept where etcd keeps them,
 * in the v2 store's hidden /2 tree (/2/users/<name>, /2/roles/<name>, /2/enabled), so they are in every member's
 * store, in its snapshots, and move the store's index as etcd's do.
 *
 * Every change is an operation in the Raft log (EntryKind.V2Auth), applied here on every member: the decision etcd
 * takes from a quorum read and a compare-and-set (does the user exist? is the grant a duplicate?) is taken at apply
 * time from the applied state, so every member decides alike and two racing changes cannot both win. Passwords
 * arrive hashed (bcrypt salts are random: the member that takes the request hashes). Reads are local, as etcd's.
 */
import {
  GUEST_ROLE, ROOT_ROLE, STORE_PREFIX, V2Role, V2User, authErr, decodeRole, decodeUser, defaultGuestRole, mergeRole,
  mergeUser, roleJSON, rolesEqual, rootRole, userJSON, usersEqual, withRootRole,
} from './model';
import { GoJSON, goUnmarshal } from '../../pkg/go-json';
import { GoPanic, goCleanPath } from '../../pkg/go-compat';
import { compareUTF8 } from '../../store/store';

/** The v2 store's hidden namespaces, where these records live (server/store/store.ts). */
export interface InternalArea {
  readInternal(path: string): string | undefined;
  writeInternal(op: 'create' | 'set' | 'update' | 'delete', path: string, value?: string): void;
  internalChildren(dir: string): string[];
  readonly stats: { createFail: number; updateFail: number; deleteFail: number };
}

/** The changes, as the log carries them (JSON: they are rare). */
export type V2AuthOp =
  /** PUT of a user without grant/revoke: with roles, a create (etcd's CreateUser); else create or update. */
  | { op: 'putUser'; user: V2User; createOnly: boolean }
  /** PUT of a user with grant and/or revoke (etcd's UpdateUser); `password` is a hash or ''. */
  | { op: 'updateUser'; name: string; password: string; grant: string[] | null; revoke: string[] | null }
  | { op: 'deleteUser'; name: string }
  /** PUT of a role without grant/revoke paths: a create, stored as given. */
  | { op: 'createRole'; role: V2Role }
  /** PUT of a role with grant/revoke paths. */
  | { op: 'updateRole'; role: V2Role }
  | { op: 'deleteRole'; name: string }
  | { op: 'enable' }
  | { op: 'disable' };

/** What a change answers: the user or role as etcd shows it, and whether a user was created (201). */
export interface V2AuthResult {
  user?: V2User;
  created?: boolean;
  role?: V2Role;
}

export function encodeV2AuthOp(op: V2AuthOp): Buffer {
  return Buffer.from(JSON.stringify(op));
}

export function decodeV2AuthOp(payload: Uint8Array): V2AuthOp {
  const op = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as V2AuthOp;
  if (!op || typeof op !== 'object' || typeof op.op !== 'string') throw new Error('v2 auth entry: malformed');
  return op;
}

const USERS = `${STORE_PREFIX}/users`;
const ROLES = `${STORE_PREFIX}/roles`;
const ENABLED = `${STORE_PREFIX}/enabled`;
/** The directories of /2 (stored as '' in the hidden area, where a record may also be ''). */
const DIRS = new Set([STORE_PREFIX, USERS, ROLES]);

/** A name that leads to a record which is not JSON of a user (or role): etcd's GetUser fails with its JSON error. */
export class InvalidRecordError extends Error {
  constructor(path: string) {
    super(`v2 auth: the record at ${path} does not decode`);
    this.name = 'InvalidRecordError';
  }
}

export class V2AuthStore {
  /** Records decoded once per stored value (by kind and path): the checks of every /v2/keys request read them. */
  private readonly parsed = new Map<string, { raw: string; value: V2User | V2Role }>();

  constructor(private readonly area: InternalArea) {}

  /** etcd's AuthEnabled: /2/enabled holds true. */
  enabled(): boolean {
    return this.area.readInternal(ENABLED) === 'true';
  }

  /**
   * etcd's GetUser (the root user with the root role attached); undefined when there is no such user. As etcd, the
   * name is joined to /2/users as a path: one that lands on a directory ("", "..") is etcd's nil dereference
   * (GoPanic), one that lands on a record that is no user's JSON an InvalidRecordError.
   */
  getUser(name: string): V2User | undefined {
    const u = this.record(USERS, name, decodeUser);
    return u && withRootRole(u);
  }

  /** etcd's GetRole: root is built in; other names as getUser's. */
  getRole(name: string): V2Role | undefined {
    if (name === ROOT_ROLE) return rootRole();
    return this.record(ROLES, name, decodeRole);
  }

  /** etcd's AllUsers: the names, in Go's order. */
  allUsers(): string[] {
    return this.area.internalChildren(USERS).sort(compareUTF8);
  }

  /** etcd's AllRoles: root and the stored roles, in Go's order. */
  allRoles(): string[] {
    return [ROOT_ROLE, ...this.area.internalChildren(ROLES)].sort(compareUTF8);
  }

  private record<T extends V2User | V2Role>(dir: string, name: string, decode: (v: GoJSON | undefined) => T | undefined): T | undefined {
    // path.Join, as etcd's requestResource: a plain name is the common case, and needs no cleaning.
    const path = name !== '' && name !== '.' && name !== '..' && !name.includes('/') ? `${dir}/${name}` : goCleanPath(`${dir}/${name}`);
    const raw = this.area.readInternal(path);
    const key = `${dir}\0${path}`;
    const isDir = raw === undefined ? path === '/' || this.area.internalChildren(path).length > 0 : DIRS.has(path);
    if (isDir) throw new GoPanic('invalid memory address or nil pointer dereference');
    if (raw === undefined) {
      this.parsed.delete(key);
      return undefined;
    }
    const hit = this.parsed.get(key);
    if (hit && hit.raw === raw) return hit.value as T;
    const value = decode(goUnmarshal(raw));
    if (!value) throw new InvalidRecordError(path);
    this.parsed.set(key, { raw, value });
    return value;
  }

  /** Applies a change from the log; throws V2AuthError with etcd's answer when etcd refuses it. Deterministic. */
  apply(op: V2AuthOp): V2AuthResult {
    switch (op.op) {
      case 'putUser':
        if (!op.createOnly && this.getUser(op.user.user)) return this.updateUser(op.user.user, op.user.password, null, null);
        return this.createUser(op.user, !op.createOnly);
      case 'updateUser':
        return this.updateUser(op.name, op.password, op.grant, op.revoke);
      case 'deleteUser':
        return this.deleteUser(op.name);
      case 'createRole':
        return { role: this.createRole(op.role) };
      case 'updateRole':
        return this.updateRole(op.role);
      case 'deleteRole':
        return this.deleteRole(op.name);
      case 'enable':
        return this.enable();
      case 'disable':
        return this.disable();
      default:
        throw new Error(`v2 auth entry: unknown operation ${(op as { op: string }).op}`);
    }
  }

  /**
   * etcd's ensureAuthDirectories, run before every write: /2, /2/users, /2/roles and /2/enabled (false) are created
   * when missing, each a write of its own (so a fresh cluster's first user add moves the index by 5, as etcd's).
   */
  private ensure(): void {
    for (const dir of [STORE_PREFIX, USERS, ROLES]) {
      if (this.area.readInternal(dir) === undefined) this.area.writeInternal('create', dir, '');
    }
    if (this.area.readInternal(ENABLED) === undefined) this.area.writeInternal('create', ENABLED, 'false');
  }

  private createUser(given: V2User, created: boolean): V2AuthResult {
    const user = withRootRole(given);
    if (user.password === '') throw authErr(400, `Cannot create user ${user.user} with an empty password`);
    this.ensure();
    const path = `${USERS}/${user.user}`;
    if (this.area.readInternal(path) !== undefined) {
      this.area.stats.createFail++;
      throw authErr(409, `User ${user.user} already exists.`);
    }
    this.area.writeInternal('create', path, userJSON(user));
    return { user: { ...user, password: '' }, created };
  }

  private updateUser(name: string, passwordHash: string, grant: string[] | null, revoke: string[] | null): V2AuthResult {
    const old = this.getUser(name);
    if (!old) throw authErr(404, `User ${name} does not exist.`);
    const user = mergeUser(old, name, passwordHash, grant, revoke);
    if (usersEqual(old, user)) throw authErr(400, 'User not updated. Use grant/revoke/password to update the user.');
    this.ensure();
    this.area.writeInternal('update', `${USERS}/${name}`, userJSON(user));
    return { user: { ...user, password: '' }, created: false };
  }

  private deleteUser(name: string): V2AuthResult {
    if (this.enabled() && name === 'root') throw authErr(403, 'Cannot delete root user while auth is enabled.');
    this.ensure();
    const path = `${USERS}/${name}`;
    if (this.area.readInternal(path) === undefined) {
      this.area.stats.deleteFail++;
      throw authErr(404, `User ${name} does not exist`);
    }
    this.area.writeInternal('delete', path);
    return {};
  }

  private createRole(role: V2Role): V2Role {
    if (role.role === ROOT_ROLE) throw authErr(403, `Cannot modify role ${role.role}: is root role.`);
    this.ensure();
    const path = `${ROLES}/${role.role}`;
    if (this.area.readInternal(path) !== undefined) {
      this.area.stats.createFail++;
      throw authErr(409, `Role ${role.role} already exists.`);
    }
    this.area.writeInternal('create', path, roleJSON(role));
    return role;
  }

  private updateRole(change: V2Role): V2AuthResult {
    const name = change.role;
    if (name === ROOT_ROLE) throw authErr(403, `Cannot modify role ${name}: is root role.`);
    const old = this.getRole(name);
    if (!old) throw authErr(404, `Role ${name} does not exist.`);
    const role = mergeRole(old, change);
    if (rolesEqual(old, role)) throw authErr(400, 'Role not updated. Use grant/revoke to update the role.');
    this.ensure();
    this.area.writeInternal('update', `${ROLES}/${name}`, roleJSON(role));
    return { role };
  }

  private deleteRole(name: string): V2AuthResult {
    if (name === ROOT_ROLE) throw authErr(403, `Cannot modify role ${name}: is root role.`);
    this.ensure();
    const path = `${ROLES}/${name}`;
    if (this.area.readInternal(path) === undefined) {
      this.area.stats.deleteFail++;
      throw authErr(404, `Role ${name} doesn't exist.`);
    }
    this.area.writeInternal('delete', path);
    return {};
  }

  /** etcd's EnableAuth: refused without a root user; makes the default guest role when there is none. */
  private enable(): V2AuthResult {
    if (this.enabled()) throw authErr(409, 'already enabled');
    if (!this.getUser('root')) throw authErr(409, 'No root user available, please create one');
    if (!this.getRole(GUEST_ROLE)) this.createRole(defaultGuestRole());
    this.ensure();
    this.area.writeInternal('update', ENABLED, 'true');
    return {};
  }

  private disable(): V2AuthResult {
    if (!this.enabled()) throw authErr(409, 'already disabled');
    this.ensure();
    this.area.writeInternal('update', ENABLED, 'false');
    return {};
  }
}
