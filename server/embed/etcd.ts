/**
 * Starting and serving a member (etcd's embed): the WAL and snapshot stores, the peer transport and its listeners,
 * the member itself, and the client listeners with their routing. The `etcd` command (server/main.ts) parses flags
 * into a ServerConfig and calls startMember.
 */
import { migrateEtcdDataDir } from '../etcdserver/etcd-datadir-check';
import { collectGarbageAfterGrowth } from '../pkg/collect-garbage';
import { lockDir } from '../pkg/dir-lock';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import type * as winston from 'winston';
import { adminApp, CLUSTER_VERSION, SERVER_VERSION } from '../api/admin';
import { CorsPolicy } from '../api/cors';
import { HostWhitelist, requestHostname, writeMisdirected } from '../api/host-whitelist';
import { KEYS_PREFIX } from '../api/v2/key-request';
import { keysAPI } from '../api/v2/keys-handler';
import type { PlainReply, PlainRequest } from './fast-http1';
import { AUTH_PREFIX } from '../api/v2/auth-request';
import { authHandler } from '../api/v2/auth-handler';
import { V2AuthStore } from '../auth/v2/store';
import { V2AuthAccess } from '../auth/v2/access';
import { V2AuthApplier } from '../etcdserver/apply/v2auth';
import { ConfigError, ServerConfig } from '../config';
import { V2Applier } from '../etcdserver/apply/v2';
import { EtcdServer, RemoteCluster, WALStore } from '../etcdserver/server';
import { Member, MembershipError } from '../membership/cluster';
import { ServerErrors } from '../api/v3rpc/errors';
import { ServerMetrics, gaugeOf } from '../metrics';
import { cleanRedirect, isValidRequestPath } from '../pkg/go-compat';
import { Transport, peerTarget } from '../rafthttp/transport';
import { Snapshotter } from '../snap/snapshotter';
import { V2Store } from '../store';
import { ensureSelfSignedCert, hostsOf } from '../tls/auto-tls';
import { validateClientCertSettings } from '../tls/client-cert-checks';
import { TLSSettings, clientAgentOptions, contextOptions, createTLSServer, watchCertificates } from '../tls/tls-settings';
import { WAL } from '../wal/wal';
import { ClientListener, groupByAddress, grpcSink, h2Sink, listenAddress } from './serve';
import { createV3Server } from '../api/v3rpc/grpc';
import { gatewayHandler, isGatewayPath } from '../api/v3gw';
import { V3Applier } from '../etcdserver/apply-v3';
import { EntryKind } from '../etcdserver/entry';
import { PART_V3 } from '../etcdserver/snapshot-data';
import { V3KV } from '../etcdserver/v3-server';
import { MvccStore } from '../mvcc/store';
import { AuthGate } from '../auth/gate';
import { AuthV3, authService } from '../auth/service';
import { AuthStore } from '../auth/store';
import { newTokenProvider } from '../auth/tokens';
import { Compactor } from '../etcdserver/compactor';
import { registerMvccMetrics, registerWatchMetrics } from '../mvcc/metrics';
import { WatchableStore } from '../mvcc/watchable';
import { NONE } from '../raft';
import { HashKV, PEER_HASHKV_PATH, checkInitialHashKV, fetchPeerHashKV, serveHashKV } from '../etcdserver/corrupt';
import { alarmTypeName } from '../etcdserver/alarms';
import { V3Maintenance } from '../etcdserver/maintenance';
import { v3ClusterBackend } from '../etcdserver/v3-cluster';
import { BackendQuota } from '../etcdserver/quota';
import { AlarmType } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { VERSION } from '../version';
import { resolveBootstrap } from '../discovery';
import { Lessor } from '../lease/lessor';
import { LeaseMetrics } from '../lease/metrics';
import { serveLeaseHTTP, type LeaseHTTPHost } from '../lease/leasehttp';
import { V3Lease, minLeaseTTL } from '../etcdserver/v3-lease';

function isV2Path(url: string): boolean {
  return url === '/v2' || url.startsWith('/v2/') || url.startsWith('/v2?');
}

function walStore(dir: string, cfg: ServerConfig, metrics: ServerMetrics, logger: winston.Logger): WALStore {
  const opts = { noSync: cfg.unsafeNoFsync, maxFiles: cfg.maxWals, onFsync: (s: number) => metrics.walFsync.observe(s), warn: (m: string) => logger.warn(m) };
  return {
    exists: () => WAL.exists(dir),
    snapshotMarkers: () => WAL.snapshotMarkers(dir),
    create: (metadata) => WAL.create(dir, metadata, opts),
    open: (from) => WAL.open(dir, from, opts),
  };
}

