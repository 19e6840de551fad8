import { expectErrorAt, fileOf, fileText, transpileErrors, transpileValid, unitOf, yaml, type V3Config } from './helpers';

describe('systemd section', () => {
  test('units with enabled, mask, contents and drop-ins', () => {
    const { config, warnings } = transpileValid(yaml`
      systemd:
        units:
          - name: etcd-backup.service
            enabled: true
            contents: |
              [Unit]
              Description=Back up etcd
              [Service]
              Type=oneshot
              ExecStart=/opt/bin/etcd-backup
              [Install]
              WantedBy=multi-user.target
          - name: update-engine.service
            mask: true
          - name: docker.socket
            enabled: false
            dropins:
              - name: 10-mode.conf
                contents: |
                  [Socket]
                  SocketMode=0660
    `);
    expect(warnings).toEqual([]);
    expect(unitOf(config, 'etcd-backup.service')).toMatchObject({ enabled: true, contents: expect.stringContaining('ExecStart=/opt/bin/etcd-backup') });
    expect(unitOf(config, 'update-engine.service')).toEqual({ name: 'update-engine.service', mask: true });
    expect(unitOf(config, 'docker.socket')).toEqual({
      name: 'docker.socket',
      enabled: false,
      dropins: [{ name: '10-mode.conf', contents: '[Socket]\nSocketMode=0660\n' }],
    });
  });

  test('the deprecated enable is accepted with a warning', () => {
    const { config, warnings } = transpileValid('systemd:\n  units:\n    - name: a.service\n      enable: true\n      contents: "[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n"\n');
    expect(unitOf(config, 'a.service').enabled).toBe(true);
    expect(warnings).toEqual(['warning: systemd.units[0].enable is deprecated; use enabled (line 4, column 15)']);
  });

  test('a unit masked in systemd and enabled by another section (or entry) is an error at the mask', () => {
    const masked = 'systemd:\n  units:\n    - name: etcd-member.service\n      mask: true\n';
    const d = expectErrorAt(
      `${masked}etcd:\n  name: a\n`,
      'unit "etcd-member.service": a unit cannot be both masked and enabled (masked here, enabled at line 6, column 3)',
      4,
      13,
    );
    expect(transpileErrors(`${masked}etcd:\n  name: a\n`)).toEqual([d]);
    expectErrorAt(`${masked.replace('etcd-member', 'docker')}docker:\n  flags: [--debug]\n`, 'unit "docker.service": a unit cannot be both masked', 4, 13);
    // Two entries for one unit, in either order: the error is at the mask, pointing at the enablement.
    expectErrorAt(
      'systemd:\n  units:\n    - name: a.service\n      enabled: true\n    - name: a.service\n      mask: true\n',
      'a unit cannot be both masked and enabled (masked here, enabled at line 4, column 16)',
      6,
      13,
    );
    expectErrorAt(
      'systemd:\n  units:\n    - name: a.service\n      mask: true\n    - name: a.service\n      enabled: true\n',
      'a unit cannot be both masked and enabled (masked here, enabled at line 6, column 16)',
      4,
      13,
    );
    // Masked without the etcd section, or masked: false with it, is fine.
    expect(unitOf(transpileValid(masked).config, 'etcd-member.service')).toEqual({ name: 'etcd-member.service', mask: true });
    const unmasked = transpileValid('systemd:\n  units:\n    - name: etcd-member.service\n      mask: false\netcd:\n  name: a\n');
    expect(unitOf(unmasked.config, 'etcd-member.service')).toMatchObject({ enabled: true, mask: false });
  });

  test('errors, with line and column', () => {
    expectErrorAt('systemd:\n  units:\n    - name: etcd\n', 'unit name "etcd" must end in a unit type', 3, 13);
    expectErrorAt('systemd:\n  units:\n    - name: a.service\n      dropins:\n        - name: override\n', 'drop-in name "override" must be a file name ending in ".conf"', 5, 17);
    expectErrorAt('systemd:\n  units:\n    - name: a.service\n      mask: true\n      enabled: true\n', 'cannot be both masked and enabled', 4, 13);
    expectErrorAt('systemd:\n  units:\n    - name: a.service\n      enabled: yes\n', 'expected a boolean, found string "yes"', 4, 16);
    expectErrorAt('systemd:\n  units:\n    - name: a.service\n      contents: [x]\n', 'systemd.units[0].contents: expected a string', 4, 17);
    expectErrorAt('systemd:\n  unit: []\n', 'unknown key "unit" in systemd (did you mean "units"?)', 2, 3);
    expectErrorAt(
      'systemd:\n  units:\n    - name: a.service\n      mask: true\n    - name: a.service\n      mask: false\n',
      'unit "a.service": conflicting "mask" settings',
      5,
      13,
    );
  });
});

