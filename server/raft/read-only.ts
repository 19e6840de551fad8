import { Message, NodeId } from './types';

export enum ReadOnlyOption {
  /** ReadIndex confirms leadership with a heartbeat round to a quorum before answering (linearizable). */
  Safe = 'safe',
  /**
   * The leader answers from its lease (it heard from a quorum within the election timeout, and CheckQuorum makes
   * it step down otherwise). Cheaper, but relies on bounded clock drift between members.
   */
  LeaseBased = 'lease-based',
}

interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

/** Read requests the leader holds until a quorum confirms it is still the leader. */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  static key(ctx: Uint8Array | undefined): string {
    return ctx ? Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1') : '';
  }

  /** Holds request m, to be answered with the commit index as of now. */
  addRequest(index: number, m: Message): void {
    const k = ReadOnly.key(m.context);
    if (this.pending.has(k)) return;
    this.pending.set(k, { req: m, index, acks: new Set() });
    this.queue.push(k);
  }

  /** Records a heartbeat answer carrying ctx; returns who has acknowledged it so far. */
  recvAck(id: NodeId, ctx: Uint8Array | undefined): Set<NodeId> | undefined {
    const rs = this.pending.get(ReadOnly.key(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** The request for ctx is confirmed: it and every request queued before it can be answered. */
  advance(ctx: Uint8Array | undefined): { req: Message; index: number }[] {
    const k = ReadOnly.key(ctx);
    const at = this.queue.indexOf(k);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: { req: Message; index: number }[] = [];
    for (const key of done) {
      const rs = this.pending.get(key);
      if (!rs) throw new Error('cannot find the corresponding read state from pending map');
      this.pending.delete(key);
      out.push({ req: rs.req, index: rs.index });
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])?.req.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
