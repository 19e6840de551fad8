/**
 * The `update:` and `locksmith:` sections. Both end up in /etc/coreos/update.conf, which update_engine and
 * locksmithd read: GROUP and SERVER from `update`, the reboot strategy, window and etcd settings from `locksmith`.
 */
import { object, oneOf, posOf, refine, str, type Infer } from '../decode';
import { goQuote, HTTP_SCHEMES, url } from '../validate';
import type { TranslateContext } from './context';
import { dataUrl } from './storage';

const KNOWN_GROUPS = ['stable', 'beta', 'alpha'];

export const updateSchema = object({ group: str, server: url(HTTP_SCHEMES) });
export type UpdateConfig = NonNullable<Infer<typeof updateSchema>>;

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** "04:00" or "Thu 04:00". */
const windowStart = refine(str, (v, report, path, pos) => {
  const m = /^(?:([A-Za-z]+)\s+)?(\d{1,2}):(\d{2})$/.exec(v.trim());
  const ok = !!m && (m[1] === undefined || DAYS.includes(m[1].toLowerCase())) && Number(m[2]) < 24 && Number(m[3]) < 60;
  if (!ok) report.error(`${path}: "${v}" is not a window start like "04:00" or "Thu 04:00"`, pos);
  return ok;
});

/** A Go duration such as "1h30m". */
const windowLength = refine(str, (v, report, path, pos) => {
  const ok = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/.test(v);
  if (!ok) report.error(`${path}: "${v}" is not a duration like "1h30m"`, pos);
  return ok;
});

export const locksmithSchema = object(
  {
    reboot_strategy: oneOf(['reboot', 'etcd-lock', 'off'], { ignoreCase: true }),
    window_start: windowStart,
    window_length: windowLength,
    group: str,
    etcd_endpoints: str,
    etcd_cafile: str,
    etcd_certfile: str,
    etcd_keyfile: str,
  },
  {
    check(l, report) {
      if ((l.window_start === undefined) !== (l.window_length === undefined)) {
        report.error('locksmith: window_start and window_length must be given together', posOf(l, l.window_start ? 'window_start' : 'window_length'));
      }
    },
  },
);
export type LocksmithConfig = NonNullable<Infer<typeof locksmithSchema>>;

/**
 * The variables locksmithd reads for each key. Its flags come from `LOCKSMITHD_` + the flag name in capitals
 * (`-endpoint` → LOCKSMITHD_ENDPOINT, a comma-separated list; `-etcd-cafile` → LOCKSMITHD_ETCD_CAFILE); the reboot
 * strategy and window are read as such. ct and coreos-cloudinit write the same names.
 */
const LOCKSMITH_VARIABLES: [keyof LocksmithConfig & string, string][] = [
  ['reboot_strategy', 'REBOOT_STRATEGY'],
  ['window_start', 'LOCKSMITHD_REBOOT_WINDOW_START'],
  ['window_length', 'LOCKSMITHD_REBOOT_WINDOW_LENGTH'],
  ['group', 'LOCKSMITHD_GROUP'],
  ['etcd_endpoints', 'LOCKSMITHD_ENDPOINT'],
  ['etcd_cafile', 'LOCKSMITHD_ETCD_CAFILE'],
  ['etcd_certfile', 'LOCKSMITHD_ETCD_CERTFILE'],
  ['etcd_keyfile', 'LOCKSMITHD_ETCD_KEYFILE'],
];

/**
 * The file's text exactly as ct composes it: `GROUP=` first, then every further line preceded by a newline, and no
 * newline at the end — so a config without `update.group` yields a file that starts with an empty line (ct writes
 * `data:,%0AREBOOT_STRATEGY%3D%22off%22` for `reboot_strategy: off` alone). Empty values are left out, as ct does.
 */
export function translateUpdate(update: UpdateConfig | undefined, locksmith: LocksmithConfig | undefined, ctx: TranslateContext): void {
  let contents = '';
  if (update) {
    const group = update.group?.toLowerCase();
    if (group !== undefined && !KNOWN_GROUPS.includes(group) && !update.server) {
      ctx.report.warn(`update.group: unknown update group "${update.group}" (without a custom server: ${KNOWN_GROUPS.join(', ')})`, posOf(update, 'group'));
    }
    if (group) contents += `GROUP=${group}`;
    if (update.server) contents += `\nSERVER=${update.server}`;
  }
  if (locksmith) {
    const lines: string[] = [];
    for (const [key, variable] of LOCKSMITH_VARIABLES) {
      const value = locksmith[key];
      if (typeof value === 'string' && value !== '') lines.push(`${variable}=${goQuote(key === 'reboot_strategy' ? value.toLowerCase() : value)}`);
    }
    if (lines.length > 0) contents += `\n${lines.join('\n')}`;
  }
  if (contents === '') return;
  const section = update ?? locksmith;
  const at = section && { node: posOf(section), values: {} };
  ctx.out.addFile(
    { filesystem: 'root', path: '/etc/coreos/update.conf', mode: 0o644, contents: { source: dataUrl(Buffer.from(contents)), at }, at },
    section && posOf(section),
  );
}