describe('networkd section', () => {
  test('units become files in /etc/systemd/network (spec 3 has no networkd section)', () => {
    const { config } = transpileValid(yaml`
      networkd:
        units:
          - name: 00-eth0.network
            contents: |
              [Match]
              Name=eth0

              [Network]
              Address=10.240.0.1/24
    `);
    expect(fileOf(config, '/etc/systemd/network/00-eth0.network')).toMatchObject({ mode: 0o644, overwrite: true });
    expect(fileText(config, '/etc/systemd/network/00-eth0.network')).toBe('[Match]\nName=eth0\n\n[Network]\nAddress=10.240.0.1/24\n');
  });

  test('drop-ins become files in /etc/systemd/network/<unit>.d/; a unit or drop-in without contents writes no file', () => {
    const { config, warnings } = transpileValid(yaml`
      networkd:
        units:
          - name: 00-eth0.network
            contents: |
              [Match]
              Name=eth0
            dropins:
              - name: 10-dns.conf
                contents: |
                  [Network]
                  DNS=10.240.0.53
          - name: 99-default.link
            dropins:
              - name: 50-mtu.conf
                contents: "[Link]\\nMTUBytes=9000\\n"
              - name: 60-empty.conf
    `);
    expect(warnings).toEqual([]);
    // The vendor's 99-default.link stays in effect: only its drop-in is written.
    expect((config as V3Config).storage?.files?.map((f) => f.path)).toEqual([
      '/etc/systemd/network/00-eth0.network',
      '/etc/systemd/network/00-eth0.network.d/10-dns.conf',
      '/etc/systemd/network/99-default.link.d/50-mtu.conf',
    ]);
    expect(fileText(config, '/etc/systemd/network/00-eth0.network.d/10-dns.conf')).toBe('[Network]\nDNS=10.240.0.53\n');
    expect(fileText(config, '/etc/systemd/network/99-default.link.d/50-mtu.conf')).toBe('[Link]\nMTUBytes=9000\n');
    expect(fileOf(config, '/etc/systemd/network/99-default.link.d/50-mtu.conf')).toMatchObject({ mode: 0o644, overwrite: true });
  });

  test('drop-in errors, with line and column', () => {
    const unit = 'networkd:\n  units:\n    - name: a.network\n      dropins:\n';
    expectErrorAt(`${unit}        - name: 10-x\n`, 'drop-in name "10-x" must be a file name ending in ".conf"', 5, 17);
    expectErrorAt(`${unit}        - contents: "[Match]\\n"\n`, 'networkd.units[0].dropins[0]: missing required key "name"', 5, 11);
    expectErrorAt(`${unit}        - name: a.conf\n        - name: a.conf\n`, 'networkd.units[0]: drop-in "a.conf" is listed twice', 6, 17);
    expectErrorAt(`${unit}        - name: a.conf\n          content: x\n`, 'unknown key "content" in networkd.units[0].dropins[0] (did you mean "contents"?)', 6, 11);
    expectErrorAt(
      `${unit}        - name: a.conf\n          contents: |\n            [Network]\n            DNS\n`,
      'networkd.units[0].dropins[0].contents: invalid unit content: unexpected newline encountered while parsing option name (line 2 of the text)',
      7,
      13,
    );
    // A drop-in file and a storage file at one path.
    expectErrorAt(
      `storage:\n  files:\n    - {path: /etc/systemd/network/a.network.d/a.conf, mode: 0644}\n${unit}        - name: a.conf\n          contents: "[Network]\\n"\n`,
      '"/etc/systemd/network/a.network.d/a.conf" is defined more than once in spec 3.3.0: first at line 3, column 14',
      8,
      17,
    );
  });

  test('unit contents are checked as unit files, as Ignition 0.x did', () => {
    expectErrorAt(
      'networkd:\n  units:\n    - name: a.network\n      contents: "[Match]\\nName=eth0\\n[Network"\n',
      'networkd.units[0].contents: invalid unit content: unable to find end of section (line 3 of the text)',
      4,
      17,
    );
  });

  test('errors, with line and column', () => {
    expectErrorAt('networkd:\n  units:\n    - name: eth0.service\n', 'must end in .network, .netdev, .link', 3, 13);
    expectErrorAt('networkd:\n  units:\n    - name: a.network\n    - name: a.network\n', 'networkd unit "a.network" is defined more than once', 4, 13);
    expectErrorAt(
      'storage:\n  files:\n    - {path: /etc/systemd/network/a.network, mode: 0644}\nnetworkd:\n  units:\n    - name: a.network\n      contents: "[Match]\\nName=eth0\\n"\n',
      '"/etc/systemd/network/a.network" is defined more than once in spec 3.3.0: first at line 3, column 14',
      6,
      13,
    );
  });
});

