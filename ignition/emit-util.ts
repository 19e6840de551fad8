/** Helpers shared by the spec emitters. */
import { positionsOf, type Positions } from './decode';
import type { Group, Resource, User } from './model';
import type { JsonPath } from './rules/ignition-rules';
import type { Position } from './yaml-positions';

/** Where an emitted JSON object or list came from: itself, the values of its keys, and the lines of its texts. */
interface Origin {
  node?: Position;
  keys: Record<string, Position | undefined>;
  lines: Record<string, readonly (Position | undefined)[]>;
}

/** "wipeTable" → "wipe_table": the CLC spells Ignition's keys in snake case. */
const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Remembers, for the objects and lists an emitter writes, where in the CLC they came from, so that a problem found in
 * the Ignition config (by its JSON path) is reported at the YAML that caused it.
 */
export class SourceMap {
  private readonly origins = new WeakMap<object, Origin>();

  /**
   * Marks `json` as coming from the CLC object (or list) with positions `at`. Each key of `json` is looked up in
   * `at` under its snake-case name, or under `rename[key]` where the CLC names it differently.
   */
  mark<T extends object>(json: T, at: Positions | undefined, rename: Record<string, string> = {}, lines: Origin['lines'] = {}): T {
    if (!at) return json;
    const keys: Record<string, Position | undefined> = {};
    for (const key of Object.keys(json)) keys[key] = at.values[rename[key] ?? snake(key)];
    this.origins.set(json, { node: at.node, keys, lines });
    return json;
  }

  /** Carries `from`'s origin over to its copy `to`. */
  carry(from: object, to: object): void {
    const o = this.origins.get(from);
    if (o) this.origins.set(to, o);
  }

  /**
   * Where the value at `path` in `root` came from: the nearest marked place on the way down, the value's own
   * position when its container knows it (and, for a text, its `line`'s, when known).
   */
  positionOf(root: unknown, path: JsonPath, line?: number): Position | undefined {
    let best: Position | undefined;
    let cur: unknown = root;
    for (let i = 0; i <= path.length; i++) {
      const o = cur !== null && typeof cur === 'object' ? this.origins.get(cur) : undefined;
      if (o?.node) best = o.node;
      if (i === path.length) break;
      const key = String(path[i]);
      if (o?.keys[key]) best = o.keys[key];
      if (o && line !== undefined && i === path.length - 1) best = o.lines[key]?.[line] ?? best;
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[key] : undefined;
    }
    return best;
  }
}

/**
 * Drops undefined values, empty lists and empty objects, recursively, so the JSON carries only what was said. The
 * copies keep the origins `src` knows for the originals.
 */
export function prune(value: unknown, src?: SourceMap): unknown {
  if (Array.isArray(value)) {
    const items = value.map((v) => prune(v, src)).filter((v) => v !== undefined);
    src?.carry(value, items);
    return items.length > 0 ? items : undefined;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v, src);
      if (p !== undefined) out[k] = p;
    }
    src?.carry(value, out);
    return Object.keys(out).length > 0 ? out : undefined;
  }
  return value;
}

/** A resource in both specs' shape: `{source, compression, verification: {hash}}`. */
export function emitResource(r: Resource | undefined, src: SourceMap): object | undefined {
  if (!r) return undefined;
  const json = { source: r.source, compression: r.compression, verification: r.hash ? { hash: r.hash } : undefined };
  return src.mark(json, r.at);
}

/** Users and groups have the same shape in spec 2.2 and 3.3. */
export function emitPasswd(users: User[], groups: Group[], src: SourceMap): object {
  return {
    users: users.map((u) =>
      src.mark(
        {
          name: u.name,
          passwordHash: u.passwordHash,
          sshAuthorizedKeys: u.sshAuthorizedKeys && src.mark([...u.sshAuthorizedKeys], positionsOf(u.sshAuthorizedKeys)),
          uid: u.uid,
          gecos: u.gecos,
          homeDir: u.homeDir,
          noCreateHome: u.noCreateHome,
          primaryGroup: u.primaryGroup,
          groups: u.groups && src.mark([...u.groups], positionsOf(u.groups)),
          noUserGroup: u.noUserGroup,
          noLogInit: u.noLogInit,
          shell: u.shell,
          system: u.system,
        },
        u.at,
      ),
    ),
    groups: groups.map((g) => src.mark({ name: g.name, gid: g.gid, passwordHash: g.passwordHash, system: g.system }, g.at)),
  };
}

/** JSON text of a config; compact by default like ct, indented with --pretty. */
export function serialize(config: object, pretty: boolean): string {
  return pretty ? `${JSON.stringify(config, null, 2)}\n` : `${JSON.stringify(config)}\n`;
}
