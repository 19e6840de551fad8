import { V2Event, V2Store } from '../store';
import { Method, WriteRequest } from './request';
import { V2StateMachine } from './server';

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

  save(): Buffer {
    return this.store.save();
  }

  recover(data: Buffer): void {
    this.store.recover(data);
  }

  validateSnapshot(data: Buffer): void {
    new V2Store(Date.now).recover(data);
  }
}
