/**
 * --logger, --log-outputs, --log-level and --log-package-levels: our member logs in the format etcd 3.4 uses for
 * each logger (capnslog's `2006-01-02 15:04:05.000000 I | pkg: message` lines by default, zap's JSON lines), where
 * it is told to, with the lines people and etcd's e2e suite wait for (`enabled capabilities for version`,
 * `published`), side by side with Debian's etcd.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually } from '../support/cluster';
import { OUR_ETCD, RunningEtcd, runRealEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

jest.setTimeout(60000);

let root: string;
const running: RunningEtcd[] = [];
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'etcd-logging-'));
});
afterAll(async () => {
  await Promise.all(running.map((m) => m.stop()));
  rmSync(root, { recursive: true, force: true });
});

async function both(args: string[], name: string): Promise<[RunningEtcd, RunningEtcd]> {
  const real = await startRealEtcd(path.join(root, `${name}-real`), args);
  running.push(real);
  const ours = await startOurEtcd(path.join(root, `${name}-ours`), args);
  running.push(ours);
  return [real, ours];
}

const readiness = (out: string): boolean => /enabled capabilities for version/.test(out) && /published/.test(out);

const CAPNSLOG_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} [CEWNIDT] \| [a-z0-9/]+: \S/;

test('capnslog (the default): etcd\'s line format, and the two readiness lines worded as etcd words them', async () => {
  const [real, ours] = await both([], 'capnslog');
  for (const m of [real, ours]) await eventually('the readiness lines', async () => (readiness(m.output()) ? true : undefined));
  for (const m of [real, ours]) {
    const out = m.output();
    expect(out).toMatch(/ I \| etcdserver\/api: enabled capabilities for version 3\.4\n/);
    expect(out).toContain(` I | etcdserver: published {Name:default ClientURLs:[${m.clientURL}]} to cluster `);
  }
  const lines = ours.output().split('\n').filter((l) => l !== '');
  expect(lines.filter((l) => !CAPNSLOG_LINE.test(l))).toEqual([]);
});

test('--logger=zap: one JSON object a line with zap\'s field names; --log-level=warn keeps info out', async () => {
  const [real, ours] = await both(['--logger=zap'], 'zap');
  for (const m of [real, ours]) await eventually('the readiness lines', async () => (readiness(m.output()) ? true : undefined));
  for (const m of [real, ours]) {
    const entries = m.output().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of entries) {
      expect(e).toMatchObject({ level: expect.stringMatching(/^(debug|info|warn|error)$/), ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$/), msg: expect.any(String) });
    }
    expect(entries).toContainEqual(expect.objectContaining({ msg: 'enabled capabilities for version', 'cluster-version': '3.4' }));
    expect(entries).toContainEqual(expect.objectContaining({ msg: 'published local member to cluster through raft', 'local-member-attributes': `{Name:default ClientURLs:[${m.clientURL}]}` }));
  }
  const quiet = await startOurEtcd(path.join(root, 'zap-warn'), ['--logger=zap', '--log-level=warn']);
  running.push(quiet);
  expect(quiet.output()).not.toMatch(/"level":"info"/);
});

test('--log-outputs=<file>: the log goes to that file (appended), nothing to stderr', async () => {
  const file = path.join(root, 'etcd.log');
  const m = await startOurEtcd(path.join(root, 'file'), ['--logger=zap', `--log-outputs=${file}`]);
  running.push(m);
  await eventually('the readiness lines in the file', async () => (readiness(readFileSync(file, 'utf8')) ? true : undefined));
  expect(await m.signal('SIGTERM')).toBe(0);
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  expect(lines.every((l) => JSON.parse(l))).toBe(true);
  expect(lines[lines.length - 1]).toMatch(/received signal; shutting down/); // flushed before the exit
  expect(m.output()).toBe('');
});

test('--log-package-levels=etcdserver=WARNING: that package\'s info lines are hidden, others\' kept, as in etcd', async () => {
  const [real, ours] = await both(['--log-package-levels=etcdserver=WARNING'], 'pkg');
  for (const m of [real, ours]) await eventually('a client URL served', async () => (/ embed: .*(serving|ready)/.test(m.output()) ? true : undefined));
  for (const m of [real, ours]) {
    expect(m.output()).not.toMatch(/ I \| etcdserver: /);
    expect(m.output()).toMatch(/ I \| embed: /);
  }
});

test('a --log-outputs file that cannot be opened stops the start with etcd\'s message', () => {
  const args = ['--logger=zap', `--log-outputs=${path.join(root, 'no-such-dir', 'etcd.log')}`, '--data-dir', path.join(root, 'unopened')];
  const real = runRealEtcd(args, root);
  const ours = spawnSync(process.execPath, [OUR_ETCD, ...args], { cwd: root, encoding: 'utf8', timeout: 15000 });
  const message = (s: string) => /error verifying flags, (.*)\. See 'etcd --help'/.exec(s)?.[1];
  expect({ status: ours.status, message: message(ours.stderr) }).toEqual({ status: real.status, message: message(real.stderr) });
  expect(real.status).toBe(1);
});
