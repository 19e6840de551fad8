/**
 * The JSON gateway of etcd 3.4 (its grpc-gateway, `/v3/` and `/v3beta/` on the client port): a POST of a request as
 * JSON to a route (etcd's `google.api.http` annotations) is answered by the same gRPC method the v3 clients call,
 * in-process, and the response comes back as JSON the way grpc-gateway writes it: the .proto field names, 64-bit
 * integers as strings, bytes as base64, enums by name, zero values left out; errors as {"error","message","code"}
 * with grpc-gateway's HTTP status for the gRPC code.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import type * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import * as rpc from '../v3rpc/pb/etcdserverpb/rpc';
import * as lockpb from '../v3rpc/pb/v3lockpb/v3lock';
import * as electionpb from '../v3rpc/pb/v3electionpb/v3election';
import { JSON_NAMES } from '../v3rpc/pb/json-names';

/** What the generated code offers for every message. */
interface JsonCodec {
  fromJSON(object: any): unknown;
  toJSON(message: any): unknown;
  decode(input: Uint8Array): unknown;
}

interface Route {
  grpcPath: string;
  req: JsonCodec;
  res: JsonCodec;
  /** The response's message type (etcdserverpb.X, v3lockpb.X…), for the .proto field names. */
  resType: string;
  /** A streaming method: bidirectional (requests read from the body one JSON value after another) or server-side. */
  stream?: 'bidi' | 'server';
}

const routes = new Map<string, Route>();

/** A route to a method; the service is etcdserverpb's unless it names its package ("v3lockpb.Lock"). */
function route(httpPaths: string | string[], service: string, method: string, req: JsonCodec, res: JsonCodec, resName: string, stream?: Route['stream']): void {
  const pkg = service.includes('.') ? service.slice(0, service.indexOf('.')) : 'etcdserverpb';
  const svc = service.includes('.') ? service : `etcdserverpb.${service}`;
  for (const p of Array.isArray(httpPaths) ? httpPaths : [httpPaths]) {
    routes.set(p, { grpcPath: `/${svc}/${method}`, req, res, resType: `${pkg}.${resName}`, stream });
  }
}

