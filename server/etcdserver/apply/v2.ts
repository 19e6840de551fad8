import { V2Error, V2Event, V2Store } from '../../store';
import { Method, WriteRequest, decodeRequest } from '../request';
import { Applier, ApplyContext, ApplyResult } from './applier';

/** The replicated state machine behind the v2 API (the v2 store). Deterministic: time comes from the log. */
export interface V2StateMachine {
  /** Applies a write; returns the event for the client, or throws the store's error (also a client answer). */
  applyWrite(req: WriteRequest): unknown;
  deleteExpiredKeys(nowMs: number): void;
  hasTTLKeys(): boolean;
  /**
   * Records membership and the cluster version where etcd keeps them, in the store's hidden /0 namespace, so the
   * store's index moves as etcd's does (etcd's mustSaveMemberToStore and friends).
   */
  recordInternal?(op: 'create' | 'set' | 'update' | 'delete', path: string, value?: string): void;
  readInternal?(path: string): string | undefined;
  save(): Buffer;
  /** What save() would give now, encoded over later turns of the event loop while writes go on (in chunks). */
  saveInTurns?(): Promise<Buffer[]>;
  recover(data: Buffer): void;
  /** Throws if a snapshot's store data would not recover (checked before a peer's snapshot reaches Raft). */
  validateSnapshot?(data: Buffer): void;
}

/** Applies logged v2 writes to the store the way etcd's applierV2store does. */
export class V2Applier implements V2StateMachine {
  constructor(readonly store: V2Store) {}

  applyWrite(r: WriteRequest): V2Event {
    const s = this.store;
    const ttl = { expireTime: r.expiration, refresh: r.refresh };
    switch (r.method) {
      case Method.POST:
        return s.create(r.path, r.dir, r.value, true, ttl);
      case Method.DELETE:
        if (r.prevIndex > 0 || r.prevValue !== '') return s.compareAndDelete(r.path, r.prevValue, r.prevIndex);
        return s.delete(r.path, r.dir, r.recursive);
      case Method.PUT:
        if (r.prevExist === true) {
          if (r.prevIndex === 0 && r.prevValue === '') return s.update(r.path, r.value, ttl);
          return s.compareAndSwap(r.path, r.prevValue, r.prevIndex, r.value, ttl);
        }
        if (r.prevExist === false) return s.create(r.path, r.dir, r.value, false, ttl);
        if (r.prevIndex > 0 || r.prevValue !== '') return s.compareAndSwap(r.path, r.prevValue, r.prevIndex, r.value, ttl);
        return s.set(r.path, r.dir, r.value, ttl);
      default:
        throw new Error(`etcdserver: unknown method ${r.method}`);
    }
  }

  deleteExpiredKeys(nowMs: number): void {
    this.store.deleteExpiredKeys(nowMs);
  }

  hasTTLKeys(): boolean {
    return this.store.hasTTLKeys();
  }

  recordInternal(op: 'create' | 'set' | 'update' | 'delete', path: string, value = ''): void {
    this.store.writeInternal(op, path, value);
  }

  readInternal(path: string): string | undefined {
    return this.store.readInternal(path);
  }

  save(): Buffer {
    return this.store.save();
  }

  saveInTurns(): Promise<Buffer[]> {
    return this.store.saveInTurns();
  }

  recover(data: Buffer): void {
    this.store.recover(data);
  }

  validateSnapshot(data: Buffer): void {
    new V2Store(Date.now).recover(data);
  }
}

/** The applier of v2 entries (EntryKind.V2): keys writes, and the leader's clock (SYNC) that expires TTL keys. */
export class V2EntryApplier implements Applier {
  readonly versions = [1];

  constructor(private readonly sm: V2StateMachine) {}

  apply(payload: Uint8Array, _ctx: ApplyContext): ApplyResult {
    const req = decodeRequest(payload);
    if (req.method === Method.SYNC) {
      this.sm.deleteExpiredKeys(req.time);
      return {};
    }
    if (req.method !== Method.PUT && req.method !== Method.POST && req.method !== Method.DELETE) throw new Error(`v2 entry: method ${Method[req.method]} is not a v2 write`);
    try {
      return { result: this.sm.applyWrite(req) };
    } catch (err) {
      // The store's refusals (a failed compare, a missing key) are the client's answer.
      if (err instanceof V2Error) return { error: err };
      throw err;
    }
  }
}
