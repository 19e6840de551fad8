/**
 * etcd 3.4's v2 users and roles (etcdserver/api/v2auth): their data, the rules that merge grants and revocations
 * into them, key permission matching, and their JSON as etcd writes it. Pure: no store, no I/O.
 *
 * Lists keep Go's distinction between a nil slice (null: JSON null) and an empty one ([]), since etcd's answers
 * show it ("roles":null after a create, [] after an update) and its "not updated" check compares them.
 */
import { GoJSON, goFieldMatches, goJSONString, isGoObject } from '../../pkg/go-json';
import { GoPanic } from '../../pkg/go-compat';
import { compareUTF8 } from '../../store/store';

export type GoList = string[] | null;

export interface V2User {
  user: string;
  /** The bcrypt hash (stored), or '' in answers. */
  password: string;
  roles: GoList;
  grant: GoList;
  revoke: GoList;
}

export interface RWPermission {
  read: GoList;
  write: GoList;
}

export interface V2Role {
  role: string;
  permissions: { kv: RWPermission };
  /** null: absent (Go's nil pointer); a present one is kept and shown, even empty. */
  grant: { kv: RWPermission } | null;
  revoke: { kv: RWPermission } | null;
}

export const ROOT_ROLE = 'root';
export const GUEST_ROLE = 'guest';
/** Where etcd keeps v2 auth in its v2 store: /2/users/<name>, /2/roles/<name>, /2/enabled. */
export const STORE_PREFIX = '/2';

const allKeys = (): RWPermission => ({ read: ['/*'], write: ['/*'] });
/** The root role is built in: every key, read and write; never stored. */
export const rootRole = (): V2Role => ({ role: ROOT_ROLE, permissions: { kv: allKeys() }, grant: null, revoke: null });
/** The guest role etcd creates when auth is enabled without one: every key, read and write. */
export const defaultGuestRole = (): V2Role => ({ role: GUEST_ROLE, permissions: { kv: allKeys() }, grant: null, revoke: null });

/** An answer of the v2 auth API that is not a success: its HTTP status and message ({"message": ...}). */
export class V2AuthError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'V2AuthError';
  }
}

/** etcd's authErr: its messages start with "auth: ". */
export const authErr = (status: number, message: string): V2AuthError => new V2AuthError(status, `auth: ${message}`);

/** Go's sort.Strings of a set's values: unique, in byte order. */
const sortedSet = (set: Set<string>): string[] => [...set].sort(compareUTF8);

/** etcd's attachRootRole: the root user always has the root role. */
export function withRootRole(u: V2User): V2User {
  if (u.user !== 'root' || u.roles?.includes(ROOT_ROLE)) return u;
  return { ...u, roles: [...(u.roles ?? []), ROOT_ROLE] };
}

/**
 * etcd's User.merge: a new password (already hashed; '' keeps the old one), roles granted (each must be new) and
 * revoked (each must be held). The roles come out unique and sorted.
 */
export function mergeUser(old: V2User, name: string, passwordHash: string, grant: GoList, revoke: GoList): V2User {
  const roles = new Set(old.roles ?? []);
  for (const g of grant ?? []) {
    if (roles.has(g)) throw authErr(409, `Granting duplicate role ${g} for user ${name}`);
    roles.add(g);
  }
  for (const r of revoke ?? []) {
    if (!roles.has(r)) throw authErr(409, `Revoking ungranted role ${r} for user ${name}`);
    roles.delete(r);
  }
  return { user: old.user, password: passwordHash !== '' ? passwordHash : old.password, roles: sortedSet(roles), grant: null, revoke: null };
}

/** etcd's RWPermission.Grant: each path must be new; the lists come out unique and sorted. */
function grantRW(p: RWPermission, n: RWPermission): RWPermission {
  const read = new Set(p.read ?? []);
  for (const r of n.read ?? []) {
    if (read.has(r)) throw authErr(409, `Granting duplicate read permission ${r}`);
    read.add(r);
  }
  const write = new Set(p.write ?? []);
  for (const w of n.write ?? []) {
    if (write.has(w)) throw authErr(409, `Granting duplicate write permission ${w}`);
    write.add(w);
  }
  return { read: sortedSet(read), write: sortedSet(write) };
}

