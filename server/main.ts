#!/usr/bin/env node
/**
 * The `etcd` command: one member, started as etcd is started (same flags, ETCD_* variables and config file).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as winston from 'winston';
import { adminApp } from './api/admin';
import { KEYS_PREFIX } from './api/v2/key-request';
import { keysHandler } from './api/v2/keys-handler';
import { ConfigError, ServerConfig, parseConfig } from './config';
import { V2Applier } from './etcdserver/apply-v2';
import { EtcdServer, WALStore } from './etcdserver/server';
import { ServerMetrics } from './metrics';
import { Snapshotter } from './snap/snapshotter';
import { V2Store } from './store';
import { WAL } from './wal/wal';

export const VERSION = '3.4.0-ts-etcd';

function makeLogger(level: string): winston.Logger {
  const levels: Record<string, string> = { debug: 'debug', info: 'info', warn: 'warn', error: 'error', panic: 'error', fatal: 'error' };
  return winston.createLogger({
    level: levels[level] ?? 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['debug', 'info', 'warn', 'error'] })],
  });
}

function walStore(dir: string, cfg: ServerConfig, metrics: ServerMetrics, logger: winston.Logger): WALStore {
  const opts = { noSync: cfg.unsafeNoFsync, onFsync: (s: number) => metrics.walFsync.observe(s), warn: (m: string) => logger.warn(m) };
  return {
    exists: () => WAL.exists(dir),
    create: (metadata) => WAL.create(dir, metadata, opts),
    open: (from) => WAL.open(dir, from, opts),
  };
}

/** False when the path part of a request URI has a % not followed by two hex digits. */
export function isValidRequestPath(url: string): boolean {
  const q = url.indexOf('?');
  const p = q >= 0 ? url.slice(0, q) : url;
  for (let i = p.indexOf('%'); i >= 0; i = p.indexOf('%', i + 1)) {
    if (!/^[0-9a-fA-F]{2}$/.test(p.slice(i + 1, i + 3))) return false;
  }
  return true;
}

