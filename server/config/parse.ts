import type * as yaml from 'js-yaml';
import { goParseBool, goParseDuration } from '../pkg/go-compat';
import { CompactionMode, parseCompactionRetention } from '../etcdserver/compactor';
import { IGNORED_OPTIONS, OPTIONS, OPTIONS_BY_NAME, OptionSpec, envName } from './options';

/** A configuration the server cannot start with; the message says what and where, as etcd's would. */
export class ConfigError extends Error {
  /** The exit code etcd uses: 2 for a malformed command line, 1 for a configuration that fails verification. */
  constructor(message: string, readonly exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type OptionValue = string | number | boolean | string[];

export interface InitialMember {
  name: string;
  peerURLs: string[];
}

export interface TLSFiles {
  certFile: string;
  keyFile: string;
  trustedCAFile: string;
  clientCertAuth: boolean;
  autoTLS: boolean;
  /** A certificate revocation list: client certificates whose serial it lists are refused. */
  crlFile: string;
  /** A client certificate must be valid for this hostname or IP (etcd's --*-cert-allowed-hostname). */
  allowedHostname: string;
}

/** The server's configuration, typed and validated. */
export interface ServerConfig {
  name: string;
  dataDir: string;
  walDir: string;
  snapshotCount: number;
  snapshotCatchupEntries: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /**
   * --max-request-bytes: for the gRPC layer (etcd 3.4 caps a received gRPC message at this plus 512 KiB of overhead,
   * and refuses a larger v3 proposal with "etcdserver: request is too large"); etcd applies it to no v2 request.
   */
  maxRequestBytes: number;
  /** --max-txn-ops: operations a v3 txn may hold. */
  maxTxnOps: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS on client connections. */
  maxConcurrentStreams: number;
  /** Server-to-client pings on an idle gRPC connection (0: none), and how long an answer may take. */
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;
  /** --auth-token ("simple", or "jwt,pub-key=…,priv-key=…,sign-method=…"), --auth-token-ttl (s), --bcrypt-cost. */
  auth: { token: string; tokenTTL: number; bcryptCost: number };
  /** --experimental-watch-progress-notify-interval (ms; etcd raises one under 100 ms to 100 ms, with a warning). */
  watchProgressNotifyIntervalMs: number;
  /** --quota-backend-bytes: 0 for etcd's default (2 GiB), negative for none. */
  quotaBackendBytes: number;
  /** --experimental-initial-corrupt-check: compare the v3 store's hash with the peers' before serving. */
  initialCorruptCheck: boolean;
  /** --auto-compaction-mode and --auto-compaction-retention (periodic: ms; revision: revisions; 0: off). */
  autoCompaction: { mode: CompactionMode; retention: number };
  /** --experimental-enable-lease-checkpoint and --experimental-enable-lease-checkpoint-persist */
  leaseCheckpoint: boolean;
  leaseCheckpointPersist: boolean;
  listenPeerURLs: string[];
  listenClientURLs: string[];
  listenMetricsURLs: string[];
  advertiseClientURLs: string[];
  initialAdvertisePeerURLs: string[];
  initialCluster: InitialMember[];
  initialClusterToken: string;
  initialClusterState: 'new' | 'existing';
  /**
   * Bootstrap by discovery instead of --initial-cluster (server/discovery/): a discovery URL (--discovery, through
   * --discovery-proxy; --discovery-fallback for a member past the size) or a DNS domain with SRV records
   * (--discovery-srv, --discovery-srv-name). Empty strings when not used.
   */
  discovery: { url: string; proxy: string; fallback: 'exit' | 'proxy'; srv: string; srvName: string };
  enableV2: boolean;
  preVote: boolean;
  strictReconfigCheck: boolean;
  maxSnapshots: number;
  maxWals: number;
  logLevel: string;
  /** How the member logs (server/embed/logger.ts): etcd's capnslog lines (3.4's default) or zap's JSON. */
  logger: 'capnslog' | 'zap';
  /** Where the log goes: default (stderr), stderr, stdout, or (zap only) file paths. */
  logOutputs: string[];
  /** capnslog's per-package levels (`etcdserver=DEBUG,*=WARNING`), package name to capnslog level number. */
  logPackageLevels: Map<string, number>;
  /** Fast-forward election ticks at start once peers are connected (a single member always campaigns at once). */
  initialElectionTickAdvance: boolean;
  /** --metrics: extensive adds histograms of gRPC handling time (for the gRPC layer; nothing else changes). */
  metrics: 'basic' | 'extensive';
  unsafeNoFsync: boolean;
  clientTLS: TLSFiles;
  peerTLS: TLSFiles & { allowedCN: string; skipClientSANVerify: boolean };
  cipherSuites: string[];
  /** Origins allowed for CORS: ["*"] (or empty) allows all, else the origins echoed back (server/api/cors.ts). */
  cors: string[];
  /** Hosts a plain-HTTP client request may name: ["*"] (or empty) allows all; others get 421 (server/api/host-whitelist.ts). */
  hostWhitelist: string[];
  /** Every option's value (defaults included), by etcd's option name. */
  values: Map<string, OptionValue>;
}

export type ParseResult =
  | { kind: 'config'; config: ServerConfig; warnings: string[] }
  | { kind: 'help'; text: string }
  | { kind: 'version' };

function parseValue(spec: OptionSpec, raw: unknown, where: string): OptionValue {
  const exitCode = where.startsWith('flag ') ? 2 : 1;
  const bad = (why: string) => new ConfigError(`invalid value ${JSON.stringify(raw)} for ${where}: ${why}`, exitCode);
  switch (spec.kind) {
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const b = goParseBool(raw);
        if (b !== undefined) return b;
      }
      // Go's flag package words it its own way for booleans.
      if (where.startsWith('flag ')) throw new ConfigError(`invalid boolean value ${JSON.stringify(raw)} for ${where.slice(5)}: parse error`, 2);
      throw bad('parse error');
    case 'int': {
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
      if (typeof raw === 'string' && /^[+-]?[0-9]+$/.test(raw)) {
        const n = Number(raw);
        if (Number.isSafeInteger(n)) return n;
      }
      throw bad('parse error');
    }
    case 'uint': {
      if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
      if (typeof raw === 'string' && /^[0-9]+$/.test(raw)) {
        const n = Number(raw);
        if (Number.isSafeInteger(n)) return n;
      }
      throw bad('parse error');
    }
    case 'urls': {
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!list || list.some((x) => typeof x !== 'string')) throw bad('want a comma-separated list of URLs');
      const out = (list as string[]).map((x) => x.trim()).filter((x) => x !== '');
      for (const x of out) {
        const why = urlProblem(x);
        if (why) throw bad(why);
      }
      return out;
    }
    case 'strings': {
      // etcd's UniqueStringsValue: split at commas (nothing trimmed), each value once; a YAML list in the config file.
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!list || list.some((x) => typeof x !== 'string')) throw bad('want a comma-separated list');
      const why = spec.check?.(list as string[]);
      if (why) throw bad(why);
      return [...new Set((list as string[]).map((x) => (spec.check ? x.trim() : x)))];
    }
    case 'enum':
      if (typeof raw !== 'string' || !spec.values!.includes(raw)) throw bad(`valid values are ${spec.values!.map((v) => `"${v}"`).join(', ')}`);
      return raw;
    case 'string':
      if (typeof raw === 'string') {
        const why = spec.validate?.(raw);
        if (why) throw bad(why);
        return raw;
      }
      if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
      throw bad('want a string');
  }
}

