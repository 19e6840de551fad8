import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, ParseResult, ServerConfig, parseConfig } from '../../server/config';
import { runRealEtcd } from '../support/real-etcd';

const noFile = (p: string): string => {
  throw new Error(`ENOENT: no such file or directory, open '${p}'`);
};

function config(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): { config: ServerConfig; warnings: string[] } {
  const r: ParseResult = parseConfig(argv, env, (p) => (p in files ? files[p] : noFile(p)));
  if (r.kind !== 'config') throw new Error(`expected a config, got ${r.kind}`);
  return r;
}

function errorOf(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): ConfigError {
  try {
    config(argv, env, files);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('etcd command configuration', () => {
  test("booleans take Go's strconv.ParseBool spellings, on the command line and in ETCD_* variables", () => {
    for (const v of ['T', 't', '1', 'TRUE', 'True', 'true']) {
      expect(config([`--pre-vote=${v}`]).config.preVote).toBe(true);
      expect(config([], { ETCD_PRE_VOTE: v }).config.preVote).toBe(true);
    }
    for (const v of ['F', 'f', '0', 'FALSE', 'False', 'false']) expect(config([`--enable-v2=${v}`]).config.enableV2).toBe(false);
    expect(errorOf(['--pre-vote=yes']).exitCode).toBe(2);
    expect(errorOf([], { ETCD_PRE_VOTE: 'on' }).exitCode).toBe(1);
  });

  test("defaults are etcd's", () => {
    const { config: c } = config([]);
    expect(c.name).toBe('default');
    expect(c.dataDir).toBe('default.etcd');
    expect(c.listenClientURLs).toEqual(['http://localhost:2379']);
    expect(c.listenPeerURLs).toEqual(['http://localhost:2380']);
    expect(c.advertiseClientURLs).toEqual(['http://localhost:2379']);
    expect(c.initialCluster).toEqual([{ name: 'default', peerURLs: ['http://localhost:2380'] }]);
    expect(c.initialClusterToken).toBe('etcd-cluster');
    expect(c.initialClusterState).toBe('new');
    expect(c.heartbeatIntervalMs).toBe(100);
    expect(c.electionTimeoutMs).toBe(1000);
    expect(c.snapshotCount).toBe(100000);
    expect(c.maxRequestBytes).toBe(1572864);
    expect(c.enableV2).toBe(true);
  });

  test('flags in every Go spelling: -f v, --f v, --f=v, bare and explicit booleans', () => {
    const { config: c } = config(['-name', 'n1', '--data-dir', '/d', '--snapshot-count=5', '--client-cert-auth', '--enable-v2=false', '--initial-advertise-peer-urls', 'http://10.0.0.1:2380']);
    expect(c.name).toBe('n1');
    expect(c.dataDir).toBe('/d');
    expect(c.snapshotCount).toBe(5);
    expect(c.clientTLS.clientCertAuth).toBe(true);
    expect(c.enableV2).toBe(false);
    // The default initial cluster follows the name and advertised peer URLs.
    expect(c.initialCluster).toEqual([{ name: 'n1', peerURLs: ['http://10.0.0.1:2380'] }]);
  });

  test('ETCD_* environment variables, shadowed by flags', () => {
    const { config: c, warnings } = config(['--name', 'flag-name'], { ETCD_NAME: 'env-name', ETCD_SNAPSHOT_COUNT: '42', ETCD_BOGUS: 'x', PATH: '/bin' });
    expect(c.name).toBe('flag-name');
    expect(c.snapshotCount).toBe(42);
    expect(warnings).toContain('recognized environment variable ETCD_NAME, but unused: shadowed by corresponding flag');
    expect(warnings).toContain('unrecognized environment variable ETCD_BOGUS=x');
  });

  test('a three-member initial cluster, as in the Container Linux example', () => {
    const { config: c } = config([
      '--name', 'my-etcd-1',
      '--initial-advertise-peer-urls', 'http://10.240.0.1:2380',
      '--initial-cluster', 'my-etcd-1=http://10.240.0.1:2380,my-etcd-2=http://10.240.0.2:2380,my-etcd-3=http://10.240.0.3:2380',
      '--initial-cluster-token', 'my-etcd-token',
      '--initial-cluster-state', 'new',
    ]);
    expect(c.initialCluster.map((m) => m.name)).toEqual(['my-etcd-1', 'my-etcd-2', 'my-etcd-3']);
    expect(c.initialClusterToken).toBe('my-etcd-token');
  });

  test('a YAML config file with dashed or underscored keys and TLS sections; flags and env are then ignored', () => {
    const file = [
      'name: y1',
      'data_dir: /var/lib/etcd',
      'listen_client_urls: http://127.0.0.1:12379',
      'listen-peer-urls: http://127.0.0.1:12380',
      'initial-advertise-peer-urls: http://127.0.0.1:12380',
      'heartbeat-interval: 50',
      'election_timeout: 500',
      'enable-v2: true',
      'client-transport-security:',
      '  cert-file: /tls/server.crt',
      '  client-cert-auth: true',
      'peer_transport_security:',
      '  trusted-ca-file: /tls/ca.crt',
    ].join('\n');
    const { config: c, warnings } = config(['--config-file', '/etc/etcd.yml', '--name', 'ignored'], { ETCD_SNAPSHOT_COUNT: '7' }, { '/etc/etcd.yml': file });
    expect(c.name).toBe('y1');
    expect(c.dataDir).toBe('/var/lib/etcd');
    expect(c.listenClientURLs).toEqual(['http://127.0.0.1:12379']);
    expect(c.heartbeatIntervalMs).toBe(50);
    expect(c.electionTimeoutMs).toBe(500);
    expect(c.snapshotCount).toBe(100000);
    expect(c.clientTLS).toMatchObject({ certFile: '/tls/server.crt', clientCertAuth: true });
    expect(c.peerTLS.trustedCAFile).toBe('/tls/ca.crt');
    expect(warnings.some((w) => /other command line flags and environment variables are ignored/.test(w))).toBe(true);
  });

  test("--experimental-watch-progress-notify-interval: a Go duration, 10 minutes when none, raised to etcd's minimum with its warning", () => {
    expect(config([]).config.watchProgressNotifyIntervalMs).toBe(600000);
    expect(config(['--experimental-watch-progress-notify-interval', '1m30s']).config.watchProgressNotifyIntervalMs).toBe(90000);
    expect(config(['--experimental-watch-progress-notify-interval=0s']).config.watchProgressNotifyIntervalMs).toBe(600000);
    const low = config(['--experimental-watch-progress-notify-interval=10ms']);
    expect([low.config.watchProgressNotifyIntervalMs, low.warnings]).toEqual([100, ['adjusting watch progress notify interval to minimum period 100ms']]);
  });

  test.each([
    [['--foo'], /flag provided but not defined: -foo/, 2],
    [['--heartbeat-interval', 'abc'], /invalid value "abc" for flag -heartbeat-interval/, 2],
    [['--heartbeat-interval', '-5'], /invalid value "-5" for flag -heartbeat-interval/, 2],
    [['--initial-cluster-state', 'bogus'], /invalid value "bogus" for flag -initial-cluster-state/, 2],
    [['--name'], /flag needs an argument: -name/, 2],
    [['positional'], /'positional' is not a valid flag/, 1],
    [['--election-timeout', '100'], /--election-timeout\[100ms\] should be at least as 5 times as --heartbeat-interval\[100ms\]/, 1],
    [['--heartbeat-interval', '0'], /--heartbeat-interval must be >0/, 1],
    [['--election-timeout', '60000'], /is too long/, 1],
    [['--listen-client-urls', 'ftp://x:1'], /^invalid value "ftp:\/\/x:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp:\/\/x:1$/, 2],
    [['--listen-client-urls', 'http://127.0.0.1'], /for flag -listen-client-urls: URL address does not have the form "host:port": http:\/\/127.0.0.1$/, 2],
    [['--listen-client-urls', 'http://127.0.0.1:2379/path'], /for flag -listen-client-urls: URL must not contain a path/, 2],
    [['--listen-client-urls', 'http://127.0.0.1:2379'], /^--advertise-client-urls is required when --listen-client-urls is set explicitly/, 1],
    [['--enable-v2=maybe'], /^invalid boolean value "maybe" for -enable-v2: parse error$/, 2],
    [['--initial-cluster', 'nonsense'], /not of the form name=peerURL/, 1],
    [['--name', 'foo', '--initial-cluster', 'bar=http://localhost:2380'], /couldn't find local name "foo" in the initial cluster configuration/, 1],
    [['--initial-cluster', 'default=http://10.0.0.9:2380'], /missing from --initial-advertise-peer-urls/, 1],
    [['--config-file', '/nope.yml'], /cannot read config file \/nope.yml/, 1],
    [['--experimental-watch-progress-notify-interval', '10x'], /^invalid value "10x" for flag -experimental-watch-progress-notify-interval: parse error$/, 2],
  ] as [string[], RegExp, number][])('bad command line %j is refused with a clear error', (argv, message, code) => {
    const err = errorOf(argv);
    expect(err.message).toMatch(message);
    expect(err.exitCode).toBe(code);
  });

  test.each([
    ['unknown: 1', /unknown key "unknown"/],
    ['heartbeat-interval: fast', /invalid value "fast" for "heartbeat-interval"/],
    ['client-transport-security:\n  bogus: 1', /unknown key "client-transport-security.bogus"/],
    ['name: [1, 2', /error parsing config file/],
    ['- a\n- b', /want a YAML mapping/],
  ])('bad config file %j is refused with a clear error', (file, message) => {
    expect(errorOf(['--config-file', 'c.yml'], {}, { 'c.yml': file }).message).toMatch(message);
  });

  test('options of etcd that this server does not act on are refused unless given their default', () => {
    expect(errorOf(['--backend-batch-limit', '1000']).message).toMatch(/--backend-batch-limit=1000 \(on the command line\) is not supported by this server/);
    expect(config(['--backend-batch-limit', '0', '--proxy', 'off']).warnings).toEqual([]);
  });

  test('--quota-backend-bytes: a signed number of bytes (0: the default quota, negative: none)', () => {
    expect(config([]).config.quotaBackendBytes).toBe(0);
    expect(config(['--quota-backend-bytes', '1048576']).config.quotaBackendBytes).toBe(1048576);
    expect(config(['--quota-backend-bytes=-1']).config.quotaBackendBytes).toBe(-1);
    expect(errorOf(['--quota-backend-bytes', '1MB']).message).toMatch(/invalid value "1MB"/);
  });

  test('--help and --version', () => {
    const h = parseConfig(['--help'], {}, noFile);
    expect(h.kind).toBe('help');
    if (h.kind === 'help') expect(h.text).toMatch(/--initial-cluster-token 'etcd-cluster'/);
    expect(parseConfig(['--version'], {}, noFile).kind).toBe('version');
  });
});

describe('the same bad command lines against the real etcd', () => {
  const cases: string[][] = [
    ['--foo'],
    ['--heartbeat-interval', 'abc'],
    ['--initial-cluster-state', 'bogus'],
    ['positional'],
    ['--election-timeout', '100'],
    ['--name', 'foo', '--initial-cluster', 'bar=http://localhost:2380'],
    // etcd 3.4 ignores its pre-v3 flags (as boolean flags: a separate word is not their value); v2.0's proxy flags are gone.
    ['--snapshot', 'foo'],
    ['--peer-addr=127.0.0.1:7001'],
    ['--bind-addr', '127.0.0.1:4001'],
    ['--cors', 'http://no-port.example'],
    ['--cors', 'http://a.example:80/path'],
    ['--cors=*,http://a.example:80'],
    ['--cors='],
    ['--logger', 'journald'],
    ['--log-outputs', '/var/log/etcd.log'],
    ['--logger=zap', '--log-outputs', 'default,stdout'],
    ['--log-outputs', 'stderr,stdout'],
    ['--log-output', 'stdout', '--log-outputs', 'stdout'],
    ['--log-output', 'stderr,stdout', '--log-outputs', 'stdout,stderr'],
  ];
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-flags-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test.each(cases)('%j: etcd and we both refuse it, with the same message and exit code', (...argv) => {
    const real = runRealEtcd([...argv, '--data-dir', path.join(dir, 'd')], dir);
    const ours = errorOf(argv);
    expect(real.status).not.toBe(0);
    // etcd wraps verification errors ("error verifying flags, X. See 'etcd --help'"); the core message is ours.
    const core = ours.message.replace(/ \(.*\)$/, '').replace(/: parse error.*$/, '').replace(/: valid values are.*$/, '');
    expect(real.stderr).toContain(core);
    if (real.status === 2 || real.status === 1) expect(ours.exitCode).toBe(real.status);
  });

  test('discovery flags: read from flags, ETCD_* and the config file; one bootstrap method only; the rules etcd applies to them', () => {
    const url = 'https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579';
    expect(config(['--discovery', url, '--discovery-proxy', 'http://10.0.0.9:8080', '--discovery-fallback', 'exit']).config.discovery).toEqual({
      url,
      proxy: 'http://10.0.0.9:8080',
      fallback: 'exit',
      srv: '',
      srvName: '',
    });
    expect(config([], { ETCD_DISCOVERY_SRV: 'example.com', ETCD_DISCOVERY_SRV_NAME: 'prod' }).config.discovery).toMatchObject({ srv: 'example.com', srvName: 'prod', fallback: 'proxy' });
    expect(config(['--config-file', '/c.yml'], {}, { '/c.yml': `discovery: ${url}\ndiscovery-fallback: exit\n` }).config.discovery).toMatchObject({ url, fallback: 'exit' });
    // Until discovery answers, the member's initial cluster is itself (etcd's temporary cluster).
    expect(config(['--name', 'n1', '--discovery', url, '--initial-advertise-peer-urls', 'http://10.0.0.1:2380']).config.initialCluster).toEqual([{ name: 'n1', peerURLs: ['http://10.0.0.1:2380'] }]);
    const conflict = 'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"';
    expect(errorOf(['--discovery', url, '--initial-cluster', 'default=http://localhost:2380']).message).toBe(conflict);
    expect(errorOf(['--discovery', url], { ETCD_DISCOVERY_SRV: 'example.com' }).message).toBe(conflict);
    expect(errorOf([], { ETCD_DISCOVERY_SRV: 'example.com', ETCD_INITIAL_CLUSTER: 'default=http://localhost:2380' }).message).toBe(conflict);
    expect(errorOf(['--config-file', '/c.yml'], {}, { '/c.yml': `discovery: ${url}\ninitial-cluster: default=http://localhost:2380\n` }).message).toBe(conflict);
    expect(errorOf(['--discovery-fallback', 'maybe']).exitCode).toBe(2);
    // As etcd: a member that may fall back to the proxy need not say what to advertise (the default is advertised).
    const listenOnly = ['--listen-client-urls', 'http://127.0.0.1:2379', '--discovery', url];
    expect(config(listenOnly).config.advertiseClientURLs).toEqual(['http://localhost:2379']);
    expect(errorOf([...listenOnly, '--discovery-fallback', 'exit']).message).toMatch(/^--advertise-client-urls is required/);
  });
});