describe('passwd section', () => {
  test('users and groups', () => {
    const { config, warnings } = transpileValid(yaml`
      passwd:
        users:
          - name: core
            password_hash: "$6$rounds=4096$salt$hash"
            ssh_authorized_keys:
              - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkey core@laptop
            groups: [sudo, docker]
          - name: etcd
            uid: 232
            system: true
            no_create_home: true
            shell: /sbin/nologin
            home_dir: /var/lib/etcd
            primary_group: etcd
        groups:
          - name: etcd
            gid: 232
            system: true
    `);
    expect(warnings).toEqual([]);
    const passwd = (config as V3Config).passwd;
    expect(passwd?.users).toEqual([
      {
        name: 'core',
        passwordHash: '$6$rounds=4096$salt$hash',
        sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkey core@laptop'],
        groups: ['sudo', 'docker'],
      },
      { name: 'etcd', uid: 232, system: true, noCreateHome: true, shell: '/sbin/nologin', homeDir: '/var/lib/etcd', primaryGroup: 'etcd' },
    ]);
    expect(passwd?.groups).toEqual([{ name: 'etcd', gid: 232, system: true }]);
  });

  test("ct's deprecated create block is folded into the user, with a warning", () => {
    const { config, warnings } = transpileValid('passwd:\n  users:\n    - name: ops\n      create:\n        uid: 1500\n        groups: [wheel]\n');
    expect((config as V3Config).passwd?.users).toEqual([{ name: 'ops', uid: 1500, groups: ['wheel'] }]);
    expect(warnings).toEqual(['warning: passwd.users: "create" (user "ops") is deprecated; put its settings in the user itself (line 5, column 9)']);
  });

  test('a key that is not an OpenSSH public key is a warning', () => {
    const { warnings } = transpileValid('passwd:\n  users:\n    - name: core\n      ssh_authorized_keys: ["hunter2"]\n');
    expect(warnings).toEqual(['warning: passwd.users: ssh_authorized_keys[0] of "core" does not look like an OpenSSH public key (line 4, column 28)']);
  });

  test('errors, with line and column', () => {
    expectErrorAt('passwd:\n  users:\n    - uid: 5\n', 'passwd.users[0]: missing required key "name"', 3, 7);
    expectErrorAt('passwd:\n  users:\n    - name: core\n      ssh_authorized_keys: ssh-rsa AAA\n', 'ssh_authorized_keys: expected a list', 4, 28);
    expectErrorAt('passwd:\n  users:\n    - name: core\n      uid: me\n', 'passwd.users[0].uid: expected an integer', 4, 12);
    expectErrorAt('passwd:\n  users:\n    - name: core\n    - name: core\n', 'user "core" is listed twice', 4, 13);
    expectErrorAt('passwd:\n  groups:\n    - name: g\n      members: [a]\n', 'unknown key "members" in passwd.groups[0]', 4, 7);
    expectErrorAt('passwd:\n  users:\n    - name:\n', 'passwd.users[0].name: must not be empty', 3, 7);
  });
});