/** etcd's URL rules (http, https, unix or unixs; host:port; no path): what is wrong with a URL, in etcd's words. */
export function urlProblem(u: string): string | undefined {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(u) ? `parse ${JSON.stringify(u)}: invalid URL` : `URL scheme must be http, https, unix, or unixs: ${u}`;
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!['http', 'https', 'unix', 'unixs'].includes(scheme)) return `URL scheme must be http, https, unix, or unixs: ${u}`;
  // Go's net.SplitHostPort on the URL's host, whatever the scheme (unix://name:port included), as types.NewURLs does.
  if (url.port === '' && !/:\d*$/.test(url.host)) return `URL address does not have the form "host:port": ${u}`;
  if (url.pathname !== '' && url.pathname !== '/') return `URL must not contain a path: ${u}`;
  return undefined;
}

export function checkURL(u: string, where: string): void {
  const why = urlProblem(u);
  if (why) throw new ConfigError(`${why} (in ${where})`);
}

/** Parses `name=url,name=url2,other=url3` (a member may appear several times, one per peer URL). */
export function parseInitialCluster(s: string): InitialMember[] {
  const byName = new Map<string, string[]>();
  for (const part of s.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) {
      throw new ConfigError(`invalid value "${s}" for --initial-cluster: "${part}" is not of the form name=peerURL`);
    }
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    checkURL(url, '--initial-cluster');
    const list = byName.get(name) ?? [];
    list.push(url);
    byName.set(name, list);
  }
  return [...byName].map(([name, peerURLs]) => ({ name, peerURLs }));
}

