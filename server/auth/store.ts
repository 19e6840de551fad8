/**
 * The auth store (etcd 3.4's auth/store.go): users with bcrypt passwords and roles, roles with key permissions, the
 * enabled flag and the auth revision, which every change raises. Changes come from Auth entries of the Raft log
 * (their payload is etcd's InternalRaftRequest with one auth_* field and the header naming who asked), applied by
 * `apply` on every member alike. The whole state is small and changes rarely: it is kept in memory and written, as
 * one value of the MVCC store's meta table, in the same LMDB transaction as the entry's consistent index (etcd keeps
 * its auth buckets in the same bbolt transaction), so a restart or a snapshot brings back exactly what was applied.
 */
import { Permission_Type, Role, User, type Permission } from '../api/v3rpc/pb/authpb/auth';
import { InternalRaftRequest } from '../api/v3rpc/pb/etcdserverpb/raft_internal';
import type {
  AuthRoleGetResponse, AuthRoleListResponse, AuthUserGetResponse, AuthUserListResponse, AuthenticateResponse,
  RequestOp, TxnRequest,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import { serverError } from '../api/v3rpc/errors';
import type { Applier, ApplyContext, ApplyResult } from '../etcdserver/apply/applier';
import type { MvccStore } from '../mvcc/store';
import { DEFAULT_COST, hashPassword, MAX_COST, MIN_COST } from './bcrypt';
import { UnifiedPerms } from './range-perm';
import type { TokenProvider } from './tokens';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';
/** The meta table's key of the auth store's state. */
export const AUTH_META_KEY = 'auth';

/** The auth store's whole state, as the meta table keeps it (and etcd's auth, authUsers and authRoles buckets). */
export interface AuthState {
  enabled: boolean;
  revision: number;
  users: User[];
  roles: Role[];
}

/** The meta value of an auth state: enabled (u8), revision (u64 BE), then per user/role: kind (1/2), u32 length, proto. */
export function encodeAuthState(st: AuthState): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(9);
  head[0] = st.enabled ? 1 : 0;
  head.writeBigUInt64BE(BigInt(st.revision), 1);
  parts.push(head);
  const add = (kind: number, bytes: Uint8Array): void => {
    const h = Buffer.alloc(5);
    h[0] = kind;
    h.writeUInt32BE(bytes.length, 1);
    parts.push(h, Buffer.from(bytes));
  };
  for (const u of st.users) add(1, User.encode(u).finish());
  for (const r of st.roles) add(2, Role.encode(r).finish());
  return Buffer.concat(parts);
}

/** The auth state of a meta value (none: a store that never changed, at revision 1 as etcd's NewAuthStore). */
export function decodeAuthState(b: Buffer | undefined): AuthState {
  const st: AuthState = { enabled: false, revision: 1, users: [], roles: [] };
  if (!b) return st;
  st.enabled = b[0] === 1;
  st.revision = Number(b.readBigUInt64BE(1));
  let o = 9;
  while (o < b.length) {
    const kind = b[o];
    const len = b.readUInt32BE(o + 1);
    const body = b.subarray(o + 5, o + 5 + len);
    o += 5 + len;
    if (kind === 1) st.users.push(User.decode(body));
    else st.roles.push(Role.decode(body));
  }
  return st;
}

/** Who a request comes from: the user and the auth revision its token was checked at (0: none). */
export interface AuthInfo {
  username: string;
  revision: number;
}

const err = serverError;

