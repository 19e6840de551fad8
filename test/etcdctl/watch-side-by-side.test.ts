/**
 * `etcdctl watch`, side by side: Debian's etcdctl against Debian's etcd (the reference), our etcdctl against
 * another Debian etcd, and Debian's etcdctl against our server, each through the same writes and the same watch
 * commands (history, live events, ranges and prefixes, --prev-kv, every output format, --hex, commands run per
 * event, ETCDCTL_WATCH_*, interactive mode, compaction, bad arguments). Stdout (bytes), stderr and exit codes must
 * be the same, once each server's cluster and member IDs and clientv3's warning line are put aside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WatchResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { request } from '../support/http';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';
import { connect, type WatchConn } from '../support/watch-client';

jest.setTimeout(300_000);

const REAL_ETCDCTL = '/usr/bin/etcdctl';
const OUR_ETCDCTL = path.join(__dirname, '..', '..', 'dist', 'server', 'etcdctl', 'main.js');
const b = (s: string) => Buffer.from(s);

interface Side {
  name: string;
  etcd: RunningEtcd;
  conn: WatchConn;
  ctl: string[];
  ids: [string, string][];
}

type Write = (c: WatchConn) => Promise<unknown>;
const put = (k: string, v: string): Write => (c) => c.kv.put(PutRequest.fromPartial({ key: b(k), value: b(v) }));
const del = (k: string, end = ''): Write => (c) => c.kv.deleteRange(DeleteRangeRequest.fromPartial({ key: b(k), rangeEnd: b(end) }));
const compact = (rev: number): Write => (c) => c.kv.compact(CompactionRequest.fromPartial({ revision: BigInt(rev), physical: true }));
const txnPut = (...kvs: string[]): Write => (c) =>
  c.kv.txn(TxnRequest.fromPartial({ success: kvs.filter((_, i) => i % 2 === 0).map((k, i) => ({ requestPut: { key: b(k), value: b(kvs[2 * i + 1]) } })) }));

interface Case {
  name: string;
  /** writes before the watch starts */
  before?: Write[];
  args: string[];
  env?: Record<string, string>;
  /** writes once the watch is registered on the server (`watches`: once that many are) */
  live?: Write[];
  watches?: number;
  /** interactive: stdin lines, each step's lines written once the previous step's output is all there */
  stdin?: { lines: string[]; stdoutLines?: number }[];
  /** what to wait for before stopping it: stdout lines, or its exit */
  until: { stdoutLines: number } | { stdoutBytes: number } | 'exit';
  /** close stdin at the end and wait for the exit (interactive) */
  endInput?: boolean;
  protobuf?: boolean;
}

