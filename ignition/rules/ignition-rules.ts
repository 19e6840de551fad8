/**
 * Ignition's own checks of a config, applied by ct to what it emits, so that a config Ignition would refuse at first
 * boot is refused here, at the YAML that caused it (transpile.ts maps each problem's JSON path back through the
 * emitters' source map).
 *
 * For spec 3.3.0 these are the rules of Ignition 2.14 (`config/v3_3/types`, `config/validate`, as Debian's
 * ignition-validate applies them, which the tests hold this module to): clean absolute paths, modes, systemd unit and
 * drop-in names and contents, resource URLs (Go's url.Parse, data URLs as dataurl decodes them), hashes, disks and
 * partitions, RAID arrays, filesystems, links, and duplicate entries. For spec 2.2.0 (Ignition 0.x) the rules that
 * version had for what ct emits: absolute paths, modes, units, networkd units and drop-ins, URLs and RAID arrays.
 */
import * as posixPath from 'node:path/posix';
import { checkDataUrl } from './data-url';
import { goQueryValues, parseGoUrl } from './go-url';
import { parseUnitFile } from './unit-file';

export type JsonPath = (string | number)[];

export interface IgnitionProblem {
  severity: 'error' | 'warning';
  /** Where in the Ignition config, e.g. ["storage", "files", 0, "path"]. */
  path: JsonPath;
  /** Ignition's message. */
  message: string;
  /** For unit contents: the 0-based line of the contents the problem is on. */
  line?: number;
}

