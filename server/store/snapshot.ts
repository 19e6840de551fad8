/**
 * The v2 store's snapshot encoding. Version 2 is flat and written line by line, so that neither saving nor loading
 * depends on the depth of the tree (no recursion, no one JSON text of a nested tree):
 *
 *     {"format":"v2store","version":2,"index":I,"nodes":N,"history":H,"stats":{...},"internal":{...}}
 *     [depth,name,createdIndex,modifiedIndex,expireTime,value]      one line per node, in pre-order,
 *     [depth,name,createdIndex,modifiedIndex,expireTime]            a directory has no value; the root is depth 0
 *     {"action":...,"node":{...},"prevNode":{...},"refresh":true}    one line per event of the watch history
 *
 * A node's parent is the last node before it one level up; children come in the order they were created, which is
 * the order a listing shows. Names only, never full paths: the size is linear in the keys' lengths.
 * Version 1, the single JSON object `{"index","root","history","stats"}` of earlier releases, is still read.
 */
import { NodeExtern, V2Event } from './event';
import { StoreNode } from './node';

export const SNAPSHOT_FORMAT = 'v2store';
export const SNAPSHOT_VERSION = 2;

export interface StoreState {
  index: number;
  root: StoreNode;
  history: V2Event[];
  stats?: Record<string, number>;
  /** The hidden /0 records (membership, cluster version): small, kept in the header. */
  internal?: Record<string, string>;
}

/** A decoded snapshot: the state, and its nodes that have an expiration time (for the TTL heap). */
export interface DecodedStore extends StoreState {
  expiring: StoreNode[];
}

/** Strings are gathered into Buffers of about this many characters, so no single string nears V8's limit. */
const CHUNK_CHARS = 1 << 20;

/**
 * A node as it was when a save began, kept by the store for a node that changes while the save is encoded over
 * several turns of the event loop (copy-on-write). `children` is set once the directory's own children change.
 */
export interface FrozenNode {
  value: string;
  modifiedIndex: number;
  expireTime: number;
  children?: StoreNode[];
}

/**
 * The encoder of a store's state, node by node: all at once (encodeStore) or in slices between which the store
 * goes on taking writes (V2Store.saveInTurns); `frozen` then has the state, as of the start, of the nodes changed
 * since. Either way the bytes are those of one pass over the tree as it was.
 */
export class StoreEncoder {
  private readonly bufs: Buffer[] = [];
  private parts: string[] = [];
  private chars = 0;
  private count = 0;
  private history = 0;
  /** The directories being walked, pre-order: each with its children as they were and the next one to write. */
  private readonly frames: { kids: StoreNode[]; next: number; depth: number }[] = [];
  private started = false;

  constructor(
    private readonly s: StoreState,
    private readonly frozen?: ReadonlyMap<StoreNode, FrozenNode>,
  ) {}

  private line(text: string): void {
    this.parts.push(text, '\n');
    this.chars += text.length + 1;
    if (this.chars >= CHUNK_CHARS) this.flush();
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    this.bufs.push(Buffer.from(this.parts.join('')));
    this.parts = [];
    this.chars = 0;
  }

  private node(n: StoreNode, depth: number): void {
    this.count++;
    const f = this.frozen?.get(n);
    const m = f ? f.modifiedIndex : n.modifiedIndex;
    const e = f ? f.expireTime : n.expireTime;
    if (n.isDir) {
      this.line(JSON.stringify([depth, n.name, n.createdIndex, m, e]));
      const kids = f?.children ?? [...n.children!.values()];
      if (kids.length > 0) this.frames.push({ kids, next: 0, depth: depth + 1 });
    } else {
      this.line(JSON.stringify([depth, n.name, n.createdIndex, m, e, f ? f.value : n.value]));
    }
  }

