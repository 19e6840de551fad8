/**
 * The `networkd:` section: systemd-networkd files (.network, .netdev, .link) for /etc/systemd/network, and drop-ins
 * for them in /etc/systemd/network/<unit>.d/. As Container Linux's Ignition wrote them, a unit's file is written only
 * when it has contents and a drop-in only when it has contents: a unit given only for its drop-ins leaves the
 * vendor's file of that name in effect. Their contents are held to the unit file syntax Ignition 0.x checked them
 * against (spec 3 output carries them as plain files, which Ignition does not read).
 */
import { list, object, posOf, positionsOf, refine, str, type Infer } from '../decode';
import { parseUnitFile } from '../rules/unit-file';
import { dropinName } from '../validate';
import type { TranslateContext } from './context';

const unitText = refine(str, (v, report, path, pos) => {
  const parsed = parseUnitFile(v);
  if (!parsed.ok) report.error(`${path}: invalid unit content: ${parsed.error} (line ${parsed.line + 1} of the text)`, pos);
  return parsed.ok;
});

const NETWORKD_TYPES = ['.network', '.netdev', '.link'];

const networkdName = refine(str, (v, report, path, pos) => {
  const ok = NETWORKD_TYPES.some((t) => v.endsWith(t)) && !v.includes('/');
  if (!ok) report.error(`${path}: networkd unit name "${v}" must end in ${NETWORKD_TYPES.join(', ')}`, pos);
  return ok;
});

const dropin = object({ name: dropinName, contents: unitText }, { required: ['name'] });

const unit = object({ name: networkdName, contents: unitText, dropins: list(dropin) }, { required: ['name'] });

export const networkdSchema = object({ units: list(unit) });
export type NetworkdConfig = NonNullable<Infer<typeof networkdSchema>>;

export function translateNetworkd(networkd: NetworkdConfig, ctx: TranslateContext): void {
  const units = ctx.out.model.networkd.units;
  (networkd.units ?? []).forEach((u, i) => {
    if (units.some((x) => x.name === u.name)) {
      ctx.report.error(`networkd unit "${u.name}" is defined more than once`, posOf(u, 'name'));
      return;
    }
    const dropins = u.dropins ?? [];
    dropins.forEach((d, j) => {
      if (dropins.findIndex((x) => x.name === d.name) !== j) {
        ctx.report.error(`networkd.units[${i}]: drop-in "${d.name}" is listed twice`, posOf(d, 'name'));
      }
    });
    units.push({
      name: u.name,
      contents: u.contents,
      dropins: dropins.map((d) => ({ name: d.name, contents: d.contents, at: positionsOf(d) })),
      pos: posOf(u, 'name'),
      at: positionsOf(u),
    });
  });
}