/** "storage.files[0].path" */
export function formatJsonPath(path: JsonPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const notEmpty = (v: unknown): boolean => typeof v === 'string' && v !== '';

const UNIT_TYPES = ['.service', '.socket', '.device', '.mount', '.automount', '.swap', '.target', '.path', '.timer', '.snapshot', '.slice', '.scope'];
const NETWORKD_TYPES = ['.link', '.netdev', '.network'];
const RAID_LEVELS = ['linear', 'raid0', '0', 'stripe', 'raid1', '1', 'mirror', 'raid4', '4', 'raid5', '5', 'raid6', '6', 'raid10', '10'];
const FORMATS = ['ext4', 'btrfs', 'xfs', 'swap', 'vfat', 'none'];
const LABEL_MAX: Record<string, [number, string]> = { ext4: [16, 'ext4'], btrfs: [256, 'btrfs'], xfs: [12, 'xfs'], swap: [15, 'swap'], vfat: [11, 'vfat'] };
const GUID = /^(|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$/;
const HASH_HEX_LENGTH: Record<string, number> = { sha512: 128, sha256: 64 };

/** Go's path.Ext: from the last "." of the last element. */
function ext(name: string): string {
  for (let i = name.length - 1; i >= 0 && name[i] !== '/'; i--) if (name[i] === '.') return name.slice(i);
  return '';
}

/** Go's path.Clean. */
function goClean(p: string): string {
  if (p === '') return '.';
  const n = posixPath.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

class Checker {
  readonly problems: IgnitionProblem[] = [];

  constructor(private readonly spec3: boolean) {}

  error(path: JsonPath, message: string, line?: number): void {
    this.problems.push({ severity: 'error', path, message, line });
  }

  warn(path: JsonPath, message: string): void {
    this.problems.push({ severity: 'warning', path, message });
  }

  /** validatePath: set, absolute, and (spec 3) clean. */
  path(path: JsonPath, p: string | undefined, nilOk = false): void {
    if (p === undefined || p === '') {
      if (!nilOk) this.error(path, 'path not specified');
      return;
    }
    if (!p.startsWith('/')) this.error(path, 'path not absolute');
    else if (this.spec3 && goClean(p) !== p) this.error(path, 'path is not fully simplified');
  }

  url(path: JsonPath, s: string): void {
    if (!this.spec3 && s === '') return;
    const parsed = parseGoUrl(s);
    if (!parsed.ok) {
      this.error(path, 'unable to parse url');
      return;
    }
    const schemes = this.spec3 ? ['http', 'https', 'tftp', 'gs', 's3', 'data'] : ['http', 'https', 'oem', 'tftp', 's3', 'data'];
    const { scheme, rawQuery } = parsed.url;
    if (!schemes.includes(scheme)) {
      this.error(path, 'invalid url scheme');
    } else if (scheme === 'data') {
      const e = checkDataUrl(s);
      if (e) this.error(path, e);
    } else if (scheme === 's3' && this.spec3) {
      const v = goQueryValues(rawQuery).get('versionId');
      if (v !== undefined && (v.length === 0 || v[0] === '')) this.error(path, 'invalid S3 object VersionId');
    }
  }

  /** A resource: compression, verification and source (required for configs to merge and CAs). */
  resource(path: JsonPath, r: Json, sourceRequired: boolean): void {
    const source = str(r.source);
    const compression = str(r.compression);
    if (compression !== undefined && compression !== '' && compression !== 'gzip') this.error([...path, 'compression'], 'invalid compression method');
    const hash = str(obj(r.verification).hash);
    if (hash !== undefined) {
      if (source === undefined) this.error([...path, 'verification', 'hash'], 'source must be specified if verification is specified');
      this.hash([...path, 'verification', 'hash'], hash);
    }
    if (source !== undefined && source !== '') {
      this.url([...path, 'source'], source);
      // Where a source is required, Ignition checks it a second time, reporting at the resource.
      if (sourceRequired) this.url(path, source);
    } else if (sourceRequired) {
      this.error(path, 'source is required');
    }
  }

  hash(path: JsonPath, hash: string): void {
    const dash = hash.indexOf('-');
    if (dash < 0) {
      this.error(path, 'malformed hash specifier');
      return;
    }
    const len = HASH_HEX_LENGTH[hash.slice(0, dash)];
    if (len === undefined) this.error(path, 'unrecognized hash function');
    else if (hash.length - dash - 1 !== len) this.error(path, 'incorrect size for hash sum');
  }

  mode(path: JsonPath, mode: number | undefined): void {
    if (mode === undefined) return;
    if (mode < 0 || mode > 0o7777) this.error(path, 'illegal file mode');
    // As a uint32, which makes a negative mode have them too.
    if (this.spec3 && ((mode >>> 0) & 0o7000) !== 0) this.warn(path, 'setuid/setgid/sticky bits are not supported in spec versions older than 3.4.0');
  }

  owner(path: JsonPath, o: Json): void {
    if (o.id !== undefined && notEmpty(o.name)) this.error(path, 'cannot set both id and name');
  }

  node(path: JsonPath, n: Json): void {
    this.path([...path, 'path'], str(n.path));
    this.owner([...path, 'user'], obj(n.user));
    this.owner([...path, 'group'], obj(n.group));
  }

  /** Unit file text: what go-systemd's deserializer refuses. Returns the options, or undefined if unreadable. */
  unitContents(path: JsonPath, contents: string | undefined): { section: string }[] | undefined {
    if (contents === undefined) return [];
    const parsed = parseUnitFile(contents);
    if (parsed.ok) return parsed.options;
    this.error(path, `invalid unit content: ${parsed.error}`, parsed.line);
    return undefined;
  }

  /** Entries of one list whose keys repeat (ValidateDups): the second and later ones. */
  duplicates(items: [JsonPath, string][]): void {
    const seen = new Set<string>();
    for (const [path, key] of items) {
      if (seen.has(key)) this.error(path, 'duplicate entry defined');
      seen.add(key);
    }
  }

  strings(path: JsonPath, list: unknown[]): void {
    this.duplicates(list.map((v, i) => [[...path, i], String(v)]));
  }
}

function checkIgnitionSection(c: Checker, ign: Json, spec3: boolean): void {
  const config = obj(ign.config);
  const merge = spec3 ? 'merge' : 'append';
  arr(config[merge]).forEach((r, i) => c.resource(['ignition', 'config', merge, i], obj(r), true));
  if (config.replace !== undefined) c.resource(['ignition', 'config', 'replace'], obj(config.replace), false);
  const cas = arr(obj(obj(ign.security).tls).certificateAuthorities);
  cas.forEach((r, i) => c.resource(['ignition', 'security', 'tls', 'certificateAuthorities', i], obj(r), true));
  if (spec3) {
    c.duplicates(arr(config.merge).map((r, i) => [['ignition', 'config', 'merge', i], str(obj(r).source) ?? '']));
    c.duplicates(cas.map((r, i) => [['ignition', 'security', 'tls', 'certificateAuthorities', i], str(obj(r).source) ?? '']));
  }
}

function checkDisk(c: Checker, path: JsonPath, d: Json): void {
  const device = str(d.device);
  if (device === undefined || device === '') {
    c.error([...path, 'device'], 'disk device is required');
    return;
  }
  c.path([...path, 'device'], device);
  const parts = arr(d.partitions).map(obj);
  parts.forEach((p, i) => {
    const pp = [...path, 'partitions', i];
    const label = str(p.label);
    if ((int(p.number) ?? 0) === 0 && label === undefined) c.error(pp, 'a partition number >= 1 or a label must be specified');
    if (label !== undefined && Buffer.byteLength(label) > 36) c.error([...pp, 'label'], 'partition labels may not exceed 36 characters');
    if (label !== undefined && label.includes(':')) c.error([...pp, 'label'], 'partition label will be truncated to text before the colon');
    for (const key of ['guid', 'typeGuid']) {
      const g = str(p[key]);
      if (g !== undefined && !GUID.test(g)) c.error([...pp, key], 'doesn\'t match the form "01234567-89AB-CDEF-EDCB-A98765432101"');
    }
  });
  // Numbers and labels that collide (the second of the first pair), and partitions that overlap.
  const byNumber = new Map<number, number[]>();
  parts.forEach((p, i) => {
    const n = int(p.number) ?? 0;
    if (n !== 0) byNumber.set(n, [...(byNumber.get(n) ?? []), i]);
  });
  const collision = [...byNumber.values()].find((l) => l.length > 1);
  if (collision) c.error([...path, 'partitions', collision[1]], 'partition numbers collide');
  const placed = parts.map((p) => ({ start: int(p.startMiB), size: int(p.sizeMiB) }));
  const end = (p: { start?: number; size?: number }): number => ((p.size ?? 0) === 0 ? (p.start ?? 0) : (p.start ?? 0) + (p.size ?? 0) - 1);
  const overlap = ((): number | undefined => {
    for (const p of placed) {
      if (p.start === undefined || p.size === undefined || p.start === 0) continue;
      for (let i = 0; i < placed.length; i++) {
        const o = placed[i];
        if (o === p || o.start === undefined || o.size === undefined || o.start === 0) continue;
        if ((p.start >= o.start && p.start <= end(o)) || (end(p) >= o.start && end(p) <= end(o)) || (p.start < o.start && end(p) > end(o))) return i;
      }
    }
    return undefined;
  })();
  if (overlap !== undefined) c.error([...path, 'partitions', overlap], 'partitions overlap');
  const labels = new Set<string>();
  const labelCollision = parts.findIndex((p) => {
    const label = str(p.label);
    if (label === undefined) return false;
    if (labels.has(label)) return true;
    labels.add(label);
    return false;
  });
  if (labelCollision >= 0) c.error([...path, 'partitions', labelCollision], 'cannot use the same partition label twice');
  c.duplicates(
    parts.map((p, i) => {
      const n = int(p.number) ?? 0;
      const key = n !== 0 ? `number:${n}` : str(p.label) !== undefined ? `label:${str(p.label)}` : '';
      return [[...path, 'partitions', i], key];
    }),
  );
}

function checkRaid(c: Checker, path: JsonPath, r: Json, spec3: boolean): void {
  const level = str(r.level);
  if (level === undefined || level === '') {
    c.error([...path, 'level'], spec3 ? 'raid level is required' : 'unrecognized raid level');
  } else if (!RAID_LEVELS.includes(level)) {
    c.error([...path, 'level'], 'unrecognized raid level');
  } else if (['linear', 'raid0', '0', 'stripe'].includes(level) && (int(r.spares) ?? 0) !== 0) {
    c.error([...path, 'level'], 'spares unsupported for linear and raid0 arrays');
  }
  const devices = arr(r.devices);
  if (devices.length === 0 && spec3) c.error([...path, 'devices'], 'raid devices required');
  devices.forEach((d, i) => c.path([...path, 'devices', i], str(d)));
  if (spec3) c.strings([...path, 'devices'], devices);
}

function checkFilesystem(c: Checker, path: JsonPath, f: Json): void {
  c.path([...path, 'path'], str(f.path), true);
  c.path([...path, 'device'], str(f.device));
  const format = str(f.format);
  const label = str(f.label);
  if (format === undefined || format === '') {
    if (notEmpty(f.path) || notEmpty(label) || notEmpty(f.uuid) || f.wipeFilesystem === true || arr(f.mountOptions).length > 0 || arr(f.options).length > 0) {
      c.error([...path, 'format'], 'format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions is specified');
    }
  } else if (!FORMATS.includes(format)) {
    c.error([...path, 'format'], 'invalid filesystem format');
  }
  if (label !== undefined && label !== '') {
    if (format === undefined || format === '') {
      c.error([...path, 'label'], 'filesystem must specify format if label is specified');
    } else if (LABEL_MAX[format] && label.length > LABEL_MAX[format][0]) {
      const [max, name] = LABEL_MAX[format];
      c.error([...path, 'label'], `filesystem labels cannot be longer than ${max} characters when using ${name}`);
    }
  }
}

function checkStorage(c: Checker, storage: Json, spec3: boolean): void {
  const disks = arr(storage.disks).map(obj);
  disks.forEach((d, i) => checkDisk(c, ['storage', 'disks', i], d));
  const raid = arr(storage.raid).map(obj);
  raid.forEach((r, i) => checkRaid(c, ['storage', 'raid', i], r, spec3));
  const filesystems = arr(storage.filesystems).map(obj);
  if (spec3) filesystems.forEach((f, i) => checkFilesystem(c, ['storage', 'filesystems', i], f));
  const files = arr(storage.files).map(obj);
  const directories = arr(storage.directories).map(obj);
  const links = arr(storage.links).map(obj);

  files.forEach((f, i) => {
    const path = ['storage', 'files', i];
    c.node(path, f);
    c.mode([...path, 'mode'], int(f.mode));
    const contents = obj(f.contents);
    if (spec3 && f.overwrite === true && contents.source === undefined) c.error([...path, 'overwrite'], 'overwrite must be false if source is unspecified');
    c.resource([...path, 'contents'], contents, false);
    if (spec3) arr(f.append).forEach((a, j) => c.resource([...path, 'append', j], obj(a), false));
  });
  directories.forEach((d, i) => {
    c.node(['storage', 'directories', i], d);
    c.mode(['storage', 'directories', i, 'mode'], int(d.mode));
  });
  links.forEach((l, i) => c.node(['storage', 'links', i], l));
  if (!spec3) return;

  // A node below a link would be written through it; links need targets; hard links cannot point at directories.
  const linkPaths = links.map((l) => str(l.path) ?? '');
  const below = (p: unknown): boolean => linkPaths.some((l) => (str(p) ?? '').startsWith(`${l}/`));
  directories.forEach((d, i) => below(d.path) && c.error(['storage', 'directories', i], 'directory path includes link in config'));
  files.forEach((f, i) => below(f.path) && c.error(['storage', 'files', i], 'file path includes link in config'));
  links.forEach((l, i) => {
    if (below(l.path)) c.error(['storage', 'links', i], 'link path includes link in config');
    const target = str(l.target);
    if (target === undefined || target === '') {
      c.error(['storage', 'links', i, 'target'], 'link target is required');
      return;
    }
    if (l.hard !== true) return;
    let t = goClean(target);
    if (!t.startsWith('/')) t = posixPath.join(str(l.path) ?? '', target);
    directories.forEach((d) => d.path === t && c.error(['storage', 'links', i], 'hard link target is a directory'));
  });

  c.duplicates(disks.map((d, i) => [['storage', 'disks', i], str(d.device) ?? '']));
  c.duplicates(raid.map((r, i) => [['storage', 'raid', i], str(r.name) ?? '']));
  c.duplicates(filesystems.map((f, i) => [['storage', 'filesystems', i], str(f.device) ?? '']));
  // Files, directories and links share one namespace: their paths.
  c.duplicates([
    ...directories.map((d, i): [JsonPath, string] => [['storage', 'directories', i], str(d.path) ?? '']),
    ...files.map((f, i): [JsonPath, string] => [['storage', 'files', i], str(f.path) ?? '']),
    ...links.map((l, i): [JsonPath, string] => [['storage', 'links', i], str(l.path) ?? '']),
  ]);
}

function checkDropins(c: Checker, path: JsonPath, dropins: Json[], spec3: boolean, networkd: boolean): void {
  dropins.forEach((d, i) => {
    const dp = [...path, 'dropins', i];
    c.unitContents([...dp, 'contents'], str(d.contents));
    if (ext(str(d.name) ?? '') !== '.conf') c.error([...dp, 'name'], networkd ? 'invalid networkd drop-in extension' : 'invalid systemd drop-in extension');
  });
  if (spec3) c.duplicates(dropins.map((d, i) => [[...path, 'dropins', i], str(d.name) ?? '']));
}

function checkSystemd(c: Checker, systemd: Json, spec3: boolean): void {
  const units = arr(systemd.units).map(obj);
  units.forEach((u, i) => {
    const path = ['systemd', 'units', i];
    const name = str(u.name) ?? '';
    if (!UNIT_TYPES.includes(ext(name))) c.error([...path, 'name'], 'invalid systemd unit extension');
    const contents = str(u.contents);
    const options = c.unitContents([...path, 'contents'], contents);
    const enabled = u.enabled === true || (!spec3 && u.enable === true);
    if (enabled && contents !== undefined && contents !== '' && options && !options.some((o) => o.section === 'Install')) {
      c.warn([...path, 'contents'], `unit ${JSON.stringify(name)} is enabled, but has no install section so enable does nothing`);
    }
    checkDropins(c, path, arr(u.dropins).map(obj), spec3, false);
  });
  if (spec3) c.duplicates(units.map((u, i) => [['systemd', 'units', i], str(u.name) ?? '']));
}

function checkNetworkd(c: Checker, networkd: Json): void {
  arr(networkd.units)
    .map(obj)
    .forEach((u, i) => {
      const path = ['networkd', 'units', i];
      c.unitContents([...path, 'contents'], str(u.contents));
      if (!NETWORKD_TYPES.includes(ext(str(u.name) ?? ''))) c.error([...path, 'name'], 'invalid networkd unit extension');
      checkDropins(c, path, arr(u.dropins).map(obj), false, true);
    });
}

function checkPasswd(c: Checker, passwd: Json): void {
  const users = arr(passwd.users).map(obj);
  const groups = arr(passwd.groups).map(obj);
  users.forEach((u, i) => {
    c.strings(['passwd', 'users', i, 'sshAuthorizedKeys'], arr(u.sshAuthorizedKeys));
    c.strings(['passwd', 'users', i, 'groups'], arr(u.groups));
  });
  c.duplicates(users.map((u, i) => [['passwd', 'users', i], str(u.name) ?? '']));
  c.duplicates(groups.map((g, i) => [['passwd', 'groups', i], str(g.name) ?? '']));
}

/** Every problem Ignition would report for `config`, an Ignition config of spec 3.3.0 or 2.2.0 as ct emits them. */
export function checkIgnitionConfig(config: object): IgnitionProblem[] {
  const root = obj(config);
  const version = str(obj(root.ignition).version) ?? '';
  const spec3 = version.startsWith('3.');
  const c = new Checker(spec3);
  checkIgnitionSection(c, obj(root.ignition), spec3);
  checkStorage(c, obj(root.storage), spec3);
  checkSystemd(c, obj(root.systemd), spec3);
  if (!spec3) checkNetworkd(c, obj(root.networkd));
  if (spec3) checkPasswd(c, obj(root.passwd));
  return c.problems;
}
