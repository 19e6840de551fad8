import type * as http from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type express from 'express';
import * as client from 'prom-client';
import { MembershipError, newRuntimeMember, v2Member } from '../membership/cluster';
import { CLUSTER_VERSION, EtcdServer } from '../etcdserver/server';
import { UnhealthyClusterError } from '../membership/reconfig';
import { NONE, StateType } from '../raft';
import { V2Store } from '../store';
import { urlProblem } from '../config';
import { GoPanic, goPathUnescape } from '../pkg/go-compat';
import { readBody } from './read-body';

export const SERVER_VERSION = '3.4.0';
export { CLUSTER_VERSION };
/** The name Go's encoding/json gives a JSON value's type in its unmarshal errors. */
function goJSONType(v: unknown): string {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

/** The largest members API body read (etcd reads any size; this bounds the memory one request can take). */
const MAX_MEMBERS_BODY = 32 * 1024 * 1024;

export interface AdminDeps {
  server: EtcdServer;
  /** The peer transport, for the leader's view of its followers (/v2/stats/leader). */
  transport?: { followerStats(): Record<string, unknown> };
  store: V2Store;
  name: string;
  registry: client.Registry;
  now: () => number;
  /** The types of the active alarms (NOSPACE, CORRUPT), which make /health answer false. */
  alarms?: () => string[];
  /** etcd's v2 auth check of the members API: anything but a GET needs the root role (none: allowed). */
  hasWriteRootAccess?: (req: express.Request) => boolean | Promise<boolean>;
}

/** How long /health waits for its quorum read, as etcd 3.4's checkHealth waits for its QGET. */
export const HEALTH_READ_TIMEOUT_MS = 1000;

/**
 * etcd 3.4's health check: no alarm is active (but those named in `?exclude=`), a leader is known, and a read
 * through Raft gets a quorum's answer within a second (etcd proposes a QGET; a ReadIndex round is the same test of
 * the quorum, without a log entry).
 */
export async function isHealthy(server: Pick<EtcdServer, 'lead' | 'linearizableRead'>, alarms: string[] = [], excluded: string[] = []): Promise<boolean> {
  if (alarms.some((a) => !excluded.includes(a))) return false;
  if (server.lead === NONE) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), HEALTH_READ_TIMEOUT_MS);
  });
  try {
    return await Promise.race([server.linearizableRead().then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A counter of the registry, made once (an app made again with the same registry counts on). */
function counter(registry: client.Registry, name: string, help: string): client.Counter {
  return (registry.getSingleMetric(name) as client.Counter | undefined) ?? new client.Counter({ name, help, registers: [registry] });
}

/** JSON as etcd sends it: Content-Type application/json, no charset parameter. */
function sendJSON(res: express.Response, status: number, body: string): void {
  res.status(status).setHeader('Content-Type', 'application/json');
  res.end(body);
}

function httpError(res: express.Response, status: number, message: string): void {
  sendJSON(res, status, JSON.stringify({ message }));
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** GET /version: exactly etcd's content type (express would add a charset). */
const serveVersion: Handler = (_req, res) => {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION }));
};

/** GET /health, with its checks counted; `exclude` as the query string gives it (one or repeated). */
function healthHandler(d: AdminDeps): (res: http.ServerResponse, exclude: string | string[] | undefined) => void {
  const checks = {
    success: counter(d.registry, 'etcd_server_health_success', 'The total number of successful health checks'),
    failures: counter(d.registry, 'etcd_server_health_failures', 'The total number of failed health checks'),
  };
  return (res, exclude) => {
    const excluded = (Array.isArray(exclude) ? exclude : exclude === undefined ? [] : [exclude]).map(String);
    void isHealthy(d.server, d.alarms?.() ?? [], excluded).then((ok) => {
      (ok ? checks.success : checks.failures).inc();
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      const body = JSON.stringify({ health: ok ? 'true' : 'false' });
      if (ok) {
        res.statusCode = 200;
        return void res.end(body);
      }
      // etcd answers an unhealthy member with Go's http.Error: a newline after the body, and nosniff.
      res.statusCode = 503;
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.end(`${body}\n`);
    });
  };
}

/**
 * Everything but /v2/keys: version, health, members, machines, stats and metrics, as etcd 3.4 answers them.
 * GET /health and GET /version (what clients and load balancers poll, and the first thing a starting member is
 * asked) are answered here; the rest by an express app, loaded and built on the first such request (express and
 * its dependencies are 3-4 MiB of an idle server's memory).
 */
export function adminApp(d: AdminDeps): Handler {
  const health = healthHandler(d);
  let app: express.Express | undefined;
  return (req, res) => {
    if (req.method === 'GET') {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      // The exact paths only: express's routing (strict about case and a trailing slash) takes the others.
      if (path === '/health') return health(res, q < 0 ? undefined : parseQuery(url.slice(q + 1)).exclude);
      if (path === '/version') return serveVersion(req, res);
    }
    (app ??= expressApp(d, health))(req, res);
  };
}

function expressApp(d: AdminDeps, health: ReturnType<typeof healthHandler>): express.Express {
  const express = require('express') as typeof import('express');
  const app = express();
  // As Go's ServeMux: /version/ is not /version, and /Version is not either.
  app.set('strict routing', true);
  app.set('case sensitive routing', true);
  app.disable('x-powered-by');
  app.disable('etag');
  const { server, store } = d;
  // CORS headers and OPTIONS requests are the client listener's (server/api/cors.ts), as in etcd.
  /** Go's answer to a method a handler does not take: 405 with the methods it does. */
  const methodNotAllowed = (allow: string) => (_req: express.Request, res: express.Response) => {
    // The length set here too: a HEAD gets it as a GET would.
    res.status(405).set({ Allow: allow, 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': '19' });
    res.end('Method Not Allowed\n');
  };

  // Go's handlers here take GET only: a HEAD is not answered as a GET would be (express would).
  app.head(['/version', '/health', '/v2/stats/self', '/v2/stats/store', '/v2/stats/leader'], methodNotAllowed('GET'));

  app.get('/version', serveVersion);

  app.all('/version', methodNotAllowed('GET'));

  app.get('/health', (req, res) => health(res, req.query.exclude as string | string[] | undefined));
  app.all('/health', methodNotAllowed('GET'));

  app.get('/v2/machines', (_req, res) => {
    res.type('text/plain').send(server.cluster.list().flatMap((m) => m.clientURLs).join(', '));
  });
  app.all('/v2/machines', methodNotAllowed('GET,HEAD'));

  const members = express.Router({ strict: true, caseSensitive: true }); // /v2/members/leader/ and /Leader are not the leader
  // As etcd's members handler: the method is checked first (HEAD is not answered as a GET), then the cluster ID set.
  const membersNotAllowed = methodNotAllowed('GET,POST,DELETE,PUT');
  members.use(async (req, res, next) => {
    if (!['GET', 'POST', 'DELETE', 'PUT'].includes(req.method)) return membersNotAllowed(req, res);
    if (d.hasWriteRootAccess && !(await d.hasWriteRootAccess(req))) return httpError(res, 401, 'Insufficient credentials');
    res.setHeader('X-Etcd-Cluster-Id', server.cluster.id);
    next();
  });
  members.get('/', (_req, res) => {
    // etcd writes these with Go's json.Encoder: a newline ends the body.
    sendJSON(res, 200, `${JSON.stringify({ members: server.cluster.list().map(v2Member) })}\n`);
  });
  members.get('/leader', (_req, res) => {
    const m = server.lead === NONE ? undefined : server.cluster.get(server.lead);
    if (!m) return httpError(res, 503, 'During election');
    sendJSON(res, 200, `${JSON.stringify(v2Member(m))}\n`);
  });
  // Anything else after /v2/members/ (an ID, "leader/") is no resource etcd serves.
  members.get(/.*/, (_req, res) => httpError(res, 404, 'Not found'));
  // The body as etcd reads it: whatever its encoding or charset say, parsed as JSON by the handler below.
  const jsonBody: express.RequestHandler = (req, res, next) => {
    readBody(req, MAX_MEMBERS_BODY).then((body) => {
      if (!body) return httpError(res, 413, 'request entity too large');
      req.body = body;
      next();
    }, next);
  };
  /** The member ID in the path as etcd's getID reads it (Go-unescaped); a malformed escape is kept as written. */
  const idFrom = (req: express.Request): string => {
    const raw = req.path.replace(/^\//, '');
    return goPathUnescape(raw) ?? raw;
  };
  /**
   * The ID as etcd's types.IDFromString parses it (hex, any case, any number of leading zeros, at most 64 bits),
   * written as etcd writes IDs; undefined when it does not parse (etcd: "No such member: " and the text as given).
   */
  const parseID = (s: string): string | undefined => {
    if (!/^[0-9a-fA-F]+$/.test(s)) return undefined;
    const n = BigInt(`0x${s}`);
    return n < 1n << 64n ? n.toString(16) : undefined;
  };
  /** etcd's answer to DELETE or PUT on /v2/members itself: Go's http.Error, without an Allow header. */
  const noIDGiven = (res: express.Response): void => {
    res.status(405).set({ 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end('Method Not Allowed\n');
  };
  const peerURLsOf = (req: express.Request, res: express.Response): string[] | undefined => {
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      httpError(res, 415, `Bad Content-Type ${req.headers['content-type'] ?? ''}, accept application/json`);
      return undefined;
    }
    // etcd's answers (Go's JSON decoding, then types.NewURLs), word for word.
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '');
    } catch (err) {
      httpError(res, 400, `invalid JSON body: ${(err as Error).message}`);
      return undefined;
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      httpError(res, 400, `json: cannot unmarshal ${goJSONType(parsed)} into Go value of type struct { PeerURLs []string "json:\\"peerURLs\\"" }`);
      return undefined;
    }
    const raw = (parsed as { peerURLs?: unknown } | null)?.peerURLs;
    const urls = raw === undefined || raw === null ? [] : raw;
    if (!Array.isArray(urls)) {
      httpError(res, 400, `json: cannot unmarshal ${goJSONType(urls)} into Go struct field .peerURLs of type []string`);
      return undefined;
    }
    const bad = urls.find((u) => typeof u !== 'string');
    if (bad !== undefined) {
      httpError(res, 400, `json: cannot unmarshal ${goJSONType(bad)} into Go struct field .peerURLs of type string`);
      return undefined;
    }
    if (urls.length === 0) {
      httpError(res, 400, 'no valid URLs given');
      return undefined;
    }
    const trimmed = (urls as string[]).map((u) => u.trim());
    for (const u of trimmed) {
      const why = urlProblem(u);
      if (why) {
        httpError(res, 400, why);
        return undefined;
      }
    }
    return trimmed;
  };
  /** The members API's answer to the server's refusal of a membership change. */
  const membershipError = (res: express.Response, id: string, err: unknown): void => {
    // The strict reconfiguration check (the server's, membership/reconfig.ts): etcd answers 500.
    if (err instanceof UnhealthyClusterError) return httpError(res, 500, 'Internal Server Error');
    if (err instanceof MembershipError) {
      if (err.kind === 'IDExists' || err.kind === 'PeerURLExists') return httpError(res, 409, err.message);
      if (err.kind === 'IDRemoved') return httpError(res, 410, `Member permanently removed: ${id}`);
      if (err.kind === 'IDNotFound') return httpError(res, 404, `No such member: ${id}`);
      return httpError(res, 409, err.message);
    }
    httpError(res, 500, 'Internal Server Error');
  };
  // etcd's members handler takes a POST whatever follows /v2/members.
  members.post(/.*/, jsonBody, (req, res) => {
    const urls = peerURLsOf(req, res);
    if (!urls) return;
    const m = newRuntimeMember(urls, d.now());
    server.addMember(m).then(
      () => sendJSON(res, 201, `${JSON.stringify(v2Member(m))}\n`),
      (err) => membershipError(res, m.id, err),
    );
  });
  members.delete(/.*/, (req, res) => {
    const given = idFrom(req);
    if (given === '') return noIDGiven(res);
    const id = parseID(given);
    if (id === undefined) return httpError(res, 404, `No such member: ${given}`);
    server.removeMember(id).then(
      () => res.status(204).end(),
      (err) => membershipError(res, id, err),
    );
  });
  members.put(/.*/, (req, res, next) => {
    const given = idFrom(req);
    // As etcd: the ID first (none, or a malformed one, is no member), then the body.
    if (given === '') return noIDGiven(res);
    const id = parseID(given);
    if (id === undefined) return httpError(res, 404, `No such member: ${given}`);
    res.locals.memberID = id;
    next();
  }, jsonBody, (req, res) => {
    const id = res.locals.memberID as string;
    const urls = peerURLsOf(req, res);
    if (!urls) return;
    server.updateMember(id, urls).then(
      () => res.status(204).end(),
      (err) => membershipError(res, id, err),
    );
  });
  app.use('/v2/members', members);

  app.get('/v2/stats/self', (_req, res) => {
    sendJSON(res, 200, server.stats.json(d.name, server.raftState));
  });
  app.get('/v2/stats/store', (_req, res) => {
    sendJSON(res, 200, JSON.stringify(store.statsJSON()));
  });
  app.get('/v2/stats/leader', (_req, res) => {
    if (server.raftState !== StateType.Leader) return httpError(res, 403, 'not current leader');
    sendJSON(res, 200, JSON.stringify({ leader: server.id, followers: d.transport?.followerStats() ?? {} }));
  });

  app.all(['/v2/stats/self', '/v2/stats/store', '/v2/stats/leader'], methodNotAllowed('GET'));

  app.get('/metrics', (_req, res) => {
    d.registry.metrics().then(
      (text) => res.type(d.registry.contentType).send(text),
      (err: Error) => httpError(res, 500, err.message),
    );
  });

  app.use((_req, res) => {
    res.status(404).set({ 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end('404 page not found\n');
  });
  // A body that does not parse (bad JSON on the members API): etcd's JSON error, never express's HTML page.
  app.use((err: Error & { status?: number; type?: string }, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    // Where etcd's handler panics (the v2 auth check of a user name that is a directory), the connection just ends.
    if (err instanceof GoPanic) return void req.socket.destroy();
    const status = typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    httpError(res, status, status === 500 ? 'Internal Server Error' : err.type === 'entity.parse.failed' ? `invalid JSON body: ${err.message}` : err.message);
  });
  return app;
}
