/**
 * The options of the `etcd` command: etcd 3.4's flags, with their defaults. Each is settable as `--name value`,
 * `--name=value`, the environment variable ETCD_NAME (dashes as underscores, upper case), or the key `name` (or
 * `name` with underscores, as Container Linux configs write it) in the YAML file given by --config-file.
 *
 * `supported: false` marks etcd options this server does not act on: giving one a value other than its default stops
 * the start with a "not supported" error (a flag accepted and ignored is a trap). `tolerated` names the few such
 * options that only warn instead, and says why that is safe. test/config/flags.test.ts fails for an option that is
 * neither read into the ServerConfig nor marked unsupported.
 */
import { goParseDuration } from '../pkg/go-compat';

/** `strings`: a comma-separated list (or a YAML list in the config file), as etcd's UniqueStringsValue: unique. */
/** `int`: a signed integer (etcd's Int64Var), where a negative value means something (a disabled quota). */
export type OptionKind = 'string' | 'uint' | 'int' | 'bool' | 'urls' | 'enum' | 'strings';

export interface OptionSpec {
  name: string;
  kind: OptionKind;
  default: string | number | boolean | string[];
  help: string;
  values?: string[];
  supported?: boolean;
  /** For an unsupported option: why a non-default value only warns (etcd's own sample config sets it, say). */
  tolerated?: string;
  /** What is wrong with a `strings` value, in etcd's words (undefined: nothing). */
  check?: (list: string[]) => string | undefined;
  /** What is wrong with a `string` value (a Go duration, say), in Go's flag words (undefined: nothing). */
  validate?: (value: string) => string | undefined;
}

/** A Go time.Duration flag's value: Go's flag package says "parse error" for one that does not parse. */
function goDurationProblem(v: string): string | undefined {
  try {
    goParseDuration(v);
    return undefined;
  } catch {
    return 'parse error';
  }
}

const s = (name: string, def: string, help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'string', default: def, help, ...extra });
const u = (name: string, def: number, help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'uint', default: def, help, ...extra });
const i = (name: string, def: number, help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'int', default: def, help, ...extra });
const b = (name: string, def: boolean, help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'bool', default: def, help, ...extra });
const urls = (name: string, def: string[], help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'urls', default: def, help, ...extra });
const ss = (name: string, def: string[], help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'strings', default: def, help, ...extra });
const e = (name: string, def: string, values: string[], help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, kind: 'enum', default: def, values, help, ...extra });
const unsupported = { supported: false };

