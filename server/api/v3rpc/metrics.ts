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

export class GrpcMetrics {
  private readonly startedTotal: client.Counter<Labels>;
  private readonly handledTotal: client.Counter<Labels | 'grpc_code'>;
  private readonly msgReceived: client.Counter<Labels>;
  private readonly msgSent: client.Counter<Labels>;

  constructor(registry: client.Registry) {
    const registers = [registry];
    const labelNames: Labels[] = ['grpc_type', 'grpc_service', 'grpc_method'];
    this.startedTotal = new client.Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames, registers });
    this.handledTotal = new client.Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: [...labelNames, 'grpc_code'],
      registers,
    });
    this.msgReceived = new client.Counter({ name: 'grpc_server_msg_received_total', help: 'Total number of RPC stream messages received on the server.', labelNames, registers });
    this.msgSent = new client.Counter({ name: 'grpc_server_msg_sent_total', help: 'Total number of gRPC stream messages sent by the server.', labelNames, registers });
  }

  forMethod(type: GrpcType, service: string, method: string): MethodCounters {
    const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
    const started = this.startedTotal.labels(labels);
    const received = this.msgReceived.labels(labels);
    const sent = this.msgSent.labels(labels);
    const handled = new Map<number, client.Counter.Internal>();
    const unary = type === 'unary';
    return {
      started: () => {
        started.inc();
        // A unary call's request is its one received message (counted on arrival, as go-grpc-prometheus does).
        if (unary) received.inc();
      },
      handled: (code) => {
        let c = handled.get(code);
        if (!c) handled.set(code, (c = this.handledTotal.labels({ ...labels, grpc_code: codeName(code) })));
        c.inc();
        if (unary && code === status.OK) sent.inc();
      },
      received: () => received.inc(),
      sent: () => sent.inc(),
    };
  }

  /** Zero series for every method of a service and every code, as grpc_prometheus.Register does. */
  preRegister(definition: ServiceDefinition): void {
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
