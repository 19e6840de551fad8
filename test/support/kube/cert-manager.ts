/**
 * A stand-in for cert-manager in the test API server (cert-manager's controller cannot run here): its Certificate
 * CRD (the fields of cert-manager.io/v1 the operator writes), and an issuer that watches Certificate objects naming
 * it in issuerRef and writes each one's Secret (kubernetes.io/tls: tls.crt, tls.key, ca.crt) with a certificate from
 * its own CA, for the Certificate's commonName, dnsNames and ipAddresses and with its usages, as cert-manager's CA
 * Issuer does; the Certificate's status gets Ready=True.
 */
import { createCertificate, type KeyAndCertificate } from '../../../server/tls/pki';
import type { KubeApiServer, KObj } from './api-server';

const str = { type: 'string' };
const strs = { type: 'array', items: str };

/** cert-manager's CustomResourceDefinition for certificates.cert-manager.io (the fields used here). */
export function certificateCRD(): KObj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'certificates.cert-manager.io' },
    spec: {
      group: 'cert-manager.io',
      names: { kind: 'Certificate', plural: 'certificates', singular: 'certificate', shortNames: ['cert', 'certs'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                apiVersion: str,
                kind: str,
                metadata: { type: 'object' },
                spec: {
                  type: 'object',
                  required: ['issuerRef', 'secretName'],
                  properties: {
                    secretName: str,
                    commonName: str,
                    dnsNames: strs,
                    ipAddresses: strs,
                    usages: { type: 'array', items: { type: 'string', enum: ['digital signature', 'key encipherment', 'server auth', 'client auth'] } },
                    duration: str,
                    renewBefore: str,
                    issuerRef: { type: 'object', required: ['name'], properties: { name: str, kind: str, group: str } },
                  },
                },
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
        },
      ],
    },
  } as unknown as KObj;
}

interface Certificate extends KObj {
  spec: { secretName: string; commonName?: string; dnsNames?: string[]; ipAddresses?: string[]; usages?: string[]; issuerRef: { name: string; kind?: string } };
}

export class TestIssuer {
  readonly ca: KeyAndCertificate;
  /** Secrets written, in order (namespace/name). */
  readonly issued: string[] = [];
  private stopWatch?: () => void;

  /** `name`/`kind`: the issuerRef this issuer answers to. */
  constructor(
    private readonly api: KubeApiServer,
    readonly name = 'test-ca',
    readonly kind = 'Issuer',
  ) {
    this.ca = createCertificate({ subject: { commonName: 'test cert-manager CA' }, isCA: true, notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 86400_000) });
  }

  /** Issues what is asked for now and from now on. */
  start(): void {
    this.stopWatch = this.api.store.onChange((c) => {
      if (c.rt.plural === 'certificates' && c.type !== 'DELETED') setImmediate(() => this.handle(c.obj as Certificate));
    });
    for (const c of this.api.store.list('certificates')) this.handle(c as Certificate);
  }
  stop(): void {
    this.stopWatch?.();
  }

  /** A certificate from this issuer's CA (for test clients). */
  sign(commonName: string, hosts: string[] = [], usage = { clientAuth: true }): KeyAndCertificate {
    return createCertificate({ subject: { commonName }, issuer: this.ca, hosts, usage, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000) });
  }

  private handle(cert: Certificate): void {
    const ns = cert.metadata.namespace as string;
    const ref = cert.spec.issuerRef;
    if (ref.name !== this.name || (ref.kind ?? 'Issuer') !== this.kind) return;
    if (this.api.store.get('secrets', ns, cert.spec.secretName)) return;
    const usages = cert.spec.usages ?? [];
    const made = createCertificate({
      subject: { commonName: cert.spec.commonName ?? cert.spec.dnsNames?.[0] ?? cert.metadata.name },
      issuer: this.ca,
      hosts: [...(cert.spec.dnsNames ?? []), ...(cert.spec.ipAddresses ?? [])],
      usage: { serverAuth: usages.includes('server auth'), clientAuth: usages.includes('client auth') },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
    });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    try {
      this.api.store.create('secrets', ns, {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: cert.spec.secretName, annotations: { 'cert-manager.io/certificate-name': cert.metadata.name as string } },
        data: { 'tls.crt': b64(made.certPem), 'tls.key': b64(made.keyPem), 'ca.crt': b64(this.ca.certPem) },
      } as KObj);
    } catch {
      return; // written meanwhile
    }
    this.issued.push(`${ns}/${cert.spec.secretName}`);
    const live = this.api.store.get('certificates', ns, cert.metadata.name as string);
    if (live) this.api.store.update('certificates', ns, live.metadata.name as string, { ...live, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Issued' }] } }, 'status');
  }
}
