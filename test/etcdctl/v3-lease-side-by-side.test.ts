/**
 * etcdctl's lease commands and put --lease, side by side: the same sequence of commands run by Debian's etcdctl
 * against Debian's etcd (the reference), by our etcdctl against Debian's etcd (our client), by Debian's etcdctl
 * against our etcd (our server) and by ours against ours; stdout (bytes), stderr and exit codes must be the same,
 * once the servers' cluster and member IDs, the lease IDs they chose (named by order of appearance) and the time
 * and client id of clientv3's warning line are put aside.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ResponseHeader } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { IO, run } from '../../server/etcdctl/main';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(180_000);

const REAL_ETCDCTL = '/usr/bin/etcdctl';

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

interface Server extends RunningEtcd {
  ids: [string, string][];
}

async function withIds(e: RunningEtcd): Promise<Server> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  const member = ((await res.json()) as { members: { id: string }[] }).members[0].id;
  const cluster = res.headers.get('x-etcd-cluster-id')!;
  return Object.assign(e, { ids: [[BigInt(`0x${cluster}`).toString(), '<CLUSTER>'], [BigInt(`0x${member}`).toString(), '<MEMBER>']] as [string, string][] });
}

/** One run of the sequence: its server, and the lease IDs it has seen (hex), in order of appearance. */
interface Run {
  server: Server;
  leases: string[];
  ctl: 'debian' | 'ours';
}

/** Lease IDs in an output: hex in the simple format, decimal in json and fields. */
function learnLeases(r: Run, out: string): void {
  const seen = (hex: string) => {
    if (!r.leases.includes(hex)) r.leases.push(hex);
  };
  for (const m of out.matchAll(/(?:^|lease )([0-9a-f]{16})\b/gm)) seen(m[1]);
  for (const m of out.matchAll(/"(?:ID|id)" ?: ?(\d{10,})/g)) seen(BigInt(m[1]).toString(16).padStart(16, '0'));
}

function normalize(r: Run, stdout: Buffer, stderr: string, code: number, args: string[]): Outcome {
  let out = stdout.toString('latin1');
  // A lease response in protobuf is its header's bytes (clientv3's types embed it): shown decoded.
  if (args.includes('protobuf') && stdout.length) out = JSON.stringify(ResponseHeader.decode(stdout), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  for (const [id, name] of r.server.ids) out = out.split(id).join(name);
  if (args.some((a) => a === 'grant' || a === 'gr' || a === 'list')) learnLeases(r, out);
  if (args.includes('timetolive')) out = sortedKeys(remainingTTL(out));
  let err = stderr.replace(/"ts":"[^"]+"/g, '"ts":"<T>"').replace(/endpoint:\/\/client-[0-9a-f-]+\/[^"]+/g, 'endpoint://<CLIENT>/<EP>');
  for (const [id, name] of r.server.ids) err = err.split(id).join(name);
  r.leases.forEach((hex, i) => {
    for (const form of [hex, BigInt(`0x${hex}`).toString()]) {
      out = out.split(form).join(`<L${i + 1}>`);
      err = err.split(form).join(`<L${i + 1}>`);
    }
  });
  return { stdout: out, stderr: err, code };
}

/**
 * TimeToLive's remaining TTL depends on when each side asked (processes start slower on a busy machine): shown as
 * "fresh" when within 10 s of the granted TTL.
 */
function remainingTTL(out: string): string {
  const granted = /TTL\((\d+)s\)|"granted-ttl":(\d+)|"GrantedTTL" : (\d+)/.exec(out);
  if (!granted) return out;
  const g = Number(granted[1] ?? granted[2] ?? granted[3]);
  const fresh = (n: string) => (Number(n) <= g && Number(n) >= g - 10 ? '<fresh>' : n);
  return out
    .replace(/remaining\((\d+)s\)/, (_m, n: string) => `remaining(${fresh(n)}s)`)
    .replace(/"ttl":(\d+)/, (_m, n: string) => `"ttl":${fresh(n)}`)
    .replace(/"TTL" : (\d+)/, (_m, n: string) => `"TTL" : ${fresh(n)}`);
}

