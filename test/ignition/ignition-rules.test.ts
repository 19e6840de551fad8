/**
 * ct's copy of Ignition's validation (ignition/rules/) against the real thing: each config here is given both to
 * `checkIgnitionConfig` and to Debian's ignition-validate, and the two must report the same problems (severity and
 * JSON path, and the message for most), on configs chosen to sit on either side of each rule's edge.
 */
import { checkIgnitionConfig } from '../../ignition/rules/ignition-rules';
import { ignitionValidateReport, type ValidateEntry } from './helpers';

const V = { version: '3.3.0' };

/** Ours, in ignition-validate's terms. */
function ours(config: object): ValidateEntry[] {
  return checkIgnitionConfig(config).map((p) => ({ severity: p.severity, path: ['$', ...p.path].join('.'), message: p.message }));
}

const key = (e: ValidateEntry): string => `${e.severity} ${e.path}`;
const sorted = (l: ValidateEntry[]): string[] => l.map(key).sort();

/** Same problems at the same places; with `messages`, the same messages too. */
async function expectSameAsIgnition(config: object, messages = true): Promise<ValidateEntry[]> {
  const theirs = await ignitionValidateReport(config);
  const mine = ours(config);
  expect(sorted(mine)).toEqual(sorted(theirs));
  if (messages) expect(mine.map((e) => `${key(e)}: ${e.message}`).sort()).toEqual(theirs.map((e) => `${key(e)}: ${e.message}`).sort());
  return theirs;
}

/** One file per source URL, so that one run of ignition-validate judges them all. */
const filesWithSources = (sources: string[]): object => ({
  ignition: V,
  storage: { files: sources.map((source, i) => ({ path: `/f${i}`, contents: { source } })) },
});

