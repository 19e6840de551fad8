/**
 * End to end, spec.tls.auto (test/operator/e2e-env.ts: the built operator, the test API server, real member
 * processes; the process kubelet writes mounted Secrets as files and rewrites them when the Secret changes): the
 * operator makes a CA, a certificate per member and a client certificate; the members serve https client and peer
 * URLs with them and want a client certificate; a client with the one the operator made gets in, one without is
 * refused at the handshake. The operator runs with 30-second certificates here, so they are renewed while the cluster
 * serves: each member presents a new certificate without a restart, and writes go on through it; after the first
 * ones expired, a member killed and restarted rejoins its peers with the renewed ones.
 */
import * as crypto from 'node:crypto';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { KVClient, PutRequest, RangeRequest } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { promiseKV, type PromiseKV } from '../support/v3-server';
import { waitFor } from '../support/kube/kubelet';
import { E2EEnv, LEASE_NS } from './e2e-env';
import { checkRBAC } from './rbac-check';

const NS = 'sec';
const NAME = 'db';

jest.setTimeout(150_000);

const env = new E2EEnv(NS);
let failed = false;
const clients: grpc.Client[] = [];

beforeAll(async () => {
  await env.start('e2e-tls-operator', ['--resync', '2s', '--orphan-grace', '2s', '--failed-member-timeout', '30s', '--auto-tls-validity', '30s', '--log-level', 'debug']);
});
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls !== state.numPassingAsserts) failed = true;
});
afterAll(async () => {
  for (const c of clients) c.close();
  await env.stop(failed, 'e2e-tls');
});

const secret = (name: string): Record<string, Buffer> => {
  const s = env.api.store.get('secrets', NS, name) as { data?: Record<string, string> } | undefined;
  return Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
};
const host = (pod: string): string => `${pod}.${NAME}.${NS}.svc`;
const ipOf = (pod: string): string => env.kubelet.ipOf(NS, pod) as string;

/** A v3 KV client to one member by its IP, the server's certificate checked against the member's DNS name. */
function kv(pod: string, withCert: boolean): PromiseKV {
  const c = secret(`${NAME}-client-tls`);
  const creds = grpc.credentials.createSsl(c['ca.crt'], withCert ? c['tls.key'] : null, withCert ? c['tls.crt'] : null, {
    checkServerIdentity: (_h, cert) => tls.checkServerIdentity(host(pod), cert),
  });
  const client = new KVClient(`${ipOf(pod)}:2379`, creds, { 'grpc.ssl_target_name_override': host(pod), 'grpc.use_local_subchannel_pool': 1 });
  clients.push(client);
  return promiseKV(client);
}

/** The certificate a member presents on its client port now (a new connection each time): its SHA-256 fingerprint. */
function served(pod: string): Promise<string> {
  const c = secret(`${NAME}-client-tls`);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: ipOf(pod), port: 2379, servername: host(pod), ca: c['ca.crt'], cert: c['tls.crt'], key: c['tls.key'], ALPNProtocols: ['h2'] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

interface Status {
  phase?: string;
  readyMembers?: number;
  members?: { name: string; ready: boolean }[];
}
const pods = (): string[] => env.pods(NAME).map((p) => p.name).sort();

test('spec.tls.auto: a CA, a certificate per member and a client certificate in Secrets; the members serve https with them', async () => {
  env.api.store.create('etcdclusters', NS, {
    apiVersion: 'etcd.ts-etcd.io/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: NAME },
    spec: { size: 3, version: '3.4.34', tls: { auto: true }, etcd: { heartbeatInterval: 50, electionTimeout: 500 } },
  });
  await waitFor('3 ready members over TLS', () => {
    const st = (env.etcdCluster(NAME)?.status ?? {}) as Status;
    return st.phase === 'Running' && st.readyMembers === 3 && env.pods(NAME).length === 3 && env.pods(NAME).every((p) => p.ready);
  }, 90_000, 200);
  const names = env.api.store.list('secrets', NS).map((s) => s.metadata.name).sort();
  expect(names).toEqual([`${NAME}-0-tls`, `${NAME}-1-tls`, `${NAME}-2-tls`, `${NAME}-ca`, `${NAME}-client-tls`]);
  const uid = env.etcdCluster(NAME).metadata.uid;
  for (const s of env.api.store.list('secrets', NS)) {
    expect(s.type).toBe('kubernetes.io/tls');
    expect(s.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'EtcdCluster', uid })]);
  }
  // each member's certificate: signed by the CA, for its DNS name and the client Service's
  const ca = new crypto.X509Certificate(secret(`${NAME}-ca`)['tls.crt']);
  for (const p of pods()) {
    const cert = new crypto.X509Certificate(secret(`${p}-tls`)['tls.crt']);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subjectAltName).toContain(`DNS:${host(p)}`);
    expect(cert.subjectAltName).toContain(`DNS:${NAME}-client.${NS}.svc`);
    expect(secret(`${p}-tls`)['ca.crt'].equals(secret(`${NAME}-ca`)['tls.crt'])).toBe(true);
  }
  // the members' URLs are https, client and peer, and both want a certificate from the CA
  for (const p of pods()) {
    const args = ((env.api.store.get('pods', NS, p)?.spec as { containers: { args: string[] }[] }).containers[0].args);
    expect(args).toEqual(expect.arrayContaining([
      '--listen-client-urls=https://0.0.0.0:2379', '--listen-peer-urls=https://0.0.0.0:2380', `--initial-advertise-peer-urls=https://${host(p)}:2380`,
      '--client-cert-auth=true', '--peer-client-cert-auth=true',
    ]));
  }
});

