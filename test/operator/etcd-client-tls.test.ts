/**
 * The operator's members-API client over TLS, against our etcd with client-certificate authentication: with the
 * material of spec.tls.operatorSecret (CA, certificate, key, as the operator reads them from the Secret) it reads
 * the members, the leader and the health; without a certificate, or with one from another CA, the member refuses
 * it at the handshake.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdClient, type TLSMaterial } from '../../operator/etcd-client';
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
  await waitFor('the member to be healthy over TLS', () => new EtcdClient(3000, good).health(url));
});

afterAll(async () => {
  await proc?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("with the operator's certificate it reads the members, the leader and the health over https", async () => {
  const etcd = new EtcdClient(3000, good);
  const members = await etcd.members(url);
  expect(members.map((m) => ({ name: m.name, clientURLs: m.clientURLs }))).toEqual([{ name: 'm0', clientURLs: [url] }]);
  expect((await etcd.leader(url))?.id).toBe(members[0].id);
  expect(await etcd.health(url)).toBe(true);
});

test.each([
  ['no certificate', () => caOnly],
  ['a certificate from another CA', () => foreign],
])('with %s it is refused at the handshake (and health says so)', async (_what, tls) => {
  const etcd = new EtcdClient(3000, tls());
  await expect(etcd.members(url)).rejects.toThrow(/GET https:\/\/127\.0\.0\.1:\d+\/v2\/members: /);
  expect(await etcd.health(url)).toBe(false);
  // The member is still there for the operator's own certificate.
  expect(await new EtcdClient(3000, good).health(url)).toBe(true);
});
