/**
 * The plain HTTP/1.1 path (server/embed/fast-http1.ts): which requests it reads itself, that its answers are byte for
 * byte those Node's HTTP server writes for the same requests, that a connection it cannot serve goes on under Node's
 * server with nothing lost, and that requests on one connection are served in order, as Debian's etcd serves them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { MAX_PLAIN_BODY, MAX_PLAIN_HEAD, PlainAnswer, PlainConnection, parsePlainRequest, serializeAnswer } from '../../server/embed/fast-http1';
import { issue, makeCA } from '../support/certs';
import { until } from '../support/event-loop';
import { RunningEtcd, freePort, spawnOurEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(60000);

const GET = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const FORM = 'Content-Type: application/x-www-form-urlencoded\r\n';
const PUT = (target: string, form: string, extra = ''): string =>
  `PUT ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORM}Content-Length: ${Buffer.byteLength(form)}\r\n${extra}\r\n${form}`;

describe('parsePlainRequest', () => {
  const kind = (text: string | Buffer): string => parsePlainRequest(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1')).kind;

  test.each<[string, string, string]>([
    ['a GET', GET('/v2/keys/a?recursive=true'), 'request'],
    ['a form PUT', PUT('/v2/keys/a', 'value=1'), 'request'],
    ['a DELETE with Connection: keep-alive', 'DELETE /v2/keys/a HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n', 'request'],
    ['a header block not yet ended', 'GET /v2/keys/a HTTP/1.1\r\nHost: h\r\n', 'incomplete'],
    ['a body not yet whole', `PUT /v2/keys/a HTTP/1.1\r\nHost: h\r\n${FORM}Content-Length: 10\r\n\r\nvalue=`, 'incomplete'],
    ['HTTP/1.0', 'GET /v2/keys/a HTTP/1.0\r\nHost: h\r\n\r\n', 'not-plain'],
    ['an unknown method', 'PATCH /v2/keys/a HTTP/1.1\r\nHost: h\r\n\r\n', 'not-plain'],
    ['HEAD', 'HEAD /v2/keys/a HTTP/1.1\r\nHost: h\r\n\r\n', 'not-plain'],
    ['an absolute-form target', GET('http://h/v2/keys/a'), 'not-plain'],
    ['a target with a raw UTF-8 byte', 'GET /v2/keys/\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n', 'not-plain'],
    ['no Host', 'GET /v2/keys/a HTTP/1.1\r\n\r\n', 'not-plain'],
    ['a chunked body', 'PUT /v2/keys/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'not-plain'],
    ['Expect: 100-continue', PUT('/v2/keys/a', 'value=1', 'Expect: 100-continue\r\n'), 'not-plain'],
    ['Connection: close', GET('/v2/keys/a', 'Connection: close\r\n'), 'not-plain'],
    ['Upgrade', GET('/v2/keys/a', 'Upgrade: h2c\r\nConnection: Upgrade\r\n'), 'not-plain'],
    ['a header given twice', GET('/v2/keys/a', 'Accept: a\r\naccept: b\r\n'), 'not-plain'],
    ['a folded header line', GET('/v2/keys/a', 'X-A: 1\r\n  2\r\n'), 'not-plain'],
    ['a header name with a space', GET('/v2/keys/a', 'X A: 1\r\n'), 'not-plain'],
    ['a control byte in a value', GET('/v2/keys/a', 'X-A: 1\x01\r\n'), 'not-plain'],
    ['a bare LF inside the head', 'GET /v2/keys/a HTTP/1.1\nHost: h\r\n\r\n', 'not-plain'],
    ['LF line ends, not yet ended', 'GET /v2/keys/a HTTP/1.1\nHost: h\n', 'not-plain'],
    ['LF line ends throughout', 'GET /v2/keys/a HTTP/1.1\nHost: h\n\n', 'not-plain'],
    ['a Content-Length that is not a number', `PUT /v2/keys/a HTTP/1.1\r\nHost: h\r\nContent-Length: 1e3\r\n\r\n`, 'not-plain'],
    ['a body over the plain limit', `PUT /v2/keys/a HTTP/1.1\r\nHost: h\r\nContent-Length: ${MAX_PLAIN_BODY + 1}\r\n\r\n`, 'not-plain'],
  ])('%s', (_name, text, expected) => {
    expect(kind(text)).toBe(expected);
  });

  test('a head longer than the plain limit is left to Node, ended or not', () => {
    expect(kind(`GET /v2/keys/a HTTP/1.1\r\nHost: h\r\nX-Long: ${'a'.repeat(MAX_PLAIN_HEAD)}\r\n`)).toBe('not-plain');
    expect(kind(`GET /v2/keys/a HTTP/1.1\r\nHost: h\r\nX-Long: ${'a'.repeat(MAX_PLAIN_HEAD)}\r\n\r\n`)).toBe('not-plain');
  });

  test('the request read: method, target, headers by lower-case name (values trimmed), where its body is', () => {
    const text = PUT('/v2/keys/a%20b?prevExist=false', 'value=x', 'X-Pad:   padded \t\r\n') + GET('/v2/keys/next');
    const p = parsePlainRequest(Buffer.from(text));
    if (p.kind !== 'request') throw new Error(p.kind);
    expect(p.method).toBe('PUT');
    expect(p.url).toBe('/v2/keys/a%20b?prevExist=false');
    expect(p.headers).toEqual({ host: '127.0.0.1', 'content-type': 'application/x-www-form-urlencoded', 'content-length': '7', 'x-pad': 'padded' });
    expect(text.slice(p.bodyStart, p.end)).toBe('value=x');
    expect(text.slice(p.end)).toBe(GET('/v2/keys/next'));
  });
});

/** The Date header, the one thing two answers written at different times may differ in. */
const undated = (s: string): string => s.replace(/\r\nDate: [^\r]*\r\n/g, '\r\nDate: D\r\n');

