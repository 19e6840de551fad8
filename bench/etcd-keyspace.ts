/**
 * The reference for bench/mvcc-store.ts: Debian's etcd with N keys of 256-byte values put over gRPC (64 in flight),
 * then its RSS, data-dir size, and the time from a restart to the first answered Range.
 * `node dist/bench/etcd-keyspace.js [N]` (N defaults to 1,000,000).
 */
import * as grpc from '@grpc/grpc-js';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import * as path from 'path';
import { PutRequest, PutResponse, RangeRequest, RangeResponse } from '../server/api/v3rpc/pb/etcdserverpb/rpc';

const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function call<Req, Res>(c: grpc.Client, method: string, Req: any, Res: any, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    c.makeUnaryRequest(
      `/etcdserverpb.KV/${method}`,
      (m: Req) => Buffer.from(Req.encode(m).finish()),
      (b: Buffer) => Res.decode(b),
      req,
      (err, res) => (err ? reject(err) : resolve(res as Res)),
    ),
  );
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'etcd-keyspace-'));
  const [cp, pp] = [await freePort(), await freePort()];
  const args = [
    '--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${cp}`, '--advertise-client-urls', `http://127.0.0.1:${cp}`,
    '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`,
    '--initial-cluster', `default=http://127.0.0.1:${pp}`, '--quota-backend-bytes', String(8 * 2 ** 30),
  ];
  const start = async (): Promise<{ p: ChildProcess; c: grpc.Client; ms: number }> => {
    const t = performance.now();
    const p = spawn(REAL_ETCD, args, { stdio: 'ignore' });
    const c = new grpc.Client(`127.0.0.1:${cp}`, grpc.credentials.createInsecure());
    for (;;) {
      try {
        await call<RangeRequest, RangeResponse>(c, 'Range', RangeRequest, RangeResponse, RangeRequest.fromPartial({ key: Buffer.from('k') }));
        return { p, c, ms: performance.now() - t };
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  let { p, c } = await start();
  const value = Buffer.alloc(256, 97);
  const t0 = performance.now();
  let next = 1;
  const worker = async () => {
    while (next <= n) {
      const i = next++;
      const key = Buffer.from(`/registry/key/${i.toString(16).padStart(8, '0')}`);
      await call<PutRequest, PutResponse>(c, 'Put', PutRequest, PutResponse, PutRequest.fromPartial({ key, value }));
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  const putsPerSec = Math.round(n / ((performance.now() - t0) / 1000));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'))![1]);
  const du = Number(execFileSync('du', ['-sk', dir]).toString().split('\t')[0]);
  const dbMB = Number(execFileSync('du', ['-sk', path.join(dir, 'member', 'snap', 'db')]).toString().split('\t')[0]) / 1024;
  c.close();
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
  const again = await start();
  console.log(
    JSON.stringify({ etcd: true, puts: n, putsPerSec, rssMB: Math.round(rss / 1024), dataDirMB: Math.round(du / 1024), dbMB: Math.round(dbMB), restartToFirstRangeMs: Math.round(again.ms) }),
  );
  again.c.close();
  again.p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