export const OPTIONS: OptionSpec[] = [
  s('config-file', '', 'Path to the server configuration file (YAML). Other flags and environment variables are then ignored.'),
  // member
  s('name', 'default', 'Human-readable name for this member.'),
  s('data-dir', '', 'Path to the data directory (default: ${name}.etcd).'),
  s('wal-dir', '', 'Path to the dedicated WAL directory (default: inside the data directory).'),
  u('snapshot-count', 100000, 'Number of committed transactions to trigger a snapshot to disk.'),
  u('experimental-snapshot-catchup-entries', 5000, 'Number of entries for a slow follower to catch up after compacting the raft storage entries.'),
  u('heartbeat-interval', 100, 'Time (in milliseconds) of a heartbeat interval.'),
  u('election-timeout', 1000, 'Time (in milliseconds) for an election to timeout.'),
  u('max-request-bytes', 1.5 * 1024 * 1024, 'Maximum client request size in bytes the server will accept.'),
  urls('listen-peer-urls', ['http://localhost:2380'], 'List of URLs to listen on for peer traffic.'),
  urls('listen-client-urls', ['http://localhost:2379'], 'List of URLs to listen on for client traffic.'),
  urls('listen-metrics-urls', [], 'List of additional URLs to listen on that will respond to both the /metrics and /health endpoints.'),
  u('max-snapshots', 5, 'Maximum number of snapshot files to retain (0 is unlimited).'),
  u('max-wals', 5, 'Maximum number of wal files to retain (0 is unlimited).'),
  b('pre-vote', true, 'Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.'),
  b('strict-reconfig-check', true, 'Reject reconfiguration requests that would cause quorum loss.'),
  b('enable-v2', true, 'Accept etcd V2 client requests.'),
  b('initial-election-tick-advance', true, 'Whether to fast-forward initial election ticks on boot for faster election.'),
  // clustering
  urls('initial-advertise-peer-urls', ['http://localhost:2380'], "List of this member's peer URLs to advertise to the rest of the cluster."),
  s('initial-cluster', '', 'Initial cluster configuration for bootstrapping (name=peerURL,...; default: ${name}=${initial-advertise-peer-urls}).'),
  e('initial-cluster-state', 'new', ['new', 'existing'], "Initial cluster state ('new' or 'existing')."),
  s('initial-cluster-token', 'etcd-cluster', 'Initial cluster token for the etcd cluster during bootstrap.'),
  urls('advertise-client-urls', ['http://localhost:2379'], "List of this member's client URLs to advertise to the public."),
  s('discovery', '', 'Discovery URL used to bootstrap the cluster.'),
  e('discovery-fallback', 'proxy', ['exit', 'proxy'], 'Expected behavior when discovery services fails.'),
  s('discovery-proxy', '', 'HTTP proxy to use for traffic to discovery service.'),
  s('discovery-srv', '', 'DNS srv domain used to bootstrap the cluster.'),
  s('discovery-srv-name', '', 'Suffix to the dns srv name queried when bootstrapping.'),
  ss('cors', ['*'], 'Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).', { check: corsProblem }),
  ss('host-whitelist', ['*'], 'Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).'),
  // proxy
  e('proxy', 'off', ['off', 'readonly', 'on'], "Proxy mode setting ('off', 'readonly' or 'on').", unsupported),
  u('proxy-failure-wait', 5000, 'Time (in milliseconds) an endpoint will be held in a failed state.', unsupported),
  u('proxy-refresh-interval', 30000, 'Time (in milliseconds) of the endpoints refresh interval.', unsupported),
  u('proxy-dial-timeout', 1000, 'Time (in milliseconds) for a dial to timeout.', unsupported),
  u('proxy-write-timeout', 5000, 'Time (in milliseconds) for a write to timeout.', unsupported),
  u('proxy-read-timeout', 0, 'Time (in milliseconds) for a read to timeout.', unsupported),
  // security
  s('cert-file', '', 'Path to the client server TLS cert file.'),
  s('key-file', '', 'Path to the client server TLS key file.'),
  b('client-cert-auth', false, 'Enable client cert authentication.'),
  s('client-crl-file', '', 'Path to the client certificate revocation list file.'),
  s('client-cert-allowed-hostname', '', 'Allowed TLS hostname for client cert authentication.'),
  s('trusted-ca-file', '', 'Path to the client server TLS trusted CA cert file.'),
  b('auto-tls', false, 'Client TLS using generated certificates.'),
  s('peer-cert-file', '', 'Path to the peer server TLS cert file.'),
  s('peer-key-file', '', 'Path to the peer server TLS key file.'),
  b('peer-client-cert-auth', false, 'Enable peer client cert authentication.'),
  s('peer-trusted-ca-file', '', 'Path to the peer server TLS trusted CA file.'),
  s('peer-cert-allowed-cn', '', 'Required CN for client certs connecting to the peer endpoint.'),
  s('peer-cert-allowed-hostname', '', 'Allowed TLS hostname for inter peer authentication.'),
  b('peer-auto-tls', false, 'Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.'),
  s('peer-crl-file', '', 'Path to the peer certificate revocation list file.'),
  s('cipher-suites', '', 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).'),
  b('experimental-peer-skip-client-san-verification', false, 'Skip verification of SAN field in client certificate for peer connections.'),
  // auth
  s('auth-token', 'simple', 'Specify auth token specific options.'),
  u('bcrypt-cost', 10, 'Specify bcrypt algorithm cost factor for auth password hashing.'),
  u('auth-token-ttl', 300, 'The lifetime in seconds of the auth token.'),
  // logging
  s('logger', 'capnslog', "Specify 'zap' for structured logging or 'capnslog'."), // checked as etcd: at start, exit 1
  ss('log-output', ['default'], "[TO BE DEPRECATED IN v3.5] use '--log-outputs'."),
  ss('log-outputs', ['default'], "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."),
  b('debug', false, "[TO BE DEPRECATED IN v3.5] Enable debug-level logging for etcd. Use '--log-level=debug' instead."),
  e('log-level', 'info', ['debug', 'info', 'warn', 'error', 'panic', 'fatal'], 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.'),
  s('log-package-levels', '', "[TO BE DEPRECATED IN v3.5] Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG')."),
  // v3, backend and unsafe
  i('quota-backend-bytes', 0, 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).'),
  s('backend-batch-interval', '', 'BackendBatchInterval is the maximum time before commit the backend transaction.', unsupported),
  u('backend-batch-limit', 0, 'BackendBatchLimit is the maximum operations before commit the backend transaction.', unsupported),
  u('max-txn-ops', 128, 'Maximum number of operations permitted in a transaction.'),
  s('grpc-keepalive-min-time', '5s', 'Minimum interval duration that a client should wait before pinging server.', unsupported),
  s('grpc-keepalive-interval', '2h0m0s', 'Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).'),
  s('grpc-keepalive-timeout', '20s', 'Additional duration of wait before closing a non-responsive connection (0 to disable).'),
  u('max-concurrent-streams', 4294967295, 'Maximum concurrent streams that each client can open at a time.'),
  // etcd's own sample config (etcd.conf.yml.sample) sets these three: it must start as etcd does (TestEtcdExampleConfig).
  s('auto-compaction-retention', '0', 'Auto compaction retention for mvcc key value store. 0 means disable auto compaction.'),
  e('auto-compaction-mode', 'periodic', ['periodic', 'revision'], "Interpret 'auto-compaction-retention' one of: periodic|revision."),
  b('enable-pprof', false, 'Enable runtime profiling data via HTTP server.', { ...unsupported, tolerated: 'a diagnostic: /debug/pprof/ answers 404' }),
  e('metrics', 'basic', ['basic', 'extensive'], "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."),
  b('enable-grpc-gateway', true, 'Enable GRPC gateway.', unsupported),
  b('experimental-initial-corrupt-check', false, 'Enable to check data corruption before serving any client/peer traffic.'),
  s('experimental-corrupt-check-time', '0s', 'Duration of time between cluster corruption check passes.', unsupported),
  s('experimental-enable-v2v3', '', 'v3 prefix for serving emulated v2 state.', unsupported),
  s('experimental-backend-bbolt-freelist-type', 'array', "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types)", unsupported),
  b('experimental-enable-lease-checkpoint', false, 'Enable to persist lease remaining TTL to prevent indefinite auto-renewal of long lived leases.'),
  b('experimental-enable-lease-checkpoint-persist', false, 'Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.'),
  u('experimental-compaction-batch-limit', 1000, 'Sets the maximum revisions deleted in each compaction batch.', unsupported),
  s('experimental-watch-progress-notify-interval', '10m0s', 'Duration of periodic watch progress notifications.', { validate: goDurationProblem }),
  s('experimental-warning-apply-duration', '100ms', 'Time duration after which a warning is generated if request takes more time.', unsupported),
  b('unsafe-no-fsync', false, 'Disables fsync, unsafe, will cause data loss.'),
  b('force-new-cluster', false, 'Force to create a new one member cluster.', unsupported),
];

/**
 * etcd's flags from before v3 that etcd 3.4 itself still accepts (as boolean flags, taking no value argument) and
 * ignores with a warning; so do we. Any other unknown flag is refused.
 */
export const IGNORED_OPTIONS = [
  'cluster-active-size',
  'cluster-remove-delay',
  'cluster-sync-interval',
  'config',
  'force',
  'max-result-buffer',
  'max-retry-attempts',
  'peer-heartbeat-interval',
  'peer-election-timeout',
  'retry-interval',
  'snapshot',
  'v',
  'vv',
];

/** etcd's --cors values: "*", or URLs as etcd's types.NewURLs wants them (scheme, host:port, no path). */
function corsProblem(list: string[]): string | undefined {
  if (list.length === 1 && list[0] === '*') return undefined;
  for (const o of list) {
    const why = originProblem(o.trim());
    if (why) return why;
  }
  return undefined;
}

function originProblem(u: string): string | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(u);
  const scheme = m?.[1].toLowerCase();
  if (!m || !['http', 'https', 'unix', 'unixs'].includes(scheme!)) return `URL scheme must be http, https, unix, or unixs: ${u}`;
  if (!/^(\[[^\]]*\]|[^:\[\]]*):[0-9]*$/.test(m[2].replace(/^[^@]*@/, ''))) return `URL address does not have the form "host:port": ${u}`;
  if (m[3] !== '') return `URL must not contain a path: ${u}`;
  return undefined;
}

export const OPTIONS_BY_NAME = new Map(OPTIONS.map((o) => [o.name, o]));

export function envName(option: string): string {
  return 'ETCD_' + option.toUpperCase().replace(/-/g, '_');
}
