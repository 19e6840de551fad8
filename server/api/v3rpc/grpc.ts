/**
 * The v3 gRPC server (etcd's v3rpc/grpc.go): a grpc-js Server with etcd's message size limits and its services
 * registered, to be bound to its own port or handed HTTP/2 connections from the client listener.
 */
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { fastEligible, serveFastUnary, type FastUnaryMethod } from './fast-unary';
import { FastDuplexCall } from './fast-stream';
import type { H2Headers, H2Stream } from '../../embed/h2/connection';
import type * as client from 'prom-client';
import { GRPC_OVERHEAD_BYTES } from './errors';
import { addHealthService } from './health';
import { kvService, type HeaderProvider, type KVBackend } from './kv';
import { addLeaseService, type LeaseBackend } from './lease';
import { addMaintenanceService, type MaintenanceBackend } from './maintenance';
import { clusterService, type ClusterBackend } from './cluster';
import { ErrGRPCNotSupportedForLearner, toGRPCError } from './errors';
import type { CallContext } from './kv';
import type { RangeRequest } from './pb/etcdserverpb/rpc';
import type { CallGate, FastStreamMethod, FastUnaryHost } from './service';
import { GrpcMetrics } from './metrics';
import { addUnaryService, type UnaryHandler } from './service';
import { addWatchService, type WatchServiceOptions } from './watch';
import { InProcessClient } from '../v3client/in-process';
import { lockService } from '../v3lock/lock';
import { addElectionService } from '../v3election/election';

/** etcd's default --max-request-bytes (1.5 MiB). */
export const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/** etcd's maxSendBytes: responses are not limited below what a gRPC message can hold. */
const MAX_SEND_BYTES = 2 ** 31 - 1;