function normalizeKey(k: string): string {
  return k.replace(/_/g, '-');
}

/** Maps the nested TLS sections of etcd's config file to the flat option names. */
const TRANSPORT_SECTIONS: Record<string, Record<string, string>> = {
  'client-transport-security': {
    'cert-file': 'cert-file',
    'key-file': 'key-file',
    'client-cert-auth': 'client-cert-auth',
    'trusted-ca-file': 'trusted-ca-file',
    'auto-tls': 'auto-tls',
    'crl-file': 'client-crl-file',
    'allowed-hostname': 'client-cert-allowed-hostname',
  },
  'peer-transport-security': {
    'cert-file': 'peer-cert-file',
    'key-file': 'peer-key-file',
    'client-cert-auth': 'peer-client-cert-auth',
    'trusted-ca-file': 'peer-trusted-ca-file',
    'auto-tls': 'peer-auto-tls',
    'allowed-cn': 'peer-cert-allowed-cn',
    'allowed-hostname': 'peer-cert-allowed-hostname',
    'crl-file': 'peer-crl-file',
  },
};

function readConfigFile(path: string, text: string): Map<string, OptionValue> {
  let doc: unknown;
  try {
    // js-yaml is loaded only for a --config-file.
    doc = (require('js-yaml') as typeof yaml).load(text);
  } catch (err) {
    throw new ConfigError(`error parsing config file ${path}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return new Map();
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path}: want a YAML mapping of option: value`);
  const out = new Map<string, OptionValue>();
  const set = (name: string, raw: unknown, keyPath: string) => {
    const spec = OPTIONS_BY_NAME.get(name);
    if (!spec || name === 'config-file') throw new ConfigError(`config file ${path}: unknown key "${keyPath}"`);
    if (raw === null || raw === undefined) return;
    // etcd reads these two as strings from the file and keeps its default for an empty one.
    if (raw === '' && (name === 'cors' || name === 'host-whitelist')) return;
    out.set(name, parseValue(spec, raw, `"${keyPath}" in ${path}`));
  };
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const key = normalizeKey(k);
    const section = TRANSPORT_SECTIONS[key];
    if (section) {
      if (v === null || v === undefined) continue;
      if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`config file ${path}: "${k}" must be a mapping`);
      for (const [sk, sv] of Object.entries(v as Record<string, unknown>)) {
        const target = section[normalizeKey(sk)];
        if (!target) throw new ConfigError(`config file ${path}: unknown key "${k}.${sk}"`);
        set(target, sv, `${k}.${sk}`);
      }
      continue;
    }
    set(key, v, k);
  }
  return out;
}

/** Parses Go-flag-style arguments as etcd does: -name value, --name=value, --bool, --bool=false. */
function parseArgs(argv: string[]): { values: Map<string, OptionValue>; help: boolean; version: boolean; warnings: string[] } {
  const values = new Map<string, OptionValue>();
  const warnings: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || arg === '-' || arg === '--') {
      throw new ConfigError(`'${arg}' is not a valid flag`, 1);
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let raw: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (name === 'h' || name === 'help') {
      help = true;
      continue;
    }
    if (name === 'version') {
      version = true;
      continue;
    }
    if (IGNORED_OPTIONS.includes(name)) {
      // As etcd's IgnoredFlag: a boolean flag, so a value must be given with = (a separate word is not its value).
      warnings.push(`flag "-${name}" is no longer supported - ignoring.`);
      continue;
    }
    const spec = OPTIONS_BY_NAME.get(name);
    if (!spec) throw new ConfigError(`flag provided but not defined: -${name}`, 2);
    if (raw === undefined) {
      if (spec.kind === 'bool') {
        raw = 'true';
      } else {
        if (i + 1 >= argv.length) throw new ConfigError(`flag needs an argument: -${name}`, 2);
        raw = argv[++i];
      }
    }
    values.set(name, parseValue(spec, raw, `flag -${name}`));
  }
  return { values, help, version, warnings };
}

