/**
 * etcdctl v3's connection to the cluster: a grpc-js KV client per endpoint (clientv3's endpoint forms and TLS
 * rules), each call bounded by --command-timeout, moving on to the next endpoint when one cannot be reached, and
 * errors turned into the text clientv3 gives etcdctl to print.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { ClusterClient, KVClient, MaintenanceClient, SnapshotRequest, SnapshotResponse } from '../../api/v3rpc/pb/etcdserverpb/rpc';

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

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Method = (...args: any[]) => grpc.ClientUnaryCall;

/** A failed call, with the message etcdctl prints after "Error: ". */
export class CallError extends Error {}

/** Go's names of the gRPC codes, as in "rpc error: code = Unavailable desc = ...". */
const GO_CODE: Record<number, string> = {
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

/** One endpoint's connection, with a client of each service over it. */
interface Conn {
  ep: string;
  kv: KVClient;
  maintenance: MaintenanceClient;
  cluster: ClusterClient;
}

/** The services a call can go to, by the generated client's name. */
type Service = 'kv' | 'maintenance' | 'cluster';

export class V3Client {
  private readonly clients: Conn[];
  private readonly clientId = `client-${randomUUID()}`;
  private next = 0;

  constructor(private readonly cfg: ClientConfig) {
    const tlsConfigured = !!(cfg.cert || cfg.key || cfg.cacert) || !cfg.insecureTransport;
    const options: grpc.ClientOptions = {
      'grpc.keepalive_time_ms': cfg.keepAliveTimeMs,
      'grpc.keepalive_timeout_ms': cfg.keepAliveTimeoutMs,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': 2 * 1024 * 1024,
    };
    this.clients = cfg.endpoints.map((ep) => {
      const e = parseEndpoint(ep, tlsConfigured);
      const creds = e.secure ? this.tlsCredentials() : grpc.credentials.createInsecure();
      const kv = new KVClient(e.target, creds, options);
      // The other services share the KV client's channel (one connection per endpoint).
      const shared = { ...options, channelOverride: kv.getChannel() as grpc.Channel };
      return { ep: ep.replace(/^[a-z]+:\/\//, ''), kv, maintenance: new MaintenanceClient(e.target, creds, shared), cluster: new ClusterClient(e.target, creds, shared) };
    });
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
    }
  }

  /**
   * One unary KV call: endpoints are tried in turn while they cannot be reached, until the command timeout; the
   * server's answer (success or etcd error) ends it.
   */
  call<Req, Res>(pick: (kv: KVClient) => (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall, req: Req): Promise<Res> {
    return this.invoke((c) => [c.kv, pick(c.kv) as Method], req);
  }

  /** A unary call of the Maintenance or Cluster service, by the generated client's method name (`status`, `memberList`). */
  rpc<Res>(service: Service, method: string, req: unknown): Promise<Res> {
    return this.invoke((c) => {
      const client = c[service] as unknown as Record<string, Method> & grpc.Client;
      return [client, client[method]];
    }, req);
  }

  /**
   * Maintenance.Snapshot from the (one) endpoint: each message's blob in turn to `onBlob`; resolves when the stream
   * ends. Without a timeout it runs as long as the snapshot takes (etcdctl's snapshot save unless --command-timeout).
   */
  snapshot(onBlob: (blob: Buffer) => void, timeoutMs?: number): Promise<void> {
    const c = this.clients[0];
    return new Promise((resolve, reject) => {
      const opts: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
      const st = c.maintenance.snapshot(SnapshotRequest.fromPartial({}), new grpc.Metadata(), opts);
      st.on('data', (r: SnapshotResponse) => onBlob(Buffer.from(r.blob)));
      st.on('end', resolve);
      st.on('error', (e: grpc.ServiceError) => reject(this.callError(e, e.code === grpc.status.DEADLINE_EXCEEDED, c.ep, false)));
    });
  }

  private async invoke<Res>(pick: (c: Conn) => [grpc.Client, Method], req: unknown): Promise<Res> {
    const deadline = Date.now() + this.cfg.commandTimeoutMs;
    let last: grpc.ServiceError | undefined;
    let lastEp = this.clients[0].ep;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const c = this.clients[this.next % this.clients.length];
      lastEp = c.ep;
      try {
        return await new Promise<Res>((resolve, reject) => {
          const [client, fn] = pick(c);
          fn.call(client, req, new grpc.Metadata(), { deadline, waitForReady: this.clients.length === 1 }, (err: grpc.ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res as Res)));
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
    if (warn) this.cfg.warn(JSON.stringify({
      level: 'warn', ts: new Date().toISOString(), caller: 'clientv3/retry_interceptor.go:62', msg: 'retrying of unary invoker failed',
      target: this.cfg.dialed ? `passthrough:///${this.cfg.endpoints[0]}` : `endpoint://${this.clientId}/${lastEp}`, attempt: 0, error: `rpc error: code = ${code} desc = ${desc}`,
    }));
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
}
