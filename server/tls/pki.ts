/**
 * Making X.509 certificates (node-forge), for automatic TLS and for the tests and benchmarks that need a CA:
 * RSA 2048 keys made by Node's crypto, certificates for servers and clients alike.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import type forge from 'node-forge';

/** node-forge is loaded when a certificate is first made: a plain start makes none, and forge costs ~10 MiB resident. */
function loadForge(): typeof forge {
  return require('node-forge') as typeof forge;
}

export interface KeyAndCertificate {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  subject: { commonName?: string; organizationName?: string };
  /** Signed by this CA; self-signed when absent. */
  issuer?: KeyAndCertificate;
  isCA?: boolean;
  /** IP addresses and DNS names (subject alternative names). */
  hosts?: string[];
  notBefore: Date;
  notAfter: Date;
  /** Extended key usages (default both: one certificate for servers and clients). */
  usage?: { serverAuth?: boolean; clientAuth?: boolean };
}

export function createCertificate(r: CertificateRequest): KeyAndCertificate {
  const forge = loadForge();
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
  cert.serialNumber = '01' + crypto.randomBytes(16).toString('hex');
  cert.validity.notBefore = r.notBefore;
  cert.validity.notAfter = r.notAfter;
  const subject = Object.entries(r.subject).map(([name, value]) => ({ name, value }));
  cert.setSubject(subject);
  cert.setIssuer(r.issuer ? r.issuer.cert.subject.attributes : subject);
  const altNames = (r.hosts ?? []).map((h) => (net.isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions(
    r.isCA
      ? [
          { name: 'basicConstraints', cA: true },
          { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
        ]
      : [
          { name: 'basicConstraints', cA: false },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
          { name: 'extKeyUsage', ...(r.usage ?? { serverAuth: true, clientAuth: true }) },
          ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
        ],
  );
  cert.sign(r.issuer ? r.issuer.key : key, forge.md.sha256.create());
  return { cert, key, certPem: forge.pki.certificateToPem(cert), keyPem };
}
