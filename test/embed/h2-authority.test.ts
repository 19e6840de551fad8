/**
 * A gRPC client that sends a URL as its HTTP/2 :authority (Go's clientv3 does for every Maintenance call given
 * `--endpoints=http://host:port`) is served, not reset with PROTOCOL_ERROR: the HPACK reader against Python's hpack
 * (Huffman, dynamic table), the frame rewriter byte by byte, and real clients against a real member.
 */
import { execFile } from 'node:child_process';
import * as http2 from 'node:http2';
import { promisify } from 'node:util';
import { encodeLiterals, HpackDecoder, type Header } from '../../server/embed/h2/hpack';
import { firstLook, fixAuthority, InboundRewriter, validAuthority } from '../../server/embed/h2/authority';
import { PutRequest, PutResponse, RangeRequest, RangeResponse, SnapshotRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import type * as net from 'node:net';
import { request } from '../support/http';
import { TestCluster } from '../support/cluster';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

/** Python's hpack (Debian's python3-hpack) as the independent encoder and decoder. */
async function python(script: string, input: unknown): Promise<any> {
  const { stdout } = await run(PYTHON, ['-c', script], { timeout: 20_000, encoding: 'utf8', maxBuffer: 1 << 20 }).catch((e) => {
    throw new Error(`python: ${e.stderr ?? e}`);
  }) as { stdout: string };
  void input;
  return JSON.parse(stdout);
}

const HEADER_LISTS: Header[][] = [
  [[':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.Maintenance/Status'], [':authority', 'http://127.0.0.1:2379'], ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.26.0'], ['te', 'trailers']],
  [[':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.KV/Range'], [':authority', 'http://127.0.0.1:2379'], ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.26.0'], ['te', 'trailers'], ['grpc-timeout', '4999m']],
  [[':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.KV/Range'], [':authority', 'http://127.0.0.1:2379'], ['x-long', 'v'.repeat(3000)], ['x-bytes', '\u00e9\u00ff\u0001~']],
];

/** Python encodes the lists in order with one encoder (Huffman on, dynamic table shared): one block each, in hex. */
async function pythonBlocks(lists: Header[][]): Promise<Buffer[]> {
  const script = `
import json, hpack
lists = ${JSON.stringify(lists)}
e = hpack.Encoder()
print(json.dumps([e.encode([(n.encode('latin1'), v.encode('latin1')) for n, v in l], huffman=True).hex() for l in lists]))
`;
  return ((await python(script, null)) as string[]).map((h) => Buffer.from(h, 'hex'));
}

describe('HPACK', () => {
  test("decodes Python's blocks (Huffman, indexing, the table shared across blocks) as they were written", async () => {
    const blocks = await pythonBlocks(HEADER_LISTS);
    const d = new HpackDecoder();
    expect(blocks.map((b) => d.decode(b))).toEqual(HEADER_LISTS);
    // The later blocks refer to the table: a decoder that did not see the first one cannot read them alike.
    expect(() => new HpackDecoder().decode(blocks[1])).toThrow(/out of the table/);
  });

  test('literals written here are read by Python as they were, by a decoder that saw nothing before', async () => {
    const blocks = HEADER_LISTS.map((l) => encodeLiterals(l).toString('hex'));
    const script = `
import json, hpack
out = []
for h in ${JSON.stringify(blocks)}:
    out.append([[n.decode('latin1'), v.decode('latin1')] for n, v in hpack.Decoder().decode(bytes.fromhex(h), raw=True)])
print(json.dumps(out))
`;
    expect(await python(script, null)).toEqual(HEADER_LISTS);
  });

  test('refuses broken blocks with an error, never a wrong header', () => {
    const d = () => new HpackDecoder();
    expect(() => d().decode(Buffer.from([0x80]))).toThrow(/index 0/);
    expect(() => d().decode(Buffer.from([0xff, 0x80]))).toThrow(/truncated|out of the table/);
    expect(() => d().decode(Buffer.from([0x00, 0x05, 0x61]))).toThrow(/truncated string/);
    expect(() => d().decode(Buffer.from([0x82, 0x3f, 0xe1, 0x1f]))).toThrow(/table size update after/);
  });
});

describe('the authority', () => {
  test.each([
    ['127.0.0.1:2379', '127.0.0.1:2379'],
    ['[::1]:2379', '[::1]:2379'],
    ['http://127.0.0.1:2379', '127.0.0.1:2379'],
    ['https://etcd.example.com:2379/', 'etcd.example.com:2379'],
    ['unix://localhost:1234', 'localhost:1234'],
    ['unix:///var/run/etcd.sock', 'localhost'],
    ['a b', 'localhost'],
  ])('%s is served as %s', (given, served) => {
    expect(fixAuthority(given)).toBe(served);
    expect(validAuthority(fixAuthority(given))).toBe(true);
  });
});

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** The frames of a client-to-server byte stream after the preface. */
function parseFrames(b: Buffer): { type: number; flags: number; stream: number; payload: Buffer }[] {
  const out = [];
  for (let p = 24; p < b.length; ) {
    const len = b.readUIntBE(p, 3);
    out.push({ type: b[p + 3], flags: b[p + 4], stream: b.readUInt32BE(p + 5), payload: b.subarray(p + 9, p + 9 + len) });
    p += 9 + len;
  }
  return out;
}

test('a first request with a body past the look-ahead limit still goes natively when its authority is fine', () => {
  // As Go's clientv3 sends a put of 64 KiB: SETTINGS, the ACK of ours, HEADERS, then DATA up to the stream's window,
  // all before the server's session has a say.
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const first = (authority: string) =>
    Buffer.concat([
      preface,
      frame(4, 0, 0, Buffer.alloc(0)),
      frame(4, 1, 0, Buffer.alloc(0)),
      frame(1, 4, 1, encodeLiterals([[':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.KV/Put'], [':authority', authority], ['content-type', 'application/grpc']])),
      ...Array.from({ length: 5 }, () => frame(0, 0, 1, Buffer.alloc(16384))),
    ]);
  expect(first('127.0.0.1:2379').length).toBeGreaterThan(64 * 1024);
  expect(firstLook(first('127.0.0.1:2379'))).toMatchObject({ wait: false, native: true });
  expect(firstLook(first('http://127.0.0.1:2379'))).toMatchObject({ wait: false, native: false });
  // Still undecided past the limit (no ACK of ours yet): rewritten, as before.
  const noAck = Buffer.concat([preface, frame(4, 0, 0, Buffer.alloc(0)), ...Array.from({ length: 5 }, () => frame(8, 0, 0, Buffer.alloc(16384)))]);
  expect(firstLook(noAck)).toEqual({ wait: false, native: false });
});

test('the rewriter, fed one byte at a time: the ACK of our SETTINGS dropped, blocks rewritten, all else untouched', async () => {
  const [b1, b2] = await pythonBlocks(HEADER_LISTS.slice(0, 2));
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const settings = frame(4, 0, 0, Buffer.from([0, 4, 0, 0, 0xff, 0xff]));
  const data = frame(0, 1, 1, Buffer.from('\0\0\0\0\x03abc', 'latin1'));
  // Block 1: padded, with priority, split over a CONTINUATION; block 2 in one HEADERS frame on stream 3.
  const pad = 3;
  const head1 = Buffer.concat([Buffer.from([pad]), Buffer.from([0, 0, 0, 0, 15]), b1.subarray(0, 10), Buffer.alloc(pad)]);
  const input = Buffer.concat([
    preface,
    settings,
    frame(8, 0, 0, Buffer.from([0, 1, 0, 0])),
    frame(4, 1, 0, Buffer.alloc(0)), // the ACK of our early SETTINGS
    frame(1, 0x08 | 0x20, 1, head1),
    frame(9, 0x04, 1, b1.subarray(10)),
    data,
    frame(4, 1, 0, Buffer.alloc(0)), // a later ACK (of the session's own SETTINGS) stays
    frame(1, 0x04 | 0x01, 3, b2),
  ]);
  const rw = new InboundRewriter(true);
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i++) out.push(...rw.push(input.subarray(i, i + 1)));
  const bytes = Buffer.concat(out);
  expect(bytes.subarray(0, 24)).toEqual(preface);
  const fs = parseFrames(bytes);
  expect(fs.map((f) => [f.type, f.flags, f.stream])).toEqual([
    [4, 0, 0],
    [8, 0, 0],
    [1, 0x20 | 0x04, 1],
    [0, 1, 1],
    [4, 1, 0],
    [1, 0x04 | 0x01, 3],
  ]);
  expect(fs[0].payload).toEqual(settings.subarray(9));
  expect(fs[3].payload).toEqual(data.subarray(9));
  expect(fs[2].payload.subarray(0, 5)).toEqual(Buffer.from([0, 0, 0, 0, 15]));
  const fresh = new HpackDecoder();
  const fixed = (l: Header[]) => l.map(([n, v]): Header => [n, n === ':authority' ? '127.0.0.1:2379' : v]);
  expect(fresh.decode(fs[2].payload.subarray(5))).toEqual(fixed(HEADER_LISTS[0]));
  expect(fresh.decode(fs[5].payload)).toEqual(fixed(HEADER_LISTS[1]));
});

describe('against a member', () => {
  let c: TestCluster | undefined;
  afterAll(async () => {
    await c?.stop();
  });

  const grpcFrame = (msg: Uint8Array) => {
    const b = Buffer.alloc(5 + msg.length);
    b.writeUInt32BE(msg.length, 1);
    Buffer.from(msg).copy(b, 5);
    return b;
  };

  /** One unary call over an HTTP/2 session, with the headers as given: the status, grpc-status and body. */
  function call(s: http2.ClientHttp2Session, authority: string, path: string, body: Uint8Array): Promise<{ grpcStatus?: string; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = s.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      req.on('response', (h) => (grpcStatus = h['grpc-status'] as string | undefined));
      req.on('trailers', (t) => (grpcStatus = t['grpc-status'] as string));
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => resolve({ grpcStatus, body: Buffer.concat(chunks) }));
      req.on('error', reject);
      req.end(grpcFrame(body));
    });
  }

  /** A session for one call, closed once the call is answered. */
  const sessions: http2.ClientHttp2Session[] = [];
  const http2Once = (url: string): http2.ClientHttp2Session => {
    const s = http2.connect(url);
    sessions.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
  });

  test('calls with a URL for authority (indexed by the client after the first) are answered, and so are plain ones', async () => {
    c = await TestCluster.start(1);
    const m = c.members[0];
    const hostPort = new URL(m.clientURL).host;
    for (const authority of [m.clientURL, hostPort]) {
      const s = http2.connect(m.clientURL);
      try {
        const put = await call(s, authority, '/etcdserverpb.KV/Put', PutRequest.encode(PutRequest.fromPartial({ key: Buffer.from('k'), value: Buffer.from(authority) })).finish());
        expect(put.grpcStatus).toBe('0');
        expect(PutResponse.decode(put.body.subarray(5)).header?.revision).toBeGreaterThan(1n);
        for (let i = 0; i < 3; i++) {
          const r = await call(s, authority, '/etcdserverpb.KV/Range', RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish());
          expect(r.grpcStatus).toBe('0');
          expect(Buffer.from(RangeResponse.decode(r.body.subarray(5)).kvs[0].value).toString()).toBe(authority);
        }
      } finally {
        s.close();
      }
    }
  });

  test('a client that connects well ahead of its first call is served as well', async () => {
    const m = c!.members[0];
    const s = http2.connect(m.clientURL);
    try {
      await new Promise<void>((resolve) => s.once('remoteSettings', () => resolve()));
      // Longer than the first look waits for a first request.
      await new Promise((r) => setTimeout(r, 600));
      const r = await call(s, new URL(m.clientURL).host, '/etcdserverpb.KV/Range', RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish());
      expect(r.grpcStatus).toBe('0');
    } finally {
      s.close();
    }
  });

  test('a client that resets its connection while a snapshot streams to it (through the rewriter) leaves the member serving', async () => {
    const m = c!.members[0];
    const value = Buffer.alloc(64 * 1024, 'v');
    for (let i = 0; i < 32; i++) await call(http2Once(m.clientURL), m.clientURL, '/etcdserverpb.KV/Put', PutRequest.encode(PutRequest.fromPartial({ key: Buffer.from(`big${i}`), value })).finish());
    for (let round = 0; round < 10; round++) {
      const s = http2.connect(m.clientURL);
      await new Promise<void>((resolve) => {
        const req = s.request({ ':method': 'POST', ':path': '/etcdserverpb.Maintenance/Snapshot', ':authority': m.clientURL, 'content-type': 'application/grpc', te: 'trailers' });
        req.on('error', () => resolve());
        // The first bytes in: the server is writing the rest; the client's socket is reset under it.
        req.once('data', () => {
          (s.socket as net.Socket & { resetAndDestroy(): void }).resetAndDestroy();
          resolve();
        });
        req.end(grpcFrame(SnapshotRequest.encode(SnapshotRequest.fromPartial({})).finish()));
      });
      s.destroy();
    }
    const health = await request(m.clientURL, 'GET', '/health');
    expect([health.status, health.body]).toEqual([200, '{"health":"true"}']);
    expect(m.proc!.output()).not.toContain('ERR_INTERNAL_ASSERTION');
  });

  test("Python's gRPC (C core) with the URL as its default authority puts and gets", async () => {
    const m = c!.members[0];
    const port = new URL(m.clientURL).port;
    const script = `
import etcd3
c = etcd3.client(port=${port}, grpc_options=[('grpc.default_authority', 'http://127.0.0.1:${port}')])
c.put('py', 'thon')
print(c.get('py')[0].decode())
`;
    const { stdout } = await run(PYTHON, ['-c', script], { timeout: 20_000 });
    expect(stdout).toBe('thon\n');
  });
});
