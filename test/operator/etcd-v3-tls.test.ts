/**
 * The operator's v3 gRPC client over TLS, against our etcd with client-certificate authentication: with the
 * material of spec.tls.operatorSecret (CA, certificate, key, as the operator reads them from the Secret) it reads
 * the members, the status (leader) and the health, and takes a snapshot whose SHA-256 it checks; without a
 * certificate, or with one from another CA, the member refuses it at the handshake.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdV3, type TLSMaterial } from '../../operator/etcd-v3';
import { issue, makeCA } from '../support/certs';
import { waitFor } from '../support/kube/kubelet';
import { RunningEtcd, freePort, spawnOurEtcd } from '../support/real-etcd';

let dir: string;
let proc: RunningEtcd;
let url: string;
let good: TLSMaterial;
let foreign: TLSMaterial;
let caOnly: TLSMaterial;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-tls-'));
  const ca = makeCA(path.join(dir, 'pki'), 'ca');
  const otherCA = makeCA(path.join(dir, 'pki'), 'other-ca');
  const server = issue(path.join(dir, 'pki'), 'server', ca, { cn: 'etcd', hosts: ['127.0.0.1', 'localhost'] });
  const operator = issue(path.join(dir, 'pki'), 'operator', ca, { cn: 'etcd-operator' });
  const stranger = issue(path.join(dir, 'pki'), 'stranger', otherCA, { cn: 'etcd-operator' });
  // As the operator decodes the Secret's ca.crt, tls.crt and tls.key.
  const material = (c: { certPem: string; keyPem: string }): TLSMaterial => ({ ca: Buffer.from(ca.certPem), cert: Buffer.from(c.certPem), key: Buffer.from(c.keyPem) });
  good = material(operator);
  foreign = material(stranger);
  caOnly = { ca: Buffer.from(ca.certPem) };

  const [cport, pport] = [await freePort(), await freePort()];
  url = `https://127.0.0.1:${cport}`;
  const peerURL = `http://127.0.0.1:${pport}`;
  proc = await spawnOurEtcd(
    [
      '--name', 'm0', '--data-dir', path.join(dir, 'm0'), '--enable-v2=true',
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL, '--initial-cluster', `m0=${peerURL}`,
      '--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth',
    ],
    { clientURL: url, peerURL, dataDir: path.join(dir, 'm0') },
    { wait: false },
  );
  await waitFor('the member to be healthy over TLS', () => once(good, (e) => e.health(url)));
});

/** One session: a call, then the channels closed. */
async function once<T>(tls: TLSMaterial, fn: (e: EtcdV3) => Promise<T>): Promise<T> {
  const e = new EtcdV3(tls);
  try {
    return await fn(e);
  } finally {
    e.close();
  }
}

afterAll(async () => {
  await proc?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("with the operator's certificate it reads the members, the leader and the health over https", async () => {
  await once(good, async (etcd) => {
    const members = await etcd.members(url);
    expect(members.map((m) => ({ name: m.name, clientURLs: m.clientURLs, isLearner: m.isLearner }))).toEqual([{ name: 'm0', clientURLs: [url], isLearner: false }]);
    const st = await etcd.status(url);
    expect(st.id).toBe(members[0].id);
    expect(st.leader).toBe(members[0].id);
    expect(await etcd.health(url)).toBe(true);
  });
});

test('a snapshot over https arrives whole, its SHA-256 checked', async () => {
  const chunks: Buffer[] = [];
  const r = await once(good, (etcd) => etcd.snapshot(url, (c) => chunks.push(c)));
  const all = Buffer.concat(chunks);
  expect(r.size).toBe(all.length);
  expect(all.length % 512).toBe(32);
  const { createHash } = await import('node:crypto');
  expect(r.sha256).toBe(createHash('sha256').update(all.subarray(0, all.length - 32)).digest('hex'));
  expect(all.subarray(all.length - 32).toString('hex')).toBe(r.sha256);
});

test.each([
  ['no certificate', () => caOnly],
  ['a certificate from another CA', () => foreign],
])('with %s it is refused at the handshake (and health says so)', async (_what, tls) => {
  await once(tls(), async (etcd) => {
    await expect(etcd.members(url)).rejects.toThrow(/memberList https:\/\/127\.0\.0\.1:\d+: UNAVAILABLE/);
    expect(await etcd.health(url)).toBe(false);
  });
  // The member is still there for the operator's own certificate.
  expect(await once(good, (e) => e.health(url))).toBe(true);
});
