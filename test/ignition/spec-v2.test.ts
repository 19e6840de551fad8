import { transpile } from '../../ignition';
import { transpileErrors, yaml } from './helpers';

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

  test('"2.2.0" and "2.2" are the same; unknown versions are refused', () => {
    expect(transpile('', { spec: '2.2.0' }).config).toEqual(transpile('', { spec: '2.2' }).config);
    expect(transpileErrors('', { spec: '3.0.0' })[0].message).toBe('unsupported Ignition spec version "3.0.0" (supported: 3.3.0, 2.2.0)');
  });

  test('spec 3.3.0 cannot place files on a filesystem without a mount path', () => {
    expect(transpileErrors(CONFIG)).toEqual([
      {
        severity: 'error',
        message: '"/README" is on filesystem "data", which spec 3.3.0 can only address when the filesystem has both mount and path',
        pos: { line: 20, column: 13 },
      },
    ]);
  });
});
