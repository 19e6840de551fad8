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
 * An answer of the keys API, whichever HTTP path writes it: Node's server (`writeAnswer`) or the plain HTTP/1.1 path
 * (server/embed/fast-http1.ts). Headers in the order they are sent; `body` undefined for a HEAD answer.
 */
export interface KeysAnswer {
  status: number;
  headers: Record<string, string>;
  body: string | undefined;
}

/**
 * An answer with its length, as Go's net/http sends a small body (not chunked): Node then writes the head and the
 * body in one system call instead of a writev of four chunks.
 */
function jsonAnswer(status: number, headers: Record<string, string>, body: string): KeysAnswer {
  return { status, headers: { 'Content-Type': 'application/json', ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, body };
}

export function writeAnswer(res: http.ServerResponse, a: KeysAnswer): void {
  res.writeHead(a.status, a.headers);
  res.end(a.body);
}

/** etcd's answer for an error: the v2 error JSON, its status, and X-Etcd-Index. */
export function keyErrorAnswer(clusterId: string, err: unknown): KeysAnswer {
  let e: V2Error;
  if (err instanceof V2Error) e = err;
  else if (err instanceof KeyRequestError) e = new V2Error(err.errorCode, err.cause_, 0);
  else e = new V2Error(ErrorCode.RaftInternal, (err as Error).message, 0);
  return jsonAnswer(e.statusCode(), { 'X-Etcd-Cluster-Id': clusterId, 'X-Etcd-Index': String(e.index) }, JSON.stringify(e.toJSON()) + '\n');
}

export function writeKeyError(res: http.ServerResponse, clusterId: string, err: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  writeAnswer(res, keyErrorAnswer(clusterId, err));
}

function isForm(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0].trim().toLowerCase() === 'application/x-www-form-urlencoded';
}

const METHOD_NOT_ALLOWED: KeysAnswer = {
  status: 405,
  headers: { Allow: 'HEAD,GET,PUT,POST,DELETE', 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': '19' },
  body: 'Method Not Allowed\n',
};

/**
 * A request as the plain HTTP/1.1 path has read it: whole, body included. `headers` has lower-case names, each
 * once. `socket` is the connection (for the client-certificate checks of v2 auth).
 */
export interface PlainKeysRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  socket: import('node:net').Socket;
}

/** The /v2/keys API, behaviour for behaviour with etcd 3.4's. */
export interface KeysAPI {
  /** Node's HTTP server's handler. */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /**
   * The same API for a request read whole by the plain HTTP/1.1 path: its answer, or `undefined` when this request
   * is not one it takes (a watch, a body too large to be a form), decided before anything is done, so that Node's
   * server can be given the request instead. 'drop': close the connection unanswered (see GoPanic).
   */
  serve: (r: PlainKeysRequest) => KeysAnswer | Promise<KeysAnswer | 'drop'> | 'drop' | undefined;
}

