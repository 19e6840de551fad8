/**
 * The plumbing shared by the v3 services: method definitions over the generated message code (serialized without
 * copying the encoded bytes), and unary handlers written as async functions, counted in etcd's gRPC metrics.
 */
import * as grpc from '@grpc/grpc-js';
import { type BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { V3Error } from './errors';
import type { GrpcMetrics } from './metrics';
import type { CallContext } from './kv';
import type { FastUnaryMethod } from './fast-unary';
import type { FastDuplexCall } from './fast-stream';

/** What ts-proto generates for every message. */
export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
}

/** Messages larger than this are encoded by a writer of their own, so that the shared one stays small. */
const SHARED_WRITER_MAX = 64 * 1024;
let shared = new BinaryWriter();

/**
 * A message's encoding, through one writer shared by every call (encoding is synchronous): its buffer, grown once,
 * is reused, where a fresh writer allocates, zeroes and regrows one per message. finish() hands back a copy of the
 * bytes and resets the writer; after a throw (a value out of range) the writer is dropped, half-written.
 */
export function encodeMessage<T>(codec: MessageCodec<T>, message: T): Uint8Array {
  let u8: Uint8Array;
  try {
    u8 = codec.encode(message, shared).finish();
  } catch (err) {
    shared = new BinaryWriter();
    throw err;
  }
  if (u8.byteLength > SHARED_WRITER_MAX) shared = new BinaryWriter();
  return u8;
}

/** The encoded bytes as a Buffer over the same memory (the generated definitions copy them with Buffer.from). */
export function encodeToBuffer<T>(codec: MessageCodec<T>, message: T): Buffer {
  const u8 = encodeMessage(codec, message);
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function unaryMethod<Req, Res>(path: string, req: MessageCodec<Req>, res: MessageCodec<Res>): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: Req) => encodeToBuffer(req, m),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (m: Res) => encodeToBuffer(res, m),
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

/** A unary handler: resolves with the response or rejects with a V3Error (anything else is UNKNOWN). */
export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

/** Splits "/etcdserverpb.KV/Range" into its service and method, as go-grpc-prometheus labels them. */
export function splitPath(path: string): [string, string] {
  const p = path.startsWith('/') ? path.slice(1) : path;
  const i = p.indexOf('/');
  return i >= 0 ? [p.slice(0, i), p.slice(i + 1)] : ['unknown', 'unknown'];
}

/**
 * What etcd's unary interceptor refuses before a handler runs (a learner answers only Status and serializable
 * ranges): the error for a call to `path` with this request, or undefined to let it through.
 */
export type CallGate = (path: string, request: unknown, call?: CallContext) => V3Error | undefined;

/**
 * An async handler behind etcd's unary interceptor: the gate first, then the handler, counted started and handled
 * (with its code) as etcd's interceptor counts. Rejects with a fresh { code, details } status: the shared V3Error
 * constants must never carry one call's trailers to another.
 */
export function gatedUnary<Req, Res>(path: string, handler: UnaryHandler<Req, Res>, metrics?: GrpcMetrics, gate?: CallGate): (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> {
  const [service, method] = splitPath(path);
  const counted = metrics?.forMethod('unary', service, method);
  const failed = (err: unknown): Promise<never> => {
    const code = err instanceof V3Error ? err.code : grpc.status.UNKNOWN;
    const details = err instanceof V3Error ? err.details : err instanceof Error ? err.message : String(err);
    counted?.handled(code);
    return Promise.reject({ name: 'V3Error', message: details, code, details });
  };
  return (request, call) => {
    counted?.started();
    let p: Promise<Res>;
    try {
      const refused = gate?.(path, request, call);
      p = refused ? Promise.reject(refused) : handler(request, call);
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then((res) => {
      counted?.handled(grpc.status.OK);
      return res;
    }, failed);
  };
}

/** Adapts an async handler to grpc-js (see gatedUnary). */
export function toGrpcUnary<Req, Res>(path: string, handler: UnaryHandler<Req, Res>, metrics?: GrpcMetrics, gate?: CallGate): grpc.handleUnaryCall<Req, Res> {
  return grpcUnary(gatedUnary(path, handler, metrics, gate));
}

export function grpcUnary<Req, Res>(run: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    run(call.request, call).then((res) => callback(null, res), (status: grpc.ServerErrorResponse) => callback(status));
  };
}

/** A bidirectional method served off grpc-js (fast-stream.ts): its handler takes the call as grpc-js's. */
export interface FastStreamMethod {
  path: string;
  decode(b: Buffer): unknown;
  stream(call: FastDuplexCall): void;
}

/**
 * A server that can serve some methods itself, off grpc-js's per-call path (see V3GrpcServer, fast-unary.ts and
 * fast-stream.ts).
 */
export interface FastUnaryHost {
  addFastUnary(m: FastUnaryMethod | FastStreamMethod): void;
}

/** Adds a service whose handlers are all unary async functions. */
export function addUnaryService(
  server: grpc.Server,
  definition: grpc.ServiceDefinition,
  handlers: Record<string, UnaryHandler<any, any>>,
  metrics?: GrpcMetrics,
  gate?: CallGate,
  /** Where these methods are also served off grpc-js's per-call path (the KV service's hot calls). */
  fast?: FastUnaryHost,
): void {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(definition)) {
    const h = handlers[name];
    if (!h) throw new Error(`no handler for ${m.path}`);
    const run = gatedUnary(m.path, h, metrics, gate);
    impl[name] = grpcUnary(run);
    if (fast) fast.addFastUnary({ path: m.path, decode: m.requestDeserialize, encode: m.responseSerialize as (r: unknown) => Buffer, run: run as FastUnaryMethod['run'] });
  }
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}
