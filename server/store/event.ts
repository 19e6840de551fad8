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
