/**
 * etcd's checks of a client certificate beyond chain verification, run on each TLS connection that presents one:
 *
 * - allowed CN (`--peer-cert-allowed-cn`): the certificate's subject CN must be exactly this;
 * - allowed hostname (`--client-cert-allowed-hostname`, `--peer-cert-allowed-hostname`): the certificate must be
 *   valid for this name or IP, as a server certificate would be;
 * - revocation (`--client-crl-file`, `--peer-crl-file`): a certificate whose serial the CRL lists is refused (etcd
 *   compares serials only; the CRL file is re-read when it changes);
 * - SAN (peer listeners, unless `--experimental-peer-skip-client-san-verification`): a certificate that names IPs
 *   or DNS names must name the address the connection comes from: one of its IPs, or a DNS name that resolves to
 *   it (reverse, then forward lookup).
 *
 * A check returns undefined when it passes, or why it failed.
 */
import { promises as dns } from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type * as forge from 'node-forge';
import { ConfigError } from '../config';

export type ClientCertCheck = (cert: tls.PeerCertificate, remoteAddress: string) => string | undefined | Promise<string | undefined>;

export interface ClientCertCheckSettings {
  allowedCN?: string;
  allowedHostname?: string;
  crlFile?: string;
  checkSAN?: boolean;
}

/** Refuses settings etcd refuses: CN and hostname both given, an unreadable or malformed CRL. */
export function validateClientCertSettings(s: ClientCertCheckSettings): void {
  if (s.allowedCN && s.allowedHostname) {
    throw new ConfigError(`AllowedCN and AllowedHostname are mutually exclusive (cn=${JSON.stringify(s.allowedCN)}, hostname=${JSON.stringify(s.allowedHostname)})`);
  }
  if (s.crlFile) readCRL(s.crlFile);
}

export function clientCertChecks(s: ClientCertCheckSettings): ClientCertCheck[] {
  const checks: ClientCertCheck[] = [];
  validateClientCertSettings(s);
  if (s.checkSAN) checks.push(checkSAN);
  if (s.crlFile) checks.push(revocationCheck(s.crlFile));
  if (s.allowedCN) {
    const cn = s.allowedCN;
    checks.push((cert) => (cert.subject?.CN === cn ? undefined : `certificate CN ${JSON.stringify(cert.subject?.CN ?? '')} is not the allowed CN ${JSON.stringify(cn)}`));
  }
  if (s.allowedHostname) {
    const host = s.allowedHostname;
    checks.push((cert) => {
      const err = tls.checkServerIdentity(host, cert);
      return err ? `certificate is not valid for the allowed hostname ${JSON.stringify(host)}: ${err.message}` : undefined;
    });
  }
  return checks;
}

/** The IPs and DNS names of a certificate's subjectAltName ("DNS:a, IP Address:1.2.3.4"). */
export function subjectAltNames(cert: tls.PeerCertificate): { ips: string[]; dnsNames: string[] } {
  const ips: string[] = [];
  const dnsNames: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) {
    if (part.startsWith('IP Address:')) ips.push(normalizeIP(part.slice('IP Address:'.length)));
    else if (part.startsWith('DNS:')) dnsNames.push(part.slice('DNS:'.length).toLowerCase());
  }
  return { ips, dnsNames };
}

function normalizeIP(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4mapped) return v4mapped[1];
  if (net.isIPv6(ip)) {
    // One spelling for every IPv6 address (OpenSSL prints them expanded, sockets compressed).
    const sock = new net.SocketAddress({ address: ip, family: 'ipv6' });
    return sock.address;
  }
  return ip;
}

async function checkSAN(cert: tls.PeerCertificate, remoteAddress: string): Promise<string | undefined> {
  const { ips, dnsNames } = subjectAltNames(cert);
  if (ips.length === 0 && dnsNames.length === 0) return undefined;
  const host = normalizeIP(remoteAddress);
  if (ips.length > 0) {
    if (ips.includes(host)) return undefined;
    if (dnsNames.length === 0) return `certificate is valid for ${ips.join(', ')}, not ${host}`;
  }
  if (await hostInDNS(host, dnsNames)) return undefined;
  return `${JSON.stringify(host)} does not match any of DNSNames ${JSON.stringify(dnsNames)}`;
}

/** Whether the address has a name the certificate lists (reverse lookup), or a listed name resolves to it. */
async function hostInDNS(host: string, dnsNames: string[]): Promise<boolean> {
  const wildcards = dnsNames.filter((n) => n.startsWith('*.')).map((n) => n.slice(1));
  const names = dnsNames.filter((n) => !n.startsWith('*.'));
  const reverse = await dns.reverse(host).catch(() => [] as string[]);
  for (let name of reverse) {
    name = name.replace(/\.$/, '').toLowerCase();
    if (names.includes(name) || wildcards.some((w) => name.endsWith(w))) return true;
  }
  for (const name of names) {
    const addrs = await dns.lookup(name, { all: true }).catch(() => []);
    if (addrs.some((a) => normalizeIP(a.address) === host)) return true;
  }
  return false;
}

/** Hex of a serial number without leading zeros, lower case: one spelling for Node's and the CRL's. */
function serialKey(hex: string): string {
  return hex.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+(?=.)/, '');
}

/** The serials (see serialKey) that a CRL (PEM or DER) lists as revoked. */
export function revokedSerials(crl: Buffer): Set<string> {
  const text = crl.toString('latin1');
  const pem = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  const der = pem ? Buffer.from(pem[1].replace(/\s+/g, ''), 'base64') : crl;
  // node-forge is loaded when a CRL is first read: a start without --client-crl-file needs none of its ~10 MiB.
  const forge = require('node-forge') as typeof import('node-forge');
  const root = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const tbs = (root.value as forge.asn1.Asn1[])[0];
  const fields = tbs.value as forge.asn1.Asn1[];
  const T = forge.asn1.Type;
  let i = 0;
  if (fields[i]?.type === T.INTEGER) i++; // version
  i += 2; // signature algorithm, issuer
  i++; // thisUpdate
  if (fields[i] && (fields[i].type === T.UTCTIME || fields[i].type === T.GENERALIZEDTIME)) i++; // nextUpdate
  const serials = new Set<string>();
  const revoked = fields[i];
  if (revoked && revoked.tagClass === forge.asn1.Class.UNIVERSAL && revoked.type === T.SEQUENCE) {
    for (const entry of revoked.value as forge.asn1.Asn1[]) {
      const serial = (entry.value as forge.asn1.Asn1[])[0];
      serials.add(serialKey(forge.util.bytesToHex(serial.value as string)));
    }
  }
  return serials;
}

function readCRL(file: string): Set<string> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read CRL file ${file}: ${(err as Error).message}`);
  }
  try {
    return revokedSerials(bytes);
  } catch (err) {
    throw new ConfigError(`cannot parse CRL file ${file}: ${(err as Error).message}`);
  }
}

/** The revocation check: the CRL is read now (a bad file stops the start) and again whenever it changes. */
function revocationCheck(file: string): ClientCertCheck {
  let serials = readCRL(file);
  fs.watchFile(file, { interval: 1000, persistent: false }, (curr, prev) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    try {
      serials = readCRL(file);
    } catch {
      // A half-written CRL keeps the previous list until the next change.
    }
  });
  return (cert) => (serials.has(serialKey(cert.serialNumber ?? '')) ? `certificate serial ${cert.serialNumber} revoked` : undefined);
}
