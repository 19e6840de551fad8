/**
 * etcd's gRPC server metrics (go-grpc-prometheus): RPCs started and handled, messages received and sent, by
 * grpc_type, grpc_service, grpc_method and (handled) grpc_code, with every method's series present from the start.
 */
import { status, type ServiceDefinition } from '@grpc/grpc-js';
import * as client from 'prom-client';
import { splitPath } from './service';

/** Go's names of the gRPC codes, the values of grpc_code. */
const CODE_NAMES: Record<number, string> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
};

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `Code(${code})`;
}

export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** The counters of one method, with its labels bound once (not per call). */
export interface MethodCounters {
  started(): void;
  handled(code: number): void;
  received(): void;
  sent(): void;
}

type Labels = 'grpc_type' | 'grpc_service' | 'grpc_method';

/** One method's counts, kept as plain numbers on the hot path and handed to prom-client at scrape time. */
interface MethodCounts {
  labels: Record<Labels, string>;
  started: number;
  received: number;
  sent: number;
  /** by gRPC code */
  handled: number[];
}

/** What a counter has already been told of one count (scrape-time deltas). */
type Seen = Map<MethodCounts, number[]>;

export class GrpcMetrics {
  private readonly startedTotal: client.Counter<Labels>;
  private readonly handledTotal: client.Counter<Labels | 'grpc_code'>;
  private readonly msgReceived: client.Counter<Labels>;
  private readonly msgSent: client.Counter<Labels>;
  private readonly methods = new Map<string, MethodCounts>();
  /** Services whose zero series are still to be made (at the first scrape: a thousand series an idle server need not hold). */
  private readonly unregistered: ServiceDefinition[] = [];

  constructor(registry: client.Registry) {
    const registers = [registry];
    const labelNames: Labels[] = ['grpc_type', 'grpc_service', 'grpc_method'];
    const methods = this.methods;
    const registerZeroSeries = (): void => this.registerZeroSeries();
    // A counter whose increments since the last scrape are read off the plain counts (labels hashed per scrape, not per call).
    const scraped = (read: (m: MethodCounts) => number[], add: (c: client.Counter<any>, m: MethodCounts, i: number, delta: number) => void) => {
      const seen: Seen = new Map();
      return function collect(this: client.Counter<any>): void {
        registerZeroSeries();
        for (const m of methods.values()) {
          const now = read(m);
          let before = seen.get(m);
          if (!before) seen.set(m, (before = []));
          for (let i = 0; i < now.length; i++) {
            const d = (now[i] ?? 0) - (before[i] ?? 0);
            if (d > 0) add(this, m, i, d);
            before[i] = now[i] ?? 0;
          }
        }
      };
    };
    const plain = (c: client.Counter<any>, m: MethodCounts, _i: number, d: number) => c.inc(m.labels, d);
    this.startedTotal = new client.Counter({
      name: 'grpc_server_started_total',
      help: 'Total number of RPCs started on the server.',
      labelNames,
      registers,
      collect: scraped((m) => [m.started], plain),
    });
    this.handledTotal = new client.Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: [...labelNames, 'grpc_code'],
      registers,
      collect: scraped((m) => m.handled, (c, m, code, d) => c.inc({ ...m.labels, grpc_code: codeName(code) }, d)),
    });
    this.msgReceived = new client.Counter({
      name: 'grpc_server_msg_received_total',
      help: 'Total number of RPC stream messages received on the server.',
      labelNames,
      registers,
      collect: scraped((m) => [m.received], plain),
    });
    this.msgSent = new client.Counter({
      name: 'grpc_server_msg_sent_total',
      help: 'Total number of gRPC stream messages sent by the server.',
      labelNames,
      registers,
      collect: scraped((m) => [m.sent], plain),
    });
  }

  private counts(type: GrpcType, service: string, method: string): MethodCounts {
    const key = `${type}/${service}/${method}`;
    let m = this.methods.get(key);
    if (!m) this.methods.set(key, (m = { labels: { grpc_type: type, grpc_service: service, grpc_method: method }, started: 0, received: 0, sent: 0, handled: [] }));
    return m;
  }

  forMethod(type: GrpcType, service: string, method: string): MethodCounters {
    const m = this.counts(type, service, method);
    const unary = type === 'unary';
    return {
      started: () => {
        m.started++;
        // A unary call's request is its one received message (counted on arrival, as go-grpc-prometheus does).
        if (unary) m.received++;
      },
      handled: (code) => {
        m.handled[code] = (m.handled[code] ?? 0) + 1;
        if (unary && code === status.OK) m.sent++;
      },
      received: () => {
        m.received++;
      },
      sent: () => {
        m.sent++;
      },
    };
  }

  /**
   * Zero series for every method of a service and every code, as grpc_prometheus.Register does: made when the
   * counters are first read (before any count is handed to them, so the series come in the same order).
   */
  preRegister(definition: ServiceDefinition): void {
    this.unregistered.push(definition);
  }

  private registerZeroSeries(): void {
    for (const definition of this.unregistered.splice(0)) this.zeroSeries(definition);
  }

  private zeroSeries(definition: ServiceDefinition): void {
    for (const m of Object.values(definition)) {
      const [service, method] = splitPath(m.path);
      const type: GrpcType = m.requestStream ? (m.responseStream ? 'bidi_stream' : 'client_stream') : m.responseStream ? 'server_stream' : 'unary';
      const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
      this.startedTotal.inc(labels, 0);
      this.msgReceived.inc(labels, 0);
      this.msgSent.inc(labels, 0);
      for (const code of Object.keys(CODE_NAMES)) this.handledTotal.inc({ ...labels, grpc_code: codeName(Number(code)) }, 0);
    }
  }
}
