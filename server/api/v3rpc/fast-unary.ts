/**
 * Unary calls answered straight on their HTTP/2 stream, for the KV service's calls (Range, Put, DeleteRange, Txn,
 * Compact): the request's one message read from the stream, the handler run, and the answer written as one DATA frame
 * then trailers, as grpc-js writes them, but without grpc-js's per-call machinery (its intercepting call, listener
 * chain, metadata queue, read queue, writable stream object and their promises and events). Under etcd's benchmark at
 * 1000 clients that machinery cost about 30 µs of CPU per call, a quarter of a put.
 *
 * Only the plain case comes here: a known path, a gRPC content type, an uncompressed request. grpc-js serves every
 * other call, and every call when this grpc-js has no `_streamHandler` to take over (see V3GrpcServer). What a client
 * sees is what grpc-js answers: the same headers and trailers, status texts, size limit, deadline and metadata.
 */
import * as http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { constantHeaders, H2Stream } from '../../embed/h2/connection';

/** A unary method as the fast path runs it: the request decoded, the handler's answer or its gRPC status. */
export interface FastUnaryMethod {
  path: string;
  decode(b: Buffer): unknown;
  encode(response: unknown): Buffer;
  /** Resolves with the response, rejects with a { code, details } status (the handler's, metrics counted). */
  run(request: unknown, call: FastUnaryCall): Promise<unknown>;
}

/** What a unary handler may read of its call (the same as grpc-js's ServerUnaryCall offers it for these). */
type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getAuthContext']>;

export interface FastUnaryCall {
  readonly metadata: grpc.Metadata;
  metadataValue?(key: string): grpc.MetadataValue | undefined;
  readonly request: unknown;
  cancelled: boolean;
  getAuthContext(): AuthContext;
  getPeer(): string;
  getDeadline(): number;
  getPath(): string;
}

