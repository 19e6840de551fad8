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
  /**
   * Spec 3 has no filesystem names: it addresses every node by its absolute path, so a node on another filesystem
   * lives below that filesystem's `path`, whether Ignition mounts it there (`mount` and `path`) or it is already
   * mounted there (`path` alone, e.g. OEM's /usr/share/oem). The node's path is normalized first, as a path inside
   * that filesystem: "/../x" on it is its "/x", not a path outside it. Ignition 3 takes only clean paths ("path is not
   * fully simplified"), so every path comes out without "//", "." or ".." parts and without a trailing "/".
   */
  const clean = (p: string): string => posixPath.normalize(p).replace(/(?<=.)\/$/, '');
  const absolutePathOf = (node: NodeCommon): string | undefined => {
    if (node.filesystem === 'root') return clean(node.path);
    const fs = m.storage.filesystems.find((f) => f.name === node.filesystem);
    if (fs?.path) return clean(posixPath.join(fs.path, clean(node.path)));
    report.error(
      `"${node.path}" is on filesystem "${node.filesystem}", which has no path: spec ${SPEC_V3} addresses files by absolute path, so give the filesystem the path it is mounted at`,
      node.pos,
    );
    return undefined;
  };
  /**
   * Two nodes the model keeps apart (different filesystems) can meet at one absolute path, e.g. "/grub.cfg" on a
   * filesystem at /usr/share/oem and "/usr/share/oem/grub.cfg" on root; Ignition rejects the duplicate.
   */
  const claimed = new Map<string, NodeCommon>();
  const pathOf = (node: NodeCommon): string | undefined => {
    const full = absolutePathOf(node);
    if (full === undefined) return undefined;
    const first = claimed.get(full);
    if (first) {
      const on = (n: NodeCommon) => (n.filesystem === 'root' ? '' : ` ("${n.path}" on filesystem "${n.filesystem}")`);
      const where = first.pos ? ` at line ${first.pos.line}, column ${first.pos.column}` : '';
      report.error(`"${full}"${on(node)} is defined more than once in spec ${SPEC_V3}: first${on(first)}${where}`, node.pos);
    } else {
      claimed.set(full, node);
    }
    return full;
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
    pos: u.pos,
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
