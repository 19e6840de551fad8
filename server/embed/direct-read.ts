/**
 * Reads of a plain TCP socket straight into one buffer shared by all such sockets, each read given to a callback
 * while it is still there: what net.Socket's `onread` option does for the sockets a program opens itself, done for
 * the sockets a server accepts (Node offers the option only to the first).
 *
 * Why: an ordinary read allocates a 64 KiB zero-filled backing store, shrinks it to what was read, wraps it in a
 * Buffer and pushes it through the socket's stream ('data' event, the stream's own bookkeeping). For a bare Node
 * server answering a fixed text to `wrk` at one connection, that was 4-5 µs of its 30 µs of CPU a request (see the
 * README's notes on the client port).
 *
 * How: the option's two private fields of net.Socket (found once, by value, on a socket made with the option) are
 * set on the accepted socket, and its handle is told to read into the shared buffer, as net.Socket does for its own.
 * Node's `onStreamRead` then calls the callback instead of pushing a Buffer. End of stream and errors still go
 * through the socket's stream ('end', 'error', 'close' as before). Where any of this is not
 * there (another Node, a TLS socket, bytes already buffered in the stream), the socket is left to ordinary reads.
 *
 * The bytes given to the callback are valid only until it returns: the next read, of any socket, overwrites them.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

/** The bytes of one read; valid only during the call. false: read no more until resumeDirect(). */
export type DirectReader = (bytes: Buffer) => boolean;

interface OnreadFields {
  buffer: symbol;
  callback: symbol;
}

interface StreamHandle {
  reading?: boolean;
  readStart(): number;
  useUserBuffer?(buf: Uint8Array): void;
}

const fields = findOnreadFields();
const SHARED_BYTES = 64 * 1024;
let shared: Buffer | undefined;

/** The private fields net.Socket keeps its `onread` option in, or undefined on a Node without them. */
function findOnreadFields(): OnreadFields | undefined {
  try {
    const buffer = Buffer.alloc(1);
    const callback = (): void => undefined;
    // `onread` is in net.connect()'s options in the types; the constructor takes it the same way.
    const probe = new net.Socket({ onread: { buffer, callback } } as net.SocketConstructorOpts);
    const found: Partial<OnreadFields> = {};
    for (const s of Object.getOwnPropertySymbols(probe)) {
      const v = (probe as unknown as Record<symbol, unknown>)[s];
      if (v === buffer) found.buffer = s;
      else if (v === callback) found.callback = s;
    }
    probe.destroy();
    return found.buffer !== undefined && found.callback !== undefined ? (found as OnreadFields) : undefined;
  } catch {
    return undefined;
  }
}

function handleOf(socket: net.Socket): StreamHandle | undefined {
  return (socket as unknown as { _handle?: StreamHandle })._handle ?? undefined;
}

/**
 * Reads `socket` directly from now on, giving each read to `onBytes`. false (and nothing changed) when it cannot:
 * then the socket's reads are its stream's as before.
 */
export function readDirect(socket: net.Socket, onBytes: DirectReader): boolean {
  const handle = handleOf(socket);
  if (fields === undefined || handle === undefined || typeof handle.useUserBuffer !== 'function') return false;
  if (socket instanceof tls.TLSSocket || socket.destroyed || socket.readableLength > 0) return false;
  shared ??= Buffer.allocUnsafe(SHARED_BYTES);
  const buf = shared;
  const s = socket as unknown as Record<symbol, unknown>;
  s[fields.buffer] = buf;
  s[fields.callback] = (n: number): boolean => onBytes(buf.subarray(0, n));
  handle.useUserBuffer(buf);
  resumeDirect(socket);
  return true;
}

/** Reads again after onBytes returned false. */
export function resumeDirect(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (handle === undefined || handle.reading || socket.destroyed) return;
  handle.reading = true;
  handle.readStart();
}

/**
 * Back to ordinary reads: each read copied into a Buffer of its own and pushed to the socket's stream, for a new
 * owner (Node's HTTP server) that reads it as any socket. Reading goes on if it was stopped.
 */
export function endDirect(socket: net.Socket): void {
  if (fields === undefined) return;
  const s = socket as unknown as Record<symbol, unknown>;
  const buf = s[fields.buffer] as Buffer | null | undefined;
  if (!buf) return;
  s[fields.callback] = (n: number): boolean => socket.push(Buffer.from(buf.subarray(0, n)));
  resumeDirect(socket);
}

/** Whether `b` is a view of the shared read buffer (to be copied before it outlives the read). */
export function isSharedReadBuffer(b: Buffer): boolean {
  return shared !== undefined && b.buffer === shared.buffer;
}
