/**
 * The etcdserverpb.Lease service (etcd's v3rpc/lease.go): LeaseGrant, LeaseRevoke, LeaseTimeToLive and LeaseLeases
 * as unary calls, and LeaseKeepAlive as one bidirectional stream renewing any leases its client names. A lease that
 * does not exist is not an error for TimeToLive (TTL -1) nor for a keep-alive (TTL 0), as in etcd.
 */
import * as grpc from '@grpc/grpc-js';
import {
  LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
  LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from './pb/etcdserverpb/rpc';
import { ServerErrors, toGRPCError } from './errors';
import { fillHeader, type HeaderProvider } from './kv';
import type { GrpcMetrics } from './metrics';
import { encodeToBuffer, splitPath, toGrpcUnary, unaryMethod, type CallGate, type UnaryHandler } from './service';

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

const KEEPALIVE_PATH = '/etcdserverpb.Lease/LeaseKeepAlive';

/** Adds the Lease service to a gRPC server. */
export function addLeaseService(server: grpc.Server, opts: { backend: LeaseBackend; header: HeaderProvider; gate?: CallGate }, metrics?: GrpcMetrics): void {
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
      responseSerialize: (m: LeaseKeepAliveResponse) => encodeToBuffer(LeaseKeepAliveResponse, m),
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
  for (const [name, h] of Object.entries(handlers)) impl[name] = toGrpcUnary(definition[name].path, h, metrics, gate);
  impl.LeaseKeepAlive = keepAliveHandler(b, header, metrics, gate);
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}

/**
 * One keep-alive stream: requests are answered in order, one at a time (as etcd's loop does); the header is taken
 * before the renewal, so its revision is never past one at which the lease was revoked. A stream whose client does
 * not read is not read either until its answers drain.
 */
function keepAliveHandler(b: LeaseBackend, header: HeaderProvider, metrics?: GrpcMetrics, gate?: CallGate): grpc.handleBidiStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse> {
  const [service, method] = splitPath(KEEPALIVE_PATH);
  const counted = metrics?.forMethod('bidi_stream', service, method);
  return (call) => {
    counted?.started();
    const refused = gate?.(KEEPALIVE_PATH, undefined);
    if (refused) {
      counted?.handled(refused.code);
      call.emit('error', { name: 'V3Error', message: refused.details, code: refused.code, details: refused.details });
      return;
    }
    let chain: Promise<void> = Promise.resolve();
    let finished = false;
    const finish = (code: grpc.status, details?: string): void => {
      if (finished) return;
      finished = true;
      counted?.handled(code);
      if (code === grpc.status.OK) call.end();
      else call.emit('error', { code, details, message: details });
    };
    call.on('data', (req: LeaseKeepAliveRequest) => {
      counted?.received();
      chain = chain.then(async () => {
        if (finished || call.cancelled) return;
        const resp: LeaseKeepAliveResponse = { ID: req.ID, TTL: 0n, header: fillHeader(undefined, header) };
        try {
          resp.TTL = await b.leaseRenew(req.ID);
        } catch (err) {
          if (!isLeaseNotFound(err)) {
            const e = toGRPCError(err);
            return finish(e.code, e.details);
          }
        }
        if (finished || call.cancelled) return;
        counted?.sent();
        if (!call.write(resp)) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      });
    });
    call.on('end', () => void chain.then(() => finish(grpc.status.OK)));
    // etcd answers a stream its client cancelled with "no leader" (its only server-side cancellation), and counts it so.
    call.on('cancelled', () => {
      if (!finished) counted?.handled(grpc.status.UNAVAILABLE);
      finished = true;
    });
    call.on('error', () => {
      finished = true;
    });
  };
}