route('/v3/kv/range', 'KV', 'Range', rpc.RangeRequest, rpc.RangeResponse, 'RangeResponse');
route('/v3/kv/put', 'KV', 'Put', rpc.PutRequest, rpc.PutResponse, 'PutResponse');
route('/v3/kv/deleterange', 'KV', 'DeleteRange', rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, 'DeleteRangeResponse');
route('/v3/kv/txn', 'KV', 'Txn', rpc.TxnRequest, rpc.TxnResponse, 'TxnResponse');
route('/v3/kv/compaction', 'KV', 'Compact', rpc.CompactionRequest, rpc.CompactionResponse, 'CompactionResponse');
route('/v3/lease/grant', 'Lease', 'LeaseGrant', rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, 'LeaseGrantResponse');
route(['/v3/lease/revoke', '/v3/kv/lease/revoke'], 'Lease', 'LeaseRevoke', rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, 'LeaseRevokeResponse');
route(['/v3/lease/timetolive', '/v3/kv/lease/timetolive'], 'Lease', 'LeaseTimeToLive', rpc.LeaseTimeToLiveRequest, rpc.LeaseTimeToLiveResponse, 'LeaseTimeToLiveResponse');
route(['/v3/lease/leases', '/v3/kv/lease/leases'], 'Lease', 'LeaseLeases', rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, 'LeaseLeasesResponse');
route('/v3/cluster/member/add', 'Cluster', 'MemberAdd', rpc.MemberAddRequest, rpc.MemberAddResponse, 'MemberAddResponse');
route('/v3/cluster/member/remove', 'Cluster', 'MemberRemove', rpc.MemberRemoveRequest, rpc.MemberRemoveResponse, 'MemberRemoveResponse');
route('/v3/cluster/member/update', 'Cluster', 'MemberUpdate', rpc.MemberUpdateRequest, rpc.MemberUpdateResponse, 'MemberUpdateResponse');
route('/v3/cluster/member/list', 'Cluster', 'MemberList', rpc.MemberListRequest, rpc.MemberListResponse, 'MemberListResponse');
route('/v3/cluster/member/promote', 'Cluster', 'MemberPromote', rpc.MemberPromoteRequest, rpc.MemberPromoteResponse, 'MemberPromoteResponse');
route('/v3/maintenance/alarm', 'Maintenance', 'Alarm', rpc.AlarmRequest, rpc.AlarmResponse, 'AlarmResponse');
route('/v3/maintenance/status', 'Maintenance', 'Status', rpc.StatusRequest, rpc.StatusResponse, 'StatusResponse');
route('/v3/maintenance/defragment', 'Maintenance', 'Defragment', rpc.DefragmentRequest, rpc.DefragmentResponse, 'DefragmentResponse');
// Hash and HashKV share a route in etcd 3.4's annotations; Debian's etcd answers it with Hash.
route('/v3/maintenance/hash', 'Maintenance', 'Hash', rpc.HashRequest, rpc.HashResponse, 'HashResponse');
route('/v3/maintenance/transfer-leadership', 'Maintenance', 'MoveLeader', rpc.MoveLeaderRequest, rpc.MoveLeaderResponse, 'MoveLeaderResponse');
route('/v3/auth/enable', 'Auth', 'AuthEnable', rpc.AuthEnableRequest, rpc.AuthEnableResponse, 'AuthEnableResponse');
route('/v3/auth/disable', 'Auth', 'AuthDisable', rpc.AuthDisableRequest, rpc.AuthDisableResponse, 'AuthDisableResponse');
route('/v3/auth/authenticate', 'Auth', 'Authenticate', rpc.AuthenticateRequest, rpc.AuthenticateResponse, 'AuthenticateResponse');
route('/v3/auth/user/add', 'Auth', 'UserAdd', rpc.AuthUserAddRequest, rpc.AuthUserAddResponse, 'AuthUserAddResponse');
route('/v3/auth/user/get', 'Auth', 'UserGet', rpc.AuthUserGetRequest, rpc.AuthUserGetResponse, 'AuthUserGetResponse');
route('/v3/auth/user/list', 'Auth', 'UserList', rpc.AuthUserListRequest, rpc.AuthUserListResponse, 'AuthUserListResponse');
route('/v3/auth/user/delete', 'Auth', 'UserDelete', rpc.AuthUserDeleteRequest, rpc.AuthUserDeleteResponse, 'AuthUserDeleteResponse');
route('/v3/auth/user/changepw', 'Auth', 'UserChangePassword', rpc.AuthUserChangePasswordRequest, rpc.AuthUserChangePasswordResponse, 'AuthUserChangePasswordResponse');
route('/v3/auth/user/grant', 'Auth', 'UserGrantRole', rpc.AuthUserGrantRoleRequest, rpc.AuthUserGrantRoleResponse, 'AuthUserGrantRoleResponse');
route('/v3/auth/user/revoke', 'Auth', 'UserRevokeRole', rpc.AuthUserRevokeRoleRequest, rpc.AuthUserRevokeRoleResponse, 'AuthUserRevokeRoleResponse');
route('/v3/auth/role/add', 'Auth', 'RoleAdd', rpc.AuthRoleAddRequest, rpc.AuthRoleAddResponse, 'AuthRoleAddResponse');
route('/v3/auth/role/get', 'Auth', 'RoleGet', rpc.AuthRoleGetRequest, rpc.AuthRoleGetResponse, 'AuthRoleGetResponse');
route('/v3/auth/role/list', 'Auth', 'RoleList', rpc.AuthRoleListRequest, rpc.AuthRoleListResponse, 'AuthRoleListResponse');
route('/v3/auth/role/delete', 'Auth', 'RoleDelete', rpc.AuthRoleDeleteRequest, rpc.AuthRoleDeleteResponse, 'AuthRoleDeleteResponse');
route('/v3/auth/role/grant', 'Auth', 'RoleGrantPermission', rpc.AuthRoleGrantPermissionRequest, rpc.AuthRoleGrantPermissionResponse, 'AuthRoleGrantPermissionResponse');
route('/v3/auth/role/revoke', 'Auth', 'RoleRevokePermission', rpc.AuthRoleRevokePermissionRequest, rpc.AuthRoleRevokePermissionResponse, 'AuthRoleRevokePermissionResponse');
route('/v3/lock/lock', 'v3lockpb.Lock', 'Lock', lockpb.LockRequest, lockpb.LockResponse, 'LockResponse');
route('/v3/lock/unlock', 'v3lockpb.Lock', 'Unlock', lockpb.UnlockRequest, lockpb.UnlockResponse, 'UnlockResponse');
route('/v3/election/campaign', 'v3electionpb.Election', 'Campaign', electionpb.CampaignRequest, electionpb.CampaignResponse, 'CampaignResponse');
route('/v3/election/proclaim', 'v3electionpb.Election', 'Proclaim', electionpb.ProclaimRequest, electionpb.ProclaimResponse, 'ProclaimResponse');
route('/v3/election/leader', 'v3electionpb.Election', 'Leader', electionpb.LeaderRequest, electionpb.LeaderResponse, 'LeaderResponse');
route('/v3/election/resign', 'v3electionpb.Election', 'Resign', electionpb.ResignRequest, electionpb.ResignResponse, 'ResignResponse');
// The streams (answered as newline-separated {"result": ...} objects by grpc-gateway).
route('/v3/election/observe', 'v3electionpb.Election', 'Observe', electionpb.LeaderRequest, electionpb.LeaderResponse, 'LeaderResponse', 'server');
route('/v3/watch', 'Watch', 'Watch', rpc.WatchRequest, rpc.WatchResponse, 'WatchResponse', 'bidi');
route('/v3/lease/keepalive', 'Lease', 'LeaseKeepAlive', rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse, 'LeaseKeepAliveResponse', 'bidi');
route('/v3/maintenance/snapshot', 'Maintenance', 'Snapshot', rpc.SnapshotRequest, rpc.SnapshotResponse, 'SnapshotResponse', 'server');

