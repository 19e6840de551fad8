/**
 * A DNS server for tests, on loopback, and a way to run a process that uses it as its only resolver.
 *
 * - startDns: a small UDP DNS responder (node dgram) answering SRV and A queries from a table (AAAA and others: no
 *   data; unknown names: NXDOMAIN). It listens on port 53 of an address of its own in 127.0.0.0/8, because
 *   resolv.conf cannot name a port.
 * - startDnsmasq: the same records served by a real resolver, Debian's dnsmasq (package dnsmasq-base), fixed at start.
 * - resolvWrapped: the command line that runs a program in a private mount namespace (util-linux `unshare -m`,
 *   root) where /etc/resolv.conf is a bind mount of a file naming that server. The program then resolves through it
 *   exactly as it would in production through the host's resolver — no option, variable or code path of the server
 *   is involved — and Debian's etcd is run the same way.
 */
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface SRVTarget {
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface DnsRecords {
  srv?: Record<string, SRVTarget[]>;
  a?: Record<string, string>;
}

export interface TestDns {
  address: string;
  records: DnsRecords;
  /** resolv.conf naming this server, in `dir`. */
  resolvConf: string;
  /** Names asked, with their type (33 SRV, 1 A, 28 AAAA). */
  asked: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;

function readName(buf: Buffer, at: number): { name: string; next: number } {
  const labels: string[] = [];
  let i = at;
  for (;;) {
    const len = buf[i];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.'), next: i + 1 };
    if ((len & 0xc0) === 0xc0) throw new Error('compressed names are not expected in a question');
    labels.push(buf.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}

function rr(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // the question's name
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(5, 6); // TTL
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

/** The answer to one query. */
function answer(query: Buffer, records: DnsRecords, asked: string[]): Buffer {
  const id = query.readUInt16BE(0);
  const rd = query[2] & 0x01;
  const { name, next } = readName(query, 12);
  const type = query.readUInt16BE(next);
  const question = query.subarray(12, next + 4);
  const key = name.toLowerCase().replace(/\.$/, '');
  asked.push(`${key}/${type}`);
  const answers: Buffer[] = [];
  const srv = records.srv?.[key];
  const a = records.a?.[key];
  if (type === TYPE_SRV && srv) {
    for (const t of srv) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(t.priority ?? 0, 0);
      fixed.writeUInt16BE(t.weight ?? 0, 2);
      fixed.writeUInt16BE(t.port, 4);
      answers.push(rr(TYPE_SRV, Buffer.concat([fixed, encodeName(t.target)])));
    }
  } else if (type === TYPE_A && a) {
    answers.push(rr(TYPE_A, Buffer.from(a.split('.').map(Number))));
  }
  const known = srv !== undefined || a !== undefined;
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head[2] = 0x84 | rd; // QR, AA, RD as asked
  head[3] = 0x80 | (known ? 0 : 3); // RA; NXDOMAIN for a name it does not know
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(answers.length, 6);
  return Buffer.concat([head, question, ...answers]);
}

/** Starts the responder on port 53 of a random 127.x.y.z and writes a resolv.conf naming it into `dir`. */
export async function startDns(dir: string, records: DnsRecords): Promise<TestDns> {
  const asked: string[] = [];
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    try {
      sock.send(answer(msg, records, asked), rinfo.port, rinfo.address);
    } catch {
      // a malformed query gets no answer
    }
  });
  let address = '';
  for (let tries = 0; ; tries++) {
    address = randomLoopback();
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(53, address, () => {
          sock.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (err) {
      if (tries > 20) throw err;
    }
  }
  const resolvConf = path.join(dir, `resolv-${address}.conf`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(resolvConf, `nameserver ${address}\noptions timeout:1 attempts:2\n`);
  return { address, records, resolvConf, asked, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** A random 127.53.x.y, for a DNS server's port 53. */
const randomLoopback = (): string => `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

export const DNSMASQ = '/usr/sbin/dnsmasq';

/**
 * Debian's dnsmasq answering exactly `records` (authoritative for `.test`: other names there are NXDOMAIN), on port 53
 * of a random 127.53.x.y; resolves once it answers.
 */
export async function startDnsmasq(dir: string, records: DnsRecords): Promise<TestDns> {
  if (!fs.existsSync(DNSMASQ)) throw new Error(`${DNSMASQ} is missing: install Debian's dnsmasq-base (apt-get install -y dnsmasq-base), as .ci/run does`);
  const address = randomLoopback();
  const args = ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--port=53', `--listen-address=${address}`, '--bind-interfaces', '--user=root', '--pid-file=', '--local=/test/', '--log-facility=-'];
  for (const [name, targets] of Object.entries(records.srv ?? {})) {
    for (const t of targets) args.push(`--srv-host=${name},${t.target.replace(/\.$/, '')},${t.port},${t.priority ?? 0},${t.weight ?? 0}`);
  }
  for (const [name, ip] of Object.entries(records.a ?? {})) args.push(`--host-record=${name},${ip}`);
  const proc = spawn(DNSMASQ, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 10000;
  while (!out.includes('started, version')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`dnsmasq did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20)); // until it says it serves
  }
  const resolvConf = path.join(dir, `resolv-${address}.conf`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(resolvConf, `nameserver ${address}\noptions timeout:1 attempts:2\n`);
  return {
    address,
    records,
    resolvConf,
    asked: [],
    close: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** `command args` run with `resolvConf` as its /etc/resolv.conf (a private mount namespace): the argv to spawn. */
export function resolvWrapped(resolvConf: string, command: string, args: string[]): { command: string; args: string[] } {
  return { command: 'unshare', args: ['-m', '--', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, command, ...args] };
}
