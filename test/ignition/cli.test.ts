/** The `ct` command, run from the build output (`npx tsc -p tsconfig.json` writes dist/, `npm test` does it first). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectValidIgnition, README_EXAMPLE, REPO_ROOT, tempDir } from './helpers';

const CT = path.join(REPO_ROOT, 'dist', 'ignition', 'main.js');

function ct(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CT, ...args], { input, encoding: 'utf8', cwd: REPO_ROOT });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;

beforeAll(() => {
  if (!fs.existsSync(CT)) throw new Error(`${CT} is missing: build first with "npx tsc -p tsconfig.json"`);
  dir = tempDir('cli');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ct command', () => {
  test('stdin to stdout, compact JSON, exit 0', () => {
    const r = ct([], README_EXAMPLE);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const config = JSON.parse(r.stdout);
    expect(config.ignition.version).toBe('3.3.0');
    expect(config.systemd.units[0].name).toBe('etcd-member.service');
    expectValidIgnition(config);
  });

  test('--pretty indents; --in-file and --out-file', () => {
    const inFile = path.join(dir, 'config.yaml');
    const outFile = path.join(dir, 'config.ign');
    fs.writeFileSync(inFile, README_EXAMPLE);
    const r = ct(['--in-file', inFile, '--out-file', outFile, '--pretty']);
    expect(r).toEqual({ status: 0, stdout: '', stderr: '' });
    const text = fs.readFileSync(outFile, 'utf8');
    expect(text).toMatch(/^\{\n {2}"ignition": \{\n {4}"version": "3\.3\.0"/);
    expect(JSON.parse(text)).toEqual(JSON.parse(ct([], README_EXAMPLE).stdout));
  });

  test('warnings go to stderr; --strict makes them fail', () => {
    const cfg = 'storage:\n  files:\n    - path: /etc/a\n';
    const loose = ct([], cfg);
    expect(loose.status).toBe(0);
    expect(loose.stderr).toBe('warning: storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644 (line 3, column 7)\n');
    expectValidIgnition(JSON.parse(loose.stdout));
    const strict = ct(['--strict'], cfg);
    expect(strict).toEqual({
      status: 1,
      stdout: '',
      stderr: 'error: storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644 (line 3, column 7)\n',
    });
  });

  test('errors: exit 1, messages with line and column, nothing on stdout', () => {
    const r = ct([], 'etcd:\n  name: a\n  initial_cluster_state: old\n  snapshot_count: x\n');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'error: etcd.initial_cluster_state: must be one of "new", "existing", found "old" (line 3, column 26)',
      'error: etcd.snapshot_count: expected an integer, found string "x" (line 4, column 19)',
    ]);
    expect(ct([], 'etcd: [\n').status).toBe(1);
  });

  test('errors come with the warnings found along with them, all on stderr, in order; exit 1', () => {
    const cfg = 'storage:\n  files:\n    - path: /etc/a\nsystemd:\n  units:\n    - name: etcd-member.service\n      mask: true\netcd:\n  name: a\n';
    const r = ct([], cfg);
    expect(r).toEqual({
      status: 1,
      stdout: '',
      stderr: [
        'warning: storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644 (line 3, column 7)',
        'error: unit "etcd-member.service": a unit cannot be both masked and enabled (masked here, enabled at line 9, column 3) (line 7, column 13)',
        '',
      ].join('\n'),
    });
  });

  test('--platform expands templates; without it they are an error', () => {
    const cfg = 'etcd:\n  listen_peer_urls: "http://{PRIVATE_IPV4}:2380"\n';
    const r = ct(['--platform', 'packet'], cfg);
    expect(r.status).toBe(0);
    const config = JSON.parse(r.stdout);
    expect(config.systemd.units[0].dropins[0].contents).toContain('--listen-peer-urls="http://${COREOS_PACKET_IPV4_PRIVATE_0}:2380"');
    expectValidIgnition(config);
    const bare = ct([], cfg);
    expect(bare.status).toBe(1);
    expect(bare.stderr).toContain('needs a platform; pass --platform');
    expect(bare.stderr).toContain('(line 2, column 21)');
    expect(ct(['--platform=mars'], cfg)).toMatchObject({ status: 1, stderr: expect.stringContaining('unknown platform "mars"') });
  });

  test('--files-dir supplies local contents', () => {
    fs.writeFileSync(path.join(dir, 'motd'), 'welcome\n');
    const r = ct(['--files-dir', dir], 'storage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        local: motd\n');
    expect(r.status).toBe(0);
    const config = JSON.parse(r.stdout);
    expect(config.storage.files[0].contents.source).toBe('data:,welcome%0A');
    expectValidIgnition(config);
  });

  test('--ignition-version / --spec select spec 2.2.0', () => {
    for (const args of [['--ignition-version', '2.2.0'], ['--spec=2.2'], ['-spec', '2.2']]) {
      const r = ct(args, README_EXAMPLE);
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).ignition.version).toBe('2.2.0');
    }
    expect(ct(['--spec', '1.0'], '')).toMatchObject({ status: 1, stderr: expect.stringContaining('unsupported Ignition spec version "1.0"') });
  });

  test('--version prints "ct v<version>" as the original did, and exits 0 without reading stdin', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-version', '--version=true']) {
      expect(ct([flag], 'not: [yaml')).toEqual({ status: 0, stdout: `ct v${version}\n`, stderr: '' });
    }
    expect(ct(['--help']).stdout).toContain('--version');
  });

  test('command-line mistakes exit 2 with usage; --help exits 0', () => {
    const bad = ct(['--bogus']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^ct: unknown flag "--bogus"\n\nUsage: ct/);
    expect(ct(['--in-file']).status).toBe(2);
    expect(ct(['stray']).status).toBe(2);
    expect(ct(['--in-file', path.join(dir, 'nope.yaml')])).toMatchObject({ status: 2, stderr: expect.stringContaining('cannot read') });
    const help = ct(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--files-dir DIR');
  });
});
