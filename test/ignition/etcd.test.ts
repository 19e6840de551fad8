import { ETCD_OPTIONS, transpile } from '../../ignition';
import { Report } from '../../ignition/diagnostics';
import { parseYaml } from '../../ignition/yaml-positions';
import { OPTIONS, parseConfig, type OptionSpec, type OptionValue } from '../../server/config';
import { goQuote } from '../../ignition/validate';
import {
  dropinOf,
  expandExecWords,
  expectAllValidIgnition,
  expectErrorAt,
  parseServiceDropin,
  README_EXAMPLE,
  transpileErrors,
  transpileValid,
  unitOf,
  yaml,
} from './helpers';

const DROPIN = '20-clct-etcd-member.conf';

describe('etcd section', () => {
  test("the README's example becomes etcd-member.service with ct's drop-in", () => {
    const { config, warnings } = transpileValid(README_EXAMPLE);
    expect(warnings).toEqual([]);
    expect(unitOf(config, 'etcd-member.service').enabled).toBe(true);
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).toBe(
      [
        '[Service]',
        'ExecStart=',
        'ExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\',
        '  --name="my-etcd-1" \\',
        '  --listen-peer-urls="http://10.240.0.1:2380" \\',
        '  --listen-client-urls="http://10.240.0.1:2379" \\',
        '  --initial-advertise-peer-urls="http://10.240.0.1:2380" \\',
        '  --initial-cluster="my-etcd-1=http://10.240.0.1:2380,my-etcd-2=http://10.240.0.2:2380,my-etcd-3=http://10.240.0.3:2380" \\',
        '  --initial-cluster-state="new" \\',
        '  --initial-cluster-token="my-etcd-token" \\',
        '  --advertise-client-urls="http://10.240.0.1:2379"',
      ].join('\n'),
    );
  });

  test('version selects the image tag', () => {
    const { config } = transpileValid(`etcd:\n  version: 3.4.13\n  name: a\n`);
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).toBe(
      '[Service]\nEnvironment="ETCD_IMAGE_TAG=v3.4.13"\nExecStart=\nExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\\n  --name="a"',
    );
  });

  test('every etcd 3.4 option is accepted and passed as its flag', () => {
    // A value of the right shape for each option: the specific samples, else the first generic one it accepts.
    const specific: Record<string, string> = {
      listen_client_urls: 'https://10.0.0.1:2379,unix://localhost:4001',
      initial_cluster: 'a=https://10.0.0.1:2380',
      initial_cluster_state: 'existing',
      discovery_fallback: 'proxy',
      proxy: 'readonly',
      auto_compaction_mode: 'periodic',
      metrics: 'extensive',
      auth_token: 'jwt,pub-key=/k.pub,priv-key=/k,sign-method=RS256',
      logger: 'zap',
      log_level: 'warn',
      experimental_backend_bbolt_freelist_type: 'map',
      heartbeat_interval: '100',
      election_timeout: '1000',
    };
    const generic = ['7', 'true', '5s', 'https://10.0.0.1:2380', 'some-value'];
    const accepts = (decode: (typeof ETCD_OPTIONS)[number]['decode'], text: string): boolean => {
      const node = parseYaml(`"${text}"`.replace(/^"(\d+|true)"$/, '$1'));
      return node !== null && decode(node, new Report(), 'probe') !== undefined;
    };
    const live = ETCD_OPTIONS.filter((o) => o.removedIn === undefined);
    // etcd takes one way to bootstrap: initial_cluster here, discovery and discovery_srv each in a config of its own.
    const alone = ['discovery', 'discovery_srv'];
    for (const key of alone) {
      const one = transpileValid(`etcd:\n  version: 3.4.0\n  ${key}: "${key === 'discovery' ? 'https://10.0.0.1:2380/token' : 'example.com'}"\n`);
      expect(dropinOf(one.config, 'etcd-member.service', DROPIN)).toContain(`  --${key.replace(/_/g, '-')}=`);
    }
    const lines = live.filter((o) => !alone.includes(o.key)).map((o) => {
      const value = specific[o.key] ?? generic.find((g) => accepts(o.decode, g));
      if (value === undefined) throw new Error(`no sample value for ${o.key}`);
      return `  ${o.key}: ${/^(\d+|true)$/.test(value) ? value : `"${value}"`}`;
    });
    const { config } = transpileValid(`etcd:\n  version: 3.4.0\n${lines.join('\n')}\n`);
    const dropin = dropinOf(config, 'etcd-member.service', DROPIN);
    for (const o of live.filter((x) => !alone.includes(x.key))) expect(dropin).toContain(`  --${o.key.replace(/_/g, '-')}=`);
    expect(live.length).toBeGreaterThanOrEqual(70);
  });

  test('integers and booleans are unquoted, strings quoted with escapes', () => {
    const { config } = transpileValid(yaml`
      etcd:
        name: 'a "quoted" name'
        snapshot_count: 5000
        enable_v2: true
    `);
    const dropin = dropinOf(config, 'etcd-member.service', DROPIN);
    expect(dropin).toContain('--name="a \\"quoted\\" name"');
    expect(dropin).toContain('--snapshot-count=5000');
    expect(dropin).toContain('--enable-v2=true');
  });

  test('a user drop-in for etcd-member.service is merged into the same unit', () => {
    const { config } = transpileValid(yaml`
      systemd:
        units:
          - name: etcd-member.service
            dropins:
              - name: 40-limits.conf
                contents: "[Service]\\nLimitNOFILE=40000\\n"
      etcd:
        name: a
    `);
    const unit = unitOf(config, 'etcd-member.service');
    expect(unit.dropins?.map((d) => d.name).sort()).toEqual([DROPIN, '40-limits.conf']);
    expect(unit.enabled).toBe(true);
  });

  describe('errors, with line and column', () => {
    test('unknown key, with a suggestion', () => {
      const d = expectErrorAt('etcd:\n  name: a\n  listen-client-urls: http://x:2379\n', 'unknown key "listen-client-urls" in etcd', 3, 3);
      expect(d.message).toContain('did you mean "listen_client_urls"');
    });

    test('wrong types', () => {
      expectErrorAt('etcd:\n  snapshot_count: lots\n', 'etcd.snapshot_count: expected an integer, found string "lots"', 2, 19);
      expectErrorAt('etcd:\n  enable_v2: "yes"\n', 'etcd.enable_v2: expected a boolean', 2, 14);
      expectErrorAt('etcd:\n  name: [a, b]\n', 'etcd.name: expected a string, found a sequence', 2, 9);
      expectErrorAt('etcd: [1]\n', 'etcd: expected a mapping', 1, 7);
      expectErrorAt('etcd:\n  snapshot_count: -1\n', 'must not be negative', 2, 19);
    });

    test('bad URLs', () => {
      expectErrorAt('etcd:\n  listen_client_urls: not a url\n', '"not a url" is not a valid URL', 2, 23);
      expectErrorAt('etcd:\n  listen_peer_urls: ftp://10.0.0.1:2380\n', 'has scheme "ftp", expected http or https', 2, 21);
      expectErrorAt('etcd:\n  advertise_client_urls: "http://a:1,"\n', 'empty entry in URL list', 2, 26);
      expectErrorAt('etcd:\n  advertise_client_urls: 10.0.0.1:2379\n', 'advertise_client_urls', 2, 26);
      expectErrorAt('etcd:\n  discovery: https://\n', 'etcd.discovery', 2, 14);
    });

    test('a discovery bootstrap comes out as the discovery flags, and our server reads them as one', () => {
      const { config } = transpileValid(yaml`
        etcd:
          name: node-1
          discovery: https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579
          discovery_fallback: exit
          discovery_proxy: http://10.0.0.9:8080
      `);
      const args = etcdArgs(dropinOf(config, 'etcd-member.service', DROPIN));
      expect(args).toEqual([
        '--name=node-1',
        '--discovery=https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579',
        '--discovery-fallback=exit',
        '--discovery-proxy=http://10.0.0.9:8080',
      ]);
      const parsed = parseConfig(args, {}, () => '');
      if (parsed.kind !== 'config') throw new Error('not a config');
      expect(parsed.config.discovery).toEqual({ url: 'https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579', proxy: 'http://10.0.0.9:8080', fallback: 'exit', srv: '', srvName: '' });
    });

    test('one way to bootstrap: discovery or discovery_srv with initial_cluster (or with each other) is an error at its line', () => {
      const text = 'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"';
      expectErrorAt('etcd:\n  initial_cluster: a=http://10.0.0.1:2380\n  discovery: https://discovery.etcd.io/abc\n', `etcd.discovery: etcd refuses discovery with initial_cluster: ${text}`, 3, 14);
      expectErrorAt('etcd:\n  discovery_srv: example.com\n  initial_cluster: a=http://10.0.0.1:2380\n', `etcd.discovery_srv: etcd refuses discovery_srv with initial_cluster: ${text}`, 2, 18);
      expectErrorAt('etcd:\n  discovery: https://discovery.etcd.io/abc\n  discovery_srv: example.com\n', 'etcd.discovery_srv: etcd refuses discovery_srv with discovery', 3, 18);
      // An empty one is left out, so it is no second method.
      transpileValid('etcd:\n  initial_cluster: a=http://10.0.0.1:2380\n  discovery: ""\n');
    });

    test('bad initial_cluster', () => {
      expectErrorAt('etcd:\n  initial_cluster: a=http://10.0.0.1:2380,b\n', '"b" is not of the form name=url', 2, 20);
      expectErrorAt('etcd:\n  initial_cluster: =http://10.0.0.1:2380\n', 'is not of the form name=url', 2, 20);
      expectErrorAt('etcd:\n  initial_cluster: a=10.0.0.1\n', 'etcd.initial_cluster', 2, 20);
      expectErrorAt('etcd:\n  initial_cluster: a=http://10.0.0.1:2380,b=unix://x\n', 'has scheme "unix"', 2, 20);
    });

    test('bad initial_cluster_state and other enumerations', () => {
      expectErrorAt('etcd:\n  initial_cluster_state: old\n', 'must be one of "new", "existing", found "old"', 2, 26);
      expectErrorAt('etcd:\n  proxy: maybe\n', 'must be one of "on", "off", "readonly"', 2, 10);
      expectErrorAt('etcd:\n  auth_token: oauth\n', 'must be "simple" or "jwt,<options>"', 2, 15);
      expectErrorAt('etcd:\n  grpc_keepalive_timeout: soon\n', 'is not a duration', 2, 27);
    });

    test('election timeout must be at least five heartbeats', () => {
      expectErrorAt('etcd:\n  heartbeat_interval: 300\n', 'must be at least 5 times heartbeat_interval', 2, 23);
      expectErrorAt('etcd:\n  heartbeat_interval: 100\n  election_timeout: 400\n', 'election_timeout (400 ms)', 3, 21);
    });

    test('versions', () => {
      expectErrorAt('etcd:\n  version: 2.2.0\n', 'too old', 2, 12);
      expectErrorAt('etcd:\n  version: 4.0.0\n', 'too new', 2, 12);
      expectErrorAt('etcd:\n  version: "3.4"\n', 'is not a semantic version', 2, 12);
      expectErrorAt('etcd:\n  version: 3.1.0\n  enable_v2: true\n', 'etcd.enable_v2: not an option of etcd 3.1 (it exists in etcd 3.2 and later)', 3, 14);
      expectErrorAt('etcd:\n  version: 3.4.0\n  ca_file: /ca.pem\n', 'not an option of etcd 3.4 (it exists in etcd 2.3 to 3.3)', 3, 12);
      expectErrorAt('etcd:\n  version: 2.3.7\n  auto_tls: true\n', 'not an option of etcd 2.3', 3, 13);
    });

    test('several errors are reported in one run', () => {
      const diags = transpileErrors('etcd:\n  bogus: 1\n  initial_cluster_state: old\n  listen_peer_urls: nope\n');
      expect(diags.map((d) => d.pos?.line)).toEqual([2, 3, 4]);
    });
  });

  describe('warnings', () => {
    test('deprecated options and a version newer than 3.4', () => {
      const { warnings } = transpileValid('etcd:\n  version: 3.5.0\n  debug: true\n');
      expect(warnings).toEqual([
        'warning: etcd.version: etcd 3.5.0 is newer than 3.4; only the options of 3.4 are accepted (line 2, column 12)',
        'warning: etcd.debug: debug is deprecated since etcd 3.4; use log_level: debug (line 3, column 10)',
      ]);
    });

    test('a member missing from initial_cluster', () => {
      const { warnings } = transpileValid('etcd:\n  name: c\n  initial_cluster: a=http://10.0.0.1:2380\n');
      expect(warnings).toEqual(['warning: etcd.name: member "c" is not in initial_cluster (a) (line 2, column 9)']);
    });

    test('--strict turns warnings into errors', () => {
      const diags = transpileErrors('etcd:\n  version: 3.3.0\n  debug: true\n', { strict: true });
      expect(diags).toEqual([{ severity: 'error', message: expect.stringContaining('debug is deprecated'), pos: { line: 3, column: 10 } }]);
    });
  });
});

