/**
 * etcdctl's cluster and maintenance commands side by side: our etcdctl against Debian's etcdctl 3.4, each driving
 * its own fresh Debian etcd through the same steps (member, endpoint, alarm, defrag, move-leader, snapshot), then
 * Debian's etcdctl against our server and against Debian's etcd. stdout, stderr and exit codes must be the same once
 * what differs between two servers is put aside: IDs, URLs and paths, times, and (ours against etcd) what belongs to
 * the backend (its size, hash, version).
 */
import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AlarmRequest, AlarmRequest_AlarmAction, AlarmResponse, AlarmType, MaintenanceClient, MemberListResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';
import { IO, run } from '../../server/etcdctl/main';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(180_000);

const REAL_ETCDCTL = '/usr/bin/etcdctl';

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

interface Side extends RunningEtcd {
  dir: string;
  member: bigint;
  cluster: bigint;
  /** The learner added by the steps, once it is there. */
  learner?: bigint;
}

async function side(e: RunningEtcd, dir: string): Promise<Side> {
  const res = await fetch(`${e.clientURL}/v2/members`);
  const member = BigInt(`0x${((await res.json()) as { members: { id: string }[] }).members[0].id}`);
  const cluster = BigInt(`0x${res.headers.get('x-etcd-cluster-id')!}`);
  mkdirSync(dir, { recursive: true });
  return Object.assign(e, { dir, member, cluster });
}

/** An ID in every form etcdctl prints it: decimal, hex, and hex padded to 16 (Go's %16x, in "Member … cluster …"). */
function ids(name: string, id: bigint | undefined): [string, string][] {
  if (id === undefined) return [];
  const hex = id.toString(16);
  const padded = hex.padStart(16, ' ');
  return [[`Member ${padded}`, `Member ${name}`], [`cluster ${padded}`, `cluster ${name}`], [id.toString(), name], [hex, name]];
}

