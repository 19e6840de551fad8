/**
 * The `etcd:` section. As ct does, it becomes `etcd-member.service` enabled with the drop-in
 * `20-clct-etcd-member.conf`, which sets `ETCD_IMAGE_TAG` from `version` and runs
 * `/usr/lib/coreos/etcd-wrapper $ETCD_OPTS` with one `--flag="value"` per option.
 *
 * ct knew the options of etcd 2.3, 3.0, 3.1, 3.2 and 3.3 (one set per release, chosen by `version`); this table
 * carries them on to etcd 3.4, each with the release that introduced it (and removed it, for the few 3.4 dropped), so
 * that a config pinned to an older `version` is checked against what that etcd understands. The server's own option
 * table (server/config/options.ts) is the authority for 3.4: every option it defines is accepted here too (those ct's
 * table does not name are derived from it), so the two cannot drift apart.
 *
 * As ct does (its `isZero`), options set to their type's zero value — false, 0 or "" — are left out of the drop-in,
 * so etcd's own default applies.
 */
import { OPTIONS as SERVER_OPTIONS, type OptionSpec } from '../../server/config/options';
import { bool, int, object, oneOf, posOf, refine, str, type Decoder, type Positioned } from '../decode';
import type { Report } from '../diagnostics';
import { hasTemplate } from '../platforms';
import { checkUrl, goQuote, HTTP_SCHEMES, semver, url, urlList, type Semver } from '../validate';
import type { Position } from '../yaml-positions';
import type { TranslateContext } from './context';
import { renderWrapperDropin, type FlagArg } from './service-dropin';

type Release = '2.3' | '3.0' | '3.1' | '3.2' | '3.3' | '3.4';
const RELEASES: readonly Release[] = ['2.3', '3.0', '3.1', '3.2', '3.3', '3.4'];
const LATEST: Release = '3.4';

const CLIENT_SCHEMES = ['http', 'https', 'unix', 'unixs'] as const;

const nonNegative: Decoder<number> = refine(int, (v, report, path, pos) => {
  if (v < 0) report.error(`${path}: must not be negative`, pos);
  return v >= 0;
});

const GO_DURATION = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;

/** A Go duration such as "30s" or "1h30m", as etcd's duration flags take. */
const duration: Decoder<string> = refine(str, (v, report, path, pos) => {
  if (v !== '0' && !GO_DURATION.test(v)) report.error(`${path}: "${v}" is not a duration (e.g. "5s", "1h30m")`, pos);
  return v === '0' || GO_DURATION.test(v);
});

/** auto_compaction_retention: hours as a number, or a duration (etcd 3.2+). */
const retention: Decoder<string> = refine(str, (v, report, path, pos) => {
  const ok = /^\d+(?:\.\d+)?$/.test(v) || GO_DURATION.test(v);
  if (!ok) report.error(`${path}: "${v}" is neither a number of hours nor a duration`, pos);
  return ok;
});

/** `name=url,name=url,...` — a member may appear with several peer URLs. */
export const initialCluster: Decoder<string> = refine(str, (v, report, path, pos) => {
  let ok = true;
  for (const entry of v.split(',')) {
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1) {
      report.error(`${path}: "${entry}" is not of the form name=url (in "${v}")`, pos);
      ok = false;
      continue;
    }
    ok = checkUrl(entry.slice(eq + 1).trim(), HTTP_SCHEMES, report, path, pos) && ok;
  }
  return ok;
});

const authToken: Decoder<string> = refine(str, (v, report, path, pos) => {
  const kind = v.split(',')[0];
  if (kind !== 'simple' && kind !== 'jwt') report.error(`${path}: must be "simple" or "jwt,<options>", found "${v}"`, pos);
  return kind === 'simple' || kind === 'jwt';
});

interface EtcdOption {
  key: string;
  decode: Decoder<string | number | boolean>;
  since: Release;
  /** First release without the option. */
  removedIn?: Release;
  /** Still accepted, with this advice as a warning. */
  deprecated?: string;
}

const o = (key: string, decode: Decoder<string | number | boolean>, since: Release, extra: Partial<EtcdOption> = {}): EtcdOption => ({
  key,
  decode,
  since,
  ...extra,
});

