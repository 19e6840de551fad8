/**
 * Our HTTP/2 server connection (server/embed/h2/connection.ts), against Node's HTTP/2 client (nghttp2, an
 * implementation written by others) and against raw frames for what a well-behaved client never sends: request and
 * answer bodies larger than every window, trailers, resets both ways, the stream limit, GOAWAY on drain, keep-alive
 * pings, and the connection and stream errors of RFC 9113.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { H2Connection, H2Stream, MAX_HELD_BYTES, PREFACE, requestHeaders, type H2Headers, type H2Options } from '../../server/embed/h2/connection';
import { encodeLiterals } from '../../server/embed/h2/hpack';

jest.setTimeout(30000);

interface Server {
  port: number;
  conns: H2Connection[];
  close(): Promise<void>;
}

/** A server whose streams go to `handler`. */
async function serve(handler: (s: H2Stream, h: H2Headers) => void, opts: H2Options = {}): Promise<Server> {
  const conns: H2Connection[] = [];
  const server = net.createServer((socket) => conns.push(new H2Connection(socket, handler, opts)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
}

/** Echoes the request body after the headers, then trailers with the body's length (as a gRPC call answers). */
function echo(s: H2Stream, h: H2Headers): void {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  s.on('end', () => {
    const body = Buffer.concat(parts);
    s.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'x-path': String(h[':path']) }, { waitForTrailers: true });
    s.once('wantTrailers', () => s.sendTrailers({ 'x-length': body.length, 'x-note': 'é' }));
    s.end(body);
  });
}

interface Answer {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

function request(client: http2.ClientHttp2Session, path: string, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const parts: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve({ headers, body: Buffer.concat(parts), trailers }));
    req.on('error', reject);
    req.end(body);
  });
}

