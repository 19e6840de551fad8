/**
 * Writes the model as an Ignition spec 2.2.0 config (what Container Linux's Ignition 0.x read): nodes name their
 * filesystem ("root"), configs are appended, partition sizes are in 512-byte sectors, networkd has its own section
 * (units with their drop-ins). `src` learns where each part came from.
 */
import { positionsOf } from './decode';
import type { Report } from './diagnostics';
import { emitPasswd, emitResource, prune, SourceMap } from './emit-util';
import type { Model, NodeCommon, Owner } from './model';

export const SPEC_V2 = '2.2.0';

const SECTOR = 512;

function owner(o: Owner | undefined): object | undefined {
  return o && { id: o.id, name: o.name };
}

export function emitV2(m: Model, report: Report, src = new SourceMap()): object {
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
      config: { append: m.ignition.merge.map((r) => emitResource(r, src)), replace: emitResource(m.ignition.replace, src) },
      timeouts: m.ignition.timeouts,
      security: { tls: { certificateAuthorities: m.ignition.certificateAuthorities.map((r) => emitResource(r, src)) } },
    },
    storage: {
      disks: m.storage.disks.map((d) =>
        src.mark(
          {
            device: d.device,
            wipeTable: d.wipeTable,
            partitions: d.partitions.map((p) =>
              src.mark(
                {
                  label: p.label,
                  number: p.number,
                  size: sectors(p.sizeBytes, 'size'),
                  start: sectors(p.startBytes, 'start'),
                  typeGuid: p.typeGuid,
                  guid: p.guid,
                },
                p.at,
              ),
            ),
          },
          d.at,
        ),
      ),
      raid: m.storage.raid.map((r) =>
        src.mark(
          {
            name: r.name,
            level: r.level,
            devices: src.mark([...r.devices], positionsOf(r.devices)),
            spares: r.spares,
            options: r.options && src.mark([...r.options], positionsOf(r.options)),
          },
          r.at,
        ),
      ),
      filesystems: m.storage.filesystems.map((f) => {
        // Spec 2.x takes either a filesystem to mount or the path of one already mounted; Ignition 0.x rejects both
        // ("filesystem has both mount and path defined"). Spec 3.3 takes both, which is why the CLC allows it.
        if (f.mount && f.path !== undefined) {
          const name = f.name === undefined ? 'a filesystem' : `filesystem "${f.name}"`;
          report.error(`${name} has both mount and path, which spec ${SPEC_V2} does not allow (Ignition rejects it); drop path for spec ${SPEC_V2}`, f.pos);
        }
        const mount = f.mount && {
          device: f.mount.device,
          format: f.mount.format,
          wipeFilesystem: f.mount.wipeFilesystem,
          label: f.mount.label,
          uuid: f.mount.uuid,
          options: f.mount.options,
        };
        return src.mark({ name: f.name, mount: mount && src.mark(mount, f.mount?.at), path: f.path }, f.at);
      }),
      files: m.storage.files.map((f) =>
        src.mark({ ...common(f), mode: f.mode, contents: emitResource(f.contents ?? { source: 'data:,' }, src), append: f.append }, f.at),
      ),
      directories: m.storage.directories.map((d) => src.mark({ ...common(d), mode: d.mode }, d.at)),
      links: m.storage.links.map((l) => src.mark({ ...common(l), target: l.target, hard: l.hard }, l.at)),
    },
    systemd: {
      units: m.systemd.units.map((u) =>
        src.mark(
          {
            name: u.name,
            enabled: u.enabled,
            mask: u.mask,
            contents: u.contents,
            dropins: u.dropins.map((d) => src.mark({ name: d.name, contents: d.contents }, d.at, {}, { contents: d.lines ?? [] })),
          },
          u.at,
        ),
      ),
    },
    networkd: {
      units: m.networkd.units.map((u) =>
        src.mark(
          {
            name: u.name,
            contents: u.contents,
            dropins: u.dropins.map((d) => src.mark({ name: d.name, contents: d.contents }, d.at)),
          },
          u.at,
        ),
      ),
    },
    passwd: emitPasswd(m.passwd.users, m.passwd.groups, src),
  };
  return prune(config, src) as object;
}
