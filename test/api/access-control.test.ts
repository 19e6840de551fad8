/**
 * --host-whitelist and --cors, side by side with Debian's etcd 3.4 started with the same flags: a plain-HTTP request
 * naming an unlisted host gets 421 with etcd's explanation (whatever the path or method, and before any write), and
 * CORS headers echo a listed Origin (never `*` once origins are listed), with OPTIONS answered empty.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Answer, request } from '../support/http';
import { issue, makeCA } from '../support/certs';
import { RunningEtcd, freePort, spawnOurEtcd, spawnRealEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(60000);

const FLAGS = ['--host-whitelist=127.0.0.1,example.com', '--cors=http://good.example:8080,https://other.example:443'];

/** One raw HTTP request (for request lines and Host headers an HTTP client will not send); the answer, parsed. */
function raw(base: string, text: string): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('end', () => {
      const all = Buffer.concat(chunks).toString();
      const [head, ...rest] = all.split('\r\n\r\n');
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    sock.setTimeout(15000, () => sock.destroy(new Error('no answer')));
    sock.write(text);
  });
}

/** What a client sees, with each server's own port made alike. */
function seen(a: Answer, m: RunningEtcd): object {
  const pick = ['content-type', 'x-content-type-options', 'access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers'];
  const port = new URL(m.clientURL).port;
  return { status: a.status, headers: Object.fromEntries(pick.map((h) => [h, a.headers[h]])), body: a.status === 200 && a.body.startsWith('{"etcdserver"') ? 'VERSION' : a.body.split(port).join('PORT') };
}

describe('--host-whitelist and --cors, as etcd answers them', () => {
  let dir: string;
  let real: RunningEtcd;
  let ours: RunningEtcd;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'access-'));
    [real, ours] = await Promise.all([startRealEtcd(path.join(dir, 'real'), FLAGS), startOurEtcd(path.join(dir, 'ours'), FLAGS)]);
  });
  afterAll(async () => {
    await Promise.all([real?.stop(), ours?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    ['GET', '/version', {}],
    ['GET', '/version', { Host: 'evil.example' }],
    ['GET', '/version', { Host: 'example.com' }],
    ['GET', '/version', { Host: 'example.com:2379' }],
    ['GET', '/version', { Host: 'EXAMPLE.COM' }],
    ['GET', '/version', { Host: 'evil.example:80' }],
    ['GET', '/version', { Host: '[::1]:2379' }],
    ['GET', '/v2/keys/x', { Host: 'evil.example' }],
    ['GET', '/health', { Host: 'evil.example' }],
    ['GET', '/metrics', { Host: 'evil.example' }],
    ['GET', '/v2/members', { Host: 'evil.example' }],
    ['GET', '/no/such/path', { Host: 'evil.example' }],
    ['OPTIONS', '/v2/keys/x', { Host: 'evil.example', Origin: 'http://good.example:8080' }],
    ['PUT', '/v2/keys/written-by-evil?value=1', { Host: 'evil.example' }],
    ['GET', '/version', { Origin: 'http://good.example:8080' }],
    ['GET', '/version', { Origin: 'https://other.example:443' }],
    ['GET', '/version', { Origin: 'http://good.example' }],
    ['GET', '/version', { Origin: 'http://evil.example' }],
    ['GET', '/v2/keys/', { Origin: 'http://good.example:8080' }],
    ['GET', '/health', { Origin: 'http://good.example:8080' }],
    ['OPTIONS', '/v2/keys/x', { Origin: 'http://good.example:8080', 'Access-Control-Request-Method': 'PUT' }],
    ['OPTIONS', '/v2/keys/x', { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'PUT' }],
    ['OPTIONS', '/no/such/path', {}],
    ['OPTIONS', '/v2/members', { Origin: 'https://other.example:443' }],
  ] as [string, string, Record<string, string>][])('%s %s %j', async (method, p, headers) => {
    const [r, o] = await Promise.all([request(real.clientURL, method, p, { headers }), request(ours.clientURL, method, p, { headers })]);
    expect(seen(o, ours)).toEqual(seen(r, real));
  });

  test.each([
    ['an absolute-form target names the host, not the Host header', 'GET http://example.com/version HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n'],
    ['an absolute-form target naming another host', 'GET http://evil.example/version HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n'],
    ['an unclean path (the check comes before the redirect)', 'GET //v2/../version HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n'],
    ['HTTP/1.0 with no Host', 'GET /version HTTP/1.0\r\n\r\n'],
    ['a Host with an empty port', 'GET /version HTTP/1.1\r\nHost: example.com:\r\nConnection: close\r\n\r\n'],
    ['a Host with a bare IPv6 address', 'GET /version HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n'],
  ])('%s', async (_, text) => {
    const [r, o] = await Promise.all([raw(real.clientURL, text), raw(ours.clientURL, text)]);
    expect(seen(o, ours)).toEqual(seen(r, real));
  });

  test('a write naming an unlisted host is not made', async () => {
    const [r, o] = await Promise.all([real, ours].map((m) => request(m.clientURL, 'GET', '/v2/keys/written-by-evil')));
    expect([r.status, o.status]).toEqual([404, 404]);
  });

  test('an unlisted host is answered 421 with etcd\'s explanation naming it', async () => {
    const a = await request(ours.clientURL, 'GET', '/v2/keys/', { headers: { Host: 'rebind.attacker.example:2379' } });
    expect(a.status).toBe(421);
    expect(a.body).toContain('etcd --host-whitelist "rebind.attacker.example"');
  });
});

describe('--host-whitelist applies to plain HTTP only: over TLS any host is served, as etcd does', () => {
  let dir: string;
  const running: RunningEtcd[] = [];
  afterAll(async () => {
    await Promise.all(running.map((m) => m.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test.each([['Debian etcd', spawnRealEtcd], ['ours', spawnOurEtcd]] as const)('%s', async (who, spawn) => {
    dir ??= mkdtempSync(path.join(os.tmpdir(), 'access-tls-'));
    const ca = makeCA(dir, 'ca');
    const server = issue(dir, 'server', ca, { cn: 'server', hosts: ['127.0.0.1'] });
    const [tlsPort, plainPort, peerPort] = [await freePort(), await freePort(), await freePort()];
    const clientURL = `http://127.0.0.1:${plainPort}`;
    const tlsURL = `https://127.0.0.1:${tlsPort}`;
    const peerURL = `http://127.0.0.1:${peerPort}`;
    const dataDir = path.join(dir, who.replace(/ /g, '-'));
    const m = await spawn(
      ['--data-dir', dataDir, '--listen-client-urls', `${tlsURL},${clientURL}`, '--advertise-client-urls', clientURL, '--listen-peer-urls', peerURL,
        '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `default=${peerURL}`, '--cert-file', server.certFile, '--key-file', server.keyFile,
        '--host-whitelist=127.0.0.1'],
      { clientURL, peerURL, dataDir },
    );
    running.push(m);
    const overTLS = await new Promise<number>((resolve, reject) => {
      const req = https.get(`${tlsURL}/version`, { ca: ca.certPem, headers: { Host: 'evil.example' }, servername: '127.0.0.1' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    const plain = await request(clientURL, 'GET', '/version', { headers: { Host: 'evil.example' } });
    expect({ overTLS, plain: plain.status }).toEqual({ overTLS: 200, plain: 421 });
  });
});
