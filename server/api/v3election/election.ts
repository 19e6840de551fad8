/**
 * The v3electionpb.Election service (etcd's etcdserver/api/v3election): Campaign waits to lead an election with the
 * caller's lease (a new lease of 60 s when it names none, as etcd's session does, and so do Proclaim and Resign),
 * Proclaim and Resign act on a leader key while it is the one created at its revision, Leader answers the oldest
 * candidate's key, Observe streams each leader's key and proclamations in order. Everything runs the concurrency
 * recipes over the member's in-process client, as the caller (auth); errors come back as etcd's do (code Unknown,
 * etcd's text), and an observer whose watch or range fails just ends its stream, as etcd's.
 */
import * as grpc from '@grpc/grpc-js';
import {
  CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest,
  ResignResponse, type LeaderKey,
} from '../v3rpc/pb/v3electionpb/v3election';
import type { GrpcMetrics } from '../v3rpc/metrics';
import { encodeToBuffer, toGrpcUnary, unaryMethod, type CallGate, type UnaryHandler } from '../v3rpc/service';
import { campaign, leader, observe, proclaim, resign, ContextCanceled } from '../v3client/concurrency';
import { asClientError, callSignal, type InProcessClient } from '../v3client/in-process';

/** etcd's ErrMissingLeaderKey. */
export const ErrMissingLeaderKey = '"leader" field must be provided';

const OBSERVE_PATH = '/v3electionpb.Election/Observe';

/** Runs a handler, its failures answered as etcd's election server answers them. */
const asEtcd = <Req, Res>(fn: UnaryHandler<Req, Res>): UnaryHandler<Req, Res> => async (req, call) => {
  try {
    return await fn(req, call);
  } catch (err) {
    throw asClientError(err);
  }
};

/** ResumeElection's leadership from a request's leader key, its session's lease (granted when it names none). */
async function resumed(client: InProcessClient, l: LeaderKey | undefined): Promise<{ key: Buffer; rev: bigint; lease: bigint }> {
  if (!l) throw new Error(ErrMissingLeaderKey);
  return { key: l.key, rev: l.rev, lease: await client.sessionLease(l.lease) };
}

export function addElectionService(server: grpc.Server, client: InProcessClient, metrics?: GrpcMetrics, gate?: CallGate): void {
  const handlers: Record<string, UnaryHandler<any, any>> = {
    Campaign: asEtcd<CampaignRequest, CampaignResponse>(async (req, call) => {
      const signal = callSignal(call);
      const lease = await client.sessionLease(req.lease);
      const won = await campaign(client.forCall(call), req.name, lease, req.value, signal);
      return { header: won.header, leader: { name: req.name, key: won.key, rev: won.rev, lease } };
    }),
    Proclaim: asEtcd<ProclaimRequest, ProclaimResponse>(async (req, call) => {
      const l = await resumed(client, req.leader);
      return { header: await proclaim(client.forCall(call), l, req.value) };
    }),
    Leader: asEtcd<LeaderRequest, LeaderResponse>(async (req, call) => {
      const r = await leader(client.forCall(call), req.name);
      return { header: r.header, kv: r.kvs[0] };
    }),
    Resign: asEtcd<ResignRequest, ResignResponse>(async (req, call) => {
      const l = await resumed(client, req.leader);
      return { header: await resign(client.forCall(call), l) };
    }),
  };
  const definition: grpc.ServiceDefinition = {
    Campaign: unaryMethod('/v3electionpb.Election/Campaign', CampaignRequest, CampaignResponse),
    Proclaim: unaryMethod('/v3electionpb.Election/Proclaim', ProclaimRequest, ProclaimResponse),
    Leader: unaryMethod('/v3electionpb.Election/Leader', LeaderRequest, LeaderResponse),
    Observe: {
      path: OBSERVE_PATH,
      requestStream: false,
      responseStream: true,
      requestSerialize: (m: LeaderRequest) => encodeToBuffer(LeaderRequest, m),
      requestDeserialize: (b: Buffer) => LeaderRequest.decode(b),
      responseSerialize: (m: LeaderResponse) => encodeToBuffer(LeaderResponse, m),
      responseDeserialize: (b: Buffer) => LeaderResponse.decode(b),
    },
    Resign: unaryMethod('/v3electionpb.Election/Resign', ResignRequest, ResignResponse),
  };
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, h] of Object.entries(handlers)) impl[name] = toGrpcUnary(definition[name].path, h, metrics, gate);
  impl.Observe = observeHandler(client, metrics, gate);
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}

/**
 * Observe: the observer's responses written as they come, the next one read only once the client took the last
 * (a client that does not read holds one watcher behind, caught up later, nothing more). The stream ends with OK
 * when the observer ends, as etcd's does.
 */
function observeHandler(client: InProcessClient, metrics?: GrpcMetrics, gate?: CallGate): grpc.handleServerStreamingCall<LeaderRequest, LeaderResponse> {
  const counted = metrics?.forMethod('server_stream', 'v3electionpb.Election', 'Observe');
  return (call) => {
    counted?.started();
    counted?.received();
    const end = (code: grpc.status, details = ''): void => {
      counted?.handled(code);
      if (code === grpc.status.OK) call.end();
      else call.emit('error', { name: 'V3Error', message: details, code, details });
    };
    const refused = gate?.(OBSERVE_PATH, call.request);
    if (refused) return end(refused.code, refused.details);
    const signal = callSignal(call);
    const emit = (r: { header?: LeaderResponse['header']; kvs: LeaderResponse['kv'][] }): Promise<void> => {
      if (signal.aborted) return Promise.reject(new ContextCanceled());
      counted?.sent();
      if (call.write({ header: r.header, kv: r.kvs[0] })) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          call.removeListener('drain', onDrain);
          reject(new ContextCanceled());
        };
        call.once('drain', onDrain);
        signal.addEventListener('abort', onAbort);
      });
    };
    void observe(client.forCall(call as unknown as grpc.ServerUnaryCall<unknown, unknown>), call.request.name, signal, emit).then(() => {
      if (signal.aborted) counted?.handled(grpc.status.CANCELLED);
      else end(grpc.status.OK);
    });
  };
}
