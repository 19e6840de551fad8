/**
 * A deterministic in-memory cluster of RawNodes for focused Raft tests: messages are queued and delivered in
 * order by stabilize(); links can be cut. The host loop is the one the server uses: persist, send, apply, advance.
 */
import {
  ConfChange,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NodeId,
  RaftConfig,
  RawNode,
  ReadState,
  StateType,
  decodeConfChange,
} from '../../server/raft';

export interface NodeOptions extends Partial<Omit<RaftConfig, 'id' | 'storage'>> {}

export class TestNode {
  readonly storage: MemoryStorage;
  node: RawNode;
  /** Normal entries with data, in the order applied. */
  readonly applied: Entry[] = [];
  readonly readStates: ReadState[] = [];

  constructor(readonly id: NodeId, opts: NodeOptions, storage = new MemoryStorage()) {
    this.storage = storage;
    this.node = new RawNode({ id, storage, electionTick: 10, heartbeatTick: 1, random: () => 0, ...opts });
  }

  get raft() {
    return this.node.raft;
  }

  get state(): StateType {
    return this.node.raft.state;
  }

  appliedData(): string[] {
    return this.applied.map((e) => Buffer.from(e.data).toString());
  }

  /** Runs the host loop once; returns the messages to send. */
  handleReady(): Message[] {
    if (!this.node.hasReady()) return [];
    const rd = this.node.ready();
    if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        const cc: ConfChange = decodeConfChange(e.data);
        this.node.applyConfChange(cc);
      } else if (e.data.length > 0) {
        this.applied.push(e);
      }
    }
    this.readStates.push(...rd.readStates);
    this.node.advance(rd);
    return rd.messages;
  }
}

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  private readonly cut = new Set<string>();
  /** Every message delivered, for assertions on traffic. */
  readonly delivered: Message[] = [];
  /** Drop messages for which this returns true (in addition to cut links). */
  dropIf: (m: Message) => boolean = () => false;
  private queue: Message[] = [];

  /** A cluster of ids, bootstrapped as a new cluster, or started from the given (crafted) storages. */
  constructor(ids: NodeId[], opts: NodeOptions = {}, storages?: Map<NodeId, MemoryStorage>) {
    for (const id of ids) {
      const n = new TestNode(id, opts, storages?.get(id));
      if (!storages) n.node.bootstrap(ids.map((p) => ({ id: p })));
      this.nodes.set(id, n);
    }
    this.stabilize();
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  add(node: TestNode): void {
    this.nodes.set(node.id, node);
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cutLink(id, other);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Puts messages on the wire (from outside the host loop, e.g. a crafted message). */
  send(...msgs: Message[]): void {
    this.queue.push(...msgs);
    this.stabilize();
  }

  /** Runs host loops and delivers messages until nothing moves. */
  stabilize(maxRounds = 10000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const n of this.nodes.values()) {
        while (n.node.hasReady()) {
          moved = true;
          this.queue.push(...n.handleReady());
        }
      }
      if (this.queue.length === 0 && !moved) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.cut.has(`${m.from}>${m.to}`) || this.dropIf(m)) continue;
        const to = this.nodes.get(m.to);
        if (!to) continue;
        this.delivered.push(m);
        try {
          to.node.step(m);
        } catch (err) {
          // A forwarded proposal the receiver cannot take is dropped, as over a real network.
          if (!(err instanceof Error && err.name === 'ProposalDroppedError')) throw err;
        }
      }
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.get(id).node.tick();
      this.stabilize();
    }
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.node.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  propose(id: NodeId, data: string): void {
    this.get(id).node.propose(Buffer.from(data));
    this.stabilize();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.state === StateType.Leader).map((n) => n.id);
  }

  leader(): NodeId {
    const ls = this.leaders();
    if (ls.length !== 1) throw new Error(`expected one leader, got [${ls.join(',')}]`);
    return ls[0];
  }
}

/** The terms of a node's whole log (storage and unstable), index 1 on. */
export function logTerms(n: TestNode): number[] {
  const log = n.raft.raftLog;
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i));
  return out;
}

export function countOf(msgs: Message[], type: MessageType, pred: (m: Message) => boolean = () => true): number {
  return msgs.filter((m) => m.type === type && pred(m)).length;
}

/** A storage holding the given terms as entries 1..n (for crafted logs, as in the paper's figures). */
export function storageWithTerms(terms: number[], voters: NodeId[], currentTerm = 0): MemoryStorage {
  const s = new MemoryStorage({ voters, learners: [] });
  s.append(terms.map((t, i) => ({ term: t, index: i + 1, type: EntryType.Normal, data: Buffer.from(`e${i + 1}t${t}`) })));
  if (currentTerm > 0) s.setHardState({ term: currentTerm, vote: '', commit: 0 });
  return s;
}
