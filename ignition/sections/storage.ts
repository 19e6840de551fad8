/**
 * The `storage:` section: files (inline, local or remote contents), directories, links, filesystems, disks and RAID
 * arrays. As in ct, files default to mode 0644 and directories to 0755 (with a warning), and the filesystem of a
 * node defaults to "root".
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { bool, int, list, object, oneOf, posOf, positionsOf, refine, str, strList, type Decoder, type Infer, type Positioned, type Positions } from '../decode';
import type { Report } from '../diagnostics';
import type { Owner, Resource } from '../model';
import { absolutePath, checkHash, FETCH_SCHEMES, url } from '../validate';
import type { Position } from '../yaml-positions';
import type { TranslateContext } from './context';

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** A data URL for the bytes: percent-encoded text, or base64 when that is shorter (binary contents). */
export function dataUrl(bytes: Buffer): string {
  let percent = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    percent += b < 0x80 && UNRESERVED.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  const base64 = bytes.toString('base64');
  return base64.length + 7 < percent.length ? `data:;base64,${base64}` : `data:,${percent}`;
}

/** A permission mode. `0644` is octal (as in ct); a decimal `644` is allowed but almost always a slip, so it warns. */
const mode: Decoder<number> = (node, report, path) => {
  const v = int(node, report, path);
  if (v === undefined) return undefined;
  if (v < 0 || v > 0o7777) {
    report.error(`${path}: mode ${v} is out of range (0 to 07777)`, node.pos);
    return undefined;
  }
  if (node.kind === 'scalar' && /^[1-7][0-7]{2,3}$/.test(node.text) && v > 0o777) {
    report.warn(`${path}: mode ${node.text} is decimal (octal 0${v.toString(8)}); write 0${node.text} for an octal mode`, node.pos);
  }
  return v;
};

const owner = object({ id: int, name: str });

const verification = object({
  hash: object(
    { function: str, sum: str },
    {
      required: ['function', 'sum'],
      check: (h, report, path) => void checkHash(h.function, h.sum, report, path, posOf(h, 'sum')),
    },
  ),
});

export function hashOf(v: Infer<typeof verification> | undefined): string | undefined {
  return v?.hash ? `${v.hash.function}-${v.hash.sum}` : undefined;
}

export const configReference = object({ source: url(FETCH_SCHEMES), verification }, { required: ['source'] });

export function resourceOf(ref: NonNullable<Infer<typeof configReference>>): Resource {
  return { source: ref.source, hash: hashOf(ref.verification), at: positionsOf(ref) };
}

/** A resource's positions when its source is the value at `pos` (inline or local contents, a remote url). */
function sourceAt(pos: Position, from?: Positions): Positions {
  return { node: pos, values: { ...from?.values, source: pos } };
}

const remote = object({ url: url(FETCH_SCHEMES), compression: oneOf(['gzip']), verification });

const contents = object(
  { inline: str, local: str, remote },
  {
    check(c, report, path) {
      const given = [c.inline !== undefined, c.local !== undefined, c.remote?.url !== undefined].filter(Boolean).length;
      if (given > 1) report.error(`${path}: only one of inline, local and remote.url can be set`, posOf(c));
    },
  },
);

const filesystemName = str;

const file = object(
  {
    filesystem: filesystemName,
    path: absolutePath,
    user: owner,
    group: owner,
    mode,
    contents,
    overwrite: bool,
    append: bool,
  },
  { required: ['path'] },
);

const directory = object(
  { filesystem: filesystemName, path: absolutePath, user: owner, group: owner, mode, overwrite: bool },
  { required: ['path'] },
);

const link = object(
  { filesystem: filesystemName, path: absolutePath, user: owner, group: owner, hard: bool, target: str, overwrite: bool },
  { required: ['path', 'target'] },
);

const mount = object(
  {
    device: absolutePath,
    format: oneOf(['ext4', 'btrfs', 'xfs', 'vfat', 'swap']),
    wipe_filesystem: bool,
    label: str,
    uuid: str,
    options: strList,
    create: object({ force: bool, options: strList }),
  },
  { required: ['device', 'format'] },
);

