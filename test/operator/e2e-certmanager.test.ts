/**
 * End to end, spec.tls.certManager (test/operator/e2e-env.ts: the built operator, the test API server, real member
 * processes). cert-manager cannot run here: test/support/kube/cert-manager.ts installs its Certificate CRD and stands
 * in for its controller, an Issuer that writes each Certificate's Secret with a certificate from a test CA. Without
 * the CRD the operator says cert-manager is not installed and creates nothing; once it is, the operator asks for a
 * client certificate and one per member and starts each member once its Secret is there; the members serve https
 * client and peer URLs with cert-manager's certificates; a client with a certificate from the test CA is served, one
 * without is refused.
 */
import * as crypto from 'node:crypto';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { KVClient, PutRequest, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { promiseKV, type PromiseKV } from '../support/v3-server';
import { waitFor } from '../support/kube/kubelet';
import { certificateCRD, TestIssuer } from '../support/kube/cert-manager';
import { E2EEnv, LEASE_NS } from './e2e-env';
import { checkRBAC } from './rbac-check';

const NS = 'cm';
const NAME = 'db';

jest.setTimeout(150_000);

const env = new E2EEnv(NS);
let issuer: TestIssuer;
let failed = false;
const clients: grpc.Client[] = [];

beforeAll(async () => {
  await env.start('e2e-certmanager-operator', ['--resync', '2s', '--orphan-grace', '2s', '--failed-member-timeout', '30s', '--log-level', 'debug']);
  issuer = new TestIssuer(env.api, 'test-ca', 'Issuer');
});
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});
afterAll(async () => {
  issuer?.stop();
  for (const c of clients) c.close();
  await env.stop(failed, 'e2e-certmanager');
});

const secret = (name: string): Record<string, Buffer> => {
  const s = env.api.store.get('secrets', NS, name) as { data?: Record<string, string> } | undefined;
  return Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
};
const host = (pod: string): string => `${pod}.${NAME}.${NS}.svc`;
const ipOf = (pod: string): string => env.kubelet.ipOf(NS, pod) as string;
const pods = (): string[] => env.pods(NAME).map((p) => p.name).sort();
const caPem = (): string => issuer.ca.certPem;

/** A v3 KV client to one member by its IP, checking the server's certificate against the test CA and its DNS name. */
function kv(pod: string, cert?: { certPem: string; keyPem: string }): PromiseKV {
  const creds = grpc.credentials.createSsl(Buffer.from(caPem()), cert ? Buffer.from(cert.keyPem) : null, cert ? Buffer.from(cert.certPem) : null, {
    checkServerIdentity: (_h, c) => tls.checkServerIdentity(host(pod), c),
  });
  const client = new KVClient(`${ipOf(pod)}:2379`, creds, { 'grpc.ssl_target_name_override': host(pod), 'grpc.use_local_subchannel_pool': 1 });
  clients.push(client);
  return promiseKV(client);
}

/** The certificate a member presents on its client port (PEM-free: its SHA-256 fingerprint). */
function served(pod: string, cert: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: ipOf(pod), port: 2379, servername: host(pod), ca: caPem(), cert: cert.certPem, key: cert.keyPem, ALPNProtocols: ['h2'] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface CertificateObject {
  metadata: { name: string; ownerReferences?: { kind: string; uid: string }[] };
  spec: { secretName: string; commonName: string; dnsNames?: string[]; ipAddresses?: string[]; usages: string[]; issuerRef: Record<string, string>; duration?: string; renewBefore?: string };
}

test("without cert-manager's CRD the operator says so (condition and event) and creates no member", async () => {
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME },
    spec: { size: 3, version: '3.4.34', tls: { certManager: { issuerRef: { name: 'test-ca' }, duration: '2160h', renewBefore: '360h' } }, etcd: { heartbeatInterval: 50, electionTimeout: 500 } },
  });
  await waitFor('a Degraded condition saying cert-manager is not installed', () => {
    const conds = (env.status(NAME).conditions ?? []) as Condition[];
    return conds.some((c) => c.type === 'Degraded' && c.status === 'True' && c.reason === 'CertManagerNotInstalled');
  }, 30_000, 200);
  const cond = ((env.status(NAME).conditions ?? []) as Condition[]).find((c) => c.type === 'Degraded') as Condition;
  expect(cond.message).toContain('certificates.cert-manager.io is not installed');
  await waitFor('a Warning event saying so', () => env.api.store.list('events', NS).some((e) => e.type === 'Warning' && e.reason === 'CertManagerNotInstalled'), 10_000, 200);
  expect(env.api.store.list('pods', NS)).toEqual([]);
  expect(env.api.store.list('secrets', NS)).toEqual([]);
});