/** What differs between two servers put aside; `loose` also what belongs to the backend (ours against etcd). */
function normalize(stdout: Buffer, stderr: string, code: number, s: Side, loose: boolean, protobuf?: { decode(b: Uint8Array): unknown }, memberList = false): Outcome {
  const swaps: [string, string][] = [...ids('<CLUSTER>', s.cluster), ...ids('<MEMBER>', s.member), ...ids('<LEARNER>', s.learner), [s.dir, '<DIR>'], [s.clientURL, '<CLIENT>'], [s.peerURL, '<PEER>'], [new URL(s.clientURL).host, '<CLIENTHOST>']];
  const fix = (t: string): string => {
    for (const [from, to] of swaps) t = t.split(from).join(to);
    t = t
      .replace(/(panic: [^\n]*\n(?:\[signal[^\n]*\n)?\ngoroutine 1 \[running\]:\n)[\s\S]*$/, '$1')
      .replace(/"ts":("[^"]+"|[0-9.e+]+)/g, '"ts":<T>').replace(/"took":("[^"]+"|[0-9.e-]+)/g, '"took":<T>')
      .replace(/took = [0-9.]+(ns|µs|ms|s)/g, 'took = <T>').replace(/"Took" : [0-9.]+(ns|µs|ms|s)/g, '"Took" : <T>')
      .replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://<CLIENT-ID>/')
      .replace(/"size":"[^"]+"/g, '"size":<SIZE>')
      // What bbolt counts as in use moves with its free list, even between two etcds that did the same.
      .replace(/"dbSizeInUse":\d+/g, '"dbSizeInUse":<N>')
      // So do bbolt's sizes (one page more or less) between two etcds that did the same.
      .replace(/"dbSize":\d+/g, '"dbSize":<N>').replace(/"DBSize" : \d+/g, '"DBSize" : <N>').replace(/\b\d+(\.\d)? (B|kB|MB)\b/g, '<SIZE>');
    // The Raft index moves with how often the test polled each server's /health before it answered (etcd's
    // proposes an entry), even between two etcds: the index's place is compared, not its value.
    t = t
      .replace(/"(raftIndex|raftAppliedIndex)":\d+/g, '"$1":<N>').replace(/^("RaftIndex"|"RaftAppliedIndex") : \d+$/gm, '$1 : <N>')
      .replace(/^(<CLIENT>, <MEMBER>, [^,]+, [^,]+, \w+, \w+, \d+, )\d+, \d+, /gm, '$1<N>, <N>, ')
      .replace(/^(\| <CLIENT> +\| <MEMBER> +\|[^|]+\|[^|]+\|[^|]+\|[^|]+\|[^|]+\|) +\d+ \| +\d+ \|/gm, '$1 <N> | <N> |');
    if (loose) {
      t = t
        .replace(/"version":"[^"]*"/g, '"version":<V>').replace(/"(dbSize|dbSizeInUse|hash|raftIndex|raftAppliedIndex)":\d+/g, '"$1":<N>')
        .replace(/\b3\.4\.(0|23)\b/g, '<V>').replace(/\b\d+(\.\d)? (B|kB|MB)\b/g, '<SIZE>').replace(/^("Version"|"DBSize"|"Hash"|"RaftIndex"|"RaftAppliedIndex") : .*$/gm, '$1 : <N>')
      .replace(/(\| <CLIENT> \| )\d+( \|)/g, '$1<N>$2');
    }
    // Members come by ID, which differ between two servers: in a fixed order instead (JSON arrays, member list rows).
    const at = t.indexOf('"members":[');
    if (at >= 0) {
      const end = t.lastIndexOf(']');
      t = `${t.slice(0, at + 11)}${t.slice(at + 11, end).split(/(?<=\}),(?=\{)/).sort().join(',')}${t.slice(end)}`;
    }
    t = t.replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/, (_m, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(',').sort().join(',')}"`);
    // A table's widths follow its cells, some of which were just replaced: compare its rows' cells only.
    if (/^\+-/m.test(t)) t = t.replace(/\b[0-9.]+(ns|µs|ms|s)\b/g, '<T>').replace(/-+/g, '-').replace(/ +/g, ' ');
    if (memberList) t = t.split('\n').sort().join('\n');
    return t;
  };
  let out = stdout.toString('utf8');
  // Protobuf output holds the IDs as varints: decoded, to compare it with the IDs named.
  if (protobuf && stdout.length) out = JSON.stringify(protobuf.decode(stdout), (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  // Ours against etcd: the backend's values (and the Raft index: etcd's /health, which the tests poll at start,
  // proposes an entry, ours reads through ReadIndex) are each server's own.
  if (loose) {
    for (const [from, to] of swaps) out = out.split(from).join(to);
    out = out
      .replace(/^(<CLIENT>), (\d+)$/gm, '$1, <N>')
      .replace(/^(<CLIENT>, <MEMBER>, )[^,]+, [^,]+, (\w+, \w+, \d+, )\d+, \d+, (.*)$/gm, '$1<V>, <SIZE>, $2<N>, <N>, $3')
      .replace(/^\| <CLIENT> \| *\d+ \|$/gm, '| <CLIENT> | <N> |')
      .replace(/^(\| <CLIENT> +\| <MEMBER> +\|[^|]+\|[^|]+\|[^|]+\|[^|]+\|[^|]+\|) +\d+ \| +\d+ \|/gm, '$1 <N> | <N> |');
  }
  return { stdout: fix(out), stderr: fix(stderr), code };
}

function subst(args: string[], s: Side): string[] {
  return args.map((a) => a.replace('<DIR>', s.dir).replace('<PEER>', s.peerURL).replace('<MEMBER>', s.member.toString(16)).replace('<LEARNER>', (s.learner ?? 0n).toString(16)));
}

const isMemberList = (args: string[]) => args[0] === 'member' && args[1] === 'list';

/** The response type of a step's protobuf output, to decode it. */
function protobufOf(args: string[]): { decode(b: Uint8Array): unknown } | undefined {
  if (!args.includes('protobuf')) return undefined;
  if (args[0] === 'member' && args[1] === 'list') return MemberListResponse;
  if (args[0] === 'alarm') return AlarmResponse;
  return undefined;
}

function debian(s: Side, args: string[], env: Record<string, string>, loose: boolean): Outcome {
  const r = spawnSync(REAL_ETCDCTL, subst(args, s), { env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: s.clientURL, ...env }, timeout: 30000 });
  return normalize(r.stdout, r.stderr.toString(), r.status ?? -1, s, loose, protobufOf(args), isMemberList(args));
}

async function ours(s: Side, args: string[], env: Record<string, string>): Promise<Outcome> {
  const out: Buffer[] = [];
  let stderr = '';
  const io: IO = { stdout: (x) => out.push(Buffer.from(x)), stdoutBytes: (b) => out.push(b), stderr: (x) => (stderr += x), readStdin: () => '' };
  const code = await run(subst(args, s), { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: s.clientURL, ...env }, io);
  return normalize(Buffer.concat(out), stderr, code, s, false, protobufOf(args), isMemberList(args));
}

/** Raises or clears a NOSPACE alarm for the member, as the quota would (etcdctl has no command for it). */
async function setAlarm(s: Side, action: AlarmRequest_AlarmAction): Promise<void> {
  const m = new MaintenanceClient(new URL(s.clientURL).host, grpc.credentials.createInsecure());
  try {
    await new Promise((resolve, reject) => m.alarm(AlarmRequest.fromPartial({ action, memberID: s.member, alarm: AlarmType.NOSPACE }), (err, r) => (err ? reject(err) : resolve(r))));
  } finally {
    m.close();
  }
}

/** The learner the steps added, found in the member list. */
async function findLearner(s: Side): Promise<void> {
  const res = await fetch(`${s.clientURL}/v2/members`);
  const ms = ((await res.json()) as { members: { id: string }[] }).members.map((m) => BigInt(`0x${m.id}`));
  s.learner = ms.find((id) => id !== s.member) ?? s.learner;
}

type Step = string[] | { args: string[]; env?: Record<string, string>; before?: (s: Side) => Promise<void>; after?: (s: Side) => Promise<void>; etcdBug?: boolean };

const FORMATS = ['simple', 'json', 'table', 'fields', 'protobuf'];
const each = (args: string[]): Step[] => FORMATS.map((f) => [...args, '-w', f]);

const STEPS: Step[] = [
  ...each(['member', 'list']),
  ['put', 'a', '1'],
  ['put', 'b', '2'],
  ...each(['endpoint', 'status']),
  ...each(['endpoint', 'hashkv']),
  ['endpoint', 'hashkv', '--rev', '2'],
  ['endpoint', 'hashkv', '--rev', '99'],
  ['endpoint', 'status', '--cluster', '-w', 'table'],
  ['endpoint', 'hashkv', '--cluster'],
  ['endpoint', 'health'],
  ['endpoint', 'health', '-w', 'json'],
  ['endpoint', 'health', '-w', 'fields'],
  ['endpoint', 'health', '--cluster', '-w', 'table'],
  ...each(['alarm', 'list']),
  { args: ['alarm', 'list'], before: (s) => setAlarm(s, AlarmRequest_AlarmAction.ACTIVATE) },
  ...each(['alarm', 'list']),
  ['endpoint', 'status', '-w', 'table'],
  ['endpoint', 'status', '-w', 'fields'],
  ['put', 'c', '3'],
  ['alarm', 'disarm', '-w', 'json'],
  { args: ['alarm', 'disarm'], before: (s) => setAlarm(s, AlarmRequest_AlarmAction.ACTIVATE) },
  ['alarm', 'disarm'],
  ['alarm', 'list', 'x'],
  ['alarm', 'disarm', 'x'],
  ['defrag'],
  ['defrag', '--cluster', '-w', 'json'],
  ['move-leader', '<MEMBER>'],
  ['move-leader', '<MEMBER>', '-w', 'json'],
  ['move-leader', '<MEMBER>', '-w', 'table'],
  ['move-leader', '1234'],
  ['move-leader', 'zz'],
  ['move-leader'],
  { args: ['member', 'add', 'l1', '--learner', '--peer-urls=http://127.0.0.1:1'], after: findLearner },
  ['member', 'add', 'l2', '--learner', '--peer-urls=http://127.0.0.1:2'],
  ['member', 'add', 'x', '--peer-urls=ftp://x:1'],
  ['member', 'add', 'x', '--peer-urls=<PEER>', '--learner'],
  ['member', 'add', 'x', 'http://127.0.0.1:9'],
  ['member', 'add', 'x'],
  ['member', 'add'],
  ...each(['member', 'list']),
  ['member', 'promote', '<LEARNER>'],
  ['member', 'update', '<LEARNER>', '--peer-urls=http://127.0.0.1:3'],
  // etcd 3.4 loses the learner flag here (see test/v3rpc/maintenance-cluster-side-by-side.test.ts); ours keeps it.
  { args: ['member', 'update', '<LEARNER>', '--peer-urls=http://127.0.0.1:4', '-w', 'json'], etcdBug: true },
  ['member', 'update', '<LEARNER>', '--peer-urls=<PEER>'],
  ['member', 'update', '1234', '--peer-urls=http://127.0.0.1:5'],
  ['member', 'update', '1234'],
  ['member', 'remove', '<LEARNER>', '-w', 'table'],
  ['member', 'remove', '<LEARNER>'],
  { args: ['member', 'add', 'l3', '--learner', '--peer-urls=http://127.0.0.1:6', '-w', 'json'], after: findLearner },
  ['member', 'remove', '<LEARNER>', '-w', 'json'],
  ['member', 'remove', 'zz'],
  ['member', 'remove'],
  ['member', 'promote', '1234'],
  ['member'],
  ['member', 'bogus'],
  ['endpoint'],
  ['help', 'endpoint', 'status'],
  ['snapshot', 'restore', '--help'],
  ['defrag', '--help'],
  ['snapshot', 'save', '<DIR>/snap.db'],
  ['snapshot', 'save'],
  { args: ['snapshot', 'save', '<DIR>/two.db'], env: { ETCDCTL_ENDPOINTS: 'http://127.0.0.1:1,http://127.0.0.1:2' } },
  ['snapshot', 'save', '<DIR>/no/such/dir/snap.db'],
  ['snapshot', 'status'],
  ['snapshot', 'status', '<DIR>/missing.db'],
  ['snapshot', 'restore'],
  ['snapshot', 'restore', '<DIR>/missing.db', '--data-dir', '<DIR>/restored'],
];

function renameLearner(o: Outcome, s: Side): Outcome {
  const fix = (t: string) => ids('<LEARNER>', s.learner).reduce((acc, [from, to]) => acc.split(from).join(to), t);
  return { ...o, stdout: fix(o.stdout), stderr: fix(o.stderr) };
}

async function runSteps(steps: Step[], a: Side, b: Side, first: (s: Side, args: string[], env: Record<string, string>) => Promise<Outcome>, second: (s: Side, args: string[], env: Record<string, string>) => Promise<Outcome>) {
  const left: Record<string, Outcome> = {};
  const right: Record<string, Outcome> = {};
  for (const [i, step] of steps.entries()) {
    const { args, env = {}, before, after } = Array.isArray(step) ? { args: step } : step;
    const name = `${String(i).padStart(2, '0')} ${args.join(' ')}`;
    await Promise.all([before?.(a), before?.(b)]);
    left[name] = await first(a, args, env);
    right[name] = await second(b, args, env);
    await Promise.all([after?.(a), after?.(b)]);
    // A member's ID hashes the second it was added in: two servers agree only when both adds fell in the same second.
    // The step's own output names the learner it just added, known only now.
    if (after) [left[name], right[name]] = [renameLearner(left[name], a), renameLearner(right[name], b)];
  }
  return { left, right };
}

describe('etcdctl cluster and maintenance commands', () => {
  let dir: string;
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcdctl-cluster-'));
  });

  test('ours against Debian\'s etcdctl, each with its own Debian etcd: the same bytes and exit codes', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map(async (n) => side(await startRealEtcd(path.join(dir, n)), path.join(dir, `${n}-files`))));
    try {
      const { left: theirs, right: mine } = await runSteps(STEPS, a, b, async (s, args, env) => debian(s, args, env, false), ours);
      expect(mine).toEqual(theirs);
      // Not vacuous: most steps printed something, some succeeded and some failed.
      expect(Object.values(theirs).filter((o) => o.code === 0 && o.stdout.length > 0).length).toBeGreaterThan(40);
      expect(Object.values(theirs).filter((o) => o.code !== 0).length).toBeGreaterThan(20);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  test('Debian\'s etcdctl against our server and against Debian\'s etcd: the same output, but for the backend\'s own values', async () => {
    const [real, mine] = await Promise.all([
      startRealEtcd(path.join(dir, 'real')).then((e) => side(e, path.join(dir, 'real-files'))),
      startOurEtcd(path.join(dir, 'ours')).then((e) => side(e, path.join(dir, 'ours-files'))),
    ]);
    try {
      const steps = STEPS.filter((s) => !(Array.isArray(s) ? s : s.args).includes('protobuf') && (Array.isArray(s) || !s.etcdBug));
      const { left: theirs, right: onOurs } = await runSteps(steps, real, mine, async (s, args, env) => debian(s, args, env, true), async (s, args, env) => debian(s, args, env, true));
      expect(onOurs).toEqual(theirs);
    } catch (err) {
      (err as Error).message += `\n--- ours:\n${mine.output().slice(-12000)}`;
      throw err;
    } finally {
      await Promise.all([real.stop(), mine.stop()]);
    }
  });
});