const filesystem = object(
  { name: str, mount, path: absolutePath },
  {
    check(f, report, path) {
      if (f.mount === undefined && f.path === undefined) report.error(`${path}: either mount or path must be given`, posOf(f));
    },
  },
);

const SIZE_UNITS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "512MiB", "10GiB", "0" (the default: rest of the disk / first free spot); result in bytes. */
const size: Decoder<number> = (node, report, path) => {
  const s = str(node, report, path);
  if (s === undefined) return undefined;
  if (s.trim() === '0') return 0;
  const m = /^(\d+)\s*([KMGT])(?:iB)?$/i.exec(s.trim());
  if (!m) {
    report.error(`${path}: "${s}" is not a size with a unit like "512MiB" or "10GiB"`, node.pos);
    return undefined;
  }
  return Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()];
};

const GUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const guid: Decoder<string> = refine(str, (v, report, path, pos) => {
  if (!GUID.test(v)) report.error(`${path}: "${v}" is not a GUID`, pos);
  return GUID.test(v);
});

const partition = object({ label: str, number: int, size, start: size, type_guid: guid, guid });

const disk = object({ device: absolutePath, wipe_table: bool, partitions: list(partition) }, { required: ['device'] });

const raid = object(
  {
    name: str,
    level: oneOf(['linear', 'raid0', '0', 'stripe', 'raid1', '1', 'mirror', 'raid4', '4', 'raid5', '5', 'raid6', '6', 'raid10', '10']),
    devices: list(absolutePath),
    spares: int,
    /** mdadm options for creating the array, e.g. "--bitmap=internal"; Ignition passes them on. */
    options: strList,
  },
  { required: ['name', 'level', 'devices'] },
);

export const storageSchema = object({
  disks: list(disk),
  raid: list(raid),
  filesystems: list(filesystem),
  files: list(file),
  directories: list(directory),
  links: list(link),
});
export type StorageConfig = NonNullable<Infer<typeof storageSchema>>;

function ownerOf(o: Infer<typeof owner> | undefined): Owner | undefined {
  return o ? { id: o.id, name: o.name } : undefined;
}

/**
 * Reads `contents.local` below --files-dir; reports and returns undefined when that is impossible. The file must be
 * inside the directory: neither "..", an absolute path nor a symbolic link leads out of it.
 */
