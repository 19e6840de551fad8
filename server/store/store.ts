import * as posixPath from 'node:path/posix';
import { ErrorCode, V2Error } from './errors';
import { Action, NodeExtern, V2Event, formatExpiration, nodeExtern } from './event';
import { TtlHeap } from './ttl-heap';
import { EventHistory, Watcher, WatcherHub } from './watcher-hub';

/**
 * etcd's v2 store: a tree of directories and keys with TTLs, an index bumped by every change, an event history
 * and watchers. It is a deterministic state machine: expiry happens only in deleteExpiredKeys(time) with the time
 * carried by the log; `now()` is read only to show the remaining TTL of a key in answers.
 */

/** Expiration times before this are taken as "no expiration" (as etcd does with zero times). */
const MIN_EXPIRE_TIME = Date.UTC(2000, 0, 1);

class StoreNode {
  value = '';
  children: Map<string, StoreNode> | undefined;
  expireTime = 0;
  heapIndex = -1;

  constructor(
    readonly path: string,
    public createdIndex: number,
    public modifiedIndex: number,
    public parent: StoreNode | undefined,
    dir: boolean,
  ) {
    if (dir) this.children = new Map();
  }

  get isDir(): boolean {
    return this.children !== undefined;
  }

  get isPermanent(): boolean {
    return this.expireTime === 0;
  }

  get name(): string {
    return this.path.slice(this.path.lastIndexOf('/') + 1);
  }

  get isHidden(): boolean {
    return this.name.startsWith('_');
  }
}

export interface TTLOptions {
  /** Absolute expiration in ms since the epoch; 0 for none. */
  expireTime: number;
  /** Refresh the TTL without changing the value, and without notifying watchers. */
  refresh?: boolean;
}

export const STATS_FIELDS = [
  'getsSuccess', 'getsFail', 'setsSuccess', 'setsFail', 'deleteSuccess', 'deleteFail', 'updateSuccess', 'updateFail',
  'createSuccess', 'createFail', 'compareAndSwapSuccess', 'compareAndSwapFail', 'compareAndDeleteSuccess',
  'compareAndDeleteFail', 'expireCount',
] as const;
export type StoreStats = Record<(typeof STATS_FIELDS)[number], number>;

