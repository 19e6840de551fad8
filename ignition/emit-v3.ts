/**
 * Writes the model as an Ignition spec 3.3.0 config: absolute paths without filesystem names, `merge` instead of
 * `append`, sizes in MiB, networkd units and their drop-ins as files in /etc/systemd/network, and `overwrite: true`
 * for files with contents (a CLC file replaces what is there, as Ignition 2.x did by default). `src` learns where
 * each part came from.
 */
import * as posixPath from 'node:path/posix';
import { positionsOf } from './decode';
import type { Report } from './diagnostics';
import { emitPasswd, emitResource, prune, SourceMap } from './emit-util';
import type { Dropin, FileEntry, Model, NetworkdUnit, NodeCommon, Owner } from './model';
import { dataUrl } from './sections/storage';

export const SPEC_V3 = '3.3.0';

const MIB = 2 ** 20;

function owner(o: Owner | undefined): object | undefined {
  return o && { id: o.id, name: o.name };
}

export function emitV3(m: Model, report: Report, src = new SourceMap()): object {
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
  const file = (f: FileEntry & { rename?: Record<string, string> }) =>
    src.mark(
      {
        ...common(f),
        overwrite: f.overwrite ?? (f.append ? undefined : true),
        mode: modeOf(f),
        contents: f.append ? undefined : emitResource(f.contents, src),
        append: f.append && f.contents ? [emitResource(f.contents, src)] : undefined,
      },
      f.at,
      f.rename,
    );
  const mib = (bytes: number | undefined, what: string): number | undefined => {
    if (bytes === undefined) return undefined;
    if (bytes % MIB !== 0) report.error(`partition ${what} of ${bytes} bytes is not a whole number of MiB, which spec ${SPEC_V3} needs`);
    return Math.floor(bytes / MIB);
  };
  /**
   * A networkd unit or drop-in as a file (0644, as Ignition 0.x wrote them); as Ignition 0.x did, only one with contents
   * is written.
   */
  const networkdFile = (path: string, x: NetworkdUnit | Dropin, pos: NetworkdUnit['pos']): (FileEntry & { rename: Record<string, string> })[] => {
    if (x.contents === undefined || x.contents === '') return [];
    const contentsAt = x.at?.values.contents;
    return [
      {
        filesystem: 'root',
        path,
        mode: 0o644,
        contents: { source: dataUrl(Buffer.from(x.contents, 'utf8')), at: contentsAt && { node: contentsAt, values: { source: contentsAt } } },
        pos,
        at: x.at,
        rename: { path: 'name' },
      },
    ];
  };
  const networkdFiles = m.networkd.units.flatMap((u) => [
    ...networkdFile(`/etc/systemd/network/${u.name}`, u, u.pos),
    ...u.dropins.flatMap((d) => networkdFile(`/etc/systemd/network/${u.name}.d/${d.name}`, d, d.at?.values.name ?? u.pos)),
  ]);
  const config = {
    ignition: {
      version: SPEC_V3,
      config: {
        merge: m.ignition.merge.map((r) => emitResource(r, src)),
        replace: emitResource(m.ignition.replace, src),
      },
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
                  sizeMiB: mib(p.sizeBytes, 'size'),
                  startMiB: mib(p.startBytes, 'start'),
                  typeGuid: p.typeGuid,
                  guid: p.guid,
                },
                p.at,
                { sizeMiB: 'size', startMiB: 'start' },
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
      filesystems: m.storage.filesystems
        .filter((f) => f.mount)
        .map((f) => {
          const json = {
            device: f.mount?.device,
            format: f.mount?.format,
            path: f.path && clean(f.path),
            wipeFilesystem: f.mount?.wipeFilesystem,
            label: f.mount?.label,
            uuid: f.mount?.uuid,
            options: f.mount?.options,
          };
          // The mount's keys are in `mount:`, the path beside it.
          const path = f.at?.values.path;
          const at = f.mount?.at && { node: f.mount.at.node, values: { ...f.mount.at.values, ...(path ? { path } : {}) } };
          return src.mark(json, at ?? f.at);
        }),
      files: [...m.storage.files, ...networkdFiles].map(file),
      directories: m.storage.directories.map((d) => src.mark({ ...common(d), mode: modeOf(d) }, d.at)),
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
    passwd: emitPasswd(m.passwd.users, m.passwd.groups, src),
  };
  return prune(config, src) as object;
}
