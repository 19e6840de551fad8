import { dropinOf, expectErrorAt, fileOf, fileText, transpileValid, unitOf, yaml } from './helpers';

describe('update and locksmith sections', () => {
  test('both write /etc/coreos/update.conf', () => {
    const { config, warnings } = transpileValid(yaml`
      update:
        group: Beta
        server: https://updates.example.com/v1/update/
      locksmith:
        reboot_strategy: etcd-lock
        window_start: Thu 04:00
        window_length: 1h30m
        group: etcd-members
        etcd_endpoints: https://10.240.0.1:2379,https://10.240.0.2:2379
        etcd_cafile: /etc/ssl/etcd/ca.pem
        etcd_certfile: /etc/ssl/etcd/client.pem
        etcd_keyfile: /etc/ssl/etcd/client-key.pem
    `);
    expect(warnings).toEqual([]);
    expect(fileOf(config, '/etc/coreos/update.conf')).toMatchObject({ mode: 0o644, overwrite: true });
    expect(fileText(config, '/etc/coreos/update.conf')).toBe(
      [
        'GROUP=beta',
        'SERVER=https://updates.example.com/v1/update/',
        'REBOOT_STRATEGY="etcd-lock"',
        'LOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00"',
        'LOCKSMITHD_REBOOT_WINDOW_LENGTH="1h30m"',
        'LOCKSMITHD_GROUP="etcd-members"',
        'LOCKSMITHD_ENDPOINT="https://10.240.0.1:2379,https://10.240.0.2:2379"',
        'LOCKSMITHD_ETCD_CAFILE="/etc/ssl/etcd/ca.pem"',
        'LOCKSMITHD_ETCD_CERTFILE="/etc/ssl/etcd/client.pem"',
        'LOCKSMITHD_ETCD_KEYFILE="/etc/ssl/etcd/client-key.pem"',
      ].join('\n'),
    );
  });

  /**
   * locksmithd reads update.conf as an EnvironmentFile. Its flags come from `LOCKSMITHD_` + the flag's name in capitals
   * with "-" as "_" (locksmithctl.go's flagsFromEnv over its global flags); the strategy and the window it reads by
   * name (daemon.go). Every variable ct writes must be one of these, or the setting is silently lost.
   */
  test('every variable written is one locksmithd reads, with the value it needs', () => {
    const LOCKSMITHD_FLAGS = ['debug', 'endpoint', 'etcd-keyfile', 'etcd-certfile', 'etcd-cafile', 'etcd-username', 'etcd-password', 'group', 'version'];
    const read = new Set([
      ...LOCKSMITHD_FLAGS.map((f) => `LOCKSMITHD_${f.toUpperCase().replace(/-/g, '_')}`),
      'REBOOT_STRATEGY',
      'LOCKSMITHD_REBOOT_WINDOW_START',
      'LOCKSMITHD_REBOOT_WINDOW_LENGTH',
    ]);
    const { config } = transpileValid(yaml`
      locksmith:
        reboot_strategy: etcd-lock
        window_start: "04:00"
        window_length: 1h
        group: g
        etcd_endpoints: https://10.240.0.1:2379,https://10.240.0.2:2379
        etcd_cafile: /etc/ssl/etcd/ca.pem
        etcd_certfile: /etc/ssl/etcd/client.pem
        etcd_keyfile: /etc/ssl/etcd/client-key.pem
    `);
    const env = Object.fromEntries(
      fileText(config, '/etc/coreos/update.conf')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => [l.slice(0, l.indexOf('=')), JSON.parse(l.slice(l.indexOf('=') + 1)) as string]),
    );
    expect(Object.keys(env).filter((name) => !read.has(name))).toEqual([]);
    // -endpoint takes a comma-separated list.
    expect(env.LOCKSMITHD_ENDPOINT.split(',')).toEqual(['https://10.240.0.1:2379', 'https://10.240.0.2:2379']);
    expect(env).toMatchObject({
      LOCKSMITHD_ETCD_CAFILE: '/etc/ssl/etcd/ca.pem',
      LOCKSMITHD_ETCD_CERTFILE: '/etc/ssl/etcd/client.pem',
      LOCKSMITHD_ETCD_KEYFILE: '/etc/ssl/etcd/client-key.pem',
    });
  });

  // CoreOS ct (config/types/update.go) starts every line after GROUP= with a newline and ends the file without one.
  test('update alone: no newline at the end', () => {
    const { config } = transpileValid('update:\n  group: stable\n');
    expect(fileText(config, '/etc/coreos/update.conf')).toBe('GROUP=stable');
    expect(fileOf(config, '/etc/coreos/update.conf').contents?.source).toBe('data:,GROUP%3Dstable');
  });

  test('locksmith alone: an empty first line, as ct writes it', () => {
    const { config } = transpileValid('locksmith:\n  reboot_strategy: "off"\n');
    expect(fileText(config, '/etc/coreos/update.conf')).toBe('\nREBOOT_STRATEGY="off"');
    // Byte for byte what ct's output for this config carries.
    expect(fileOf(config, '/etc/coreos/update.conf').contents?.source).toBe('data:,%0AREBOOT_STRATEGY%3D%22off%22');
  });

  test('empty values are left out, and nothing at all gives no file', () => {
    const { config } = transpileValid('update:\n  group: ""\n  server: https://updates.example.com/v1/update/\nlocksmith:\n  group: ""\n  etcd_endpoints: http://10.0.0.1:2379\n');
    expect(fileText(config, '/etc/coreos/update.conf')).toBe('\nSERVER=https://updates.example.com/v1/update/\nLOCKSMITHD_ENDPOINT="http://10.0.0.1:2379"');
    const none = transpileValid('update:\n  group: ""\n');
    expect(() => fileOf(none.config, '/etc/coreos/update.conf')).toThrow('no file /etc/coreos/update.conf');
  });

  test('an unknown group without a server is a warning', () => {
    const { warnings } = transpileValid('update:\n  group: nightly\n');
    expect(warnings).toEqual(['warning: update.group: unknown update group "nightly" (without a custom server: stable, beta, alpha) (line 2, column 10)']);
  });

  test('errors, with line and column', () => {
    expectErrorAt('locksmith:\n  reboot_strategy: sometimes\n', 'must be one of "reboot", "etcd-lock", "off"', 2, 20);
    expectErrorAt('locksmith:\n  window_start: Someday 04:00\n  window_length: 1h\n', 'is not a window start', 2, 17);
    expectErrorAt('locksmith:\n  window_start: "25:00"\n  window_length: 1h\n', 'is not a window start', 2, 17);
    expectErrorAt('locksmith:\n  window_start: "04:00"\n  window_length: an hour\n', 'is not a duration', 3, 18);
    expectErrorAt('locksmith:\n  window_start: "04:00"\n', 'window_start and window_length must be given together', 2, 17);
    expectErrorAt('update:\n  server: updates.example.com\n', 'is not a valid URL', 2, 11);
  });
});

