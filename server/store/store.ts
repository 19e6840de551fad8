import * as posixPath from 'node:path/posix';
import { ErrorCode, V2Error } from './errors';
import { Action, NodeExtern, V2Event, formatExpiration, nodeExtern } from './event';
import { StoreNode, childPath } from './node';
import { FrozenNode, StoreEncoder, decodeStore, encodeStore } from './snapshot';
import { TtlHeap } from './ttl-heap';
import { EventHistory, Watcher, WatcherHub } from './watcher-hub';

/**
 * etcd's v2 store: a tree of directories and keys with TTLs, an index bumped by every change, an event history
 * and watchers. It is a deterministic state machine: expiry happens only in deleteExpiredKeys(time) with the time
 * carried by the log; `now()` is read only to show the remaining TTL of a key in answers.
 */

/** Expiration times before this are taken as "no expiration" (as etcd does with zero times). */
const MIN_EXPIRE_TIME = Date.UTC(2000, 0, 1);

/**
 * Go's string order, by UTF-8 bytes (that is, by code point), where JS's < compares UTF-16 units: a code point past
 * U+FFFF (a surrogate pair, units from U+D800) comes after U+E000..U+FFFF, not before.
 */
export function compareUTF8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Expiry order: by time, then by creation, then ancestors first: a total order, the same after a snapshot. */
function expiresBefore(a: StoreNode, b: StoreNode): boolean {
  if (a.expireTime !== b.expireTime) return a.expireTime < b.expireTime;
  // Nodes created by one request (a key and the directories made for it) share their createdIndex.
  if (a.createdIndex !== b.createdIndex) return a.createdIndex < b.createdIndex;
  return depthOf(a) < depthOf(b);
}

