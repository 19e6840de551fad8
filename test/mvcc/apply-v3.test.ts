/** The v3 applier's replay rule: entries at or below the store's consistent index are not applied again. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { InternalRaftRequest } from '../../server/api/v3rpc/pb/etcdserverpb/raft_internal';
import { PutResponse, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { V3Applier } from '../../server/etcdserver/apply-v3';
import { MvccStore } from '../../server/mvcc/store';

test('a replayed entry is skipped after a restart; a failed one still moves the consistent index', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'apply-v3-'));
  try {
    let s = MvccStore.open(dir);
    const put = (v: string) => InternalRaftRequest.fromPartial({ put: { key: Buffer.from('k'), value: Buffer.from(v) } });
    let a = new V3Applier(s);
    expect((a.applyRequest(1, put('one'))!.resp as PutResponse).header!.revision).toBe(2n); // as etcd's: the first write is revision 2
    // the dispatcher's entry point: the payload is the encoded InternalRaftRequest
    const two = a.apply(InternalRaftRequest.encode(put('two')).finish(), { index: 2 });
    expect((two.result!.resp as PutResponse).header!.revision).toBe(3n);
    const bad = a.apply(InternalRaftRequest.encode(InternalRaftRequest.fromPartial({ put: { key: Buffer.from('k'), lease: 1n } })).finish(), { index: 3 });
    expect(bad.error!.message).toBe('lease not found');
    expect(s.consistentIndex()).toBe(3);
    await s.close();
    s = MvccStore.open(dir);
    a = new V3Applier(s);
    expect(s.consistentIndex()).toBe(3);
    expect(a.applyRequest(2, put('replayed'))).toBeUndefined();
    expect(a.apply(InternalRaftRequest.encode(put('replayed')).finish(), { index: 3 })).toEqual({});
    const r = a.range(RangeRequest.fromPartial({ key: Buffer.from('k') }));
    expect([`${r.kvs[0].value}`, r.kvs[0].version, r.header!.revision]).toEqual(['two', 2n, 3n]);
    expect(a.applyRequest(4, put('four'))!.resp).toBeDefined();
    expect(`${a.range(RangeRequest.fromPartial({ key: Buffer.from('k') })).kvs[0].value}`).toBe('four');
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
