/** The `systemd:` section: units with enable/mask/contents and drop-ins. */
import { bool, list, object, posOf, positionsOf, str, type Infer } from '../decode';
import { dropinName, unitName } from '../validate';
import type { TranslateContext } from './context';

const dropin = object({ name: dropinName, contents: str }, { required: ['name'] });

const unit = object(
  {
    name: unitName,
    /** Deprecated spelling of `enabled`. */
    enable: bool,
    enabled: bool,
    mask: bool,
    contents: str,
    dropins: list(dropin),
  },
  { required: ['name'] },
);

export const systemdSchema = object({ units: list(unit) });
export type SystemdConfig = NonNullable<Infer<typeof systemdSchema>>;

export function translateSystemd(systemd: SystemdConfig, ctx: TranslateContext): void {
  (systemd.units ?? []).forEach((u, i) => {
    const path = `systemd.units[${i}]`;
    if (u.enable !== undefined) {
      ctx.report.warn(`${path}.enable is deprecated; use enabled`, posOf(u, 'enable'));
      if (u.enabled !== undefined && u.enabled !== u.enable) {
        ctx.report.error(`${path}: enable and enabled disagree`, posOf(u, 'enabled'));
      }
    }
    if (u.mask === true && (u.enabled ?? u.enable) === true) {
      ctx.report.error(`${path}: a unit cannot be both masked and enabled`, posOf(u, 'mask'));
    }
    const seen = new Set<string>();
    for (const d of u.dropins ?? []) {
      if (seen.has(d.name)) ctx.report.error(`${path}: drop-in "${d.name}" is listed twice`, posOf(d, 'name'));
      seen.add(d.name);
    }
    ctx.out.addUnit(
      {
        name: u.name,
        enabled: u.enabled ?? u.enable,
        mask: u.mask,
        contents: u.contents,
        dropins: (u.dropins ?? [])
          .filter((d, j, all) => all.findIndex((x) => x.name === d.name) === j)
          .map((d) => ({ name: d.name, contents: d.contents, at: positionsOf(d) })),
        at: positionsOf(u),
      },
      posOf(u, 'name'),
      {
        enabled: u.enabled !== undefined ? posOf(u, 'enabled') : u.enable !== undefined ? posOf(u, 'enable') : undefined,
        mask: u.mask !== undefined ? posOf(u, 'mask') : undefined,
      },
    );
  });
}
