/**
 * Direct reads of accepted TCP sockets (server/embed/direct-read.ts): on this Node they are taken (the plain HTTP/1.1
 * path depends on it for its speed), every byte arrives once and in order, a reader that says stop gets nothing more
 * until it resumes, the end of the stream still arrives, and a socket given back to ordinary reads gives its reads
 * as Buffers of their own.
 */
import * as net from 'node:net';
import { endDirect, isSharedReadBuffer, readDirect, resumeDirect } from '../../server/embed/direct-read';
import { until } from '../support/event-loop';

jest.setTimeout(30000);

/** A server whose accepted sockets are given to `onAccept`; a client connected to it; both closed by `close`. */
async function pair(onAccept: (s: net.Socket) => void): Promise<{ client: net.Socket; close: () => Promise<void> }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    onAccept(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  await new Promise<void>((r) => client.once('connect', r));
  return {
    client,
    close: async () => {
      client.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}


/** Bytes 0..n-1 of a pattern that shows any byte lost, doubled or moved. */
const pattern = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
};

test('an accepted TCP socket is read directly: every byte once and in order, then its end', async () => {
  const got: Buffer[] = [];
  let taken: boolean | undefined;
  let ended = false;
  let shared = true;
  const p = await pair((s) => {
    taken = readDirect(s, (bytes) => {
      shared &&= isSharedReadBuffer(bytes);
      got.push(Buffer.from(bytes)); // valid only during the call: copied
      return true;
    });
    s.on('end', () => {
      ended = true;
      s.end();
    });
  });
  try {
    const sent = pattern(1 << 20); // more than the shared buffer: many reads
    p.client.end(sent);
    await until(() => ended);
    expect(taken).toBe(true);
    expect(shared).toBe(true);
    expect(Buffer.concat(got).equals(sent)).toBe(true);
  } finally {
    await p.close();
  }
});

test('a reader that says stop reads nothing more until resumed; nothing is lost', async () => {
  const got: Buffer[] = [];
  let server: net.Socket | undefined;
  let stopAfterFirst = true;
  const p = await pair((s) => {
    server = s;
    readDirect(s, (bytes) => {
      got.push(Buffer.from(bytes));
      if (stopAfterFirst) {
        stopAfterFirst = false;
        return false;
      }
      return true;
    });
  });
  try {
    p.client.write('first');
    await until(() => got.length === 1);
    // In the kernel's buffers of the server's socket once written (loopback delivers within the write).
    await new Promise<void>((r) => p.client.write('second', () => r()));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(got).toString()).toBe('first');
    resumeDirect(server!);
    await until(() => Buffer.concat(got).length === 'firstsecond'.length);
    expect(Buffer.concat(got).toString()).toBe('firstsecond');
  } finally {
    await p.close();
  }
});

test('given back to ordinary reads, a socket emits its data as Buffers of its own, and goes on if it was stopped', async () => {
  const direct: string[] = [];
  const chunks: Buffer[] = [];
  let server: net.Socket | undefined;
  const p = await pair((s) => {
    server = s;
    readDirect(s, (bytes) => {
      direct.push(bytes.toString());
      return false; // stopped: endDirect must start reading again
    });
  });
  try {
    p.client.write('direct');
    await until(() => direct.length === 1);
    endDirect(server!);
    server!.on('data', (c: Buffer) => chunks.push(c));
    const sent = pattern(300000);
    p.client.write(sent);
    await until(() => Buffer.concat(chunks).length >= sent.length);
    // Kept chunks are not views of the shared buffer: later reads did not change them.
    expect(chunks.some(isSharedReadBuffer)).toBe(false);
    expect(Buffer.concat(chunks).equals(sent)).toBe(true);
    expect(direct).toEqual(['direct']);
  } finally {
    await p.close();
  }
});

test('a socket with bytes already in its stream is left to ordinary reads', async () => {
  let taken: boolean | undefined;
  const p = await pair((s) => {
    s.pause();
    s.once('readable', () => {
      // The byte is in the stream's buffer: reading directly now would put later bytes before it.
      taken = readDirect(s, () => true);
    });
  });
  try {
    p.client.write('x');
    await until(() => taken !== undefined);
    expect(taken).toBe(false);
  } finally {
    await p.close();
  }
});
