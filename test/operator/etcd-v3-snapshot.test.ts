/**
 * The operator's snapshot stream check (EtcdV3.snapshot, what backups rely on): against a Maintenance service that
 * sends what it is told, a whole snapshot with its SHA-256 is taken, and a wrong digest, a missing one, or a stream
 * cut short is an error, never a backup.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { MaintenanceService, type SnapshotResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { EtcdV3 } from '../../operator/etcd-v3';

let server: grpc.Server;
let url = '';
/** What the next Snapshot call streams (blobs), and whether it then fails. */
let script: { blobs: Buffer[]; fail?: boolean } = { blobs: [] };

beforeAll(async () => {
  server = new grpc.Server();
  const impl: Record<string, unknown> = {
    snapshot: (call: grpc.ServerWritableStream<unknown, SnapshotResponse>) => {
      let left = script.blobs.reduce((n, b) => n + b.length, 0);
      for (const blob of script.blobs) {
        left -= blob.length;
        call.write({ header: undefined, remainingBytes: BigInt(left), blob });
      }
      if (script.fail) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'stream broke' });
      else call.end();
    },
  };
  for (const m of Object.keys(MaintenanceService)) impl[m] ??= (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED } as grpc.ServiceError);
  server.addService(MaintenanceService, impl as never);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  url = `http://127.0.0.1:${port}`;
});
afterAll(() => server.forceShutdown());

async function take(blobs: Buffer[], fail = false): Promise<{ size: number; sha256: string; got: Buffer }> {
  script = { blobs, fail };
  const e = new EtcdV3();
  const chunks: Buffer[] = [];
  try {
    const r = await e.snapshot(url, (c) => chunks.push(c));
    return { ...r, got: Buffer.concat(chunks) };
  } finally {
    e.close();
  }
}
const db = Buffer.alloc(3 * 4096, 7);
const digest = createHash('sha256').update(db).digest();

test('a whole snapshot and its digest (in any chunking): taken, the digest given back', async () => {
  for (const cut of [[db, digest], [db.subarray(0, 100), db.subarray(100, 4096 + 10), Buffer.concat([db.subarray(4096 + 10), digest.subarray(0, 5)]), digest.subarray(5)]]) {
    const r = await take(cut);
    expect(r.size).toBe(db.length + 32);
    expect(r.sha256).toBe(digest.toString('hex'));
    expect(r.got.equals(Buffer.concat([db, digest]))).toBe(true);
  }
});

test.each([
  ['a digest that does not match', () => [db, createHash('sha256').update('other').digest()], /SHA-256 mismatch/],
  ['a byte changed in the store', () => [Buffer.concat([db.subarray(0, 10), Buffer.from([8]), db.subarray(11)]), digest], /SHA-256 mismatch/],
  ['no digest at the end', () => [db], /no SHA-256 at its end \(12288 bytes\)/],
  ['a stream cut short', () => [db.subarray(0, 4096)], /no SHA-256 at its end/],
])('%s → an error', async (_n, blobs, why) => {
  await expect(take(blobs())).rejects.toThrow(why);
});

test('a stream that breaks → an error saying where', async () => {
  await expect(take([db], true)).rejects.toThrow(/snapshot from http:\/\/127\.0\.0\.1:\d+: UNAVAILABLE/);
});