/** Go's path.Clean: one slash between segments, no . segments, .. resolved, rooted. */
export function goCleanPath(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

/** Where Go's ServeMux would redirect this request URI (its path cleaned, a trailing slash kept), if anywhere. */
export function cleanRedirect(url: string): string | undefined {
  const q = url.indexOf('?');
  const raw = q >= 0 ? url.slice(0, q) : url;
  // The common case, a clean path with nothing escaped, is decided without decoding.
  if (!raw.includes('%') && !/\/\/|\/\.\.?(\/|$)/.test(raw)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  let clean = goCleanPath(decoded);
  if (decoded.endsWith('/') && clean !== '/') clean += '/';
  if (clean === decoded) return undefined;
  return encodeURI(clean) + (q >= 0 ? url.slice(q) : '');
}

export interface RunningMember {
  server: EtcdServer;
  listeners: http.Server[];
  stop(): Promise<void>;
}

/** Starts a member from a parsed configuration. */
export async function startMember(cfg: ServerConfig, logger: winston.Logger): Promise<RunningMember> {
  if (cfg.initialCluster.length > 1 && cfg.initialClusterState === 'new') {
    throw new ConfigError('a cluster of more than one member needs the peer transport, which this server does not have yet: use a single-member --initial-cluster');
  }
  for (const u of [...cfg.listenClientURLs, ...cfg.listenPeerURLs]) {
    if (!u.startsWith('http://')) throw new ConfigError(`only http:// URLs are supported so far (TLS comes later): ${u}`);
  }
  const memberDir = path.join(cfg.dataDir, 'member');
  const walDir = cfg.walDir || path.join(memberDir, 'wal');
  fs.mkdirSync(memberDir, { recursive: true, mode: 0o700 });
  const metrics = new ServerMetrics(VERSION);
  const store = new V2Store(Date.now);
  const server = new EtcdServer({
    name: cfg.name,
    initialCluster: cfg.initialCluster,
    initialClusterToken: cfg.initialClusterToken,
    initialClusterState: cfg.initialClusterState,
    advertiseClientURLs: cfg.advertiseClientURLs,
    heartbeatMs: cfg.heartbeatIntervalMs,
    electionMs: cfg.electionTimeoutMs,
    snapshotCount: cfg.snapshotCount,
    preVote: cfg.preVote,
    stateMachine: new V2Applier(store),
    wal: walStore(walDir, cfg, metrics, logger),
    snapshots: new Snapshotter(path.join(memberDir, 'snap'), { maxSnapshots: cfg.maxSnapshots, noSync: cfg.unsafeNoFsync, warn: (m) => logger.warn(m), onSaved: (sec) => metrics.backendCommit.observe(sec) }),
    transport: { send: (msgs) => logger.debug('no peer transport: dropping messages', { count: msgs.length }) },
    now: Date.now,
    log: (level, msg, meta) => logger.log(level, msg, meta),
  });
  metrics.attach(server, store);
  await server.start();
  const keys = keysHandler({ server, store, now: Date.now });
  const admin = adminApp({ server, store, name: cfg.name, registry: metrics.registry, strictReconfigCheck: cfg.strictReconfigCheck, now: Date.now });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    if (!isValidRequestPath(url)) {
      // Go's HTTP server refuses a request whose path has a malformed %-escape, before any handler sees it.
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('400 Bad Request');
      return;
    }
    const redirect = cleanRedirect(url);
    if (redirect !== undefined) {
      // Go's ServeMux answers a path that is not clean (// . .. segments) with a redirect to the clean one.
      const head = req.method === 'GET' || req.method === 'HEAD';
      res.writeHead(301, head ? { Location: redirect, 'Content-Type': 'text/html; charset=utf-8' } : { Location: redirect });
      res.end(head ? `<a href="${redirect}">Moved Permanently</a>.\n\n` : undefined);
      return;
    }
    if (cfg.enableV2 && (url === KEYS_PREFIX || url.startsWith(KEYS_PREFIX + '/') || url.startsWith(KEYS_PREFIX + '?'))) keys(req, res);
    else admin(req, res);
  };
  const listeners: http.Server[] = [];
  for (const u of cfg.listenClientURLs) {
    const url = new URL(u);
    const srv = http.createServer({ keepAliveTimeout: 30000 }, handler);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(Number(url.port), url.hostname.replace(/^\[|\]$/g, ''), () => resolve());
    });
    logger.info('serving client requests', { url: u });
    listeners.push(srv);
  }
  for (const u of cfg.listenMetricsURLs) {
    const url = new URL(u);
    const srv = http.createServer(admin);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(Number(url.port), url.hostname, () => resolve());
    });
    listeners.push(srv);
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Stop taking connections, let in-flight requests finish, then stop the member (WAL synced and closed).
      const closed = Promise.all(listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
      for (const l of listeners) l.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
      await server.stop();
      for (const l of listeners) l.closeAllConnections();
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

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseConfig(argv, env, (p) => fs.readFileSync(p, 'utf8'));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd: error verifying flags, ${err.message}. See 'etcd --help'.\n`);
      return err.exitCode;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`etcd Version: ${VERSION}\nAPI Version: 3.4\nNode Version: ${process.version}\n`);
    return 0;
  }
  const cfg = parsed.config;
  const logger = makeLogger(cfg.logLevel);
  for (const w of parsed.warnings) logger.warn(w);
  let member: RunningMember;
  try {
    member = await startMember(cfg, logger);
  } catch (err) {
    logger.error('failed to start', { error: (err as Error).message });
    process.stderr.write(`etcd: ${(err as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info('received signal; shutting down', { signal: sig });
      member.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    member.server.once('removed', () => member.stop().then(resolve, resolve));
  });
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`etcd: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
