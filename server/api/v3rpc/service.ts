/**
 * The plumbing shared by the v3 services: method definitions over the generated message code (serialized without
 * copying the encoded bytes), and unary handlers written as async functions, counted in etcd's gRPC metrics.
 */
import * as grpc from '@grpc/grpc-js';
import { type BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { V3Error } from './errors';
import type { GrpcMetrics } from './metrics';
import type { CallContext } from './kv';

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

/** Adapts an async handler to grpc-js, counting it started and handled (with its code) as etcd's interceptor does. */
export function toGrpcUnary<Req, Res>(path: string, handler: UnaryHandler<Req, Res>, metrics?: GrpcMetrics, gate?: CallGate): grpc.handleUnaryCall<Req, Res> {
  const [service, method] = splitPath(path);
  const counted = metrics?.forMethod('unary', service, method);
  return (call, callback) => {
    counted?.started();
    let p: Promise<Res>;
    try {
      const refused = gate?.(path, call.request, call);
      p = refused ? Promise.reject(refused) : handler(call.request, call);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (res) => {
        counted?.handled(grpc.status.OK);
        callback(null, res);
      },
      (err: unknown) => {
        const code = err instanceof V3Error ? err.code : grpc.status.UNKNOWN;
        const details = err instanceof V3Error ? err.details : err instanceof Error ? err.message : String(err);
        counted?.handled(code);
        // A fresh object: the shared V3Error constants must never carry one call's trailers to another.
        callback({ name: 'V3Error', message: details, code, details });
      },
    );
  };
}

/** Adds a service whose handlers are all unary async functions. */
export function addUnaryService(
  server: grpc.Server,
  definition: grpc.ServiceDefinition,
  handlers: Record<string, UnaryHandler<any, any>>,
  metrics?: GrpcMetrics,
  gate?: CallGate,
): void {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(definition)) {
    const h = handlers[name];
    if (!h) throw new Error(`no handler for ${m.path}`);
    impl[name] = toGrpcUnary(m.path, h, metrics, gate);
  }
  metrics?.preRegister(definition);
  server.addService(definition, impl);
}