export function helpText(): string {
  const lines = ['Usage: etcd [flags]', '', 'Start an etcd server.', ''];
  for (const o of OPTIONS) {
    const def = Array.isArray(o.default) ? o.default.join(',') : String(o.default);
    lines.push(`  --${o.name}${o.kind === 'bool' ? '' : ` '${def}'`}`);
    lines.push(`      ${o.help}${o.supported === false ? ' (not supported by this server: only its default is accepted)' : ''}`);
  }
  lines.push('', 'Every flag can also be set with an environment variable: --initial-cluster-token is ETCD_INITIAL_CLUSTER_TOKEN.');
  return lines.join('\n') + '\n';
}

/**
 * The etcd command's configuration from its arguments, environment and (if --config-file is given) YAML file. As
 * in etcd, a config file replaces flags and environment variables; otherwise a flag wins over its ETCD_* variable.
 */
export function parseConfig(argv: string[], env: Record<string, string | undefined>, readFile: (path: string) => string): ParseResult {
  const args = parseArgs(argv);
  if (args.help) return { kind: 'help', text: helpText() };
  if (args.version) return { kind: 'version' };
  const warnings = [...args.warnings];
  let chosen: Map<string, OptionValue>;
  /** Where each chosen value was given, for the error about an unsupported option. */
  const where = new Map<string, string>();
  const configFile = (args.values.get('config-file') as string | undefined) ?? env.ETCD_CONFIG_FILE;
  if (configFile) {
    let text: string;
    try {
      text = readFile(configFile);
    } catch (err) {
      throw new ConfigError(`cannot read config file ${configFile}: ${(err as Error).message}`);
    }
    chosen = readConfigFile(configFile, text);
    for (const name of chosen.keys()) where.set(name, `in the config file ${configFile}`);
    if (args.values.size > 1) warnings.push('a configuration file was given: other command line flags and environment variables are ignored');
  } else {
    chosen = new Map(args.values);
    for (const name of chosen.keys()) where.set(name, 'on the command line');
    const known = new Set(OPTIONS.map((o) => envName(o.name)));
    for (const [k, v] of Object.entries(env)) {
      if (!k.startsWith('ETCD_') || v === undefined) continue;
      if (!known.has(k)) {
        warnings.push(`unrecognized environment variable ${k}=${v}`);
        continue;
      }
      // As etcd's flags.SetFlagsFromEnv: an empty variable sets nothing.
      if (v === '') continue;
      const name = k.slice(5).toLowerCase().replace(/_/g, '-');
      const spec = OPTIONS_BY_NAME.get(name)!;
      if (chosen.has(name)) {
        warnings.push(`recognized environment variable ${k}, but unused: shadowed by corresponding flag`);
        continue;
      }
      chosen.set(name, parseValue(spec, v, `environment variable ${k}`));
      where.set(name, `in the environment (${k})`);
    }
  }
  for (const [name, value] of chosen) {
    const spec = OPTIONS_BY_NAME.get(name)!;
    if (spec.supported !== false || sameValue(value, spec.default)) continue;
    const shown = `--${name}=${Array.isArray(value) ? value.join(',') : String(value)}`;
    if (spec.tolerated) {
      warnings.push(`${shown} (${where.get(name)}) is not supported by this server and has no effect: ${spec.tolerated}`);
      continue;
    }
    const def = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    throw new ConfigError(`${shown} (${where.get(name)}) is not supported by this server; remove it or give its default (${JSON.stringify(def)})`);
  }
  const values = new Map<string, OptionValue>();
  for (const o of OPTIONS) values.set(o.name, chosen.has(o.name) ? chosen.get(o.name)! : o.default);
  const config = buildConfig(values, chosen, !configFile, warnings);
  return { kind: 'config', config, warnings };
}

function sameValue(a: OptionValue, b: OptionValue): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

/**
 * The options buildConfig reads into a ServerConfig, found by building the default configuration and recording every
 * option it looks at (with config-file, which parseConfig reads itself). For the test that every option in OPTIONS
 * is either read or marked unsupported.
 */
export function optionsReadByBuildConfig(): Set<string> {
  const read = new Set<string>(['config-file']);
  const values = new Map<string, OptionValue>(OPTIONS.map((o) => [o.name, o.default]));
  buildConfig(values, new Map(), true, [], read);
  return read;
}