/** In ct's order (the order of the flags in the drop-in), then the options of later releases. */
const CT_OPTIONS: readonly EtcdOption[] = [
  o('name', str, '2.3'),
  o('data_dir', str, '2.3'),
  o('wal_dir', str, '2.3'),
  o('snapshot_count', nonNegative, '2.3'),
  o('heartbeat_interval', nonNegative, '2.3'),
  o('election_timeout', nonNegative, '2.3'),
  o('enable_pprof', bool, '2.3'),
  o('listen_peer_urls', urlList(HTTP_SCHEMES), '2.3'),
  o('listen_client_urls', urlList(CLIENT_SCHEMES), '2.3'),
  o('max_snapshots', nonNegative, '2.3'),
  o('max_wals', nonNegative, '2.3'),
  o('cors', str, '2.3'),
  o('initial_advertise_peer_urls', urlList(HTTP_SCHEMES), '2.3'),
  o('initial_cluster', initialCluster, '2.3'),
  o('initial_cluster_state', oneOf(['new', 'existing']), '2.3'),
  o('initial_cluster_token', str, '2.3'),
  o('advertise_client_urls', urlList(CLIENT_SCHEMES), '2.3'),
  o('discovery', url(HTTP_SCHEMES), '2.3'),
  o('discovery_srv', str, '2.3'),
  o('discovery_fallback', oneOf(['exit', 'proxy']), '2.3'),
  o('discovery_proxy', url(HTTP_SCHEMES), '2.3'),
  o('strict_reconfig_check', bool, '2.3'),
  o('auto_compaction_retention', retention, '3.0'),
  o('proxy', oneOf(['on', 'off', 'readonly']), '2.3'),
  o('proxy_failure_wait', nonNegative, '2.3'),
  o('proxy_refresh_interval', nonNegative, '2.3'),
  o('proxy_dial_timeout', nonNegative, '2.3'),
  o('proxy_write_timeout', nonNegative, '2.3'),
  o('proxy_read_timeout', nonNegative, '2.3'),
  o('ca_file', str, '2.3', { removedIn: '3.4', deprecated: 'ca_file is obsoleted by trusted_ca_file and client_cert_auth' }),
  o('cert_file', str, '2.3'),
  o('key_file', str, '2.3'),
  o('client_cert_auth', bool, '2.3'),
  o('trusted_ca_file', str, '2.3'),
  o('auto_tls', bool, '3.0'),
  o('peer_ca_file', str, '2.3', {
    removedIn: '3.4',
    deprecated: 'peer_ca_file is obsoleted by peer_trusted_ca_file and peer_client_cert_auth',
  }),
  o('peer_cert_file', str, '2.3'),
  o('peer_key_file', str, '2.3'),
  o('peer_client_cert_auth', bool, '2.3'),
  o('peer_trusted_ca_file', str, '2.3'),
  o('peer_auto_tls', bool, '3.0'),
  o('debug', bool, '2.3', { deprecated: 'debug is deprecated since etcd 3.4; use log_level: debug' }),
  o('log_package_levels', str, '2.3', { deprecated: 'log_package_levels is deprecated since etcd 3.4; use log_level' }),
  o('force_new_cluster', bool, '2.3'),
  o('metrics', oneOf(['basic', 'extensive']), '3.1'),
  o('log_output', str, '3.1', { deprecated: 'log_output is deprecated since etcd 3.4; use log_outputs' }),
  o('auth_token', authToken, '3.1'),
  o('quota_backend_bytes', nonNegative, '3.0'),
  o('max_txn_ops', nonNegative, '3.1'),
  o('max_request_bytes', nonNegative, '3.2'),
  o('grpc_keepalive_min_time', duration, '3.2'),
  o('grpc_keepalive_interval', duration, '3.2'),
  o('grpc_keepalive_timeout', duration, '3.2'),
  o('enable_v2', bool, '3.2'),
  o('listen_metrics_urls', urlList(HTTP_SCHEMES), '3.3'),
  o('auto_compaction_mode', oneOf(['periodic', 'revision']), '3.3'),
  o('cipher_suites', str, '3.3'),
  o('client_crl_file', str, '3.3'),
  o('peer_crl_file', str, '3.3'),
  o('peer_cert_allowed_cn', str, '3.3'),
  o('host_whitelist', str, '3.3'),
  o('experimental_initial_corrupt_check', bool, '3.3'),
  o('experimental_corrupt_check_time', duration, '3.3'),
  o('experimental_enable_v2v3', str, '3.3'),
  o('peer_cert_allowed_hostname', str, '3.4'),
  o('discovery_srv_name', str, '3.4'),
  o('initial_election_tick_advance', bool, '3.4'),
  o('pre_vote', bool, '3.4'),
  o('backend_batch_limit', nonNegative, '3.4'),
  o('backend_batch_interval', duration, '3.4'),
  o('bcrypt_cost', nonNegative, '3.4'),
  o('logger', oneOf(['zap', 'capnslog']), '3.4'),
  o('log_outputs', str, '3.4'),
  o('log_level', oneOf(['debug', 'info', 'warn', 'error', 'panic', 'fatal']), '3.4'),
  o('experimental_backend_bbolt_freelist_type', oneOf(['map', 'array']), '3.4'),
  o('experimental_enable_lease_checkpoint', bool, '3.4'),
  o('experimental_compaction_batch_limit', nonNegative, '3.4'),
  o('experimental_peer_skip_client_san_verification', bool, '3.4'),
  o('experimental_watch_progress_notify_interval', duration, '3.4'),
  // Options the server accepts beyond ct's etcd 3.4 list (some came with etcd 3.5); accepted from 3.4, the server's
  // release.
  o('config_file', str, '3.4'),
  o('experimental_snapshot_catchup_entries', nonNegative, '3.4'),
  o('client_cert_allowed_hostname', str, '3.4'),
  o('auth_token_ttl', nonNegative, '3.4'),
  o('max_concurrent_streams', nonNegative, '3.4'),
  o('enable_grpc_gateway', bool, '3.4'),
  o('experimental_enable_lease_checkpoint_persist', bool, '3.4'),
  o('experimental_warning_apply_duration', duration, '3.4'),
  o('unsafe_no_fsync', bool, '3.4'),
];