export interface V3ServerOptions {
  kv: KVBackend;
  header: HeaderProvider;
  /** --max-request-bytes; the server accepts messages up to this plus 512 KiB, as etcd's does. */
  maxRequestBytes?: number;
  /** --max-txn-ops */
  maxTxnOps?: number;
  /** The Lease service's backend (none: Lease answers UNIMPLEMENTED). */
  lease?: LeaseBackend;
  /** Where grpc_server_* metrics go (the server's /metrics registry); none when left out. */
  registry?: client.Registry;
  /** More services (Auth, …): each one's definition and unary handlers. */
  services?: { definition: grpc.ServiceDefinition; handlers: Record<string, UnaryHandler<any, any>> }[];
  /**
   * The Watch service's store and settings (its headers and size limit are the ones above); none when left out.
   * With a Lease backend too, the Lock and Election services are served over them.
   */
  watch?: Omit<WatchServiceOptions, 'header' | 'maxRequestBytes'>;
  /** More grpc-js channel options (keepalive, ...), applied over the ones above. */
  grpcOptions?: grpc.ServerOptions;
  /** The member behind etcdserverpb.Maintenance (not served without it). */
  maintenance?: MaintenanceBackend;
  /** The member's membership behind etcdserverpb.Cluster (not served without it). */
  cluster?: ClusterBackend;
  /** With auth enabled, whether the caller holds the root role (for Maintenance's and Cluster's admin calls). */
  checkAdmin?: (call: CallContext | undefined) => Error | undefined;
  /** Whether this member is a learner, which answers only Status and serializable ranges (as etcd 3.4's). */
  isLearner?: () => boolean;
  /** Where the services log what etcd's log (snapshots sent, say). */
  log?: (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;
}

/** grpc-js's own handler of a new HTTP/2 stream, which V3GrpcServer wraps (grpc-js 1.x). */
type StreamHandler = (extraInterceptors: unknown[], stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;
interface GrpcServerInternals {
  _streamHandler?: StreamHandler;
  onStreamOpened?: (stream: http2.ServerHttp2Stream) => void;
  interceptors?: unknown[];
}

/**
 * A gRPC server that remembers every method's implementation (the JSON gateway calls them in-process), and serves
 * the methods given to addFastUnary itself (fast-unary.ts) when grpc-js has the stream handler to take over.
 */
export class V3GrpcServer extends grpc.Server implements FastUnaryHost {
  private readonly impls = new Map<string, grpc.UntypedHandleCall>();
  private readonly fast = new Map<string, FastUnaryMethod | FastStreamMethod>();
  private readonly maxReceive: number;
  /** Calls served by the fast path so far (grpc-js served the rest). */
  fastCalls = 0;
  /** Whether grpc-js's stream handler was found and wrapped (else only Node's HTTP/2 can feed this server). */
  private wrapped = false;

  constructor(options: grpc.ServerOptions) {
    super(options);
    this.maxReceive = options['grpc.max_receive_message_length'] ?? 4 * 1024 * 1024;
    const self = this as unknown as GrpcServerInternals;
    const inner = self._streamHandler;
    if (typeof inner !== 'function' || typeof self.onStreamOpened !== 'function') return;
    // grpc-js binds this._streamHandler to each HTTP/2 server it sets up, after construction: ours looks first.
    const fast = this.fast;
    const server = this;
    const maxReceive = this.maxReceive;
    this.wrapped = true;
    self._streamHandler = function (this: GrpcServerInternals, extra, stream, headers) {
      const m = fast.get(headers[':path'] as string);
      if (m && extra.length === 0 && (this.interceptors?.length ?? 0) === 0 && fastEligible(headers)) {
        this.onStreamOpened!(stream);
        server.fastCalls++;
        if ('stream' in m) m.stream(new FastDuplexCall(stream, headers, m.decode, maxReceive));
        else serveFastUnary(stream, headers, m, maxReceive);
        return;
      }
      inner.call(this, extra, stream, headers);
    };
  }

  /**
   * Serves a stream of a connection read by our own HTTP/2 (server/embed/h2/connection.ts): the fast paths or
   * grpc-js's handling, as for a stream of Node's HTTP/2.
   */
  get servesStreams(): boolean {
    return typeof (this as unknown as GrpcServerInternals)._streamHandler === 'function' && this.wrapped;
  }

  serveStream(stream: H2Stream, headers: H2Headers): void {
    const handler = (this as unknown as GrpcServerInternals)._streamHandler!;
    handler.call(this, [], stream as unknown as http2.ServerHttp2Stream, headers as http2.IncomingHttpHeaders);
  }

  addFastUnary(m: FastUnaryMethod | FastStreamMethod): void {
    this.fast.set(m.path, m);
  }

  override addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    for (const [name, m] of Object.entries(service)) {
      const h = implementation[name] ?? (m.originalName ? implementation[m.originalName] : undefined);
      if (h) this.impls.set(m.path, h);
    }
    super.addService(service, implementation);
  }

  implementation(path: string): grpc.UntypedHandleCall | undefined {
    return this.impls.get(path);
  }
}

export function createV3Server(opts: V3ServerOptions): V3GrpcServer {
  const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const server = new V3GrpcServer({
    'grpc.max_receive_message_length': maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': MAX_SEND_BYTES,
    // channelz (grpc-js's per-call bookkeeping for its debugging service, which we do not serve) costs on every call.
    'grpc.enable_channelz': 0,
    ...opts.grpcOptions,
  });
  const metrics = opts.registry ? new GrpcMetrics(opts.registry) : undefined;
  const gate = combineGates(opts.isLearner ? learnerGate(opts.isLearner) : undefined, opts.checkAdmin ? adminGate(opts.checkAdmin) : undefined);
  const kv = kvService({ backend: opts.kv, header: opts.header, maxTxnOps: opts.maxTxnOps });
  addUnaryService(server, kv.definition, kv.handlers, metrics, gate, server);
  if (opts.lease) addLeaseService(server, { backend: opts.lease, header: opts.header, gate }, metrics, server);
  for (const svc of opts.services ?? []) addUnaryService(server, svc.definition, svc.handlers, metrics, gate);
  addHealthService(server, metrics);
  if (opts.watch) addWatchService(server, { ...opts.watch, header: opts.header, maxRequestBytes, gate }, metrics);
  if (opts.maintenance) addMaintenanceService(server, { backend: opts.maintenance, header: opts.header, log: opts.log, gate }, metrics);
  if (opts.cluster) {
    const c = clusterService(opts.cluster, opts.header);
    addUnaryService(server, c.definition, c.handlers, metrics, gate);
  }
  if (opts.lease && opts.watch) {
    // Lock and Election, over the member's own KV, Lease and Watch (etcd's v3client), behind the same gate.
    const client = new InProcessClient({ kv: kv.handlers, lease: opts.lease, watchable: opts.watch.watchable, header: opts.header });
    const lock = lockService(client);
    addUnaryService(server, lock.definition, lock.handlers, metrics, gate);
    addElectionService(server, client, metrics, gate);
  }
  return server;
}

/** The calls etcd 3.4 keeps to the root role when auth is enabled. */
const ADMIN_ONLY = new Set([
  '/etcdserverpb.Maintenance/Defragment',
  '/etcdserverpb.Maintenance/Snapshot',
  '/etcdserverpb.Maintenance/Hash',
  '/etcdserverpb.Maintenance/HashKV',
  '/etcdserverpb.Cluster/MemberAdd',
  '/etcdserverpb.Cluster/MemberRemove',
  '/etcdserverpb.Cluster/MemberUpdate',
  '/etcdserverpb.Cluster/MemberPromote',
]);

/** etcd's authMaintenanceServer and checkMembershipOperationPermission: those calls need the root role. */
function adminGate(check: (call: CallContext | undefined) => Error | undefined): CallGate {
  return (path, _request, call) => {
    if (!ADMIN_ONLY.has(path)) return undefined;
    const denied = check(call);
    return denied ? toGRPCError(denied) : undefined;
  };
}

function combineGates(...gates: (CallGate | undefined)[]): CallGate | undefined {
  const gs = gates.filter((g): g is CallGate => g !== undefined);
  if (gs.length <= 1) return gs[0];
  return (path, request, call) => {
    for (const g of gs) {
      const refused = g(path, request, call);
      if (refused) return refused;
    }
    return undefined;
  };
}

/** etcd's isRPCSupportedForLearner, in its unary and stream interceptors: a learner serves Status and serializable ranges. */
export function learnerGate(isLearner: () => boolean): CallGate {
  return (path, request) => {
    if (!isLearner()) return undefined;
    if (path === '/etcdserverpb.Maintenance/Status') return undefined;
    if (path === '/etcdserverpb.KV/Range' && (request as RangeRequest).serializable) return undefined;
    return ErrGRPCNotSupportedForLearner;
  };
}
