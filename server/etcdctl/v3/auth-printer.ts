/**
 * etcdctl v3's output of the auth, user and role commands, byte for byte as etcd 3.4's: simple (its sentences),
 * fields (the header, and a role's permissions), json (Go's encoding/json of the response) and protobuf (its wire
 * bytes); table, and fields for user get and list, are refused as etcdctl refuses them.
 */
import {
  AuthRoleAddResponse, AuthRoleDeleteResponse, AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
  AuthRoleRevokePermissionResponse, AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
  AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse, type ResponseHeader,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { Permission_Type, type Permission } from '../../api/v3rpc/pb/authpb/auth';
import { goQuote, UnsupportedFormat, type Format, type Out } from './printer';

/** A response codec: what the protobuf format writes. */
interface Codec<T> {
  encode(m: T): { finish(): Uint8Array };
}

import { prefixEnd } from '../../api/v3client/concurrency';

const OPEN = Buffer.from([0]);
const PERM_NAMES = ['READ', 'WRITE', 'READWRITE'];

/** The JSON of an object with omitempty fields, [name, value or undefined], in Go's field order. */
function jsonObject(fields: [string, string | undefined][]): string {
  return `{${fields.filter(([, v]) => v !== undefined).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
}
const num = (n: bigint | number): string | undefined => (BigInt(n) === 0n ? undefined : n.toString());
const b64 = (b: Buffer): string | undefined => (b.length === 0 ? undefined : `"${b.toString('base64')}"`);
/** Go's encoding/json of a string: as JSON's, with <, >, & and the line separators escaped too. */
const goJSON = (x: string) => JSON.stringify(x).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const strings = (xs: string[]): string | undefined => (xs.length === 0 ? undefined : `[${xs.map(goJSON).join(',')}]`);

function jsonHeader(h: ResponseHeader | undefined): string | undefined {
  if (!h) return undefined;
  return jsonObject([['cluster_id', num(h.clusterId)], ['member_id', num(h.memberId)], ['revision', num(h.revision)], ['raft_term', num(h.raftTerm)]]);
}

const jsonPerm = (p: Permission) => jsonObject([['permType', num(p.permType)], ['key', b64(p.key)], ['range_end', b64(p.rangeEnd)]]);

function fieldsHeader(h: ResponseHeader | undefined): string[] {
  const x = h ?? { clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n };
  return [`"ClusterID" : ${x.clusterId}`, `"MemberID" : ${x.memberId}`, `"Revision" : ${x.revision}`, `"RaftTerm" : ${x.raftTerm}`];
}


export class AuthPrinter {
  constructor(private readonly format: Format) {}

  private write(out: Out, parts: (string | Buffer)[]): void {
    out.stdoutBytes(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
  }

  private unsupported(): never {
    throw new UnsupportedFormat(`${this.format} not supported as output format`);
  }

  /**
   * One response: `simple` writes the sentence given, fields the header (and `fields` lines after it, or refuses when
   * null), json `json`, protobuf the codec's bytes.
   */
  private print<T extends { header?: ResponseHeader }>(out: Out, r: T, codec: Codec<T>, simple: () => (string | Buffer)[], json: string, fields: string[] | null = []): void {
    switch (this.format) {
      case 'simple':
        return this.write(out, simple());
      case 'fields':
        if (fields === null) this.unsupported();
        return this.write(out, [...fieldsHeader(r.header), ...fields].map((l) => `${l}\n`));
      case 'json':
        return this.write(out, [`${json}\n`]);
      case 'protobuf':
        return this.write(out, [Buffer.from(codec.encode(r).finish())]);
      default:
        this.unsupported();
    }
  }

  private headerOnly<T extends { header?: ResponseHeader }>(out: Out, r: T, codec: Codec<T>, line: string): void {
    this.print(out, r, codec, () => [`${line}\n`], jsonObject([['header', jsonHeader(r.header)]]));
  }

  roleAdd(out: Out, role: string, r: AuthRoleAddResponse): void {
    this.headerOnly(out, r, AuthRoleAddResponse, `Role ${role} created`);
  }

  roleDelete(out: Out, role: string, r: AuthRoleDeleteResponse): void {
    this.headerOnly(out, r, AuthRoleDeleteResponse, `Role ${role} deleted`);
  }

  roleGrantPermission(out: Out, role: string, r: AuthRoleGrantPermissionResponse): void {
    this.headerOnly(out, r, AuthRoleGrantPermissionResponse, `Role ${role} updated`);
  }

  roleRevokePermission(out: Out, role: string, key: string, end: Buffer, r: AuthRoleRevokePermissionResponse): void {
    const what = end.length === 0
      ? [`Permission of key ${key} is revoked from role ${role}\n`]
      : end.equals(OPEN)
        ? [`Permission of range [${key}, <open ended> is revoked from role ${role}\n`]
        : [`Permission of range [${key}, `, end, `) is revoked from role ${role}\n`];
    this.print(out, r, AuthRoleRevokePermissionResponse, () => what, jsonObject([['header', jsonHeader(r.header)]]));
  }

  roleGet(out: Out, role: string, r: AuthRoleGetResponse): void {
    const simple = () => {
      const parts: (string | Buffer)[] = [`Role ${role}\n`, 'KV Read:\n'];
      const perm = (p: Permission) => {
        if (p.rangeEnd.length === 0) return parts.push('\t', p.key, '\n');
        if (!p.rangeEnd.equals(OPEN)) parts.push('\t[', p.key, ', ', p.rangeEnd, ')');
        else parts.push('\t[', p.key, ', <open ended>');
        if (prefixEnd(p.key).equals(p.rangeEnd)) parts.push(' (prefix ', p.key, ')');
        return parts.push('\n');
      };
      for (const p of r.perm) if (p.permType === Permission_Type.READ || p.permType === Permission_Type.READWRITE) perm(p);
      parts.push('KV Write:\n');
      for (const p of r.perm) if (p.permType === Permission_Type.WRITE || p.permType === Permission_Type.READWRITE) perm(p);
      return parts;
    };
    const fields = r.perm.flatMap((p) => [`"PermType" :  ${PERM_NAMES[p.permType] ?? p.permType}`, `"Key" : ${goQuote(p.key)}`, `"RangeEnd" : ${goQuote(p.rangeEnd)}`]);
    const json = jsonObject([['header', jsonHeader(r.header)], ['perm', r.perm.length ? `[${r.perm.map(jsonPerm).join(',')}]` : undefined]]);
    this.print(out, r, AuthRoleGetResponse, simple, json, fields);
  }

  roleList(out: Out, r: AuthRoleListResponse): void {
    const fields = [`"Roles" :${r.roles.map((x) => ` ${goQuote(Buffer.from(x))}`).join('')}`];
    this.print(out, r, AuthRoleListResponse, () => r.roles.map((x) => `${x}\n`), jsonObject([['header', jsonHeader(r.header)], ['roles', strings(r.roles)]]), fields);
  }

  userAdd(out: Out, name: string, r: AuthUserAddResponse): void {
    this.headerOnly(out, r, AuthUserAddResponse, `User ${name} created`);
  }

  userDelete(out: Out, name: string, r: AuthUserDeleteResponse): void {
    this.headerOnly(out, r, AuthUserDeleteResponse, `User ${name} deleted`);
  }

  userChangePassword(out: Out, r: AuthUserChangePasswordResponse): void {
    this.headerOnly(out, r, AuthUserChangePasswordResponse, 'Password updated');
  }

  userGrantRole(out: Out, user: string, role: string, r: AuthUserGrantRoleResponse): void {
    this.headerOnly(out, r, AuthUserGrantRoleResponse, `Role ${role} is granted to user ${user}`);
  }

  userRevokeRole(out: Out, user: string, role: string, r: AuthUserRevokeRoleResponse): void {
    this.headerOnly(out, r, AuthUserRevokeRoleResponse, `Role ${role} is revoked from user ${user}`);
  }

  userGet(out: Out, name: string, r: AuthUserGetResponse): void {
    const json = jsonObject([['header', jsonHeader(r.header)], ['roles', strings(r.roles)]]);
    this.print(out, r, AuthUserGetResponse, () => [`User: ${name}\nRoles:${r.roles.map((x) => ` ${x}`).join('')}\n`], json, null);
  }

  userList(out: Out, r: AuthUserListResponse): void {
    const json = jsonObject([['header', jsonHeader(r.header)], ['users', strings(r.users)]]);
    this.print(out, r, AuthUserListResponse, () => r.users.map((x) => `${x}\n`), json, null);
  }
}
