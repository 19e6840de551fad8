/**
 * Every flag works or is refused: an option the server accepts but ignores is a trap. The option table
 * (server/config/options.ts) is enumerated: each option must be read into the ServerConfig or marked unsupported, and
 * an unsupported one given a value other than its default (flag, ETCD_* variable or config file) stops the start.
 * And etcd's own sample config file (etcd.conf.yml.sample of etcd 3.4.23, kept as a fixture) parses and starts a
 * member, as etcd's e2e TestEtcdExampleConfig expects, side by side with Debian's etcd.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, OPTIONS, OptionSpec, envName, parseConfig } from '../../server/config';
import { optionsReadByBuildConfig } from '../../server/config/parse';
import { eventually } from '../support/cluster';
import { request } from '../support/http';
import { RunningEtcd, freePort, spawnOurEtcd, spawnRealEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const SAMPLE = path.join(__dirname, 'fixtures', 'etcd.conf.yml.sample');

/** A value of the option's kind other than its default, as a flag would give it. */
function otherValue(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'bool':
      return String(!spec.default);
    case 'uint':
      return String((spec.default as number) + 1);
    case 'enum':
      return spec.values!.find((v) => v !== spec.default)!;
    case 'urls':
      return 'http://127.0.0.1:1';
    default:
      return `${String(spec.default)}1`;
  }
}

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected the start to be refused');
}

const noFile = (p: string): string => {
  throw new Error(`no file ${p}`);
};

describe('every option in the table is read or marked unsupported', () => {
  const read = optionsReadByBuildConfig();

  test.each(OPTIONS.map((o) => [o.name, o] as const))('--%s', (_name, spec) => {
    if (spec.supported === false) {
      // Marked unsupported: then nothing reads it (else the mark is stale).
      expect({ option: spec.name, read: read.has(spec.name) }).toEqual({ option: spec.name, read: false });
    } else {
      expect({ option: spec.name, read: read.has(spec.name) }).toEqual({ option: spec.name, read: true });
    }
  });
});

describe('an unsupported option given a value other than its default stops the start', () => {
  const unsupported = OPTIONS.filter((o) => o.supported === false && !o.tolerated);

  test('there are such options (the table marks them)', () => {
    expect(unsupported.length).toBeGreaterThan(10);
  });

  test.each(unsupported.map((o) => [o.name, o] as const))('--%s', (name, spec) => {
    const v = otherValue(spec);
    const onFlag = refusal(() => parseConfig([`--${name}=${v}`], {}, noFile));
    expect(onFlag.message).toMatch(new RegExp(`^--${name}=.* \\(on the command line\\) is not supported by this server`));
    expect(onFlag.exitCode).toBe(1);
    const inEnv = refusal(() => parseConfig([], { [envName(name)]: v }, noFile));
    expect(inEnv.message).toContain(`(in the environment (${envName(name)})) is not supported by this server`);
    const inFile = refusal(() => parseConfig(['--config-file', 'c.yml'], {}, () => `${name}: ${JSON.stringify(spec.kind === 'uint' ? Number(v) : spec.kind === 'bool' ? v === 'true' : v)}\n`));
    expect(inFile.message).toContain('(in the config file c.yml) is not supported by this server');
    // Its default, given explicitly, is fine.
    const def = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    expect(parseConfig([`--${name}=${def}`], {}, noFile).kind).toBe('config');
  });

  test.each(OPTIONS.filter((o) => o.tolerated).map((o) => [o.name, o] as const))('--%s only warns, with the reason', (name, spec) => {
    const r = parseConfig([`--${name}=${otherValue(spec)}`], {}, noFile);
    if (r.kind !== 'config') throw new Error('expected a config');
    expect(r.warnings.join('\n')).toContain(`is not supported by this server and has no effect: ${spec.tolerated}`);
  });

  test("etcd's pre-v3 flags that etcd 3.4 itself ignores are ignored with etcd's warning", () => {
    const r = parseConfig(['--snapshot', '--peer-heartbeat-interval=5', '--name', 'n'], {}, noFile);
    if (r.kind !== 'config') throw new Error('expected a config');
    expect(r.warnings).toEqual(['flag "-snapshot" is no longer supported - ignoring.', 'flag "-peer-heartbeat-interval" is no longer supported - ignoring.']);
    expect(r.config.name).toBe('n');
  });
});