const CASES: Case[] = [
  { name: 'history of a key', before: [put('a', '1'), put('a', '2'), put('b', '1')], args: ['watch', 'a', '--rev', '1'], until: { stdoutLines: 6 } },
  { name: 'a prefix, live, with prev-kv, json', args: ['watch', '--prefix', 'p', '--prev-kv', '-w', 'json'], live: [put('p1', 'x'), put('p1', 'y'), del('p1'), put('q', 'no')], until: { stdoutLines: 3 } },
  { name: 'a range, a txn, fields', args: ['watch', 'a', 'c', '-w', 'fields'], live: [txnPut('a', '3', 'b', '2', 'c', 'no'), del('a', 'z')], until: { stdoutLines: 2 * (4 + 2 * 7) } },
  { name: 'every key from one, hex', before: [put('x\x01\xff', 'v\n')], args: ['watch', '--hex', '--prefix', '', '--rev', '2'], until: { stdoutLines: 3 * 11 } },
  { name: 'protobuf', args: ['watch', '-w', 'protobuf', 'b', '--rev', '4'], until: { stdoutBytes: 1 }, protobuf: true },
  { name: 'a command per event', args: ['watch', 'a', '--rev', '2', '--', 'sh', '-c', 'echo "[$ETCD_WATCH_REVISION|$ETCD_WATCH_EVENT_TYPE|$ETCD_WATCH_KEY|$ETCD_WATCH_VALUE|${ETCDCTL_API-unset}]"'], until: { stdoutLines: 4 * 4 } },
  { name: 'key and range end from the environment', env: { ETCDCTL_WATCH_KEY: 'a', ETCDCTL_WATCH_RANGE_END: 'c' }, args: ['watch', '--rev', '2', '--', 'echo', 'got one'], until: { stdoutLines: 7 * 4 } },
  { name: 'interactive', args: ['watch', '-i'], stdin: [{ lines: ['watch a --rev 2', '', 'bogus', 'watch', 'watch x y --prefix'], stdoutLines: 4 * 3 }, { lines: ['progress'], stdoutLines: 13 }, { lines: ['watch p --prefix --prev-kv -- echo run'] }], live: [put('p2', 'z')], watches: 2, until: { stdoutLines: 13 + 3 + 1 }, endInput: true },
  { name: 'interactive, a bad flag', args: ['watch', '-i'], stdin: [{ lines: ['watch a --bogus'] }], until: 'exit' },
  { name: 'interactive, end of input', args: ['watch', '-i'], stdin: [{ lines: ['watch a'] }], until: { stdoutLines: 0 }, endInput: true },
  { name: 'a compacted revision', before: [compact(3)], args: ['watch', 'a', '--rev', '1', '-w', 'json'], until: 'exit' },
  { name: 'an empty range', args: ['watch', 'b', 'a'], until: 'exit' },
  { name: 'table', args: ['watch', 'a', '--rev', '3', '-w', 'table'], until: 'exit' },
  { name: 'a command that is not there', args: ['watch', 'a', '--rev', '3', '--', 'no-such-command-here', 'x y'], until: 'exit' },
  { name: 'a command that fails', args: ['watch', 'a', '--rev', '3', '--', 'sh', '-c', 'exit 3'], until: 'exit' },
  { name: 'no key', args: ['watch'], until: 'exit' },
  { name: 'range end and prefix', args: ['watch', 'a', 'b', '--prefix'], until: 'exit' },
  { name: 'a separator and no command', args: ['watch', 'a', '--'], until: 'exit' },
  { name: 'a key in the environment and on the line', env: { ETCDCTL_WATCH_KEY: 'a' }, args: ['watch', 'b'], until: 'exit' },
  { name: 'a key in the environment and on the line, with a command', env: { ETCDCTL_WATCH_KEY: 'a' }, args: ['watch', 'b', '--', 'echo'], until: 'exit' },
  { name: 'a range end without a key in the environment', env: { ETCDCTL_WATCH_RANGE_END: 'c' }, args: ['watch', 'a'], until: 'exit' },
  { name: 'a bad flag', args: ['watch', 'a', '--rev', 'x'], until: 'exit' },
  { name: 'help', args: ['watch', '--help'], until: 'exit' },
];

let dir: string;
let sides: Side[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-watch-'));
  const [r1, r2, ours] = await Promise.all([startRealEtcd(path.join(dir, 'r1')), startRealEtcd(path.join(dir, 'r2')), startOurEtcd(path.join(dir, 'ours'))]);
  const side = async (name: string, etcd: RunningEtcd, ctl: string[]): Promise<Side> => {
    const conn = connect(etcd.clientURL);
    const h = (await conn.kv.range(RangeRequest.fromPartial({ key: b('x') }))).header!;
    return { name, etcd, conn, ctl, ids: [[h.clusterId.toString(), '<CLUSTER>'], [h.memberId.toString(), '<MEMBER>']] };
  };
  sides = await Promise.all([
    side("Debian's etcdctl, Debian's etcd", r1, [REAL_ETCDCTL]),
    side("our etcdctl, Debian's etcd", r2, [process.execPath, OUR_ETCDCTL]),
    side("Debian's etcdctl, our etcd", ours, [REAL_ETCDCTL]),
  ]);
});

