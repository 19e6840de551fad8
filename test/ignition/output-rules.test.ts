/**
 * ct holds what it emits to Ignition's own rules (ignition/rules/, itself held to ignition-validate in
 * ignition-rules.test.ts) and reports what Ignition would refuse at the YAML that caused it: things the CLC's own
 * checks let through, which used to reach the machine and fail its first boot.
 */
import { transpile } from '../../ignition';
import { expectErrorAt, ignitionValidateReport, transpileErrors, transpileValid, unitOf, yaml } from './helpers';

describe('what Ignition would refuse is an error at its place in the YAML', () => {
  test('a unit file Ignition cannot read', () => {
    expectErrorAt(
      yaml`
        systemd:
          units:
            - name: backup.service
              contents: |
                [Service]
                ExecStart /opt/bin/backup
      `,
      'Ignition rejects systemd.units[0].contents (line 2 of the text): invalid unit content: unexpected newline encountered while parsing option name',
      5,
      9,
    );
    expectErrorAt(
      'systemd:\n  units:\n    - name: a.service\n      dropins:\n        - name: 10-x.conf\n          contents: "[Service"\n',
      'Ignition rejects systemd.units[0].dropins[0].contents (line 1 of the text): invalid unit content: unable to find end of section',
      6,
      21,
    );
  });

  test("a line of ct's own drop-in too long for systemd is reported at the option that made it", () => {
    const long = 'x'.repeat(3000);
    expectErrorAt(
      `etcd:\n  name: a\n  initial_cluster_token: ${long}\n  enable_v2: true\n`,
      'Ignition rejects systemd.units[0].dropins[0].contents (line 5 of the text): invalid unit content: line too long (max 2048 bytes)',
      3,
      26,
    );
    expectErrorAt(
      `flannel:\n  etcd_prefix: /coreos.com/network\n  network_config: '{"Network": "${long}"}'\n`,
      'invalid unit content: line too long (max 2048 bytes)',
      3,
      19,
    );
    expectErrorAt(`docker:\n  flags:\n    - --label=${long}\n`, 'invalid unit content: line too long', 3, 5);
  });

  test('URLs that Go cannot parse or Ignition cannot decode, at the url', () => {
    const remote = (url: string) => `storage:\n  files:\n    - path: /opt/x\n      mode: 0644\n      contents:\n        remote:\n          url: "${url}"\n`;
    expectErrorAt(remote('http://example.com/%zz'), 'Ignition rejects storage.files[0].contents.source: unable to parse url', 7, 16);
    expectErrorAt(remote('data:hello'), 'Ignition rejects storage.files[0].contents.source: missing media type slash', 7, 16);
    expectErrorAt(remote('data:,hello world'), 'invalid data character', 7, 16);
    expectErrorAt(remote('data:;base64,aGk'), 'illegal base64 data at input byte 0', 7, 16);
    // Ignition checks a config's source twice; ct says it once.
    const merge = 'ignition:\n  config:\n    append:\n      - source: "http://h/a.ign"\n      - source: "data:foo/bar,x"\n';
    expect(transpileErrors(merge)).toEqual([
      { severity: 'error', message: 'Ignition rejects ignition.config.merge[1].source: invalid media type', pos: { line: 5, column: 17 } },
    ]);
  });

  test('device paths that are not clean', () => {
    expectErrorAt('storage:\n  disks:\n    - device: /dev/sdb/\n', 'Ignition rejects storage.disks[0].device: path is not fully simplified', 3, 15);
    expectErrorAt(
      'storage:\n  raid:\n    - name: md0\n      level: raid1\n      devices:\n        - /dev/sdb\n        - /dev//sdc\n',
      'Ignition rejects storage.raid[0].devices[1]: path is not fully simplified',
      7,
      11,
    );
    expectErrorAt(
      'storage:\n  filesystems:\n    - mount:\n        device: /dev/sdb/./1\n        format: ext4\n',
      'Ignition rejects storage.filesystems[0].device: path is not fully simplified',
      4,
      17,
    );
  });

  test('partitions, arrays and labels Ignition refuses', () => {
    expectErrorAt(
      'storage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - size: 1GiB\n',
      'Ignition rejects storage.disks[0].partitions[0]: a partition number >= 1 or a label must be specified',
      5,
      11,
    );
    expectErrorAt(
      'storage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - label: etcd:data\n',
      'Ignition rejects storage.disks[0].partitions[0].label: partition label will be truncated to text before the colon',
      5,
      18,
    );
    expectErrorAt(
      'storage:\n  raid:\n    - name: md0\n      level: raid0\n      devices: [/dev/sdb, /dev/sdc]\n      spares: 1\n',
      'Ignition rejects storage.raid[0].level: spares unsupported for linear and raid0 arrays',
      4,
      14,
    );
    expectErrorAt(
      'storage:\n  filesystems:\n    - mount:\n        device: /dev/sdb\n        format: xfs\n        label: ETCD-DATA-VOLUME\n',
      'Ignition rejects storage.filesystems[0].label: filesystem labels cannot be longer than 12 characters when using xfs',
      6,
      16,
    );
  });

  test('duplicate entries, at the second', () => {
    expectErrorAt(
      'storage:\n  raid:\n    - {name: md0, level: raid1, devices: [/dev/sdb, /dev/sdc]}\n    - {name: md0, level: raid1, devices: [/dev/sdd, /dev/sde]}\n',
      'Ignition rejects storage.raid[1]: duplicate entry defined',
      4,
      7,
    );
    expectErrorAt(
      'storage:\n  disks:\n    - device: /dev/sdb\n    - device: /dev/sdb\n',
      'Ignition rejects storage.disks[1]: duplicate entry defined',
      4,
      7,
    );
    expectErrorAt(
      'passwd:\n  users:\n    - name: core\n      ssh_authorized_keys:\n        - ssh-ed25519 AAAAC3Nza core@a\n        - ssh-ed25519 AAAAC3Nza core@a\n',
      'Ignition rejects passwd.users[0].sshAuthorizedKeys[1]: duplicate entry defined',
      6,
      11,
    );
    expectErrorAt(
      'passwd:\n  users:\n    - name: core\n      groups: [sudo, docker, sudo]\n',
      'Ignition rejects passwd.users[0].groups[2]: duplicate entry defined',
      4,
      30,
    );
  });

  test('every problem is reported in one run, with the others', () => {
    const errors = transpileErrors('storage:\n  disks:\n    - device: /dev/sdb/\n  raid:\n    - {name: md0, level: raid0, spares: 1, devices: [/dev/sdc]}\n');
    expect(errors.map((d) => [d.message, d.pos])).toEqual([
      ['Ignition rejects storage.disks[0].device: path is not fully simplified', { line: 3, column: 15 }],
      ['Ignition rejects storage.raid[0].level: spares unsupported for linear and raid0 arrays', { line: 5, column: 26 }],
    ]);
  });
});