export function keysAPI(deps: KeysHandlerDeps): KeysAPI {
  const { server, store } = deps;
  const onError = (err: unknown): KeysAnswer | 'drop' => (err instanceof GoPanic ? 'drop' : keyErrorAnswer(server.cluster.id, err));
  return {
    handler: (req, res) => {
      handle(req, res).catch((err) => {
        // Where etcd's permission check panics (an empty permission path), Go's server drops the connection unanswered.
        if (err instanceof GoPanic) return void req.socket.destroy();
        writeKeyError(res, server.cluster.id, err);
      });
    },
    serve: (r) => {
      const method = r.method;
      // HEAD (and 405s) are Node's server's. A plain request's body is at most MAX_PLAIN_BODY, well within a form's.
      if (method !== 'GET' && method !== 'PUT' && method !== 'POST' && method !== 'DELETE') return undefined;
      let kr: KeyRequest;
      let path: string;
      try {
        const form = (method === 'PUT' || method === 'POST') && isForm(r.headers['content-type']) ? (r.body?.toString('utf8') ?? '') : undefined;
        ({ kr, path } = parse(method, r.url, form));
      } catch (err) {
        return onError(err);
      }
      if (kr.wait) return undefined; // a watch streams its answer: Node's server's
      try {
        const a = run(kr, path, method, r as unknown as http.IncomingMessage);
        return a instanceof Promise ? a.catch(onError) : a;
      } catch (err) {
        return onError(err);
      }
    },
  };

  /** The request's key and form, parsed; refusals thrown as KeyRequestError. */
  function parse(method: string, url: string, body: string | undefined): { kr: KeyRequest; path: string } {
    const q = url.indexOf('?');
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    const query = q >= 0 ? url.slice(q + 1) : '';
    const path = goPathUnescape(rawPath);
    if (path === undefined) throw new KeyRequestError(ErrorCode.InvalidForm, `invalid URL escape in "${rawPath}"`);
    return { kr: parseKeyRequest(method, path, parseForm(query, body)), path };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    // CORS headers and OPTIONS requests are the client listener's (server/api/cors.ts), as in etcd.
    if (!['HEAD', 'GET', 'PUT', 'POST', 'DELETE'].includes(method)) return writeAnswer(res, METHOD_NOT_ALLOWED);
    let body: string | undefined;
    // Go's ParseForm reads a body only for POST, PUT and PATCH: a DELETE's form body is ignored, as in etcd.
    if ((method === 'PUT' || method === 'POST') && isForm(req.headers['content-type'])) {
      const b = await readBody(req, MAX_FORM_BYTES);
      if (!b) throw new KeyRequestError(ErrorCode.InvalidForm, 'http: POST too large');
      body = b.toString('utf8');
    }
    else req.resume();
    const { kr, path } = parse(method, req.url ?? '/', body);
    if (kr.wait && (method === 'GET' || method === 'HEAD')) {
      await checkAccess(req, path, kr);
      return watch(kr, req, res);
    }
    const a = run(kr, path, method, req);
    writeAnswer(res, a instanceof Promise ? await a : a);
  }

  /** etcd checks the caller's permissions on the path as the client wrote it, once the request has parsed. */
  function checkAccess(req: http.IncomingMessage, path: string, kr: KeyRequest): void | Promise<void> {
    if (!deps.access) return;
    // A Promise only while a password goes through bcrypt: the common case costs no extra tick.
    const allowed = deps.access.hasKeyAccess(req, path.slice(KEYS_PREFIX.length), kr.recursive);
    if (typeof allowed === 'boolean') {
      if (!allowed) throw new V2Error(ErrorCode.Unauthorized, 'Insufficient credentials', 0);
      return;
    }
    return allowed.then((ok) => {
      if (!ok) throw new V2Error(ErrorCode.Unauthorized, 'Insufficient credentials', 0);
    });
  }

  /** A read answered at once; a write once the log has applied it. `req`: the caller, for the auth checks. */
  function run(kr: KeyRequest, path: string, method: string, req: http.IncomingMessage): KeysAnswer | Promise<KeysAnswer> {
    const checked = checkAccess(req, path, kr);
    if (checked instanceof Promise) return checked.then(() => perform(kr, method));
    return perform(kr, method);
  }

  /** The request itself, once allowed. */
  function perform(kr: KeyRequest, method: string): KeysAnswer | Promise<KeysAnswer> {
    if (method === 'GET' || method === 'HEAD') {
      if (kr.quorum) return server.linearizableRead().then(() => read(kr, method));
      return read(kr, method);
    }
    return write(kr, method);
  }

  function read(kr: KeyRequest, method: string): KeysAnswer {
    const e = store.get(kr.key, kr.recursive, kr.sorted);
    return eventAnswer(e, server.appliedIndex, server.term(), false, method === 'HEAD');
  }

  async function write(kr: KeyRequest, method: string): Promise<KeysAnswer> {
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
    return eventAnswer(result.result as V2Event, result.index, result.term, kr.noValueOnSuccess, false);
  }

  function eventAnswer(e: V2Event, raftIndex: number, raftTerm: number, noValueOnSuccess: boolean, head: boolean): KeysAnswer {
    const headers = {
      'X-Etcd-Cluster-Id': server.cluster.id,
      'X-Etcd-Index': String(e.etcdIndex),
      'X-Raft-Index': String(raftIndex),
      'X-Raft-Term': String(raftTerm),
    };
    let out: V2Event | { action: string } = e;
    if (noValueOnSuccess && ['set', 'compareAndSwap', 'create', 'update'].includes(e.action)) out = { action: e.action };
    const status = e.isCreated() ? 201 : 200;
    if (head) return { status, headers: { 'Content-Type': 'application/json', ...headers }, body: undefined };
    return jsonAnswer(status, headers, eventJSON(out) + '\n');
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
