/** Events and node representations of the v2 API, serialized exactly as etcd's Go structs are. */

export const Action = {
  Get: 'get',
  Create: 'create',
  Set: 'set',
  Update: 'update',
  Delete: 'delete',
  CompareAndSwap: 'compareAndSwap',
  CompareAndDelete: 'compareAndDelete',
  Expire: 'expire',
} as const;

/** A node as the API shows it. Build with nodeExtern() so that fields come in etcd's order. */
export interface NodeExtern {
  key?: string;
  value?: string;
  dir?: boolean;
  expiration?: string;
  ttl?: number;
  nodes?: NodeExtern[];
  modifiedIndex?: number;
  createdIndex?: number;
}

/** etcd's field order (key, value, dir, expiration, ttl, nodes, modifiedIndex, createdIndex), empty ones omitted. */
export function nodeExtern(f: NodeExtern): NodeExtern {
  const n: NodeExtern = {};
  if (f.key) n.key = f.key;
  if (f.value !== undefined) n.value = f.value;
  if (f.dir) n.dir = true;
  if (f.expiration !== undefined) n.expiration = f.expiration;
  if (f.ttl) n.ttl = f.ttl;
  if (f.nodes && f.nodes.length > 0) n.nodes = f.nodes;
  if (f.modifiedIndex) n.modifiedIndex = f.modifiedIndex;
  if (f.createdIndex) n.createdIndex = f.createdIndex;
  return n;
}

export class V2Event {
  refresh = false;

  constructor(
    readonly action: string,
    readonly node: NodeExtern,
    public prevNode: NodeExtern | undefined,
    /** The store's index when the event was answered (the X-Etcd-Index header). */
    public etcdIndex: number,
  ) {}

  /** The index the event happened at. */
  index(): number {
    return this.node.modifiedIndex ?? 0;
  }

  /** Answered with 201 Created: a create, or a set of a key that did not exist. */
  isCreated(): boolean {
    return this.action === Action.Create || (this.action === Action.Set && this.prevNode === undefined);
  }

  withEtcdIndex(etcdIndex: number): V2Event {
    const e = new V2Event(this.action, this.node, this.prevNode, etcdIndex);
    e.refresh = this.refresh;
    return e;
  }

  toJSON(): object {
    // etcd copies an event before answering and the copy drops the refresh flag: clients never see it.
    const j: { action: string; node: NodeExtern; prevNode?: NodeExtern } = { action: this.action, node: this.node };
    if (this.prevNode) j.prevNode = this.prevNode;
    return j;
  }
}

/** Go's RFC 3339 with nanoseconds, for a time in ms: trailing zeros of the fraction dropped. */
export function formatExpiration(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-25T05:50:12.120Z
  return iso.replace(/\.?0+Z$/, 'Z').replace(/\.Z$/, 'Z');
}

/** Nesting of `nodes` up to which JSON.stringify is used as is (V8's recursive stringify fails at a few thousand). */
const NATIVE_JSON_DEPTH = 64;

/** Whether the node has `nodes` nested deeper than `limit` levels (a walk with an explicit stack). */
function deeperThan(root: NodeExtern, limit: number): boolean {
  const stack: [NodeExtern, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [n, d] = stack.pop()!;
    if (!n.nodes) continue;
    if (d + 1 > limit) return true;
    for (const c of n.nodes) if (c.nodes) stack.push([c, d + 1]);
  }
  return false;
}

/** A node tree as JSON, field order as JSON.stringify gives it, walked with an explicit stack: any depth. */
function nodeJSON(root: NodeExtern): string {
  const out: string[] = [];
  // Work left to do, last first: text to emit as is, or a node to expand.
  const todo: (string | NodeExtern)[] = [root];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (typeof t === 'string') {
      out.push(t);
      continue;
    }
    const items: (string | NodeExtern)[] = ['{'];
    let first = true;
    for (const [k, v] of Object.entries(t)) {
      if (v === undefined) continue;
      const name = (first ? '' : ',') + JSON.stringify(k) + ':';
      first = false;
      if (k === 'nodes') {
        items.push(name + '[');
        (v as NodeExtern[]).forEach((c, i) => {
          if (i > 0) items.push(',');
          items.push(c);
        });
        items.push(']');
      } else {
        items.push(name + JSON.stringify(v));
      }
    }
    items.push('}');
    for (let i = items.length - 1; i >= 0; i--) todo.push(items[i]);
  }
  return out.join('');
}

/** A node without `nodes` as JSON.stringify writes one built by nodeExtern(): its fields in etcd's order. */
function flatNodeJSON(n: NodeExtern): string {
  let s = '';
  if (n.key !== undefined) s += `,"key":${JSON.stringify(n.key)}`;
  if (n.value !== undefined) s += `,"value":${JSON.stringify(n.value)}`;
  if (n.dir !== undefined) s += `,"dir":${JSON.stringify(n.dir)}`;
  if (n.expiration !== undefined) s += `,"expiration":${JSON.stringify(n.expiration)}`;
  if (n.ttl !== undefined) s += `,"ttl":${JSON.stringify(n.ttl)}`;
  if (n.modifiedIndex !== undefined) s += `,"modifiedIndex":${JSON.stringify(n.modifiedIndex)}`;
  if (n.createdIndex !== undefined) s += `,"createdIndex":${JSON.stringify(n.createdIndex)}`;
  return s === '' ? '{}' : `{${s.slice(1)}}`;
}

/**
 * An answer's JSON text: the same text as JSON.stringify(e), also for a recursive listing of a tree thousands of
 * levels deep, where JSON.stringify throws "Maximum call stack size exceeded".
 */
export function eventJSON(e: V2Event | { action: string }): string {
  if (!(e instanceof V2Event)) return JSON.stringify(e);
  // The common answer, one key (and the one before it): written field by field, without JSON.stringify's walk of
  // the event's toJSON() object.
  if (!e.node.nodes && !e.prevNode?.nodes) {
    const node = `{"action":${JSON.stringify(e.action)},"node":${flatNodeJSON(e.node)}`;
    return e.prevNode ? `${node},"prevNode":${flatNodeJSON(e.prevNode)}}` : node + '}';
  }
  if (!deeperThan(e.node, NATIVE_JSON_DEPTH)) return JSON.stringify(e);
  const parts = [`{"action":${JSON.stringify(e.action)},"node":`, nodeJSON(e.node)];
  if (e.prevNode) parts.push(',"prevNode":', nodeJSON(e.prevNode));
  parts.push('}');
  return parts.join('');
}
