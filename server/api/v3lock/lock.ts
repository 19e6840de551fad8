/**
 * The v3lockpb.Lock service (etcd's etcdserver/api/v3lock): Lock waits for the named lock with the caller's lease
 * (a new lease of 60 s when it names none, as etcd's session does) and answers the key that holds it while it
 * exists; Unlock deletes that key. Both run the concurrency recipes over the member's in-process client, as the
 * caller (auth). Errors come back as etcd's do: through clientv3, so with gRPC code Unknown and etcd's text.
 */
import type * as grpc from '@grpc/grpc-js';
import { LockRequest, LockResponse, UnlockRequest, UnlockResponse } from '../v3rpc/pb/v3lockpb/v3lock';
import { DeleteRangeRequest } from '../v3rpc/pb/etcdserverpb/rpc';
import { unaryMethod, type UnaryHandler } from '../v3rpc/service';
import { lock } from '../v3client/concurrency';
import { asClientError, callSignal, type InProcessClient } from '../v3client/in-process';

export function lockService(client: InProcessClient): { definition: grpc.ServiceDefinition; handlers: Record<string, UnaryHandler<any, any>> } {
  const Lock: UnaryHandler<LockRequest, LockResponse> = async (req, call) => {
    const signal = callSignal(call);
    try {
      const lease = await client.sessionLease(req.lease);
      const held = await lock(client.forCall(call), req.name, lease, signal);
      return { header: held.header, key: held.key };
    } catch (err) {
      throw asClientError(err);
    }
  };
  const Unlock: UnaryHandler<UnlockRequest, UnlockResponse> = async (req, call) => {
    try {
      const r = await client.forCall(call).deleteRange(DeleteRangeRequest.fromPartial({ key: req.key }));
      return { header: r.header };
    } catch (err) {
      throw asClientError(err);
    }
  };
  return {
    definition: {
      Lock: unaryMethod('/v3lockpb.Lock/Lock', LockRequest, LockResponse),
      Unlock: unaryMethod('/v3lockpb.Lock/Unlock', UnlockRequest, UnlockResponse),
    },
    handlers: { Lock, Unlock },
  };
}
