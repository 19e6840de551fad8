/**
 * etcd's raftpb messages as its WAL and snap files hold them (raft/raftpb/raft.proto, gogoproto's encoding), read
 * to convert an etcd 3.4 data dir. IDs are uint64: kept as bigints here (etcd's member IDs do not fit a double).
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** raftpb.EntryType. */
export const ETCD_ENTRY_NORMAL = 0;
export const ETCD_ENTRY_CONF_CHANGE = 1;
export const ETCD_ENTRY_CONF_CHANGE_V2 = 2;

/** raftpb.ConfChangeType (numbered unlike ours: UpdateNode is 2). */
export const ETCD_CC_ADD_NODE = 0;
export const ETCD_CC_REMOVE_NODE = 1;
export const ETCD_CC_UPDATE_NODE = 2;
export const ETCD_CC_ADD_LEARNER_NODE = 3;

export interface EtcdEntry {
  term: number;
  index: number;
  type: number;
  data: Buffer;
}

export interface EtcdHardState {
  term: number;
  vote: bigint;
  commit: number;
}

export interface EtcdConfChange {
  id: bigint;
  type: number;
  nodeId: bigint;
  context: Buffer;
}

export interface EtcdSnapshot {
  data: Buffer;
  index: number;
  term: number;
  voters: bigint[];
  learners: bigint[];
  /** Joint consensus (voters_outgoing, learners_next, auto_leave): etcd 3.4 never writes it. */
  joint: boolean;
}

/** A uint64 that must be an index or a term: exact in a double. */
function u53(v: bigint | string, what: string): number {
  const n = BigInt(v);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`raftpb: ${what} ${n} is beyond 2^53`);
  return Number(n);
}

/** Calls `field` for each field of a message; `field` reads the value or returns false to have it skipped. */
function eachField(buf: Uint8Array, what: string, field: (r: BinaryReader, no: number, wt: WireType) => boolean): void {
  const r = new BinaryReader(buf);
  try {
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      if (!field(r, no, wt)) r.skip(wt, no);
    }
  } catch (err) {
    throw new Error(`raftpb: malformed ${what} (${(err as Error).message})`);
  }
  if (r.pos !== r.len) throw new Error(`raftpb: malformed ${what} (runs past its end)`);
}

const isVarint = (wt: WireType): boolean => wt === WireType.Varint;
const isBytes = (wt: WireType): boolean => wt === WireType.LengthDelimited;

export function decodeEtcdEntry(buf: Uint8Array): EtcdEntry {
  const e: EtcdEntry = { term: 0, index: 0, type: ETCD_ENTRY_NORMAL, data: Buffer.alloc(0) };
  eachField(buf, 'entry', (r, no, wt) => {
    if (no === 1 && isVarint(wt)) e.type = r.int32();
    else if (no === 2 && isVarint(wt)) e.term = u53(r.uint64(), 'term');
    else if (no === 3 && isVarint(wt)) e.index = u53(r.uint64(), 'index');
    else if (no === 4 && isBytes(wt)) e.data = Buffer.from(r.bytes());
    else return false;
    return true;
  });
  return e;
}

export function decodeEtcdHardState(buf: Uint8Array): EtcdHardState {
  const hs: EtcdHardState = { term: 0, vote: 0n, commit: 0 };
  eachField(buf, 'hard state', (r, no, wt) => {
    if (!isVarint(wt)) return false;
    if (no === 1) hs.term = u53(r.uint64(), 'term');
    else if (no === 2) hs.vote = BigInt(r.uint64());
    else if (no === 3) hs.commit = u53(r.uint64(), 'commit');
    else return false;
    return true;
  });
  return hs;
}

export function decodeEtcdConfChange(buf: Uint8Array): EtcdConfChange {
  const cc: EtcdConfChange = { id: 0n, type: ETCD_CC_ADD_NODE, nodeId: 0n, context: Buffer.alloc(0) };
  eachField(buf, 'conf change', (r, no, wt) => {
    if (no === 1 && isVarint(wt)) cc.id = BigInt(r.uint64());
    else if (no === 2 && isVarint(wt)) cc.type = r.int32();
    else if (no === 3 && isVarint(wt)) cc.nodeId = BigInt(r.uint64());
    else if (no === 4 && isBytes(wt)) cc.context = Buffer.from(r.bytes());
    else return false;
    return true;
  });
  return cc;
}

/** walpb.Snapshot: a snapshot's index and term, as the WAL marks it. */
export function decodeEtcdWalSnapshot(buf: Uint8Array): { index: number; term: number } {
  const s = { index: 0, term: 0 };
  eachField(buf, 'WAL snapshot record', (r, no, wt) => {
    if (!isVarint(wt)) return false;
    if (no === 1) s.index = u53(r.uint64(), 'index');
    else if (no === 2) s.term = u53(r.uint64(), 'term');
    else return false;
    return true;
  });
  return s;
}

/** Reads a packed or unpacked repeated uint64. */
function repeatedU64(r: BinaryReader, wt: WireType, out: bigint[]): void {
  if (isBytes(wt)) {
    const sub = new BinaryReader(r.bytes());
    while (sub.pos < sub.len) out.push(BigInt(sub.uint64()));
  } else out.push(BigInt(r.uint64()));
}

export function decodeEtcdSnapshot(buf: Uint8Array): EtcdSnapshot {
  const s: EtcdSnapshot = { data: Buffer.alloc(0), index: 0, term: 0, voters: [], learners: [], joint: false };
  eachField(buf, 'snapshot', (r, no, wt) => {
    if (no === 1 && isBytes(wt)) s.data = Buffer.from(r.bytes());
    else if (no === 2 && isBytes(wt)) {
      eachField(r.bytes(), 'snapshot metadata', (m, mno, mwt) => {
        if (mno === 1 && isBytes(mwt)) {
          eachField(m.bytes(), 'conf state', (c, cno, cwt) => {
            if (cno === 1) repeatedU64(c, cwt, s.voters);
            else if (cno === 2) repeatedU64(c, cwt, s.learners);
            else if (cno === 3 || cno === 4) {
              const ids: bigint[] = [];
              repeatedU64(c, cwt, ids);
              if (ids.length) s.joint = true;
            } else if (cno === 5 && isVarint(cwt)) s.joint ||= c.bool();
            else return false;
            return true;
          });
        } else if (mno === 2 && isVarint(mwt)) s.index = u53(m.uint64(), 'index');
        else if (mno === 3 && isVarint(mwt)) s.term = u53(m.uint64(), 'term');
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return s;
}

/** etcdserverpb.Metadata, the WAL's metadata record: the member's and its cluster's IDs. */
export function decodeEtcdWalMetadata(buf: Uint8Array): { nodeId: bigint; clusterId: bigint } {
  const m = { nodeId: 0n, clusterId: 0n };
  eachField(buf, 'WAL metadata', (r, no, wt) => {
    if (!isVarint(wt)) return false;
    if (no === 1) m.nodeId = BigInt(r.uint64());
    else if (no === 2) m.clusterId = BigInt(r.uint64());
    else return false;
    return true;
  });
  return m;
}
