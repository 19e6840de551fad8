import * as http from 'node:http';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { answerLikeGo, cleanRedirect, goCleanPath, goParseBool, goPathUnescape, isValidRequestPath } from '../../server/pkg/go-compat';

describe("Go's behaviour, copied where etcd's answers depend on it", () => {
  test('strconv.ParseBool takes exactly Go\'s spellings', () => {
    for (const s of ['1', 't', 'T', 'TRUE', 'true', 'True']) expect(goParseBool(s)).toBe(true);
    for (const s of ['0', 'f', 'F', 'FALSE', 'false', 'False']) expect(goParseBool(s)).toBe(false);
    for (const s of ['', 'yes', 'no', 'tRUE', 'on', ' true', '2']) expect(goParseBool(s)).toBeUndefined();
  });

  test('path.Clean and the redirects of ServeMux', () => {
    expect(goCleanPath('//a/./b/../c/')).toBe('/a/c');
    expect(goCleanPath('/../..')).toBe('/');
    expect(cleanRedirect('/v2/keys/a')).toBeUndefined();
    expect(cleanRedirect('/v2//keys/a?x=1')).toBe('/v2/keys/a?x=1');
    expect(cleanRedirect('/v2/keys/./a/')).toBe('/v2/keys/a/');
    expect(cleanRedirect('/v2/keys/%2e%2e/x')).toBe('/v2/x');
  });

  test('url.PathUnescape and malformed escapes', () => {
    expect(goPathUnescape('/a%20b')).toBe('/a b');
    expect(goPathUnescape('/%e6%97%a5')).toBe('/日');
    expect(goPathUnescape('/%zz')).toBeUndefined();
    expect(isValidRequestPath('/v2/keys/%zz?x=%zz')).toBe(false);
    expect(isValidRequestPath('/v2/keys/a?x=%zz')).toBe(true);
  });

  test("a request Node cannot parse gets Go's 400, an unknown method 405, CONNECT 404", async () => {
    const srv = http.createServer((_req, res) => res.end('ok'));
    answerLikeGo(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => c.write(text));
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('close', () => resolve(got));
        c.on('error', reject);
      });
    try {
      expect(await raw('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\n400 Bad Request$/);
      expect(await raw('FOO / HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
      expect(await raw('CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[\s\S]*404 page not found\n$/);
    } finally {
      srv.close();
    }
  });
});

test('bytes pipelined after a Connection: close request do not cost it its answer (Go answers it, then closes)', async () => {
  // The handler answers a little later, as the member's handlers do (after a proposal or a read).
  const srv = http.createServer((_req, res) => void setTimeout(() => res.end('answered'), 20));
  answerLikeGo(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    for (const expect100 of [false, true]) {
      const got = await new Promise<string>((resolve, reject) => {
        const head = `DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${expect100 ? 'Expect: 100-continue\r\n' : ''}Content-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: x\r\n\r\n`;
        const c = net.connect(port, '127.0.0.1', () => c.write(head));
        let out = '';
        c.on('data', (d) => (out += d.toString()));
        c.on('close', () => resolve(out));
        c.on('error', reject);
      });
      expect(got).toMatch(/HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nanswered$/);
    }
  } finally {
    srv.close();
  }
});
