/**
 * TLS: client-certificate authentication on the client port (ours, our etcdctl and Debian's etcdctl), peers over
 * TLS with peer client-cert auth and an allowed CN, automatic TLS reused across restarts, certificate rotation.
 * Certificates are made at test time.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { IO, run } from '../../server/etcdctl/main';
import { Issued, issue, makeCA, makeCRL } from '../support/certs';
import { eventually } from '../support/cluster';
import { RunningEtcd, explainFailure, freePort, spawnOurEtcd } from '../support/real-etcd';

/** Our etcdctl's v2 commands (it speaks v3 unless told otherwise, as etcd 3.4's does). */
const V2_ENV = { ...process.env, ETCDCTL_API: '2' };

interface TLSClient {
  cert?: string;
  key?: string;
  ca?: string;
  insecure?: boolean;
}

interface Answer {
  status: number;
  body: string;
  fingerprint: string;
}

function files(c: { certFile: string; keyFile: string }, ca?: Issued): TLSClient {
  return { cert: c.certFile, key: c.keyFile, ca: ca?.certFile };
}

function httpsRequest(url: string, method: string, o: TLSClient, form?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        agent: false,
        timeout: 5000,
        cert: o.cert ? fs.readFileSync(o.cert) : undefined,
        key: o.key ? fs.readFileSync(o.key) : undefined,
        ca: o.ca ? fs.readFileSync(o.ca) : undefined,
        rejectUnauthorized: !o.insecure,
        headers: form ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(form) } : {},
      },
      (res) => {
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(form);
  });
}

async function healthy(url: string, o: TLSClient): Promise<void> {
  await eventually(`${url} to be healthy`, async () => {
    const a = await httpsRequest(`${url}/health`, 'GET', o);
    return a.status === 200 && a.body.includes('true') ? true : undefined;
  });
}

function capture(): IO & { out: string; err: string } {
  const io = { out: '', err: '', stdout: (s: string) => void (io.out += s), stderr: (s: string) => void (io.err += s), readStdin: () => '' };
  return io;
}

