import * as http from 'node:http';
import * as net from 'node:net';
import { Duplex } from 'node:stream';

/**
 * Requests whose target holds raw bytes past ASCII (`PUT /v2/keys/日本 HTTP/1.1`, the UTF-8 sent unescaped): Go's
 * server takes them (its handlers see the same path as for the %-escaped form), Node's parser refuses them. When
 * that refusal comes on a chunk that starts with the request line, the connection is handed back to the HTTP
 * server with those bytes %-escaped, which etcd's handlers cannot tell from the raw form. Costs nothing until a
 * request needs it; from then on that one connection goes through a relay stream.
 */
export function retryWithEscapedTarget(server: http.Server, err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex): boolean {
  if (err.code !== 'HPE_INVALID_URL' || !Buffer.isBuffer(err.rawPacket)) return false;
  // Only between requests: a response still being written belongs to the connection as Node serves it.
  if (!socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) return false;
  const chunk = err.rawPacket;
  // The request line whole (and escapable), or its start, the rest to come.
  if (chunk.includes(0x0a) ? !escapeTarget(chunk) : !/^[A-Z]+ [^ ]*( [^ ]*)?$/.test(chunk.toString('latin1'))) return false;
  if (!detachFromHTTP(socket)) return false;
  (http as unknown as { _connectionListener: (this: http.Server, s: Duplex) => void })._connectionListener.call(server, relay(socket, chunk));
  return true;
}

/** How much of a request line is waited for before it is given to the parser as it is (which refuses it). */
const MAX_PENDING_LINE = 64 * 1024;

/**
 * The chunk with the bytes past ASCII in its request line's target %-escaped, when the chunk starts with a whole
 * request line and its target holds such bytes; otherwise undefined.
 */
export function escapeTarget(chunk: Buffer): Buffer | undefined {
  const lf = chunk.indexOf(0x0a);
  if (lf < 0) return undefined;
  const line = chunk.subarray(0, lf);
  const start = line.indexOf(0x20) + 1;
  const end = line.lastIndexOf(0x20);
  if (start <= 1 || end <= start || !/^[A-Z]+ $/.test(line.toString('latin1', 0, start))) return undefined;
  const target = line.subarray(start, end);
  if (!target.some((b) => b >= 0x80)) return undefined;
  let escaped = '';
  for (const b of target) escaped += b >= 0x80 ? `%${b.toString(16).toUpperCase()}` : String.fromCharCode(b);
  return Buffer.concat([chunk.subarray(0, start), Buffer.from(escaped, 'latin1'), chunk.subarray(end)]);
}

/**
 * Node's HTTP server lets go of a connection whose request failed to parse: its parser is freed (reading goes back
 * to the socket) and its listeners are removed. They are found by name (Node binds them per connection); if one is
 * missing, as a different Node could make it, nothing is changed and the request gets its 400 as before.
 */
function detachFromHTTP(socket: Duplex): boolean {
  const names: Record<string, string> = {
    data: 'bound socketOnData',
    end: 'bound socketOnEnd',
    close: 'bound socketOnClose',
    drain: 'bound socketOnDrain',
    timeout: 'socketOnTimeout',
    resume: 'onSocketResume',
    pause: 'onSocketPause',
  };
  const found = Object.entries(names).map(([event, name]) => [event, socket.listeners(event).find((f) => f.name === name)] as const);
  if (found.some(([, f]) => !f)) return false;
  const onClose = found.find(([e]) => e === 'close')![1]! as () => void;
  onClose(); // frees the parser (it stops consuming the socket) and aborts nothing: no request came through
  for (const [event, f] of found) socket.removeListener(event, f as (...a: unknown[]) => void);
  return true;
}

/** A stream that gives the HTTP server `first`, then what the socket reads, and writes to the socket. */
function relay(socket: Duplex, first: Buffer): Duplex {
  const s = socket as net.Socket;
  const d = new Duplex({
    read() {
      s.resume();
    },
    write(chunk: Buffer, enc, cb) {
      s.write(chunk, enc, cb);
    },
    final(cb) {
      s.end(cb);
    },
    destroy(err, cb) {
      s.destroy(err ?? undefined);
      cb(err);
    },
  });
  const extra = d as Duplex & Partial<net.Socket>;
  // What handlers and Node's server use of a connection.
  for (const k of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort', 'encrypted', 'authorized'] as const) {
    Object.defineProperty(d, k, { get: () => (s as unknown as Record<string, unknown>)[k] });
  }
  extra.setTimeout = (ms: number, cb?: () => void) => {
    s.setTimeout(ms);
    if (cb) d.once('timeout', cb);
    return d as net.Socket;
  };
  extra.destroySoon = () => {
    d.end(() => d.destroy());
  };
  const tlsSocket = s as unknown as { getPeerCertificate?: (detailed?: boolean) => unknown };
  if (typeof tlsSocket.getPeerCertificate === 'function') {
    (d as unknown as { getPeerCertificate: unknown }).getPeerCertificate = tlsSocket.getPeerCertificate.bind(s);
  }
  // The first request line is held until it is whole, then given escaped.
  let pending: Buffer | undefined = first;
  const give = (c: Buffer): void => {
    if (pending) {
      pending = Buffer.concat([pending, c]);
      if (!pending.includes(0x0a) && pending.length < MAX_PENDING_LINE) return;
      c = escapeTarget(pending) ?? pending;
      pending = undefined;
    }
    if (!d.push(c)) s.pause();
  };
  give(Buffer.alloc(0));
  s.on('data', give);
  s.on('end', () => {
    if (pending) d.push(pending);
    d.push(null);
  });
  s.on('close', () => d.destroy());
  s.on('error', (e) => d.destroy(e));
  s.on('timeout', () => d.emit('timeout'));
  return d;
}
