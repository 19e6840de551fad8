/**
 * How a snapshot travels between members (POST /raft/snapshot), streamed both ways:
 *
 *   body := frame(the MsgSnap with empty snapshot data) | the snapshot data, raw
 *   headers: X-Snapshot-Data-Length (bytes of data), X-Snapshot-SHA256 (hex digest of the data)
 *
 * The sender writes the message's own data buffer in chunks, waiting for the socket to drain (no encoded copy).
 * The receiver writes the data to a file in its snapshot directory as it arrives (never holding the body in memory),
 * checks length and digest, then loads the data once to hand the message to Raft; the file is removed after.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Message, MessageType } from '../raft';
import { FrameDecoder, encodeFrame } from './codec';

export const SNAPSHOT_CHUNK = 1024 * 1024;
/** The largest snapshot a member accepts. */
export const MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024 * 1024 - 1;
/** The message part in front of the data: small (metadata and membership only). */
const MAX_SNAPSHOT_HEADER = 1024 * 1024;
/** Received-data files are named so that a restart can sweep leftovers of an interrupted transfer. */
const PART_SUFFIX = '.snap.part';

export class SnapshotReceiveError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * The request headers and the body parts of a snapshot message: the small message frame, then the data itself.
 * The digest is computed a few MB at a time, letting the event loop run between them: a large snapshot must not
 * stall the leader's heartbeats.
 */
export async function snapshotRequest(m: Message): Promise<{ headers: Record<string, string>; head: Buffer; data: Uint8Array }> {
  if (!m.snapshot) throw new Error('not a snapshot message');
  const data = m.snapshot.data;
  const head = encodeFrame({ ...m, snapshot: { metadata: m.snapshot.metadata, data: new Uint8Array(0) } });
  const hash = createHash('sha256');
  for (let off = 0; off < data.byteLength; off += HASH_CHUNK) {
    hash.update(data.subarray(off, off + HASH_CHUNK));
    if (off + HASH_CHUNK < data.byteLength) await new Promise<void>((r) => setImmediate(r));
  }
  return {
    headers: {
      'Content-Length': String(head.length + data.byteLength),
      'X-Snapshot-Data-Length': String(data.byteLength),
      'X-Snapshot-SHA256': hash.digest('hex'),
    },
    head,
    data,
  };
}

const HASH_CHUNK = 4 * 1024 * 1024;

/** Writes head then data to `out` in chunks, each after the previous drained; calls `onChunk` with sizes sent. */
export function writeSnapshotBody(out: http.ClientRequest, head: Buffer, data: Uint8Array, onChunk: (bytes: number) => void): void {
  onChunk(head.length);
  out.write(head);
  let off = 0;
  const writeMore = (): void => {
    while (off < data.byteLength) {
      const chunk = data.subarray(off, off + SNAPSHOT_CHUNK);
      off += chunk.byteLength;
      onChunk(chunk.byteLength);
      if (!out.write(chunk)) {
        out.once('drain', writeMore);
        return;
      }
    }
    out.end();
  };
  writeMore();
}

/** Removes data files left by transfers that a crash interrupted. */
export function sweepPartialSnapshots(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.endsWith(PART_SUFFIX)) fs.rmSync(path.join(dir, n), { force: true });
}

/**
 * Receives a snapshot request body from `from`: the data streams to a file in `dir`, then is loaded once. Resolves
 * with the whole message; rejects with a SnapshotReceiveError carrying the HTTP status to answer.
 */
export function receiveSnapshot(req: http.IncomingMessage, from: string, dir: string, onBytes: (n: number) => void): Promise<Message> {
  const declared = Number(req.headers['x-snapshot-data-length']);
  const digest = String(req.headers['x-snapshot-sha256'] ?? '');
  return new Promise<Message>((resolve, reject) => {
    const file = path.join(dir, `${from}-${randomBytes(6).toString('hex')}${PART_SUFFIX}`);
    let out: fs.WriteStream | undefined;
    let settled = false;
    const fail = (err: SnapshotReceiveError) => {
      if (settled) return;
      settled = true;
      req.removeAllListeners('data');
      req.resume();
      // The answer goes out once the partial file is gone, so nothing is left behind a refused transfer.
      if (!out) return reject(err);
      const remove = () => fs.rm(file, { force: true }, () => reject(err));
      if (out.closed) return remove();
      out.once('close', remove); // after the file is really open and closed again, or it could reappear
      out.destroy();
    };
    if (!Number.isSafeInteger(declared) || declared < 0 || !/^[0-9a-f]{64}$/.test(digest)) {
      fail(new SnapshotReceiveError('missing or malformed X-Snapshot-Data-Length / X-Snapshot-SHA256', 400));
      return;
    }
    if (declared > MAX_SNAPSHOT_BYTES) {
      fail(new SnapshotReceiveError('snapshot too large', 413));
      return;
    }
    fs.mkdirSync(dir, { recursive: true });
    let head: Buffer = Buffer.alloc(0);
    let message: Message | undefined;
    let received = 0;
    const hash = createHash('sha256');
    const takeData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > declared) {
        fail(new SnapshotReceiveError('more snapshot data than X-Snapshot-Data-Length', 400));
        return;
      }
      hash.update(chunk);
      if (!out!.write(chunk)) {
        req.pause();
        out!.once('drain', () => req.resume());
      }
    };
    req.on('data', (chunk: Buffer) => {
      onBytes(chunk.length);
      if (message) return takeData(chunk);
      // Still reading the message frame ([u32 BE length][message]); what follows it is data.
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const total = head.length >= 4 ? 4 + head.readUInt32BE(0) : undefined;
      if (total !== undefined && total > MAX_SNAPSHOT_HEADER) {
        fail(new SnapshotReceiveError('snapshot message header too large', 400));
        return;
      }
      if (total === undefined || head.length < total) return;
      let msgs: Message[];
      try {
        msgs = new FrameDecoder(MAX_SNAPSHOT_HEADER).push(head.subarray(0, total));
      } catch (err) {
        fail(new SnapshotReceiveError((err as Error).message, 400));
        return;
      }
      const m = msgs[0];
      if (msgs.length !== 1 || m.type !== MessageType.Snap || !m.snapshot || m.from !== from) {
        fail(new SnapshotReceiveError('expected one MsgSnap', 400));
        return;
      }
      message = m;
      out = fs.createWriteStream(file, { mode: 0o600 });
      out.on('error', (err) => fail(new SnapshotReceiveError(`cannot store the incoming snapshot: ${err.message}`, 500)));
      const rest = head.subarray(total);
      head = Buffer.alloc(0);
      if (rest.length > 0) takeData(rest);
    });
    req.on('aborted', () => fail(new SnapshotReceiveError('the sender went away', 400)));
    req.on('end', () => {
      if (!message || !out) {
        fail(new SnapshotReceiveError('expected one MsgSnap', 400));
        return;
      }
      if (received !== declared) {
        fail(new SnapshotReceiveError(`snapshot data is ${received} bytes, X-Snapshot-Data-Length says ${declared}`, 400));
        return;
      }
      if (hash.digest('hex') !== digest) {
        fail(new SnapshotReceiveError('snapshot data does not match X-Snapshot-SHA256', 400));
        return;
      }
      const m = message;
      settled = true;
      out.end(() => {
        fs.readFile(file, (err, data) => {
          fs.rm(file, { force: true }, () => {
            if (err) reject(new SnapshotReceiveError(`cannot read the incoming snapshot back: ${err.message}`, 500));
            else resolve({ ...m, snapshot: { metadata: m.snapshot!.metadata, data } });
          });
        });
      });
    });
  });
}
