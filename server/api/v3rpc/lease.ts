/**
 * The etcdserverpb.Lease service (etcd's v3rpc/lease.go): LeaseGrant, LeaseRevoke, LeaseTimeToLive and LeaseLeases
 * as unary calls, and LeaseKeepAlive as one bidirectional stream renewing any leases its client names
 * (lease-keepalive.ts). A lease that does not exist is not an error for TimeToLive (TTL -1) nor for a keep-alive
 * (TTL 0), as in etcd.
 */
import * as grpc from '@grpc/grpc-js';
import {
  LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
  LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from './pb/etcdserverpb/rpc';
import { ServerErrors, toGRPCError } from './errors';
import { fillHeader, type HeaderProvider } from './kv';
import type { GrpcMetrics } from './metrics';
import { KEEPALIVE_PATH, keepAliveHandler } from './lease-keepalive';
import { encodeToBuffer, gatedUnary, grpcUnary, unaryMethod, type CallGate, type FastUnaryHost, type UnaryHandler } from './service';
import type { FastUnaryMethod } from './fast-unary';

/**
 * What serves leases: grants and revocations through the log, renewals and TimeToLive by the leader (forwarded there
 * by a follower). Failures are thrown as errors with etcd's server messages (errors.ts ServerErrors), "lease not
 * found" among them.
 */
export interface LeaseBackend {
  leaseGrant(r: LeaseGrantRequest): Promise<LeaseGrantResponse>;
  leaseRevoke(r: LeaseRevokeRequest): Promise<LeaseRevokeResponse>;
  /** The lease's TTL after renewing it. */
  leaseRenew(id: bigint): Promise<bigint>;
  leaseTimeToLive(r: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(r: LeaseLeasesRequest): Promise<LeaseLeasesResponse>;
}

const isLeaseNotFound = (err: unknown): boolean => err instanceof Error && err.message === ServerErrors.leaseNotFound;

const emptyHeader = () => ({ clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n });

function unary<Req, Res extends { header?: unknown }>(exec: (r: Req) => Promise<Res>, header: HeaderProvider, notFound?: (r: Req) => Res): UnaryHandler<Req, Res> {
  return async (req) => {
    let resp: Res;
    try {
      resp = await exec(req);
    } catch (err) {
      if (!notFound || !isLeaseNotFound(err)) throw toGRPCError(err);
      resp = notFound(req);
    }
    (resp as { header: unknown }).header = fillHeader(resp.header as LeaseGrantResponse['header'], header);
    return resp;
  };
}

/** Adds the Lease service to a gRPC server. */
export function addLeaseService(server: grpc.Server, opts: { backend: LeaseBackend; header: HeaderProvider; gate?: CallGate }, metrics?: GrpcMetrics, fast?: FastUnaryHost): void {
  const { backend: b, header, gate } = opts;
  const definition: grpc.ServiceDefinition = {
    LeaseGrant: unaryMethod('/etcdserverpb.Lease/LeaseGrant', LeaseGrantRequest, LeaseGrantResponse),
    LeaseRevoke: unaryMethod('/etcdserverpb.Lease/LeaseRevoke', LeaseRevokeRequest, LeaseRevokeResponse),
    LeaseKeepAlive: {
      path: KEEPALIVE_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: (m: LeaseKeepAliveRequest) => encodeToBuffer(LeaseKeepAliveRequest, m),
      requestDeserialize: (buf: Buffer) => LeaseKeepAliveRequest.decode(buf),
      // responses are written encoded (lease-keepalive.ts)
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (buf: Buffer) => LeaseKeepAliveResponse.decode(buf),
    },
    LeaseTimeToLive: unaryMethod('/etcdserverpb.Lease/LeaseTimeToLive', LeaseTimeToLiveRequest, LeaseTimeToLiveResponse),
    LeaseLeases: unaryMethod('/etcdserverpb.Lease/LeaseLeases', LeaseLeasesRequest, LeaseLeasesResponse),
  };
  const handlers: Record<string, UnaryHandler<any, any>> = {
    LeaseGrant: unary((r: LeaseGrantRequest) => b.leaseGrant(r), header),
    LeaseRevoke: unary((r: LeaseRevokeRequest) => b.leaseRevoke(r), header),
    LeaseTimeToLive: unary((r: LeaseTimeToLiveRequest) => b.leaseTimeToLive(r), header, (r) => ({ header: emptyHeader(), ID: r.ID, TTL: -1n, grantedTTL: 0n, keys: [] })),
    LeaseLeases: unary((r: LeaseLeasesRequest) => b.leaseLeases(r), header, () => ({ header: emptyHeader(), leases: [] })),
  };
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, h] of Object.entries(handlers)) {
    const m = definition[name];
    const run = gatedUnary(m.path, h, metrics, gate);
    impl[name] = grpcUnary(run);
    fast?.addFastUnary({ path: m.path, decode: m.requestDeserialize, encode: m.responseSerialize as (r: unknown) => Buffer, run: run as FastUnaryMethod['run'] });
  }
  const keepAlive = keepAliveHandler(b, header, metrics, gate);
  impl.LeaseKeepAlive = keepAlive;
  // Off grpc-js too: clientv3's KeepAliveOnce opens a stream per keep-alive.
  fast?.addFastUnary({ path: KEEPALIVE_PATH, decode: definition.LeaseKeepAlive.requestDeserialize, stream: (call) => keepAlive(call as unknown as grpc.ServerDuplexStream<LeaseKeepAliveRequest, Buffer>) });
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}