describe('serializeAnswer', () => {
  let server: http.Server;
  let port: number;
  const answers: PlainAnswer[] = [
    { status: 200, headers: { 'Content-Type': 'application/json', 'X-Etcd-Index': '4', 'Content-Length': '3' }, body: '{}\n' },
    { status: 201, headers: { 'Content-Type': 'application/json', 'Content-Length': '11' }, body: '{"a":"é"}\n' },
    { status: 412, headers: { 'Content-Type': 'application/json', 'Content-Length': '0' }, body: '' },
    { status: 405, headers: { Allow: 'HEAD,GET', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '19' }, body: 'Method Not Allowed\n' },
  ];
  const CORS = 'Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: accept\r\n';
  beforeAll(async () => {
    // Node's server as the client listener runs it: the CORS headers set first, then writeHead and end.
    server = http.createServer({ keepAliveTimeout: 30000 }, (req, res) => {
      const a = answers[Number(req.url!.slice(1))];
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Headers', 'accept');
      res.writeHead(a.status, a.headers);
      res.end(a.body);
    });
    server.keepAliveTimeout = 30000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test.each(answers.map((a, i) => [a.status, i]))('status %d: the bytes Node writes', async (_status, i) => {
    const c = await RawConn.open(port);
    const [got] = await c.exchange([GET(`/${i}`)]);
    c.close();
    expect(undated(serializeAnswer(CORS, answers[i], 30))).toBe(undated(got));
  });
});

describe('idle connections', () => {
  const KEEP_ALIVE = 30000;
  /** A plain connection per accepted socket, answering GET /slow only when `release` is called. */
  async function serve(): Promise<{ port: number; conns: PlainConnection[]; release: () => void; close: () => Promise<void> }> {
    const conns: PlainConnection[] = [];
    let releaseSlow: () => void = () => undefined;
    const answer: PlainAnswer = { status: 200, headers: { 'Content-Length': '3' }, body: 'ok\n' };
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      conns.push(
        new PlainConnection(socket, Buffer.alloc(0), {
          route: (r) => ({ before: '', answer: r.url === '/slow' ? new Promise((resolve) => (releaseSlow = () => resolve(answer))) : answer }),
          handOver: (s) => s.destroy(),
          keepAliveMs: KEEP_ALIVE,
          done: () => undefined,
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as net.AddressInfo).port,
      conns,
      release: () => releaseSlow(),
      close: async () => {
        for (const c of conns) c.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  test('a connection quiet for the keep-alive time is closed; one that was used since, or waits for its answer, is not', async () => {
    const srv = await serve();
    const [quiet, used, waiting] = await Promise.all([0, 1, 2].map(() => RawConn.open(srv.port)));
    try {
      await used.exchange([GET('/a')]);
      waiting.socket.write(GET('/slow'));
      await until(() => srv.conns.length === 3 && !srv.conns[2].idle);
      const [q, u, w] = [0, 1, 2].map((i) => srv.conns.find((c) => c.socket.remotePort === [quiet, used, waiting][i].socket.localPort)!);
      const t = 1_000_000;
      for (const c of [q, u, w]) c.closeIfIdle(t); // each was active since it opened: quiet from now on
      await used.exchange([GET('/b')]);
      for (const c of [q, u, w]) c.closeIfIdle(t + KEEP_ALIVE - 1);
      expect([q, u, w].map((c) => c.serving)).toEqual([true, true, true]);
      for (const c of [q, u, w]) c.closeIfIdle(t + KEEP_ALIVE);
      expect(await quiet.closedWithin(5000)).toBe(true);
      expect([u.serving, w.serving]).toEqual([true, true]);
      // The used one was found active at t + KEEP_ALIVE - 1: quiet since then.
      u.closeIfIdle(t + 2 * KEEP_ALIVE - 1);
      expect(await used.closedWithin(5000)).toBe(true);
      // The waiting one gets its answer, then is quiet.
      srv.release();
      expect(await waiting.read()).toContain('ok');
      w.closeIfIdle(t + 3 * KEEP_ALIVE);
      expect(w.serving).toBe(true);
      w.closeIfIdle(t + 4 * KEEP_ALIVE);
      expect(await waiting.closedWithin(5000)).toBe(true);
    } finally {
      for (const c of [quiet, used, waiting]) c.close();
      await srv.close();
    }
  });
});


/**
 * One connection, raw: requests written as given, answers read one by one (by Content-Length, as every answer here
 * has one).
 */
class RawConn {
  private buf = Buffer.alloc(0);
  private waiter?: () => void;
  private closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  /** A plain-text connection, or a TLS one with these options. */
  static open(port: number, tlsOptions?: tls.ConnectionOptions): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = tlsOptions
        ? tls.connect({ port, host: '127.0.0.1', ...tlsOptions }, () => resolve(new RawConn(s)))
        : net.connect(port, '127.0.0.1', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  /** Writes every request at once, then reads one answer for each. */
  async exchange(requests: string[]): Promise<string[]> {
    this.socket.write(requests.join(''));
    const out: string[] = [];
    for (let i = 0; i < requests.length; i++) out.push(await this.read());
    return out;
  }

  /** Whether the server has closed the connection (waiting up to `ms` for it). */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await this.wait(deadline - Date.now());
    return this.closed;
  }

  /** The next answer. */
  async read(): Promise<string> {
    const deadline = Date.now() + 15000;
    for (;;) {
      const head = this.buf.indexOf('\r\n\r\n');
      if (head >= 0) {
        const m = /\r\ncontent-length: *([0-9]+)/i.exec(this.buf.toString('latin1', 0, head));
        // Without a length, only a closing answer (Go's 400s) is read here: whole once the connection is closed.
        const end = m ? head + 4 + Number(m[1]) : this.closed ? this.buf.length : Infinity;
        if (this.buf.length >= end) {
          const a = this.buf.toString('utf8', 0, end);
          this.buf = this.buf.subarray(end);
          return a;
        }
      }
      if (this.closed) throw new Error(`connection closed with ${JSON.stringify(this.buf.toString())} unread`);
      if (Date.now() > deadline) throw new Error('no answer in 15 s');
      await this.wait(deadline - Date.now());
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(ms, 1));
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.waiter = done;
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

const portOf = (m: RunningEtcd): number => Number(new URL(m.clientURL).port);

/** Two single members, started (fresh data dirs) before a describe block's tests and stopped after them. */
function twoMembers(prefix: string, start: [(dir: string) => Promise<RunningEtcd>, (dir: string) => Promise<RunningEtcd>]): () => [RunningEtcd, RunningEtcd] {
  let dir: string;
  let members: [RunningEtcd, RunningEtcd] | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    members = await Promise.all([start[0](path.join(dir, 'a')), start[1](path.join(dir, 'b'))]);
  });
  afterAll(async () => {
    await Promise.all((members ?? []).map((m) => m.stop()));
    rmSync(dir, { recursive: true, force: true });
  });
  return () => members!;
}

describe('our member: the plain path and Node\'s server answer alike', () => {
  const members = twoMembers('fast-http1', [startOurEtcd, startOurEtcd]);

  /** `TE: trailers` means nothing to the keys API, and this path leaves such a request to Node's server. */
  const viaNode = (r: string): string => r.replace('\r\n', '\r\nTE: trailers\r\n');
  /** With the cluster ID, and a TTL's expiration time (its length too: Go trims a fraction's trailing zeros), made alike. */
  const sameIds = (s: string): string => {
    const out = undated(s).replace(/X-Etcd-Cluster-Id: [0-9a-f]+/g, 'X-Etcd-Cluster-Id: C');
    return out.includes('"expiration":"') ? out.replace(/"expiration":"[^"]*"/g, '"expiration":"E"').replace(/\r\nContent-Length: [0-9]+\r\n/, '\r\nContent-Length: N\r\n') : out;
  };

  test('the same requests, one at a time, get the same bytes from both members', async () => {
    const requests = [
      PUT('/v2/keys/a', 'value=1'),
      PUT('/v2/keys/a', 'value=2&prevValue=1'),
      PUT('/v2/keys/a', 'value=3&prevValue=nope'),
      GET('/v2/keys/a'),
      GET('/v2/keys/missing'),
      GET('/v2/keys/a?quorum=true'),
      PUT('/v2/keys/dir/x', 'value=%C3%A9'),
      PUT('/v2/keys/dir/y', 'value=y&ttl=100'),
      PUT('/v2/keys/dir/z', 'value=z&ttl=nan'),
      GET('/v2/keys/dir?recursive=true&sorted=true'),
      PUT('/v2/keys/dir/x', 'value=q&noValueOnSuccess=true'),
      `POST /v2/keys/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORM}Content-Length: 7\r\n\r\nvalue=q`,
      'DELETE /v2/keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      'DELETE /v2/keys/dir?dir=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      PUT('/v2/keys/%E2%82%AC', 'value=euro'),
      GET('/v2/keys/%E2%82%AC', 'Origin: http://example.com\r\n'),
      PUT('/v2/keys/nobody', 'value=x'.replace('value', 'val%zz')),
      'PUT /v2/keys/notform HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nvalue=1',
      GET('/v2/keys/bad%zz'), // the last: answered, then the connection closed
    ];
    const [a, b] = await Promise.all([RawConn.open(portOf(members()[0])), RawConn.open(portOf(members()[1]))]);
    try {
      // The witness that the plain path serves `a`: a read written with the write before it sees that write (Node's
      // server would run both at once). `b` gets the same two, one at a time, to keep the two histories alike.
      const [, seen] = await a.exchange([PUT('/v2/keys/w', 'value=w'), GET('/v2/keys/w')]);
      expect(seen).toContain('"value":"w"');
      for (const r of [PUT('/v2/keys/w', 'value=w'), GET('/v2/keys/w')]) await b.exchange([viaNode(r)]);
      for (const r of requests) {
        const [ours] = await a.exchange([r]);
        const [theirs] = await b.exchange([viaNode(r)]);
        expect({ r, answer: sameIds(ours) }).toEqual({ r, answer: sameIds(theirs) });
      }
    } finally {
      a.close();
      b.close();
    }
  });

  test('a connection goes on under Node\'s server from a request this path leaves to it, nothing lost or reordered', async () => {
    const c = await RawConn.open(portOf(members()[0]));
    try {
      const chunked = `PUT /v2/keys/handover HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORM}Transfer-Encoding: chunked\r\n\r\n9\r\nvalue=two\r\n0\r\n\r\n`;
      // One at a time, as clients send them: Node's server runs pipelined requests at once (only this path waits).
      const answers: string[] = [];
      for (const r of [PUT('/v2/keys/handover', 'value=one'), chunked, GET('/v2/keys/handover'), PUT('/v2/keys/handover', 'value=three')]) {
        answers.push(...(await c.exchange([r])));
      }
      expect(answers.map((a) => a.split(' ')[1])).toEqual(['201', '200', '200', '200']);
      expect(answers[0]).toContain('"value":"one"');
      expect(answers[1]).toContain('"value":"two"');
      expect(answers[2]).toContain('"value":"two"');
      expect(answers[3]).toContain('"prevNode":{"key":"/handover","value":"two"');
    } finally {
      c.close();
    }
  });

  test('requests split across reads, on connections read in turn, keep their own bytes', async () => {
    // Reads of all connections share one buffer (direct-read.ts): what a connection keeps of a read must be its own.
    const conns = await Promise.all([0, 1, 2].map(() => RawConn.open(portOf(members()[0]))));
    try {
      const puts = conns.map((_, i) => PUT(`/v2/keys/split${i}`, `value=${String(i).repeat(64)}`));
      const cut = (r: string): number => r.indexOf('\r\n\r\n') + 20; // inside the body
      for (let i = 0; i < conns.length; i++) await new Promise<void>((r) => conns[i].socket.write(puts[i].slice(0, cut(puts[i])), () => r()));
      for (let i = 0; i < conns.length; i++) conns[i].socket.write(puts[i].slice(cut(puts[i])));
      const answers = await Promise.all(conns.map((c) => c.read()));
      answers.forEach((a, i) => expect(a).toContain(`"value":"${String(i).repeat(64)}"`));
      const [got] = await conns[0].exchange([GET('/v2/keys/split2')]);
      expect(got).toContain(`"value":"${'2'.repeat(64)}"`);
    } finally {
      for (const c of conns) c.close();
    }
  });

  test('a client that sends far more than it reads is answered in order once it reads, nothing lost', async () => {
    // Its answers fill the socket, so the plain path waits for them to drain, buffering what it reads meanwhile up to
    // MAX_PLAIN_HEAD + MAX_PLAIN_BODY; then it stops reading until the client reads, and goes on.
    const port = portOf(members()[0]);
    const c = await RawConn.open(port);
    const value = 'v'.repeat(16 * 1024);
    const get = GET('/v2/keys/big', `X-Pad: ${'p'.repeat(7000)}\r\n`);
    const [, one] = await c.exchange([PUT('/v2/keys/big', `value=${value}`), get]);
    c.close();
    expect(one).toContain(value);
    // Enough that neither the answers nor the requests fit in the kernel's buffers of loopback sockets (a few MB).
    const n = 1000;
    expect(n * get.length).toBeGreaterThan(4 * (MAX_PLAIN_HEAD + MAX_PLAIN_BODY));
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    try {
      await new Promise<void>((r) => s.once('connect', r));
      s.pause(); // no answer read until every request is written or stuck
      s.write(get.repeat(n));
      // Until the requests stop moving (the member has stopped reading them), or all are written.
      let last = -1;
      for (let still = 0, deadline = Date.now() + 10000; still < 50 && s.writableLength > 0 && Date.now() < deadline; ) {
        still = s.writableLength === last ? still + 1 : 0;
        last = s.writableLength;
        await new Promise((r) => setTimeout(r, 2));
      }
      let bytes = 0;
      let text = '';
      s.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (text.length < one.length * 2) text += chunk.toString('latin1');
      });
      s.resume();
      const deadline = Date.now() + 20000;
      while (bytes < n * one.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(bytes).toBe(n * one.length);
      expect(text.slice(0, 12)).toBe('HTTP/1.1 200');
    } finally {
      s.destroy();
    }
  });

  test('a client that half-closes after its requests gets every answer, then the end of the connection', async () => {
    const c = await RawConn.open(portOf(members()[0]));
    c.socket.write(PUT('/v2/keys/half', 'value=h') + GET('/v2/keys/half'));
    c.socket.end();
    const put = await c.read();
    const get = await c.read();
    expect(put).toContain('"action":"set"');
    expect(get).toContain('"value":"h"');
    expect(await c.closedWithin(10000)).toBe(true);
  });
});

describe('pipelined requests, side by side with Debian\'s etcd', () => {
  const members = twoMembers('fast-http1-real', [startRealEtcd, startOurEtcd]);

  /** Status and body: what a client reads (header sets differ between Go's and Node's servers). */
  const seen = (a: string): string => `${a.split(' ')[1]} ${a.slice(a.indexOf('\r\n\r\n') + 4)}`;

  test('requests written at once are served in order: a read sees the write before it', async () => {
    const requests = [
      PUT('/v2/keys/p', 'value=1'),
      GET('/v2/keys/p'),
      PUT('/v2/keys/p', 'value=2&prevValue=1'),
      GET('/v2/keys/p'),
      'DELETE /v2/keys/p HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      GET('/v2/keys/p'),
    ];
    const answers: string[][] = [];
    for (const m of members()) {
      const c = await RawConn.open(portOf(m));
      answers.push((await c.exchange(requests)).map(seen));
      c.close();
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[1][3]).toContain('"value":"2"');
  });
});

describe('over TLS, with client certificates', () => {
  let dir: string;
  let member: RunningEtcd;
  let client: tls.ConnectionOptions;
  let port: number;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fast-http1-tls-'));
    const ca = makeCA(dir, 'ca');
    const server = issue(dir, 'server', ca, { cn: 'server', hosts: ['127.0.0.1'] });
    const user = issue(dir, 'user', ca, { cn: 'user' });
    client = { ca: ca.certPem, cert: user.certPem, key: user.keyPem, servername: '127.0.0.1', ALPNProtocols: ['http/1.1'] };
    const [tlsPort, plainPort, peerPort] = [await freePort(), await freePort(), await freePort()];
    port = tlsPort;
    // A plain URL too, on its own port, for the start-up's health check.
    const clientURL = `http://127.0.0.1:${plainPort}`;
    const peerURL = `http://127.0.0.1:${peerPort}`;
    const dataDir = path.join(dir, 'ours');
    member = await spawnOurEtcd(
      ['--data-dir', dataDir, '--enable-v2=true', '--listen-client-urls', `https://127.0.0.1:${tlsPort},${clientURL}`, '--advertise-client-urls', clientURL,
        '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `default=${peerURL}`,
        '--cert-file', server.certFile, '--key-file', server.keyFile, '--client-cert-auth', '--trusted-ca-file', ca.certFile],
      { clientURL, peerURL, dataDir },
    );
  });
  afterAll(async () => {
    await member?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('requests are served in order, and a connection handed to Node\'s server goes on', async () => {
    const c = await RawConn.open(port, client);
    try {
      const [put, get] = await c.exchange([PUT('/v2/keys/t', 'value=1'), GET('/v2/keys/t')]);
      expect(put.split(' ')[1]).toBe('201');
      expect(get).toContain('"value":"1"');
      const chunked = `PUT /v2/keys/t HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORM}Transfer-Encoding: chunked\r\n\r\n7\r\nvalue=2\r\n0\r\n\r\n`;
      const [second] = await c.exchange([chunked]);
      const [third] = await c.exchange([GET('/v2/keys/t')]);
      expect(second).toContain('"prevNode":{"key":"/t","value":"1"');
      expect(third).toContain('"value":"2"');
    } finally {
      c.close();
    }
  });

  test('a client without a certificate is refused before any request is read', async () => {
    const c = await RawConn.open(port, { ...client, cert: undefined, key: undefined }).catch((err: Error) => err);
    if (c instanceof RawConn) {
      c.socket.write(GET('/v2/keys/t'));
      expect(await c.closedWithin(10000)).toBe(true);
      c.close();
    }
  });
});
