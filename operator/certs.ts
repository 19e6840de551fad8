/**
 * spec.tls.auto: the certificates the operator makes and renews, in Secrets owned by the EtcdCluster (type
 * kubernetes.io/tls: tls.crt, tls.key, ca.crt), made with the server's certificate code (server/tls/pki.ts):
 *  - `<cluster>-ca`: the cluster's CA (10 years; not renewed — a new CA would need every client to trust it);
 *  - `<pod>-tls`, one per member: its certificate for its client and peer URLs (server and client use, as peers
 *    authenticate each other), for the member's DNS names, the client Service's, localhost and 127.0.0.1;
 *  - `<cluster>-client-tls`: a client certificate (CN root, so that it is the root user if auth is enabled), which
 *    the operator and the backup Jobs present, and applications may too.
 * Each is made again once less than a third of its validity is left; members read renewed files without a restart
 * (the server reloads certificate files that change), the kubelet updating the mounted Secret.
 */
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { createCertificate, type KeyAndCertificate } from '../server/tls/pki';
import { caSecretName, clientServiceName, clientTLSSecretName, memberHost, memberTLSSecretName } from './api/naming';
import type { EtcdCluster } from './api/types';
import { ApiError, KubeApi, paths } from './kube-api';
import { ownedLabels, ownerRef, type KObject } from './resources';
import type { Logger } from './reconciler';

const CA_VALIDITY_MS = 10 * 365 * 86_400_000;
/** Certificates are valid from a little before they are made (clocks of members and clients differ). */
const backdate = (validityMs: number): number => Math.min(5 * 60_000, validityMs / 10);

interface SecretObject extends KObject {
  type?: string;
  data?: Record<string, string>;
}

/** When a certificate (PEM) should be made again: a third of its validity before it ends. */
export function renewalTime(certPem: string): number {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return to - (to - from) / 3;
}

/** Whether a certificate was issued by this CA (a CA made again makes every certificate before it worthless). */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    return new X509Certificate(certPem).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false;
  }
}

/** A member's names: its own DNS name (short and with the cluster domain), the client Service's, and local ones. */
export function memberHosts(cluster: string, namespace: string, pod: string): string[] {
  const own = memberHost(cluster, namespace, pod);
  const svc = clientServiceName(cluster);
  return [own, `${own}.cluster.local`, svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.cluster.local`, 'localhost', '127.0.0.1'];
}

export interface CertManagerOptions {
  kube: KubeApi;
  log: Logger;
  /** How long a member's or the client certificate is valid. */
  validityMs: number;
  now?: () => number;
}

export class CertManager {
  private readonly now: () => number;
  constructor(private readonly o: CertManagerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The CA and the client certificate, made or renewed; when to look again. */
  async ensureShared(c: EtcdCluster): Promise<number> {
    const cluster = c.metadata.name as string;
    const ca = await this.ca(c);
    return this.ensureLeaf(c, clientTLSSecretName(cluster), ca, { commonName: 'root' }, [], { clientAuth: true });
  }

  /** A member's certificate, made or renewed (before its pod is created, then on every reconcile); when to look again. */
  async ensureMember(c: EtcdCluster, pod: string): Promise<number> {
    const ca = await this.ca(c);
    return this.ensureLeaf(c, memberTLSSecretName(pod), ca, { commonName: pod }, memberHosts(c.metadata.name as string, c.metadata.namespace as string, pod), { serverAuth: true, clientAuth: true });
  }

  /** A removed member's certificate goes with it. */
  async deleteMember(c: EtcdCluster, pod: string): Promise<void> {
    await this.o.kube.delete(paths.core(c.metadata.namespace as string, 'secrets', memberTLSSecretName(pod)));
  }

  private async ca(c: EtcdCluster): Promise<KeyAndCertificate> {
    const ns = c.metadata.namespace as string;
    const name = caSecretName(c.metadata.name as string);
    const live = await this.o.kube.get<SecretObject>(paths.core(ns, 'secrets', name));
    if (live?.data?.['tls.crt'] && live.data['tls.key']) {
      const certPem = Buffer.from(live.data['tls.crt'], 'base64').toString();
      const keyPem = Buffer.from(live.data['tls.key'], 'base64').toString();
      return { certPem, keyPem, cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey };
    }
    const now = this.now();
    const made = createCertificate({
      subject: { commonName: `${c.metadata.name} etcd CA`, organizationName: 'ts-etcd' },
      isCA: true,
      notBefore: new Date(now - backdate(CA_VALIDITY_MS)),
      notAfter: new Date(now + CA_VALIDITY_MS),
    });
    const secret = this.secret(c, name, made.certPem, made.keyPem, made.certPem);
    try {
      await this.o.kube.create(paths.core(ns, 'secrets'), secret);
      this.o.log.info('made the cluster CA', { cluster: `${ns}/${c.metadata.name}`, secret: name });
      return made;
    } catch (e) {
      // made meanwhile (another reconcile): that one is the CA
      if (e instanceof ApiError && e.isAlreadyExists) return this.ca(c);
      throw e;
    }
  }

  private async ensureLeaf(c: EtcdCluster, name: string, ca: KeyAndCertificate, subject: { commonName: string }, hosts: string[], usage: { serverAuth?: boolean; clientAuth?: boolean }): Promise<number> {
    const ns = c.metadata.namespace as string;
    const path = paths.core(ns, 'secrets', name);
    const live = await this.o.kube.get<SecretObject>(path);
    const now = this.now();
    const current = live?.data?.['tls.crt'] ? Buffer.from(live.data['tls.crt'], 'base64').toString() : undefined;
    if (current && issuedBy(current, ca.certPem) && renewalTime(current) > now) return renewalTime(current);
    const made = createCertificate({
      subject: { ...subject, organizationName: 'ts-etcd' },
      issuer: ca,
      hosts,
      usage,
      notBefore: new Date(now - backdate(this.o.validityMs)),
      notAfter: new Date(now + this.o.validityMs),
    });
    const secret = this.secret(c, name, made.certPem, made.keyPem, ca.certPem);
    if (!live) {
      try {
        await this.o.kube.create(paths.core(ns, 'secrets'), secret);
      } catch (e) {
        if (!(e instanceof ApiError && e.isAlreadyExists)) throw e;
        return now; // made meanwhile: look at it next time
      }
    } else {
      // a compare-and-swap on what we read: a concurrent renewal wins, ours is dropped (409)
      await this.o.kube.replace(path, { ...secret, metadata: { ...secret.metadata, resourceVersion: live.metadata.resourceVersion } });
    }
    this.o.log.info(current ? 'renewed a certificate' : 'made a certificate', { cluster: `${ns}/${c.metadata.name}`, secret: name, notAfter: made.cert.validity.notAfter.toISOString() });
    return renewalTime(made.certPem);
  }

  private secret(c: EtcdCluster, name: string, certPem: string, keyPem: string, caPem: string): SecretObject {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name, namespace: c.metadata.namespace, labels: ownedLabels(c.metadata.name as string), ownerReferences: [ownerRef(c)] },
      data: { 'tls.crt': b64(certPem), 'tls.key': b64(keyPem), 'ca.crt': b64(caPem) },
    };
  }
}
