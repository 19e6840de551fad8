/**
 * The JSON gateway as the client listener routes to it: which paths are its, and a handler that loads the gateway
 * itself (its routes, the .proto JSON names) on the first request under them, which most servers never get.
 */
import type * as http from 'node:http';
import type { GatewayOptions } from './gateway';

const PREFIXES = ['/v3/', '/v3beta/'];

/** True for a path the gateway answers (everything under its prefixes, known routes or not). */
export function isGatewayPath(path: string): boolean {
  return PREFIXES.some((p) => path.startsWith(p));
}

/** The gateway's HTTP handler (./gateway.ts), made on the first request. */
export function gatewayHandler(o: GatewayOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined;
  return (req, res) => (handler ??= (require('./gateway') as typeof import('./gateway')).gatewayHandler(o))(req, res);
}