describe('new flags reach the ServerConfig', () => {
  const cfg = (argv: string[], env: Record<string, string> = {}) => {
    const r = parseConfig(argv, env, noFile);
    if (r.kind !== 'config') throw new Error('expected a config');
    return r;
  };

  test('defaults as etcd 3.4', () => {
    const { config } = cfg([]);
    expect({ cors: config.cors, hostWhitelist: config.hostWhitelist, logger: config.logger, logOutputs: config.logOutputs, tick: config.initialElectionTickAdvance, metrics: config.metrics, maxRequestBytes: config.maxRequestBytes, maxWals: config.maxWals }).toEqual({
      cors: ['*'], hostWhitelist: ['*'], logger: 'capnslog', logOutputs: ['default'], tick: true, metrics: 'basic', maxRequestBytes: 1572864, maxWals: 5,
    });
  });

  test('lists as etcd parses them: unique values; an empty --host-whitelist is one empty host', () => {
    expect(cfg(['--host-whitelist=a,b,a']).config.hostWhitelist).toEqual(['a', 'b']);
    expect(cfg(['--host-whitelist=']).config.hostWhitelist).toEqual(['']);
    expect(cfg(['--cors=http://a.example:80, http://b.example:81']).config.cors).toEqual(['http://a.example:80', 'http://b.example:81']);
    expect(cfg(['--logger=zap', '--log-outputs=stderr,/var/log/etcd.log']).config.logOutputs).toEqual(['stderr', '/var/log/etcd.log']);
    expect(cfg([], { ETCD_METRICS: 'extensive', ETCD_INITIAL_ELECTION_TICK_ADVANCE: 'false' }).config).toMatchObject({ metrics: 'extensive', initialElectionTickAdvance: false });
  });

  test('--log-package-levels: capnslog levels by package; malformed, or with zap, it is warned about as etcd does', () => {
    expect([...cfg(['--log-package-levels=etcdserver=DEBUG,*=W']).config.logPackageLevels]).toEqual([['etcdserver', 4], ['*', 1]]);
    const bad = cfg(['--log-package-levels=etcdserver:DEBUG']);
    expect(bad.config.logPackageLevels.size).toBe(0);
    expect(bad.warnings).toContain("couldn't parse log level string: oddly structured `pkg=level` option: etcdserver:DEBUG, continuing with default levels");
    expect(cfg(['--logger=zap', '--log-package-levels=etcdserver=DEBUG']).warnings.join('\n')).toMatch(/log-package-levels.*ignored with --logger=zap/);
  });

  test('--max-request-bytes above 10 MiB is warned about, as etcd does', () => {
    expect(cfg(['--max-request-bytes=20000000']).warnings).toContain('MaxRequestBytes 20000000 exceeds maximum recommended size 10485760');
  });
});

describe("etcd's own sample config file (etcd.conf.yml.sample)", () => {
  test('parses: a YAML list for log-outputs, zap logging, the unsupported values it sets only warned about', () => {
    const r = parseConfig(['--config-file', SAMPLE], {}, (p) => readFileSync(p, 'utf8'));
    if (r.kind !== 'config') throw new Error('expected a config');
    expect(r.config).toMatchObject({ name: 'default', logger: 'zap', logOutputs: ['stderr'], cors: ['*'], hostWhitelist: ['*'], snapshotCount: 10000, strictReconfigCheck: false, maxWals: 5 });
    // auto-compaction-retention: "1" (periodic): one hour, honoured by the v3 store's compactor.
    expect(r.config.autoCompaction).toEqual({ mode: 'periodic', retention: 3600_000 });
    expect(r.warnings.filter((w) => /not supported by this server and has no effect/.test(w)).map((w) => w.split('=')[0])).toEqual(['--enable-pprof']);
  });

  describe('starts a member, as with etcd (TestEtcdExampleConfig)', () => {
    let dir: string;
    const running: RunningEtcd[] = [];
    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'sample-'));
    });
    afterAll(async () => {
      await Promise.all(running.map((m) => m.stop()));
      rmSync(dir, { recursive: true, force: true });
    });

    test.each([['Debian etcd', spawnRealEtcd], ['ours', spawnOurEtcd]] as const)('%s', async (who, spawn) => {
      // Only what must differ between two members on one host: its ports (free ones, in the initial cluster too, which
      // etcd defaults to default=http://localhost:2380) and its data dir.
      const [client, peer] = [await freePort(), await freePort()];
      const clientURL = `http://127.0.0.1:${client}`;
      const peerURL = `http://127.0.0.1:${peer}`;
      const dataDir = path.join(dir, who.replace(/ /g, '-'));
      const text = readFileSync(SAMPLE, 'utf8').replace(/http:\/\/localhost:2379/g, clientURL).replace(/http:\/\/localhost:2380/g, peerURL).replace(/^data-dir:$/m, `data-dir: ${dataDir}`).replace(/^initial-cluster:$/m, `initial-cluster: default=${peerURL}`);
      const file = path.join(dir, `${who.replace(/ /g, '-')}.yml`);
      writeFileSync(file, text);
      const m = await spawn(['--config-file', file], { clientURL, peerURL, dataDir });
      running.push(m);
      // The two lines etcd's e2e suite waits for, in zap's JSON (the sample sets logger: zap).
      await eventually('the readiness lines', async () => (/enabled capabilities for version/.test(m.output()) && /published/.test(m.output()) ? true : undefined));
      const lines = m.output().split('\n').filter((l) => l.startsWith('{'));
      const ready = lines.map((l) => JSON.parse(l) as { level: string; ts: string; msg: string }).filter((l) => /enabled capabilities for version|published/.test(l.msg));
      expect(ready.length).toBeGreaterThanOrEqual(2);
      for (const l of ready) expect(l).toMatchObject({ level: 'info', ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$/) });
    });
  });
});

describe('--max-request-bytes limits what etcd 3.4 limits: gRPC and v3 proposals, not v2 bodies', () => {
  let dir: string;
  const running: RunningEtcd[] = [];
  afterAll(async () => {
    await Promise.all(running.map((m) => m.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a v2 write four times the limit is taken by both', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'max-request-'));
    const real = await startRealEtcd(path.join(dir, 'real'), ['--max-request-bytes=1024']);
    running.push(real);
    const ours = await startOurEtcd(path.join(dir, 'ours'), ['--max-request-bytes=1024']);
    running.push(ours);
    const value = 'v'.repeat(4096);
    const statuses = await Promise.all([real, ours].map(async (m) => (await request(m.clientURL, 'PUT', '/v2/keys/big', { form: `value=${value}` })).status));
    expect(statuses).toEqual([201, 201]);
    const read = await request(ours.clientURL, 'GET', '/v2/keys/big');
    expect((JSON.parse(read.body) as { node: { value: string } }).node.value).toBe(value);
  });
});