describe('resource URLs: Go url.Parse and the schemes Ignition fetches', () => {
  const URLS = [
    'http://example.com/a',
    'https://user:pass@example.com:8443/a/b?c=d#e',
    'HTTP://example.com/x',
    'http://exa mple.com/',
    'http://h:x/',
    'http://h:80/',
    'http://h:/',
    'http://[::1]:2379/x',
    'http://[::1/',
    'http://[fe80::1%25en0]/',
    'http://[fe80::1%en0]/',
    'http://h/%zz',
    'http://h/%4',
    'http://h/a b',
    'http://h/?q=%zz',
    'http://h/#%zz',
    'http://h/#ok',
    'http://u^@h/',
    'http://u%zz@h/',
    'http://h%41/',
    'http://h%c3%a9/',
    'http://hé/',
    'http://h{x}/',
    'http://h/é',
    'http:/x',
    'http:x',
    'http://',
    'ftp://h/x',
    'tftp://h/x',
    'gs://bucket/object',
    's3://bucket/object',
    's3://bucket/object?versionId=',
    's3://bucket/object?versionId=1',
    's3://bucket/object?versionId',
    's3://bucket/object?versionId=&versionId=2',
    'mailto:a@b',
    ':foo',
    'foo',
    'foo:bar',
    '/just/a/path',
    'http://h/\u0001',
    'http://h/\u007f',
  ];

  test('which parse, which have a scheme Ignition takes', async () => {
    await expectSameAsIgnition(filesWithSources(URLS));
  });

  const DATA_URLS = [
    'data:,',
    'data:,hello',
    'data:,hello%20world',
    'data:,hello world',
    'data:hello',
    'data:',
    'data:,a%2',
    'data:,a%zz',
    'data:,a%',
    'data:,#x',
    'data:,{x}',
    'data:,x"y',
    'data:,~!*()\'-._',
    'data:,é',
    'data:,%C3%A9',
    'data:text/plain,x',
    'data:text/plain;charset=utf-8,x',
    'data:text/plain;charset=utf-8;base64,aGk=',
    'data:textual/plain,x',
    'data:foo/bar,x',
    'data:x-foo/bar,x',
    'data:X-foo/bar,x',
    'data:x/y,x',
    'data:xy/plain,x',
    'data:x',
    'data:text/plain',
    'data:text/,x',
    'data:text,x',
    'data:text/pl@in,x',
    'data:te@t/plain,x',
    'data:@,x',
    'data:;base64,aGk=',
    'data:;base64,aGk',
    'data:;base64,aG k=',
    'data:;base64,a===',
    'data:;base64,====',
    'data:;base64,aGk=aGk=',
    'data:;base64,aG\nk=',
    'data:;base64,',
    'data:;base64,aA==',
    'data:;base64,aGk%3D',
    'data:;base64x,aGk=',
    'data:;base64;a=b,x',
    'data:;charset="utf-8",x',
    'data:;charset="a\\qb",x',
    'data:;charset="a\\nb",x',
    'data:;charset="a\\\'b",x',
    'data:;charset="a\\x41b",x',
    'data:;charset="a\\u0041b",x',
    'data:;charset="a\\ud800b",x',
    'data:;charset="a\\101b",x',
    'data:;charset="a\\400b",x',
    'data:;charset="",x',
    'data:;charset="unclosed,x',
    'data:;charset="ab"c,x',
    'data:;a="";b=%zz,x',
    'data:;a="";b="ok",x',
    'data:;a=%zz,x',
    'data:;a=%41,x',
    'data:;a=b;c=d,x',
    'data:;a=,x',
    'data:;a,x',
    'data:;,x',
    'data:;=x,x',
    'data:;a=b',
    'data:;a="b',
    'data:;a=b c,x',
  ];

  test('data URLs, as the dataurl package decodes them', async () => {
    await expectSameAsIgnition(filesWithSources(DATA_URLS));
  });

  test('configs to merge and certificate authorities need a source', async () => {
    await expectSameAsIgnition({
      ignition: {
        ...V,
        config: { merge: [{ source: 'https://h/a.ign' }, { source: '' }, { source: 'data:hello' }, { source: 'https://h/a.ign' }], replace: { source: 'ftp://h/x' } },
        security: { tls: { certificateAuthorities: [{ source: 'https://h/ca.pem' }, { source: 'https://h/ca.pem' }] } },
      },
    });
  });

  test('compression and hashes', async () => {
    const sha512 = 'a'.repeat(128);
    await expectSameAsIgnition({
      ignition: V,
      storage: {
        files: [
          { path: '/a', contents: { source: 'http://h/a', compression: 'gzip', verification: { hash: `sha512-${sha512}` } } },
          { path: '/b', contents: { source: 'http://h/b', compression: 'xz' } },
          { path: '/c', contents: { source: 'http://h/c', verification: { hash: 'sha512-abc' } } },
          { path: '/d', contents: { source: 'http://h/d', verification: { hash: `md5-${sha512}` } } },
          { path: '/e', contents: { source: 'http://h/e', verification: { hash: 'sha512' } } },
          { path: '/f', contents: { source: 'http://h/f', verification: { hash: `sha256-${'b'.repeat(64)}` } } },
          { path: '/g', contents: { verification: { hash: `sha256-${'b'.repeat(64)}` } } },
        ],
      },
    });
  });
});