function buildConfig(values: Map<string, OptionValue>, explicit: Map<string, OptionValue>, fromCommandLine: boolean, warnings: string[], read?: Set<string>): ServerConfig {
  const get = (n: string): OptionValue => {
    read?.add(n);
    return values.get(n)!;
  };
  const str = (n: string) => get(n) as string;
  const num = (n: string) => get(n) as number;
  const bool = (n: string) => get(n) as boolean;
  const list = (n: string) => get(n) as string[];
  /** A Go duration flag, in ms; a value Go's flag package would refuse stops the start as it does. */
  const duration = (n: string): number => {
    try {
      return goParseDuration(str(n));
    } catch {
      throw new ConfigError(`invalid value ${JSON.stringify(str(n))} for flag -${n}: parse error`, 2);
    }
  };
  const name = str('name');
  const heartbeat = num('heartbeat-interval');
  const election = num('election-timeout');
  if (heartbeat <= 0) throw new ConfigError(`--heartbeat-interval must be >0 (set to ${heartbeat}ms)`);
  if (election < 5 * heartbeat) {
    throw new ConfigError(`--election-timeout[${election}ms] should be at least as 5 times as --heartbeat-interval[${heartbeat}ms]`);
  }
  if (election > 50000) throw new ConfigError(`--election-timeout[${election}ms] is too long, and should be set less than 50000ms`);
  const discovery = { url: str('discovery'), proxy: str('discovery-proxy'), fallback: str('discovery-fallback') as 'exit' | 'proxy', srv: str('discovery-srv'), srvName: str('discovery-srv-name') };
  // As etcd's Validate: one way to bootstrap, at most.
  if ([discovery.url !== '', explicit.has('initial-cluster'), discovery.srv !== ''].filter(Boolean).length > 1) throw new ConfigError(CONFLICT_BOOTSTRAP_FLAGS);
  // As etcd: a command line (flags or ETCD_* variables) that sets where to listen must say what to advertise; unless
  // the member may become a proxy (a discovery URL with fallback proxy), where the default is advertised.
  const mayBeProxy = discovery.url !== '' && discovery.fallback === 'proxy';
  if (fromCommandLine && !mayBeProxy && explicit.has('listen-client-urls') && !explicit.has('advertise-client-urls')) {
    throw new ConfigError(
      '--advertise-client-urls is required when --listen-client-urls is set explicitly. When listening on specific address(es), this etcd process must advertise accessible url(s) to each connected client.',
    );
  }
  const advertisePeer = list('initial-advertise-peer-urls');
  const givenCluster = str('initial-cluster');
  // With discovery the initial cluster starts as this member alone (etcd's temporary cluster); discovery replaces it.
  const initialClusterStr = explicit.has('initial-cluster') ? givenCluster : advertisePeer.map((u) => `${name}=${u}`).join(',');
  const initialCluster = parseInitialCluster(initialClusterStr);
  const state = str('initial-cluster-state') as 'new' | 'existing';
  const self = initialCluster.find((m) => m.name === name);
  if (!self) {
    throw new ConfigError(`couldn't find local name "${name}" in the initial cluster configuration (--initial-cluster=${initialClusterStr})`);
  }
  const sameURLs = [...self.peerURLs].sort().join(',') === [...advertisePeer].sort().join(',');
  if (!sameURLs) {
    throw new ConfigError(
      `--initial-cluster has ${name}=${self.peerURLs.join(',')} but missing from --initial-advertise-peer-urls=${advertisePeer.join(',')}`,
    );
  }
  const seenURLs = new Set<string>();
  for (const m of initialCluster) {
    for (const u of m.peerURLs) {
      if (seenURLs.has(u)) throw new ConfigError(`--initial-cluster: peer URL ${u} is used by more than one member`);
      seenURLs.add(u);
    }
  }
  const debug = bool('debug');
  const logLevel = debug ? 'debug' : str('log-level');
  if (debug) warnings.push(`Deprecated '--debug' flag is set to true (use '--log-level=debug' instead)`);
  const logger = str('logger') as 'capnslog' | 'zap';
  if (logger !== 'capnslog' && logger !== 'zap') throw new ConfigError(`unknown logger option ${JSON.stringify(logger)}`);
  const logOutputs = chooseLogOutputs(list('log-output'), list('log-outputs'), logger, warnings);
  const logPackageLevels = parsePackageLevels(str('log-package-levels'), logger, warnings);
  const maxRequestBytes = num('max-request-bytes');
  if (maxRequestBytes > RECOMMENDED_MAX_REQUEST_BYTES) {
    warnings.push(`MaxRequestBytes ${maxRequestBytes} exceeds maximum recommended size ${RECOMMENDED_MAX_REQUEST_BYTES}`);
  }
  const splitList = (s: string) => s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  const leaseCheckpoint = bool('experimental-enable-lease-checkpoint');
  const leaseCheckpointPersist = bool('experimental-enable-lease-checkpoint-persist');
  if (leaseCheckpointPersist && !leaseCheckpoint) throw new ConfigError('setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint');
  if (leaseCheckpoint && !leaseCheckpointPersist) warnings.push('Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist');
  return {
    name,
    dataDir: str('data-dir') || `${name}.etcd`,
    walDir: str('wal-dir'),
    snapshotCount: num('snapshot-count'),
    snapshotCatchupEntries: num('experimental-snapshot-catchup-entries'),
    heartbeatIntervalMs: heartbeat,
    electionTimeoutMs: election,
    maxRequestBytes,
    maxTxnOps: num('max-txn-ops'),
    maxConcurrentStreams: num('max-concurrent-streams'),
    grpcKeepaliveIntervalMs: duration('grpc-keepalive-interval'),
    grpcKeepaliveTimeoutMs: duration('grpc-keepalive-timeout'),
    auth: { token: str('auth-token'), tokenTTL: num('auth-token-ttl'), bcryptCost: num('bcrypt-cost') },
    watchProgressNotifyIntervalMs: watchProgressInterval(str('experimental-watch-progress-notify-interval'), warnings),
    quotaBackendBytes: num('quota-backend-bytes'),
    initialCorruptCheck: bool('experimental-initial-corrupt-check'),
    autoCompaction: autoCompactionOf(str('auto-compaction-mode') as CompactionMode, str('auto-compaction-retention')),
    leaseCheckpoint,
    leaseCheckpointPersist,
    listenPeerURLs: list('listen-peer-urls'),
    listenClientURLs: list('listen-client-urls'),
    listenMetricsURLs: list('listen-metrics-urls'),
    advertiseClientURLs: list('advertise-client-urls'),
    initialAdvertisePeerURLs: advertisePeer,
    initialCluster,
    initialClusterToken: str('initial-cluster-token'),
    initialClusterState: state,
    discovery,
    enableV2: bool('enable-v2'),
    preVote: bool('pre-vote'),
    strictReconfigCheck: bool('strict-reconfig-check'),
    maxSnapshots: num('max-snapshots'),
    maxWals: num('max-wals'),
    logLevel,
    logger,
    logOutputs,
    logPackageLevels,
    initialElectionTickAdvance: bool('initial-election-tick-advance'),
    metrics: str('metrics') as 'basic' | 'extensive',
    unsafeNoFsync: bool('unsafe-no-fsync'),
    clientTLS: {
      certFile: str('cert-file'),
      keyFile: str('key-file'),
      trustedCAFile: str('trusted-ca-file'),
      clientCertAuth: bool('client-cert-auth'),
      autoTLS: bool('auto-tls'),
      crlFile: str('client-crl-file'),
      allowedHostname: str('client-cert-allowed-hostname'),
    },
    peerTLS: {
      certFile: str('peer-cert-file'),
      keyFile: str('peer-key-file'),
      trustedCAFile: str('peer-trusted-ca-file'),
      clientCertAuth: bool('peer-client-cert-auth'),
      autoTLS: bool('peer-auto-tls'),
      crlFile: str('peer-crl-file'),
      allowedHostname: str('peer-cert-allowed-hostname'),
      allowedCN: str('peer-cert-allowed-cn'),
      skipClientSANVerify: bool('experimental-peer-skip-client-san-verification'),
    },
    cipherSuites: splitList(str('cipher-suites')),
    cors: list('cors'),
    hostWhitelist: list('host-whitelist'),
    values,
  };
}

