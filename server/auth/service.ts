/**
 * The etcdserverpb.Auth service (etcd's v3rpc/auth.go over EtcdServer's auth methods): every request, reads of users
 * and roles too, goes through the Raft log as an Auth entry (etcd's InternalRaftRequest with its auth_* field and a
 * header naming the caller), and answers what the auth store answered when applying it on this member.
 */
import type * as grpc from '@grpc/grpc-js';
import { InternalRaftRequest } from '../api/v3rpc/pb/etcdserverpb/raft_internal';
import {
  AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse, AuthRoleAddRequest,
  AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
  AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
  AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthUserAddRequest, AuthUserAddResponse,
  AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest, AuthUserDeleteResponse,
  AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse, AuthUserListRequest,
  AuthUserListResponse, AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateRequest,
  AuthenticateResponse, ResponseHeader,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import { fillHeader, type CallContext, type HeaderProvider } from '../api/v3rpc/kv';
import { serverError, toGRPCError } from '../api/v3rpc/errors';
import { encodeMessage, unaryMethod, type UnaryHandler } from '../api/v3rpc/service';
import { EntryKind } from '../etcdserver/entry';
import { checkPasswordAsync, hashPasswordAsync } from './bcrypt-pool';
import type { EtcdServer } from '../etcdserver/server';
import type { AuthGate } from './gate';

/** etcd's maxRequestBytes default. */
const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

export class AuthV3 {
  constructor(
    private readonly server: EtcdServer,
    private readonly gate: AuthGate,
    private readonly maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES,
  ) {}

  private async ready(): Promise<void> {
    if (this.server.published) return;
    await new Promise<void>((resolve) => this.server.once('published', () => resolve()));
  }

  /** Proposes an Auth entry for the caller and waits for this member's answer. */
  async propose<T>(op: Partial<InternalRaftRequest>, call: CallContext | undefined, version?: number): Promise<T> {
    await this.ready();
    const who = this.gate.stamp(call);
    const id = this.server.newRequestId();
    const msg = InternalRaftRequest.fromPartial({ header: { ID: BigInt(id), ...who } });
    Object.assign(msg, op);
    const data = encodeMessage(InternalRaftRequest, msg);
    if (data.length > this.maxRequestBytes) throw serverError('requestTooLarge');
    const w = await this.server.proposeEntry(EntryKind.Auth, data, id, { version });
    if (w.error) throw w.error;
    return (w.result ?? {}) as T;
  }

  /**
   * etcd's Authenticate: the password is checked here (bcrypt, outside the log: the entry carries no password), then
   * an entry assigns the token on every member; when the auth store changed meanwhile, again.
   */
  async authenticate(r: AuthenticateRequest, call: CallContext | undefined): Promise<AuthenticateResponse> {
    await this.ready();
    await this.server.linearizableRead();
    const store = this.gate.store;
    for (;;) {
      const { hash, revision } = store.passwordOf(r.name);
      if (!(await checkPasswordAsync(hash, r.password))) throw serverError('authFailed');
      const simpleToken = store.tokens.genPrefix();
      const resp = await this.propose<AuthenticateResponse>({ authenticate: { name: r.name, password: '', simpleToken } }, call);
      if (revision === store.revision()) return resp;
    }
  }

  /**
   * UserAdd and UserChangePassword: the password is hashed here, off the event loop, and the entry (version 2)
   * carries the hash, so no member runs bcrypt while applying (etcd 3.4 does, on every member).
   */
  async withPassword<T>(field: 'authUserAdd' | 'authUserChangePassword', r: AuthUserAddRequest | AuthUserChangePasswordRequest, call: CallContext | undefined): Promise<T> {
    await this.ready();
    const noPassword = field === 'authUserAdd' && (r as AuthUserAddRequest).options?.noPassword === true;
    if (noPassword) return this.propose<T>({ [field]: r } as Partial<InternalRaftRequest>, call);
    const hash = await hashPasswordAsync(r.password, this.gate.store.bcryptCost);
    return this.propose<T>({ [field]: { ...r, password: hash.toString('latin1') } } as Partial<InternalRaftRequest>, call, 2);
  }
}

type Resp = { header?: ResponseHeader | undefined };

/** The Auth service's definition and handlers, to add to the gRPC server. */
export function authService(auth: AuthV3, header: HeaderProvider): { definition: grpc.ServiceDefinition; handlers: Record<string, UnaryHandler<any, any>> } {
  const h = <Req, Res extends Resp>(exec: (r: Req, call: CallContext) => Promise<Res>): UnaryHandler<Req, Res> => async (req, call) => {
    let resp: Res;
    try {
      resp = await exec(req, call);
    } catch (err) {
      throw toGRPCError(err);
    }
    resp.header = fillHeader(resp.header, header);
    return resp;
  };
  const p = <Req, Res extends Resp>(field: keyof InternalRaftRequest) => h<Req, Res>((r, call) => auth.propose<Res>({ [field]: r }, call));
  const S = '/etcdserverpb.Auth/';
  return {
    definition: {
      AuthEnable: unaryMethod(S + 'AuthEnable', AuthEnableRequest, AuthEnableResponse),
      AuthDisable: unaryMethod(S + 'AuthDisable', AuthDisableRequest, AuthDisableResponse),
      Authenticate: unaryMethod(S + 'Authenticate', AuthenticateRequest, AuthenticateResponse),
      UserAdd: unaryMethod(S + 'UserAdd', AuthUserAddRequest, AuthUserAddResponse),
      UserGet: unaryMethod(S + 'UserGet', AuthUserGetRequest, AuthUserGetResponse),
      UserList: unaryMethod(S + 'UserList', AuthUserListRequest, AuthUserListResponse),
      UserDelete: unaryMethod(S + 'UserDelete', AuthUserDeleteRequest, AuthUserDeleteResponse),
      UserChangePassword: unaryMethod(S + 'UserChangePassword', AuthUserChangePasswordRequest, AuthUserChangePasswordResponse),
      UserGrantRole: unaryMethod(S + 'UserGrantRole', AuthUserGrantRoleRequest, AuthUserGrantRoleResponse),
      UserRevokeRole: unaryMethod(S + 'UserRevokeRole', AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse),
      RoleAdd: unaryMethod(S + 'RoleAdd', AuthRoleAddRequest, AuthRoleAddResponse),
      RoleGet: unaryMethod(S + 'RoleGet', AuthRoleGetRequest, AuthRoleGetResponse),
      RoleList: unaryMethod(S + 'RoleList', AuthRoleListRequest, AuthRoleListResponse),
      RoleDelete: unaryMethod(S + 'RoleDelete', AuthRoleDeleteRequest, AuthRoleDeleteResponse),
      RoleGrantPermission: unaryMethod(S + 'RoleGrantPermission', AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse),
      RoleRevokePermission: unaryMethod(S + 'RoleRevokePermission', AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse),
    },
    handlers: {
      AuthEnable: p('authEnable'),
      AuthDisable: p('authDisable'),
      Authenticate: h((r: AuthenticateRequest, call) => auth.authenticate(r, call)),
      UserAdd: h((r: AuthUserAddRequest, call) => auth.withPassword<AuthUserAddResponse>('authUserAdd', r, call)),
      UserGet: p('authUserGet'),
      UserList: p('authUserList'),
      UserDelete: p('authUserDelete'),
      UserChangePassword: h((r: AuthUserChangePasswordRequest, call) => auth.withPassword<AuthUserChangePasswordResponse>('authUserChangePassword', r, call)),
      UserGrantRole: p('authUserGrantRole'),
      UserRevokeRole: p('authUserRevokeRole'),
      RoleAdd: p('authRoleAdd'),
      RoleGet: p('authRoleGet'),
      RoleList: p('authRoleList'),
      RoleDelete: p('authRoleDelete'),
      RoleGrantPermission: p('authRoleGrantPermission'),
      RoleRevokePermission: p('authRoleRevokePermission'),
    },
  };
}