/** The command etcd-member.service runs for a drop-in: its flags, with $ETCD_OPTS (unset) expanded to nothing. */
function etcdArgs(dropin: string): string[] {
  const { execStart } = parseServiceDropin(dropin);
  expect(execStart[0]).toBe('/usr/lib/coreos/etcd-wrapper');
  return expandExecWords(execStart.slice(1), {});
}

const key = (spec: OptionSpec): string => spec.name.replace(/-/g, '_');

/** A non-zero value of each server option's type, as YAML, as ct should write it, and as the server should read it. */
function sampleFor(spec: OptionSpec): { yaml: string; flag: string; value: OptionValue } {
  const specific: Record<string, string> = {
    initial_cluster: 'default=http://localhost:2380',
    discovery: 'https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de',
    discovery_proxy: 'http://10.0.0.9:8080',
    backend_batch_interval: '10ms',
    cors: 'http://10.0.0.9:8080',
    host_whitelist: 'example.com',
    log_output: 'stderr',
    log_outputs: 'stderr',
    logger: 'zap',
  };
  switch (spec.kind) {
    case 'bool':
      return { yaml: 'true', flag: 'true', value: true };
    case 'uint':
    case 'int': {
      const n = (spec.default as number) || 7;
      return { yaml: String(n), flag: String(n), value: n };
    }
    case 'urls': {
      const list = (spec.default as string[]).length > 0 ? (spec.default as string[]) : ['http://127.0.0.1:2381'];
      return { yaml: goQuote(list.join(',')), flag: goQuote(list.join(',')), value: list };
    }
    case 'enum': {
      const v = spec.values!.find((x) => x !== spec.default)!;
      return { yaml: goQuote(v), flag: goQuote(v), value: v };
    }
    case 'string': {
      const v = specific[key(spec)] ?? ((spec.default as string) || '/var/lib/etcd/sample');
      return { yaml: goQuote(v), flag: goQuote(v), value: v };
    }
    case 'strings': {
      const v = specific[key(spec)] ?? '/var/lib/etcd/sample';
      return { yaml: goQuote(v), flag: goQuote(v), value: v.split(',') };
    }
  }
}