/** etcd's ErrConflictBootstrapFlags. */
export const CONFLICT_BOOTSTRAP_FLAGS = 'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"';

/** etcd warns above this --max-request-bytes (etcdserver's recommendedMaxRequestBytes). */
const RECOMMENDED_MAX_REQUEST_BYTES = 10 * 1024 * 1024;

/** A list of strings as Go's %q prints it: ["a" "b"]. */
const goList = (l: string[]): string => `[${l.map((x) => JSON.stringify(x)).join(' ')}]`;

/** etcd 3.4's rules for --log-output (deprecated) against --log-outputs, and for the outputs each logger takes. */
function chooseLogOutputs(deprecated: string[], outputs: string[], logger: 'capnslog' | 'zap', warnings: string[]): string[] {
  let chosen = outputs;
  if (deprecated.length > outputs.length) {
    warnings.push("'--log-output' flag has been deprecated! Please use '--log-outputs'!");
    chosen = deprecated;
  } else if (deprecated.length === outputs.length) {
    if (deprecated.length > 1) throw new ConfigError("both '--log-output' and '--log-outputs' are set; only set '--log-outputs'");
    if (deprecated.length < 1) throw new ConfigError("either '--log-output' or '--log-outputs' flag must be set");
    if (deprecated[0] === outputs[0] && deprecated[0] !== 'default') {
      throw new ConfigError(`'--log-output=${goList(deprecated)}' and '--log-outputs=${goList(outputs)}' are incompatible; only set --log-outputs`);
    }
    // As etcd 3.4: a lone --log-output is only warned about; --log-outputs decides.
    if (deprecated[0] !== 'default') warnings.push(`Deprecated '--log-output' flag is set to ${goList(deprecated)}; please use '--log-outputs' flag`);
  }
  if (logger === 'capnslog') {
    if (chosen.length !== 1) throw new ConfigError(`--logger=capnslog supports only 1 value in '--log-outputs', got ${goList(chosen)}`);
    if (!['default', 'stderr', 'stdout'].includes(chosen[0])) {
      throw new ConfigError(`unknown log-output "${chosen[0]}" (only supports "default", "stderr", "stdout")`);
    }
    return chosen;
  }
  if (chosen.length > 1 && chosen.includes('default')) throw new ConfigError('multi logoutput for "default" is not supported yet');
  if (chosen.includes('systemd/journal')) throw new ConfigError('--log-outputs=systemd/journal is not supported by this server; use stderr (journald collects it under systemd)');
  if (chosen.some((o) => o === '')) throw new ConfigError('--log-outputs: an empty output path');
  return chosen;
}

