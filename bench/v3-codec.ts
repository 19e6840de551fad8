/**
 * The v3 message codec on the hot path: encode and decode of a PutRequest (16-byte key, 256-byte value, as etcd's
 * `benchmark put`) and of RangeResponses (1 and 100 key-values), with the generated ts-proto code (64-bit fields as
 * bigint) and, for reference, protobufjs reflection over the same .proto files (64-bit fields as Long). Then the
 * whole gRPC service layer: unary Put and Range round trips over loopback against an in-memory backend, 1 and 16
 * calls in flight, to show what the layer costs before the store and Raft.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/v3-codec.js
 */
import * as grpc from '@grpc/grpc-js';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { createV3Server } from '../server/api/v3rpc/grpc';
import type { KVBackend } from '../server/api/v3rpc/kv';
import { KVClient, PutRequest, PutResponse, RangeRequest, RangeResponse } from '../server/api/v3rpc/pb/etcdserverpb/rpc';
import { encodeToBuffer } from '../server/api/v3rpc/service';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);

/** ns per call of fn, after a warm-up, over about SECONDS. */
function time(fn: () => unknown): number {
  for (let i = 0; i < 20000; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(SECONDS * 1e9));
  let now = start;
  while (now < until) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / n;
}

const key = Buffer.from('key-000000012345');
const value = Buffer.alloc(256, 0x61);
const header = { clusterId: 0xcdef0123456789abn, memberId: 0xfedcba9876543210n, revision: 123456n, raftTerm: 3n };
const kv = (i: number) => ({ key: Buffer.from(`key-${String(i).padStart(12, '0')}`), value, createRevision: 1000n + BigInt(i), modRevision: 2000n + BigInt(i), version: 1n, lease: 0n });

const put = PutRequest.fromPartial({ key, value });
const range1 = RangeResponse.fromPartial({ header, kvs: [kv(1)], count: 1n });
const range100 = RangeResponse.fromPartial({ header, kvs: Array.from({ length: 100 }, (_, i) => kv(i)), count: 100n });

function row(what: string, ns: number, bytes?: number): void {
  console.log(`${what.padEnd(58)} ${ns.toFixed(0).padStart(8)} ns  ${(1e9 / ns / 1000).toFixed(0).padStart(7)} k/s${bytes ? `  ${bytes} B` : ''}`);
}

function codecs(): void {
  console.log('codec (ns per message, single core)');
  const putBytes = encodeToBuffer(PutRequest, put);
  const r1Bytes = encodeToBuffer(RangeResponse, range1);
  const r100Bytes = encodeToBuffer(RangeResponse, range100);
  row('ts-proto  PutRequest encode', time(() => encodeToBuffer(PutRequest, put)), putBytes.length);
  row('ts-proto  PutRequest encode (+ Buffer.from copy, as generated)', time(() => Buffer.from(PutRequest.encode(put).finish())));
  row('ts-proto  PutRequest decode', time(() => PutRequest.decode(putBytes)));
  row('ts-proto  RangeResponse (1 kv) encode', time(() => encodeToBuffer(RangeResponse, range1)), r1Bytes.length);
  row('ts-proto  RangeResponse (1 kv) decode', time(() => RangeResponse.decode(r1Bytes)));
  row('ts-proto  RangeResponse (100 kvs) encode', time(() => encodeToBuffer(RangeResponse, range100)), r100Bytes.length);
  row('ts-proto  RangeResponse (100 kvs) decode', time(() => RangeResponse.decode(r100Bytes)));

  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(__dirname, '../../proto', target);
  root.loadSync('etcdserverpb/rpc.proto');
  const P = root.lookupType('etcdserverpb.PutRequest');
  const R = root.lookupType('etcdserverpb.RangeResponse');
  const pjPut = P.fromObject({ key, value });
  const asPj = (r: RangeResponse) => R.fromObject({
    header: { clusterId: r.header!.clusterId.toString(), memberId: r.header!.memberId.toString(), revision: r.header!.revision.toString(), raftTerm: r.header!.raftTerm.toString() },
    kvs: r.kvs.map((k) => ({ key: k.key, value: k.value, createRevision: k.createRevision.toString(), modRevision: k.modRevision.toString(), version: k.version.toString() })),
    count: r.count.toString(),
  });
  const pj1 = asPj(range1);
  const pj100 = asPj(range100);
  row('protobufjs PutRequest encode', time(() => P.encode(pjPut).finish()));
  row('protobufjs PutRequest decode', time(() => P.decode(putBytes)));
  row('protobufjs RangeResponse (1 kv) encode', time(() => R.encode(pj1).finish()));
  row('protobufjs RangeResponse (1 kv) decode', time(() => R.decode(r1Bytes)));
  row('protobufjs RangeResponse (100 kvs) encode', time(() => R.encode(pj100).finish()));
  row('protobufjs RangeResponse (100 kvs) decode', time(() => R.decode(r100Bytes)));
}

async function roundTrips(): Promise<void> {
  const backend: KVBackend = {
    put: async () => PutResponse.fromPartial({ header: { revision: 2n } }),
    range: async () => range1,
    deleteRange: async () => { throw new Error('unused'); },
    txn: async () => { throw new Error('unused'); },
    compact: async () => { throw new Error('unused'); },
  };
  const headerProvider = { clusterId: () => header.clusterId, memberId: () => header.memberId, raftTerm: () => 3n, revision: () => 2n };
  const server = createV3Server({ kv: backend, header: headerProvider });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = new KVClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const rangeReq = RangeRequest.fromPartial({ key });
  const ops = {
    Put: () => new Promise<void>((res, rej) => client.put(put, (e) => (e ? rej(e) : res()))),
    Range: () => new Promise<void>((res, rej) => client.range(rangeReq, (e) => (e ? rej(e) : res()))),
  };
  console.log('\ngRPC unary round trips over loopback (client and server in this one process, in-memory backend)');
  for (const [name, op] of Object.entries(ops)) {
    for (const inFlight of [1, 16]) {
      const lat: number[] = [];
      const until = Date.now() + SECONDS * 1000;
      for (let i = 0; i < 200; i++) await op(); // warm-up
      const start = Date.now();
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (Date.now() < until) {
          const t = process.hrtime.bigint();
          await op();
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }));
      const secs = (Date.now() - start) / 1000;
      lat.sort((a, b) => a - b);
      const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(3);
      console.log(`${name.padEnd(6)} ${String(inFlight).padStart(2)} in flight: ${(lat.length / secs).toFixed(0).padStart(6)} calls/s  p50 ${p(0.5)} ms  p99 ${p(0.99)} ms`);
    }
  }
  client.close();
  await new Promise<void>((r) => server.tryShutdown(() => r()));
}

codecs();
void roundTrips();