/** A value of the wrong type for each kind, and the start of the error ct gives. */
const WRONG: Record<OptionSpec['kind'], [string, string]> = {
  bool: ['"yes"', 'expected a boolean'],
  uint: ['lots', 'expected an integer'],
  int: ['lots', 'expected an integer'],
  urls: ['"not a url"', 'is not a valid URL'],
  enum: ['bogus', 'must be one of'],
  string: ['[a, b]', 'expected a string'],
  strings: ['[a, b]', 'expected a string'],
};

/** The two ways each option is tried: with a version pinned, and without one. */
const VERSION_VARIANTS = [
  ['with version 3.4.13', 'version: 3.4.13\n  '],
  ['without a version', ''],
] as const;

/** The CLC that sets one option to its sample value. */
const optionConfig = (spec: OptionSpec, version: string): string => `etcd:\n  ${version}${key(spec)}: ${sampleFor(spec).yaml}\n`;

describe("the server's option table (server/config/options.ts)", () => {
  test("ct's etcd 3.4 options are exactly the server's options", () => {
    const live = ETCD_OPTIONS.filter((o) => o.removedIn === undefined).map((o) => o.key);
    expect([...live].sort()).toEqual(OPTIONS.map(key).sort());
    expect(new Set(live).size).toBe(live.length);
  });

  describe.each(OPTIONS.map((spec) => [key(spec), spec] as const))('%s', (name, spec) => {
    const sample = sampleFor(spec);
    const flag = `--${spec.name}=${sample.flag}`;

    test.each(VERSION_VARIANTS)(
      'is accepted %s and written as its flag, which the server reads back',
      (_, version) => {
        // ignition-validate checks these outputs all at once, below.
        const { config } = transpile(optionConfig(spec, version));
        const args = etcdArgs(dropinOf(config, 'etcd-member.service', DROPIN));
        expect(args).toEqual([`--${spec.name}=${String(JSON.parse(sample.flag))}`]);
        expect(dropinOf(config, 'etcd-member.service', DROPIN)).toContain(`  ${flag}`);
        // As etcd would get it: the server parses the flag into the sample value.
        // Options that etcd accepts only with another one (as etcd 3.4's config checks).
        const companion =
          spec.name === 'listen-client-urls'
            ? [`--advertise-client-urls=${(sample.value as string[]).join(',')}`]
            : spec.name === 'experimental-enable-lease-checkpoint-persist'
              ? ['--experimental-enable-lease-checkpoint=true']
              : [];
        const read: string[] = [];
        if (spec.supported === false && !spec.tolerated && JSON.stringify(sample.value) !== JSON.stringify(spec.default)) {
          // The server refuses a value it would not act on.
          expect(() => parseConfig([...args, ...companion], {}, () => '')).toThrow(/not supported by this server/);
          return;
        }
        const parsed = parseConfig([...args, ...companion], {}, (p) => (read.push(p), 'name: from-file\n'));
        if (parsed.kind !== 'config') throw new Error(`server did not parse ${args.join(' ')}`);
        if (spec.name === 'config-file') {
          expect(read).toEqual([sample.value]);
          expect(parsed.config.name).toBe('from-file');
        } else {
          expect(read).toEqual([]);
          expect(parsed.config.values.get(spec.name)).toEqual(sample.value);
        }
      },
    );

    test('a value of another type is an error at the value', () => {
      const [bad, message] = WRONG[spec.kind];
      expectErrorAt(`etcd:\n  version: 3.4.13\n  ${name}: ${bad}\n`, `etcd.${name}:`, 3, name.length + 5);
      expect(transpileErrors(`etcd:\n  ${name}: ${bad}\n`).map((d) => d.message).join('\n')).toContain(message);
    });
  });

  test('every output above (each option, with and without a version) is valid Ignition, says ignition-validate', async () => {
    // The same configs as the tests above (transpiling is deterministic), made here so that a run filtered to this
    // test still checks them all; ignition-validate runs on them a few at a time.
    const configs = OPTIONS.flatMap((spec) => VERSION_VARIANTS.map(([, version]) => transpile(optionConfig(spec, version)).config));
    expect(configs).toHaveLength(2 * OPTIONS.length);
    await expectAllValidIgnition(configs);
  });
});