function hasRootRole(u: User): boolean {
  return u.roles.includes(ROOT_ROLE);
}

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class AuthStore implements Applier {
  /** Auth entries: 1, passwords as the client sent them; 2, UserAdd and UserChangePassword carry the hash (entry.ts). */
  readonly versions: readonly number[] = [1, 2];
  private enabled = false;
  private rev = 0;
  private users = new Map<string, User>();
  private roles = new Map<string, Role>();
  private perms = new Map<string, UnifiedPerms>();
  /** --bcrypt-cost, for hashing (by the member that takes a request, bcrypt-pool.ts; or when applying a version 1 entry). */
  readonly bcryptCost: number;

  constructor(
    private readonly mvcc: MvccStore,
    readonly tokens: TokenProvider,
    opts: { bcryptCost?: number } = {},
  ) {
    const c = opts.bcryptCost ?? DEFAULT_COST;
    this.bcryptCost = c < MIN_COST || c > MAX_COST ? DEFAULT_COST : c;
    this.recover();
  }

  /** Loads the state the MVCC store holds (at start, and after a snapshot replaced its data). */
  recover(): void {
    const st = decodeAuthState(this.mvcc.readMetaValue(AUTH_META_KEY));
    this.users.clear();
    this.roles.clear();
    this.enabled = st.enabled;
    this.rev = st.revision;
    for (const u of st.users) this.users.set(u.name.toString(), u);
    for (const r of st.roles) this.roles.set(r.name.toString(), r);
    this.refreshPerms();
    if (this.enabled) this.tokens.enable();
    else this.tokens.disable();
  }

  private save(index: number): void {
    this.mvcc.putMetaValue(AUTH_META_KEY, encodeAuthState({ enabled: this.enabled, revision: this.rev, users: [...this.users.values()], roles: [...this.roles.values()] }), index);
  }

  /** A change: the revision goes up, permissions are recomputed, and the state is written with the entry. */
  private commit(index: number): void {
    this.rev++;
    this.refreshPerms();
    this.save(index);
  }

  private refreshPerms(): void {
    this.perms.clear();
    for (const [name, u] of this.users) this.perms.set(name, UnifiedPerms.of(u, this.roles));
  }

  isEnabled(): boolean {
    return this.enabled;
  }

  revision(): number {
    return this.rev;
  }

  hasRole(user: string, role: string): boolean {
    const u = this.users.get(user);
    return !!u && u.roles.includes(role);
  }

  /**
   * The first half of etcd's CheckPassword (before an Authenticate is proposed): the user's bcrypt hash and the auth
   * revision it was read at, or etcd's error; the caller compares the password (bcrypt-pool.ts, off the event loop).
   */
  passwordOf(name: string): { hash: Buffer; revision: number } {
    if (!this.enabled) throw err('authNotEnabled');
    const u = this.users.get(name);
    if (!u) throw err('authFailed');
    if (u.options?.noPassword) throw new Error('auth: authentication failed, password was given for no password user');
    return { hash: u.password, revision: this.rev };
  }

  /** The user of a token, stamped with the revision it is good for; throws ErrInvalidAuthToken. */
  authInfoFromToken(token: string): AuthInfo {
    const t = this.tokens.info(token);
    if (!t) throw err('invalidAuthToken');
    return { username: t.username, revision: t.revision || this.rev };
  }

  // Permission checks (etcd's isOpPermitted and IsAdminPermitted).

  private isOpPermitted(ai: AuthInfo | undefined, key: Buffer, rangeEnd: Buffer | undefined, type: Permission_Type.READ | Permission_Type.WRITE): Error | undefined {
    if (!this.enabled) return undefined;
    if (!ai || ai.revision === 0) return err('userEmpty');
    if (ai.revision < this.rev) return err('authOldRevision');
    const u = this.users.get(ai.username);
    if (!u) return err('permissionDenied');
    if (hasRootRole(u)) return undefined;
    const p = this.perms.get(ai.username);
    return p && p.permits(key, rangeEnd, type) ? undefined : err('permissionDenied');
  }

  isRangePermitted(ai: AuthInfo | undefined, key: Buffer, rangeEnd?: Buffer): Error | undefined {
    return this.isOpPermitted(ai, key, rangeEnd, Permission_Type.READ);
  }

  isPutPermitted(ai: AuthInfo | undefined, key: Buffer): Error | undefined {
    return this.isOpPermitted(ai, key, undefined, Permission_Type.WRITE);
  }

  isDeleteRangePermitted(ai: AuthInfo | undefined, key: Buffer, rangeEnd?: Buffer): Error | undefined {
    return this.isOpPermitted(ai, key, rangeEnd, Permission_Type.WRITE);
  }

  isAdminPermitted(ai: AuthInfo | undefined): Error | undefined {
    if (!this.enabled) return undefined;
    if (!ai || ai.username === '') return err('userEmpty');
    const u = this.users.get(ai.username);
    if (!u) return err('userNotFound');
    return hasRootRole(u) ? undefined : err('permissionDenied');
  }

  /** etcd's checkTxnAuth: every compare's range, and every op of both branches (nested txns are not looked into). */
  checkTxn(ai: AuthInfo | undefined, r: TxnRequest): Error | undefined {
    for (const c of r.compare) {
      const e = this.isRangePermitted(ai, c.key, c.rangeEnd);
      if (e) return e;
    }
    return this.checkOps(ai, r.success) ?? this.checkOps(ai, r.failure);
  }

  private checkOps(ai: AuthInfo | undefined, ops: RequestOp[]): Error | undefined {
    for (const op of ops) {
      let e: Error | undefined;
      if (op.requestRange) e = this.isRangePermitted(ai, op.requestRange.key, op.requestRange.rangeEnd);
      else if (op.requestPut) e = this.isPutPermitted(ai, op.requestPut.key);
      else if (op.requestDeleteRange) {
        const d = op.requestDeleteRange;
        if (d.prevKv) e = this.isRangePermitted(ai, d.key, d.rangeEnd);
        e ??= this.isDeleteRangePermitted(ai, d.key, d.rangeEnd);
      }
      if (e) return e;
    }
    return undefined;
  }

  /**
   * etcd's authApplierV3 for the KV requests of a v3 entry: the check of the user the header names, at the auth
   * revision it was authorized at. Undefined when permitted (or auth is off).
   */
  checkKV(r: InternalRaftRequest): Error | undefined {
    if (!this.enabled) return undefined;
    const ai: AuthInfo = { username: r.header?.username ?? '', revision: Number(r.header?.authRevision ?? 0n) };
    if (r.put) return this.isPutPermitted(ai, r.put.key) ?? (r.put.prevKv ? this.isRangePermitted(ai, r.put.key) : undefined);
    if (r.range) return this.isRangePermitted(ai, r.range.key, r.range.rangeEnd);
    if (r.deleteRange) {
      const d = r.deleteRange;
      return this.isDeleteRangePermitted(ai, d.key, d.rangeEnd) ?? (d.prevKv ? this.isRangePermitted(ai, d.key, d.rangeEnd) : undefined);
    }
    if (r.txn) return this.checkTxn(ai, r.txn);
    return undefined;
  }

  // The Auth entries.

  apply(payload: Uint8Array, ctx: ApplyContext): ApplyResult {
    if (ctx.index <= this.mvcc.consistentIndex()) return {};
    const r = InternalRaftRequest.decode(payload);
    const ai: AuthInfo = { username: r.header?.username ?? '', revision: Number(r.header?.authRevision ?? 0n) };
    try {
      if (needsAdmin(r)) {
        const e = this.isAdminPermitted(ai);
        if (e) throw e;
      }
      const result = this.applyAuth(r, ai, ctx.index, ctx.version >= 2);
      if (this.mvcc.consistentIndex() < ctx.index) this.mvcc.setConsistentIndex(ctx.index);
      return { result };
    } catch (e) {
      if (this.mvcc.consistentIndex() < ctx.index) this.mvcc.setConsistentIndex(ctx.index);
      return { error: e as Error };
    }
  }

  private applyAuth(r: InternalRaftRequest, ai: AuthInfo, index: number, hashed: boolean): unknown {
    if (r.authEnable) return this.authEnable(index);
    if (r.authDisable) return this.authDisable(index);
    if (r.authenticate) return this.authenticate(r.authenticate.name, r.authenticate.simpleToken, index);
    if (r.authUserAdd) {
      const { name, password, options } = r.authUserAdd;
      if (name === '') throw err('userEmpty');
      const noPassword = options?.noPassword === true;
      if (this.users.has(name)) throw err('userAlreadyExist');
      const hash = noPassword ? Buffer.alloc(0) : hashed ? Buffer.from(password, 'latin1') : hashPassword(password, this.bcryptCost);
      this.users.set(name, { name: Buffer.from(name), password: hash, roles: [], options: options ?? { noPassword: false } });
      this.commit(index);
      return {};
    }
    if (r.authUserDelete) {
      const { name } = r.authUserDelete;
      if (this.enabled && name === ROOT_USER) throw err('invalidAuthMgmt');
      if (!this.users.delete(name)) throw err('userNotFound');
      this.commit(index);
      this.tokens.invalidateUser(name);
      return {};
    }
    if (r.authUserChangePassword) {
      const { name, password } = r.authUserChangePassword;
      const u = this.users.get(name);
      if (!u) throw err('userNotFound');
      u.password = hashed ? Buffer.from(password, 'latin1') : hashPassword(password, this.bcryptCost);
      this.commit(index);
      this.tokens.invalidateUser(name);
      return {};
    }
    if (r.authUserGrantRole) {
      const { user, role } = r.authUserGrantRole;
      const u = this.users.get(user);
      if (!u) throw err('userNotFound');
      if (role !== ROOT_ROLE && !this.roles.has(role)) throw err('roleNotFound');
      if (u.roles.includes(role)) return {};
      u.roles.push(role);
      u.roles.sort(cmpStr);
      this.commit(index);
      return {};
    }
    if (r.authUserRevokeRole) {
      const { name, role } = r.authUserRevokeRole;
      if (this.enabled && name === ROOT_USER && role === ROOT_ROLE) throw err('invalidAuthMgmt');
      const u = this.users.get(name);
      if (!u) throw err('userNotFound');
      const left = u.roles.filter((x) => x !== role);
      if (left.length === u.roles.length) throw err('roleNotGranted');
      u.roles = left;
      this.commit(index);
      return {};
    }
    if (r.authUserGet) {
      const { name } = r.authUserGet;
      if (this.isAdminPermitted(ai) && name !== ai.username) throw this.isAdminPermitted(ai)!;
      const u = this.users.get(name);
      if (!u) throw err('userNotFound');
      return { header: undefined, roles: [...u.roles] } satisfies AuthUserGetResponse;
    }
    if (r.authUserList) {
      return { header: undefined, users: [...this.users.keys()].sort(cmpStr) } satisfies AuthUserListResponse;
    }
    if (r.authRoleAdd) {
      const { name } = r.authRoleAdd;
      if (name === '') throw err('roleEmpty');
      if (this.roles.has(name)) throw err('roleAlreadyExist');
      this.roles.set(name, { name: Buffer.from(name), keyPermission: [] });
      this.commit(index);
      return {};
    }
    if (r.authRoleGet) {
      const { role } = r.authRoleGet;
      const denied = this.isAdminPermitted(ai);
      if (denied && !this.hasRole(ai.username, role)) throw denied;
      const ro = this.roles.get(role);
      if (!ro) throw err('roleNotFound');
      return { header: undefined, perm: ro.keyPermission.map((p) => ({ ...p })) } satisfies AuthRoleGetResponse;
    }
    if (r.authRoleList) {
      return { header: undefined, roles: [...this.roles.keys()].sort(cmpStr) } satisfies AuthRoleListResponse;
    }
    if (r.authRoleDelete) {
      const { role } = r.authRoleDelete;
      if (this.enabled && role === ROOT_ROLE) throw err('invalidAuthMgmt');
      if (!this.roles.delete(role)) throw err('roleNotFound');
      for (const u of this.users.values()) u.roles = u.roles.filter((x) => x !== role);
      this.commit(index);
      return {};
    }
    if (r.authRoleGrantPermission) {
      const { name, perm } = r.authRoleGrantPermission;
      const ro = this.roles.get(name);
      if (!ro) throw err('roleNotFound');
      const p: Permission = { permType: perm?.permType ?? Permission_Type.READ, key: perm?.key ?? Buffer.alloc(0), rangeEnd: perm?.rangeEnd ?? Buffer.alloc(0) };
      const same = ro.keyPermission.find((x) => x.key.equals(p.key) && x.rangeEnd.equals(p.rangeEnd));
      if (same) same.permType = p.permType;
      else {
        ro.keyPermission.push(p);
        ro.keyPermission.sort((a, b) => Buffer.compare(a.key, b.key));
      }
      this.commit(index);
      return {};
    }
    if (r.authRoleRevokePermission) {
      const { role, key, rangeEnd } = r.authRoleRevokePermission;
      const ro = this.roles.get(role);
      if (!ro) throw err('roleNotFound');
      const left = ro.keyPermission.filter((x) => !x.key.equals(key) || !x.rangeEnd.equals(rangeEnd));
      if (left.length === ro.keyPermission.length) throw err('permissionNotGranted');
      ro.keyPermission = left;
      this.commit(index);
      return {};
    }
    throw new Error('auth: entry without an auth request');
  }

  private authEnable(index: number): unknown {
    if (this.enabled) return {};
    const root = this.users.get(ROOT_USER);
    if (!root) throw err('rootUserNotExist');
    if (!hasRootRole(root)) throw err('rootRoleNotExist');
    this.enabled = true;
    this.tokens.enable();
    // etcd's AuthEnable writes the flag without raising the revision.
    this.save(index);
    return {};
  }

  private authDisable(index: number): unknown {
    if (!this.enabled) return {};
    this.enabled = false;
    this.commit(index);
    this.tokens.disable();
    return {};
  }

  private authenticate(name: string, prefix: string, index: number): AuthenticateResponse {
    if (!this.enabled) throw err('authNotEnabled');
    const u = this.users.get(name);
    if (!u || u.options?.noPassword) throw err('authFailed');
    return { header: undefined, token: this.tokens.assign(name, this.rev, prefix, index) };
  }
}

/** etcd's needAdminPermission: every auth request but Authenticate, UserGet and RoleGet (checked on their own). */
function needsAdmin(r: InternalRaftRequest): boolean {
  return !!(
    r.authEnable || r.authDisable || r.authUserAdd || r.authUserDelete || r.authUserChangePassword ||
    r.authUserGrantRole || r.authUserRevokeRole || r.authRoleAdd || r.authRoleGrantPermission ||
    r.authRoleRevokePermission || r.authRoleDelete || r.authUserList || r.authRoleList
  );
}
