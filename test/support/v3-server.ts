/**
 * A v3 gRPC server (createV3Server) on 127.0.0.1 for the service-layer tests, over a backend the test gives: the
 * validation, error mapping, size limits and metrics of the service layer are tested without the MVCC store.
 */
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import * as client from 'prom-client';
import { createV3Server, type V3GrpcServer, type V3ServerOptions } from '../../server/api/v3rpc/grpc';
import { h2Sink } from '../../server/embed/serve';
import type { HeaderProvider, KVBackend } from '../../server/api/v3rpc/kv';
import {
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, KVClient, PutRequest, PutResponse,
  RangeRequest, RangeResponse, TxnRequest, TxnResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';

export const TEST_HEADER = { clusterId: 0xcdef0123456789abn, memberId: 0xfedcba9876543210n, raftTerm: 7n, revision: 42n };

export const testHeader: HeaderProvider = {
  clusterId: () => TEST_HEADER.clusterId,
  memberId: () => TEST_HEADER.memberId,
  raftTerm: () => TEST_HEADER.raftTerm,
  revision: () => TEST_HEADER.revision,
};

/** A backend whose every method fails the test when called, for requests validation must refuse first. */
export function refusingBackend(): KVBackend & { calls: string[] } {
  const calls: string[] = [];
  const no = (name: string) => async (): Promise<never> => {
    calls.push(name);
    throw new Error(`backend ${name} reached`);
  };
  return { calls, range: no('range'), put: no('put'), deleteRange: no('deleteRange'), txn: no('txn'), compact: no('compact') };
}

export interface RunningV3 {
  port: number;
  address: string;
  registry: client.Registry;
  server: V3GrpcServer;
  client: KVClient;
  kv: PromiseKV;
  close(): Promise<void>;
}

/**
 * transport: 'ours' (the member's: our HTTP/2, server/embed/h2/connection.ts, the default) or 'node' (grpc-js bound
 * to a port of its own, over Node's HTTP/2).
 */
export async function startV3(kv: KVBackend, opts: Partial<V3ServerOptions> & { transport?: 'ours' | 'node' } = {}): Promise<RunningV3> {
  const registry = new client.Registry();
  const { transport = 'ours', ...rest } = opts;
  const server = createV3Server({ kv, header: testHeader, registry, ...rest });
  let stopOwn: (() => Promise<void>) | undefined;
  let port: number;
  if (transport === 'ours') {
    const sink = h2Sink((stream, headers) => server.serveStream(stream, headers), {});
    const listener = net.createServer((socket) => sink.injectConnection(socket));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as net.AddressInfo).port;
    stopOwn = () => new Promise<void>((resolve) => {
      sink.destroy();
      listener.close(() => resolve());
    });
  } else {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  }
  const address = `127.0.0.1:${port}`;
  const kvClient = new KVClient(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
  return {
    port,
    address,
    registry,
    server,
    client: kvClient,
    kv: promiseKV(kvClient),
    close: async () => {
      kvClient.close();
      await stopOwn?.();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

/** A unary call as a promise (given up with DEADLINE_EXCEEDED after timeoutMs, when given); rejects with the grpc-js ServiceError. */
export function promised<C extends grpc.Client, Req, Res>(c: C, m: Unary<Req, Res>, timeoutMs?: number): (req: Req) => Promise<Res> {
  return (req) => new Promise((resolve, reject) => m.call(c, req, new grpc.Metadata(), timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))));
}

export interface PromiseKV {
  range(r: RangeRequest): Promise<RangeResponse>;
  put(r: PutRequest): Promise<PutResponse>;
  deleteRange(r: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(r: TxnRequest): Promise<TxnResponse>;
  compact(r: CompactionRequest): Promise<CompactionResponse>;
}

/** The KV client's calls as promises, each given up after timeoutMs when given. */
export function promiseKV(c: KVClient, timeoutMs?: number): PromiseKV {
  return {
    range: promised<KVClient, RangeRequest, RangeResponse>(c, c.range, timeoutMs),
    put: promised<KVClient, PutRequest, PutResponse>(c, c.put, timeoutMs),
    deleteRange: promised<KVClient, DeleteRangeRequest, DeleteRangeResponse>(c, c.deleteRange, timeoutMs),
    txn: promised<KVClient, TxnRequest, TxnResponse>(c, c.txn, timeoutMs),
    compact: promised<KVClient, CompactionRequest, CompactionResponse>(c, c.compact, timeoutMs),
  };
}
