/**
 * Writes the model as an Ignition spec 2.2.0 config (what Container Linux's Ignition 0.x read): nodes name their
 * filesystem ("root"), configs are appended, partition sizes are in 512-byte sectors, networkd has its own section.
 */
import type { Report } from './diagnostics';
import { emitPasswd, emitResource, prune } from './emit-util';
import type { Model, NodeCommon, Owner } from './model';

export const SPEC_V2 = '2.2.0';

const SECTOR = 512;

function owner(o: Owner | undefined): object | undefined {
  return o && { id: o.id, name: o.name };
}

export function emitV2(m: Model, report: Report): object {
  const common = (n: NodeCommon) => ({
    filesystem: n.filesystem,
    path: n.path,
    overwrite: n.overwrite,
    user: owner(n.user),
    group: owner(n.group),
  });
  const sectors = (bytes: number | undefined, what: string): number | undefined => {
    if (bytes === undefined) return undefined;
    if (bytes % SECTOR !== 0) report.error(`partition ${what} of ${bytes} bytes is not a whole number of sectors`);
    return Math.floor(bytes / SECTOR);
  };
  const config = {
    ignition: {
      version: SPEC_V2,
      config: { append: m.ignition.merge.map(emitResource), replace: emitResource(m.ignition.replace) },
      timeouts: m.ignition.timeouts,
      security: { tls: { certificateAuthorities: m.ignition.certificateAuthorities.map(emitResource) } },
    },
    storage: {
      disks: m.storage.disks.map((d) => ({
        device: d.device,
        wipeTable: d.wipeTable,
        partitions: d.partitions.map((p) => ({
          label: p.label,
          number: p.number,
          size: sectors(p.sizeBytes, 'size'),
          start: sectors(p.startBytes, 'start'),
          typeGuid: p.typeGuid,
          guid: p.guid,
        })),
      })),
      raid: m.storage.raid.map((r) => ({ ...r })),
      filesystems: m.storage.filesystems.map((f) => {
        // Spec 2.x takes either a filesystem to mount or the path of one already mounted; Ignition 0.x rejects both
        // ("filesystem has both mount and path defined"). Spec 3.3 takes both, which is why the CLC allows it.
        if (f.mount && f.path !== undefined) {
          const name = f.name === undefined ? 'a filesystem' : `filesystem "${f.name}"`;
          report.error(`${name} has both mount and path, which spec ${SPEC_V2} does not allow (Ignition rejects it); drop path for spec ${SPEC_V2}`, f.pos);
        }
        return { name: f.name, mount: f.mount && { ...f.mount }, path: f.path };
      }),
      files: m.storage.files.map((f) => ({
        ...common(f),
        mode: f.mode,
        contents: emitResource(f.contents ?? { source: 'data:,' }),
        append: f.append,
      })),
      directories: m.storage.directories.map((d) => ({ ...common(d), mode: d.mode })),
      links: m.storage.links.map((l) => ({ ...common(l), target: l.target, hard: l.hard })),
    },
    systemd: {
      units: m.systemd.units.map((u) => ({
        name: u.name,
        enabled: u.enabled,
        mask: u.mask,
        contents: u.contents,
        dropins: u.dropins.map((d) => ({ name: d.name, contents: d.contents })),
      })),
    },
    networkd: { units: m.networkd.units.map((u) => ({ name: u.name, contents: u.contents })) },
    passwd: emitPasswd(m.passwd.users, m.passwd.groups),
  };
  return prune(config) as object;
}