/** capnslog's level names and numbers (CRITICAL -1 … TRACE 5), as its ParseLevel takes them. */
export const CAPNSLOG_LEVELS: Record<string, number> = {
  CRITICAL: -1, C: -1, ERROR: 0, '0': 0, E: 0, WARNING: 1, '1': 1, W: 1, NOTICE: 2, '2': 2, N: 2, INFO: 3, '3': 3, I: 3, DEBUG: 4, '4': 4, D: 4, TRACE: 5, '5': 5, T: 5,
};

/** --log-package-levels as capnslog parses it; as etcd, a malformed value is warned about and the defaults kept. */
function parsePackageLevels(conf: string, logger: 'capnslog' | 'zap', warnings: string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (conf === '') return out;
  if (logger !== 'capnslog') {
    // etcd 3.4 with --logger=zap warns and has no per-package levels.
    warnings.push(`Deprecated '--log-package-levels=${conf}' flag is set; it applies to --logger=capnslog only and is ignored with --logger=zap`);
    return out;
  }
  for (const setting of conf.split(',')) {
    const kv = setting.split('=');
    let why: string | undefined;
    if (kv.length !== 2) why = 'oddly structured `pkg=level` option: ' + setting;
    else if (!(kv[1] in CAPNSLOG_LEVELS)) why = 'couldn\'t parse log level ' + kv[1];
    if (why) {
      warnings.push(`couldn't parse log level string: ${why}, continuing with default levels`);
      return new Map();
    }
    out.set(kv[0], CAPNSLOG_LEVELS[kv[1]]);
  }
  return out;
}

/** The auto compaction settings, refused at start as etcd refuses them when the retention does not parse. */
function autoCompactionOf(mode: CompactionMode, retention: string): { mode: CompactionMode; retention: number } {
  try {
    return { mode, retention: parseCompactionRetention(mode, retention) };
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** etcd's watch progress interval: none (≤ 0) is the default, 10 minutes; under 100 ms is 100 ms, with etcd's warning. */
function watchProgressInterval(raw: string, warnings: string[]): number {
  const ms = goParseDuration(raw);
  if (ms <= 0) return 10 * 60 * 1000;
  if (ms < 100) {
    warnings.push('adjusting watch progress notify interval to minimum period 100ms');
    return 100;
  }
  return ms;
}
