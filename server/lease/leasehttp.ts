/**
 * Renewals and TimeToLive between members (etcd's lease/leasehttp): a follower does not hold expiries, so it asks
 * the leader over the peer listener. POST /leases with a LeaseKeepAliveRequest answers a LeaseKeepAliveResponse;
 * POST /leases/internal with a LeaseInternalRequest (a LeaseTimeToLiveRequest in field 1) answers a
 * LeaseInternalResponse (a LeaseTimeToLiveResponse in field 1). Protobuf bodies, etcd's statuses and texts: 404
 * "lease not found", 408 when the leader could not catch up its applied index within a second, 400 otherwise.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from '../api/v3rpc/pb/etcdserverpb/rpc';
import { peerTarget } from '../rafthttp/transport';
import { ErrLeaseNotFound } from './lessor';

export const LEASE_PREFIX = '/leases';
export const LEASE_INTERNAL_PREFIX = '/leases/internal';
/** etcd's leasehttp applyTimeout. */
const APPLY_TIMEOUT_MS = 1000;
const MAX_BODY = 4096;

export class ErrLeaseHTTPTimeout extends Error {
  constructor() {
    super('waiting for node to catch up its applied index has timed out');
  }
}

/** What the leader's handler needs: renew and look up on its lessor, and wait for its applied index. */
export interface LeaseHTTPHost {
  waitApplied(timeoutMs: number): Promise<void>;
  renew(id: bigint): Promise<number>;
  /** undefined: no such lease; throws ErrNotPrimary when this member cannot tell (400, asked again). */
  timeToLive(id: bigint, keys: boolean): LeaseTimeToLiveResponse | undefined;
}

/** leasepb.LeaseInternalRequest / LeaseInternalResponse: one embedded message in field 1. */
function wrap<T>(codec: { encode(m: T, w?: BinaryWriter): BinaryWriter }, m: T): Uint8Array {
  const w = new BinaryWriter();
  w.uint32((1 << 3) | WireType.LengthDelimited).fork();
  codec.encode(m, w);
  return w.join().finish();
}

function unwrap<T>(codec: { decode(r: BinaryReader, length?: number): T }, b: Uint8Array): T | undefined {
  const r = new BinaryReader(b);
  let out: T | undefined;
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 1 && type === WireType.LengthDelimited) out = codec.decode(r, r.uint32());
    else r.skip(type);
  }
  return out;
}

/** The peer listener's side: true when the request was a lease request (and is answered). */
export function serveLeaseHTTP(req: http.IncomingMessage, res: http.ServerResponse, host: LeaseHTTPHost | undefined): boolean {
  const path = (req.url ?? '').split('?')[0];
  if (path !== LEASE_PREFIX && path !== LEASE_INTERNAL_PREFIX) return false;
  // Go's http.Error: text/plain, nosniff, the message and a newline.
  const fail = (status: number, text: string): void => {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end(`${text}\n`);
  };
  if (req.method !== 'POST') {
    req.resume();
    fail(405, 'Method Not Allowed');
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    let id: bigint;
    let keys = false;
    try {
      if (path === LEASE_PREFIX) id = LeaseKeepAliveRequest.decode(body).ID;
      else {
        const r = unwrap(LeaseTimeToLiveRequest, body);
        if (!r) throw new Error('no request');
        id = r.ID;
        keys = r.keys;
      }
    } catch {
      return fail(400, 'error unmarshalling request');
    }
    if (!host) return fail(503, 'not ready');
    const answer = async (): Promise<Uint8Array> => {
      await host.waitApplied(APPLY_TIMEOUT_MS).catch(() => {
        throw new ErrLeaseHTTPTimeout();
      });
      if (path === LEASE_PREFIX) {
        const ttl = await host.renew(id);
        return LeaseKeepAliveResponse.encode({ header: undefined, ID: id, TTL: BigInt(ttl) }).finish();
      }
      const r = host.timeToLive(id, keys);
      if (!r) throw new ErrLeaseNotFound();
      return wrap(LeaseTimeToLiveResponse, r);
    };
    answer().then(
      (bytes) => {
        res.writeHead(200, { 'Content-Type': 'application/protobuf' });
        res.end(bytes);
      },
      (err: Error) => {
        if (err instanceof ErrLeaseHTTPTimeout) fail(408, err.message);
        else if (err instanceof ErrLeaseNotFound) fail(404, err.message);
        else fail(400, err.message);
      },
    );
  });
  return true;
}

/** POSTs a protobuf body to a peer; resolves with the status and body. */
function post(url: string, body: Uint8Array, timeoutMs: number, tlsOptions?: https.AgentOptions): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const target = peerTarget(new URL(url));
    if (!target) return reject(new Error(`unsupported peer URL ${url}`));
    const secure = target.url.protocol === 'https:';
    const opts: https.RequestOptions = {
      method: 'POST',
      timeout: timeoutMs,
      headers: { 'Content-Type': 'application/protobuf', 'Content-Length': body.byteLength },
      socketPath: target.socketPath,
      ...(secure ? tlsOptions : {}),
    };
    const req = (secure ? https : http).request(target.url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function statusError(status: number, body: Buffer): Error {
  if (status === 408) return new ErrLeaseHTTPTimeout();
  if (status === 404) return new ErrLeaseNotFound();
  return new Error(`lease: unknown error(${body.toString()})`);
}

/** Renews a lease at the leader (peer URL); its TTL, or ErrLeaseNotFound, or another error to try elsewhere. */
export async function renewHTTP(peerURL: string, id: bigint, timeoutMs: number, tlsOptions?: https.AgentOptions): Promise<bigint> {
  const { status, body } = await post(new URL(LEASE_PREFIX, peerURL).toString(), LeaseKeepAliveRequest.encode({ ID: id }).finish(), timeoutMs, tlsOptions);
  if (status !== 200) throw statusError(status, body);
  const r = LeaseKeepAliveResponse.decode(body);
  if (r.ID !== id) throw new Error('lease: renew id mismatch');
  return r.TTL;
}

/** A lease's TimeToLive at the leader (peer URL). */
export async function timeToLiveHTTP(peerURL: string, id: bigint, keys: boolean, timeoutMs: number, tlsOptions?: https.AgentOptions): Promise<LeaseTimeToLiveResponse> {
  const { status, body } = await post(new URL(LEASE_INTERNAL_PREFIX, peerURL).toString(), wrap(LeaseTimeToLiveRequest, { ID: id, keys }), timeoutMs, tlsOptions);
  if (status !== 200) throw statusError(status, body);
  const r = unwrap(LeaseTimeToLiveResponse, body);
  if (!r || r.ID !== id) throw new Error('lease: renew id mismatch');
  return r;
}