export const OK_HEADERS = constantHeaders({
  [http2.constants.HTTP2_HEADER_STATUS]: http2.constants.HTTP_STATUS_OK,
  [http2.constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
});
export const OK_TRAILERS = constantHeaders({ 'grpc-status': grpc.status.OK, 'grpc-message': 'OK' });
/** The headers of a trailers-only answer (a status and no message), besides the status itself. */
export const failHeaders = {
  [http2.constants.HTTP2_HEADER_STATUS]: http2.constants.HTTP_STATUS_OK,
  [http2.constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
};
const RESPOND_OPTIONS = { waitForTrailers: true };
const END_STREAM = { endStream: true };

/** grpc-js's reading of grpc-timeout: up to 8 digits and a unit. */
const DEADLINE_REGEX = /(\d{1,8})\s*([HMSmun])/;
const DEADLINE_UNITS_MS: Record<string, number> = { H: 3600000, M: 60000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The headers grpc-js leaves out of a call's metadata. */
const NOT_METADATA = ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type'];

const noop = (): void => undefined;

/** grpc-timeout in milliseconds as grpc-js reads it; undefined for a value it refuses. */
export function parseGrpcTimeout(v: string): number | undefined {
  const m = DEADLINE_REGEX.exec(v);
  return m ? (+m[1] * DEADLINE_UNITS_MS[m[2]]) | 0 : undefined;
}

/** A call's metadata as grpc-js gives it to a handler: the request's headers but the transport's own. */
export function requestMetadata(headers: http2.IncomingHttpHeaders): grpc.Metadata {
  const md = grpc.Metadata.fromHttp2Headers(headers);
  for (const h of NOT_METADATA) md.remove(h);
  return md;
}

const LEGAL_NON_BINARY_VALUE = /^[ -~]*$/;
/** A key grpc-js takes as it is (it lower-cases keys, and refuses others). */
const PLAIN_KEY = /^[0-9a-z_.-]+$/;

/**
 * `requestMetadata(headers).get(key)[0]`, without building the Metadata (a Map and an array per header, which every
 * v3 request's auth lookups made): for a key that is not `-bin` nor the transport's own, the first value grpc-js
 * would have kept, that is the header's (its first when repeated) when it is printable ASCII, else none.
 */
export function metadataValueOf(headers: http2.IncomingHttpHeaders, key: string): grpc.MetadataValue | undefined {
  if (key.charCodeAt(0) === 58 /* : */) return undefined; // pseudo-headers are never metadata
  if (key.endsWith('-bin') || NOT_METADATA.includes(key) || !PLAIN_KEY.test(key)) return requestMetadata(headers).get(key)[0];
  const v = headers[key];
  const first = Array.isArray(v) ? v[0] : v;
  return typeof first === 'string' && LEGAL_NON_BINARY_VALUE.test(first) ? first : undefined;
}

/** Whether a call with these headers can be served by the fast path (else grpc-js serves it). */
export function fastEligible(headers: http2.IncomingHttpHeaders): boolean {
  const ct = headers['content-type'];
  if (typeof ct !== 'string' || !ct.startsWith('application/grpc')) return false;
  const enc = headers['grpc-encoding'];
  return enc === undefined || enc === 'identity';
}

class Call implements FastUnaryCall {
  cancelled = false;
  request: unknown = undefined;
  private md?: grpc.Metadata;
  deadline = Infinity;

  constructor(
    private readonly stream: http2.ServerHttp2Stream | H2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly path: string,
  ) {}

  get metadata(): grpc.Metadata {
    return (this.md ??= requestMetadata(this.headers));
  }

  metadataValue(key: string): grpc.MetadataValue | undefined {
    return this.md ? this.md.get(key)[0] : metadataValueOf(this.headers, key);
  }

  getAuthContext(): AuthContext {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const cert = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: cert.raw ? cert : undefined };
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (!socket?.remoteAddress) return 'unknown';
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  getDeadline(): number {
    return this.deadline;
  }

  getPath(): string {
    return this.path;
  }
}

/**
 * Serves one unary call on its stream, of Node's HTTP/2 or of ours (whose stream is read and answered without
 * events). maxReceive is the server's grpc.max_receive_message_length; the answer is grpc-js's for every failure it
 * would report (size, no message, a second message, an undecodable one, a deadline).
 */
export function serveFastUnary(stream: http2.ServerHttp2Stream | H2Stream, headers: http2.IncomingHttpHeaders, method: FastUnaryMethod, maxReceive: number): void {
  const own = stream instanceof H2Stream ? stream : undefined;
  // As grpc-js: an error event has a close event after it, which is what counts.
  if (!own) stream.once('error', noop);
  const call = new Call(stream, headers, method.path);
  let finished = false;
  let timer: NodeJS.Timeout | undefined;

  const fail = (code: grpc.status, details: string): void => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    if (stream.destroyed || stream.closed) return;
    stream.respond({ 'grpc-status': code, 'grpc-message': encodeURI(details), ...failHeaders }, END_STREAM);
  };
  const answer = (response: unknown): void => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    if (stream.destroyed || stream.closed) return;
    let body: Buffer;
    try {
      body = method.encode(response);
    } catch (err) {
      finished = false;
      fail(grpc.status.INTERNAL, (err as Error).message);
      return;
    }
    if (own) return own.answerMessage(OK_HEADERS, body, OK_TRAILERS);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const s = stream as http2.ServerHttp2Stream;
    s.respond(OK_HEADERS, RESPOND_OPTIONS);
    s.once('wantTrailers', () => s.sendTrailers(OK_TRAILERS));
    s.end(frame);
  };

  const onClose = (): void => {
    call.cancelled = true;
    if (timer) clearTimeout(timer);
  };
  if (own) own.onFinish = onClose;
  else stream.once('close', onClose);

  const timeout = headers['grpc-timeout'];
  if (timeout !== undefined) {
    const ms = parseGrpcTimeout(String(timeout));
    if (ms === undefined) {
      process.nextTick(() => fail(grpc.status.INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
      return;
    }
    call.deadline = Date.now() + ms;
    timer = setTimeout(() => fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ms);
  }

  // The request: one length-prefixed message, then the end of the stream.
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let tooLarge = false;
  let sized = false;
  let limit = Infinity;
  const onData = (chunk: Buffer): void => {
    if (finished || tooLarge) return;
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
    size += chunk.length;
    if (!sized && size >= 5) {
      sized = true;
      const head = chunks ? Buffer.concat(chunks, 5) : first;
      const declared = head.readUInt32BE(1);
      if (declared > maxReceive) {
        tooLarge = true;
        fail(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${declared} vs ${maxReceive})`);
      }
      limit = 5 + declared + 5 + maxReceive;
    }
    // Bytes past the one message and a second one as large as allowed: a second message is there, which grpc-js
    // refuses as it arrives; nothing more is held.
    if (size > limit) fail(grpc.status.UNIMPLEMENTED, `Received a second request message for server streaming method ${method.path}`);
  };
  const onEnd = (): void => {
    if (finished || tooLarge) return;
    const body = chunks ? Buffer.concat(chunks, size) : first;
    if (!body || body.length < 5 || body.length < 5 + body.readUInt32BE(1)) {
      fail(grpc.status.UNIMPLEMENTED, `Received no request message for server streaming method ${method.path}`);
      return;
    }
    const len = body.readUInt32BE(1);
    const rest = body.length - 5 - len;
    if (rest >= 5 && rest >= 5 + body.readUInt32BE(5 + len)) {
      fail(grpc.status.UNIMPLEMENTED, `Received a second request message for server streaming method ${method.path}`);
      return;
    }
    let request: unknown;
    try {
      request = method.decode(body.subarray(5, 5 + len));
    } catch {
      fail(grpc.status.INTERNAL, 'Error deserializing request');
      return;
    }
    call.request = request;
    method.run(request, call).then(answer, (e: { code: grpc.status; details: string }) => fail(e.code, e.details));
  };
  if (own) own.reader = { data: onData, end: onEnd };
  else {
    stream.on('data', onData);
    stream.on('end', onEnd);
  }
}
