/** The `networkd:` section: systemd-networkd files (.network, .netdev, .link) for /etc/systemd/network. */
import { list, object, posOf, refine, str, type Infer } from '../decode';
import type { TranslateContext } from './context';

const NETWORKD_TYPES = ['.network', '.netdev', '.link'];

const networkdName = refine(str, (v, report, path, pos) => {
  const ok = NETWORKD_TYPES.some((t) => v.endsWith(t)) && !v.includes('/');
  if (!ok) report.error(`${path}: networkd unit name "${v}" must end in ${NETWORKD_TYPES.join(', ')}`, pos);
  return ok;
});

const unit = object({ name: networkdName, contents: str }, { required: ['name'] });

export const networkdSchema = object({ units: list(unit) });
export type NetworkdConfig = NonNullable<Infer<typeof networkdSchema>>;

export function translateNetworkd(networkd: NetworkdConfig, ctx: TranslateContext): void {
  const units = ctx.out.model.networkd.units;
  for (const u of networkd.units ?? []) {
    if (units.some((x) => x.name === u.name)) {
      ctx.report.error(`networkd unit "${u.name}" is defined more than once`, posOf(u, 'name'));
      continue;
    }
    units.push({ name: u.name, contents: u.contents, pos: posOf(u, 'name') });
  }
}
