/**
 * The translated config, independent of the Ignition spec version it will be written as (see emit-v3.ts and
 * emit-v2.ts). Sections add to it through `ModelBuilder`, which merges what several sections say about the same
 * systemd unit and rejects two different definitions of the same path.
 *
 * Entries carry `at`, where the CLC defines them (the decoded object's positions, keyed by CLC key), so that the
 * emitters can tell where each part of the Ignition config came from (see `SourceMap` in emit-util.ts).
 */
import type { Positions } from './decode';
import type { Report } from './diagnostics';
import type { Position } from './yaml-positions';

/** Where a model entry is defined in the CLC. */
export interface Sourced {
  at?: Positions;
}

/** A fetched or inline resource: `source` is a URL (data URLs for inline contents). */
export interface Resource extends Sourced {
  source: string;
  compression?: string;
  /** "sha512-<hex>" */
  hash?: string;
}

export interface Owner {
  id?: number;
  name?: string;
}

export interface NodeCommon extends Sourced {
  /** Ignition filesystem name; "root" is the root filesystem. */
  filesystem: string;
  path: string;
  overwrite?: boolean;
  user?: Owner;
  group?: Owner;
  /** Where the CLC defines it, for messages from the emitters. */
  pos?: Position;
}

export interface FileEntry extends NodeCommon {
  mode: number;
  contents?: Resource;
  /** Append `contents` to the file instead of replacing it. */
  append?: boolean;
}

export interface DirectoryEntry extends NodeCommon {
  mode: number;
}

export interface LinkEntry extends NodeCommon {
  target: string;
  hard?: boolean;
}

export interface Dropin extends Sourced {
  name: string;
  contents?: string;
  /** For contents ct composes: where in the CLC each line of it comes from (by 0-based line). */
  lines?: readonly (Position | undefined)[];
}

export interface Unit extends Sourced {
  name: string;
  enabled?: boolean;
  mask?: boolean;
  contents?: string;
  dropins: Dropin[];
}

export interface NetworkdUnit extends Sourced {
  name: string;
  contents?: string;
  dropins: Dropin[];
  /** Where the CLC defines it, for messages from the emitters. */
  pos?: Position;
}

export interface User extends Sourced {
  name: string;
  passwordHash?: string;
  sshAuthorizedKeys?: string[];
  uid?: number;
  gecos?: string;
  homeDir?: string;
  noCreateHome?: boolean;
  primaryGroup?: string;
  groups?: string[];
  noUserGroup?: boolean;
  noLogInit?: boolean;
  shell?: string;
  system?: boolean;
}

export interface Group extends Sourced {
  name: string;
  gid?: number;
  passwordHash?: string;
  system?: boolean;
}

export interface Partition extends Sourced {
  label?: string;
  number?: number;
  /** Bytes; 0 means "the rest of the disk" / "the first free spot". */
  sizeBytes?: number;
  startBytes?: number;
  typeGuid?: string;
  guid?: string;
}

export interface Disk extends Sourced {
  device: string;
  wipeTable?: boolean;
  partitions: Partition[];
}

export interface Raid extends Sourced {
  name: string;
  level: string;
  devices: string[];
  spares?: number;
  /** Extra mdadm options, passed on as they are. */
  options?: string[];
}

export interface Filesystem extends Sourced {
  name?: string;
  /** Where the filesystem is (or will be) mounted, when known. */
  path?: string;
  mount?: {
    device: string;
    format: string;
    wipeFilesystem?: boolean;
    label?: string;
    uuid?: string;
    options?: string[];
    at?: Positions;
  };
  /** Where the CLC defines it, for messages from the emitters. */
  pos?: Position;
}

export interface Model {
  ignition: {
    merge: Resource[];
    replace?: Resource;
    timeouts: { httpResponseHeaders?: number; httpTotal?: number };
    certificateAuthorities: Resource[];
  };
  storage: {
    disks: Disk[];
    raid: Raid[];
    filesystems: Filesystem[];
    files: FileEntry[];
    directories: DirectoryEntry[];
    links: LinkEntry[];
  };
  systemd: { units: Unit[] };
  networkd: { units: NetworkdUnit[] };
  passwd: { users: User[]; groups: Group[] };
}