/** The CLC key of a server option: its flag with underscores. */
const clcKey = (flag: string): string => flag.replace(/-/g, '_');

/** A decoder for the value type of a server option that ct's table does not name. */
function decoderFor(spec: OptionSpec): Decoder<string | number | boolean> {
  switch (spec.kind) {
    case 'bool':
      return bool;
    case 'uint':
      return nonNegative;
    case 'int':
      return int;
    case 'urls':
      return urlList(CLIENT_SCHEMES);
    case 'enum':
      return oneOf(spec.values ?? []);
    case 'string':
    case 'strings':
      return str;
  }
}

/** ct's table, then every option of the server's table that it lacks (none today; any the server gains later). */
export const ETCD_OPTIONS: readonly EtcdOption[] = [
  ...CT_OPTIONS,
  ...SERVER_OPTIONS.filter((spec) => !CT_OPTIONS.some((opt) => opt.key === clcKey(spec.name))).map((spec) =>
    o(clcKey(spec.name), decoderFor(spec), LATEST),
  ),
];

const SERVER_DEFAULTS = new Map(SERVER_OPTIONS.map((spec) => [clcKey(spec.name), spec.default]));

/** ct's `isZero`: the zero value of the option's Go type. */
function isZero(value: unknown): boolean {
  return value === false || value === 0 || value === '' || (Array.isArray(value) && value.length === 0);
}

const isStringOption = (opt: EtcdOption): boolean => opt.decode !== bool && opt.decode !== nonNegative;

/** `""` is a string option's zero value: accepted (and left out) whatever the option's format, as ct does. */
function emptyOr(d: Decoder<string | number | boolean>): Decoder<string | number | boolean> {
  return (node, report, path) => (node.kind === 'scalar' && node.value === '' ? '' : d(node, report, path));
}

const fields: Record<string, Decoder<unknown>> = { version: semver };
for (const opt of ETCD_OPTIONS) fields[opt.key] = isStringOption(opt) ? emptyOr(opt.decode) : opt.decode;

export type EtcdConfig = { version?: Semver } & Record<string, unknown> & Positioned;

export const etcdSchema: Decoder<EtcdConfig> = object(fields) as Decoder<EtcdConfig>;

const releaseIndex = (r: Release): number => RELEASES.indexOf(r);

/** The release whose options apply: the version's major.minor, capped at the newest known one. */
function releaseFor(v: Semver | undefined, report: Report, pos: Positioned): Release | undefined {
  if (!v) return LATEST;
  const at = posOf(pos, 'version');
  if (v.major < 2 || (v.major === 2 && v.minor < 3)) {
    report.error(`etcd.version: etcd ${v.text} is too old (2.3.0 or newer)`, at);
    return undefined;
  }
  if (v.major > 3) {
    report.error(`etcd.version: etcd ${v.text} is too new (major version 3 at most)`, at);
    return undefined;
  }
  if (v.major === 2) {
    if (v.minor > 3) report.warn(`etcd.version: etcd ${v.text} is newer than 2.3; only the options of 2.3 are accepted`, at);
    return '2.3';
  }
  const known = RELEASES.find((r) => r === `3.${v.minor}`);
  if (known) return known;
  report.warn(`etcd.version: etcd ${v.text} is newer than ${LATEST}; only the options of ${LATEST} are accepted`, at);
  return LATEST;
}

