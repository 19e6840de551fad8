import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transpile } from '../../ignition';
import { expectErrorAt, fileOf, fileText, tempDir, transpileErrors, transpileValid, yaml, type V3Config } from './helpers';

const SHA512_OF_X = createHash('sha512').update('x').digest('hex');

describe('storage section', () => {
  test('files: inline contents as data URLs, octal modes, overwrite', () => {
    const { config, warnings } = transpileValid(yaml`
      storage:
        files:
          - path: /etc/hostname
            mode: 0644
            contents:
              inline: node-1
          - path: /etc/motd
            mode: 420
            overwrite: false
            contents:
              inline: |
                Hello, 100% "etcd" & ünïcode!
          - path: /etc/empty
            mode: 0600
    `);
    expect(warnings).toEqual([]);
    expect(fileOf(config, '/etc/hostname')).toEqual({ path: '/etc/hostname', overwrite: true, mode: 0o644, contents: { source: 'data:,node-1' } });
    expect(fileOf(config, '/etc/motd')).toMatchObject({ mode: 420, overwrite: false });
    expect(fileText(config, '/etc/motd')).toBe('Hello, 100% "etcd" & ünïcode!\n');
    expect(fileOf(config, '/etc/empty')).toMatchObject({ mode: 0o600, contents: { source: 'data:,' } });
  });

  test('binary local contents are base64 data URLs', () => {
    const dir = tempDir('files');
    try {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      fs.writeFileSync(path.join(dir, 'blob.bin'), bytes);
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'conf.txt'), 'key=value\n');
      const cfg = 'storage:\n  files:\n    - path: /opt/blob\n      mode: 0644\n      contents:\n        local: blob.bin\n    - path: /etc/conf\n      mode: 0644\n      contents:\n        local: sub/conf.txt\n';
      const { config } = transpileValid(cfg, { filesDir: dir });
      expect(fileOf(config, '/opt/blob').contents?.source).toMatch(/^data:;base64,/);
      expect(fileText(config, '/opt/blob')).toBe(bytes.toString('utf8'));
      expect(fileText(config, '/etc/conf')).toBe('key=value\n');

      expectErrorAt(cfg, 'local file contents need --files-dir', 6, 16);
      expectErrorAt(cfg.replace('blob.bin', 'missing.bin'), 'cannot read "missing.bin" from --files-dir: ENOENT', 6, 16, { filesDir: dir });
      expectErrorAt(cfg.replace('blob.bin', '../etc/passwd'), 'is outside the --files-dir directory', 6, 16, { filesDir: dir });
      expectErrorAt(cfg.replace('blob.bin', '/etc/passwd'), 'is outside the --files-dir directory', 6, 16, { filesDir: dir });
      expectErrorAt(cfg.replace('blob.bin', 'sub'), 'cannot read "sub" from --files-dir: EISDIR', 6, 16, { filesDir: dir });
      // A symbolic link inside the directory does not lead out of it; one to a file inside is fine.
      fs.symlinkSync('/etc/passwd', path.join(dir, 'escape'));
      fs.symlinkSync(path.join(dir, 'sub', 'conf.txt'), path.join(dir, 'alias'));
      expectErrorAt(cfg.replace('blob.bin', 'escape'), '"escape" is outside the --files-dir directory', 6, 16, { filesDir: dir });
      expect(fileText(transpileValid(cfg.replace('blob.bin', 'alias'), { filesDir: dir }).config, '/opt/blob')).toBe('key=value\n');
      // --files-dir itself may be reached through a link.
      fs.symlinkSync(dir, `${dir}-link`);
      try {
        expect(fileText(transpileValid(cfg, { filesDir: `${dir}-link` }).config, '/etc/conf')).toBe('key=value\n');
      } finally {
        fs.rmSync(`${dir}-link`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('remote contents with compression and verification; append', () => {
    const { config } = transpileValid(yaml`
      storage:
        files:
          - path: /opt/bin/tool
            mode: 0755
            contents:
              remote:
                url: https://example.com/tool.gz
                compression: gzip
                verification:
                  hash:
                    function: sha512
                    sum: ${SHA512_OF_X}
          - path: /etc/hosts
            mode: 0644
            append: true
            contents:
              inline: "10.0.0.2 peer\\n"
    `);
    expect(fileOf(config, '/opt/bin/tool')).toEqual({
      path: '/opt/bin/tool',
      overwrite: true,
      mode: 0o755,
      contents: { source: 'https://example.com/tool.gz', compression: 'gzip', verification: { hash: `sha512-${SHA512_OF_X}` } },
    });
    expect(fileOf(config, '/etc/hosts')).toEqual({ path: '/etc/hosts', mode: 0o644, append: [{ source: 'data:,10.0.0.2%20peer%0A' }] });
  });

  test('directories and links', () => {
    const { config } = transpileValid(yaml`
      storage:
        directories:
          - path: /var/lib/backup
            mode: 0700
            user: {name: core}
            group: {id: 500}
        links:
          - path: /etc/localtime
            target: /usr/share/zoneinfo/UTC
          - path: /opt/hard
            target: /opt/bin/tool
            hard: true
    `);
    const storage = (config as V3Config).storage;
    expect(storage?.directories).toEqual([{ path: '/var/lib/backup', mode: 0o700, user: { name: 'core' }, group: { id: 500 } }]);
    expect(storage?.links).toEqual([
      { path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC' },
      { path: '/opt/hard', target: '/opt/bin/tool', hard: true },
    ]);
  });

  test('filesystems, disks and raid', () => {
    const { config } = transpileValid(yaml`
      storage:
        disks:
          - device: /dev/sdb
            wipe_table: true
            partitions:
              - label: etcd-data
                number: 1
                size: 10GiB
                start: 0
                type_guid: 0FC63DAF-8483-4772-8E79-3D69D8477DE4
        raid:
          - name: data
            level: raid1
            devices: [/dev/sdc, /dev/sdd]
        filesystems:
          - name: etcd
            path: /var/lib/etcd
            mount:
              device: /dev/disk/by-partlabel/etcd-data
              format: ext4
              wipe_filesystem: true
              label: ETCD
        files:
          - path: /member/README
            filesystem: etcd
            mode: 0644
            contents: {inline: data}
    `);
    const storage = (config as V3Config).storage;
    expect(storage?.disks).toEqual([
      {
        device: '/dev/sdb',
        wipeTable: true,
        partitions: [{ label: 'etcd-data', number: 1, sizeMiB: 10240, startMiB: 0, typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' }],
      },
    ]);
    expect(storage?.raid).toEqual([{ name: 'data', level: 'raid1', devices: ['/dev/sdc', '/dev/sdd'] }]);
    expect(storage?.filesystems).toEqual([
      { device: '/dev/disk/by-partlabel/etcd-data', format: 'ext4', path: '/var/lib/etcd', wipeFilesystem: true, label: 'ETCD' },
    ]);
    expect(fileOf(config, '/var/lib/etcd/member/README').mode).toBe(0o644);
  });

  test('RAID options are passed to Ignition (mdadm --create options), in order', () => {
    const { config } = transpileValid(yaml`
      storage:
        raid:
          - name: data
            level: raid5
            devices: [/dev/sdb, /dev/sdc, /dev/sdd]
            spares: 1
            options: [--bitmap=internal, --chunk=256]
    `);
    expect((config as V3Config).storage?.raid).toEqual([
      { name: 'data', level: 'raid5', devices: ['/dev/sdb', '/dev/sdc', '/dev/sdd'], spares: 1, options: ['--bitmap=internal', '--chunk=256'] },
    ]);
    expectErrorAt('storage:\n  raid:\n    - {name: a, level: raid1, devices: [/dev/sdb], options: --force}\n', 'storage.raid[0].options: expected a list', 3, 61);
  });

  test('a filesystem path is written clean, as Ignition 3 takes it', () => {
    const { config } = transpileValid(yaml`
      storage:
        filesystems:
          - name: etcd
            path: /var/lib//etcd/
            mount: {device: /dev/disk/by-label/ETCD, format: ext4}
        files:
          - {path: /member/README, filesystem: etcd, mode: 0644}
    `);
    expect((config as V3Config).storage?.filesystems).toEqual([{ device: '/dev/disk/by-label/ETCD', format: 'ext4', path: '/var/lib/etcd' }]);
    expect(fileOf(config, '/var/lib/etcd/member/README').mode).toBe(0o644);
  });

  test('nodes on a filesystem that has only a path (already mounted there) are below that path, cleanly joined', () => {
    const { config } = transpileValid(yaml`
      storage:
        filesystems:
          - name: oem
            path: /usr/share/oem/
        files:
          - path: /grub.cfg
            filesystem: oem
            mode: 0644
            contents: {inline: "set linux_append=coreos.autologin\\n"}
          - path: /../escape
            filesystem: oem
            mode: 0600
        directories:
          - path: /bin//
            filesystem: oem
            mode: 0755
          - path: /var//lib/./x/
            mode: 0700
        links:
          - path: /bin/tool
            filesystem: oem
            target: /usr/bin/true
    `);
    const storage = (config as V3Config).storage;
    // Ignition has nothing to create or mount: the filesystem is already there.
    expect(storage?.filesystems).toBeUndefined();
    expect(storage?.files?.map((f) => f.path)).toEqual(['/usr/share/oem/grub.cfg', '/usr/share/oem/escape']);
    expect(fileText(config, '/usr/share/oem/grub.cfg')).toBe('set linux_append=coreos.autologin\n');
    // Clean paths (Ignition 3 takes no other), on the root filesystem too.
    expect(storage?.directories).toEqual([
      { path: '/usr/share/oem/bin', mode: 0o755 },
      { path: '/var/lib/x', mode: 0o700 },
    ]);
    expect(storage?.links).toEqual([{ path: '/usr/share/oem/bin/tool', target: '/usr/bin/true' }]);
  });

  test('spec 3.3.0 cannot address a node on a filesystem without a path, nor two nodes at one absolute path', () => {
    expectErrorAt(
      'storage:\n  filesystems:\n    - name: data\n      mount: {device: /dev/sdb, format: xfs}\n  files:\n    - {path: /a, filesystem: data, mode: 0644}\n',
      '"/a" is on filesystem "data", which has no path: spec 3.3.0 addresses files by absolute path, so give the filesystem the path it is mounted at',
      6,
      14,
    );
    expectErrorAt(
      'storage:\n  filesystems:\n    - {name: oem, path: /usr/share/oem}\n  files:\n    - {path: /grub.cfg, filesystem: oem, mode: 0644}\n    - {path: /usr/share/oem/grub.cfg, mode: 0644}\n',
      '"/usr/share/oem/grub.cfg" is defined more than once in spec 3.3.0: first ("/grub.cfg" on filesystem "oem") at line 5, column 14',
      6,
      14,
    );
  });

  test('default modes are warnings (errors under --strict)', () => {
    const cfg = 'storage:\n  files:\n    - path: /etc/a\n  directories:\n    - path: /var/a\n';
    const { config, warnings } = transpileValid(cfg);
    expect(warnings).toEqual([
      'warning: storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644 (line 3, column 7)',
      'warning: storage.directories[0]: mode unspecified for directory "/var/a", defaulting to 0755 (line 5, column 7)',
    ]);
    expect(fileOf(config, '/etc/a').mode).toBe(0o644);
    expect(transpileErrors(cfg, { strict: true }).map((d) => d.severity)).toEqual(['error', 'error']);
  });

  describe('errors, with line and column', () => {
    test('paths, modes, sources, types', () => {
      expectErrorAt('storage:\n  files:\n    - path: etc/a\n', 'path "etc/a" must be absolute', 3, 13);
      expectErrorAt('storage:\n  files:\n    - mode: 0644\n', 'storage.files[0]: missing required key "path"', 3, 7);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      mode: 0o7777777\n', 'out of range', 4, 13);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      mode: rw\n', 'storage.files[0].mode: expected an integer', 4, 13);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      contents:\n        inline: x\n        remote: {url: "http://h/x"}\n', 'only one of inline, local and remote.url', 5, 9);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      contents:\n        remote: {url: "ftp://h/x"}\n', 'has scheme "ftp"', 5, 23);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      contents:\n        remote: {url: "http://h/x", compression: xz}\n', 'must be one of "gzip"', 5, 50);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      contents:\n        inlin: x\n', 'unknown key "inlin" in storage.files[0].contents (did you mean "inline"?)', 5, 9);
      expectErrorAt('storage:\n  files: {path: /a}\n', 'storage.files: expected a list, found a mapping', 2, 10);
      expectErrorAt('storage:\n  links:\n    - path: /a\n', 'missing required key "target"', 3, 7);
      expectErrorAt('storage:\n  files:\n    - path: /a\n      filesystem: data\n', 'no filesystem named "data"', 4, 19);
    });

    test('hashes', () => {
      expectErrorAt('ignition:\n  config:\n    append:\n      - source: http://h/c.ign\n        verification: {hash: {function: sha512, sum: abc}}\n', 'a sha512 sum is 128 hex digits', 5, 54);
      expectErrorAt('ignition:\n  config:\n    append:\n      - source: http://h/c.ign\n        verification: {hash: {function: md5, sum: abc}}\n', 'hash function "md5" is not supported', 5, 51);
    });

    test('duplicates', () => {
      expectErrorAt(
        'storage:\n  files:\n    - {path: /a, mode: 0644}\n  directories:\n    - {path: /a, mode: 0755}\n',
        'directory "/a" is defined more than once (first defined at line 3, column 14)',
        5,
        14,
      );
    });

    test('partitions', () => {
      expectErrorAt('storage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - size: 10\n', '"10" is not a size with a unit', 5, 17);
      expect(transpileErrors('storage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - size: 1536KiB\n')[0].message).toContain('not a whole number of MiB');
      expectErrorAt('storage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - guid: nope\n', '"nope" is not a GUID', 5, 17);
    });

    test('filesystems', () => {
      expectErrorAt('storage:\n  filesystems:\n    - name: x\n', 'either mount or path must be given', 3, 7);
      expectErrorAt('storage:\n  filesystems:\n    - mount: {device: /dev/sdb, format: ntfs}\n', 'must be one of "ext4"', 3, 41);
    });
  });
});

describe('ignition section', () => {
  test('append becomes merge, with timeouts and certificate authorities', () => {
    const { config } = transpileValid(yaml`
      ignition:
        config:
          append:
            - source: https://example.com/extra.ign
        timeouts:
          http_response_headers: 20
          http_total: 60
        security:
          tls:
            certificate_authorities:
              - source: https://example.com/ca.pem
    `);
    expect((config as V3Config).ignition).toEqual({
      version: '3.3.0',
      config: { merge: [{ source: 'https://example.com/extra.ign' }] },
      timeouts: { httpResponseHeaders: 20, httpTotal: 60 },
      security: { tls: { certificateAuthorities: [{ source: 'https://example.com/ca.pem' }] } },
    });
  });
});

describe('file modes', () => {
  test('a decimal mode that looks octal is taken as written, with a warning', () => {
    const cfg = 'storage:\n  files:\n    - path: /etc/a\n      mode: 644\n';
    const { config, warnings } = transpile(cfg, { spec: '2.2.0' });
    expect((config as { storage: { files: { mode: number }[] } }).storage.files[0].mode).toBe(644);
    expect(warnings).toEqual(['warning: storage.files[0].mode: mode 644 is decimal (octal 01204); write 0644 for an octal mode (line 4, column 13)']);
    // 01204 has the sticky bit, which spec 3.3.0 cannot express; the warning that explains it comes with the error
    expect(transpileErrors(cfg)).toEqual([
      { severity: 'warning', message: 'storage.files[0].mode: mode 644 is decimal (octal 01204); write 0644 for an octal mode', pos: { line: 4, column: 13 } },
      { severity: 'error', message: '"/etc/a": mode 01204 has setuid/setgid/sticky bits, which spec 3.3.0 does not support', pos: { line: 3, column: 13 } },
    ]);
  });

  test('YAML 1.2 octal and plain decimal modes', () => {
    const { config, warnings } = transpileValid('storage:\n  files:\n    - {path: /etc/a, mode: 0o640}\n    - {path: /etc/b, mode: 416}\n');
    expect(warnings).toEqual([]);
    expect(fileOf(config, '/etc/a').mode).toBe(0o640);
    expect(fileOf(config, '/etc/b').mode).toBe(0o640);
  });
});