function listen(srv: http.Server, url: URL): Promise<void> {
  const a = listenAddress(url, 'peer');
  return new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    const done = (): void => {
      srv.off('error', reject);
      resolve();
    };
    if (a.path !== undefined) {
      // As etcd's peer listeners: a socket file left by a previous run is replaced, and removed when closed.
      fs.rmSync(a.path, { force: true });
      srv.once('close', () => fs.rmSync(a.path!, { force: true }));
      srv.listen(a.path, done);
    } else srv.listen(a.port, a.host, done);
  });
}

/** The listen URLs of one kind that etcd accepts: http, https, unix and unixs. */
function checkSchemes(urls: string[]): void {
  for (const u of urls) {
    if (!/^(https?|unixs?):\/\//.test(u)) throw new ConfigError(`only http://, https://, unix:// and unixs:// URLs are supported: ${u}`);
  }
}

/**
 * The peer listener's own answers: GET /members (who is in the cluster, for members joining), /version,
 * /members/hashkv, and the leader's side of lease renewals and TimeToLive (/leases, /leases/internal).
 */
function peerInfo(req: http.IncomingMessage, res: http.ServerResponse, server: () => EtcdServer | undefined, hashKV: () => ((rev: number) => Promise<HashKV>) | undefined, leases: () => LeaseHTTPHost | undefined): void {
  const s = server();
  if (serveLeaseHTTP(req, res, s?.published ? leases() : undefined)) return;
  const path = (req.url ?? '').split('?')[0];
  if (path === PEER_HASHKV_PATH) return serveHashKV(req, res, s?.id || '0', s?.published ? hashKV() : undefined);
  if (path.startsWith(PEER_PROMOTE_PREFIX) && s?.cluster) return servePromote(req, res, s, path.slice(PEER_PROMOTE_PREFIX.length));
  if (req.method === 'GET' && path === '/members' && s?.cluster) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'X-Etcd-Cluster-ID': s.cluster.id });
    res.end(JSON.stringify(s.cluster.list()));
    return;
  }
  if (req.method === 'GET' && path === '/version') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION }));
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end('404 page not found\n');
}

/** Where a follower asks the leader to promote a learner (etcd's peerMemberPromotePrefix). */
const PEER_PROMOTE_PREFIX = '/members/promote/';

/** etcd's peerMemberPromoteHandler: POST /members/promote/<decimal ID>, answered with the members or etcd's error. */
function servePromote(req: http.IncomingMessage, res: http.ServerResponse, s: EtcdServer, idStr: string): void {
  const text = (status: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', ...headers });
    res.end(`${body}\n`);
  };
  req.resume();
  if (req.method !== 'POST') return text(405, 'Method Not Allowed', { Allow: 'POST' });
  res.setHeader('X-Etcd-Cluster-ID', s.cluster.id);
  if (!/^[0-9]+$/.test(idStr) || BigInt(idStr) >= 2n ** 64n) return text(404, `member ${idStr} not found in cluster`);
  s.promoteMember(BigInt(idStr).toString(16)).then(
    (members) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify(members)}\n`);
    },
    (err: Error) => {
      if (err instanceof MembershipError && err.kind === 'IDNotFound') return text(404, err.message);
      if ((err instanceof MembershipError && err.kind === 'MemberNotLearner') || err.message === ServerErrors.learnerNotReady) return text(412, err.message);
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify({ message: 'Internal Server Error' })}\n`);
    },
  );
}