describe('flannel section', () => {
  test("flanneld.service with ct's drop-in, templating and the network config", () => {
    const { config } = transpileValid(
      yaml`
        flannel:
          version: 0.7.1
          etcd_endpoints: "http://{PRIVATE_IPV4}:2379"
          interface: "{PRIVATE_IPV4}"
          ip_masq: true
          network_config: '{"Network": "10.2.0.0/16", "Backend": {"Type": "vxlan"}}'
      `,
      { platform: 'gce' },
    );
    expect(unitOf(config, 'flanneld.service').enabled).toBe(true);
    expect(dropinOf(config, 'flanneld.service', '20-clct-flannel.conf')).toBe(
      [
        '[Unit]',
        'Requires=coreos-metadata.service',
        'After=coreos-metadata.service',
        '',
        '[Service]',
        'EnvironmentFile=/run/metadata/coreos',
        'Environment="FLANNEL_IMAGE_TAG=v0.7.1"',
        'ExecStart=',
        'ExecStart=/usr/lib/coreos/flannel-wrapper $FLANNEL_OPTS \\',
        '  --etcd-endpoints="http://${COREOS_GCE_IP_LOCAL_0}:2379" \\',
        '  --ip-masq=true \\',
        '  --iface="${COREOS_GCE_IP_LOCAL_0}"',
        'ExecStartPre=/usr/bin/etcdctl --endpoints="http://${COREOS_GCE_IP_LOCAL_0}:2379" set /coreos.com/network/config "{\\"Network\\": \\"10.2.0.0/16\\", \\"Backend\\": {\\"Type\\": \\"vxlan\\"}}"',
      ].join('\n'),
    );
  });

  test('errors, with line and column', () => {
    expectErrorAt('flannel:\n  network_config: "{not json"\n', 'must be a JSON object', 2, 19);
    expectErrorAt('flannel:\n  version: 0.4.0\n', 'flannel 0.4.0 is not supported', 2, 12);
    expectErrorAt('flannel:\n  version: 0.6.0\n  kube_subnet_mgr: true\n', 'not an option of flannel 0.6', 3, 20);
    expectErrorAt('flannel:\n  kube_subnet_mgr: true\n  network_config: "{}"\n', 'cannot be given when kube_subnet_mgr is set', 3, 19);
    expectErrorAt('flannel:\n  public_ip: "{PUBLIC_IPV4}"\n', 'templating ("{PUBLIC_IPV4}") needs a platform', 2, 14);
    expectErrorAt('flannel:\n  iface: eth0\n', 'unknown key "iface" in flannel', 2, 3);
  });
});

describe('docker section', () => {
  test('flags become DOCKER_OPTS in a drop-in', () => {
    const { config } = transpileValid('docker:\n  flags:\n    - --insecure-registry=10.0.0.0/8\n    - --log-driver=journald\n');
    expect(unitOf(config, 'docker.service').enabled).toBe(true);
    expect(dropinOf(config, 'docker.service', '20-clct-docker.conf')).toBe(
      '[Service]\nEnvironment="DOCKER_OPTS=--insecure-registry=10.0.0.0/8 --log-driver=journald"',
    );
  });

  test('flags must be a list of strings', () => {
    expectErrorAt('docker:\n  flags: --debug\n', 'docker.flags: expected a list', 2, 10);
    expectErrorAt('docker:\n  flags: [{a: 1}]\n', 'docker.flags[0]: expected a string', 2, 11);
  });
});
