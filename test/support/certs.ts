/** Certificates made at test time (never committed): CAs, and certificates they sign, as PEM files. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KeyAndCertificate, createCertificate } from '../../server/tls/pki';

export interface Issued extends KeyAndCertificate {
  certFile: string;
  keyFile: string;
}

function write(dir: string, name: string, made: KeyAndCertificate): Issued {
  fs.mkdirSync(dir, { recursive: true });
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  fs.writeFileSync(certFile, made.certPem);
  fs.writeFileSync(keyFile, made.keyPem, { mode: 0o600 });
  return { ...made, certFile, keyFile };
}

export function makeCA(dir: string, name: string): Issued {
  return write(dir, name, createCertificate({ subject: { commonName: name }, isCA: true, notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 365 * 86400_000) }));
}

export interface IssueOptions {
  cn: string;
  hosts?: string[];
  notBefore?: Date;
  notAfter?: Date;
  usage?: { serverAuth?: boolean; clientAuth?: boolean };
}

/** A certificate for servers and clients alike (serverAuth and clientAuth), signed by `ca`. */
export function issue(dir: string, name: string, ca: Issued, o: IssueOptions): Issued {
  return write(
    dir,
    name,
    createCertificate({
      subject: { commonName: o.cn },
      issuer: ca,
      hosts: o.hosts,
      notBefore: o.notBefore ?? new Date(Date.now() - 3600_000),
      notAfter: o.notAfter ?? new Date(Date.now() + 30 * 86400_000),
      usage: o.usage,
    }),
  );
}

/**
 * A certificate revocation list signed by `ca` that lists `revoked` (made with `openssl ca`, as an operator would);
 * written as PEM to `file` (replaced atomically by a rename, as a rotation would). Returns the file.
 */
export function makeCRL(file: string, ca: Issued, revoked: Issued[]): string {
  const work = fs.mkdtempSync(path.join(path.dirname(file), 'crl-work-'));
  try {
    fs.writeFileSync(path.join(work, 'index.txt'), '');
    fs.writeFileSync(path.join(work, 'crlnumber'), '01\n');
    const cnf = path.join(work, 'ca.cnf');
    fs.writeFileSync(
      cnf,
      [
        '[ca]',
        'default_ca = test_ca',
        '[test_ca]',
        `database = ${path.join(work, 'index.txt')}`,
        `crlnumber = ${path.join(work, 'crlnumber')}`,
        `certificate = ${ca.certFile}`,
        `private_key = ${ca.keyFile}`,
        'default_md = sha256',
        'default_crl_days = 30',
        '',
      ].join('\n'),
    );
    for (const r of revoked) execFileSync('openssl', ['ca', '-config', cnf, '-revoke', r.certFile], { stdio: 'pipe' });
    const tmp = `${file}.tmp`;
    execFileSync('openssl', ['ca', '-config', cnf, '-gencrl', '-out', tmp], { stdio: 'pipe' });
    fs.renameSync(tmp, file);
    return file;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