  /** Encodes until performance.now() passes `deadline` (checked every few hundred nodes); true once all is done. */
  step(deadline = Infinity): boolean {
    if (!this.started) {
      this.started = true;
      this.node(this.s.root, 0);
    }
    const frames = this.frames;
    for (let k = 1; frames.length > 0; k++) {
      const top = frames[frames.length - 1];
      if (top.next === top.kids.length) {
        frames.pop();
        continue;
      }
      // node() may push the child's own frame: pre-order, children in their order.
      this.node(top.kids[top.next++], top.depth);
      if ((k & 255) === 0 && performance.now() > deadline) return false;
    }
    const history = this.s.history;
    for (let k = 1; this.history < history.length; k++) {
      const e = history[this.history++];
      const h: { action: string; node: NodeExtern; prevNode?: NodeExtern; refresh?: boolean } = { action: e.action, node: e.node };
      if (e.prevNode) h.prevNode = e.prevNode;
      if (e.refresh) h.refresh = true;
      this.line(JSON.stringify(h));
      if ((k & 255) === 0 && this.history < history.length && performance.now() > deadline) return false;
    }
    return true;
  }

  /** The encoding, in chunks (after step() returned true): the header, then the lines. */
  chunks(): Buffer[] {
    this.flush();
    const s = this.s;
    const header = { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, index: s.index, nodes: this.count, history: s.history.length, stats: s.stats, internal: s.internal };
    return [Buffer.from(JSON.stringify(header) + '\n'), ...this.bufs];
  }
}

export function encodeStore(s: StoreState): Buffer {
  const e = new StoreEncoder(s);
  e.step();
  return Buffer.concat(e.chunks());
}

export class MalformedSnapshot extends Error {
  constructor(why: string) {
    super(`store: malformed snapshot: ${why}`);
  }
}

const isIndex = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isTime = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
const isName = (x: unknown): x is string => typeof x === 'string' && x !== '' && !x.includes('/');

function historyEvent(h: unknown): V2Event {
  const j = h as { action?: unknown; node?: unknown; prevNode?: unknown; refresh?: unknown };
  if (!j || typeof j !== 'object' || typeof j.action !== 'string' || !j.node || typeof j.node !== 'object' || (j.prevNode !== undefined && (!j.prevNode || typeof j.prevNode !== 'object'))) {
    throw new MalformedSnapshot('bad history event');
  }
  const node = j.node as NodeExtern;
  const e = new V2Event(j.action, node, j.prevNode as NodeExtern | undefined, node.modifiedIndex ?? 0);
  e.refresh = j.refresh === true;
  return e;
}

function checkInternal(internal: unknown): Record<string, string> | undefined {
  if (internal === undefined) return undefined;
  if (!internal || typeof internal !== 'object' || Object.values(internal).some((v) => typeof v !== 'string')) throw new MalformedSnapshot('bad internal records');
  return internal as Record<string, string>;
}

function checkStats(stats: unknown): Record<string, number> | undefined {
  if (stats === undefined) return undefined;
  if (!stats || typeof stats !== 'object' || Object.values(stats).some((v) => typeof v !== 'number')) throw new MalformedSnapshot('bad stats');
  return stats as Record<string, number>;
}

/** Reads a snapshot of either version into new nodes; throws MalformedSnapshot (and builds nothing) when it is bad. */
export function decodeStore(data: Buffer): DecodedStore {
  const magic = '{"format":';
  if (data.length >= magic.length && data.toString('latin1', 0, magic.length) === magic) return decodeV2(data);
  return decodeV1(data);
}

