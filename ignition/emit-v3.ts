/**
 * Writes the model as an Ignition spec 3.3.0 config: absolute paths without filesystem names, `merge` instead of
 * `append`, sizes in MiB, networkd units as files in /etc/systemd/network, and `overwrite: true` for files with
 * contents (a CLC file replaces what is there, as Ignition 2.x did by default).
 */
import * as posixPath from 'node:path/posix';
import type { Report } from './diagnostics';
import { emitPasswd, emitResource, prune } from './emit-util';
import type { FileEntry, Model, NodeCommon, Owner } from './model';
import { dataUrl } from './sections/storage';

export const SPEC_V3 = '3.3.0';

const MIB = 2 ** 20;

function owner(o: Owner | undefined): object | undefined {
  return o && { id: o.id, name: o.name };
}

export function emitV3(m: Model, report: Report): object {
  /** Spec 3 has no filesystem names: a node on another filesystem lives below that filesystem's mount path. */
  const pathOf = (node: NodeCommon): string | undefined => {
    if (node.filesystem === 'root') return node.path;
    const fs = m.storage.filesystems.find((f) => f.name === node.filesystem);
    if (fs?.mount && fs.path) return posixPath.join(fs.path, node.path);
    report.error(
      `"${node.path}" is on filesystem "${node.filesystem}", which spec ${SPEC_V3} can only address when the filesystem has both mount and path`,
      node.pos,
    );
    return undefined;
  };
  const common = (n: NodeCommon) => ({ path: pathOf(n), overwrite: n.overwrite, user: owner(n.user), group: owner(n.group) });
  /** Spec 3.3 has no setuid, setgid or sticky bits (Ignition would drop them with a warning). */
  const modeOf = (n: NodeCommon & { mode: number }): number => {
    if (n.mode > 0o777) {
      report.error(`"${n.path}": mode 0${n.mode.toString(8)} has setuid/setgid/sticky bits, which spec ${SPEC_V3} does not support`, n.pos);
    }
    return n.mode;
  };
  const file = (f: FileEntry) => ({
    ...common(f),
    overwrite: f.overwrite ?? (f.append ? undefined : true),
    mode: modeOf(f),
    contents: f.append ? undefined : emitResource(f.contents),
    append: f.append && f.contents ? [emitResource(f.contents)] : undefined,
  });
  const mib = (bytes: number | undefined, what: string): number | undefined => {
    if (bytes === undefined) return undefined;
    if (bytes % MIB !== 0) report.error(`partition ${what} of ${bytes} bytes is not a whole number of MiB, which spec ${SPEC_V3} needs`);
    return Math.floor(bytes / MIB);
  };
  const networkdFiles: FileEntry[] = m.networkd.units.map((u) => ({
    filesystem: 'root',
    path: `/etc/systemd/network/${u.name}`,
    mode: 0o644,
    contents: { source: dataUrl(Buffer.from(u.contents ?? '', 'utf8')) },
  }));
  const config = {
    ignition: {
      version: SPEC_V3,
      config: { merge: m.ignition.merge.map(emitResource), replace: emitResource(m.ignition.replace) },
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
          sizeMiB: mib(p.sizeBytes, 'size'),
          startMiB: mib(p.startBytes, 'start'),
          typeGuid: p.typeGuid,
          guid: p.guid,
        })),
      })),
      raid: m.storage.raid.map((r) => ({ ...r })),
      filesystems: m.storage.filesystems
        .filter((f) => f.mount)
        .map((f) => ({
          device: f.mount?.device,
          format: f.mount?.format,
          path: f.path,
          wipeFilesystem: f.mount?.wipeFilesystem,
          label: f.mount?.label,
          uuid: f.mount?.uuid,
          options: f.mount?.options,
        })),
      files: [...m.storage.files, ...networkdFiles].map(file),
      directories: m.storage.directories.map((d) => ({ ...common(d), mode: modeOf(d) })),
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
    passwd: emitPasswd(m.passwd.users, m.passwd.groups),
  };
  return prune(config) as object;
}
