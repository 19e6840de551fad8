/**
 * etcdctl's auth, user and role commands and its --user/--password, side by side: the steps of the v3 auth test
 * and more (every output format, password prompts read from stdin, refusals and usage texts) run by Debian's
 * etcdctl against Debian's etcd (the reference), by our etcdctl (the built command, so that prompts read its real
 * stdin) against Debian's etcd and against ours. stdout (bytes), stderr and exit codes must be the same once the
 * servers' cluster and member IDs and the time and client id of clientv3's warning line are put aside.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AuthRoleAddResponse, AuthRoleGetResponse, AuthRoleListResponse, AuthUserGetResponse, AuthUserListResponse,
} from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { AUTH_STEPS } from '../support/auth-steps';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(400_000);

const REAL_ETCDCTL = '/usr/bin/etcdctl';
const OUR_ETCDCTL = path.join(__dirname, '../../dist/server/etcdctl/main.js');

interface Step {
  args: string[];
  input?: string;
}

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

interface Run {
  server: RunningEtcd;
  ctl: 'debian' | 'ours';
  ids: [string, string][];
}

const FORMATS = ['json', 'fields', 'protobuf', 'table'];
const w = (args: string[]): Step[] => FORMATS.map((f) => ({ args: [...args, '-w', f] }));

const STEPS: Step[] = [
  ...AUTH_STEPS.map((args) => ({ args, input: args.includes('passwd') ? 'newpw\n' : undefined })),
  { args: ['role', 'add', 'r2'] },
  { args: ['role', 'grant-permission', 'r2', 'read', 'k1'] },
  { args: ['role', 'grant-permission', '--prefix', 'r2', 'readwrite', 'p/'] },
  { args: ['role', 'grant-permission', 'r2', 'WRITE', 'a', 'c'] },
  { args: ['role', 'grant-permission', '--from-key', 'r2', 'read', 'z'] },
  { args: ['role', 'grant-permission', '--prefix', 'r2', 'write', ''] },
  { args: ['role', 'grant-permission', 'r2', 'read', 'k\u00e9"\t'] },
  { args: ['role', 'get', 'r2'] },
  ...w(['role', 'get', 'r2']),
  ...w(['role', 'list']),
  { args: ['user', 'add', 'bob', '--interactive=false'], input: '  bobpw rest\n' },
  { args: ['user', 'add', 'carol'], input: 'cpw\ncpw\n' },
  { args: ['user', 'add', 'dave'], input: 'a\nb\n' },
  { args: ['user', 'add', 'erin'], input: '\n' },
  { args: ['user', 'add', 'frank', '--new-user-password', 'fpw'] },
  { args: ['user', 'add', ':x'] },
  { args: ['user', 'add', 'gina', '--no-password'] },
  { args: ['user', 'grant-role', 'bob', 'r2'] },
  { args: ['user', 'grant-role', 'bob', 'root'] },
  ...w(['user', 'get', 'bob']),
  { args: ['user', 'get', '--detail', 'bob'] },
  { args: ['user', 'get', '--detail', 'bob', '-w', 'json'] },
  { args: ['user', 'get', '--detail', 'bob', '-w', 'table'] },
  ...w(['user', 'list']),
  { args: ['user', 'add', 'x:y', '-w', 'json'] },
  { args: ['user', 'grant-role', 'x', 'r2', '-w', 'fields'] },
  { args: ['user', 'revoke-role', 'x', 'r2', '-w', 'protobuf'] },
  { args: ['user', 'delete', 'x', '-w', 'table'] },
  { args: ['role', 'add', 'r3', '-w', 'fields'] },
  { args: ['role', 'delete', 'r3', '-w', 'protobuf'] },
  { args: ['role', 'revoke-permission', 'r2', 'p/', '--prefix', '-w', 'json'] },
  { args: ['role', 'revoke-permission', 'r2', 'z', '--from-key'] },
  { args: ['role', 'revoke-permission', 'r2', 'a', 'c'] },
  { args: ['role', 'revoke-permission', 'r2', '', '--prefix'] },
  { args: ['user', 'passwd', 'bob'], input: 'np\nnp\n' },
  { args: ['auth', 'enable'] },
  { args: ['--user', 'bob', 'get', 'k1'], input: 'np\n' },
  { args: ['--user', 'bob', '--password', 'np', 'get', 'k1', '-w', 'json'] },
  { args: ['--user', 'bob:np', 'role', 'get', 'r2', '-w', 'fields'] },
  { args: ['--user', 'bob:bad', 'user', 'list'] },
  { args: ['--user', 'root:rootpw', 'auth', 'enable'] },
  { args: ['--user', 'root', '--password', 'rootpw', 'auth', 'disable'] },
  { args: ['auth', 'disable'] },
  // refused by etcdctl
  { args: ['role', 'grant-permission', 'r2', 'bogus', 'k'] },
  { args: ['role', 'grant-permission', '--prefix', '--from-key', 'r2', 'read', 'k'] },
  { args: ['role', 'grant-permission', '--prefix', 'r2', 'read', 'a', 'b'] },
  { args: ['role', 'grant-permission', 'r2', 'read'] },
  { args: ['role', 'revoke-permission', 'r2'] },
  { args: ['role', 'revoke-permission', 'r2', 'a', 'b', '--from-key'] },
  { args: ['user', 'get'] },
  { args: ['user', 'list', 'x'] },
  { args: ['user', 'grant-role', 'x'] },
  { args: ['role', 'get'] },
  { args: ['auth', 'enable', 'x'] },
  { args: ['user', 'add', 'a:b', '-w', 'xml'] },
  // usage texts
  { args: ['user'] },
  { args: ['role', '--help'] },
  { args: ['auth'] },
  { args: ['role', 'grant-permission', '--help'] },
  { args: ['user', 'add', '-h'] },
  { args: ['help', 'user', 'passwd'] },
];

/** A protobuf answer shown decoded, by the response type of its command. */
function decodePB(args: string[], b: Buffer): string {
  const cmd = args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ');
  const codec = { 'role get': AuthRoleGetResponse, 'role list': AuthRoleListResponse, 'user get': AuthUserGetResponse, 'user list': AuthUserListResponse }[cmd] ?? AuthRoleAddResponse;
  return JSON.stringify(codec.decode(b), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function normalize(r: Run, step: Step, stdout: Buffer, stderr: string, code: number): Outcome {
  let out = step.args.includes('protobuf') && code === 0 && stdout.length ? decodePB(step.args, stdout) : stdout.toString('latin1');
  let err = stderr.replace(/"ts":"[^"]+"/g, '"ts":"<T>"').replace(/endpoint:\/\/client-[0-9a-f-]+\/[^"]+/g, 'endpoint://<CLIENT>/<EP>');
  for (const [id, name] of r.ids) {
    out = out.split(id).join(name);
    err = err.split(id).join(name);
  }
  return { stdout: out, stderr: err, code };
}