/** etcd lists a lease's keys in Go's map order, which changes from call to call: compared sorted. */
function sortedKeys(out: string): string {
  const sort = (xs: string[]) => [...xs].sort();
  return out
    .replace(/attached keys\(\[([^\]]*)\]\)/, (_m, ks: string) => `attached keys([${sort(ks.split(' ')).join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/, (_m, ks: string) => `"keys":[${sort(ks.split(',')).join(',')}]`)
    .replace(/("Key" : [^\n]*\n)+/, (m) => sort(m.split(/(?<=\n)/)).join(''));
}

const env = (r: Run) => ({ ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: r.server.clientURL });

/** The step's arguments with $n replaced by the n-th lease seen in this run. */
const resolve = (r: Run, args: string[]) => args.map((a) => a.replace(/\$(\d)/g, (_m, n: string) => r.leases[Number(n) - 1] ?? 'missing'));

async function exec(r: Run, raw: string[]): Promise<Outcome> {
  const args = resolve(r, raw);
  if (r.ctl === 'debian') {
    const p = spawnSync(REAL_ETCDCTL, args, { env: env(r), timeout: 20000 });
    return normalize(r, p.stdout, p.stderr.toString(), p.status ?? -1, args);
  }
  const out: Buffer[] = [];
  let stderr = '';
  const io: IO = { stdout: (x) => out.push(Buffer.from(x)), stdoutBytes: (b) => out.push(b), stderr: (x) => (stderr += x), readStdin: () => '' };
  const code = await run(args, env(r), io);
  return normalize(r, Buffer.concat(out), stderr, code, args);
}

/**
 * `lease keep-alive` (no --once) of a lease, running until the lease is revoked by another command once the first
 * renewal is printed: what it printed and how it ended.
 */
async function keepAliveUntilRevoked(r: Run, raw: string[]): Promise<Outcome> {
  const args = resolve(r, raw);
  const id = args[args.length - 1];
  let printed!: () => void;
  const firstLine = new Promise<void>((res) => (printed = res));
  let result: Promise<{ stdout: Buffer; stderr: string; code: number }>;
  if (r.ctl === 'debian') {
    const p = spawn(REAL_ETCDCTL, args, { env: env(r) });
    const chunks: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      if (Buffer.concat(chunks).includes('\n')) printed();
    });
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    result = new Promise((res) => p.on('exit', (code) => res({ stdout: Buffer.concat(chunks), stderr, code: code ?? -1 })));
  } else {
    const out: Buffer[] = [];
    let stderr = '';
    const onOut = (b: Buffer) => {
      out.push(b);
      printed();
    };
    const io: IO = { stdout: (x) => onOut(Buffer.from(x)), stdoutBytes: onOut, stderr: (x) => (stderr += x), readStdin: () => '' };
    result = run(args, env(r), io).then((code) => ({ stdout: Buffer.concat(out), stderr, code }));
  }
  await firstLine;
  await exec(r, ['lease', 'revoke', id]);
  const { stdout, stderr, code } = await result;
  return normalize(r, stdout, stderr, code, args);
}

type Step = string[] | { keepAlive: string[] };

const STEPS: Step[] = [
  ['lease', 'grant', '1000'],
  ['lease', 'grant', '2000', '-w', 'json'],
  ['lease', 'grant', '3000', '-w', 'fields'],
  ['lease', 'grant', '4000', '-w', 'protobuf'],
  ['lease', 'grant', '5000', '-w', 'table'],
  ['lease', 'list'], // soonest to expire first: the order they were granted in
  ['put', '--lease=$1', 'k1', 'v1'],
  ['put', '--lease', '$1', 'k2', 'v2', '-w', 'json'],
  ['put', '--lease=$2', 'k3', 'v3'],
  ['put', '--lease=$2', 'k\u00e9', 'v4'],
  ['put', '--lease=1234', 'k5', 'v5'],
  ['lease', 'timetolive', '$1'],
  ['lease', 'timetolive', '$1', '--keys'],
  ['lease', 'timetolive', '--keys', '$2', '-w', 'json'],
  ['lease', 'timetolive', '$2', '--keys', '-w', 'fields'],
  ['lease', 'timetolive', '$3', '-w', 'json'],
  ['lease', 'timetolive', '$3', '-w', 'protobuf'],
  ['lease', 'timetolive', '$3', '-w', 'table'],
  ['lease', 'timetolive', '1234'],
  ['lease', 'timetolive', '1234', '-w', 'json'],
  ['lease', 'list', '-w', 'json'],
  ['lease', 'list', '-w', 'fields'],
  ['lease', 'list', '-w', 'protobuf'],
  ['lease', 'list', '-w', 'table'],
  ['lease', 'keep-alive', '--once', '$1'],
  ['lease', 'keep-alive', '--once', '$2', '-w', 'json'],
  ['lease', 'keep-alive', '--once', '$2', '-w', 'fields'],
  ['lease', 'keep-alive', '--once', '$2', '-w', 'protobuf'],
  ['lease', 'keep-alive', '--once', '$2', '-w', 'table'],
  ['lease', 'keep-alive', '--once', '1234'],
  ['get', 'k', '--prefix', '-w', 'json'],
  ['put', 'k1', 'v1b', '--ignore-lease'],
  ['put', 'k3', 'v3b'],
  ['get', 'k', '--prefix', '-w', 'fields'],
  ['lease', 'revoke', '$1'],
  ['get', 'k', '--prefix'],
  ['lease', 'revoke', '$1'],
  ['lease', 'timetolive', '$1'],
  ['lease', 'revoke', '$2', '-w', 'json'],
  ['lease', 'revoke', '$3', '-w', 'fields'],
  ['lease', 'revoke', '$4', '-w', 'protobuf'],
  ['lease', 'revoke', '$5', '-w', 'table'],
  ['lease', 'list'],
  ['get', 'k', '--prefix', '-w', 'json'],
  ['lease', 'gr', '10'], // cobra's prefix matching, of subcommands too
  { keepAlive: ['lease', 'keep-alive', '$6'] },
  ['lease', 'grant', '60'],
  { keepAlive: ['lease', 'keep-alive', '-w', 'json', '$7'] },
  ['lease', 'grant', '0'],
  ['lease', 'grant', '-5'],
  ['lease', 'grant', '9000000001'],
  // Refused by etcdctl, and cobra's usage texts.
  ['lease', 'grant'],
  ['lease', 'grant', 'x'],
  ['lease', 'grant', '99999999999999999999'],
  ['lease', 'grant', '1', '2'],
  ['lease', 'revoke'],
  ['lease', 'revoke', 'zz'],
  ['lease', 'timetolive'],
  ['lease', 'timetolive', '-5'],
  ['lease', 'keep-alive'],
  ['lease', 'keep-alive', 'x1'],
  ['lease', 'grant', '10', '-w', 'xml'],
  ['lease', 'timetolive', '1', '--bogus'],
  ['lease'],
  ['lease', 'nothing'],
  ['lease', '--help'],
  ['lease', 'grant', '--help'],
  ['lease', 'timetolive', '-h'],
  ['help', 'lease'],
  ['help', 'lease', 'keep-alive'],
];

describe("etcdctl's lease commands: ours and Debian's, against Debian's etcd and ours", () => {
  let dir: string;
  const runs: Run[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-lease-'));
    const start = (name: string, how: typeof startRealEtcd) => how(path.join(dir, name)).then(withIds);
    const [a, b, c, d] = await Promise.all([start('a', startRealEtcd), start('b', startRealEtcd), start('c', startOurEtcd), start('d', startOurEtcd)]);
    runs.push({ server: a, ctl: 'debian', leases: [] }, { server: b, ctl: 'ours', leases: [] }, { server: c, ctl: 'debian', leases: [] }, { server: d, ctl: 'ours', leases: [] });
  });
  afterAll(async () => {
    await Promise.all(runs.map((r) => r.server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('the same output, byte for byte, and the same exit codes for every command', async () => {
    const results = runs.map(() => ({}) as Record<string, Outcome>);
    for (const [i, step] of STEPS.entries()) {
      const name = `${String(i).padStart(2, '0')} ${JSON.stringify(step)}`;
      const outcomes = await Promise.all(runs.map((r) => (Array.isArray(step) ? exec(r, step) : keepAliveUntilRevoked(r, step.keepAlive))));
      outcomes.forEach((o, j) => (results[j][name] = o));
    }
    const [reference, ourCtl, ourServer, both] = results;
    expect(ourCtl).toEqual(reference);
    expect(ourServer).toEqual(reference);
    expect(both).toEqual(reference);
    // Not vacuous: leases were granted and seen, commands succeeded and failed.
    expect(runs.map((r) => r.leases.length)).toEqual([8, 8, 8, 8]);
    const keepAlive = Object.entries(reference).find(([k]) => k.endsWith('{"keepAlive":["lease","keep-alive","$6"]}'))![1];
    expect(keepAlive.stdout).toBe('lease <L6> keepalived with TTL(10)\nlease <L6> expired or revoked.\n');
    expect(Object.values(reference).filter((o) => o.code === 0 && o.stdout.length > 0).length).toBeGreaterThan(30);
    expect(Object.values(reference).filter((o) => o.code !== 0).length).toBeGreaterThan(15);
  });
});