export function emptyModel(): Model {
  return {
    ignition: { merge: [], timeouts: {}, certificateAuthorities: [] },
    storage: { disks: [], raid: [], filesystems: [], files: [], directories: [], links: [] },
    systemd: { units: [] },
    networkd: { units: [] },
    passwd: { users: [], groups: [] },
  };
}

/** Where a unit's settings were given, for messages about what several sections say together. */
export interface UnitPositions {
  enabled?: Position;
  mask?: Position;
}

const at = (p: Position | undefined): string => (p ? ` at line ${p.line}, column ${p.column}` : '');

/** Adds to a Model, keeping unit names and file paths unique. */
export class ModelBuilder {
  readonly model = emptyModel();
  private readonly paths = new Map<string, Position | undefined>();
  private readonly unitPositions = new Map<string, UnitPositions>();

  constructor(private readonly report: Report) {}

  private claimPath(kind: string, node: NodeCommon, pos?: Position): boolean {
    const key = `${node.filesystem}:${node.path}`;
    if (this.paths.has(key)) {
      const first = this.paths.get(key);
      const where = first ? ` (first defined${at(first)})` : '';
      this.report.error(`${kind} "${node.path}" is defined more than once${where}`, pos);
      return false;
    }
    this.paths.set(key, pos);
    return true;
  }

  addFile(file: FileEntry, pos?: Position): void {
    if (this.claimPath('file', file, pos)) this.model.storage.files.push({ ...file, pos });
  }

  addDirectory(dir: DirectoryEntry, pos?: Position): void {
    if (this.claimPath('directory', dir, pos)) this.model.storage.directories.push({ ...dir, pos });
  }

  addLink(link: LinkEntry, pos?: Position): void {
    if (this.claimPath('link', link, pos)) this.model.storage.links.push({ ...link, pos });
  }

  /**
   * Adds a unit, or merges it into the unit of the same name: drop-ins are appended, and a setting given by both
   * must agree (e.g. the etcd section enables etcd-member.service and the systemd section adds a drop-in to it).
   * `pos` is where the unit is defined; `keyPos` where its `enabled` and `mask` are, when the CLC says them.
   *
   * A merge must not leave the unit both masked and enabled (e.g. `mask: true` in systemd.units and the etcd section,
   * which enables etcd-member.service): Ignition would write the mask and the enablement, and the masked unit would
   * never start, which is certainly not what was meant. The systemd section rejects the two on one entry itself.
   */
  addUnit(unit: Unit, pos?: Position, keyPos: UnitPositions = {}): void {
    const positions = this.unitPositions.get(unit.name) ?? {};
    this.unitPositions.set(unit.name, positions);
    const existing = this.model.systemd.units.find((u) => u.name === unit.name);
    if (!existing) {
      if (unit.enabled !== undefined) positions.enabled = keyPos.enabled ?? pos;
      if (unit.mask !== undefined) positions.mask = keyPos.mask ?? pos;
      this.model.systemd.units.push({ ...unit, dropins: [...unit.dropins] });
      return;
    }
    const wasMaskedAndEnabled = existing.mask === true && existing.enabled === true;
    for (const key of ['enabled', 'mask', 'contents'] as const) {
      if (unit[key] === undefined) continue;
      if (existing[key] !== undefined && existing[key] !== unit[key]) {
        this.report.error(`unit "${unit.name}": conflicting "${key}" settings for the same unit`, pos);
        continue;
      }
      (existing as unknown as Record<string, unknown>)[key] = unit[key];
      if (key !== 'contents' && positions[key] === undefined) positions[key] = keyPos[key] ?? pos;
    }
    if (!wasMaskedAndEnabled && existing.mask === true && existing.enabled === true) {
      this.report.error(
        `unit "${unit.name}": a unit cannot be both masked and enabled (masked here, enabled${at(positions.enabled)})`,
        positions.mask ?? pos,
      );
    }
    for (const d of unit.dropins) {
      if (existing.dropins.some((e) => e.name === d.name)) {
        this.report.error(`unit "${unit.name}": drop-in "${d.name}" is defined more than once`, pos);
      } else {
        existing.dropins.push(d);
      }
    }
  }
}