function debianEtcdctl(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('/usr/bin/etcdctl', args, { env: { ...process.env, ETCDCTL_API: '2' }, timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let dir: string;
let ca: Issued;
let otherCA: Issued;
let server: Issued;
let client: Issued;
let foreignClient: Issued;
let expiredClient: Issued;
const procs: RunningEtcd[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'));
  const pki = path.join(dir, 'pki');
  ca = makeCA(pki, 'test-ca');
  otherCA = makeCA(pki, 'other-ca');
  server = issue(pki, 'server', ca, { cn: 'etcd-server', hosts: ['127.0.0.1', 'localhost'] });
  client = issue(pki, 'client', ca, { cn: 'client' });
  foreignClient = issue(pki, 'foreign-client', otherCA, { cn: 'client' });
  expiredClient = issue(pki, 'expired-client', ca, { cn: 'client', notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function startTLSMember(name: string, extra: string[], ports?: { client: number; peer: number }): Promise<{ proc: RunningEtcd; clientURL: string; peerURL: string }> {
  const cport = ports?.client ?? (await freePort());
  const pport = ports?.peer ?? (await freePort());
  const clientURL = `https://127.0.0.1:${cport}`;
  const peerURL = `http://127.0.0.1:${pport}`;
  const proc = await spawnOurEtcd(
    [
      '--name', name, '--data-dir', path.join(dir, name), '--enable-v2=true',
      '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
      '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `${name}=${peerURL}`,
      ...extra,
    ],
    { clientURL, peerURL, dataDir: path.join(dir, name) },
    { wait: false },
  );
  procs.push(proc);
  return { proc, clientURL, peerURL };
}

describe('client certificate authentication', () => {
  let url: string;
  let proc: RunningEtcd;

  beforeAll(async () => {
    const m = await startTLSMember('auth', ['--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth']);
    url = m.clientURL;
    proc = m.proc;
    await healthy(url, files(client, ca));
  });

  test('a client with a certificate from the trusted CA is served', async () => {
    const a = await httpsRequest(`${url}/v2/keys/secure`, 'PUT', files(client, ca), 'value=yes');
    expect(a.status).toBe(201);
    expect(JSON.parse(a.body).node.value).toBe('yes');
  });

  test.each([
    ['no certificate', () => ({ ca: ca.certFile })],
    ['a certificate from another CA', () => files(foreignClient, ca)],
    ['an expired certificate', () => files(expiredClient, ca)],
  ])('a client with %s is refused at the handshake', async (_what, opts) => {
    await expect(httpsRequest(`${url}/v2/keys/secure`, 'GET', opts())).rejects.toThrow();
    // And the server is still there for good clients.
    expect((await httpsRequest(`${url}/v2/keys/secure`, 'GET', files(client, ca))).status).toBe(200);
  });

  test('plain HTTP on the https port gets no access; the error is logged; the server stays up', async () => {
    const plain = await new Promise<string>((resolve) => {
      const req = http.get(url.replace('https:', 'http:') + '/v2/keys/secure', { timeout: 3000 }, (res) => {
        res.resume();
        resolve(`status ${res.statusCode}`);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve(`error ${e.message}`));
    });
    expect(plain).not.toMatch(/^status 2/);
    await eventually('the plain-HTTP attempt to be logged', async () => (/rejected connection from .*tls: first record does not look like a TLS handshake/.test(proc.output()) ? true : undefined));
    expect((await httpsRequest(`${url}/health`, 'GET', files(client, ca))).status).toBe(200);
  });

  test('our etcdctl with --cert --key --cacert (and the ETCDCTL_* variables) is served; without a certificate it is refused', async () => {
    const io = capture();
    expect(await run(['--endpoints', url, '--cert', client.certFile, '--key', client.keyFile, '--cacert', ca.certFile, 'set', '/ctl', 'via-etcdctl'], V2_ENV, io)).toBe(0);
    expect(io.out).toBe('via-etcdctl\n');
    const viaEnv = capture();
    const env = { ...V2_ENV, ETCDCTL_ENDPOINTS: url, ETCDCTL_CERT: client.certFile, ETCDCTL_KEY: client.keyFile, ETCDCTL_CACERT: ca.certFile };
    expect(await run(['get', '/ctl'], env, viaEnv)).toBe(0);
    expect(viaEnv.out).toBe('via-etcdctl\n');
    const refused = capture();
    expect(await run(['--endpoints', url, '--cacert', ca.certFile, 'get', '/ctl'], V2_ENV, refused)).not.toBe(0);
  });

  test("Debian's etcdctl (v2) with --cert-file --key-file --ca-file is served; with a foreign certificate it is refused", async () => {
    const set = await debianEtcdctl(['--endpoints', url, '--cert-file', client.certFile, '--key-file', client.keyFile, '--ca-file', ca.certFile, 'set', '/debian', 'hello']);
    expect({ status: set.status, stdout: set.stdout }).toEqual({ status: 0, stdout: 'hello\n' });
    const get = await debianEtcdctl(['--endpoints', url, '--cert-file', client.certFile, '--key-file', client.keyFile, '--ca-file', ca.certFile, 'get', '/debian']);
    expect({ status: get.status, stdout: get.stdout }).toEqual({ status: 0, stdout: 'hello\n' });
    const foreign = await debianEtcdctl(['--endpoints', url, '--cert-file', foreignClient.certFile, '--key-file', foreignClient.keyFile, '--ca-file', ca.certFile, 'get', '/debian']);
    expect(foreign.status).not.toBe(0);
  });
});

describe('automatic TLS and certificate rotation', () => {
  test('--auto-tls serves https with a self-signed certificate, and a restart reuses it', async () => {
    const ports = { client: await freePort(), peer: await freePort() };
    const first = await startTLSMember('auto', ['--auto-tls'], ports);
    await healthy(first.clientURL, { insecure: true });
    const before = await httpsRequest(`${first.clientURL}/v2/keys/auto`, 'PUT', { insecure: true }, 'value=1');
    expect(before.status).toBe(201);
    expect(fs.existsSync(path.join(dir, 'auto', 'fixtures', 'client', 'cert.pem'))).toBe(true);
    // A client that insists on verification cannot trust it: it is self-signed.
    await expect(httpsRequest(`${first.clientURL}/health`, 'GET', {})).rejects.toThrow(/self.signed/i);
    // Our etcdctl: refused as well, unless told to skip verification (flag or ETCDCTL_INSECURE_SKIP_TLS_VERIFY).
    const strict = capture();
    expect(await run(['--endpoints', first.clientURL, 'get', '/auto'], V2_ENV, strict)).not.toBe(0);
    const skipping = capture();
    expect(await run(['--endpoints', first.clientURL, '--insecure-skip-tls-verify', 'get', '/auto'], V2_ENV, skipping)).toBe(0);
    expect(skipping.out).toBe('1\n');
    const viaEnv = capture();
    expect(await run(['--endpoints', first.clientURL, 'get', '/auto'], { ...V2_ENV, ETCDCTL_INSECURE_SKIP_TLS_VERIFY: 'true' }, viaEnv)).toBe(0);
    expect(viaEnv.out).toBe('1\n');
    await first.proc.signal('SIGTERM');
    const second = await startTLSMember('auto', ['--auto-tls'], ports);
    await healthy(second.clientURL, { insecure: true });
    const after = await httpsRequest(`${second.clientURL}/v2/keys/auto`, 'GET', { insecure: true });
    expect(after.status).toBe(200);
    expect(after.fingerprint).toBe(before.fingerprint);
  });

  test('replacing the certificate files: new connections see the new certificate, without a restart', async () => {
    const pki = path.join(dir, 'rotate');
    fs.mkdirSync(pki, { recursive: true });
    fs.copyFileSync(server.certFile, path.join(pki, 'server.crt'));
    fs.copyFileSync(server.keyFile, path.join(pki, 'server.key'));
    const m = await startTLSMember('rotating', ['--cert-file', path.join(pki, 'server.crt'), '--key-file', path.join(pki, 'server.key')]);
    await healthy(m.clientURL, { ca: ca.certFile });
    const old = (await httpsRequest(`${m.clientURL}/health`, 'GET', { ca: ca.certFile })).fingerprint;
    const renewed = issue(path.join(dir, 'renewed'), 'server', ca, { cn: 'etcd-server-renewed', hosts: ['127.0.0.1', 'localhost'] });
    // Key first, then certificate, each replaced by a rename (as cert-manager and friends do).
    fs.copyFileSync(renewed.keyFile, path.join(pki, 'server.key.new'));
    fs.renameSync(path.join(pki, 'server.key.new'), path.join(pki, 'server.key'));
    fs.copyFileSync(renewed.certFile, path.join(pki, 'server.crt.new'));
    fs.renameSync(path.join(pki, 'server.crt.new'), path.join(pki, 'server.crt'));
    const now = await eventually('the renewed certificate to be served', async () => {
      const fp = (await httpsRequest(`${m.clientURL}/health`, 'GET', { ca: ca.certFile })).fingerprint;
      return fp !== old ? fp : undefined;
    });
    expect(now).toBe(new (await import('node:crypto')).X509Certificate(fs.readFileSync(renewed.certFile)).fingerprint256);
  });
});

describe('peers over TLS', () => {
  /** Members with these peer certificates; member i listens on `ips[i]` (default 127.0.0.1) for peers. */
  async function startPeers(certs: Issued[], extra: string[], ips: string[] = []): Promise<{ clientURL: string; proc: RunningEtcd }[]> {
    const slots = [];
    for (let i = 0; i < certs.length; i++) slots.push({ name: `p${i}`, client: await freePort(), peer: await freePort(), ip: ips[i] ?? '127.0.0.1' });
    const initial = slots.map((s) => `${s.name}=https://${s.ip}:${s.peer}`).join(',');
    const tag = Math.random().toString(36).slice(2, 8);
    return Promise.all(
      slots.map(async (s, i) => {
        const clientURL = `http://127.0.0.1:${s.client}`;
        const peerURL = `https://${s.ip}:${s.peer}`;
        const proc = await spawnOurEtcd(
          [
            '--name', s.name, '--data-dir', path.join(dir, `peers-${tag}-${s.name}`), '--enable-v2=true',
            '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
            '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
            '--initial-cluster', initial, '--initial-cluster-token', `tls-${tag}`,
            '--peer-cert-file', certs[i].certFile, '--peer-key-file', certs[i].keyFile,
            '--peer-trusted-ca-file', ca.certFile, '--peer-client-cert-auth',
            '--heartbeat-interval', '50', '--election-timeout', '500',
            ...extra,
          ],
          { clientURL, peerURL, dataDir: path.join(dir, `peers-${tag}-${s.name}`) },
          { wait: false },
        );
        procs.push(proc);
        return { clientURL, proc };
      }),
    );
  }

  async function putVia(url: string, key: string): Promise<number> {
    const { request } = await import('../support/http');
    const a = await request(url, 'PUT', `/v2/keys${key}`, { form: 'value=x', timeoutMs: 3000 });
    return a.status;
  }

  test('a 3-member cluster with peer TLS and peer client-cert auth replicates', async () => {
    const peerCert = (n: number) => issue(path.join(dir, 'peer-ok'), `peer${n}`, ca, { cn: 'member', hosts: ['127.0.0.1'] });
    const members = await startPeers([peerCert(0), peerCert(1), peerCert(2)], ['--peer-cert-allowed-cn', 'member']);
    const { request } = await import('../support/http');
    await eventually('a write through the first member', async () => ((await putVia(members[0].clientURL, '/tls-peers')) === 201 ? true : undefined));
    for (const m of members) {
      await eventually('every member to have the write', async () => ((await request(m.clientURL, 'GET', '/v2/keys/tls-peers', { timeoutMs: 2000 })).status === 200 ? true : undefined));
    }
  });

  test.each([
    ['a certificate from another CA', () => issue(path.join(dir, 'peer-bad'), 'foreign-peer', otherCA, { cn: 'member', hosts: ['127.0.0.1'] }), "tls: failed to verify client certificate: x509: certificate signed by unknown authority"],
    ['a certificate without the allowed CN', () => issue(path.join(dir, 'peer-bad'), 'wrong-cn-peer', ca, { cn: 'intruder', hosts: ['127.0.0.1'] }), 'client certificate authentication failed'],
  ])('a member with %s cannot take part; both sides log it in etcd\'s words', async (_what, bad, why) => {
    const good = (n: number) => issue(path.join(dir, 'peer-ok2'), `peer${n}`, ca, { cn: 'member', hosts: ['127.0.0.1'] });
    const [a, b, outsider] = await startPeers([good(0), good(1), bad()], ['--peer-cert-allowed-cn', 'member']);
    await explainFailure([{ name: 'p0', proc: a.proc }, { name: 'p1', proc: b.proc }, { name: 'outsider', proc: outsider.proc }], async () => {
      // The two good members are a quorum: they commit; the outsider never hears of it.
      await eventually('the good members to commit', async () => ((await putVia(a.clientURL, '/kept-out')) === 201 ? true : undefined));
      const { request } = await import('../support/http');
      expect((await request(b.clientURL, 'GET', '/v2/keys/kept-out?quorum=true')).status).toBe(200);
      await eventually('the good members to log the refused handshakes', async () =>
        [a, b].some((m) => m.proc.output().includes(`rejected connection from "127.0.0.1:`) && m.proc.output().includes(why)) ? true : undefined,
      );
      // The refused member's side, as etcd's e2e tests (TestEtcdPeerCNAuth) look for it.
      await eventually('the outsider to log the refusal', async () => (outsider.proc.output().includes('remote error: tls: bad certificate') ? true : undefined));
      const seen = await request(outsider.clientURL, 'GET', '/v2/keys/kept-out', { timeoutMs: 1500 }).then(
        (r) => r.status,
        () => 'no answer',
      );
      expect(seen).not.toBe(200);
    });
  });

  test("a peer's certificate must name the address it connects from (IP, or a DNS name resolving to it), as etcd checks", async () => {
    // p1's certificate names 127.0.0.2 and localhost: it connects from 127.0.0.1, which localhost resolves to.
    // p2's names only 127.0.0.3, where it listens, but it connects from 127.0.0.1: refused by the others.
    const certs = [
      issue(path.join(dir, 'peer-san'), 'san0', ca, { cn: 'member', hosts: ['127.0.0.1'] }),
      issue(path.join(dir, 'peer-san'), 'san1', ca, { cn: 'member', hosts: ['127.0.0.2', 'localhost'] }),
      issue(path.join(dir, 'peer-san'), 'san2', ca, { cn: 'member', hosts: ['127.0.0.3'] }),
    ];
    const [a, b, outsider] = await startPeers(certs, [], ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    await explainFailure([{ name: 'p0', proc: a.proc }, { name: 'p1', proc: b.proc }, { name: 'p2', proc: outsider.proc }], async () => {
      await eventually('p0 and p1 to commit', async () => ((await putVia(b.clientURL, '/san-checked')) === 201 ? true : undefined));
      await eventually('the SAN refusal to be logged', async () =>
        [a, b].some((m) => /certificate is valid for 127\.0\.0\.3, not 127\.0\.0\.1/.test(m.proc.output())) ? true : undefined,
      );
      const { request } = await import('../support/http');
      const seen = await request(outsider.clientURL, 'GET', '/v2/keys/san-checked', { timeoutMs: 1500 }).then((r) => r.status, () => 'no answer');
      expect(seen).not.toBe(200);
    });
  });

  test('--experimental-peer-skip-client-san-verification lets that member in', async () => {
    const certs = [
      issue(path.join(dir, 'peer-nosan'), 'nosan0', ca, { cn: 'member', hosts: ['127.0.0.1'] }),
      issue(path.join(dir, 'peer-nosan'), 'nosan1', ca, { cn: 'member', hosts: ['127.0.0.1'] }),
      issue(path.join(dir, 'peer-nosan'), 'nosan2', ca, { cn: 'member', hosts: ['127.0.0.3'] }),
    ];
    const members = await startPeers(certs, ['--experimental-peer-skip-client-san-verification'], ['127.0.0.1', '127.0.0.1', '127.0.0.3']);
    const { request } = await import('../support/http');
    await eventually('a write through the member on 127.0.0.3', async () => ((await putVia(members[2].clientURL, '/san-skipped')) === 201 ? true : undefined));
    for (const m of members) {
      await eventually('every member to have the write', async () => ((await request(m.clientURL, 'GET', '/v2/keys/san-skipped', { timeoutMs: 2000 })).status === 200 ? true : undefined));
    }
  });

  test('--peer-auto-tls: members talk over TLS with self-signed certificates', async () => {
    const slots = [];
    for (let i = 0; i < 3; i++) slots.push({ name: `auto${i}`, client: await freePort(), peer: await freePort() });
    const initial = slots.map((x) => `${x.name}=https://127.0.0.1:${x.peer}`).join(',');
    const members = await Promise.all(
      slots.map(async (x) => {
        const clientURL = `http://127.0.0.1:${x.client}`;
        const peerURL = `https://127.0.0.1:${x.peer}`;
        const dataDir = path.join(dir, `peer-auto-${x.name}`);
        const proc = await spawnOurEtcd(
          [
            '--name', x.name, '--data-dir', dataDir, '--enable-v2=true',
            '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
            '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
            '--initial-cluster', initial, '--initial-cluster-token', 'peer-auto', '--peer-auto-tls',
            '--heartbeat-interval', '50', '--election-timeout', '500',
          ],
          { clientURL, peerURL, dataDir },
          { wait: false },
        );
        procs.push(proc);
        return { clientURL, dataDir };
      }),
    );
    const { request } = await import('../support/http');
    await eventually('a write through the first member', async () => ((await putVia(members[0].clientURL, '/peer-auto')) === 201 ? true : undefined));
    for (const m of members) {
      await eventually('every member to have the write', async () => ((await request(m.clientURL, 'GET', '/v2/keys/peer-auto', { timeoutMs: 2000 })).status === 200 ? true : undefined));
      expect(fs.existsSync(path.join(m.dataDir, 'fixtures', 'peer', 'cert.pem'))).toBe(true);
    }
  });
});

describe("etcd's checks of client certificates: revocation lists, allowed hostname", () => {
  test('--client-crl-file: a revoked certificate is refused, others served; a new CRL applies to new connections', async () => {
    const pki = path.join(dir, 'crl');
    const revoked = issue(pki, 'revoked-client', ca, { cn: 'client' });
    const later = issue(pki, 'later-client', ca, { cn: 'client' });
    const crl = makeCRL(path.join(pki, 'crl.pem'), ca, [revoked]);
    const m = await startTLSMember('crl', ['--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth', '--client-crl-file', crl]);
    await healthy(m.clientURL, files(client, ca));
    await expect(httpsRequest(`${m.clientURL}/v2/keys/crl`, 'GET', files(revoked, ca))).rejects.toThrow();
    await eventually('the refusal to be logged', async () => (/certificate serial [0-9A-F]+ revoked/.test(m.proc.output()) ? true : undefined));
    expect((await httpsRequest(`${m.clientURL}/v2/keys/crl`, 'PUT', files(later, ca), 'value=1')).status).toBe(201);
    makeCRL(crl, ca, [revoked, later]);
    await eventually('the new CRL to refuse the later certificate', async () =>
      httpsRequest(`${m.clientURL}/health`, 'GET', files(later, ca)).then(() => undefined, () => true),
    );
    expect((await httpsRequest(`${m.clientURL}/health`, 'GET', files(client, ca))).status).toBe(200);
  });

  test('a CRL file that cannot be read stops the start with a clear error', async () => {
    const m = await startTLSMember('crl-missing', ['--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth', '--client-crl-file', path.join(dir, 'no-such.crl')]);
    expect(await m.proc.exited).not.toBe(0);
    expect(m.proc.output()).toMatch(/cannot read CRL file .*no-such\.crl/);
  });

  test('--client-cert-allowed-hostname: only certificates valid for that name are served', async () => {
    const pki = path.join(dir, 'hostname');
    const named = issue(pki, 'named-client', ca, { cn: 'client', hosts: ['allowed.example'] });
    const m = await startTLSMember('hostname', ['--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth', '--client-cert-allowed-hostname', 'allowed.example']);
    await healthy(m.clientURL, files(named, ca));
    expect((await httpsRequest(`${m.clientURL}/v2/keys/named`, 'PUT', files(named, ca), 'value=1')).status).toBe(201);
    await expect(httpsRequest(`${m.clientURL}/v2/keys/named`, 'GET', files(client, ca))).rejects.toThrow();
    await eventually('the refusal to be logged', async () => (/not valid for the allowed hostname \W*allowed\.example/.test(m.proc.output()) ? true : undefined));
  });

  test('an allowed CN and an allowed hostname together are refused, as etcd does', async () => {
    const peerURL = `https://127.0.0.1:${await freePort()}`;
    const clientURL = `http://127.0.0.1:${await freePort()}`;
    const dataDir = path.join(dir, 'cn-and-host');
    const proc = await spawnOurEtcd(
      [
        '--name', 'cn-and-host', '--data-dir', dataDir,
        '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
        '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `cn-and-host=${peerURL}`,
        '--peer-cert-file', server.certFile, '--peer-key-file', server.keyFile, '--peer-trusted-ca-file', ca.certFile,
        '--peer-cert-allowed-cn', 'member', '--peer-cert-allowed-hostname', 'peer.example',
      ],
      { clientURL, peerURL, dataDir },
      { wait: false },
    );
    procs.push(proc);
    expect(await proc.exited).not.toBe(0);
    expect(proc.output()).toMatch(/AllowedCN and AllowedHostname are mutually exclusive/);
  });
});

describe('protocol versions and cipher suites', () => {
  let url: string;
  beforeAll(async () => {
    const m = await startTLSMember('ciphers', ['--cert-file', server.certFile, '--key-file', server.keyFile, '--cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256']);
    url = m.clientURL;
    await healthy(url, { ca: ca.certFile });
  });

  function handshake(o: import('node:tls').ConnectionOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const socket = require('node:tls').connect({ host: u.hostname, port: Number(u.port), ca: fs.readFileSync(ca.certFile), ...o }, () => {
        const cipher = socket.getCipher().name as string;
        socket.end();
        resolve(cipher);
      });
      socket.on('error', reject);
      socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
    });
  }

  test('TLS 1.2 with a listed suite is served; an unlisted suite is refused', async () => {
    expect(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).toBe('ECDHE-RSA-AES128-GCM-SHA256');
    await expect(handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' })).rejects.toThrow();
  });

  test('TLS 1.1 is refused (TLS 1.2 at least, as etcd)', async () => {
    await expect(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow(/protocol|version/i);
  });
});
