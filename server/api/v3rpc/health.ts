/**
 * grpc.health.v1.Health as etcd registers it (grpc-go's health server): the empty service name is SERVING; any
 * other name is NOT_FOUND "unknown service" for Check, SERVICE_UNKNOWN for Watch, whose stream stays open.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthCheckRequest, HealthCheckResponse, HealthCheckResponse_ServingStatus } from './pb/grpc/health/v1/health';
import type { GrpcMetrics } from './metrics';
import { V3Error } from './errors';
import { encodeToBuffer, toGrpcUnary, unaryMethod } from './service';

const status = (s: string) => (s === '' ? HealthCheckResponse_ServingStatus.SERVING : undefined);

export function addHealthService(server: grpc.Server, metrics?: GrpcMetrics): void {
  const definition: grpc.ServiceDefinition = {
    Check: unaryMethod('/grpc.health.v1.Health/Check', HealthCheckRequest, HealthCheckResponse),
    Watch: {
      path: '/grpc.health.v1.Health/Watch',
      requestStream: false,
      responseStream: true,
      requestSerialize: (m: HealthCheckRequest) => encodeToBuffer(HealthCheckRequest, m),
      requestDeserialize: (b: Buffer) => HealthCheckRequest.decode(b),
      responseSerialize: (m: HealthCheckResponse) => encodeToBuffer(HealthCheckResponse, m),
      responseDeserialize: (b: Buffer) => HealthCheckResponse.decode(b),
    },
  };
  const watchCounters = metrics?.forMethod('server_stream', 'grpc.health.v1.Health', 'Watch');
  server.addService(definition, {
    Check: toGrpcUnary('/grpc.health.v1.Health/Check', async (req: HealthCheckRequest) => {
      const s = status(req.service);
      if (s === undefined) throw new V3Error(grpc.status.NOT_FOUND, 'unknown service');
      return { status: s };
    }, metrics),
    Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      watchCounters?.started();
      watchCounters?.received();
      call.write({ status: status(call.request.service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN });
      watchCounters?.sent();
      // The status never changes while the server runs: the stream ends when the client leaves.
      call.on('cancelled', () => watchCounters?.handled(grpc.status.CANCELLED));
    },
  });
  metrics?.preRegister(definition);
}