/** etcd refuses an election timeout below 5 heartbeats (defaults 100 ms and 1000 ms). */
function checkTimeouts(etcd: EtcdConfig, report: Report): void {
  // 0 is left out of the drop-in, so the default applies.
  const hb = typeof etcd.heartbeat_interval === 'number' && etcd.heartbeat_interval !== 0 ? etcd.heartbeat_interval : 100;
  const et = typeof etcd.election_timeout === 'number' && etcd.election_timeout !== 0 ? etcd.election_timeout : 1000;
  if (et < 5 * hb) {
    const key = etcd.election_timeout !== undefined && etcd.election_timeout !== 0 ? 'election_timeout' : 'heartbeat_interval';
    report.error(`etcd.${key}: election_timeout (${et} ms) must be at least 5 times heartbeat_interval (${hb} ms)`, posOf(etcd, key));
  }
}

/** A bootstrapping member must be named in initial_cluster (unless templating or %m hide the names). */
function checkMemberListed(etcd: EtcdConfig, report: Report): void {
  const name = etcd.name;
  const cluster = etcd.initial_cluster;
  if (typeof name !== 'string' || typeof cluster !== 'string' || name === '' || cluster === '' || etcd.discovery) return;
  if (hasTemplate(name) || /%/.test(name) || /%|\{/.test(cluster)) return;
  const names = cluster.split(',').map((e) => e.slice(0, e.indexOf('=')).trim());
  if (!names.includes(name)) {
    report.warn(`etcd.name: member "${name}" is not in initial_cluster (${names.join(', ')})`, posOf(etcd, 'name'));
  }
}

/** etcd takes one way to bootstrap: initial_cluster, discovery or discovery_srv (its ErrConflictBootstrapFlags). */
function checkBootstrapMethod(etcd: EtcdConfig, report: Report): void {
  const set = ['initial_cluster', 'discovery', 'discovery_srv'].filter((k) => typeof etcd[k] === 'string' && etcd[k] !== '');
  for (const k of set.slice(1)) {
    report.error(`etcd.${k}: etcd refuses ${k} with ${set[0]}: multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"`, posOf(etcd, k));
  }
}

/** A zero value is left out; say so when that does not leave the option at the value written. */
function warnIfDefaultDiffers(key: string, value: unknown, path: string, pos: Position, report: Report): void {
  const def = SERVER_DEFAULTS.get(key);
  if (def === undefined || isZero(def)) return;
  const shown = typeof def === 'string' ? goQuote(def) : Array.isArray(def) ? goQuote(def.join(',')) : String(def);
  report.warn(`${path}: ${typeof value === 'string' ? '""' : String(value)} is a zero value, which ct leaves out, so etcd's default (${shown}) applies`, pos);
}

export function translateEtcd(etcd: EtcdConfig, ctx: TranslateContext): void {
  const { report } = ctx;
  const release = releaseFor(etcd.version, report, etcd);
  if (release === undefined) return;
  const args: FlagArg[] = [];
  for (const opt of ETCD_OPTIONS) {
    const value = etcd[opt.key];
    if (value === undefined) continue;
    const pos = posOf(etcd, opt.key);
    const path = `etcd.${opt.key}`;
    if (releaseIndex(opt.since) > releaseIndex(release) || (opt.removedIn && releaseIndex(opt.removedIn) <= releaseIndex(release))) {
      const span = opt.removedIn ? `etcd ${opt.since} to ${RELEASES[releaseIndex(opt.removedIn) - 1]}` : `etcd ${opt.since} and later`;
      report.error(`${path}: not an option of etcd ${release} (it exists in ${span})`, pos);
      continue;
    }
    if (opt.deprecated) report.warn(`${path}: ${opt.deprecated}`, pos);
    if (isZero(value)) {
      warnIfDefaultDiffers(opt.key, value, path, pos, report);
      continue;
    }
    args.push({ flag: opt.key.replace(/_/g, '-'), value: value as string | number | boolean, path, pos });
  }
  checkTimeouts(etcd, report);
  checkMemberListed(etcd, report);
  checkBootstrapMethod(etcd, report);
  if (typeof etcd.config_file === 'string' && etcd.config_file !== '' && args.length > 1) {
    report.warn('etcd.config_file: etcd ignores its other options (flags and ETCD_* variables) when given a config file', posOf(etcd, 'config_file'));
  }
  const env = etcd.version ? [`ETCD_IMAGE_TAG=v${etcd.version.text}`] : [];
  const dropin = renderWrapperDropin({ name: '20-clct-etcd-member.conf', exec: '/usr/lib/coreos/etcd-wrapper $ETCD_OPTS', env, args, pos: posOf(etcd) }, ctx);
  if (dropin === undefined) return;
  ctx.out.addUnit({ name: 'etcd-member.service', enabled: true, dropins: [dropin], at: dropin.at }, posOf(etcd));
}