/** grpc-gateway's HTTP status for a gRPC code (its runtime.HTTPStatusFromCode, as vendored by etcd 3.4). */
const HTTP_STATUS: Record<number, number> = {
  [grpc.status.OK]: 200,
  [grpc.status.CANCELLED]: 408,
  [grpc.status.UNKNOWN]: 500,
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.DEADLINE_EXCEEDED]: 504,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.UNAUTHENTICATED]: 401,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.FAILED_PRECONDITION]: 412,
  [grpc.status.ABORTED]: 409,
  [grpc.status.OUT_OF_RANGE]: 400,
  [grpc.status.UNIMPLEMENTED]: 501,
  [grpc.status.INTERNAL]: 500,
  [grpc.status.UNAVAILABLE]: 503,
  [grpc.status.DATA_LOSS]: 500,
};

/** The generated code's JSON (its JSON names) with the .proto field names, recursively by message type. */
export function withProtoNames(value: unknown, type: string): unknown {
  const names = JSON_NAMES[type];
  if (!names || value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const n = names[k];
    if (!n) {
      out[k] = v;
      continue;
    }
    const [protoName, msgType] = n;
    out[protoName] = msgType ? (Array.isArray(v) ? v.map((x) => withProtoNames(x, msgType)) : withProtoNames(v, msgType)) : v;
  }
  return out;
}

/**
 * JSON text with every integer too long for a double's exact range written as a string: 64-bit ids and revisions
 * sent as JSON numbers (Go's encoding/json writes int64 so) stay exact; the generated code reads both forms.
 */