describe('zero values are left out, as ct does', () => {
  test('false, 0 and "" produce no flag; a default that differs is pointed out', () => {
    const { config, warnings } = transpileValid(yaml`
      etcd:
        name: a
        auto_tls: false
        enable_v2: false
        snapshot_count: 0
        max_snapshots: 0
        initial_cluster_token: ""
        discovery: ""
        listen_client_urls: ""
    `);
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).toBe('[Service]\nExecStart=\nExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\\n  --name="a"');
    // In the drop-in's order; auto_tls and discovery default to their zero value anyway.
    expect(warnings).toEqual([
      `warning: etcd.snapshot_count: 0 is a zero value, which ct leaves out, so etcd's default (100000) applies (line 5, column 19)`,
      `warning: etcd.listen_client_urls: "" is a zero value, which ct leaves out, so etcd's default ("http://localhost:2379") applies (line 9, column 23)`,
      `warning: etcd.max_snapshots: 0 is a zero value, which ct leaves out, so etcd's default (5) applies (line 6, column 18)`,
      `warning: etcd.initial_cluster_token: "" is a zero value, which ct leaves out, so etcd's default ("etcd-cluster") applies (line 7, column 26)`,
      `warning: etcd.enable_v2: false is a zero value, which ct leaves out, so etcd's default (true) applies (line 4, column 14)`,
    ]);
  });

  test('initial_cluster_token: "" sets no token at all, so etcd keeps its default "etcd-cluster"', () => {
    const { config } = transpileValid('etcd:\n  name: a\n  initial_cluster_token: ""\n');
    const dropin = dropinOf(config, 'etcd-member.service', DROPIN);
    expect(dropin).not.toMatch(/initial.cluster.token/i);
    expect(parseServiceDropin(dropin).environment).toEqual({});
    const parsed = parseConfig(etcdArgs(dropin), {}, () => '');
    if (parsed.kind !== 'config') throw new Error('not a config');
    expect(parsed.config.initialClusterToken).toBe('etcd-cluster');
    expect(parsed.config.name).toBe('a');
  });

  test('a zero timeout leaves the default, so it is no error against the other timeout', () => {
    const { config } = transpileValid('etcd:\n  heartbeat_interval: 0\n  election_timeout: 0\n');
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).not.toContain('--');
    expectErrorAt('etcd:\n  heartbeat_interval: 300\n  election_timeout: 0\n', 'election_timeout (1000 ms) must be at least 5 times heartbeat_interval (300 ms)', 2, 23);
  });

  test('"" is no zero value for a boolean or an integer: those stay type errors', () => {
    expectErrorAt('etcd:\n  auto_tls: ""\n', 'etcd.auto_tls: expected a boolean', 2, 13);
    expectErrorAt('etcd:\n  snapshot_count: ""\n', 'etcd.snapshot_count: expected an integer', 2, 19);
  });

  test('version gating still applies to a zero value', () => {
    expectErrorAt('etcd:\n  version: 3.1.0\n  enable_v2: false\n', 'etcd.enable_v2: not an option of etcd 3.1', 3, 14);
  });

  test('config_file with other options warns that etcd then ignores them', () => {
    const { warnings } = transpileValid('etcd:\n  name: a\n  config_file: /etc/etcd/etcd.yaml\n');
    expect(warnings).toEqual([
      'warning: etcd.config_file: etcd ignores its other options (flags and ETCD_* variables) when given a config file (line 3, column 16)',
    ]);
    expect(transpileValid('etcd:\n  config_file: /etc/etcd/etcd.yaml\n').warnings).toEqual([]);
  });
});

