/**
 * spec.tls.auto's certificates (operator/certs.ts) against the test API server, with the clock in the test's hand:
 * made once, left alone while valid, made again with a third of their validity left, always by the cluster's CA.
 */
import * as crypto from 'node:crypto';
import { KubeApiServer } from '../support/kube/api-server';
import { KubeApi } from '../../operator/kube-api';
import { CertManager, issuedBy, memberHosts, renewalTime } from '../../operator/certs';
import type { EtcdCluster } from '../../operator/api/types';

const NS = 'c';
const api = new KubeApiServer();
let kube: KubeApi;
let now = Date.parse('2024-03-10T10:00:00Z');
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
let cluster: EtcdCluster;
const HOUR = 3_600_000;

beforeAll(async () => {
  await api.start();
  api.store.create('namespaces', undefined, { metadata: { name: NS } });
  // a real owner: the Secrets are owned by it (the garbage collector deletes what an absent owner owns)
  cluster = api.store.create('etcdclusters', NS, { metadata: { name: 'db' }, spec: { size: 3, tls: { auto: true } } }) as unknown as EtcdCluster;
  kube = new KubeApi({ server: api.url, configure: async () => undefined });
});
afterAll(() => api.stop());

const data = (name: string): Record<string, string> => Object.fromEntries(Object.entries((api.store.get('secrets', NS, name)?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
const certs = (): CertManager => new CertManager({ kube, log: quiet, validityMs: 90 * 24 * HOUR, now: () => now });

test('the CA and the client certificate are made once; the client certificate is the root user', async () => {
  const renewAt = await certs().ensureShared(cluster);
  const ca = data('db-ca');
  const client = data('db-client-tls');
  expect(new crypto.X509Certificate(ca['tls.crt']).ca).toBe(true);
  expect(issuedBy(client['tls.crt'], ca['tls.crt'])).toBe(true);
  expect(client['ca.crt']).toBe(ca['tls.crt']);
  expect(new crypto.X509Certificate(client['tls.crt']).subject).toMatch(/CN=root/);
  expect(renewAt).toBe(renewalTime(client['tls.crt']));
  // 60 days of 90 (a third left): renewed then, not before
  expect(Math.round((renewAt - now) / (24 * HOUR))).toBe(60);
  const rv = api.store.get('secrets', NS, 'db-client-tls')?.metadata.resourceVersion;
  await certs().ensureShared(cluster);
  expect(api.store.get('secrets', NS, 'db-client-tls')?.metadata.resourceVersion).toBe(rv);
  expect(data('db-ca')).toEqual(ca);
});

test("a member's certificate: for its names, server and client use, by the CA; renewed with a third of its validity left", async () => {
  await certs().ensureMember(cluster, 'db-1');
  const first = data('db-1-tls');
  const x = new crypto.X509Certificate(first['tls.crt']);
  for (const h of memberHosts('db', NS, 'db-1').filter((n) => n !== '127.0.0.1')) expect(x.subjectAltName).toContain(`DNS:${h}`);
  expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
  expect(memberHosts('db', NS, 'db-1')).toEqual(expect.arrayContaining(['db-1.db.c.svc', 'db-client.c.svc', 'db-client.c.svc.cluster.local']));
  expect(issuedBy(first['tls.crt'], data('db-ca')['tls.crt'])).toBe(true);
  now += 59 * 24 * HOUR;
  await certs().ensureMember(cluster, 'db-1');
  expect(data('db-1-tls')).toEqual(first);
  now += 2 * 24 * HOUR;
  const next = await certs().ensureMember(cluster, 'db-1');
  const renewed = data('db-1-tls');
  expect(renewed['tls.crt']).not.toBe(first['tls.crt']);
  expect(renewed['ca.crt']).toBe(first['ca.crt']);
  expect(next - now).toBeGreaterThan(59 * 24 * HOUR);
  await certs().deleteMember(cluster, 'db-1');
  expect(api.store.get('secrets', NS, 'db-1-tls')).toBeUndefined();
});

test('a certificate not issued by the CA (the CA made again) is made again at once', async () => {
  await certs().ensureMember(cluster, 'db-2');
  const old = data('db-2-tls')['tls.crt'];
  api.store.delete('secrets', NS, 'db-ca');
  await certs().ensureMember(cluster, 'db-2');
  const now2 = data('db-2-tls');
  expect(now2['tls.crt']).not.toBe(old);
  expect(issuedBy(now2['tls.crt'], data('db-ca')['tls.crt'])).toBe(true);
  expect(issuedBy(old, data('db-ca')['tls.crt'])).toBe(false);
});
