/**
 * etcdctl v3's connection to the cluster: grpc-js KV and Lease clients per endpoint (clientv3's endpoint forms and
 * TLS rules), each call bounded by --command-timeout, moving on to the next endpoint when one cannot be reached, and
 * errors turned into the text clientv3 gives etcdctl to print; and clientv3's lease keep-alive loop.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { AuthClient, AuthenticateRequest, ClusterClient, KVClient, LeaseClient, MaintenanceClient, SnapshotRequest, SnapshotResponse, WatchClient, LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from '../../api/v3rpc/pb/etcdserverpb/rpc';

export interface ClientConfig {
  endpoints: string[];
  commandTimeoutMs: number;
  keepAliveTimeMs: number;
  keepAliveTimeoutMs: number;
  insecureTransport: boolean;
  insecureSkipVerify: boolean;
  cert: string;
  key: string;
  cacert: string;
  /** Where clientv3's retry interceptor logs its warnings (etcdctl: stderr). */
  warn(line: string): void;
  /**
   * A connection clientv3 dials to one endpoint for a Maintenance call (Status, HashKV, Defragment): its warnings
   * name the target `passthrough:///<endpoint>`.
   */
  dialed?: boolean;
}

/** One endpoint's connection, with a client of each service over it (clientv3's one connection). */
interface Conn {
  ep: string;
  kv: KVClient;
  lease: LeaseClient;
  auth: AuthClient;
  maintenance: MaintenanceClient;
  cluster: ClusterClient;
  /** for the Watch client, made when first asked for, on a channel of its own */
  target: string;
  creds: grpc.ChannelCredentials;
  watch?: WatchClient;
}

/** The services `rpc` calls by method name. */
type Service = 'maintenance' | 'cluster';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Method = (...args: any[]) => grpc.ClientUnaryCall;

/** A failed call, with the message etcdctl prints after "Error: ". */
export class CallError extends Error {}

/** Go's names of the gRPC codes, as in "rpc error: code = Unavailable desc = ...". */
export const GO_CODE: Record<number, string> = {
  0: 'OK', 1: 'Canceled', 2: 'Unknown', 3: 'InvalidArgument', 4: 'DeadlineExceeded', 5: 'NotFound', 6: 'AlreadyExists',
  7: 'PermissionDenied', 8: 'ResourceExhausted', 9: 'FailedPrecondition', 10: 'Aborted', 11: 'OutOfRange',
  12: 'Unimplemented', 13: 'Internal', 14: 'Unavailable', 15: 'DataLoss', 16: 'Unauthenticated',
};

interface Endpoint {
  target: string;
  secure: boolean;
}

/** clientv3's endpoint forms: http:// and https:// URLs, unix sockets, or a bare host:port (secure if TLS is set). */
function parseEndpoint(ep: string, tlsConfigured: boolean): Endpoint {
  const m = /^(https?|unixs?):\/\/(.*)$/.exec(ep);
  if (!m) return { target: ep, secure: tlsConfigured };
  const [, scheme, rest] = m;
  if (scheme.startsWith('unix')) return { target: `unix:${rest}`, secure: scheme === 'unixs' };
  return { target: rest.replace(/\/.*$/, ''), secure: scheme === 'https' };
}

