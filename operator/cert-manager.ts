/**
 * spec.tls.certManager: cert-manager issues the certificates. The operator asks for them as `cert-manager.io/v1`
 * Certificate resources owned by the EtcdCluster, named after the Secrets spec.tls.auto would make:
 *  - `<pod>-tls`, one per member: server and client use (peers authenticate each other), for the member's DNS names,
 *    the peer and client Services', localhost and 127.0.0.1;
 *  - `<cluster>-client-tls`: a client certificate (CN root) for the operator and the backup Jobs.
 * cert-manager writes each Secret (tls.crt, tls.key, ca.crt) and renews it; members reload changed files. What is
 * requested and issued is observed here; when to request one is the planner's decision.
 */
import { clientTLSSecretName, memberTLSSecretName, peerServiceName } from './api/naming';
import type { CertManagerTLS, EtcdCluster } from './api/types';
import { ApiError, KubeApi, paths } from './kube-api';
import { memberHosts } from './certs';
import type { CertificatesView } from './planner';
import { clusterSelector, ownedLabels, ownerRef, type KObject } from './resources';

export const CERT_MANAGER_GV = 'cert-manager.io/v1';
export const CERTIFICATES = 'certificates';
/** The CRD whose absence the operator reports. */
export const CERTIFICATE_CRD = 'certificates.cert-manager.io';

export interface CertificateObject extends KObject {
  spec: {
    secretName: string;
    commonName: string;
    dnsNames?: string[];
    ipAddresses?: string[];
    usages: string[];
    issuerRef: { name: string; kind: string; group: string };
    duration?: string;
    renewBefore?: string;
  };
}


const isIP = (h: string): boolean => /^[\d.]+$/.test(h) || h.includes(':');

/** The Certificate for a member (`pod`) or, without one, the cluster's client certificate (pure). */
export function certificateFor(c: EtcdCluster, cm: CertManagerTLS, pod?: string): CertificateObject {
  const cluster = c.metadata.name as string;
  const ns = c.metadata.namespace as string;
  const secretName = pod ? memberTLSSecretName(pod) : clientTLSSecretName(cluster);
  const hosts = pod ? [...memberHosts(cluster, ns, pod), peerServiceName(cluster), `${peerServiceName(cluster)}.${ns}.svc`] : [];
  return {
    apiVersion: CERT_MANAGER_GV,
    kind: 'Certificate',
    metadata: { name: secretName, namespace: ns, labels: ownedLabels(cluster), ownerReferences: [ownerRef(c)] },
    spec: {
      secretName,
      commonName: pod ?? 'root',
      ...(pod ? { dnsNames: [...new Set(hosts.filter((h) => !isIP(h)))], ipAddresses: hosts.filter(isIP) } : {}),
      usages: ['digital signature', 'key encipherment', ...(pod ? ['server auth'] : []), 'client auth'],
      issuerRef: { name: cm.issuerRef.name, kind: cm.issuerRef.kind ?? 'Issuer', group: cm.issuerRef.group ?? 'cert-manager.io' },
      ...(cm.duration ? { duration: cm.duration } : {}),
      ...(cm.renewBefore ? { renewBefore: cm.renewBefore } : {}),
    },
  };
}

export class CertificateRequests {
  constructor(private readonly kube: KubeApi) {}

  /** The cluster's Certificates and which of their Secrets are filled; not installed when the API has no such resource. */
  async observe(c: EtcdCluster): Promise<CertificatesView> {
    const ns = c.metadata.namespace as string;
    let items: CertificateObject[];
    try {
      items = (await this.kube.list<CertificateObject>(paths.group(CERT_MANAGER_GV, ns, CERTIFICATES), clusterSelector(c.metadata.name as string))).items;
    } catch (e) {
      // the collection itself is not found: nothing serves cert-manager.io/v1 certificates (its CRD is not installed)
      if (e instanceof ApiError && e.isNotFound) return { installed: false, requested: [], issued: [] };
      throw e;
    }
    const mine = items.filter((x) => (x.metadata.ownerReferences ?? []).some((r) => r.uid === c.metadata.uid) && !x.metadata.deletionTimestamp);
    const issued = await Promise.all(
      mine.map(async (x) => {
        const s = await this.kube.get<{ data?: Record<string, string> }>(paths.core(ns, 'secrets', x.spec.secretName));
        return s?.data?.['tls.crt'] && s.data['tls.key'] && s.data['ca.crt'] ? x.spec.secretName : undefined;
      }),
    );
    return { installed: true, requested: mine.map((x) => x.spec.secretName), issued: issued.filter((x): x is string => x !== undefined) };
  }

  /** Asks for a member's (or the client) certificate; one already asked for stays as it is. */
  async request(c: EtcdCluster, cm: CertManagerTLS, pod?: string): Promise<void> {
    try {
      await this.kube.create(paths.group(CERT_MANAGER_GV, c.metadata.namespace as string, CERTIFICATES), certificateFor(c, cm, pod));
    } catch (e) {
      if (!(e instanceof ApiError && e.isAlreadyExists)) throw e;
    }
  }

  /** A removed member's Certificate goes with it, and its Secret (cert-manager leaves Secrets behind). */
  async deleteMember(c: EtcdCluster, pod: string): Promise<void> {
    const ns = c.metadata.namespace as string;
    await this.kube.delete(paths.group(CERT_MANAGER_GV, ns, CERTIFICATES, memberTLSSecretName(pod)));
    await this.kube.delete(paths.core(ns, 'secrets', memberTLSSecretName(pod)));
  }
}