/** etcd's RWPermission.Revoke: a path not granted is passed over; the lists come out unique and sorted. */
function revokeRW(p: RWPermission, n: RWPermission): RWPermission {
  const read = new Set(p.read ?? []);
  for (const r of n.read ?? []) read.delete(r);
  const write = new Set(p.write ?? []);
  for (const w of n.write ?? []) write.delete(w);
  return { read: sortedSet(read), write: sortedSet(write) };
}

/** etcd's Role.merge: the grant applied, then the revocation (an absent one changes nothing). */
export function mergeRole(old: V2Role, change: V2Role): V2Role {
  let kv = old.permissions.kv;
  if (change.grant) kv = grantRW(kv, change.grant.kv);
  if (change.revoke) kv = revokeRW(kv, change.revoke.kv);
  return { role: old.role, permissions: { kv }, grant: null, revoke: null };
}

/** etcd's Permissions.IsEmpty: absent, or no paths at all. */
export const permissionsEmpty = (p: { kv: RWPermission } | null): boolean => !p || ((p.kv.read?.length ?? 0) === 0 && (p.kv.write?.length ?? 0) === 0);

const listsEqual = (a: GoList, b: GoList): boolean => (a === null || b === null ? a === b : a.length === b.length && a.every((x, i) => x === b[i]));
const rwEqual = (a: RWPermission, b: RWPermission): boolean => listsEqual(a.read, b.read) && listsEqual(a.write, b.write);
const optRWEqual = (a: { kv: RWPermission } | null, b: { kv: RWPermission } | null): boolean => (a === null || b === null ? a === b : rwEqual(a.kv, b.kv));

/** Go's reflect.DeepEqual of two users (a nil list is not an empty one). */
export const usersEqual = (a: V2User, b: V2User): boolean =>
  a.user === b.user && a.password === b.password && listsEqual(a.roles, b.roles) && listsEqual(a.grant, b.grant) && listsEqual(a.revoke, b.revoke);

/** Go's reflect.DeepEqual of two roles. */
export const rolesEqual = (a: V2Role, b: V2Role): boolean =>
  a.role === b.role && rwEqual(a.permissions.kv, b.permissions.kv) && optRWEqual(a.grant, b.grant) && optRWEqual(a.revoke, b.revoke);

/** etcd's simpleMatch: a path ending in * is a prefix, any other the key itself. */
function simpleMatch(pattern: string, key: string): boolean {
  if (pattern === '') throw new GoPanic('index out of range [-1]');
  if (pattern.endsWith('*')) return key.startsWith(pattern.slice(0, -1));
  return key === pattern;
}

/** etcd's prefixMatch: only a path ending in * covers a recursive request. */
function prefixMatch(pattern: string, key: string): boolean {
  if (pattern === '') throw new GoPanic('index out of range [-1]');
  return pattern.endsWith('*') && key.startsWith(pattern.slice(0, -1));
}

/** etcd's Role.HasKeyAccess (recursive: HasRecursiveAccess): may this role read (write) the key? */
export function roleHasAccess(r: V2Role, key: string, write: boolean, recursive: boolean): boolean {
  if (r.role === ROOT_ROLE) return true;
  const list = (write ? r.permissions.kv.write : r.permissions.kv.read) ?? [];
  const match = recursive ? prefixMatch : simpleMatch;
  return list.some((p) => match(p, key));
}

// ---- JSON, as Go's encoding/json writes these structs ----

const listJSON = (l: GoList): string => (l === null ? 'null' : `[${l.map(goJSONString).join(',')}]`);
const rwJSON = (p: { kv: RWPermission }): string => `{"kv":{"read":${listJSON(p.kv.read)},"write":${listJSON(p.kv.write)}}}`;

/** A role: permissions always; grant and revoke when present (omitempty on pointers). */
export function roleJSON(r: V2Role): string {
  let out = `{"role":${goJSONString(r.role)},"permissions":${rwJSON(r.permissions)}`;
  if (r.grant) out += `,"grant":${rwJSON(r.grant)}`;
  if (r.revoke) out += `,"revoke":${rwJSON(r.revoke)}`;
  return out + '}';
}

