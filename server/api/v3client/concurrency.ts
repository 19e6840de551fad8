/**
 * etcd's concurrency recipes (clientv3/concurrency: Mutex, Election, waitDeletes), over any client that offers KV
 * and Watch: the Lock and Election services run them in-process (in-process.ts), `etcdctl lock` and `elect` over
 * the network. A contender's key is `<name>/<lease in hex>`, created by a Txn on its create revision being 0; the
 * oldest key (lowest create revision) holds the lock or leads; the others wait for the deletion of every key created
 * before theirs, one watch at a time on the next older one. Errors are the client's, or etcd's texts below.
 */
import {
  Compare, Compare_CompareResult, Compare_CompareTarget, DeleteRangeRequest, type DeleteRangeResponse, PutRequest,
  RangeRequest, RangeRequest_SortOrder, RangeRequest_SortTarget, type RangeResponse, RequestOp, type ResponseHeader,
  TxnRequest, type TxnResponse,
} from '../v3rpc/pb/etcdserverpb/rpc';
import { Event_EventType, type Event, type KeyValue } from '../v3rpc/pb/mvccpb/kv';

/** What the recipes need of a client (clientv3's KV and Watch); failures are thrown as the client reports them. */
export interface ConcurrencyClient {
  range(r: RangeRequest): Promise<RangeResponse>;
  txn(r: TxnRequest): Promise<TxnResponse>;
  deleteRange(r: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  /**
   * Watches key (or [key, end)) from rev: each response's header and events go to onEvents, one response at a
   * time, until it answers true (then the watch is cancelled and the promise resolves). Rejects with the watch's
   * error (a compacted revision: etcd's ErrCompacted) or, once the signal aborts, with ContextCanceled.
   */
  watch(key: Buffer, end: Buffer | undefined, rev: bigint, signal: AbortSignal | undefined, onEvents: (header: ResponseHeader, events: Event[]) => boolean | Promise<boolean>): Promise<void>;
}

/** Go's context.Canceled, as the recipes report a wait given up. */
export class ContextCanceled extends Error {
  constructor() {
    super('context canceled');
  }
}

export const ErrElectionNotLeader = 'election: not leader';
export const ErrElectionNoLeader = 'election: no leader';

/** An error of the recipes themselves (their text is etcd's). */
export class ConcurrencyError extends Error {}

const SLASH = Buffer.from('/');

/** Go's %x of an int64 lease ID (a negative one with its sign). */
export function leaseHex(id: bigint): string {
  return id < 0n ? `-${(-id).toString(16)}` : id.toString(16);
}

/** A contender's key: the election's (or lock's) prefix, `<name>/`, and its lease in hex. */
export function contenderKey(name: Buffer, lease: bigint): Buffer {
  return Buffer.concat([name, SLASH, Buffer.from(leaseHex(lease))]);
}

/** clientv3's GetPrefixRangeEnd: the key with its last byte below 0xff incremented (none: "\0", every key). */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i] < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** clientv3's WithFirstCreate (order ASCEND) or WithLastCreate (DESCEND) on a prefix: one key, by create revision. */
function byCreate(pfx: Buffer, order: RangeRequest_SortOrder, maxCreateRevision = 0n): RangeRequest {
  return RangeRequest.fromPartial({ key: pfx, rangeEnd: prefixEnd(pfx), limit: 1n, sortOrder: order, sortTarget: RangeRequest_SortTarget.CREATE, maxCreateRevision });
}

const createRevIs = (key: Buffer, rev: bigint): Compare =>
  Compare.fromPartial({ key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, createRevision: rev });
const putOp = (key: Buffer, value: Buffer, lease: bigint): RequestOp => RequestOp.fromPartial({ requestPut: PutRequest.fromPartial({ key, value, lease }) });
const getOp = (r: RangeRequest): RequestOp => RequestOp.fromPartial({ requestRange: r });
const delOp = (key: Buffer): RequestOp => RequestOp.fromPartial({ requestDeleteRange: DeleteRangeRequest.fromPartial({ key }) });

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ContextCanceled();
}

/** waitDelete: watches key from rev until it is deleted. */
function waitDelete(c: ConcurrencyClient, key: Buffer, rev: bigint, signal: AbortSignal | undefined): Promise<void> {
  return c.watch(key, undefined, rev, signal, (_h, events) => events.some((ev) => ev.type === Event_EventType.DELETE));
}

/**
 * waitDeletes: until no key under pfx has a create revision up to maxCreateRev, waits for the deletion of the
 * youngest of them; the header of the range that found none.
 */
export async function waitDeletes(c: ConcurrencyClient, pfx: Buffer, maxCreateRev: bigint, signal?: AbortSignal): Promise<ResponseHeader> {
  for (;;) {
    checkSignal(signal);
    const resp = await c.range(byCreate(pfx, RangeRequest_SortOrder.DESCEND, maxCreateRev));
    if (resp.kvs.length === 0) return resp.header!;
    await waitDelete(c, resp.kvs[0].key, resp.header!.revision, signal);
  }
}

/**
 * Mutex.Lock: the lock `name` for this lease, once every older contender is gone; the key and the header of the
 * answer that made it the holder. A wait that fails (or is given up) deletes the key again, as etcd's does.
 */