function readLocal(local: string, filesDir: string | undefined, report: Report, path: string, pos: Position): Buffer | undefined {
  if (!filesDir) {
    report.error(`${path}: local file contents need --files-dir (the directory holding "${local}")`, pos);
    return undefined;
  }
  const inside = (base: string, full: string): boolean => full === base || full.startsWith(base.endsWith(nodePath.sep) ? base : base + nodePath.sep);
  const outside = (): undefined => void report.error(`${path}: "${local}" is outside the --files-dir directory`, pos);
  const base = nodePath.resolve(filesDir);
  const full = nodePath.resolve(base, local);
  if (!inside(base, full)) return outside();
  try {
    if (!inside(fs.realpathSync(base), fs.realpathSync(full))) return outside();
    return fs.readFileSync(full);
  } catch (e) {
    report.error(`${path}: cannot read "${local}" from --files-dir: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, pos);
    return undefined;
  }
}

export function translateStorage(storage: StorageConfig, ctx: TranslateContext): void {
  const { report, out } = ctx;
  const m = out.model.storage;
  const fsNames = new Set(['root']);
  for (const f of storage.filesystems ?? []) {
    if (f.mount?.create) report.warn('storage.filesystems.mount.create is deprecated; use wipe_filesystem and options', posOf(f.mount, 'create'));
    if (f.name !== undefined) fsNames.add(f.name);
    m.filesystems.push({
      name: f.name,
      path: f.path,
      mount: f.mount && {
        device: f.mount.device,
        format: f.mount.format,
        wipeFilesystem: f.mount.wipe_filesystem ?? f.mount.create?.force,
        label: f.mount.label,
        uuid: f.mount.uuid,
        options: f.mount.options ?? f.mount.create?.options,
        at: positionsOf(f.mount),
      },
      pos: posOf(f),
      at: positionsOf(f),
    });
  }
  const fsOf = (node: { filesystem?: string } & Positioned, path: string): string => {
    const name = node.filesystem ?? 'root';
    if (!fsNames.has(name)) report.error(`${path}.filesystem: no filesystem named "${name}" in storage.filesystems`, posOf(node, 'filesystem'));
    return name;
  };

  (storage.files ?? []).forEach((f, i) => {
    const path = `storage.files[${i}]`;
    if (f.mode === undefined && !f.append) report.warn(`${path}: mode unspecified for file "${f.path}", defaulting to 0644`, posOf(f));
    let resource: Resource | undefined;
    const c = f.contents;
    if (c?.remote?.url !== undefined) {
      const at = sourceAt(posOf(c.remote, 'url'), positionsOf(c.remote));
      resource = { source: c.remote.url, compression: c.remote.compression, hash: hashOf(c.remote.verification), at };
    } else if (c?.local !== undefined) {
      const bytes = readLocal(c.local, ctx.filesDir, report, `${path}.contents.local`, posOf(c, 'local'));
      if (bytes === undefined) return;
      resource = { source: dataUrl(bytes), at: sourceAt(posOf(c, 'local')) };
    } else if (c?.inline !== undefined) {
      resource = { source: dataUrl(Buffer.from(c.inline, 'utf8')), at: sourceAt(posOf(c, 'inline')) };
    } else if (c?.remote !== undefined) {
      report.error(`${path}.contents.remote: url is required`, posOf(c, 'remote'));
      return;
    }
    if (c?.remote && c.remote.url === undefined && resource) {
      report.warn(`${path}.contents.remote: ignored without url`, posOf(c, 'remote'));
    }
    out.addFile(
      {
        filesystem: fsOf(f, path),
        path: f.path,
        overwrite: f.overwrite,
        user: ownerOf(f.user),
        group: ownerOf(f.group),
        mode: f.mode ?? 0o644,
        contents: resource ?? (f.append ? undefined : { source: 'data:,' }),
        append: f.append,
        at: positionsOf(f),
      },
      posOf(f, 'path'),
    );
  });

  (storage.directories ?? []).forEach((d, i) => {
    const path = `storage.directories[${i}]`;
    if (d.mode === undefined) report.warn(`${path}: mode unspecified for directory "${d.path}", defaulting to 0755`, posOf(d));
    out.addDirectory(
      {
        filesystem: fsOf(d, path),
        path: d.path,
        overwrite: d.overwrite,
        user: ownerOf(d.user),
        group: ownerOf(d.group),
        mode: d.mode ?? 0o755,
        at: positionsOf(d),
      },
      posOf(d, 'path'),
    );
  });

  (storage.links ?? []).forEach((l, i) => {
    out.addLink(
      {
        filesystem: fsOf(l, `storage.links[${i}]`),
        path: l.path,
        overwrite: l.overwrite,
        user: ownerOf(l.user),
        group: ownerOf(l.group),
        target: l.target,
        hard: l.hard,
        at: positionsOf(l),
      },
      posOf(l, 'path'),
    );
  });

  for (const d of storage.disks ?? []) {
    m.disks.push({
      device: d.device,
      wipeTable: d.wipe_table,
      partitions: (d.partitions ?? []).map((p) => ({
        label: p.label,
        number: p.number,
        sizeBytes: p.size,
        startBytes: p.start,
        typeGuid: p.type_guid,
        guid: p.guid,
        at: positionsOf(p),
      })),
      at: positionsOf(d),
    });
  }
  for (const r of storage.raid ?? []) {
    m.raid.push({ name: r.name, level: r.level, devices: r.devices, spares: r.spares, options: r.options, at: positionsOf(r) });
  }
}