export function quoteBigInts(text: string): string {
  if (!/\d{16}/.test(text)) return text;
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && text[j] >= '0' && text[j] <= '9') j++;
      const isInteger = !(j < text.length && (text[j] === '.' || text[j] === 'e' || text[j] === 'E'));
      if (isInteger && j - i - (c === '-' ? 1 : 0) > 15) {
        out += text.slice(last, i) + '"' + text.slice(i, j) + '"';
        last = j;
      }
      i = j - 1;
    }
  }
  return out + text.slice(last);
}

/** Where the gateway finds the gRPC methods: the implementations registered on the v3 gRPC server. */
export type MethodLookup = (grpcPath: string) => grpc.UntypedHandleCall | undefined;

export interface GatewayOptions {
  lookup: MethodLookup;
  /** The largest request body read (etcd's --max-request-bytes plus room for JSON and base64). */
  maxBodyBytes: number;
  /**
   * etcd's gateway is one gRPC client of its member, so --max-concurrent-streams bounds the calls it has open at once
   * (a watch holds one while it lasts); calls past it wait. Unbounded when left out.
   */
  maxConcurrentCalls?: number;
}

/** A counting semaphore: calls past the limit wait, in order, for one to end. */
class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}

  acquire(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = (): void => {
        this.used++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.used--;
          this.waiting.shift()?.();
        });
      };
      if (this.used < this.max) grant();
      else this.waiting.push(grant);
    });
  }
}

function textAnswer(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end(text);
}

function errorAnswer(res: http.ServerResponse, code: number, message: string): void {
  const body = JSON.stringify({ error: message, message, code });
  res.writeHead(HTTP_STATUS[code] ?? 500, { 'Content-Type': 'application/json' });
  res.end(body);
}

/** The request's gRPC metadata, as grpc-gateway forwards it: Authorization, and Grpc-Metadata-* headers. */
function metadataOf(req: http.IncomingMessage): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    const value = Array.isArray(v) ? v.join(', ') : v;
    if (k === 'authorization') md.set('authorization', value);
    else if (k.startsWith('grpc-metadata-')) md.set(k.slice('grpc-metadata-'.length), value);
  }
  return md;
}

/**
 * A unary call of a gRPC implementation, in-process: what grpc-js hands it, as far as handlers look. A client that
 * goes away before the answer cancels it (a lock or a campaign still waiting gives up, as through etcd's gateway).
 */