function cleanPath(p: string): string {
  const c = posixPath.normalize(posixPath.join('/', p));
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

interface SavedNode {
  p: string;
  v?: string;
  c: number;
  m: number;
  e?: number;
  d?: SavedNode[];
}

export class V2Store {
  currentIndex = 0;
  private root = new StoreNode('/', 0, 0, undefined, true);
  private ttlHeap = new TtlHeap<StoreNode>();
  hub = new WatcherHub();
  readonly stats: StoreStats = Object.fromEntries(STATS_FIELDS.map((f) => [f, 0])) as StoreStats;

  constructor(private readonly now: () => number = Date.now) {}

  // ---- representation ----

  private ttlOf(n: StoreNode): { expiration?: string; ttl?: number } {
    if (n.isPermanent) return {};
    const left = n.expireTime - this.now();
    // ceil((expire - now) / 1s), as etcd: 1..n while the key lives
    const ttl = Math.ceil(left / 1000);
    return { expiration: formatExpiration(n.expireTime), ttl };
  }

  private repr(n: StoreNode, recursive: boolean, sorted: boolean): NodeExtern {
    if (n.isDir) {
      let nodes: NodeExtern[] | undefined;
      if (recursive) nodes = this.children(n, recursive, sorted);
      return nodeExtern({ key: n.path === '/' ? '' : n.path, dir: true, ...this.ttlOf(n), nodes, modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
    }
    return nodeExtern({ key: n.path, value: n.value, ...this.ttlOf(n), modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
  }

  private children(n: StoreNode, recursive: boolean, sorted: boolean): NodeExtern[] {
    const out: NodeExtern[] = [];
    for (const c of n.children!.values()) if (!c.isHidden) out.push(this.repr(c, recursive, sorted));
    if (sorted) out.sort((a, b) => ((a.key ?? '') < (b.key ?? '') ? -1 : (a.key ?? '') > (b.key ?? '') ? 1 : 0));
    return out;
  }

  // ---- lookups ----

  /** The node at a clean path, or undefined when there is none (internalGet says why, with etcd's error). */
  private find(nodePath: string): StoreNode | undefined {
    let curr: StoreNode | undefined = this.root;
    if (nodePath === '/') return curr;
    let start = 1;
    while (curr) {
      const end = nodePath.indexOf('/', start);
      const name = end < 0 ? nodePath.slice(start) : nodePath.slice(start, end);
      curr = curr.children?.get(name);
      if (end < 0) return curr;
      start = end + 1;
    }
    return undefined;
  }

  private internalGet(nodePath: string): StoreNode {
    const found = this.find(nodePath);
    if (found) return found;
    let curr = this.root;
    if (nodePath === '/') return curr;
    for (const name of nodePath.slice(1).split('/')) {
      if (!curr.children) throw new V2Error(ErrorCode.NotDir, curr.path, this.currentIndex);
      const child = curr.children.get(name);
      if (!child) throw new V2Error(ErrorCode.KeyNotFound, posixPath.join(curr.path, name), this.currentIndex);
      curr = child;
    }
    return curr;
  }

  private fail<T>(stat: keyof StoreStats, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.stats[stat]++;
      throw err;
    }
  }

  /** etcd_debugging_store_reads_total / _reads_failed_total, by etcd's action label (get, getRecursive). */
  readonly reads = { get: 0, getRecursive: 0 };
  readonly readsFailed = { get: 0, getRecursive: 0 };
  /** etcd_debugging_store_watch_requests_total: watches asked for (new or re-established). */
  watchRequests = 0;

  get(nodePath: string, recursive: boolean, sorted: boolean): V2Event {
    const action = recursive ? 'getRecursive' : 'get';
    this.reads[action]++;
    try {
      return this.getNode(nodePath, recursive, sorted);
    } catch (err) {
      this.readsFailed[action]++;
      throw err;
    }
  }

  private getNode(nodePath: string, recursive: boolean, sorted: boolean): V2Event {
    return this.fail('getsFail', () => {
      const p = cleanPath(nodePath);
      const n = this.internalGet(p);
      let node: NodeExtern;
      if (n.isDir) {
        node = nodeExtern({ key: p === '/' ? '' : p, dir: true, ...this.ttlOf(n), nodes: this.children(n, recursive, sorted), modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
      } else {
        node = this.repr(n, false, false);
      }
      this.stats.getsSuccess++;
      return new V2Event(Action.Get, node, undefined, this.currentIndex);
    });
  }

  // ---- writes ----

  private checkWritable(p: string, index: number): void {
    if (p === '/') throw new V2Error(ErrorCode.RootROnly, '/', index);
  }

  /** Walks to the directory for a new node, creating missing directories (with the next index). */
  private walkCreate(dirPath: string): StoreNode {
    let curr = this.root;
    if (dirPath === '/' || dirPath === '') return curr;
    for (const name of dirPath.replace(/^\/|\/$/g, '').split('/')) {
      if (name === '') continue;
      const child = curr.children!.get(name);
      if (child) {
        if (!child.isDir) throw new V2Error(ErrorCode.NotDir, child.path, this.currentIndex);
        curr = child;
        continue;
      }
      const d = new StoreNode(posixPath.join(curr.path, name), this.currentIndex + 1, this.currentIndex + 1, curr, true);
      curr.children!.set(name, d);
      curr = d;
    }
    return curr;
  }

  private internalCreate(nodePath: string, dir: boolean, value: string, unique: boolean, replace: boolean, expireTime: number, action: string): V2Event {
    const currIndex = this.currentIndex;
    const nextIndex = currIndex + 1;
    if (unique) nodePath += '/' + String(nextIndex).padStart(20, '0');
    const p = cleanPath(nodePath);
    this.checkWritable(p, currIndex);
    if (expireTime < MIN_EXPIRE_TIME) expireTime = 0;
    const slash = p.lastIndexOf('/');
    const dirName = p.slice(0, slash + 1);
    const name = p.slice(slash + 1);
    const d = this.walkCreate(dirName);
    let prevNode: NodeExtern | undefined;
    const existing = d.children!.get(name);
    if (existing) {
      if (!replace) throw new V2Error(ErrorCode.NodeExist, p, currIndex);
      if (existing.isDir) throw new V2Error(ErrorCode.NotFile, p, currIndex);
      prevNode = this.repr(existing, false, false);
      this.removeNode(existing, false, false, undefined);
    }
    const n = new StoreNode(p, nextIndex, nextIndex, d, dir);
    if (!dir) n.value = value;
    d.children!.set(name, n);
    if (expireTime !== 0) {
      n.expireTime = expireTime;
      this.ttlHeap.push(n);
    }
    this.currentIndex = nextIndex;
    const node = dir
      ? nodeExtern({ key: p, dir: true, ...this.ttlOf(n), modifiedIndex: nextIndex, createdIndex: nextIndex })
      : nodeExtern({ key: p, value, ...this.ttlOf(n), modifiedIndex: nextIndex, createdIndex: nextIndex });
    return new V2Event(action, node, prevNode, nextIndex);
  }

  create(nodePath: string, dir: boolean, value: string, unique: boolean, opts: TTLOptions): V2Event {
    return this.fail('createFail', () => {
      const e = this.internalCreate(nodePath, dir, value, unique, false, opts.expireTime, Action.Create);
      this.hub.notify(e);
      this.stats.createSuccess++;
      return e;
    });
  }

  set(nodePath: string, dir: boolean, value: string, opts: TTLOptions): V2Event {
    return this.fail('setsFail', () => {
      const p = cleanPath(nodePath);
      const prev = this.find(p);
      // A missing key cannot be refreshed: internalGet throws etcd's error (not found, or a file on the way).
      if (!prev && opts.refresh) this.internalGet(p);
      if (opts.refresh) value = prev!.value;
      const prevNode = prev ? this.repr(prev, false, false) : undefined;
      const e = this.internalCreate(p, dir, value, false, true, opts.expireTime, Action.Set);
      e.prevNode = prevNode;
      if (opts.refresh) {
        e.refresh = true;
        this.hub.add(e);
      } else {
        this.hub.notify(e);
      }
      this.stats.setsSuccess++;
      return e;
    });
  }

  update(nodePath: string, newValue: string, opts: TTLOptions): V2Event {
    return this.fail('updateFail', () => {
      const p = cleanPath(nodePath);
      this.checkWritable(p, this.currentIndex);
      const nextIndex = this.currentIndex + 1;
      const n = this.internalGet(p);
      if (n.isDir && newValue.length !== 0) throw new V2Error(ErrorCode.NotFile, p, this.currentIndex);
      if (opts.refresh) newValue = n.value;
      const prevNode = this.repr(n, false, false);
      // As in etcd, a directory keeps its modifiedIndex (only its TTL changes); the event still carries the new index.
      if (!n.isDir) {
        n.value = newValue;
        n.modifiedIndex = nextIndex;
      }
      this.updateTTL(n, opts.expireTime);
      const node = n.isDir
        ? nodeExtern({ key: p, dir: true, ...this.ttlOf(n), modifiedIndex: nextIndex, createdIndex: n.createdIndex })
        : nodeExtern({ key: p, value: newValue, ...this.ttlOf(n), modifiedIndex: nextIndex, createdIndex: n.createdIndex });
      const e = new V2Event(Action.Update, node, prevNode, nextIndex);
      if (opts.refresh) {
        e.refresh = true;
        this.hub.add(e);
      } else {
        this.hub.notify(e);
      }
      this.currentIndex = nextIndex;
      this.stats.updateSuccess++;
      return e;
    });
  }

  private compareFailCause(n: StoreNode, prevValue: string, prevIndex: number): string | undefined {
    const indexMatch = prevIndex === 0 || n.modifiedIndex === prevIndex;
    const valueMatch = prevValue === '' || n.value === prevValue;
    if (indexMatch && valueMatch) return undefined;
    if (indexMatch) return `[${prevValue} != ${n.value}]`;
    if (valueMatch) return `[${prevIndex} != ${n.modifiedIndex}]`;
    return `[${prevValue} != ${n.value}] [${prevIndex} != ${n.modifiedIndex}]`;
  }

  compareAndSwap(nodePath: string, prevValue: string, prevIndex: number, value: string, opts: TTLOptions): V2Event {
    return this.fail('compareAndSwapFail', () => {
      const p = cleanPath(nodePath);
      this.checkWritable(p, this.currentIndex);
      const n = this.internalGet(p);
      if (n.isDir) throw new V2Error(ErrorCode.NotFile, p, this.currentIndex);
      const cause = this.compareFailCause(n, prevValue, prevIndex);
      if (cause !== undefined) throw new V2Error(ErrorCode.TestFailed, cause, this.currentIndex);
      if (opts.refresh) value = n.value;
      this.currentIndex++;
      const prevNode = this.repr(n, false, false);
      n.value = value;
      n.modifiedIndex = this.currentIndex;
      this.updateTTL(n, opts.expireTime);
      const e = new V2Event(Action.CompareAndSwap, nodeExtern({ key: p, value, ...this.ttlOf(n), modifiedIndex: this.currentIndex, createdIndex: n.createdIndex }), prevNode, this.currentIndex);
      if (opts.refresh) {
        e.refresh = true;
        this.hub.add(e);
      } else {
        this.hub.notify(e);
      }
      this.stats.compareAndSwapSuccess++;
      return e;
    });
  }

  delete(nodePath: string, dir: boolean, recursive: boolean): V2Event {
    return this.fail('deleteFail', () => {
      const p = cleanPath(nodePath);
      this.checkWritable(p, this.currentIndex);
      if (recursive) dir = true;
      const n = this.internalGet(p);
      const nextIndex = this.currentIndex + 1;
      const node = nodeExtern({ key: p, dir: n.isDir, modifiedIndex: nextIndex, createdIndex: n.createdIndex });
      const e = new V2Event(Action.Delete, node, this.repr(n, false, false), nextIndex);
      this.removeNode(n, dir, recursive, (path) => this.hub.notifyWatchers(e, path, true));
      this.currentIndex++;
      this.hub.notify(e);
      this.stats.deleteSuccess++;
      return e;
    });
  }

  compareAndDelete(nodePath: string, prevValue: string, prevIndex: number): V2Event {
    return this.fail('compareAndDeleteFail', () => {
      const p = cleanPath(nodePath);
      const n = this.internalGet(p);
      if (n.isDir) throw new V2Error(ErrorCode.NotFile, p, this.currentIndex);
      const cause = this.compareFailCause(n, prevValue, prevIndex);
      if (cause !== undefined) throw new V2Error(ErrorCode.TestFailed, cause, this.currentIndex);
      this.currentIndex++;
      const e = new V2Event(Action.CompareAndDelete, nodeExtern({ key: p, modifiedIndex: this.currentIndex, createdIndex: n.createdIndex }), this.repr(n, false, false), this.currentIndex);
      this.removeNode(n, false, false, (path) => this.hub.notifyWatchers(e, path, true));
      this.hub.notify(e);
      this.stats.compareAndDeleteSuccess++;
      return e;
    });
  }

  /** Expires every key whose time has come by `cutoff` (the leader's clock, from the log). */
  deleteExpiredKeys(cutoff: number): void {
    for (;;) {
      const n = this.ttlHeap.top();
      if (!n || n.expireTime > cutoff) return;
      this.currentIndex++;
      const e = new V2Event(Action.Expire, nodeExtern({ key: n.path, dir: n.isDir, modifiedIndex: this.currentIndex, createdIndex: n.createdIndex }), this.repr(n, false, false), this.currentIndex);
      this.ttlHeap.pop();
      this.removeNode(n, true, true, (path) => this.hub.notifyWatchers(e, path, true));
      this.stats.expireCount++;
      this.hub.notify(e);
    }
  }

  hasTTLKeys(): boolean {
    return this.ttlHeap.size > 0;
  }

  private updateTTL(n: StoreNode, expireTime: number): void {
    if (expireTime !== 0 && expireTime < MIN_EXPIRE_TIME) expireTime = 0;
    if (!n.isPermanent) {
      n.expireTime = expireTime;
      if (expireTime === 0) this.ttlHeap.remove(n);
      else this.ttlHeap.update(n);
      return;
    }
    if (expireTime === 0) return;
    n.expireTime = expireTime;
    this.ttlHeap.push(n);
  }

  private removeNode(n: StoreNode, dir: boolean, recursive: boolean, callback: ((path: string) => void) | undefined): void {
    if (!n.isDir) {
      if (n.parent && n.parent.children!.get(n.name) === n) n.parent.children!.delete(n.name);
      callback?.(n.path);
      if (!n.isPermanent) this.ttlHeap.remove(n);
      return;
    }
    if (!dir) throw new V2Error(ErrorCode.NotFile, n.path, this.currentIndex);
    if (n.children!.size !== 0 && !recursive) throw new V2Error(ErrorCode.DirNotEmpty, n.path, this.currentIndex);
    for (const child of [...n.children!.values()]) this.removeNode(child, true, true, callback);
    if (n.parent && n.parent.children!.get(n.name) === n) {
      n.parent.children!.delete(n.name);
      callback?.(n.path);
      if (!n.isPermanent) this.ttlHeap.remove(n);
    }
  }

  // ---- etcd's /0 namespace ----

  /**
   * Membership and the cluster version, where etcd keeps them in its v2 store (/0/members/<id>/raftAttributes,
   * /0/members/<id>/attributes, /0/removed_members/<id>, /0/version), so the store's index moves as etcd's does: a
   * fresh member answers X-Etcd-Index 3 and its first write gets 4. Hidden from /v2/keys as etcd hides /0 (user keys
   * live in its /1): never listed, never shown to a watcher. Their events take their index in the history, as
   * etcd's do, under keys without a leading slash, which no watch of a key matches.
   */
  private internal = new Map<string, string>();

  /** A write to the /0 namespace with etcd's operation (counted in the store's stats as etcd counts it). */
  writeInternal(op: 'create' | 'set' | 'update' | 'delete', path: string, value = ''): void {
    const index = ++this.currentIndex;
    const key = path.replace(/^\/+/, '');
    let action: string;
    if (op === 'delete') {
      for (const k of [...this.internal.keys()]) if (k === path || k.startsWith(`${path}/`)) this.internal.delete(k);
      action = Action.Delete;
      this.stats.deleteSuccess++;
    } else {
      this.internal.set(path, value);
      action = op === 'create' ? Action.Create : op === 'update' ? Action.Update : Action.Set;
      this.stats[op === 'create' ? 'createSuccess' : op === 'update' ? 'updateSuccess' : 'setsSuccess']++;
    }
    this.hub.add(new V2Event(action, nodeExtern({ key, value: op === 'delete' ? undefined : value, modifiedIndex: index, createdIndex: index }), undefined, index));
  }

  /** A value of the /0 namespace (for tests and diagnostics). */
  readInternal(path: string): string | undefined {
    return this.internal.get(path);
  }

  // ---- watches ----

  watch(key: string, recursive: boolean, stream: boolean, sinceIndex: number): Watcher {
    const k = cleanPath(key);
    this.watchRequests++;
    return this.hub.watch(k, recursive, stream, sinceIndex === 0 ? this.currentIndex + 1 : sinceIndex, this.currentIndex);
  }

  statsJSON(): StoreStats & { watchers: number } {
    return { ...this.stats, watchers: this.hub.count };
  }

  // ---- snapshots ----

  save(): Buffer {
    const saveNode = (n: StoreNode): SavedNode => {
      const s: SavedNode = { p: n.path, c: n.createdIndex, m: n.modifiedIndex };
      if (n.isDir) s.d = [...n.children!.values()].map(saveNode);
      else s.v = n.value;
      if (n.expireTime) s.e = n.expireTime;
      return s;
    };
    return Buffer.from(JSON.stringify({ index: this.currentIndex, root: saveNode(this.root), history: this.hub.history.toJSON(), stats: this.stats, internal: Object.fromEntries(this.internal) }));
  }

  /** Replaces the whole state with a saved one. Watchers of the old state end. */
  /**
   * Replaces the store's content with a snapshot's. All or nothing: the snapshot is read into new structures
   * first, so a malformed one throws and leaves the store as it was.
   */
  recover(data: Buffer): void {
    const j = JSON.parse(data.toString()) as { index: number; root: SavedNode; history: { action: string; node: NodeExtern; prevNode?: NodeExtern; refresh?: boolean }[]; stats?: StoreStats; internal?: Record<string, string> };
    if (!j || typeof j !== 'object' || !Number.isSafeInteger(j.index) || !j.root || !Array.isArray(j.history)) throw new Error('store: malformed snapshot');
    const ttlHeap = new TtlHeap<StoreNode>();
    const load = (s: SavedNode, parent: StoreNode | undefined): StoreNode => {
      if (!s || typeof s.p !== 'string' || (s.e !== undefined && !Number.isFinite(s.e))) throw new Error('store: malformed snapshot node');
      const n = new StoreNode(s.p, s.c, s.m, parent, s.d !== undefined);
      if (s.v !== undefined) n.value = s.v;
      if (s.e) {
        n.expireTime = s.e;
        ttlHeap.push(n);
      }
      for (const c of s.d ?? []) n.children!.set(c.p.slice(c.p.lastIndexOf('/') + 1), load(c, n));
      return n;
    };
    const root = load(j.root, undefined);
    const hub = new WatcherHub();
    for (const h of j.history) {
      if (!h || !h.node || typeof h.action !== 'string') throw new Error('store: malformed snapshot history');
      const e = new V2Event(h.action, h.node, h.prevNode, h.node.modifiedIndex ?? 0);
      e.refresh = h.refresh ?? false;
      hub.history.add(e);
    }
    const internal = new Map(Object.entries(j.internal ?? {}).filter((kv): kv is [string, string] => typeof kv[1] === 'string'));
    // Everything read: now swap it in.
    this.hub.clearAll();
    this.ttlHeap = ttlHeap;
    this.root = root;
    this.currentIndex = j.index;
    this.hub = hub;
    this.internal = internal;
    if (j.stats) Object.assign(this.stats, j.stats);
  }
}