function exec(r: Run, step: Step): Promise<Outcome> {
  const [cmd, pre] = r.ctl === 'debian' ? [REAL_ETCDCTL, []] : [process.execPath, [OUR_ETCDCTL]];
  const p = spawn(cmd, [...pre, ...step.args], { env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: r.server.clientURL } });
  const out: Buffer[] = [];
  let err = '';
  p.stdout.on('data', (c: Buffer) => out.push(c));
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  p.stdin.on('error', () => undefined);
  p.stdin.end(step.input ?? '');
  const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => p.on('close', (code) => {
    clearTimeout(timer);
    resolve(normalize(r, step, Buffer.concat(out), err, code ?? -1));
  }));
}

async function ids(e: RunningEtcd): Promise<[string, string][]> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  const member = ((await res.json()) as { members: { id: string }[] }).members[0].id;
  const cluster = res.headers.get('x-etcd-cluster-id')!;
  return [[BigInt(`0x${cluster}`).toString(), '<CLUSTER>'], [BigInt(`0x${member}`).toString(), '<MEMBER>']];
}

describe("etcdctl's auth, user and role commands: ours and Debian's, against Debian's etcd and ours", () => {
  let dir: string;
  const runs: Run[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-auth-'));
    const [a, b, c] = await Promise.all([startRealEtcd(path.join(dir, 'a')), startRealEtcd(path.join(dir, 'b')), startOurEtcd(path.join(dir, 'c'))]);
    runs.push({ server: a, ctl: 'debian', ids: await ids(a) }, { server: b, ctl: 'ours', ids: await ids(b) }, { server: c, ctl: 'ours', ids: await ids(c) });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(runs.map((r) => r.server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('the same output, byte for byte, and the same exit codes for every step', async () => {
    const results = runs.map(() => ({}) as Record<string, Outcome>);
    for (const [i, step] of STEPS.entries()) {
      const name = `${String(i).padStart(3, '0')} ${step.args.join(' ')}`;
      const outcomes = await Promise.all(runs.map((r) => exec(r, step)));
      outcomes.forEach((o, j) => (results[j][name] = o));
    }
    const [reference, ourCtl, both] = results;
    expect(ourCtl).toEqual(reference);
    expect(both).toEqual(reference);
    // Not vacuous: commands succeeded and failed, prompts were shown.
    expect(Object.values(reference).filter((o) => o.code === 0 && o.stdout.length > 0).length).toBeGreaterThan(50);
    expect(Object.values(reference).filter((o) => o.code !== 0).length).toBeGreaterThan(30);
    expect(Object.values(reference).filter((o) => o.stdout.includes('Type password of carol again for confirmation: \n')).length).toBe(1);
  });
});