test('with the client certificate the operator made, a client reads and writes through every member; without one it is refused', async () => {
  for (const [i, p] of pods().entries()) {
    const c = kv(p, true);
    await c.put(PutRequest.fromPartial({ key: Buffer.from(`tls/${i}`), value: Buffer.from(p) }));
    const r = await c.range(RangeRequest.fromPartial({ key: Buffer.from('tls/'), rangeEnd: Buffer.from('tls0') }));
    expect(r.kvs.length).toBe(i + 1);
  }
  for (const p of pods()) {
    await expect(kv(p, false).range(RangeRequest.fromPartial({ key: Buffer.from('tls/0') }))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  }
});

test('certificates are renewed before they expire, while serving: each member presents a new one, no restart, no failed write; after the first expired, a restarted member rejoins', async () => {
  const before = new Map(await Promise.all(pods().map(async (p) => [p, await served(p)] as const)));
  const firstExpiry = Math.max(...pods().map((p) => Date.parse(new crypto.X509Certificate(secret(`${p}-tls`)['tls.crt']).validTo)));
  const restarts = env.pods(NAME).map((p) => p.restartCount);
  let stop = false;
  let writes = 0;
  const failures: string[] = [];
  const writer = (async () => {
    for (let i = 0; i < 5000 && !stop; i++) {
      const p = pods()[i % 3];
      try {
        await kv(p, true).put(PutRequest.fromPartial({ key: Buffer.from(`renew/${i}`), value: Buffer.from('x') }));
        writes++;
      } catch (err) {
        failures.push(`${p}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100)); // pace the writes
    }
  })();
  try {
    await waitFor('every member to present a renewed certificate', async () => {
      for (const p of pods()) if ((await served(p)) === before.get(p)) return false;
      return true;
    }, 60_000, 500);
    expect(env.pods(NAME).map((p) => p.restartCount)).toEqual(restarts);
    // once the first certificates have expired, a member that starts again connects to its peers (and they to it)
    // with the renewed ones only
    await waitFor('the first certificates to expire', () => Date.now() > firstExpiry + 1000, 60_000, 200);
    const victim = pods()[1];
    env.kubelet.signal(NS, victim, 'SIGKILL');
    await waitFor(`${victim} restarted and ready, the cluster whole`, () => {
      const p = env.pods(NAME).find((x) => x.name === victim);
      const st = (env.etcdCluster(NAME).status ?? {}) as Status;
      return p !== undefined && p.restartCount > restarts[1] && p.ready && st.phase === 'Running' && st.readyMembers === 3;
    }, 60_000, 200);
    await kv(victim, true).put(PutRequest.fromPartial({ key: Buffer.from('after-expiry'), value: Buffer.from('yes') }));
  } finally {
    stop = true;
    await writer;
  }
  // a write sent to the member while it restarted may fail; every other one went through
  expect(failures.filter((f) => !f.startsWith(`${pods()[1]}:`))).toEqual([]);
  expect(writes).toBeGreaterThan(20);
  const renewed = env.op.logs('renewed a certificate').map((l) => l.secret);
  expect(renewed).toEqual(expect.arrayContaining([`${NAME}-0-tls`, `${NAME}-1-tls`, `${NAME}-2-tls`, `${NAME}-client-tls`]));
  // eslint-disable-next-line no-console
  console.log(`renewed while serving: ${writes} writes, ${renewed.length} renewals`);
});

test("the operator's writes fit the CRD's schema, and its requests the RBAC it has", () => {
  expect(env.api.warnings).toEqual([]);
  expect(checkRBAC(env.api, NS, LEASE_NS)).toEqual(expect.arrayContaining(['|secrets|create', '|secrets|get', '|secrets|update']));
});