describe('unit files: what go-systemd reads', () => {
  const CONTENTS = [
    '[Service]\nExecStart=/bin/true\n',
    '[Service]\nExecStart=/bin/true',
    '',
    'no section at all\n',
    'junk before\n[Service]\nA=b\n',
    '[Service]\nfoo\n',
    '[Service]\nfoo',
    '[Service]\nfoo\r\n',
    '[Service',
    '[Service]x\n',
    '[Service]  \n',
    '[Service] # comment\n',
    '# comment\n[Service]\nA=b \\\n  c\n',
    '; c \\\n continued\n[Service]\nA=b\n',
    '[Service]\nA=b\\\n',
    '[Service]\nA=b\\',
    '[Service]\n=x\n',
    '[Service]\n  A = b\n',
    '[Service]\r\nA=b\r\n',
    '[Service]\n\u00a0A=b\n',
    '[Unit]\nDescription=é\n[Service]\nA=b\n',
    '[A]\n[B]\n[C]\n',
    '[Service]\n[',
  ];

  test('syntax', async () => {
    const units = CONTENTS.map((contents, i) => ({ name: `u${i}.service`, contents }));
    const dropins = CONTENTS.map((contents, i) => ({ name: `d${i}.conf`, contents }));
    await expectSameAsIgnition({ ignition: V, systemd: { units: [...units, { name: 'd.service', dropins }] } });
  });

  /**
   * go-systemd refuses a line of 2048 bytes or more, but it only looks when its 4096-byte buffer holds 2048 bytes
   * ahead: where the long line falls in the buffer decides. Lines around the limit, at many offsets.
   */
  test('long lines, wherever they fall in go-systemd\'s buffer', async () => {
    const units: object[] = [];
    for (const filler of [0, 1, 100, 450, 500, 505, 510, 1000, 1020, 1023, 1024, 2000]) {
      for (const length of [2040, 2045, 2046, 2047, 2048, 2049, 2100, 3000, 4094, 4095, 4096, 5000, 9000]) {
        for (const after of ['', '\n', '\nZ=1\n', `\nZ=${'z'.repeat(3000)}\n`]) {
          const contents = `[Service]\n${'X=y\n'.repeat(filler)}A=${'b'.repeat(length - 2)}${after}`;
          units.push({ name: `u${units.length}.service`, contents });
        }
      }
    }
    // A long comment or section header, too.
    for (const length of [2047, 2048, 5000]) {
      units.push({ name: `u${units.length}.service`, contents: `# ${'c'.repeat(length - 2)}\n[Service]\nA=b\n` });
      units.push({ name: `u${units.length}.service`, contents: `[${'S'.repeat(length - 2)}]\nA=b\n` });
      units.push({ name: `u${units.length}.service`, contents: `[Service]\nA=b \\\n${'c'.repeat(length)}\n` });
    }
    const reported = await expectSameAsIgnition({ ignition: V, systemd: { units } });
    // Both sides of the edge were met, and "no line of 2048 bytes" alone would not have been Ignition's answer.
    expect(reported.length).toBeGreaterThan(50);
    expect(reported.length).toBeLessThan(units.length - 50);
    const rejected = new Set(reported.map((e) => e.path));
    const longButAccepted = units.filter((u, i) => {
      const lines = (u as { contents: string }).contents.split(/[\r\n]/);
      return lines.some((l) => Buffer.byteLength(l) >= 2048) && !rejected.has(`$.systemd.units.${i}.contents`);
    });
    expect(longButAccepted.length).toBeGreaterThan(0);
  });

  test('names, the [Install] warning and duplicates', async () => {
    await expectSameAsIgnition({
      ignition: V,
      systemd: {
        units: [
          { name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n' },
          { name: 'b.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n[Install]\n' },
          { name: 'c.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' },
          { name: 'd.service', enabled: false, contents: '[Service]\nExecStart=/bin/true\n' },
          { name: 'e.service', enabled: true, dropins: [{ name: 'x.conf', contents: '[Service]\nNice=1\n' }] },
          { name: 'f.service', enabled: true, contents: '' },
          { name: 'g', contents: '' },
          { name: 'h.serv' },
          { name: 'i@.service' },
          { name: 'j.service', dropins: [{ name: 'x' }, { name: 'y.conf' }, { name: 'y.conf' }, { name: '.conf' }] },
          { name: 'a.service' },
        ],
      },
    });
  });
});

describe('storage', () => {
  test('paths: absolute and clean; modes; owners; overwrite', async () => {
    await expectSameAsIgnition({
      ignition: V,
      storage: {
        files: [
          { path: '/ok', mode: 0o644 },
          { path: 'relative' },
          { path: '/a/../b' },
          { path: '/a/' },
          { path: '/a//b' },
          { path: '/a/./b' },
          { path: '/' },
          { path: '/m1', mode: 0o4755 },
          { path: '/m2', mode: 0o10000 },
          { path: '/m3', mode: -1 },
          { path: '/o1', user: { id: 1, name: 'core' } },
          { path: '/o2', group: { id: 0 }, user: { name: 'core' } },
          { path: '/o3', overwrite: true },
          { path: '/o4', overwrite: true, contents: { source: 'data:,' } },
          { path: '/o5', append: [{ source: 'data:,x' }, { source: 'data:x' }] },
        ],
        directories: [{ path: '/d/' }, { path: '/d1', mode: 0o1777 }, { path: '/l1/below' }],
        links: [
          { path: '/l1', target: '/x' },
          { path: '/l2', target: '' },
          { path: '/l3', target: '/ok', hard: true },
          { path: '/l4', target: '/d1', hard: true },
          { path: '/l1/x', target: '/y' },
        ],
      },
    });
  });

  test('files, directories and links share one namespace', async () => {
    await expectSameAsIgnition({
      ignition: V,
      storage: { files: [{ path: '/a' }, { path: '/b' }, { path: '/a' }], directories: [{ path: '/b' }, { path: '/c' }], links: [{ path: '/c', target: '/x' }] },
    });
  });

  test('disks and partitions', async () => {
    await expectSameAsIgnition({
      ignition: V,
      storage: {
        disks: [
          { device: '/dev/sda', partitions: [{ number: 1, sizeMiB: 10, startMiB: 1 }, { number: 2, sizeMiB: 10, startMiB: 5 }] },
          { device: '/dev/sdb', partitions: [{ sizeMiB: 10 }, { label: 'x'.repeat(37) }, { label: 'a:b' }, { label: 'ok', guid: 'nope' }] },
          { device: '/dev/sdc', partitions: [{ number: 1 }, { number: 1 }, { label: 'l' }, { label: 'l' }] },
          { device: '/dev/sdd/', partitions: [{ number: 1, typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', guid: '' }] },
          { device: 'sde' },
          { device: '' },
          { device: '/dev/sda' },
          { device: '/dev/sdf', partitions: [{ number: 1, startMiB: 0, sizeMiB: 0 }, { number: 2, startMiB: 100, sizeMiB: 0 }, { number: 3, startMiB: 50, sizeMiB: 100 }] },
        ],
      },
    });
  });

  test('RAID arrays', async () => {
    await expectSameAsIgnition({
      ignition: V,
      storage: {
        raid: [
          { name: 'a', level: 'raid1', devices: ['/dev/sda', '/dev/sdb'], options: ['--bitmap=internal', '--bitmap=internal'] },
          { name: 'b', level: 'raid0', devices: ['/dev/sda'], spares: 1 },
          { name: 'c', level: 'raid7', devices: ['/dev/sda'] },
          { name: 'd', level: 'raid5', devices: [] },
          { name: 'e', devices: ['/dev/sda'] },
          { name: 'f', level: 'mirror', devices: ['/dev/sda/', 'sdb', '/dev/sdc', '/dev/sdc'], spares: 2 },
          { name: 'a', level: 'linear', devices: ['/dev/sda'] },
        ],
      },
    });
  });

  test('filesystems', async () => {
    await expectSameAsIgnition({
      ignition: V,
      storage: {
        filesystems: [
          { device: '/dev/sda', format: 'ext4', path: '/var/lib/etcd', label: 'x'.repeat(16) },
          { device: '/dev/sdb', format: 'ext4', label: 'x'.repeat(17) },
          { device: '/dev/sdc', format: 'xfs', label: 'x'.repeat(13) },
          { device: '/dev/sdd', format: 'vfat', label: 'x'.repeat(12) },
          { device: '/dev/sde', format: 'swap', label: 'x'.repeat(16) },
          { device: '/dev/sdf', format: 'btrfs', label: 'x'.repeat(257) },
          { device: '/dev/sdg', format: 'ntfs' },
          { device: '/dev/sdh', path: '/x' },
          { device: '/dev/sdi', label: 'x' },
          { device: '/dev/sdj/', format: 'ext4', path: '/var/lib/etcd/' },
          { device: '/dev/sda', format: 'none', wipeFilesystem: true },
        ],
      },
    });
  });
});

test('passwd: users, groups and their lists have no repeats', async () => {
  await expectSameAsIgnition({
    ignition: V,
    passwd: {
      users: [
        { name: 'core', sshAuthorizedKeys: ['ssh-ed25519 A', 'ssh-ed25519 B', 'ssh-ed25519 A'], groups: ['wheel', 'wheel'] },
        { name: 'core' },
      ],
      groups: [{ name: 'g' }, { name: 'g' }],
    },
  });
});

test('a config ct emits with nothing wrong gets nothing from either', async () => {
  expect(
    await expectSameAsIgnition({
      ignition: V,
      storage: { files: [{ path: '/etc/hostname', mode: 0o644, overwrite: true, contents: { source: 'data:,node-1' } }] },
      systemd: { units: [{ name: 'etcd-member.service', enabled: true, dropins: [{ name: '20-clct-etcd-member.conf', contents: '[Service]\nExecStart=\n' }] }] },
    }),
  ).toEqual([]);
});
