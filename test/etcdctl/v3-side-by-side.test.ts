/**
 * Our etcdctl's v3 commands against Debian's etcdctl 3.4 (ETCDCTL_API=3), each driving its own fresh Debian etcd
 * through the same sequence of commands: stdout (bytes), stderr and exit codes must be the same, once each server's
 * cluster and member IDs and the timestamp and client id of clientv3's warning line are put aside.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutResponse, TxnResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { IO, run } from '../../server/etcdctl/main';
import { RunningEtcd, startRealEtcd } from '../support/real-etcd';

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

/** Output as text with the server's ids and the warning line's time and client id replaced. */
function normalize(stdout: Buffer, stderr: string, code: number, s: Server, protobuf: boolean, txnStep = false): Outcome {
  let out = stdout.toString('latin1');
  if (protobuf && stdout.length) {
    const r = txnStep ? TxnResponse.decode(stdout) : PutResponse.decode(stdout);
    out = JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  }
  for (const [id, name] of s.ids) out = out.split(id).join(name);
  const err = stderr.replace(/(panic: [^\n]*\n\ngoroutine 1 \[running\]:\n)[\s\S]*$/, '$1').replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} /gm, '<TS> ').replace(/"ts":"[^"]+"/g, '"ts":"<T>"').replace(/endpoint:\/\/client-[0-9a-f-]+\/[^"]+/g, 'endpoint://<CLIENT>/<EP>');
  return { stdout: out, stderr: err, code };
}

function real(s: Server, args: string[], stdin: string, env: Record<string, string>): Outcome {
  const r = spawnSync(REAL_ETCDCTL, args, { env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: s.clientURL, ...env }, input: stdin, timeout: 20000 });
  return normalize(r.stdout, r.stderr.toString(), r.status ?? -1, s, args.includes('protobuf'), args[0] === 'txn');
}

async function ours(s: Server, args: string[], stdin: string, env: Record<string, string>): Promise<Outcome> {
  const out: Buffer[] = [];
  let stderr = '';
  const io: IO = {
    stdout: (x) => out.push(Buffer.from(x)),
    stdoutBytes: (b) => out.push(b),
    stderr: (x) => (stderr += x),
    readStdin: () => stdin,
  };
  const code = await run(args, { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: s.clientURL, ...env }, io);
  return normalize(Buffer.concat(out), stderr, code, s, args.includes('protobuf'), args[0] === 'txn');
}

type Step = string[] | { args: string[]; stdin?: string; env?: Record<string, string> };