function connect(port: number, settings?: http2.Settings): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`, { settings });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

describe('with Node HTTP/2 client', () => {
  let srv: Server;
  afterEach(() => srv?.close());

  test('requests and answers larger than every window, with trailers, many at once', async () => {
    srv = await serve(echo);
    // A small window for our answers: they go out as the client gives window back.
    const client = await connect(srv.port, { initialWindowSize: 1000 });
    const bodies = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(300_000, 7), Buffer.alloc(1_200_000, 9)];
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => request(client, `/p/${i}`, bodies[i % bodies.length])));
    answers.forEach((a, i) => {
      const sent = bodies[i % bodies.length];
      expect(a.headers[':status']).toBe(200);
      expect(a.headers['x-path']).toBe(`/p/${i}`);
      expect(a.body.equals(sent)).toBe(true);
      expect(a.trailers['x-length']).toBe(String(sent.length));
      expect(a.trailers['x-note']).toBe('é');
    });
    client.close();
  });

  test('a client that does not read: write() says wait, writableLength holds what flow control keeps back, drain once it reads', async () => {
    let stream: H2Stream | undefined;
    srv = await serve((s) => {
      stream = s;
      s.respond({ ':status': 200 });
    });
    const client = await connect(srv.port);
    const req = client.request({ ':method': 'POST', ':path': '/x' });
    req.pause();
    await waitFor(() => stream !== undefined);
    const chunk = Buffer.alloc(16384, 3);
    let writes = 0;
    while (stream!.write(chunk)) writes++;
    // The stream's 64 KiB window goes out; the rest waits in the stream.
    await waitFor(() => stream!.writableLength > 0 && stream!.sendWindow === 0);
    expect(stream!.writableLength).toBe((writes + 1) * chunk.length - 65535);
    const drained = new Promise((r) => stream!.once('drain', r));
    let got = 0;
    req.on('data', (c: Buffer) => (got += c.length));
    req.resume();
    await drained;
    stream!.end();
    await new Promise((r) => req.once('end', r));
    expect(got).toBe((writes + 1) * chunk.length);
    expect(stream!.writableEnded).toBe(true);
    client.close();
  });

  test('answerMessage: one gRPC message between headers and trailers, in one go or past a small window', async () => {
    srv = await serve((s, h) => {
      s.reader = {
        data: () => undefined,
        end: () => s.answerMessage({ ':status': 200, 'content-type': 'application/grpc' }, Buffer.alloc(Number(h['x-size']), 5), { 'grpc-status': 0 }),
      };
    });
    for (const window of [65535, 1000]) {
      const client = await connect(srv.port, { initialWindowSize: window });
      for (const size of [0, 10, 5000, 100_000]) {
        const a = await new Promise<Answer>((resolve, reject) => {
          const req = client.request({ ':method': 'POST', ':path': '/m', 'x-size': String(size) });
          const parts: Buffer[] = [];
          const out = { headers: {}, body: Buffer.alloc(0), trailers: {} } as Answer;
          req.on('response', (x) => (out.headers = x));
          req.on('trailers', (t) => (out.trailers = t));
          req.on('data', (c: Buffer) => parts.push(c));
          req.on('end', () => resolve({ ...out, body: Buffer.concat(parts) }));
          req.on('error', reject);
          req.end();
        });
        expect(a.headers['content-type']).toBe('application/grpc');
        expect(a.body.length).toBe(5 + size);
        expect(a.body.readUInt32BE(1)).toBe(size);
        expect(a.body.subarray(5).equals(Buffer.alloc(size, 5))).toBe(true);
        expect(a.trailers['grpc-status']).toBe('0');
      }
      client.close();
    }
  });

  test('bytes of unfinished gRPC messages past MAX_HELD_BYTES close the connection with ENHANCE_YOUR_CALM; whole messages never do', async () => {
    srv = await serve((s) => (s.reader = { data: () => undefined, end: () => s.respond({ ':status': 200 }, { endStream: true }) }));
    /** Writes `total` bytes in gRPC messages of `size` bytes (the last one left unfinished when size > total). */
    const send = async (size: number, total: number): Promise<number | undefined> => {
      const client = await connect(srv.port);
      const goaway = new Promise<number>((r) => client.once('goaway', (code) => r(code)));
      client.on('error', () => undefined);
      const req = client.request({ ':method': 'POST', ':path': '/x' });
      req.on('error', () => undefined);
      const chunk = Buffer.alloc(1 << 20);
      let sent = 0;
      let left = 0;
      while (sent < total && !req.destroyed) {
        let piece = chunk;
        if (left === 0) {
          piece = Buffer.alloc(1 << 20);
          piece[0] = 0;
          piece.writeUInt32BE(size, 1);
          left = size + 5;
        }
        const n = Math.min(piece.length, left);
        left -= n;
        sent += n;
        if (!req.write(piece.subarray(0, n))) await new Promise((r) => req.once('drain', r).once('close', r));
      }
      const code = await Promise.race([goaway, new Promise<undefined>((r) => { req.end(); req.once('close', () => r(undefined)); })]);
      client.destroy();
      return code;
    };
    // 80 MiB of 1 MiB messages on one stream: each one finished, nothing held.
    expect(await send((1 << 20) - 5, 80 << 20)).toBeUndefined();
    // One message said to be 2 GiB: past 64 MiB of it the connection goes.
    expect(await send(2 ** 31 - 1, MAX_HELD_BYTES + (4 << 20))).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  test('a client reset reaches the handler as close with its code; later streams still work', async () => {
    const closed: (number | undefined)[] = [];
    srv = await serve((s, h) => {
      if (h[':path'] === '/hang') {
        s.on('close', () => closed.push(s.rstCode));
        s.respond({ ':status': 200 });
        s.write(Buffer.from('partial'));
        return;
      }
      echo(s, h);
    });
    const client = await connect(srv.port);
    const req = client.request({ ':method': 'POST', ':path': '/hang' });
    await new Promise((r) => req.once('data', r));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => closed.length === 1);
    expect(closed[0]).toBe(http2.constants.NGHTTP2_CANCEL);
    const a = await request(client, '/after', Buffer.from('x'));
    expect(a.body.toString()).toBe('x');
    client.close();
  });

  test('an answer sent before the request ended resets the request with NO_ERROR', async () => {
    srv = await serve((s) => s.respond({ ':status': 200, 'grpc-status': 3 }, { endStream: true }));
    const client = await connect(srv.port);
    const req = client.request({ ':method': 'POST', ':path': '/x' });
    req.write(Buffer.alloc(10));
    const headers = await new Promise<http2.IncomingHttpHeaders>((r) => req.once('response', r));
    expect(headers['grpc-status']).toBe('3');
    await new Promise((r) => req.once('close', r));
    expect(req.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    client.close();
  });

  test('streams past the limit are refused; drain sends GOAWAY and closes once the open streams end', async () => {
    const open: H2Stream[] = [];
    srv = await serve((s) => void open.push(s), { maxConcurrentStreams: 2 });
    const client = await connect(srv.port);
    await waitFor(() => client.remoteSettings.maxConcurrentStreams === 2);
    const reqs = [0, 1].map(() => client.request({ ':method': 'POST', ':path': '/x' }, { endStream: true }));
    await waitFor(() => open.length === 2);
    const goaway = new Promise<number>((r) => client.once('goaway', (code) => r(code)));
    srv.conns[0].drain(10_000);
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    for (const s of open) {
      s.respond({ ':status': 200 });
      s.end(Buffer.from('done'));
    }
    const bodies = await Promise.all(reqs.map((r) => new Promise<string>((res) => {
      let b = '';
      r.on('data', (c: Buffer) => (b += c.toString()));
      r.on('end', () => res(b));
    })));
    expect(bodies).toEqual(['done', 'done']);
    await new Promise((r) => client.once('close', r));
  });

  test('a paused stream holds its data: the client stops at the stream window, and gets window back once it is read', async () => {
    let stream: H2Stream | undefined;
    srv = await serve((s) => {
      stream = s;
      s.pause();
    });
    const client = await connect(srv.port);
    const req = client.request({ ':method': 'POST', ':path': '/x' });
    const body = Buffer.alloc(200_000, 1);
    req.end(body);
    // Nothing is read: the client sends the stream's 64 KiB window, no more, and no flow-control error follows.
    await waitFor(() => stream !== undefined && stream.recvWindow === 0);
    expect(stream!.closed).toBe(false);
    const got: Buffer[] = [];
    stream!.on('data', (c: Buffer) => got.push(c));
    const ended = new Promise((r) => stream!.on('end', r));
    stream!.resume();
    await ended;
    expect(Buffer.concat(got).equals(body)).toBe(true);
    client.destroy();
  });
});

describe('with raw frames', () => {
  let srv: Server;
  afterEach(() => srv?.close());

  const frame = (type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    return Buffer.concat([h, payload]);
  };
  const headersFrame = (id: number, fields: [string, string][], flags = 0x5): Buffer => frame(1, flags, id, encodeLiterals(fields));
  const GOOD: [string, string][] = [[':method', 'POST'], [':scheme', 'http'], [':path', '/x'], [':authority', 'http://127.0.0.1:2379']];

  /** Sends bytes after the preface and an empty SETTINGS; collects the frames the server sends until it closes or `until` holds. */
  async function exchange(port: number, bytes: Buffer[], until: (frames: Frame[]) => boolean): Promise<{ frames: Frame[]; closed: boolean }> {
    const sock = net.connect(port, '127.0.0.1');
    const frames: Frame[] = [];
    let buf = Buffer.alloc(0);
    let closed = false;
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        frames.push({ type: buf[3], flags: buf[4], id: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) });
        buf = buf.subarray(9 + len);
      }
    });
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    sock.write(Buffer.concat([PREFACE, frame(4, 0, 0), ...bytes]));
    await waitFor(() => closed || until(frames));
    sock.destroy();
    return { frames, closed };
  }
  const goawayCode = (fs: Frame[]): number | undefined => {
    const g = fs.find((f) => f.type === 7);
    return g ? g.payload.readUInt32BE(4) : undefined;
  };
  const rst = (fs: Frame[], id: number): number | undefined => {
    const r = fs.find((f) => f.type === 3 && f.id === id);
    return r ? r.payload.readUInt32BE(0) : undefined;
  };

  test('a URL as :authority is taken (as etcd takes a Go client\'s), PING is answered, SETTINGS acknowledged', async () => {
    const seen: H2Headers[] = [];
    srv = await serve((s, h) => {
      seen.push(h);
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const ping = Buffer.from('12345678');
    const { frames } = await exchange(srv.port, [headersFrame(1, GOOD), frame(6, 0, 0, ping)], (fs) => fs.some((f) => f.type === 6) && fs.some((f) => f.type === 1));
    expect(seen[0][':authority']).toBe('http://127.0.0.1:2379');
    expect(frames.find((f) => f.type === 6)).toMatchObject({ flags: 1, payload: ping });
    expect(frames.some((f) => f.type === 4 && f.flags === 1)).toBe(true);
  });

  test.each<[string, (id: number) => Buffer[], number]>([
    ['DATA on a stream never opened', () => [frame(0, 0, 3, Buffer.from('x'))], 1],
    ['HEADERS on an even stream', () => [headersFrame(2, GOOD)], 1],
    ['a frame larger than 16 KiB', () => [frame(0, 0, 1, Buffer.alloc(16385))], 6],
    ['a PING of 7 bytes', () => [frame(6, 0, 0, Buffer.alloc(7))], 6],
    ['a WINDOW_UPDATE of 0 on the connection', () => [frame(8, 0, 0, Buffer.alloc(4))], 1],
    ['a window past 2^31-1', () => [frame(8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))], 3],
    ['a PUSH_PROMISE', () => [frame(5, 4, 1, Buffer.alloc(4))], 1],
    ['a header block that HPACK cannot read', () => [frame(1, 5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))], 9],
    ['another frame inside a header block', () => [headersFrame(1, GOOD, 0x1), frame(6, 0, 0, Buffer.alloc(8))], 1],
    ['a stream id used again', () => [headersFrame(3, GOOD), headersFrame(1, GOOD)], 5],
  ])('%s: GOAWAY with the right code, connection closed', async (_name, bytes, code) => {
    srv = await serve((s) => s.respond({ ':status': 200 }, { endStream: true }));
    const { frames, closed } = await exchange(srv.port, bytes(1), () => false);
    expect(closed).toBe(true);
    expect(goawayCode(frames)).toBe(code);
  });

  test.each<[string, [string, string][]]>([
    ['an upper-case name', [...GOOD, ['X-Up', '1']]],
    ['a pseudo-header after a regular one', [[':method', 'POST'], ['a', 'b'], [':scheme', 'http'], [':path', '/x']]],
    ['no :path', [[':method', 'POST'], [':scheme', 'http']]],
    ['a connection header', [...GOOD, ['connection', 'keep-alive']]],
    ['te other than trailers', [...GOOD, ['te', 'gzip']]],
    ['a LF in a value', [...GOOD, ['x', 'a\nb']]],
  ])('a malformed request (%s) is reset with PROTOCOL_ERROR; the connection goes on', async (_name, fields) => {
    const seen: string[] = [];
    srv = await serve((s, h) => {
      seen.push(String(h[':path']));
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const { frames } = await exchange(srv.port, [headersFrame(1, fields), headersFrame(3, GOOD)], (fs) => fs.some((f) => f.type === 1 && f.id === 3));
    expect(rst(frames, 1)).toBe(1);
    expect(seen).toEqual(['/x']);
  });

  test('a handler that throws ends its connection with GOAWAY INTERNAL_ERROR, not the process', async () => {
    const told: string[] = [];
    srv = await serve(() => {
      throw new Error('a bug');
    }, { onError: (err) => told.push(err.message) });
    const { frames, closed } = await exchange(srv.port, [headersFrame(1, GOOD)], () => false);
    expect(closed).toBe(true);
    expect(goawayCode(frames)).toBe(2);
    expect(told).toEqual(['a bug']);
  });

  test('DATA past a stream\'s window resets that stream with FLOW_CONTROL_ERROR', async () => {
    srv = await serve((s) => s.pause());
    const chunks = Array.from({ length: 5 }, () => frame(0, 0, 1, Buffer.alloc(16384)));
    const { frames } = await exchange(srv.port, [headersFrame(1, GOOD, 0x4), ...chunks], (fs) => rst(fs, 1) !== undefined);
    expect(rst(frames, 1)).toBe(3);
  });

  test('keep-alive: a PING every interval; a client that does not answer is cut after the timeout', async () => {
    srv = await serve(() => undefined, { keepaliveTimeMs: 100, keepaliveTimeoutMs: 200 });
    const { frames, closed } = await exchange(srv.port, [], () => false);
    expect(closed).toBe(true);
    expect(frames.some((f) => f.type === 6 && f.flags === 0)).toBe(true);
  });
});

test('requestHeaders joins repeated headers and reads octets as Node does and keeps the first of a single-value one', () => {
  const h = requestHeaders([[':method', 'POST'], [':scheme', 'http'], [':path', '/x'], ['x-a', '1'], ['x-a', '2'], ['content-type', 'a'], ['content-type', 'b'], ['x-u', '\xe9']]);
  // Octets as latin1 characters, as Node's HTTP/2 gives them.
  expect(h).toMatchObject({ 'x-a': '1, 2', 'content-type': 'a', 'x-u': 'é' });
});

test('requestHeaders: names that are members of ordinary objects are headers like any other', () => {
  const base: [string, string][] = [[':method', 'POST'], [':scheme', 'http'], [':path', '/x']];
  const h = requestHeaders([...base, ['__proto__', 'p'], ['constructor', 'c'], ['tostring', 't']])!;
  expect(Object.keys(h)).toEqual([':method', ':scheme', ':path', '__proto__', 'constructor', 'tostring']);
  expect(h['__proto__']).toBe('p');
  expect(h['constructor']).toBe('c');
  // Nothing inherited: a header not sent is undefined, whatever its name.
  const plain = requestHeaders(base)!;
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) expect(plain[name]).toBeUndefined();
  const seen: string[] = [];
  for (const k in plain) seen.push(k);
  expect(seen).toEqual([':method', ':scheme', ':path']);
});

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
