/**
 * Watchers indexed by what they watch (etcd's watcherGroup): single keys in a map, ranges in an interval tree, so
 * that finding the watchers of a written key costs a lookup and a stab, whatever the number of watchers.
 *
 * Keys are latin1 strings (one char per byte: they compare as their bytes do). A range is [begin, end); a range
 * "from key" (etcd's empty range end) ends at FROM_KEY_END, above every key.
 */

/** Sorts after every latin1 string: the end of a range that has none. */
export const FROM_KEY_END = '\uffff';

/** What the group needs of a watcher. */
export interface Watched {
  /** the key, or the range's begin */
  readonly ks: string;
  /** undefined: the single key ks; else the range's end (FROM_KEY_END: no end) */
  readonly endKs: string | undefined;
}

interface Node<W> {
  begin: string;
  end: string;
  /** the largest end in this subtree */
  max: string;
  prio: number;
  left: Node<W> | undefined;
  right: Node<W> | undefined;
  set: Set<W>;
}

const cmp = (b1: string, e1: string, b2: string, e2: string): number => (b1 < b2 ? -1 : b1 > b2 ? 1 : e1 < e2 ? -1 : e1 > e2 ? 1 : 0);

function fix<W>(n: Node<W>): Node<W> {
  let max = n.end;
  if (n.left && n.left.max > max) max = n.left.max;
  if (n.right && n.right.max > max) max = n.right.max;
  n.max = max;
  return n;
}

/** Splits t into the nodes below (begin, end) and those at or above it. */
function split<W>(t: Node<W> | undefined, begin: string, end: string): [Node<W> | undefined, Node<W> | undefined] {
  if (!t) return [undefined, undefined];
  if (cmp(t.begin, t.end, begin, end) < 0) {
    const [l, r] = split(t.right, begin, end);
    t.right = l;
    return [fix(t), r];
  }
  const [l, r] = split(t.left, begin, end);
  t.left = r;
  return [l, fix(t)];
}

/** Joins two treaps, every node of a below every node of b. */
function merge<W>(a: Node<W> | undefined, b: Node<W> | undefined): Node<W> | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.prio > b.prio) {
    a.right = merge(a.right, b);
    return fix(a);
  }
  b.left = merge(a, b.left);
  return fix(b);
}

/**
 * An interval tree (a treap ordered by begin then end, each node holding the largest end of its subtree), one node
 * per distinct interval with the set of its watchers.
 */
class IntervalTree<W> {
  private root: Node<W> | undefined;

  find(begin: string, end: string): Set<W> | undefined {
    let n = this.root;
    while (n) {
      const c = cmp(begin, end, n.begin, n.end);
      if (c === 0) return n.set;
      n = c < 0 ? n.left : n.right;
    }
    return undefined;
  }

  insert(begin: string, end: string, set: Set<W>): void {
    const node: Node<W> = { begin, end, max: end, prio: Math.random(), left: undefined, right: undefined, set };
    const [l, r] = split(this.root, begin, end);
    this.root = merge(merge(l, node), r);
  }

  delete(begin: string, end: string): void {
    const [l, rest] = split(this.root, begin, end);
    // rest's first node is the interval itself: split once more just above it
    const [, r] = split(rest, begin, end + '\0');
    this.root = merge(l, r);
  }

  /** Calls fn with the set of every interval that contains point p. */
  stab(p: string, fn: (set: Set<W>) => void): void {
    const walk = (n: Node<W> | undefined): void => {
      while (n && n.max > p) {
        walk(n.left);
        if (n.begin > p) return; // the right subtree begins later still
        if (n.end > p) fn(n.set);
        n = n.right;
      }
    };
    walk(this.root);
  }
}

/** The watchers of one key, and the key's string (so that the watchers added later can share it). */
class KeyWatchers<W> extends Set<W> {
  constructor(readonly ks: string) {
    super();
  }
}

export class WatcherGroup<W extends Watched> {
  private readonly keys = new Map<string, KeyWatchers<W>>();
  private readonly ranges = new IntervalTree<W>();
  private readonly all = new Set<W>();

  get size(): number {
    return this.all.size;
  }

  has(w: W): boolean {
    return this.all.has(w);
  }

  [Symbol.iterator](): Iterator<W> {
    return this.all[Symbol.iterator]();
  }

  add(w: W): void {
    if (this.all.has(w)) return;
    this.all.add(w);
    if (w.endKs === undefined) {
      let set = this.keys.get(w.ks);
      if (!set) this.keys.set(w.ks, (set = new KeyWatchers(w.ks)));
      set.add(w);
      return;
    }
    const set = this.ranges.find(w.ks, w.endKs);
    if (set) set.add(w);
    else this.ranges.insert(w.ks, w.endKs, new Set([w]));
  }

  delete(w: W): boolean {
    if (!this.all.delete(w)) return false;
    if (w.endKs === undefined) {
      const set = this.keys.get(w.ks)!;
      set.delete(w);
      if (!set.size) this.keys.delete(w.ks);
      return true;
    }
    const set = this.ranges.find(w.ks, w.endKs)!;
    set.delete(w);
    if (!set.size) this.ranges.delete(w.ks, w.endKs);
    return true;
  }

  /** The string of key ks that a watcher of that single key in the group has, if any. */
  keyString(ks: string): string | undefined {
    return this.keys.get(ks)?.ks;
  }

  /** Calls fn for every watcher of key ks (a watcher once, even when two of its entries match: they cannot). */
  match(ks: string, fn: (w: W) => void): void {
    if (!this.all.size) return;
    const set = this.keys.get(ks);
    if (set) for (const w of set) fn(w);
    this.ranges.stab(ks, (s) => {
      for (const w of s) fn(w);
    });
  }
}
