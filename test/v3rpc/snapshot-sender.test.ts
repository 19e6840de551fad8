/**
 * Maintenance.Snapshot's sending (SnapshotSender) over a real gRPC connection, from a backend that hands over its
 * bytes in runs of any size: 32 KiB messages counting down the bytes remaining (a message across runs), then the
 * SHA-256 of them all, as etcd sends them; on grpc-js's HTTP/2 stream directly and, with a server interceptor, through
 * grpc-js's call, and on our own HTTP/2 (the client port's). A client that goes away stops the backend's snapshot.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { V3GrpcServer } from '../../server/api/v3rpc/grpc';
import { h2Sink } from '../../server/embed/serve';
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

/** The service on Node's HTTP/2 (grpc-js bound to a port), or on ours (the member's client port: h2/connection.ts). */
async function serve(b: MaintenanceBackend, interceptors: grpc.ServerInterceptor[], ownHTTP2: boolean): Promise<{ client: MaintenanceClient; close(): void }> {
  const server = new V3GrpcServer({ interceptors });
  addMaintenanceService(server, { backend: b, header });
  if (ownHTTP2) {
    const sink = h2Sink((stream, headers) => server.serveStream(stream, headers), {});
    const listener = net.createServer((socket) => sink.injectConnection(socket));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as net.AddressInfo).port;
    return {
      client: new MaintenanceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()),
      close: () => {
        sink.destroy();
        listener.close();
      },
    };
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { client: new MaintenanceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), close: () => server.forceShutdown() };
}

/** An interceptor that passes everything on: grpc-js's call is then no longer the one with the HTTP/2 stream. */
const passThrough: grpc.ServerInterceptor = (_method, call) => new grpc.ServerInterceptingCall(call);

const variants = [
  ['on the HTTP/2 stream', [], false],
  ['through grpc-js', [passThrough], false],
  ['on our HTTP/2 stream', [], true],
] as const;
for (const [how, interceptors, ownHTTP2] of variants) {
  test(`${how}: 32 KiB messages across runs of any size, the bytes remaining, then the SHA-256`, async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5000);
    const ended = { given: 0 } as { error?: Error; given: number };
    const { client, close } = await serve(backend(data, [1, 4095, 32 * 1024, 70_000, 100_000, 1 << 20, 7], ended), [...interceptors], ownHTTP2);
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
      close();
    }
  });

  test(`${how}: a client that goes away stops the snapshot`, async () => {
    const data = Buffer.alloc(256 * 1024 * 1024);
    const ended = { given: 0 } as { error?: Error; given: number };
    const { client, close } = await serve(backend(data, [], ended), [...interceptors], ownHTTP2);
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
      close();
    }
  });
}
