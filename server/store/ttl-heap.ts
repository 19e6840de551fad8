/** A min-heap of nodes by expiration time, with O(log n) push, pop, update and remove. */
export interface Expiring {
  expireTime: number;
  heapIndex: number;
}

export class TtlHeap<T extends Expiring> {
  private readonly items: T[] = [];

  /**
   * `before` orders two nodes; it must be a total order on the nodes in the heap (ties broken by something
   * other than when a node was pushed), so that a heap rebuilt from a snapshot pops in the same order.
   */
  constructor(private readonly before: (a: T, b: T) => boolean = (a, b) => a.expireTime < b.expireTime) {}

  get size(): number {
    return this.items.length;
  }

  top(): T | undefined {
    return this.items[0];
  }

  push(n: T): void {
    n.heapIndex = this.items.length;
    this.items.push(n);
    this.up(n.heapIndex);
  }

  pop(): T | undefined {
    if (this.items.length === 0) return undefined;
    const top = this.items[0];
    this.remove(top);
    return top;
  }

  remove(n: T): void {
    const i = n.heapIndex;
    if (i < 0 || this.items[i] !== n) return;
    const last = this.items.pop()!;
    if (last !== n) {
      this.items[i] = last;
      last.heapIndex = i;
      this.down(i);
      this.up(last.heapIndex);
    }
    n.heapIndex = -1;
  }

  update(n: T): void {
    if (n.heapIndex < 0 || this.items[n.heapIndex] !== n) {
      this.push(n);
      return;
    }
    this.down(n.heapIndex);
    this.up(n.heapIndex);
  }

  private swap(i: number, j: number): void {
    const a = this.items[i];
    const b = this.items[j];
    this.items[i] = b;
    this.items[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(this.items[i], this.items[p])) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.before(this.items[l], this.items[m])) m = l;
      if (r < n && this.before(this.items[r], this.items[m])) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