afterAll(async () => {
  for (const s of sides) s.conn.close();
  await Promise.all(sides.map((s) => s.etcd.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function watchers(s: Side): Promise<number> {
  const m = /^etcd_debugging_mvcc_watcher_total (\S+)$/m.exec((await request(s.etcd.clientURL, 'GET', '/metrics')).body);
  return m ? Number(m[1]) : 0;
}

interface Outcome {
  stdout: string;
  stderr: string;
  code: number | string | null;
}

/** Runs a case on a side: the process, its input and the live writes, until the case's condition; then stops it. */
async function runCase(s: Side, c: Case): Promise<Outcome> {
  for (const w of c.before ?? []) await w(s.conn);
  const base = await watchers(s);
  const p: ChildProcess = spawn(s.ctl[0], [...s.ctl.slice(1), `--endpoints=${s.etcd.clientURL}`, ...c.args], {
    env: { ...process.env, ETCDCTL_API: '3', ...c.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let stderr = '';
  const exited = new Promise<number | string | null>((resolve) => p.once('exit', (code, sig) => resolve(code ?? sig)));
  let done = false;
  void exited.then(() => (done = true));
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  p.stdout!.on('data', (d: Buffer) => {
    out.push(d);
    wake();
  });
  p.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    wake();
  });
  void exited.then(wake);
  const lines = () => Buffer.concat(out).toString('latin1').split('\n').length - 1;
  const until = async (cond: () => boolean, what: string) => {
    const deadline = Date.now() + 20000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`${s.name}, ${c.name}: timed out waiting for ${what}; stdout:\n${Buffer.concat(out).toString('latin1')}\nstderr:\n${stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  try {
    return await drive(s, c, p, base, until, lines, () => done, out, exited, () => stderr);
  } finally {
    if (!done) p.kill('SIGKILL');
  }
}

async function drive(
  s: Side, c: Case, p: ChildProcess, base: number, until: (cond: () => boolean, what: string) => Promise<void>, lines: () => number, isDone: () => boolean,
  out: Buffer[], exited: Promise<number | string | null>, err: () => string,
): Promise<Outcome> {
  for (const step of c.stdin ?? []) {
    p.stdin!.write(step.lines.map((l) => `${l}\n`).join(''));
    if (step.stdoutLines !== undefined) await until(() => lines() >= step.stdoutLines! || isDone(), `${step.stdoutLines} lines after ${step.lines.join(', ')}`);
  }
  if (c.live) {
    for (let i = 0; i < 400 && (await watchers(s)) < base + (c.watches ?? 1) && !isDone(); i++) await new Promise((r) => setTimeout(r, 50)); // the server registers it
    for (const w of c.live) await w(s.conn);
  }
  const u = c.until;
  if (u === 'exit') await until(isDone, 'the exit');
  else if ('stdoutLines' in u) await until(() => lines() >= u.stdoutLines || isDone(), `${u.stdoutLines} lines`);
  else await until(() => Buffer.concat(out).length >= u.stdoutBytes || isDone(), `${u.stdoutBytes} bytes`);
  if (c.endInput) {
    p.stdin!.end();
    await until(isDone, 'the exit at the end of input');
  }
  if (!isDone()) p.kill('SIGTERM');
  const code = await exited;
  let stderr = err();
  let stdout = Buffer.concat(out).toString('latin1');
  if (c.protobuf) stdout = JSON.stringify(WatchResponse.decode(Buffer.concat(out)), (_k, v) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('latin1') : v));
  for (const [id, n] of s.ids) stdout = stdout.split(id).join(n);
  stderr = stderr.replace(/^\{"level":"warn".*\n/gm, '<clientv3 warning>\n');
  return { stdout, stderr, code: u === 'exit' || c.endInput ? code : 'stopped' };
}

test('the same output, byte for byte, and the same exit codes for every watch', async () => {
  const results: Record<string, Outcome>[] = sides.map(() => ({}));
  for (const c of CASES) {
    for (const [i, s] of sides.entries()) results[i][c.name] = await runCase(s, c);
  }
  expect(results[1]).toEqual(results[0]);
  expect(results[2]).toEqual(results[0]);
  // and they watched something: events, a progress notification, commands run, etcd's errors
  expect(results[0]['history of a key'].stdout).toBe('PUT\na\n1\nPUT\na\n2\n');
  expect(results[0].interactive.stdout).toContain('progress notify: ');
  expect(results[0]['a command per event'].stdout).toContain('|"PUT"|"a"|"1"|unset]');
  expect(results[0]['a compacted revision'].stderr).toContain('watch was canceled (etcdserver: mvcc: required revision has been compacted)');
});