/** A user: password when set, roles always (null when nil), grant and revoke when not empty. */
export function userJSON(u: V2User): string {
  let out = `{"user":${goJSONString(u.user)}`;
  if (u.password !== '') out += `,"password":${goJSONString(u.password)}`;
  out += `,"roles":${listJSON(u.roles)}`;
  if (u.grant?.length) out += `,"grant":${listJSON(u.grant)}`;
  if (u.revoke?.length) out += `,"revoke":${listJSON(u.revoke)}`;
  return out + '}';
}

/** etcd's userWithRoles: the user's name and its roles in full (left out when it has none). */
export function userWithRolesJSON(name: string, roles: V2Role[]): string {
  return roles.length ? `{"user":${goJSONString(name)},"roles":[${roles.map(roleJSON).join(',')}]}` : `{"user":${goJSONString(name)}}`;
}

// ---- Go's json.Unmarshal into etcd's v2auth.User and v2auth.Role ----

/**
 * Decoding state: Go goes on after a value of the wrong type and fails at the end (etcd then answers "Invalid JSON"
 * for a body, or an error for a record), so one flag says it.
 */
interface Dec {
  bad: boolean;
}

/** A JSON value into a Go string: null leaves it as it was. */
function str(d: Dec, v: GoJSON, cur: string): string {
  if (v === null) return cur;
  if (typeof v === 'string') return v;
  d.bad = true;
  return cur;
}

/** A JSON value into a Go []string: null is nil; each element decodes into the one it replaces (null keeps it). */
function list(d: Dec, v: GoJSON, cur: GoList): GoList {
  if (v === null) return null;
  if (!Array.isArray(v)) {
    d.bad = true;
    return cur;
  }
  return v.map((e, i) => str(d, e, cur?.[i] ?? ''));
}

/** A JSON object into a Go struct, field by field in the text's order (null leaves the struct as it was). */
function struct(d: Dec, v: GoJSON, fields: Record<string, (value: GoJSON) => void>): void {
  if (v === null) return;
  if (!isGoObject(v)) {
    d.bad = true;
    return;
  }
  const names = Object.keys(fields);
  for (const [key, value] of v.pairs) {
    const f = names.find((n) => goFieldMatches(key, n));
    if (f) fields[f](value);
  }
}

function rw(d: Dec, v: GoJSON, p: RWPermission): void {
  struct(d, v, { read: (x) => (p.read = list(d, x, p.read)), write: (x) => (p.write = list(d, x, p.write)) });
}

function permissions(d: Dec, v: GoJSON, p: { kv: RWPermission }): void {
  struct(d, v, { kv: (x) => rw(d, x, p.kv) });
}

/** A *Permissions: null is nil; an object decodes into the one there is, or a new one. */
function optPermissions(d: Dec, v: GoJSON, cur: { kv: RWPermission } | null): { kv: RWPermission } | null {
  if (v === null) return null;
  const p = cur ?? { kv: { read: null, write: null } };
  permissions(d, v, p);
  return p;
}

export function decodeUser(v: GoJSON | undefined): V2User | undefined {
  if (v === undefined) return undefined;
  const d: Dec = { bad: false };
  const u: V2User = { user: '', password: '', roles: null, grant: null, revoke: null };
  struct(d, v, {
    user: (x) => (u.user = str(d, x, u.user)),
    password: (x) => (u.password = str(d, x, u.password)),
    roles: (x) => (u.roles = list(d, x, u.roles)),
    grant: (x) => (u.grant = list(d, x, u.grant)),
    revoke: (x) => (u.revoke = list(d, x, u.revoke)),
  });
  return d.bad ? undefined : u;
}

export function decodeRole(v: GoJSON | undefined): V2Role | undefined {
  if (v === undefined) return undefined;
  const d: Dec = { bad: false };
  const r: V2Role = { role: '', permissions: { kv: { read: null, write: null } }, grant: null, revoke: null };
  struct(d, v, {
    role: (x) => (r.role = str(d, x, r.role)),
    permissions: (x) => permissions(d, x, r.permissions),
    grant: (x) => (r.grant = optPermissions(d, x, r.grant)),
    revoke: (x) => (r.revoke = optPermissions(d, x, r.revoke)),
  });
  return d.bad ? undefined : r;
}