function callUnary(impl: grpc.UntypedHandleCall, grpcPath: string, request: unknown, req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const call = Object.assign(new EventEmitter(), {
      request,
      metadata: metadataOf(req),
      cancelled: false,
      getPeer: () => `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      getDeadline: () => Infinity,
      getPath: () => grpcPath,
      getHost: () => req.headers.host ?? '',
      sendMetadata: () => undefined,
      getAuthContext: () => ({}),
    });
    let answered = false;
    res.once('close', () => {
      if (answered) return;
      call.cancelled = true;
      call.emit('cancelled');
    });
    (impl as grpc.handleUnaryCall<unknown, unknown>)(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (err, value) => {
      answered = true;
      if (err) reject(err);
      else resolve(value);
    });
  });
}

/** The gateway's HTTP handler, for the paths isGatewayPath (./index.ts) accepts. */
export function gatewayHandler(o: GatewayOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const slots = new Slots(o.maxConcurrentCalls ?? Infinity);
  /** Runs fn once a slot is free; the slot is given back when the answer ends (or the client goes). */
  const withSlot = (res: http.ServerResponse, fn: () => void): void => {
    void slots.acquire().then((release) => {
      if (res.destroyed || res.writableEnded) return release();
      res.once('close', release);
      fn();
    });
  };
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0].replace(/^\/v3beta\//, '/v3/');
    const r = routes.get(path);
    if (!r) {
      req.resume();
      return textAnswer(res, 404, 'Not Found\n');
    }
    if (req.method !== 'POST') {
      req.resume();
      return textAnswer(res, 405, 'Method Not Allowed\n');
    }
    if (r.stream) return withSlot(res, () => serveStream(o, r, req, res));
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > o.maxBodyBytes) tooLarge = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (tooLarge) return errorAnswer(res, grpc.status.INVALID_ARGUMENT, 'http: request body too large');
      withSlot(res, () => void serve(o, r, Buffer.concat(chunks), req, res));
    });
  };
}

async function serve(o: GatewayOptions, r: Route, body: Buffer, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const impl = o.lookup(r.grpcPath);
  if (!impl) return errorAnswer(res, grpc.status.UNIMPLEMENTED, `unknown service ${r.grpcPath.split('/')[1]}`);
  let request: unknown;
  try {
    const text = body.toString('utf8').trim();
    // An empty body is the zero request, as grpc-gateway decodes io.EOF.
    const json: unknown = text === '' ? null : JSON.parse(quoteBigInts(text));
    // As Go's decoder: null is the zero request, anything but an object is refused.
    if (json !== null && (typeof json !== 'object' || Array.isArray(json))) {
      throw new Error(`json: cannot unmarshal ${Array.isArray(json) ? 'array' : typeof json} into Go value of type map[string]json.RawMessage`);
    }
    request = r.req.fromJSON(json ?? {});
  } catch (err) {
    return errorAnswer(res, grpc.status.INVALID_ARGUMENT, (err as Error).message);
  }
  try {
    const answer = await callUnary(impl, r.grpcPath, request, req, res);
    const value = answer instanceof Uint8Array ? r.res.decode(answer) : answer;
    const json = JSON.stringify(withProtoNames(r.res.toJSON(value), r.resType));
    res.writeHead(200, { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc' });
    res.end(json);
  } catch (err) {
    const e = err as { code?: number; details?: string; message?: string };
    errorAnswer(res, typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN, e.details ?? e.message ?? String(err));
  }
}

/** The request body of a streaming route as one JSON value after another (as Go's json.Decoder reads them). */
export class JsonValueSplitter {
  private text = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private pos = 0;

  /** The complete values in what arrived so far; a scalar at the top level is returned as its text, for refusal. */
  push(chunk: string): string[] {
    this.text += chunk;
    const out: string[] = [];
    for (; this.pos < this.text.length; this.pos++) {
      const c = this.text[this.pos];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (this.depth === 0 && this.start < 0) {
        if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
        this.start = this.pos;
        if (c !== '{' && c !== '[') {
          // Not an object: refused by the caller (as Go's decoder refuses it for a message).
          out.push(this.text.slice(this.pos));
          this.text = '';
          this.pos = -1;
          this.start = -1;
          return out;
        }
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.text.slice(this.start, this.pos + 1));
          this.start = -1;
        }
      }
    }
    if (this.start < 0) {
      this.text = '';
      this.pos = 0;
    }
    return out;
  }

  /** What is left when the body ends: an incomplete value. */
  rest(): string {
    return this.start >= 0 ? this.text.slice(this.start) : '';
  }
}

/** grpc-gateway's stream error chunk. */
function streamErrorChunk(code: number, message: string): string {
  const httpCode = HTTP_STATUS[code] ?? 500;
  return JSON.stringify({ error: { grpc_code: code, http_code: httpCode, message, http_status: STATUS_TEXT[httpCode] ?? '' } });
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout', 409: 'Conflict',
  412: 'Precondition Failed', 429: 'Too Many Requests', 500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/**
 * A streaming route: the method's handler gets a stream object as grpc-js would give it (requests read from the
 * body, responses written as `{"result": …}` lines, flushed one by one; an error ends the answer with grpc-gateway's
 * error chunk). The client's going away cancels the call.
 */
function serveStream(o: GatewayOptions, r: Route, req: http.IncomingMessage, res: http.ServerResponse): void {
  const impl = o.lookup(r.grpcPath);
  if (!impl) {
    req.resume();
    return errorAnswer(res, grpc.status.UNIMPLEMENTED, `unknown service ${r.grpcPath.split('/')[1]}`);
  }
  let wroteHeader = false;
  let finished = false;
  const head = (status = 200): void => {
    if (wroteHeader) return;
    wroteHeader = true;
    res.writeHead(status, { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc', 'Transfer-Encoding': 'chunked' });
  };
  const fail = (code: number, message: string): void => {
    if (finished) return;
    finished = true;
    head(HTTP_STATUS[code] ?? 500);
    res.end(streamErrorChunk(code, message));
  };
  const call = new Duplex({
    objectMode: true,
    read() {},
    write(msg: unknown, _enc, cb) {
      if (finished) return cb();
      let line: string;
      try {
        // A service may write its responses already encoded (the Watch service encodes events once for all watchers).
        const m = msg instanceof Uint8Array ? r.res.decode(msg) : msg;
        line = JSON.stringify({ result: withProtoNames(r.res.toJSON(m), r.resType) }) + '\n';
      } catch (err) {
        fail(grpc.status.INTERNAL, (err as Error).message);
        return cb();
      }
      head();
      res.write(line, () => cb());
    },
    final(cb) {
      if (!finished) {
        finished = true;
        head();
        res.end();
      }
      cb();
    },
    destroy(err, cb) {
      if (err) {
        const e = err as { code?: number; details?: string; message?: string };
        fail(typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN, e.details ?? e.message ?? String(err));
      }
      cb(null);
    },
  });
  Object.assign(call, {
    metadata: metadataOf(req),
    cancelled: false,
    getPeer: () => `${req.socket.remoteAddress}:${req.socket.remotePort}`,
    getDeadline: () => Infinity,
    getPath: () => r.grpcPath,
    getHost: () => req.headers.host ?? '',
    sendMetadata: () => undefined,
    getAuthContext: () => ({}),
  });
  // grpc-js ends a call with an error this way too; a stream error never reaches the process.
  call.on('error', (err: unknown) => {
    const e = err as { code?: number; details?: string; message?: string };
    fail(typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN, e.details ?? e.message ?? String(err));
  });
  res.on('close', () => {
    if (!finished || !res.writableFinished) {
      finished = true;
      (call as unknown as { cancelled: boolean }).cancelled = true;
      call.emit('cancelled');
      call.destroy();
    }
  });
  const decode = (text: string): unknown => {
    const json: unknown = JSON.parse(quoteBigInts(text));
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new Error(`json: cannot unmarshal ${Array.isArray(json) ? 'array' : typeof json} into Go value of type map[string]json.RawMessage`);
    }
    return r.req.fromJSON(json);
  };
  if (r.stream === 'server') {
    // One request (the whole body), then the handler writes.
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        (call as unknown as { request: unknown }).request = text === '' ? r.req.fromJSON({}) : decode(text);
      } catch (err) {
        return fail(grpc.status.INVALID_ARGUMENT, (err as Error).message);
      }
      (impl as grpc.handleServerStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerWritableStream<unknown, unknown>);
    });
    return;
  }
  const splitter = new JsonValueSplitter();
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    (impl as grpc.handleBidiStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
  };
  req.setEncoding('utf8');
  let refused = false;
  req.on('data', (chunk: string) => {
    if (refused) return;
    for (const text of splitter.push(chunk)) {
      let msg: unknown;
      try {
        msg = decode(text);
      } catch (err) {
        // The rest of the body is read and dropped; the call, if it started, is cancelled.
        refused = true;
        fail(grpc.status.INVALID_ARGUMENT, (err as Error).message);
        if (started) call.destroy();
        return;
      }
      start();
      call.push(msg);
    }
  });
  req.on('end', () => {
    if (refused) return;
    // As grpc-gateway: a body with no request at all is one zero request; then the client's side is closed.
    if (!started && splitter.rest() === '') {
      start();
      call.push(r.req.fromJSON({}));
    } else if (splitter.rest() !== '') return fail(grpc.status.INVALID_ARGUMENT, 'unexpected EOF');
    start();
    call.push(null);
  });
}
