/** Helpers shared by the spec emitters. */
import type { Resource, User, Group } from './model';

/** Drops undefined values, empty lists and empty objects, recursively, so the JSON carries only what was said. */
export function prune(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(prune).filter((v) => v !== undefined);
    return items.length > 0 ? items : undefined;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v);
      if (p !== undefined) out[k] = p;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }
  return value;
}

/** A resource in both specs' shape: `{source, compression, verification: {hash}}`. */
export function emitResource(r: Resource | undefined): object | undefined {
  if (!r) return undefined;
  return { source: r.source, compression: r.compression, verification: r.hash ? { hash: r.hash } : undefined };
}

/** Users and groups have the same shape in spec 2.2 and 3.3. */
export function emitPasswd(users: User[], groups: Group[]): object {
  return { users: users.map((u) => ({ ...u })), groups: groups.map((g) => ({ ...g })) };
}

/** JSON text of a config; compact by default like ct, indented with --pretty. */
export function serialize(config: object, pretty: boolean): string {
  return pretty ? `${JSON.stringify(config, null, 2)}\n` : `${JSON.stringify(config)}\n`;
}
