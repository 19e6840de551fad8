/**
 * Maintenance.Snapshot's sending (SnapshotSender) over a real gRPC connection, from a backend that hands over its
 * bytes in runs of any size: 32 KiB messages counting down the bytes remaining (a message across runs), then the
 * SHA-256 of them all, as etcd sends them; on grpc-js's HTTP/2 stream directly and, with a server interceptor, through
 * grpc-js's call. A client that goes away stops the backend's snapshot.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { addMaintenanceService, type MaintenanceBackend, type SnapshotOut } from '../../server/api/v3rpc/maintenance';
import { MaintenanceClient, SnapshotRequest, SnapshotResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';

const header = { clusterId: () => 1n, memberId: () => 2n, raftTerm: () => 3n, revision: () => 4n };

/** A backend whose snapshot is `data`, handed over in runs of these sizes (then the rest); records how it ended. */
function backend(data: Buffer, runs: number[], ended: { error?: Error; given: number }): MaintenanceBackend {
  const none = (): never => {
    throw new Error('not in this test');
  };
  return {
    status: none, hash: none, hashKV: none, alarm: none, defragment: none, isLeader: () => true, moveLeader: none,
    async snapshot(out: SnapshotOut): Promise<void> {
      out.begin(data.length);
      let at = 0;
      try {
        for (let i = 0; at < data.length; i++) {
          const n = Math.min(runs[i] ?? 1 << 20, data.length - at);
          // Two runs in one hand-over now and then.
          const m = i % 3 === 2 ? Math.min(n, 100) : n;
          const bytes = m < n ? [data.subarray(at, at + m), data.subarray(at + m, at + n)] : [data.subarray(at, at + n)];
          await out.write(bytes);
          at += n;
          ended.given = at;
        }
      } catch (err) {
        ended.error = err as Error;
        throw err;
      }
    },
  };
}

async function serve(b: MaintenanceBackend, interceptors: grpc.ServerInterceptor[]): Promise<{ server: grpc.Server; client: MaintenanceClient }> {
  const server = new grpc.Server({ interceptors });
  addMaintenanceService(server, { backend: b, header });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, client: new MaintenanceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) };
}

/** An interceptor that passes everything on: grpc-js's call is then no longer the one with the HTTP/2 stream. */
const passThrough: grpc.ServerInterceptor = (_method, call) => new grpc.ServerInterceptingCall(call);

for (const [how, interceptors] of [['on the HTTP/2 stream', []], ['through grpc-js', [passThrough]]] as const) {
  test(`${how}: 32 KiB messages across runs of any size, the bytes remaining, then the SHA-256`, async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5000);
    const ended = { given: 0 } as { error?: Error; given: number };
    const { server, client } = await serve(backend(data, [1, 4095, 32 * 1024, 70_000, 100_000, 1 << 20, 7], ended), [...interceptors]);
    try {
      const msgs: SnapshotResponse[] = [];
      await new Promise<void>((resolve, reject) => {
        const st = client.snapshot(SnapshotRequest.fromPartial({}));
        st.on('data', (r: SnapshotResponse) => msgs.push(r));
        st.on('end', resolve);
        st.on('error', reject);
      });
      const blobs = msgs.slice(0, -1);
      let left = data.length;
      for (const r of blobs) {
        expect(r.blob.length).toBe(Math.min(32 * 1024, left));
        left -= r.blob.length;
        expect(r.remainingBytes).toBe(BigInt(left));
      }
      expect(Buffer.concat(blobs.map((r) => r.blob)).equals(data)).toBe(true);
      expect(msgs[msgs.length - 1]).toEqual({ header: undefined, remainingBytes: 0n, blob: createHash('sha256').update(data).digest() });
      expect(ended).toEqual({ given: data.length });
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  test(`${how}: a client that goes away stops the snapshot`, async () => {
    const data = Buffer.alloc(256 * 1024 * 1024);
    const ended = { given: 0 } as { error?: Error; given: number };
    const { server, client } = await serve(backend(data, [], ended), [...interceptors]);
    try {
      await new Promise<void>((resolve) => {
        const st = client.snapshot(SnapshotRequest.fromPartial({}));
        st.on('error', () => resolve());
        st.once('data', () => st.cancel());
      });
      const deadline = Date.now() + 20_000;
      while (!ended.error && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(ended.error?.message).toBe('snapshot stream cancelled');
      expect(ended.given).toBeLessThan(data.length);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
}
