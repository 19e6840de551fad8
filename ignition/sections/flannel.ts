/**
 * The `flannel:` section, as ct makes it: `flanneld.service` enabled with the drop-in `20-clct-flannel.conf`, which
 * sets `FLANNEL_IMAGE_TAG` from `version`, runs `/usr/lib/coreos/flannel-wrapper $FLANNEL_OPTS` with the options as
 * flags, and — given `network_config` — first writes that JSON to etcd with `etcdctl set /coreos.com/network/config`.
 */
import { bool, object, posOf, refine, str, type Decoder, type ObjectOf } from '../decode';
import { Report } from '../diagnostics';
import { expandTemplates } from '../platforms';
import { goQuote, HTTP_SCHEMES, semver, urlList, type Semver } from '../validate';
import type { TranslateContext } from './context';
import { renderWrapperDropin, type FlagArg } from './service-dropin';

interface FlannelOption {
  key: string;
  flag: string;
  decode: Decoder<string | boolean>;
  /** Minor version of flannel 0.x that introduced it. */
  since: number;
}

export const FLANNEL_OPTIONS: readonly FlannelOption[] = [
  { key: 'etcd_username', flag: 'etcd-username', decode: str, since: 6 },
  { key: 'etcd_password', flag: 'etcd-password', decode: str, since: 6 },
  { key: 'etcd_endpoints', flag: 'etcd-endpoints', decode: urlList(HTTP_SCHEMES), since: 5 },
  { key: 'etcd_cafile', flag: 'etcd-cafile', decode: str, since: 5 },
  { key: 'etcd_certfile', flag: 'etcd-certfile', decode: str, since: 5 },
  { key: 'etcd_keyfile', flag: 'etcd-keyfile', decode: str, since: 5 },
  { key: 'etcd_prefix', flag: 'etcd-prefix', decode: str, since: 5 },
  { key: 'ip_masq', flag: 'ip-masq', decode: bool, since: 5 },
  { key: 'subnet_file', flag: 'subnet-file', decode: str, since: 5 },
  { key: 'interface', flag: 'iface', decode: str, since: 5 },
  { key: 'public_ip', flag: 'public-ip', decode: str, since: 5 },
  { key: 'kube_subnet_mgr', flag: 'kube-subnet-mgr', decode: bool, since: 7 },
];

const LATEST_MINOR = 7;

const networkConfig: Decoder<string> = refine(str, (v, report, path, pos) => {
  try {
    const parsed: unknown = JSON.parse(v);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return true;
  } catch {
    // reported below
  }
  report.error(`${path}: must be a JSON object (flannel's network config)`, pos);
  return false;
});

const fields: Record<string, Decoder<unknown>> = { version: semver, network_config: networkConfig };
for (const opt of FLANNEL_OPTIONS) fields[opt.key] = opt.decode;

export type FlannelConfig = ObjectOf<Record<string, Decoder<unknown>>> & { version?: Semver; network_config?: string };

export const flannelSchema = object(fields) as Decoder<FlannelConfig>;

export function translateFlannel(flannel: FlannelConfig, ctx: TranslateContext): void {
  const { report } = ctx;
  const v = flannel.version;
  let minor = LATEST_MINOR;
  if (v) {
    if (v.major !== 0 || v.minor < 5) {
      report.error(`flannel.version: flannel ${v.text} is not supported (0.5.0 to 0.${LATEST_MINOR}.x)`, posOf(flannel, 'version'));
      return;
    }
    if (v.minor > LATEST_MINOR) {
      report.warn(`flannel.version: flannel ${v.text} is newer than 0.${LATEST_MINOR}; only its options are accepted`, posOf(flannel, 'version'));
    }
    minor = Math.min(v.minor, LATEST_MINOR);
  }
  const args: FlagArg[] = [];
  for (const opt of FLANNEL_OPTIONS) {
    const value = flannel[opt.key] as string | boolean | undefined;
    if (value === undefined) continue;
    const path = `flannel.${opt.key}`;
    if (opt.since > minor) {
      report.error(`${path}: not an option of flannel 0.${minor} (from 0.${opt.since} on)`, posOf(flannel, opt.key));
      continue;
    }
    args.push({ flag: opt.flag, value, path, pos: posOf(flannel, opt.key) });
  }
  if (flannel.kube_subnet_mgr === true && flannel.network_config !== undefined) {
    report.error('flannel.network_config: cannot be given when kube_subnet_mgr is set', posOf(flannel, 'network_config'));
  }
  const extraService = flannel.network_config === undefined ? [] : [{ line: etcdctlSet(flannel, ctx), pos: posOf(flannel, 'network_config') }];
  const env = v ? [`FLANNEL_IMAGE_TAG=v${v.text}`] : [];
  const exec = '/usr/lib/coreos/flannel-wrapper $FLANNEL_OPTS';
  const dropin = renderWrapperDropin({ name: '20-clct-flannel.conf', exec, env, args, extraService, pos: posOf(flannel) }, ctx);
  if (dropin === undefined) return;
  ctx.out.addUnit({ name: 'flanneld.service', enabled: true, dropins: [dropin], at: dropin.at }, posOf(flannel));
}

/** `ExecStartPre=/usr/bin/etcdctl [--endpoints=... TLS flags] set /coreos.com/network/config "<json>"` */
function etcdctlSet(flannel: FlannelConfig, ctx: TranslateContext): string {
  // Problems with templates in these values are reported once, for the flags of flanneld itself.
  const quiet = new Report();
  let line = 'ExecStartPre=/usr/bin/etcdctl';
  const clientFlags: [string, string][] = [
    ['etcd_endpoints', 'endpoints'],
    ['etcd_cafile', 'ca-file'],
    ['etcd_certfile', 'cert-file'],
    ['etcd_keyfile', 'key-file'],
  ];
  for (const [key, flag] of clientFlags) {
    const value = flannel[key];
    if (typeof value !== 'string') continue;
    const expanded = expandTemplates(value, ctx.platform, quiet, key, posOf(flannel, key)) ?? value;
    line += ` --${flag}=${goQuote(expanded)}`;
  }
  return `${line} set /coreos.com/network/config ${goQuote(flannel.network_config ?? '')}`;
}
