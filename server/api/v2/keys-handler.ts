import * as http from 'node:http';
import { EtcdServer, WriteResult } from '../../etcdserver/server';
import { Method } from '../../etcdserver/request';
import { ErrorCode, V2Error, V2Event, V2Store, eventJSON } from '../../store';
import { GoPanic, goPathUnescape } from '../../pkg/go-compat';
import { readBody } from '../read-body';
import type { V2AuthAccess } from '../../auth/v2/access';
import { KEYS_PREFIX, KeyRequest, KeyRequestError, goExpiration, parseForm, parseKeyRequest } from './key-request';

/** Go's ParseForm refuses url-encoded bodies over 10 MB; etcd's v2 API inherits that limit. */
export const MAX_FORM_BYTES = 10 * 1024 * 1024;

export interface KeysHandlerDeps {
  server: EtcdServer;
  store: V2Store;
  now: () => number;
  onRequest?: (method: string, ok: boolean) => void;
  /** The v2 auth checks (server/auth/v2/access.ts); none: every request is allowed. */
  access?: V2AuthAccess;
}

/**
 * An answer with its length, as Go's net/http sends a small body (not chunked): Node then writes the head and the
 * body in one system call instead of a writev of four chunks.
 */
function writeJSON(res: http.ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** etcd's answer for an error: the v2 error JSON, its status, and X-Etcd-Index. */
export function writeKeyError(res: http.ServerResponse, clusterId: string, err: unknown): void {
  let e: V2Error;
  if (err instanceof V2Error) e = err;
  else if (err instanceof KeyRequestError) e = new V2Error(err.errorCode, err.cause_, 0);
  else e = new V2Error(ErrorCode.RaftInternal, (err as Error).message, 0);
  if (res.headersSent) {
    res.end();
    return;
  }
  writeJSON(res, e.statusCode(), { 'X-Etcd-Cluster-Id': clusterId, 'X-Etcd-Index': String(e.index) }, JSON.stringify(e.toJSON()) + '\n');
}

function isForm(req: http.IncomingMessage): boolean {
  const ct = req.headers['content-type'];
  return ct !== undefined && ct.split(';')[0].trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

/** The /v2/keys handler, behaviour for behaviour with etcd 3.4's. */
export function keysHandler(deps: KeysHandlerDeps): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { server, store } = deps;
  return (req, res) => {
    handle(req, res).catch((err) => {
      // Where etcd's permission check panics (an empty permission path), Go's server drops the connection unanswered.
      if (err instanceof GoPanic) return void req.socket.destroy();
      writeKeyError(res, server.cluster.id, err);
    });
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    // CORS headers and OPTIONS requests are the client listener's (server/api/cors.ts), as in etcd.
    if (!['HEAD', 'GET', 'PUT', 'POST', 'DELETE'].includes(method)) {
      const body = 'Method Not Allowed\n';
      res.writeHead(405, { Allow: 'HEAD,GET,PUT,POST,DELETE', 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': body.length });
      res.end(body);
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    const query = q >= 0 ? url.slice(q + 1) : '';
    let body: string | undefined;
    // Go's ParseForm reads a body only for POST, PUT and PATCH: a DELETE's form body is ignored, as in etcd.
    if ((method === 'PUT' || method === 'POST') && isForm(req)) {
      const b = await readBody(req, MAX_FORM_BYTES);
      if (!b) throw new KeyRequestError(ErrorCode.InvalidForm, 'http: POST too large');
      body = b.toString('utf8');
    }
    else req.resume();
    const path = goPathUnescape(rawPath);
    if (path === undefined) throw new KeyRequestError(ErrorCode.InvalidForm, `invalid URL escape in "${rawPath}"`);
    const kr = parseKeyRequest(method, path, parseForm(query, body));
    // etcd checks the caller's permissions on the path as the client wrote it, once the request has parsed.
    if (deps.access) {
      // A Promise only while a password goes through bcrypt: the common case costs no extra tick.
      let allowed = deps.access.hasKeyAccess(req, path.slice(KEYS_PREFIX.length), kr.recursive);
      if (typeof allowed !== 'boolean') allowed = await allowed;
      if (!allowed) throw new V2Error(ErrorCode.Unauthorized, 'Insufficient credentials', 0);
    }
    if (method === 'GET' || method === 'HEAD') {
      if (kr.wait) return watch(kr, req, res);
      if (kr.quorum) await server.linearizableRead();
      const e = store.get(kr.key, kr.recursive, kr.sorted);
      writeEvent(res, e, server.appliedIndex, server.term(), false, method === 'HEAD');
      return;
    }
    const result: WriteResult = await server.propose({
      method: method === 'PUT' ? Method.PUT : method === 'POST' ? Method.POST : Method.DELETE,
      path: kr.key,
      value: kr.value,
      dir: kr.dir,
      prevValue: kr.prevValue,
      prevIndex: kr.prevIndex,
      prevExist: kr.prevExist,
      expiration: kr.ttl !== undefined ? goExpiration(deps.now(), kr.ttl) : 0,
      refresh: kr.refresh,
      recursive: kr.recursive,
    });
    if (result.error) {
      const e = result.error;
      // A prevIndex past 2^53 travels as a double: the failed compare names it as the client wrote it, as etcd does.
      if (e instanceof V2Error && e.errorCode === ErrorCode.TestFailed && kr.prevIndexText !== String(kr.prevIndex)) {
        throw new V2Error(e.errorCode, e.cause_.replace(`[${kr.prevIndex} != `, `[${kr.prevIndexText} != `), e.index);
      }
      throw e;
    }
    writeEvent(res, result.result as V2Event, result.index, result.term, kr.noValueOnSuccess, false);
  }

  function writeEvent(res: http.ServerResponse, e: V2Event, raftIndex: number, raftTerm: number, noValueOnSuccess: boolean, head: boolean): void {
    const headers = {
      'X-Etcd-Cluster-Id': server.cluster.id,
      'X-Etcd-Index': String(e.etcdIndex),
      'X-Raft-Index': String(raftIndex),
      'X-Raft-Term': String(raftTerm),
    };
    let out: V2Event | { action: string } = e;
    if (noValueOnSuccess && ['set', 'compareAndSwap', 'create', 'update'].includes(e.action)) out = { action: e.action };
    const status = e.isCreated() ? 201 : 200;
    if (head) {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end();
      return;
    }
    writeJSON(res, status, headers, eventJSON(out) + '\n');
  }

  async function watch(kr: KeyRequest, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const w = store.watch(kr.key, kr.recursive, kr.stream, kr.waitIndex);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'X-Etcd-Cluster-Id': server.cluster.id,
      'X-Etcd-Index': String(w.startIndex),
      'X-Raft-Index': String(server.appliedIndex),
      'X-Raft-Term': String(server.term()),
    });
    res.flushHeaders();
    const gone = () => w.remove();
    res.on('close', gone);
    try {
      for (;;) {
        const e = await w.next();
        if (!e) break;
        res.write(JSON.stringify(e) + '\n');
        if (!kr.stream) break;
      }
    } finally {
      w.remove();
      res.off('close', gone);
      res.end();
    }
  }
}