function depthOf(n: StoreNode): number {
  let d = 0;
  for (let p = n.parent; p; p = p.parent) d++;
  return d;
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

/** What a path is not when it is clean already: an empty, `.` or `..` component, or a trailing `/`. */
const UNCLEAN = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

/**
 * A save in turns encodes for about this long at a time, then lets the event loop serve what waits: short next to
 * a request's latency, long enough that the encoding is not spread over many more turns than it needs.
 */
const SAVE_SLICE_MS = 4;

function cleanPath(p: string): string {
  // Keys as clients write them are clean already: every apply (on every member) skips path.join and normalize.
  if (p.charCodeAt(0) === 47 && !UNCLEAN.test(p)) return p;
  const c = posixPath.normalize(posixPath.join('/', p));
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

export class V2Store {
  currentIndex = 0;
  private root = new StoreNode('', 0, 0, undefined, true);
  private ttlHeap = new TtlHeap<StoreNode>(expiresBefore);
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

  /** A node as answers show it; a directory with `nodes` only when given (a list the caller fills, non-empty). */
  private repr(n: StoreNode, path: string, nodes?: NodeExtern[]): NodeExtern {
    if (n.isDir) {
      const e = nodeExtern({ key: path === '/' ? '' : path, dir: true, ...this.ttlOf(n) });
      // Fields in nodeExtern's order: `nodes` before the indexes.
      if (nodes) e.nodes = nodes;
      if (n.modifiedIndex) e.modifiedIndex = n.modifiedIndex;
      if (n.createdIndex) e.createdIndex = n.createdIndex;
      return e;
    }
    return nodeExtern({ key: path, value: n.value, ...this.ttlOf(n), modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
  }

  /** The visible children of a directory, in creation order or sorted by name (= by key: they share the prefix). */
  private static visibleChildren(n: StoreNode, sorted: boolean): StoreNode[] {
    const out: StoreNode[] = [];
    for (const c of n.children!.values()) if (!c.isHidden) out.push(c);
    if (sorted) out.sort((a, b) => compareUTF8(a.name, b.name));
    return out;
  }

  /**
   * The listing of a directory: its children, and with `recursive` theirs and so on, walked with an explicit stack
   * (a tree may be thousands of levels deep). Each directory's `nodes` array is filled when the walk reaches it.
   */
  private listing(dir: StoreNode, dirPath: string, recursive: boolean, sorted: boolean): NodeExtern[] {
    const top: NodeExtern[] = [];
    const stack: { n: StoreNode; path: string; out: NodeExtern[] }[] = [{ n: dir, path: dirPath, out: top }];
    while (stack.length > 0) {
      const { n, path, out } = stack.pop()!;
      for (const c of V2Store.visibleChildren(n, sorted)) {
        const cPath = childPath(path, c.name);
        // A directory without visible children shows no `nodes`, as nodeExtern leaves out empty lists.
        const nodes = recursive && c.isDir && V2Store.hasVisibleChild(c) ? [] : undefined;
        out.push(this.repr(c, cPath, nodes));
        if (nodes) stack.push({ n: c, path: cPath, out: nodes });
      }
    }
    return top;
  }

  private static hasVisibleChild(n: StoreNode): boolean {
    for (const c of n.children!.values()) if (!c.isHidden) return true;
    return false;
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
    // Walk again to say why, with the path walked so far (a prefix of nodePath).
    let curr = this.root;
    if (nodePath === '/') return curr;
    let start = 1;
    for (;;) {
      const end = nodePath.indexOf('/', start);
      const name = end < 0 ? nodePath.slice(start) : nodePath.slice(start, end);
      if (!curr.children) throw new V2Error(ErrorCode.NotDir, start === 1 ? '/' : nodePath.slice(0, start - 1), this.currentIndex);
      const child = curr.children.get(name);
      if (!child) throw new V2Error(ErrorCode.KeyNotFound, end < 0 ? nodePath : nodePath.slice(0, end), this.currentIndex);
      curr = child;
      if (end < 0) return curr;
      start = end + 1;
    }
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
        node = nodeExtern({ key: p === '/' ? '' : p, dir: true, ...this.ttlOf(n), nodes: this.listing(n, p, recursive, sorted), modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex });
      } else {
        node = this.repr(n, p);
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
    // dirPath is a clean path ending with '/': each component ends at a '/'.
    let start = 1;
    let end: number;
    while ((end = dirPath.indexOf('/', start)) !== -1) {
      const name = dirPath.slice(start, end);
      if (name !== '') {
        const child = curr.children!.get(name);
        if (child) {
          if (!child.isDir) throw new V2Error(ErrorCode.NotDir, dirPath.slice(0, end), this.currentIndex);
          curr = child;
        } else {
          const d = new StoreNode(name, this.currentIndex + 1, this.currentIndex + 1, curr, true);
          this.freezeChildren(curr);
          curr.children!.set(name, d);
          curr = d;
        }
      }
      start = end + 1;
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
      prevNode = this.repr(existing, p);
      this.removeNode(existing, p, false, false, undefined);
    }
    const n = new StoreNode(name, nextIndex, nextIndex, d, dir);
    if (!dir) n.value = value;
    this.freezeChildren(d);
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
      const prevNode = prev ? this.repr(prev, p) : undefined;
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
      const prevNode = this.repr(n, p);
      this.freeze(n);
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
      const prevNode = this.repr(n, p);
      this.freeze(n);
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
      const e = new V2Event(Action.Delete, node, this.repr(n, p), nextIndex);
      this.removeNode(n, p, dir, recursive, (path) => this.hub.notifyWatchers(e, path, true));
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
      const e = new V2Event(Action.CompareAndDelete, nodeExtern({ key: p, modifiedIndex: this.currentIndex, createdIndex: n.createdIndex }), this.repr(n, p), this.currentIndex);
      this.removeNode(n, p, false, false, (path) => this.hub.notifyWatchers(e, path, true));
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
      const p = n.path;
      const e = new V2Event(Action.Expire, nodeExtern({ key: p, dir: n.isDir, modifiedIndex: this.currentIndex, createdIndex: n.createdIndex }), this.repr(n, p), this.currentIndex);
      this.ttlHeap.pop();
      this.removeNode(n, p, true, true, (path) => this.hub.notifyWatchers(e, path, true));
      this.stats.expireCount++;
      this.hub.notify(e);
    }
  }

  hasTTLKeys(): boolean {
    return this.ttlHeap.size > 0;
  }

  private updateTTL(n: StoreNode, expireTime: number): void {
    this.freeze(n);
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

  /**
   * Removes a node (at `path`) and, with `recursive`, everything below it, children before their directory, each
   * reported to `callback` as it goes. Walked with an explicit stack; of the nodes below `path`, only those that
   * are watched are reported (their paths come from the watchers, no path is built for the others).
   */
  private removeNode(n: StoreNode, path: string, dir: boolean, recursive: boolean, callback: ((path: string) => void) | undefined): void {
    if (n.isDir) {
      if (!dir) throw new V2Error(ErrorCode.NotFile, path, this.currentIndex);
      if (n.children!.size !== 0 && !recursive) throw new V2Error(ErrorCode.DirNotEmpty, path, this.currentIndex);
    }
    const watched = new Map<StoreNode, string>();
    if (callback && n.isDir) {
      for (const wp of this.hub.watchedPathsUnder(path)) {
        const x = V2Store.findBelow(n, wp, path === '/' ? 1 : path.length + 1);
        if (x) watched.set(x, wp);
      }
    }
    watched.set(n, path);
    const stack: { n: StoreNode; kids?: StoreNode[]; next: number }[] = [{ n, next: 0 }];
    while (stack.length > 0) {
      const f = stack[stack.length - 1];
      if (f.n.isDir) {
        f.kids ??= [...f.n.children!.values()];
        if (f.next < f.kids.length) {
          stack.push({ n: f.kids[f.next++], next: 0 });
          continue;
        }
      }
      stack.pop();
      const x = f.n;
      const attached = x.parent !== undefined && x.parent.children!.get(x.name) === x;
      if (attached) {
        this.freezeChildren(x.parent!);
        x.parent!.children!.delete(x.name);
      }
      if (attached || !x.isDir) {
        const p = watched.get(x);
        if (p !== undefined) callback?.(p);
        if (!x.isPermanent) this.ttlHeap.remove(x);
      }
    }
  }

  /** The node at `nodePath` found from `from`, whose path is nodePath's first `start` - 1 characters. */
  private static findBelow(from: StoreNode, nodePath: string, start: number): StoreNode | undefined {
    let curr: StoreNode | undefined = from;
    while (curr) {
      const end = nodePath.indexOf('/', start);
      curr = curr.children?.get(end < 0 ? nodePath.slice(start) : nodePath.slice(start, end));
      if (end < 0) return curr;
      start = end + 1;
    }
    return undefined;
  }

  // ---- etcd's /0 and /2 namespaces ----

  /**
   * Membership and the cluster version, where etcd keeps them in its v2 store (/0/members/<id>/raftAttributes,
   * /0/members/<id>/attributes, /0/removed_members/<id>, /0/version), and the v2 auth data (/2/users/<name>,
   * /2/roles/<name>, /2/enabled: server/auth/v2/store.ts), so the store's index moves as etcd's does: a fresh
   * member answers X-Etcd-Index 3 and its first write gets 4. Hidden from /v2/keys as etcd hides /0 and /2 (user keys
   * live in its /1): never listed, never shown to a watcher. Their events take their index in the history, as
   * etcd's do, under keys without a leading slash, which no watch of a key matches. A directory is a path with ''.
   */
  private internal = new Map<string, string>();

  /** A write to the /0 or /2 namespace with etcd's operation (counted in the store's stats as etcd counts it). */
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

  /** A value of the /0 or /2 namespace (undefined: none). */
  readInternal(path: string): string | undefined {
    return this.internal.get(path);
  }

  /** The names of the records directly under a directory of the /0 or /2 namespace, in no order. */
  internalChildren(dir: string): string[] {
    const prefix = `${dir}/`;
    const names: string[] = [];
    for (const k of this.internal.keys()) {
      if (k.startsWith(prefix) && !k.includes('/', prefix.length)) names.push(k.slice(prefix.length));
    }
    return names;
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

  /** The store's state as snapshot data (the flat encoding of ./snapshot.ts). */
  save(): Buffer {
    return encodeStore({ index: this.currentIndex, root: this.root, history: this.hub.history.toJSON(), stats: this.stats, internal: Object.fromEntries(this.internal) });
  }

  /**
   * While a save in turns runs: the nodes changed since it began, as they were (copy-on-write). Every change to a
   * node's value, modifiedIndex, expireTime or children goes through freeze() or freezeChildren() first.
   */
  private frozen: Map<StoreNode, FrozenNode> | undefined;

  private freeze(n: StoreNode): FrozenNode | undefined {
    const frozen = this.frozen;
    if (frozen === undefined) return undefined;
    let f = frozen.get(n);
    if (f === undefined) {
      f = { value: n.value, modifiedIndex: n.modifiedIndex, expireTime: n.expireTime };
      frozen.set(n, f);
    }
    return f;
  }

  /** Before a directory's children change: the list as it was, the first time in a save (in their order). */
  private freezeChildren(dir: StoreNode): void {
    const f = this.freeze(dir);
    if (f !== undefined && f.children === undefined) f.children = [...dir.children!.values()];
  }

  /** Whether a save in turns is under way. */
  get saving(): boolean {
    return this.frozen !== undefined;
  }

  /**
   * The store's state as of this call, the same bytes as save() would give now, encoded in slices of about
   * `sliceMs` over later turns of the event loop, while the store goes on taking writes: the event loop is never
   * held for the whole encoding (a large store takes 100 ms and more). One at a time.
   */
  saveInTurns(sliceMs = SAVE_SLICE_MS): Promise<Buffer[]> {
    if (this.frozen) throw new Error('store: a save is under way already');
    const frozen = new Map<StoreNode, FrozenNode>();
    const enc = new StoreEncoder({ index: this.currentIndex, root: this.root, history: this.hub.history.toJSON(), stats: { ...this.stats }, internal: Object.fromEntries(this.internal) }, frozen);
    this.frozen = frozen;
    return new Promise((resolve, reject) => {
      const slice = () => {
        try {
          if (!enc.step(performance.now() + sliceMs)) {
            setImmediate(slice);
            return;
          }
          this.frozen = undefined;
          resolve(enc.chunks());
        } catch (err) {
          this.frozen = undefined;
          reject(err as Error);
        }
      };
      setImmediate(slice);
    });
  }

  /**
   * Replaces the store's content with a snapshot's (either encoding). All or nothing: the snapshot is read into
   * new structures first, so a malformed one throws and leaves the store as it was. Watchers of the old state end.
   */
  recover(data: Buffer): void {
    const d = decodeStore(data);
    const ttlHeap = new TtlHeap<StoreNode>(expiresBefore);
    for (const n of d.expiring) ttlHeap.push(n);
    const hub = new WatcherHub();
    for (const e of d.history) hub.history.add(e);
    const internal = new Map(Object.entries(d.internal ?? {}));
    // Everything read: now swap it in.
    this.hub.clearAll();
    this.ttlHeap = ttlHeap;
    this.root = d.root;
    this.currentIndex = d.index;
    this.hub = hub;
    this.internal = internal;
    if (d.stats) Object.assign(this.stats, d.stats);
  }
}
