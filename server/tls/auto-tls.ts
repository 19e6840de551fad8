/**
 * --auto-tls / --peer-auto-tls: a self-signed certificate generated into the data dir on first start and reused
 * afterwards, as etcd does (<data-dir>/fixtures/client and <data-dir>/fixtures/peer, cert.pem and key.pem).
 * Encryption without a CA: whoever connects cannot verify it, so etcd skips verification of such peers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createCertificate } from './pki';

export const SELF_SIGNED_VALIDITY_DAYS = 365;

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

/** The hosts of listen URLs, for the certificate's subject alternative names. */
export function hostsOf(urls: string[]): string[] {
  const hosts = new Set<string>();
  for (const u of urls) {
    const h = new URL(u).hostname.replace(/^\[|\]$/g, '');
    if (h !== '') hosts.add(h);
  }
  return [...hosts];
}

/** Reuses the certificate in `dir` if there is one, or makes one for these hosts. */
export function ensureSelfSignedCert(dir: string, hosts: string[], now = new Date()): CertFiles & { generated: boolean } {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return { certFile, keyFile, generated: false };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = createCertificate({
    subject: { organizationName: 'etcd' },
    hosts,
    notBefore: now,
    notAfter: new Date(now.getTime() + SELF_SIGNED_VALIDITY_DAYS * 86400_000),
  });
  // Written aside and renamed, so that a crash never leaves half a certificate to reuse.
  fs.writeFileSync(`${keyFile}.tmp`, made.keyPem, { mode: 0o600 });
  fs.writeFileSync(`${certFile}.tmp`, made.certPem, { mode: 0o644 });
  fs.renameSync(`${keyFile}.tmp`, keyFile);
  fs.renameSync(`${certFile}.tmp`, certFile);
  return { certFile, keyFile, generated: true };
}