test('with the CRD and an Issuer: a Certificate per member and a client one; every member starts once its Secret is there and serves https with it', async () => {
  env.api.store.create('customresourcedefinitions', undefined, certificateCRD());
  issuer.start();
  await waitFor('3 ready members over TLS', () => {
    const st = env.status(NAME);
    return st.phase === 'Running' && st.readyMembers === 3 && env.pods(NAME).length === 3 && env.pods(NAME).every((p) => p.ready);
  }, 120_000, 200);
  const uid = env.etcdCluster(NAME).metadata.uid;
  const certs = env.api.store.list('certificates', NS) as unknown as CertificateObject[];
  expect(certs.map((c) => c.metadata.name).sort()).toEqual([`${NAME}-0-tls`, `${NAME}-1-tls`, `${NAME}-2-tls`, `${NAME}-client-tls`]);
  for (const c of certs) {
    expect(c.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'EtcdCluster', uid })]);
    expect(c.spec.secretName).toBe(c.metadata.name);
    expect(c.spec.issuerRef).toEqual({ name: 'test-ca', kind: 'Issuer', group: 'cert-manager.io' });
    expect([c.spec.duration, c.spec.renewBefore]).toEqual(['2160h', '360h']);
  }
  const client = certs.find((c) => c.metadata.name === `${NAME}-client-tls`) as CertificateObject;
  expect(client.spec).toMatchObject({ commonName: 'root', usages: ['digital signature', 'key encipherment', 'client auth'] });
  for (const p of pods()) {
    const c = certs.find((x) => x.metadata.name === `${p}-tls`) as CertificateObject;
    expect(c.spec.commonName).toBe(p);
    expect(c.spec.usages).toEqual(['digital signature', 'key encipherment', 'server auth', 'client auth']);
    expect(c.spec.dnsNames).toEqual(expect.arrayContaining([host(p), `${NAME}-client`, `${NAME}-client.${NS}.svc`, `${NAME}-client.${NS}.svc.cluster.local`, NAME, `${NAME}.${NS}.svc`, 'localhost']));
    expect(c.spec.ipAddresses).toEqual(['127.0.0.1']);
    // the member's Secret is the issuer's, mounted for its client and peer URLs
    const leaf = new crypto.X509Certificate(secret(`${p}-tls`)['tls.crt']);
    expect(leaf.verify(new crypto.X509Certificate(caPem()).publicKey)).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:${host(p)}`);
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    const args = (env.api.store.get('pods', NS, p)?.spec as { containers: { args: string[] }[] }).containers[0].args;
    expect(args).toEqual(expect.arrayContaining(['--listen-client-urls=https://0.0.0.0:2379', '--listen-peer-urls=https://0.0.0.0:2380', `--initial-advertise-peer-urls=https://${host(p)}:2380`, '--client-cert-auth=true', '--peer-client-cert-auth=true']));
    // and what the member presents
    expect(await served(p, issuer.sign('probe'))).toBe(leaf.fingerprint256);
  }
  // each member's pod came after its Secret
  for (const p of pods()) {
    const s = env.api.store.get('secrets', NS, `${p}-tls`);
    const pod = env.api.store.get('pods', NS, p);
    expect(Number(s?.metadata.resourceVersion)).toBeLessThan(Number(pod?.metadata.resourceVersion));
  }
  // events: each certificate asked for once, the seed's before the seed
  const events = env.api.store.list('events', NS).sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion)).map((e) => `${e.reason as string}: ${e.message as string}`);
  const asked = events.filter((e) => e.startsWith('CertificateRequested'));
  expect(asked.length).toBe(4);
  expect(asked[0]).toContain(`Certificate ${NAME}-client-tls`);
  expect(events.findIndex((e) => e.includes(`Certificate ${NAME}-0-tls`))).toBeLessThan(events.findIndex((e) => e.startsWith('Bootstrapping')));
});

test('a client with a certificate from the Issuer\'s CA reads and writes through every member; one without is refused', async () => {
  const mine = issuer.sign('app');
  for (const [i, p] of pods().entries()) {
    const c = kv(p, mine);
    await c.put(PutRequest.fromPartial({ key: Buffer.from(`cm/${i}`), value: Buffer.from(p) }));
    const r = await c.range(RangeRequest.fromPartial({ key: Buffer.from('cm/'), rangeEnd: Buffer.from('cm0') }));
    expect(r.kvs.length).toBe(i + 1);
  }
  for (const p of pods()) {
    await expect(kv(p).range(RangeRequest.fromPartial({ key: Buffer.from('cm/0') }))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  }
});

test("the operator's writes fit the CRDs' schemas, and its requests the RBAC it has", () => {
  expect(env.api.warnings).toEqual([]);
  expect(checkRBAC(env.api, NS, LEASE_NS)).toEqual(expect.arrayContaining(['cert-manager.io|certificates|create', 'cert-manager.io|certificates|list']));
});