type Unary<C, Req, Res> = (c: C) => (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

/** clientv3's keep-alive timings: the first deadline before a TTL is known, the loops' period, the retry wait. */
const DEFAULT_TTL_MS = 5000;
const LOOP_MS = 500;
const RETRY_CONN_WAIT_MS = 500;

export class V3Client {
  private readonly clients: Conn[];
  private readonly clientId = `client-${randomUUID()}`;
  private readonly options: grpc.ClientOptions;
  private next = 0;
  /** The auth token sent in metadata `token` with every call once authenticated (clientv3's per-RPC credentials). */
  private token: string | undefined;

  constructor(private readonly cfg: ClientConfig) {
    const tlsConfigured = !!(cfg.cert || cfg.key || cfg.cacert) || !cfg.insecureTransport;
    const options: grpc.ClientOptions = (this.options = {
      // grpc-go raises a client's keepalive time below 10 s to 10 s (etcd's servers refuse pings more frequent than 5 s)
      'grpc.keepalive_time_ms': Math.max(10_000, cfg.keepAliveTimeMs),
      'grpc.keepalive_timeout_ms': cfg.keepAliveTimeoutMs,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': 2 * 1024 * 1024,
    });
    this.clients = cfg.endpoints.map((ep) => {
      const e = parseEndpoint(ep, tlsConfigured);
      const creds = e.secure ? this.tlsCredentials() : grpc.credentials.createInsecure();
      const kv = new KVClient(e.target, creds, options);
      // The other services share the KV client's channel (one connection per endpoint).
      const shared = { ...options, channelOverride: kv.getChannel() as grpc.Channel };
      return {
        ep: ep.replace(/^[a-z]+:\/\//, ''),
        kv,
        lease: new LeaseClient(e.target, creds, shared),
        auth: new AuthClient(e.target, creds, shared),
        maintenance: new MaintenanceClient(e.target, creds, shared),
        cluster: new ClusterClient(e.target, creds, shared),
        target: e.target,
        creds,
      };
    });
  }

  /** The endpoints' count, and a Watch client to the i-th (made when first asked for, on its own channel). */
  get endpointCount(): number {
    return this.clients.length;
  }

  watchClient(i: number): WatchClient {
    const c = this.clients[i % this.clients.length];
    c.watch ??= new WatchClient(c.target, c.creds, this.options);
    return c.watch;
  }

  private tlsCredentials(): grpc.ChannelCredentials {
    const read = (f: string) => (f ? fs.readFileSync(f) : null);
    const verify: grpc.VerifyOptions = this.cfg.insecureSkipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {};
    return grpc.credentials.createSsl(read(this.cfg.cacert), read(this.cfg.key), read(this.cfg.cert), verify);
  }

  close(): void {
    for (const c of this.clients) {
      c.maintenance.close();
      c.cluster.close();
      c.kv.close();
      c.watch?.close();
    }
  }

  /** A KV call (see invoke); `timeoutMs` Infinity for calls clientv3 makes without a deadline (lock, elect). */
  call<Req, Res>(pick: Unary<KVClient, Req, Res>, req: Req, timeoutMs?: number): Promise<Res> {
    return this.invoke((c) => [c.kv, pick(c.kv) as Method], req, timeoutMs);
  }

  /** An Auth call (see invoke). */
  callAuth<Req, Res>(pick: Unary<AuthClient, Req, Res>, req: Req): Promise<Res> {
    return this.invoke((c) => [c.auth, pick(c.auth) as Method], req);
  }

  /** The metadata of a call: the token, once there is one (watch streams start from it too). */
  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.token !== undefined) md.set('token', this.token);
    return md;
  }

  /**
   * clientv3's getToken when it dials with a user name and password: Authenticate on each endpoint in turn until one
   * answers, within the dial timeout; auth not being enabled is no error (calls then go without a token). A refusal
   * is a CallError with etcd's message; time running out, "context deadline exceeded".
   */
  async authenticate(name: string, password: string, dialTimeoutMs: number): Promise<void> {
    const deadline = Date.now() + dialTimeoutMs;
    let last: grpc.ServiceError | undefined;
    for (const c of this.clients) {
      if (Date.now() >= deadline) break;
      try {
        const r = await new Promise<{ token: string }>((resolve, reject) => {
          const md = new grpc.Metadata();
          md.setOptions({ waitForReady: true });
          c.auth.authenticate(AuthenticateRequest.fromPartial({ name, password }), md, { deadline }, (err, res) => (err ? reject(err) : resolve(res!)));
        });
        this.token = r.token;
        return;
      } catch (e) {
        last = e as grpc.ServiceError;
        if (last.details === 'etcdserver: authentication is not enabled') return;
      }
    }
    if (!last || last.code === grpc.status.DEADLINE_EXCEEDED || Date.now() >= deadline) throw new CallError('context deadline exceeded');
    // the authenticator's connection has clientv3's retry interceptor too: its warning, then etcd's message
    this.retryWarning(this.clients[this.clients.length - 1].ep, `rpc error: code = ${GO_CODE[last.code] ?? `Code(${last.code})`} desc = ${last.details}`);
    if (last.details.startsWith('etcdserver: ')) throw new CallError(last.details);
    throw new CallError(`rpc error: code = ${GO_CODE[last.code] ?? `Code(${last.code})`} desc = ${last.details}`);
  }

  /** clientv3's retry interceptor's warning when a unary call fails for good. */
  private retryWarning(ep: string, error: string): void {
    this.cfg.warn(JSON.stringify({
      level: 'warn', ts: new Date().toISOString(), caller: 'clientv3/retry_interceptor.go:62', msg: 'retrying of unary invoker failed',
      target: this.cfg.dialed ? `passthrough:///${this.cfg.endpoints[0]}` : `endpoint://${this.clientId}/${ep}`, attempt: 0, error,
    }));
  }

  /** A Lease call (see invoke and call). */
  callLease<Req, Res>(pick: Unary<LeaseClient, Req, Res>, req: Req, timeoutMs?: number): Promise<Res> {
    return this.invoke((c) => [c.lease, pick(c.lease) as Method], req, timeoutMs);
  }

  /**
   * One unary KV call: endpoints are tried in turn while they cannot be reached, until the command timeout; the
   * server's answer (success or etcd error) ends it.
   */
  /** A unary call of the Maintenance or Cluster service, by the generated client's method name (`status`, `memberList`). */
  rpc<Res>(service: Service, method: string, req: unknown, timeoutMs?: number): Promise<Res> {
    return this.invoke((c) => {
      const client = c[service] as unknown as Record<string, Method> & grpc.Client;
      return [client, client[method]];
    }, req, timeoutMs);
  }

  /**
   * Maintenance.Snapshot from the (one) endpoint: each message's blob in turn to `onBlob`; resolves when the stream
   * ends. Without a timeout it runs as long as the snapshot takes (etcdctl's snapshot save unless --command-timeout).
   */
  snapshot(onBlob: (blob: Buffer) => void, timeoutMs?: number): Promise<void> {
    const c = this.clients[0];
    return new Promise((resolve, reject) => {
      const opts: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
      const st = c.maintenance.snapshot(SnapshotRequest.fromPartial({}), this.metadata(), opts);
      st.on('data', (r: SnapshotResponse) => onBlob(Buffer.from(r.blob)));
      st.on('end', resolve);
      st.on('error', (e: grpc.ServiceError) => reject(this.callError(e, e.code === grpc.status.DEADLINE_EXCEEDED, c.ep, false)));
    });
  }

  private async invoke<Res>(pick: (c: Conn) => [grpc.Client, Method], req: unknown, timeoutMs = this.cfg.commandTimeoutMs): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    let last: grpc.ServiceError | undefined;
    let lastEp = this.clients[0].ep;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const c = this.clients[this.next % this.clients.length];
      lastEp = c.ep;
      try {
        return await new Promise<Res>((resolve, reject) => {
          const [client, fn] = pick(c);
          fn.call(client, req, this.metadata(), { deadline, waitForReady: this.clients.length === 1 }, (err: grpc.ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res as Res)));
        });
      } catch (e) {
        const err = e as grpc.ServiceError;
        last = err;
        if (err.code !== grpc.status.UNAVAILABLE || err.details.startsWith('etcdserver: ')) break;
        this.next++;
        // All endpoints down: wait for one of them to come up rather than spinning.
        if (this.next % this.clients.length === 0) await this.anyReady(deadline);
      }
    }
    const err = last ?? ({ code: grpc.status.DEADLINE_EXCEEDED, details: 'context deadline exceeded' } as grpc.ServiceError);
    throw this.callError(err, err.code === grpc.status.DEADLINE_EXCEEDED || Date.now() >= deadline, lastEp, true);
  }

  /** The error clientv3 gives etcdctl for a failed call, with its retry interceptor's warning (unary calls) first. */
  private callError(err: grpc.ServiceError, deadlineHit: boolean, lastEp: string, warn: boolean): CallError {
    // grpc-go's words when the time ran out with no connection up.
    const unreachable = this.clients.every((c) => c.kv.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY);
    const desc = deadlineHit ? (unreachable ? 'latest balancer error: all SubConns are in TransientFailure' : 'context deadline exceeded') : err.details;
    const code = deadlineHit ? 'DeadlineExceeded' : GO_CODE[err.code] ?? `Code(${err.code})`;
    if (warn) this.retryWarning(lastEp, `rpc error: code = ${code} desc = ${desc}`);
    // clientv3 hands etcd's own errors over as their message, a spent deadline as the context's error.
    if (deadlineHit) return new CallError('context deadline exceeded');
    if (err.details.startsWith('etcdserver: ')) return new CallError(err.details);
    return new CallError(`rpc error: code = ${code} desc = ${err.details}`);
  }

  private anyReady(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      let pending = this.clients.length;
      for (const c of this.clients) {
        c.kv.waitForReady(deadline, (err) => {
          if (!err || --pending === 0) resolve();
        });
      }
    });
  }

  /**
   * clientv3's KeepAliveOnce: one request on a keep-alive stream, its answer; a lease that is gone (TTL 0) is etcd's
   * "requested lease not found".
   */
  async keepAliveOnce(id: bigint): Promise<LeaseKeepAliveResponse> {
    const deadline = Date.now() + this.cfg.commandTimeoutMs;
    let last: grpc.ServiceError | undefined;
    for (let i = 0; Date.now() < deadline; i++) {
      const c = this.clients[this.next % this.clients.length];
      try {
        const resp = await new Promise<LeaseKeepAliveResponse>((resolve, reject) => {
          const md = this.metadata();
          md.setOptions({ waitForReady: this.clients.length === 1 });
          const stream = c.lease.leaseKeepAlive(md, { deadline });
          stream.once('data', (r: LeaseKeepAliveResponse) => {
            resolve(r);
            stream.cancel();
          });
          stream.on('error', (err: grpc.ServiceError) => reject(err));
          stream.on('end', () => reject(Object.assign(new Error('EOF'), { code: grpc.status.UNAVAILABLE, details: 'EOF' })));
          stream.write(LeaseKeepAliveRequest.fromPartial({ ID: id }));
        });
        if (resp.TTL <= 0n) throw new CallError('etcdserver: requested lease not found');
        return resp;
      } catch (e) {
        if (e instanceof CallError) throw e;
        last = e as grpc.ServiceError;
        if (last.code !== grpc.status.UNAVAILABLE || last.details?.startsWith('etcdserver: ')) break;
        this.next++;
        if (this.next % this.clients.length === 0) await this.anyReady(deadline);
      }
    }
    if (!last || last.code === grpc.status.DEADLINE_EXCEEDED || Date.now() >= deadline) throw new CallError('context deadline exceeded');
    if (last.details.startsWith('etcdserver: ')) throw new CallError(last.details);
    throw new CallError(`rpc error: code = ${GO_CODE[last.code] ?? `Code(${last.code})`} desc = ${last.details}`);
  }

  /**
   * clientv3's KeepAlive: renews the lease a third of its TTL after each answer, over a stream that is opened again
   * (on the next endpoint) after a failure; each answer goes to onResponse (false: stop). Resolves when the lease is
   * gone: answered with TTL 0, or no answer before its deadline (the last TTL after the last answer), or once the
   * signal aborts.
   */
  keepAlive(id: bigint, onResponse: (r: LeaseKeepAliveResponse) => boolean, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let deadline = Date.now() + DEFAULT_TTL_MS;
      let nextSend = Date.now();
      let stream: grpc.ClientDuplexStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse> | undefined;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearInterval(timer);
        stream?.cancel();
        resolve();
      };
      const open = (): void => {
        if (done) return;
        const c = this.clients[this.next % this.clients.length];
        const s = c.lease.leaseKeepAlive(this.metadata());
        stream = s;
        s.on('data', (r: LeaseKeepAliveResponse) => {
          if (r.TTL <= 0n || !onResponse(r)) return finish();
          const ttlMs = Number(r.TTL) * 1000;
          nextSend = Date.now() + ttlMs / 3;
          deadline = Date.now() + ttlMs;
        });
        const reopen = (): void => {
          if (done || stream !== s) return;
          stream = undefined;
          this.next++;
          setTimeout(open, RETRY_CONN_WAIT_MS);
        };
        s.on('error', reopen);
        s.on('end', reopen);
        nextSend = Date.now();
        send();
      };
      const send = (): void => {
        if (!stream || Date.now() < nextSend) return;
        // one request per period: the next one is due when an answer comes, or after a period without one
        nextSend = Date.now() + LOOP_MS;
        stream.write(LeaseKeepAliveRequest.fromPartial({ ID: id }));
      };
      const timer = setInterval(() => {
        if (Date.now() > deadline) return finish();
        send();
      }, LOOP_MS);
      // the session's owner stops it (clientv3's Orphan): no more renewals
      if (signal?.aborted) return finish();
      signal?.addEventListener('abort', finish);
      open();
    });
  }
}