function decodeV2(data: Buffer): DecodedStore {
  let at = 0;
  const next = (): unknown => {
    if (at >= data.length) throw new MalformedSnapshot('truncated');
    let end = data.indexOf(0x0a, at);
    if (end < 0) end = data.length;
    const text = data.toString('utf8', at, end);
    at = end + 1;
    try {
      return JSON.parse(text);
    } catch {
      throw new MalformedSnapshot('a line is not JSON');
    }
  };
  const head = next() as { format?: unknown; version?: unknown; index?: unknown; nodes?: unknown; history?: unknown; stats?: unknown; internal?: unknown };
  if (!head || head.format !== SNAPSHOT_FORMAT) throw new MalformedSnapshot('not a v2 store snapshot');
  if (head.version !== SNAPSHOT_VERSION) throw new Error(`store: snapshot format version ${String(head.version)} is not one this server reads (${SNAPSHOT_VERSION})`);
  if (!isIndex(head.index) || !isIndex(head.nodes) || head.nodes < 1 || !isIndex(head.history)) throw new MalformedSnapshot('bad header');
  const stats = checkStats(head.stats);
  const internal = checkInternal(head.internal);
  // The ancestors of the next node: path[d] is the directory at depth d.
  const path: StoreNode[] = [];
  const expiring: StoreNode[] = [];
  let root: StoreNode | undefined;
  for (let k = 0; k < head.nodes; k++) {
    const r = next();
    if (!Array.isArray(r) || (r.length !== 5 && r.length !== 6)) throw new MalformedSnapshot('bad node');
    const [depth, name, c, m, e, value] = r as unknown[];
    if (!isIndex(c) || !isIndex(m) || !isTime(e) || (r.length === 6 && typeof value !== 'string')) throw new MalformedSnapshot('bad node');
    const dir = r.length === 5;
    if (k === 0) {
      if (depth !== 0 || name !== '' || !dir) throw new MalformedSnapshot('the first node is not the root');
      root = new StoreNode('', c, m, undefined, true);
      path.push(root);
      continue;
    }
    if (!Number.isSafeInteger(depth) || (depth as number) < 1 || (depth as number) > path.length || !isName(name)) throw new MalformedSnapshot('bad node');
    path.length = depth as number;
    const parent = path[path.length - 1];
    if (parent.children!.has(name)) throw new MalformedSnapshot('a name twice in one directory');
    const n = new StoreNode(name, c, m, parent, dir);
    if (!dir) n.value = value as string;
    n.expireTime = e;
    if (e !== 0) expiring.push(n);
    parent.children!.set(name, n);
    if (dir) path.push(n);
  }
  const history: V2Event[] = [];
  for (let k = 0; k < head.history; k++) history.push(historyEvent(next()));
  if (at < data.length) throw new MalformedSnapshot('data after the end');
  return { index: head.index, root: root!, history, stats, internal, expiring };
}

interface SavedNodeV1 {
  p: string;
  v?: string;
  c: number;
  m: number;
  e?: number;
  d?: SavedNodeV1[];
}

/** The format of earlier releases: one JSON object, each node with its full path and its children nested. */
function decodeV1(data: Buffer): DecodedStore {
  let j: { index?: unknown; root?: SavedNodeV1; history?: unknown; stats?: unknown; internal?: unknown };
  try {
    j = JSON.parse(data.toString()) as typeof j;
  } catch {
    throw new MalformedSnapshot('not JSON');
  }
  if (!j || typeof j !== 'object' || !isIndex(j.index) || !j.root || !Array.isArray(j.history)) throw new MalformedSnapshot('bad header');
  const stats = checkStats(j.stats);
  const internal = checkInternal(j.internal);
  const expiring: StoreNode[] = [];
  const make = (s: SavedNodeV1, parent: StoreNode | undefined): StoreNode => {
    if (!s || typeof s !== 'object' || typeof s.p !== 'string' || !isIndex(s.c) || !isIndex(s.m) || (s.e !== undefined && !isTime(s.e))) throw new MalformedSnapshot('bad node');
    if (s.d !== undefined && !Array.isArray(s.d)) throw new MalformedSnapshot('bad node');
    const name = parent ? s.p.slice(s.p.lastIndexOf('/') + 1) : '';
    if (parent && !isName(name)) throw new MalformedSnapshot('bad node');
    const n = new StoreNode(name, s.c, s.m, parent, s.d !== undefined);
    if (s.d === undefined) {
      if (typeof s.v !== 'string') throw new MalformedSnapshot('bad node');
      n.value = s.v;
    }
    if (s.e) {
      n.expireTime = s.e;
      expiring.push(n);
    }
    return n;
  };
  const root = make(j.root, undefined);
  if (!root.isDir) throw new MalformedSnapshot('the root is not a directory');
  // Children are made (in their order) when their directory is visited; the stack holds directories to visit.
  const stack: { s: SavedNodeV1; n: StoreNode }[] = [{ s: j.root, n: root }];
  while (stack.length > 0) {
    const { s, n } = stack.pop()!;
    for (const cs of s.d!) {
      const c = make(cs, n);
      if (n.children!.has(c.name)) throw new MalformedSnapshot('a name twice in one directory');
      n.children!.set(c.name, c);
      if (c.isDir) stack.push({ s: cs, n: c });
    }
  }
  return { index: j.index, root, history: j.history.map(historyEvent), stats, internal, expiring };
}