describe("what Ignition would warn about is ct's warning", () => {
  const ENABLED_WITHOUT_INSTALL = yaml`
    systemd:
      units:
        - name: backup.service
          enabled: true
          contents: |
            [Service]
            ExecStart=/opt/bin/backup
  `;

  test('an enabled unit without an [Install] section (enabling it does nothing)', async () => {
    const { config, warnings } = transpile(ENABLED_WITHOUT_INSTALL);
    expect(warnings).toEqual([
      'warning: Ignition warns about systemd.units[0].contents: unit "backup.service" is enabled, but has no install section so enable does nothing (line 6, column 9)',
    ]);
    // The output is what it was; Ignition itself says the same of it.
    expect(unitOf(config, 'backup.service')).toMatchObject({ enabled: true });
    expect(await ignitionValidateReport(config)).toEqual([
      {
        severity: 'warning',
        path: '$.systemd.units.0.contents',
        message: 'unit "backup.service" is enabled, but has no install section so enable does nothing',
      },
    ]);
    // Under --strict it fails.
    expectErrorAt(ENABLED_WITHOUT_INSTALL, 'is enabled, but has no install section', 6, 9, { strict: true });
  });

  test('with an [Install] section, or not enabled, nothing is said', () => {
    expect(transpileValid(`${ENABLED_WITHOUT_INSTALL}        [Install]\n        WantedBy=multi-user.target\n`).warnings).toEqual([]);
    expect(transpileValid(ENABLED_WITHOUT_INSTALL.replace('enabled: true', 'enabled: false')).warnings).toEqual([]);
  });
});