describe('platform templating', () => {
  const TEMPLATED = yaml`
    etcd:
      version: 3.4.13
      name: "{HOSTNAME}"
      advertise_client_urls: "http://{PRIVATE_IPV4}:2379"
      initial_advertise_peer_urls: "http://{PRIVATE_IPV4}:2380"
      listen_client_urls: "http://0.0.0.0:2379"
      listen_peer_urls: "http://{PRIVATE_IPV4}:2380"
      initial_cluster: "%m=http://{PRIVATE_IPV4}:2380"
  `;

  test('ec2 variables and the coreos-metadata requirement', () => {
    const { config } = transpileValid(TEMPLATED, { platform: 'ec2' });
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).toBe(
      [
        '[Unit]',
        'Requires=coreos-metadata.service',
        'After=coreos-metadata.service',
        '',
        '[Service]',
        'EnvironmentFile=/run/metadata/coreos',
        'Environment="ETCD_IMAGE_TAG=v3.4.13"',
        'ExecStart=',
        'ExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\',
        '  --name="${COREOS_EC2_HOSTNAME}" \\',
        '  --listen-peer-urls="http://${COREOS_EC2_IPV4_LOCAL}:2380" \\',
        '  --listen-client-urls="http://0.0.0.0:2379" \\',
        '  --initial-advertise-peer-urls="http://${COREOS_EC2_IPV4_LOCAL}:2380" \\',
        '  --initial-cluster="%m=http://${COREOS_EC2_IPV4_LOCAL}:2380" \\',
        '  --advertise-client-urls="http://${COREOS_EC2_IPV4_LOCAL}:2379"',
      ].join('\n'),
    );
  });

  test.each([
    ['gce', '${COREOS_GCE_IP_LOCAL_0}'],
    ['azure', '${COREOS_AZURE_IPV4_DYNAMIC}'],
    ['digitalocean', '${COREOS_DIGITALOCEAN_IPV4_PRIVATE_0}'],
    ['packet', '${COREOS_PACKET_IPV4_PRIVATE_0}'],
    ['custom', '${COREOS_CUSTOM_PRIVATE_IPV4}'],
  ])('%s private address', (platform, variable) => {
    const { config } = transpileValid('etcd:\n  listen_peer_urls: "http://{PRIVATE_IPV4}:2380"\n', { platform });
    expect(dropinOf(config, 'etcd-member.service', DROPIN)).toContain(`--listen-peer-urls="http://${variable}:2380"`);
  });

  test('openstack-metadata also gets the provider override for coreos-metadata', () => {
    const { config } = transpileValid(TEMPLATED, { platform: 'openstack-metadata' });
    expect(dropinOf(config, 'coreos-metadata.service', '20-clct-provider-override.conf')).toBe(
      '[Service]\nEnvironment=COREOS_METADATA_OPT_PROVIDER=--provider=openstack-metadata',
    );
    expect(unitOf(config, 'coreos-metadata-sshkeys@.service').enabled).toBe(true);
  });

  test('a template without a platform is an error at the value', () => {
    const d = expectErrorAt(TEMPLATED, 'etcd.name: templating ("{HOSTNAME}") needs a platform; pass --platform', 3, 9);
    expect(d.message).toContain('ec2');
  });

  test('unknown fields and fields the platform lacks', () => {
    expectErrorAt('etcd:\n  name: "{MACHINE_ID}"\n', 'unknown template field "{MACHINE_ID}"', 2, 9, { platform: 'ec2' });
    expectErrorAt('etcd:\n  name: "{HOSTNAME}"\n', 'platform "azure" does not provide {HOSTNAME}', 2, 9, { platform: 'azure' });
    expectErrorAt('etcd:\n  name: "{HOSTNAME"\n', 'unbalanced', 2, 9, { platform: 'ec2' });
  });

  test('an IPv6 template in brackets makes a URL with the address in brackets', () => {
    const { config, warnings } = transpileValid(
      yaml`
        etcd:
          listen_peer_urls: "http://[{PRIVATE_IPV6}]:2380"
          initial_advertise_peer_urls: "http://[{PRIVATE_IPV6}]:2380,http://{PRIVATE_IPV4}:2380"
          advertise_client_urls: "https://[{PUBLIC_IPV6}]:2379"
          initial_cluster: "%m=http://[{PRIVATE_IPV6}]:2380"
      `,
      { platform: 'digitalocean' },
    );
    expect(warnings).toEqual([]);
    const dropin = dropinOf(config, 'etcd-member.service', DROPIN);
    expect(dropin).toContain('--listen-peer-urls="http://[${COREOS_DIGITALOCEAN_IPV6_PRIVATE_0}]:2380"');
    expect(dropin).toContain(
      '--initial-advertise-peer-urls="http://[${COREOS_DIGITALOCEAN_IPV6_PRIVATE_0}]:2380,http://${COREOS_DIGITALOCEAN_IPV4_PRIVATE_0}:2380"',
    );
    expect(dropin).toContain('--advertise-client-urls="https://[${COREOS_DIGITALOCEAN_IPV6_PUBLIC_0}]:2379"');
    expect(dropin).toContain('--initial-cluster="%m=http://[${COREOS_DIGITALOCEAN_IPV6_PRIVATE_0}]:2380"');
  });

  test('an IPv6 template without brackets in a URL is a warning that says to write the brackets', () => {
    const cfg = 'etcd:\n  listen_peer_urls: "http://{PRIVATE_IPV6}:2380"\n  initial_cluster: "%m=http://{PUBLIC_IPV6}:2380"\n';
    const { warnings } = transpileValid(cfg, { platform: 'digitalocean' });
    expect(warnings).toEqual([
      'warning: etcd.listen_peer_urls: write "[{PRIVATE_IPV6}]" in "http://{PRIVATE_IPV6}:2380": {PRIVATE_IPV6} becomes a bare IPv6 address, which etcd would get as an invalid URL without brackets (line 2, column 21)',
      'warning: etcd.initial_cluster: write "[{PUBLIC_IPV6}]" in "http://{PUBLIC_IPV6}:2380": {PUBLIC_IPV6} becomes a bare IPv6 address, which etcd would get as an invalid URL without brackets (line 3, column 20)',
    ]);
    expect(transpileErrors(cfg, { platform: 'digitalocean', strict: true }).map((d) => d.severity)).toEqual(['error', 'error']);
    // The rest of the URL is still checked.
    expectErrorAt('etcd:\n  listen_peer_urls: "ftp://{PRIVATE_IPV6}:2380"\n', 'has scheme "ftp"', 2, 21, { platform: 'digitalocean' });
    // Brackets are for IPv6 only.
    expectErrorAt('etcd:\n  listen_peer_urls: "http://[{PRIVATE_IPV4}]:2380"\n', 'is not a valid URL', 2, 21, { platform: 'digitalocean' });
  });

  test('an unknown platform is an error', () => {
    expect(transpileErrors('etcd: {name: a}\n', { platform: 'mars' })[0].message).toMatch(/^unknown platform "mars" \(known: azure, /);
  });
});
