import * as posixPath from 'node:path/posix';
import { ErrorCode, V2Error } from './errors';
import { Action, V2Event } from './event';

/** The last `capacity` events (etcd keeps 1000), to answer watches that start in the past. */
export class EventHistory {
  private readonly events: (V2Event | undefined)[];
  private front = 0;
  private size = 0;
  startIndex = 0;
  lastIndex = 0;

  constructor(readonly capacity = 1000) {
    this.events = new Array(capacity);
  }

  add(e: V2Event): void {
    const back = (this.front + this.size) % this.capacity;
    this.events[back] = e;
    if (this.size === this.capacity) this.front = (this.front + 1) % this.capacity;
    else this.size++;
    this.lastIndex = e.index();
    this.startIndex = this.events[this.front]!.index();
  }

  /** The first event at or after `index` that concerns `key`; 401 when `index` is older than the history. */
  scan(key: string, recursive: boolean, index: number): V2Event | undefined {
    if (index < this.startIndex) {
      throw new V2Error(ErrorCode.EventIndexCleared, `the requested history has been cleared [${this.startIndex}/${index}]`, 0);
    }
    if (index > this.lastIndex || this.size === 0) return undefined;
    const prefix = key.endsWith('/') ? key : `${key}/`;
    // Events are in index order; find the first one at `index` or later, then look for a match.
    for (let k = 0; k < this.size; k++) {
      const e = this.events[(this.front + k) % this.capacity]!;
      if (e.index() < index || e.refresh) continue;
      const ek = e.node.key ?? '/';
      let ok = ek === key || (recursive && ek.startsWith(prefix));
      if ((e.action === Action.Delete || e.action === Action.Expire) && e.prevNode?.dir && key.startsWith(e.prevNode.key ?? '/')) ok = true;
      if (ok) return e;
    }
    return undefined;
  }

  toJSON(): V2Event[] {
    const out: V2Event[] = [];
    for (let k = 0; k < this.size; k++) out.push(this.events[(this.front + k) % this.capacity]!);
    return out;
  }
}

/** One client's watch: it receives the events after sinceIndex that concern its key. */
export class Watcher {
  private readonly queue: V2Event[] = [];
  private waiting: ((e: V2Event | undefined) => void) | undefined;
  removed = false;
  onRemove: () => void = () => undefined;

  constructor(
    readonly recursive: boolean,
    readonly stream: boolean,
    readonly sinceIndex: number,
    /** The store's index when the watch began (the X-Etcd-Index header of the answer). */
    readonly startIndex: number,
  ) {}

  /** Queues an event if it concerns this watcher; returns whether it did. */
  notify(e: V2Event, originalPath: boolean, deleted: boolean): boolean {
    if (!((this.recursive || originalPath || deleted) && e.index() >= this.sinceIndex)) return false;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(e);
    } else if (this.queue.length < 100) {
      this.queue.push(e);
    } else {
      // A client that does not keep up is dropped rather than buffering without bound (as etcd does).
      this.remove();
    }
    return true;
  }

  /** The next event; undefined once the watcher is removed. */
  next(): Promise<V2Event | undefined> {
    const e = this.queue.shift();
    if (e) return Promise.resolve(e);
    if (this.removed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** Ends the watch (the client went away, or it was a one-shot watch that fired). */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.onRemove();
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(undefined);
    }
  }

  pending(e: V2Event): void {
    this.queue.push(e);
  }
}

/** Whether the part of keyPath below watchPath has a hidden component. */
function isHidden(watchPath: string, keyPath: string): boolean {
  if (watchPath.length > keyPath.length) return false;
  const after = posixPath.normalize('/' + keyPath.slice(watchPath.length));
  return after.includes('/_');
}

/** Watchers by the path they watch; an event visits only the watchers of its key and its ancestors. */
export class WatcherHub {
  private readonly watchers = new Map<string, Set<Watcher>>();
  count = 0;
  history: EventHistory;

  constructor(capacity = 1000) {
    this.history = new EventHistory(capacity);
  }

  watch(key: string, recursive: boolean, stream: boolean, sinceIndex: number, storeIndex: number): Watcher {
    let past: V2Event | undefined;
    try {
      past = this.history.scan(key, recursive, sinceIndex);
    } catch (err) {
      if (err instanceof V2Error) err.index = storeIndex;
      throw err;
    }
    const w = new Watcher(recursive, stream, sinceIndex, storeIndex);
    if (past) {
      // Answered from history at once (and, like etcd, not registered for more).
      w.pending(past.withEtcdIndex(storeIndex));
      w.removed = true;
      return w;
    }
    let set = this.watchers.get(key);
    if (!set) {
      set = new Set();
      this.watchers.set(key, set);
    }
    const s = set;
    s.add(w);
    this.count++;
    w.onRemove = () => {
      if (s.delete(w)) this.count--;
      if (s.size === 0 && this.watchers.get(key) === s) this.watchers.delete(key);
    };
    return w;
  }

  /** Records an event that watchers are not told of (a TTL refresh). */
  add(e: V2Event): void {
    this.history.add(e);
  }

  notify(e: V2Event): void {
    this.history.add(e);
    if (this.watchers.size === 0) return;
    const key = e.node.key ?? '/';
    for (const p of this.watchedPathsTo(key)) this.notifyWatchers(e, p, false);
  }

  /**
   * The watched paths among the key and its ancestors, root first. A key thousands of levels deep has thousands
   * of ancestors: when fewer paths are watched, they are the ones looked at.
   */
  private watchedPathsTo(key: string): string[] {
    let depth = 0;
    for (let i = 0; i < key.length && depth <= this.watchers.size; i++) if (key.charCodeAt(i) === 0x2f) depth++;
    if (depth > this.watchers.size) {
      const found: string[] = [];
      for (const p of this.watchers.keys()) {
        if (p === '/' || p === key || (key.startsWith(p) && key.charCodeAt(p.length) === 0x2f)) found.push(p);
      }
      return found.sort((a, b) => a.length - b.length);
    }
    const out = ['/'];
    let at = 0;
    while ((at = key.indexOf('/', at + 1)) !== -1) out.push(key.slice(0, at));
    if (key !== '/') out.push(key);
    return out.filter((p) => this.watchers.has(p));
  }

  /** The watched paths below `dir` (the descendants of a deleted directory that need telling). */
  watchedPathsUnder(dir: string): string[] {
    if (this.watchers.size === 0) return [];
    const prefix = dir === '/' ? '/' : dir + '/';
    const out: string[] = [];
    for (const p of this.watchers.keys()) if (p.length > prefix.length && p.startsWith(prefix)) out.push(p);
    return out;
  }

  notifyWatchers(e: V2Event, nodePath: string, deleted: boolean): void {
    const set = this.watchers.get(nodePath);
    if (!set) return;
    const key = e.node.key ?? '/';
    const originalPath = key === nodePath;
    for (const w of [...set]) {
      if ((originalPath || !isHidden(nodePath, key)) && w.notify(e, originalPath, deleted) && !w.stream) w.remove();
    }
  }

  /** After a snapshot replaced the store: every watcher ends (etcd's "watcher is cleared due to etcd recovery"). */
  clearAll(): void {
    for (const set of [...this.watchers.values()]) for (const w of [...set]) w.remove();
  }
}