/** Asks the leader, at one of its peer URLs, to promote a learner (etcd's promoteMemberHTTP), with its errors. */
export function forwardPromote(peerURL: string, id: string, timeoutMs: number, tlsOptions?: https.AgentOptions): Promise<Member[]> {
  return new Promise((resolve, reject) => {
    const target = peerTarget(new URL(PEER_PROMOTE_PREFIX + BigInt('0x' + id).toString(), peerURL));
    if (!target) return reject(new Error(`unsupported peer URL ${peerURL}`));
    const opts: https.RequestOptions = { method: 'POST', timeout: timeoutMs, socketPath: target.socketPath, ...(target.secure ? tlsOptions : {}) };
    const req = (target.secure ? https : http).request(target.url, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status === 200) {
          try {
            return resolve(JSON.parse(body) as Member[]);
          } catch (err) {
            return reject(err as Error);
          }
        }
        if (status === 408) return reject(new Error(ServerErrors.timeout));
        if (status === 412 && body.includes(ServerErrors.learnerNotReady)) return reject(new Error(ServerErrors.learnerNotReady));
        if (status === 412 && body.includes(new MembershipError('MemberNotLearner').message)) return reject(new MembershipError('MemberNotLearner'));
        if (status === 404) return reject(new MembershipError('IDNotFound'));
        reject(new Error(`member promote: unknown error(${body})`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Asks the running members (their peer URLs, in turn) which cluster this is and who is in it. */
export async function fetchRemoteCluster(peerURLs: string[], tlsOptions?: https.AgentOptions): Promise<RemoteCluster> {
  const errors: string[] = [];
  for (const u of peerURLs) {
    try {
      const { status, body, clusterId } = await new Promise<{ status: number; body: string; clusterId: string }>((resolve, reject) => {
        const target = peerTarget(new URL('/members', u));
        if (!target) throw new Error('unsupported URL scheme');
        const { url, socketPath } = target;
        const get = target.secure ? (o: https.RequestOptions, cb: (res: http.IncomingMessage) => void) => https.get(url, { ...tlsOptions, socketPath, ...o }, cb) : (o: http.RequestOptions, cb: (res: http.IncomingMessage) => void) => http.get(url, { socketPath, ...o }, cb);
        const req = get({ timeout: 2000 }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (b += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, clusterId: String(res.headers['x-etcd-cluster-id'] ?? '') }));
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
      });
      if (status !== 200) throw new Error(`status ${status}`);
      return { clusterId, members: JSON.parse(body) as Member[] };
    } catch (err) {
      errors.push(`${u}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot fetch the cluster's members from its peers (${errors.join('; ')})`);
}

/**
 * The TLS settings of the client or peer side, from the flags: the given files, or with --auto-tls a self-signed
 * certificate kept in the data dir. Undefined when that side has no TLS.
 */
export function resolveTLS(cfg: ServerConfig, side: 'client' | 'peer', logger: winston.Logger): TLSSettings | undefined {
  const t = side === 'client' ? cfg.clientTLS : cfg.peerTLS;
  const urls = side === 'client' ? cfg.listenClientURLs : cfg.listenPeerURLs;
  const flag = side === 'client' ? '' : 'peer-';
  let { certFile, keyFile } = t;
  const needed = urls.some(isTLSURL);
  if ((certFile === '' || keyFile === '') && t.autoTLS) {
    const made = ensureSelfSignedCert(path.join(cfg.dataDir, 'fixtures', side), hostsOf(urls));
    ({ certFile, keyFile } = made);
    logger.info(made.generated ? 'generated a self-signed certificate (auto TLS)' : 'reusing the self-signed certificate (auto TLS)', { side, certFile });
  }
  if (certFile === '' || keyFile === '') {
    const u = urls.find(isTLSURL);
    if (u) throw new ConfigError(`TLS key/cert (--${flag}cert-file, --${flag}key-file) must be provided for ${side} url ${u} with HTTPS scheme`);
    return undefined;
  }
  if (!needed && side === 'peer' && !t.autoTLS && cfg.initialCluster.every((m) => m.peerURLs.every((p) => !isTLSURL(p)))) return undefined;
  const settings: TLSSettings = {
    certFile,
    keyFile,
    trustedCAFile: t.trustedCAFile,
    clientCertAuth: t.clientCertAuth,
    insecureSkipVerify: t.autoTLS && t.trustedCAFile === '',
    cipherSuites: cfg.cipherSuites,
    allowedCN: side === 'peer' ? cfg.peerTLS.allowedCN : undefined,
    allowedHostname: t.allowedHostname || undefined,
    crlFile: t.crlFile || undefined,
    // etcd checks a peer's certificate SANs against the address it connects from (its peer listeners only).
    checkSAN: side === 'peer' && !cfg.peerTLS.skipClientSANVerify,
  };
  validateClientCertSettings(settings); // the CRL must be readable now, and CN and hostname not both given
  contextOptions(settings); // the files must be readable now, not at the first connection
  return settings;
}

function isTLSURL(u: string): boolean {
  return u.startsWith('https://') || u.startsWith('unixs://');
}

/** What stopping needs of a listener. */
export type Listener = Pick<http.Server, 'closeIdleConnections' | 'closeAllConnections'> & { close(cb?: () => void): unknown };

export interface RunningMember {
  server: EtcdServer;
  listeners: Listener[];
  stop(): Promise<void>;
}

/** The v3 part of a snapshot: a marker (the data is in the member's store) or the store's whole data. */
const V3_PART_MARKER = 0;
const V3_PART_DATA = 1;

/** Starts a member from a parsed configuration. */
export async function startMember(cfg: ServerConfig, baseLogger: winston.Logger): Promise<RunningMember> {
  // Each part logs under its etcd package name (capnslog prints it; --log-package-levels selects by it).
  const logger = baseLogger.child({ pkg: 'embed' });
  const serverLog = baseLogger.child({ pkg: 'etcdserver' });
  const peerLog = baseLogger.child({ pkg: 'rafthttp' });
  checkSchemes([...cfg.listenClientURLs, ...cfg.listenPeerURLs]);
  const clientTLS = resolveTLS(cfg, 'client', logger);
  const peerTLS = resolveTLS(cfg, 'peer', logger);
  const stopWatching: (() => void)[] = [];
  const memberDir = path.join(cfg.dataDir, 'member');
  const walDir = cfg.walDir || path.join(memberDir, 'wal');
  fs.mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  // One member per data dir: a second one waits for the first to stop (as etcd's flocks make it wait).
  const dirLock = await lockDir(cfg.dataDir, (m) => serverLog.warn(m));
  stopWatching.push(() => dirLock.release());
  // etcd 3.4's own data dir (its WAL and snap files, its backend in member/snap/db; also what etcd's `etcdctl
  // snapshot restore` makes) is converted once into this server's layout, etcd's files kept aside.
  try {
    await migrateEtcdDataDir(cfg.dataDir, { walDir: cfg.walDir || undefined, log: (level, msg, fields) => serverLog.log(level, msg, fields ?? {}) });
  } catch (err) {
    dirLock.release();
    throw err;
  }
  fs.mkdirSync(memberDir, { recursive: true, mode: 0o700 });
  const metrics = new ServerMetrics(VERSION);
  const store = new V2Store(Date.now);
  // The transport hands peer messages to the server, which exists once constructed: a late-bound reporter.
  let srv: EtcdServer | undefined;
  const transport = new Transport({
    reporter: {
      process: (m) => srv?.stepPeer(m),
      reportUnreachable: (id) => srv?.reportUnreachable(id),
      reportSnapshot: (id, ok) => srv?.reportSnapshot(id, ok),
      isRemoved: (id) => srv?.cluster?.isRemoved(id) ?? false,
      removedByPeer: (peer) => srv?.removedByPeer(peer),
    },
    log: (level, msg, meta) => peerLog.log(level, msg, meta),
    snapshotDir: path.join(memberDir, 'snap'),
    onSent: (to, bytes) => metrics.peerSent(to, bytes),
    onReceived: (from, bytes) => metrics.peerReceived(from, bytes),
    onSendFailure: (to) => metrics.peerSendFailed(to),
    onReceiveFailure: (from) => metrics.peerReceiveFailed(from),
    onRoundTrip: (to, seconds) => metrics.peerRoundTrip(to, seconds),
    onPeerActive: (peer, active) => metrics.peerActive(transport.id, peer, active),
    onSnapshotSent: (to, seconds, ok) => metrics.snapshotSent(to, seconds, ok),
    onSnapshotReceived: (from, seconds, ok) => metrics.snapshotReceived(from, seconds, ok),
    httpsAgentOptions: peerTLS ? clientAgentOptions(peerTLS) : undefined,
  });
  /** The name peer certificates are checked against instead of the peer's host (DNS discovery may set it). */
  let peerServerName: string | undefined;
  const peerAgentOptions = (t: TLSSettings) => ({ ...clientAgentOptions(t), ...(peerServerName ? { servername: peerServerName } : {}) });
  if (peerTLS) {
    // A rotated peer certificate is used for new outbound connections too.
    stopWatching.push(watchCertificates(peerTLS, () => transport.setHttpsAgentOptions(peerAgentOptions(peerTLS)), (m, meta) => logger.warn(m, meta)));
  }
  const tlsLog = (level: 'info' | 'warn', msg: string, meta: Record<string, unknown>) => logger.log(level, msg, meta);
  /** An http or https server for a listen URL (https with these TLS settings). */
  const makeServer = (u: string, settings: TLSSettings | undefined, handler: http.RequestListener, opts: http.ServerOptions): http.Server => {
    if (!isTLSURL(u)) return http.createServer(opts, handler);
    const t = createTLSServer(settings!, handler, tlsLog, opts);
    stopWatching.push(t.stopWatching);
    return t.server;
  };
  /** The v3 store's hash, for peers checking for corruption (once the store is open). */
  let mvccHashKV: ((rev: number) => Promise<HashKV>) | undefined;
  /** The leader's side of lease renewals forwarded by followers (once the lessor exists). */
  let leaseHTTP: LeaseHTTPHost | undefined;
  const peerListeners: http.Server[] = [];
  for (const u of cfg.listenPeerURLs) {
    const url = new URL(u);
    const peerHandler = transport.handler((req, res) => peerInfo(req, res, () => srv, () => mvccHashKV, () => leaseHTTP));
    const ps = makeServer(u, peerTLS, peerHandler, { requestTimeout: 0, keepAliveTimeout: 30000 });
    await listen(ps, url);
    logger.info('listening for peers', { url: u });
    peerListeners.push(ps);
  }
  // The client listeners open now, as etcd's do: a client connects at once and waits for the member to serve, rather
  // than being refused while the data loads and backing off (see ClientListener.serve).
  const clientListeners: ClientListener[] = [];
  const closeListeners = (): void => {
    for (const l of [...peerListeners, ...clientListeners]) l.close();
    dirLock.release();
  };
  for (const urls of groupByAddress(cfg.listenClientURLs)) {
    const cl = new ClientListener({ urls, tls: clientTLS, log: tlsLog });
    try {
      await cl.listen();
    } catch (err) {
      transport.stop();
      closeListeners();
      throw err;
    }
    clientListeners.push(cl);
  }
  // A new member bootstrapping by discovery learns its initial cluster now, its peer listeners up (as etcd's).
  let bootstrap;
  try {
    bootstrap = await resolveBootstrap(cfg, WAL.exists(walDir), walDir, (pkg, level, msg, meta) => baseLogger.log(level, msg, { pkg, ...meta }));
    peerServerName = bootstrap.peerServerName;
    if (peerTLS && peerServerName) transport.setHttpsAgentOptions(peerAgentOptions(peerTLS));
  } catch (err) {
    transport.stop();
    closeListeners();
    throw err;
  }
  const server = new EtcdServer({
    name: cfg.name,
    initialCluster: bootstrap.initialCluster,
    initialClusterToken: bootstrap.token,
    initialClusterState: cfg.initialClusterState,
    advertiseClientURLs: cfg.advertiseClientURLs,
    heartbeatMs: cfg.heartbeatIntervalMs,
    electionMs: cfg.electionTimeoutMs,
    snapshotCount: cfg.snapshotCount,
    snapshotCatchupEntries: cfg.snapshotCatchupEntries,
    preVote: cfg.preVote,
    strictReconfigCheck: cfg.strictReconfigCheck,
    initialElectionTickAdvance: cfg.initialElectionTickAdvance,
    stateMachine: new V2Applier(store),
    wal: walStore(walDir, cfg, metrics, logger),
    snapshots: new Snapshotter(path.join(memberDir, 'snap'), { maxSnapshots: cfg.maxSnapshots, noSync: cfg.unsafeNoFsync, warn: (m) => logger.warn(m), onSaved: (sec) => metrics.backendCommit.observe(sec) }),
    transport,
    fetchRemoteCluster: (urls) => fetchRemoteCluster(urls, peerTLS ? peerAgentOptions(peerTLS) : undefined),
    forwardPromote: (url, id, ms) => forwardPromote(url, id, ms, peerTLS ? peerAgentOptions(peerTLS) : undefined),
    advertisePeerURLs: cfg.initialAdvertisePeerURLs,
    now: Date.now,
    log: (level, msg, meta) => serverLog.log(level, msg, meta),
  });
  srv = server;
  metrics.attach(server, store);
  // The v3 keyspace: an MVCC store on LMDB in the member's dir, applied from v3 entries of the log. Its data stays in
  // its own files (a snapshot keeps a marker; the store is committed first, so it is never behind the snapshot) and
  // goes whole to a member that catches up by snapshot.
  const mvcc = MvccStore.open(path.join(memberDir, 'v3'));
  // Leases live in the same store (their own tables); the lessor is loaded from it before the log replays.
  let v3lease: V3Lease | undefined;
  const leaseMetrics = new LeaseMetrics(metrics.registry);
  const lessor = new Lessor({
    store: mvcc,
    minTTL: minLeaseTTL(cfg.electionTimeoutMs, cfg.heartbeatIntervalMs),
    now: Date.now,
    expiredRetryMs: server.requestTimeoutMs(),
    checkpointer: cfg.leaseCheckpoint ? (cps) => v3lease?.proposeCheckpoints(cps) : undefined,
    checkpointPersist: cfg.leaseCheckpointPersist,
    metrics: leaseMetrics,
  });
  // The v2 auth API's users, roles and enabled flag (server/auth/v2/): V2Auth entries, kept in the v2 store's /2.
  const v2auth = new V2AuthStore(store);
  server.registerApplier(EntryKind.V2Auth, new V2AuthApplier(v2auth));
  const v2access = new V2AuthAccess(v2auth, cfg.clientTLS.clientCertAuth);
  const v3 = new V3Applier(mvcc, lessor, (level, msg, meta) => serverLog.log(level, msg, meta));
  // Users, roles and permissions (server/auth/): Auth entries, kept in the v3 store's meta table.
  const authStore = new AuthStore(mvcc, newTokenProvider(cfg.auth.token, cfg.auth.tokenTTL), { bcryptCost: cfg.auth.bcryptCost });
  server.registerApplier(EntryKind.Auth, authStore);
  v3.authorize = (r) => authStore.checkKV(r);
  const authGate = new AuthGate(authStore, cfg.clientTLS.clientCertAuth);
  const quota = new BackendQuota(cfg.quotaBackendBytes, () => mvcc.dbSize(), (level, msg, meta) => serverLog.log(level, msg, meta));
  const v3kv = new V3KV(server, v3, { maxRequestBytes: cfg.maxRequestBytes, auth: authGate, quota });
  v3lease = new V3Lease({ server, kv: v3kv, lessor, metrics: leaseMetrics, peerTLS: peerTLS ? clientAgentOptions(peerTLS) : undefined, now: Date.now, log: (level, msg, meta) => serverLog.log(level, msg, meta) });
  v3lease.start();
  leaseHTTP = v3lease.httpHost();
  mvccHashKV = (rev) => mvcc.hashKV(rev);
  registerMvccMetrics(metrics.registry, mvcc, v3.ops);
  // Watchers of the v3 keyspace, told of every write the store applies.
  const watchable = new WatchableStore(mvcc, (m) => serverLog.log('error', m));
  registerWatchMetrics(metrics.registry, watchable);
  server.registerApplier(EntryKind.V3, v3);
  server.registerSnapshotPart(PART_V3, {
    save: () => {
      mvcc.flushSync();
      return Buffer.from([V3_PART_MARKER]);
    },
    recover: (data) => {
      if (data && data[0] === V3_PART_DATA) {
        mvcc.loadSync(data.subarray(1));
        lessor.recover();
        authStore.recover();
        v3.alarms.reload();
      }
    },
    validate: (data) => {
      if (data[0] === V3_PART_DATA) MvccStore.validateDump(data.subarray(1));
      else if (data[0] !== V3_PART_MARKER) throw new Error('snapshot: malformed v3 part');
    },
    forPeer: async () => Buffer.concat([Buffer.from([V3_PART_DATA]), await mvcc.dump()]),
  });
  try {
    await server.start();
  } catch (err) {
    transport.stop();
    closeListeners();
    throw err;
  }
  if (cfg.initialCorruptCheck) {
    try {
      await checkInitialHashKV({
        localId: server.id,
        peers: server.cluster.list().filter((m) => m.id !== server.id),
        hashKV: (rev) => mvcc.hashKV(rev),
        fetch: (url, rev) => fetchPeerHashKV(url, rev, server.requestTimeoutMs(), peerTLS ? peerAgentOptions(peerTLS) : undefined),
        log: (level, msg, meta) => serverLog.log(level, msg, meta),
      });
    } catch (err) {
      await server.stop();
      watchable.close();
      await mvcc.close();
      transport.stop();
      closeListeners();
      throw err;
    }
  }
  const keysApi = keysAPI({ server, store, now: Date.now, access: v2access });
  const keys = keysApi.handler;
  const alarmTypes = (): string[] => v3.alarms.get(AlarmType.NONE).map((a) => alarmTypeName(a.alarm));
  const auth = authHandler({ server, store: v2auth, access: v2access, log: (level, msg, meta) => serverLog.log(level, msg, meta) });
  const admin = adminApp({ server, store, transport, name: cfg.name, registry: metrics.registry, now: Date.now, hasWriteRootAccess: (req) => v2access.hasWriteRootAccess(req), alarms: alarmTypes });
  const published = server.published ? Promise.resolve() : new Promise<void>((resolve) => server.once('published', () => resolve()));
  const hostWhitelist = new HostWhitelist(cfg.hostWhitelist);
  const cors = new CorsPolicy(cfg.cors);
  const route = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // As etcd's access controller, first: a plain-HTTP request must name a whitelisted host (DNS rebinding).
    if (!hostWhitelist.allowsAll && !(req.socket as { encrypted?: boolean }).encrypted) {
      const host = requestHostname(req);
      if (!hostWhitelist.allows(host)) {
        logger.warn('rejecting HTTP request to prevent DNS rebinding attacks', { host, capnslog: `rejecting HTTP request from ${JSON.stringify(host)} to prevent DNS rebinding attacks` });
        req.resume();
        return writeMisdirected(res, host);
      }
    }
    // An absolute-form request target (GET http://host/v2/keys/k) is served by its path, as Go does.
    if (req.url && /^https?:\/\//i.test(req.url)) req.url = req.url.replace(/^https?:\/\/[^/?#]*/i, '') || '/';
    const url = req.url ?? '/';
    if (!isValidRequestPath(url)) {
      // Go's HTTP server refuses a request whose path has a malformed %-escape, before any handler sees it.
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('400 Bad Request');
      return;
    }
    if (cors.apply(req, res)) return; // CORS headers on every answer; OPTIONS answered here
    const redirect = cleanRedirect(url);
    if (redirect !== undefined) {
      // Go's ServeMux answers a path that is not clean (// . .. segments) with a redirect to the clean one.
      const head = req.method === 'GET' || req.method === 'HEAD';
      res.writeHead(301, head ? { Location: redirect, 'Content-Type': 'text/html; charset=utf-8' } : { Location: redirect });
      res.end(head ? `<a href="${redirect}">Moved Permanently</a>.\n\n` : undefined);
      return;
    }
    if (!cfg.enableV2 && isV2Path(url)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end('404 page not found\n');
    } else if (url === KEYS_PREFIX || url.startsWith(KEYS_PREFIX + '/') || url.startsWith(KEYS_PREFIX + '?')) keys(req, res);
    else if (url.startsWith(AUTH_PREFIX + '/')) auth(req, res);
    else if (isGatewayPath(url)) gateway(req, res);
    else admin(req, res);
  };
  /**
   * The plain HTTP/1.1 path's part of `route` (see fast-http1.ts): the /v2/keys requests that pass the same checks
   * with nothing to do (a whitelist of every host, a clean path, v2 on, the member published), with the same CORS
   * headers. Anything else is declined, and Node's server gives it to `route`.
   */
  const plainRoute = (r: PlainRequest): PlainReply | undefined => {
    if (!server.published || !hostWhitelist.allowsAll || !cfg.enableV2) return undefined;
    const url = r.url;
    if (!(url === KEYS_PREFIX || url.startsWith(KEYS_PREFIX + '/') || url.startsWith(KEYS_PREFIX + '?'))) return undefined;
    if (!isValidRequestPath(url) || cleanRedirect(url) !== undefined) return undefined;
    const answer = keysApi.serve(r);
    return answer === undefined ? undefined : { before: cors.headerLines(r.headers.origin), answer };
  };
  let gateway: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => undefined;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (server.published) route(req, res);
    else void published.then(() => route(req, res));
  };
  const listeners: Listener[] = [];
  // One socket per address: HTTP/1.1 and HTTP/2 (gRPC) on it, and http:// and https:// when both name it. The v3
  // services are to be registered on grpcServer here, before the listeners take connections.
  gaugeOf(metrics.registry, 'etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', () => quota.bytes ?? cfg.quotaBackendBytes);
  const compactor = new Compactor({
    ...cfg.autoCompaction,
    rev: () => mvcc.rev(),
    compact: async (rev) => void (await v3kv.compact({ revision: BigInt(rev), physical: false })),
    isLeader: () => server.isLeader(),
    log: (level, msg, meta) => serverLog.log(level, msg, { pkg: 'etcdserver', ...meta }),
    now: Date.now,
    setTimer: (fn, ms) => {
      const t = setTimeout(fn, ms).unref();
      return { clear: () => clearTimeout(t) };
    },
  });
  compactor.start();
  const v3log = (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => serverLog.log(level, msg, { pkg: 'etcdserver/api/v3rpc', ...meta });
  const maintenance = new V3Maintenance(server, v3, v3kv, v3log);
  const grpcServer = createV3Server({
    kv: v3kv,
    lease: v3lease,
    header: v3kv.header(),
    maxRequestBytes: cfg.maxRequestBytes,
    maxTxnOps: cfg.maxTxnOps,
    registry: metrics.registry,
    maintenance,
    log: v3log,
    cluster: v3ClusterBackend(server, Date.now),
    isLearner: () => server.isLearner(),
    checkAdmin: (call) => authGate.checkAdmin(call),
    watch: {
      watchable,
      progressNotifyIntervalMs: cfg.watchProgressNotifyIntervalMs,
      hasLeader: () => server.lead !== NONE,
      electionMs: cfg.electionTimeoutMs,
      authorize: (call, key, end) => authGate.checkWatch(call, key, end),
    },
    services: [authService(new AuthV3(server, authGate, cfg.maxRequestBytes), v3kv.header())],
    grpcOptions: {
      // etcd's --grpc-keepalive-interval (0: no pings) and --grpc-keepalive-timeout; --max-concurrent-streams.
      'grpc.keepalive_time_ms': cfg.grpcKeepaliveIntervalMs > 0 ? Math.min(cfg.grpcKeepaliveIntervalMs, 2 ** 31 - 1) : 2 ** 31 - 1,
      'grpc.keepalive_timeout_ms': cfg.grpcKeepaliveTimeoutMs > 0 ? Math.min(cfg.grpcKeepaliveTimeoutMs, 2 ** 31 - 1) : 2 ** 31 - 1,
      ...(cfg.maxConcurrentStreams !== 4294967295 ? { 'grpc.max_concurrent_streams': cfg.maxConcurrentStreams } : {}),
    },
  });
  // Our own HTTP/2 (h2/connection.ts) where this grpc-js lets us hand it streams; Node's otherwise.
  const http2 = grpcServer.servesStreams
    ? h2Sink((stream, headers) => grpcServer.serveStream(stream, headers), {
        keepaliveTimeMs: cfg.grpcKeepaliveIntervalMs,
        keepaliveTimeoutMs: cfg.grpcKeepaliveTimeoutMs,
        maxConcurrentStreams: cfg.maxConcurrentStreams !== 4294967295 ? cfg.maxConcurrentStreams : undefined,
        onError: (err) => logger.warn('closed a gRPC connection after an internal error', { error: err.stack ?? err.message }),
      })
    : grpcSink(grpcServer);
  // The JSON gateway calls the gRPC methods registered above, in-process.
  gateway = gatewayHandler({ lookup: (p) => grpcServer.implementation(p), maxBodyBytes: 4 * cfg.maxRequestBytes + 64 * 1024, maxConcurrentCalls: cfg.maxConcurrentStreams });
  stopWatching.push(() => http2.destroy());
  // What a burst of requests leaves in the heap is given back once the member goes idle (pkg/collect-garbage.ts).
  const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  stopWatching.push(collectGarbageAfterGrowth({ collected: (c) => logger.debug('collected garbage once idle', { before: MiB(c.before), after: MiB(c.after), pause: `${c.pauseMs.toFixed(0)}ms` }) }));
  for (const cl of clientListeners) {
    cl.serve(handler, http2, plainRoute);
    for (const u of cl.urls) logger.info('serving client requests', { url: u });
    listeners.push(cl);
  }
  for (const u of cfg.listenMetricsURLs) {
    const url = new URL(u);
    // As etcd: a metrics listener serves /metrics and /health, nothing else.
    const metricsOnly = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const p = (req.url ?? '').split('?')[0];
      if (p === '/metrics' || p === '/health') return admin(req, res);
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('404 page not found\n');
    };
    const ms = makeServer(u, clientTLS, metricsOnly, {});
    await listen(ms, url);
    listeners.push(ms);
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Stop taking connections, let in-flight requests finish, then stop the member (WAL synced and closed).
      const closed = Promise.all(listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
      // A keep-alive connection whose request was in flight goes idle only once answered (and would then stay open
      // until its keepAliveTimeout): keep closing idle connections until every listener is closed, like Go's Shutdown.
      const closeIdle = (): void => {
        for (const l of listeners) l.closeIdleConnections();
      };
      closeIdle();
      // gRPC connections (HTTP/2, handed to the gRPC server) close as etcd's GracefulStop closes them: idle ones at once,
      // the others when their calls end; watch streams and other calls still open after 2 s are cut, within the 5 s.
      http2.drain(2000);
      const idler = setInterval(closeIdle, 50);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
      clearInterval(idler);
      compactor.stop();
      v3lease.stop();
      await server.stop();
      watchable.close();
      await mvcc.close();
      transport.stop();
      for (const unwatch of stopWatching) unwatch();
      for (const l of [...listeners, ...peerListeners]) {
        l.close();
        l.closeAllConnections();
      }
    })();
    return stopping;
  };
  server.on('fatal', (err: Error) => {
    logger.error('stopping after a fatal error', { error: err.message });
    process.exitCode = 1;
    void stop();
  });
  return { server, listeners, stop };
}


