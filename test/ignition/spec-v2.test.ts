import { transpile } from '../../ignition';
import { transpileErrors, transpileValid, yaml } from './helpers';

const CONFIG = yaml`
  ignition:
    config:
      append:
        - source: https://example.com/extra.ign
  storage:
    disks:
      - device: /dev/sdb
        partitions:
          - label: data
            size: 1GiB
    filesystems:
      - name: data
        mount:
          device: /dev/disk/by-partlabel/data
          format: xfs
    files:
      - path: /etc/hostname
        mode: 0644
        contents: {inline: node-1}
      - path: /README
        filesystem: data
        mode: 0600
        append: true
        contents: {inline: more}
    directories:
      - path: /var/lib/x
        mode: 0750
    links:
      - path: /etc/l
        target: /etc/hostname
  systemd:
    units:
      - name: a.service
        mask: true
  networkd:
    units:
      - name: 10-eth0.network
        contents: "[Match]\\nName=eth0\\n"
  passwd:
    users:
      - name: core
        ssh_authorized_keys: [ssh-rsa AAAAB3Nza core]
  etcd:
    version: 3.1.6
    name: coreos91
`;

describe('Ignition spec 2.2.0 output', () => {
  test('nodes name their filesystem, configs are appended, networkd has its own section', () => {
    const { config } = transpile(CONFIG, { spec: '2.2' });
    expect(config).toEqual({
      ignition: { version: '2.2.0', config: { append: [{ source: 'https://example.com/extra.ign' }] } },
      storage: {
        disks: [{ device: '/dev/sdb', partitions: [{ label: 'data', size: 2097152 }] }],
        filesystems: [{ name: 'data', mount: { device: '/dev/disk/by-partlabel/data', format: 'xfs' } }],
        files: [
          { filesystem: 'root', path: '/etc/hostname', mode: 420, contents: { source: 'data:,node-1' } },
          { filesystem: 'data', path: '/README', mode: 384, contents: { source: 'data:,more' }, append: true },
        ],
        directories: [{ filesystem: 'root', path: '/var/lib/x', mode: 488 }],
        links: [{ filesystem: 'root', path: '/etc/l', target: '/etc/hostname' }],
      },
      systemd: {
        units: [
          { name: 'a.service', mask: true },
          {
            name: 'etcd-member.service',
            enabled: true,
            dropins: [
              {
                name: '20-clct-etcd-member.conf',
                contents:
                  '[Service]\nEnvironment="ETCD_IMAGE_TAG=v3.1.6"\nExecStart=\nExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\\n  --name="coreos91"',
              },
            ],
          },
        ],
      },
      networkd: { units: [{ name: '10-eth0.network', contents: '[Match]\nName=eth0\n' }] },
      passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['ssh-rsa AAAAB3Nza core'] }] },
    });
  });

  test('networkd drop-ins and RAID options are spec 2.2.0 fields of their own', () => {
    const { config } = transpile(
      yaml`
        storage:
          raid:
            - {name: md0, level: raid1, devices: [/dev/sdb, /dev/sdc], options: [--bitmap=internal]}
        networkd:
          units:
            - name: 99-default.link
              dropins:
                - name: 50-mtu.conf
                  contents: "[Link]\\nMTUBytes=9000\\n"
      `,
      { spec: '2.2' },
    );
    expect(config).toEqual({
      ignition: { version: '2.2.0' },
      storage: { raid: [{ name: 'md0', level: 'raid1', devices: ['/dev/sdb', '/dev/sdc'], options: ['--bitmap=internal'] }] },
      networkd: { units: [{ name: '99-default.link', dropins: [{ name: '50-mtu.conf', contents: '[Link]\nMTUBytes=9000\n' }] }] },
    });
  });

  test('Ignition 0.x\'s rules hold for the spec 2.2.0 output too', () => {
    const errors = transpileErrors('systemd:\n  units:\n    - name: a.service\n      contents: "[Service]\\nfoo\\n"\n', { spec: '2.2' });
    expect(errors).toEqual([
      {
        severity: 'error',
        message:
          'Ignition rejects systemd.units[0].contents (line 2 of the text): invalid unit content: unexpected newline encountered while parsing option name',
        pos: { line: 4, column: 17 },
      },
    ]);
  });

  test('"2.2.0" and "2.2" are the same; unknown versions are refused', () => {
    expect(transpile('', { spec: '2.2.0' }).config).toEqual(transpile('', { spec: '2.2' }).config);
    expect(transpileErrors('', { spec: '3.0.0' })[0].message).toBe('unsupported Ignition spec version "3.0.0" (supported: 3.3.0, 2.2.0)');
  });

  test('spec 3.3.0 cannot place files on a filesystem without a path', () => {
    expect(transpileErrors(CONFIG)).toEqual([
      {
        severity: 'error',
        message:
          '"/README" is on filesystem "data", which has no path: spec 3.3.0 addresses files by absolute path, so give the filesystem the path it is mounted at',
        pos: { line: 20, column: 13 },
      },
    ]);
  });

  test('a filesystem with both mount and path is an error for spec 2.2.0 (Ignition rejects it), fine for 3.3.0', () => {
    const cfg = yaml`
      storage:
        filesystems:
          - name: etcd
            path: /var/lib/etcd
            mount:
              device: /dev/disk/by-partlabel/etcd
              format: ext4
    `;
    expect(transpileErrors(cfg, { spec: '2.2' })).toEqual([
      {
        severity: 'error',
        message: 'filesystem "etcd" has both mount and path, which spec 2.2.0 does not allow (Ignition rejects it); drop path for spec 2.2.0',
        pos: { line: 3, column: 7 },
      },
    ]);
    expect(transpileValid(cfg).config).toMatchObject({
      storage: { filesystems: [{ device: '/dev/disk/by-partlabel/etcd', format: 'ext4', path: '/var/lib/etcd' }] },
    });
    // Either one alone is spec 2.2.0.
    const mountOnly = cfg.replace(/ *path: \/var\/lib\/etcd\n/, '');
    expect(transpile(mountOnly, { spec: '2.2' }).config).toMatchObject({ storage: { filesystems: [{ name: 'etcd', mount: { format: 'ext4' } }] } });
    expect(transpile('storage:\n  filesystems:\n    - {name: oem, path: /usr/share/oem}\n', { spec: '2.2' }).config).toMatchObject({
      storage: { filesystems: [{ name: 'oem', path: '/usr/share/oem' }] },
    });
  });
});
