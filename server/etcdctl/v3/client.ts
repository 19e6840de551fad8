/**
 * etcdctl v3's connection to the cluster: a grpc-js KV client per endpoint (clientv3's endpoint forms and TLS
 * rules), each call bounded by --command-timeout, moving on to the next endpoint when one cannot be reached, and
 * errors turned into the text clientv3 gives etcdctl to print.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { KVClient, WatchClient } from '../../api/v3rpc/pb/etcdserverpb/rpc';

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
}

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

export class V3Client {
  private readonly clients: { ep: string; kv: KVClient; target: string; creds: grpc.ChannelCredentials; watch?: WatchClient }[];
  private readonly clientId = `client-${randomUUID()}`;
  private readonly options: grpc.ClientOptions;
  private next = 0;

  constructor(private readonly cfg: ClientConfig) {
    const tlsConfigured = !!(cfg.cert || cfg.key || cfg.cacert) || !cfg.insecureTransport;
    this.options = {
      'grpc.keepalive_time_ms': cfg.keepAliveTimeMs,
      'grpc.keepalive_timeout_ms': cfg.keepAliveTimeoutMs,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': 2 * 1024 * 1024,
    };
    this.clients = cfg.endpoints.map((ep) => {
      const e = parseEndpoint(ep, tlsConfigured);
      const creds = e.secure ? this.tlsCredentials() : grpc.credentials.createInsecure();
      return { ep: ep.replace(/^[a-z]+:\/\//, ''), kv: new KVClient(e.target, creds, this.options), target: e.target, creds };
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
      c.kv.close();
      c.watch?.close();
    }
  }

  /**
   * One unary call: endpoints are tried in turn while they cannot be reached, until the command timeout; the
   * server's answer (success or etcd error) ends it.
   */
  async call<Req, Res>(pick: (kv: KVClient) => (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall, req: Req): Promise<Res> {
    const deadline = Date.now() + this.cfg.commandTimeoutMs;
    let last: grpc.ServiceError | undefined;
    let lastEp = this.clients[0].ep;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const c = this.clients[this.next % this.clients.length];
      lastEp = c.ep;
      try {
        return await new Promise<Res>((resolve, reject) => {
          pick(c.kv).call(c.kv, req, new grpc.Metadata(), { deadline, waitForReady: this.clients.length === 1 }, (err, res) => (err ? reject(err) : resolve(res!)));
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
    const deadlineHit = err.code === grpc.status.DEADLINE_EXCEEDED || Date.now() >= deadline;
    // grpc-go's words when the time ran out with no connection up.
    const unreachable = this.clients.every((c) => c.kv.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY);
    const desc = deadlineHit ? (unreachable ? 'latest balancer error: all SubConns are in TransientFailure' : 'context deadline exceeded') : err.details;
    const code = deadlineHit ? 'DeadlineExceeded' : GO_CODE[err.code] ?? `Code(${err.code})`;
    this.cfg.warn(JSON.stringify({
      level: 'warn', ts: new Date().toISOString(), caller: 'clientv3/retry_interceptor.go:62', msg: 'retrying of unary invoker failed',
      target: `endpoint://${this.clientId}/${lastEp}`, attempt: 0, error: `rpc error: code = ${code} desc = ${desc}`,
    }));
    // clientv3 hands etcd's own errors over as their message, a spent deadline as the context's error.
    if (deadlineHit) throw new CallError('context deadline exceeded');
    if (err.details.startsWith('etcdserver: ')) throw new CallError(err.details);
    throw new CallError(`rpc error: code = ${code} desc = ${err.details}`);
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
