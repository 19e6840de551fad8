/**
 * A min-heap of leases by a time (ms), at most one entry per lease: the lessor's expiry queue (etcd's
 * LeaseExpiredNotifier), where a renewal moves a lease's entry instead of adding one.
 */
export interface QueueItem {
  id: bigint;
  time: number;
  index: number;
}

export class LeaseQueue {
  private readonly heap: QueueItem[] = [];
  private readonly byId = new Map<bigint, QueueItem>();

  get size(): number {
    return this.heap.length;
  }

  /** Adds the lease at time, or moves it there. */
  set(id: bigint, time: number): void {
    const old = this.byId.get(id);
    if (old) {
      old.time = time;
      this.fix(old.index);
      return;
    }
    const item = { id, time, index: this.heap.length };
    this.heap.push(item);
    this.byId.set(id, item);
    this.up(item.index);
  }

  peek(): QueueItem | undefined {
    return this.heap[0];
  }

  /** Removes the earliest entry. */
  pop(): QueueItem | undefined {
    const h = this.heap;
    if (!h.length) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      last.index = 0;
      this.down(0);
    }
    this.byId.delete(top.id);
    return top;
  }

  clear(): void {
    this.heap.length = 0;
    this.byId.clear();
  }

  private fix(i: number): void {
    if (!this.up(i)) this.down(i);
  }

  private up(i: number): boolean {
    const h = this.heap;
    const start = i;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].time <= h[i].time) break;
      this.swap(i, p);
      i = p;
    }
    return i !== start;
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) return;
      const r = l + 1;
      const c = r < h.length && h[r].time < h[l].time ? r : l;
      if (h[i].time <= h[c].time) return;
      this.swap(i, c);
      i = c;
    }
  }

  private swap(i: number, j: number): void {
    const h = this.heap;
    [h[i], h[j]] = [h[j], h[i]];
    h[i].index = i;
    h[j].index = j;
  }
}