export async function lock(c: ConcurrencyClient, name: Buffer, lease: bigint, signal?: AbortSignal): Promise<{ key: Buffer; header: ResponseHeader }> {
  checkSignal(signal);
  const pfx = Buffer.concat([name, SLASH]);
  const key = contenderKey(name, lease);
  const owner = getOp(byCreate(pfx, RangeRequest_SortOrder.ASCEND));
  // put itself among the waiters (or find its key from an earlier call with this lease), and the holder, at once
  const resp = await c.txn(TxnRequest.fromPartial({
    compare: [createRevIs(key, 0n)],
    success: [putOp(key, Buffer.alloc(0), lease), owner],
    failure: [getOp(RangeRequest.fromPartial({ key })), owner],
  }));
  const myRev = resp.succeeded ? resp.header!.revision : resp.responses[0].responseRange!.kvs[0].createRevision;
  const holder = resp.responses[1].responseRange!.kvs;
  if (holder.length === 0 || holder[0].createRevision === myRev) return { key, header: resp.header! };
  try {
    return { key, header: await waitDeletes(c, pfx, myRev - 1n, signal) };
  } catch (err) {
    await c.deleteRange(DeleteRangeRequest.fromPartial({ key })).catch(() => undefined);
    throw err;
  }
}

/** A leadership held: the leader key, its create revision, its lease. */
export interface Leadership {
  key: Buffer;
  rev: bigint;
  lease: bigint;
}

/**
 * Election.Campaign: leads election `name` with value once every older candidate is gone; the header is the one of
 * the campaign's Txn, as etcd's. A campaign given up resigns; one whose value could not be proclaimed resigns too.
 */
export async function campaign(c: ConcurrencyClient, name: Buffer, lease: bigint, value: Buffer, signal?: AbortSignal): Promise<Leadership & { header: ResponseHeader }> {
  checkSignal(signal);
  const pfx = Buffer.concat([name, SLASH]);
  const key = contenderKey(name, lease);
  const resp = await c.txn(TxnRequest.fromPartial({
    compare: [createRevIs(key, 0n)],
    success: [putOp(key, value, lease)],
    failure: [getOp(RangeRequest.fromPartial({ key }))],
  }));
  const l: Leadership = { key, rev: resp.header!.revision, lease };
  if (!resp.succeeded) {
    const kv = resp.responses[0].responseRange!.kvs[0];
    l.rev = kv.createRevision;
    if (!kv.value.equals(value)) {
      try {
        await proclaim(c, l, value);
      } catch (err) {
        await resign(c, l).catch(() => undefined);
        throw err;
      }
    }
  }
  try {
    await waitDeletes(c, pfx, l.rev - 1n, signal);
  } catch (err) {
    if (signal?.aborted) await resign(c, l).catch(() => undefined);
    throw err;
  }
  return { ...l, header: resp.header! };
}

/** Election.Proclaim: a new value for the leader key, if it is still the one created at l.rev. */
export async function proclaim(c: ConcurrencyClient, l: Leadership, value: Buffer): Promise<ResponseHeader> {
  const resp = await c.txn(TxnRequest.fromPartial({ compare: [createRevIs(l.key, l.rev)], success: [putOp(l.key, value, l.lease)] }));
  if (!resp.succeeded) throw new ConcurrencyError(ErrElectionNotLeader);
  return resp.header!;
}

/** Election.Resign: deletes the leader key if it is still the one created at l.rev. */
export async function resign(c: ConcurrencyClient, l: Leadership): Promise<ResponseHeader> {
  const resp = await c.txn(TxnRequest.fromPartial({ compare: [createRevIs(l.key, l.rev)], success: [delOp(l.key)] }));
  return resp.header!;
}

/** Election.Leader: the oldest candidate's key of election `name` (etcd's "election: no leader" when none). */
export async function leader(c: ConcurrencyClient, name: Buffer): Promise<RangeResponse> {
  const resp = await c.range(byCreate(Buffer.concat([name, SLASH]), RangeRequest_SortOrder.ASCEND));
  if (resp.kvs.length === 0) throw new ConcurrencyError(ErrElectionNoLeader);
  return resp;
}

/**
 * Election.Observe: every leader's key in turn, and each value it proclaims, as responses of a range (emit may wait:
 * nothing more is read meanwhile). The first one of a leader is the range's header and key, or, when there was none,
 * its creation (the header's revision its own); then each put of it, until it is deleted and the next leader is
 * looked up. Returns when a call or a watch fails or the signal aborts: etcd's observer just ends then.
 */
export async function observe(c: ConcurrencyClient, name: Buffer, signal: AbortSignal | undefined, emit: (r: RangeResponse) => void | Promise<void>): Promise<void> {
  const pfx = Buffer.concat([name, SLASH]);
  try {
    for (;;) {
      checkSignal(signal);
      const resp = await c.range(byCreate(pfx, RangeRequest_SortOrder.ASCEND));
      let header: ResponseHeader;
      let kv: KeyValue;
      if (resp.kvs.length === 0) {
        // wait for the first put under the prefix (a delete would only make this spin)
        let first: { header: ResponseHeader; kv: KeyValue } | undefined;
        await c.watch(pfx, prefixEnd(pfx), resp.header!.revision, signal, (h, events) => {
          const put = events.find((ev) => ev.type === Event_EventType.PUT);
          if (put) first = { header: { ...h, revision: put.kv!.modRevision }, kv: put.kv! };
          return put !== undefined;
        });
        ({ header, kv } = first!);
      } else {
        header = resp.header!;
        kv = resp.kvs[0];
      }
      await emit({ header, kvs: [kv], more: false, count: 0n });
      checkSignal(signal);
      // every value the leader proclaims, until its key goes; as etcd's, with the count and more of the last range
      await c.watch(kv.key, undefined, header.revision + 1n, signal, async (h, events) => {
        for (const ev of events) {
          if (ev.type === Event_EventType.DELETE) return true;
          await emit({ header: h, kvs: [ev.kv!], more: resp.more, count: resp.count });
        }
        return false;
      });
    }
  } catch {
    // the observer ends
  }
}