const STEPS: Step[] = [
  ['put', 'foo', 'bar'],
  ['put', 'foo', 'baz', '--prev-kv'],
  ['put', 'foo2', 'x', '-w', 'json'],
  ['put', '--prev-kv', 'foo', 'qux', '-w', 'fields'],
  ['put', 'ключ', 'значение\tс "табом"\n'],
  ['put', 'bin', '\x01\x7f\u00ff'],
  { args: ['put', 'from-stdin'], stdin: 'line one\nline two\n' },
  ['get', 'foo'],
  ['get', 'foo', '-w', 'json'],
  ['get', 'foo', '-w', 'fields'],
  ['get', 'ключ', '-w', 'fields'],
  ['get', 'bin', '-w', 'fields'],
  ['get', 'bin', '--hex'],
  ['get', 'fo', '--prefix'],
  ['get', 'fo', '--prefix', '-w', 'json', '--keys-only'],
  ['get', 'foo', 'foo3'],
  ['get', 'foo', '--from-key'],
  ['get', '', '--prefix', '--keys-only'],
  ['get', '', '--from-key', '-w', 'fields'],
  ['get', 'foo', '--rev', '2'],
  ['get', 'foo', '--rev=3', '-w', 'json'],
  ['get', 'f', '--prefix', '--limit', '1', '-w', 'json'],
  ['get', 'f', '--prefix', '--order', 'DESCEND', '--sort-by', 'VALUE'],
  ['get', 'f', '--prefix', '--sort-by=create', '-w', 'json'],
  ['get', 'f', '--prefix', '--order=ascend', '--sort-by=MODIFY', '--keys-only'],
  ['get', 'foo', '--consistency', 's'],
  ['get', 'foo', '--print-value-only'],
  ['get', 'missing'],
  ['get', 'missing', '-w', 'json'],
  { args: ['get', 'foo'], env: { ETCDCTL_WRITE_OUT: 'json' } },
  { args: ['get', 'foo', '-w', 'simple'], env: { ETCDCTL_WRITE_OUT: 'json' } },
  { args: ['get', 'foo'], env: { ETCDCTL_WRITE_OUT: 'fields', ETCDCTL_PREFIX: 'true', ETCDCTL_DIAL_TIMEOUT: 'later' } },
  ['--hex', 'get', 'foo'],
  ['-w', 'fields', 'get', 'foo'],
  ['put', 'p', 'v', '-w', 'protobuf'],
  ['put', 'foo', '--ignore-value', '--prev-kv'],
  ['del', 'foo2', '--prev-kv'],
  ['del', 'fo', '--prefix', '-w', 'json'],
  ['del', 'nothing'],
  ['del', 'a', 'c', '-w', 'fields'],
  ['del', '', '--from-key', '--prev-kv', '-w', 'json'],
  ['compaction', '3'],
  ['compaction', '--physical', '4', '-w', 'json'],
  ['get', 'foo', '--rev', '2'],
  ['compaction', '2'],
  ['compaction', '999'],
  ['compaction'],
  ['compaction', 'x'],
  ['compaction', '1', '2'],
  ['compaction', '99999999999999999999'],
  // Refused by the server: clientv3's warning, then etcd's message.
  ['put', '', 'x'],
  ['get', ''],
  ['put', 'k', 'v', '--lease', '1234abcd'],
  ['put', 'nokey', '--ignore-value'],
  ['get', 'foo', '--rev', '999'],
  // txn: compares, then success and failure requests, each section ended by an empty line.
  { args: ['txn'], stdin: 'mod("foo") > "0"\n\nput foo tx1\nget foo\ndel nothing\n\nget foo\n\n' },
  { args: ['txn', '-w', 'json'], stdin: 'value("foo") = "tx1"\n\nput foo tx2 --prev-kv\nget f --prefix --keys-only\n\nget foo\n\n' },
  { args: ['txn', '-w', 'fields'], stdin: 'version("foo") = "1"\n\nput foo tx3\n\nget foo --prefix\ndel zzz --prev-kv\n\n' },
  { args: ['txn', '--interactive'], stdin: 'c("foo") < "100"\nm("foo") != "1"\nval("foo") = `tx2`\n\np x "y\\tz"\n\n\n' },
  { args: ['txn', '-w', 'protobuf'], stdin: 'ver("nope") = "0"\n\nput tp v\n\n\n' },
  { args: ['txn'], stdin: 'create("foo") = "2"\n\n\n\n' },
  { args: ['txn'], stdin: '\nput k1 v1\nput k1 v2\n\n\n' },
  { args: ['txn'], stdin: 'mod("foo") > "0"\n\nput foo tx1\n' },
  { args: ['txn'], stdin: '' },
  { args: ['txn'], stdin: 'mod("foo") >> "0"\n\n\n\n' },
  { args: ['txn'], stdin: 'mod(foo) > "0"\n\n\n\n' },
  { args: ['txn'], stdin: 'mod("foo") > 0\n\n\n\n' },
  { args: ['txn'], stdin: 'ver("foo")="3"\n\n\n\n' },
  { args: ['txn'], stdin: 'modx("foo") > "0"\n\n\n\n' },
  { args: ['txn'], stdin: 'mod("foo") > "x"\n\n\n\n' },
  { args: ['txn'], stdin: 'nocompare\n\n\n\n' },
  { args: ['txn'], stdin: 'lease("foo") = "1"\n\n\n\n' },
  { args: ['txn'], stdin: '\nput a\n\n\n' },
  { args: ['txn'], stdin: '\nbogus a b\n\n\n' },
  { args: ['txn'], stdin: '\nget\n\n\n' },
  { args: ['txn'], stdin: '\nput "bad\\q" y\n\n\n' },
  { args: ['txn'], stdin: "\nput 'ab' 'cd'\n\n\n" },
  { args: ['txn'], stdin: "\nput 'a b' c\n\n\n" },
  { args: ['txn'], stdin: "\ndel 'k'\n\n\n" },
  { args: ['txn', 'extra'], stdin: '\n\n\n' },
  // No server there: the command timeout runs out.
  { args: ['get', 'foo', '--command-timeout', '300ms'], env: { ETCDCTL_ENDPOINTS: '127.0.0.1:1' } },
  ['--endpoints', '127.0.0.1:1', 'get', 'foo'],
  // Refused by etcdctl.
  ['put'],
  { args: ['put', 'k'], stdin: '' },
  ['put', 'k', 'v', '--ignore-value'],
  ['put', 'k', 'v', '--lease', 'zz'],
  ['get'],
  ['get', 'a', 'b', '--prefix'],
  ['get', 'a', '--prefix', '--from-key'],
  ['get', 'a', '--consistency', 'x'],
  ['get', 'a', '--order', 'sideways'],
  ['get', 'a', '--sort-by', 'size'],
  ['get', 'a', '--print-value-only', '-w', 'json'],
  ['get', 'a', '-w', 'table'],
  ['get', 'a', '-w', 'xml'],
  ['del'],
  ['del', 'a', 'b', 'c'],
  ['del', 'a', 'b', '--prefix'],
  // Flag and command errors (cobra's and pflag's words, and the usage text).
  ['get', 'a', '--limit', 'x'],
  ['get', 'a', '--limit'],
  ['get', 'a', '--bogus'],
  ['get', 'a', '-z'],
  ['get', 'a', '--prefix=maybe'],
  ['get', 'a', '--command-timeout', 'soon'],
  ['put', '--help'],
  ['help', 'del'],
  ['gett', 'a'],
  ['d', 'a'],
  ['g', 'foo'],
  ['p', 'short', 'form'],
];

describe('our etcdctl v3 against Debian\'s etcdctl 3.4, each with its own Debian etcd', () => {
  let dir: string;
  let a: Server;
  let b: Server;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-v3-'));
    [a, b] = await Promise.all([startRealEtcd(path.join(dir, 'a')).then(withIds), startRealEtcd(path.join(dir, 'b')).then(withIds)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the same output, byte for byte, and the same exit codes for every command', async () => {
    const theirs: Record<string, Outcome> = {};
    const mine: Record<string, Outcome> = {};
    for (const [i, step] of STEPS.entries()) {
      const { args, stdin = '', env = {} } = Array.isArray(step) ? { args: step } : step;
      const name = `${String(i).padStart(2, '0')} ${JSON.stringify(args)}`;
      theirs[name] = real(a, args, stdin, env);
      mine[name] = await ours(b, args, stdin, env);
    }
    expect(mine).toEqual(theirs);
    // Not vacuous: most steps printed something, some succeeded and some failed.
    expect(Object.values(theirs).filter((o) => o.code === 0 && o.stdout.length > 0).length).toBeGreaterThan(30);
    expect(Object.values(theirs).filter((o) => o.code !== 0).length).toBeGreaterThan(20);
  });
});
