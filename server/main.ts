#!/usr/bin/env -S node --min-semi-space-size=16
/**
 * The `etcd` command: flags, ETCD_* variables and --config-file into a configuration (server/config/), then one
 * member started and served by server/embed/ until a signal stops it.
 */
// First: the young generation is held small while the modules below load.
import { letYoungGenerationGrow } from './pkg/young-generation';
import * as fs from 'node:fs';
import { ConfigError, parseConfig } from './config';
import { DiscoveryError, explainDiscoveryError } from './discovery';
import { RunningMember, startMember } from './embed/etcd';
import { LogOutputError, closeLogOutputs, makeLogger } from './embed/logger';
import { VERSION } from './version';

export { VERSION };

const USAGE_LINE = `Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.

  etcd gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  etcd grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.
`;

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // The modules are loaded: the young generation grows as V8 would have it (replaying a long log needs it).
  letYoungGenerationGrow();
  // The subcommands etcd dispatches before its flags (etcdmain.Main).
  // (`etcd gateway` is loaded only when asked for: the server does not need it.)
  if (argv[0] === 'gateway') {
    const { gatewayMain } = require('./etcdmain/gateway') as typeof import('./etcdmain/gateway');
    return gatewayMain(argv.slice(1), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
  }
  if (argv[0] === 'grpc-proxy') {
    process.stderr.write('etcd grpc-proxy (the v3 gRPC L7 proxy) is not supported by this etcd; etcd gateway (the L4 TCP proxy) is\n');
    return 1;
  }
  let parsed;
  try {
    parsed = parseConfig(argv, env, (p) => fs.readFileSync(p, 'utf8'));
  } catch (err) {
    if (err instanceof ConfigError && err.exitCode === 2) {
      process.stderr.write(`${err.message}\n${USAGE_LINE}\n`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd: error verifying flags, ${err.message}. See 'etcd --help'.\n`);
      return err.exitCode;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`etcd Version: ${VERSION}\nAPI Version: 3.4\nNode Version: ${process.version}\n`);
    return 0;
  }
  const cfg = parsed.config;
  let logger;
  try {
    logger = makeLogger({ logger: cfg.logger, outputs: cfg.logOutputs, level: cfg.logLevel, packageLevels: cfg.logPackageLevels });
  } catch (err) {
    if (!(err instanceof LogOutputError)) throw err;
    process.stderr.write(`etcd: error verifying flags, ${err.message}. See 'etcd --help'.\n`);
    return 1;
  }
  const log = logger.child({ pkg: 'etcdmain' });
  for (const w of parsed.warnings) log.warn(w);
  log.info('starting etcd', { 'etcd-version': VERSION, 'node-version': process.version, capnslog: `etcd Version: ${VERSION}, Node Version: ${process.version}` });
  let member: RunningMember;
  try {
    member = await startMember(cfg, logger);
  } catch (err) {
    if (err instanceof DiscoveryError) {
      // As etcd's etcdmain: what the discovery error means for this token, then exit 1.
      for (const l of explainDiscoveryError(err, cfg)) log.log(l.level, l.msg, { ...l.fields, capnslog: l.capnslog });
      await closeLogOutputs(logger);
      process.stderr.write(`etcd: ${err.message}\n`);
      return 1;
    }
    log.error('failed to start', { error: (err as Error).message, capnslog: (err as Error).message });
    await closeLogOutputs(logger);
    process.stderr.write(`etcd: ${(err as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      const name = sig === 'SIGTERM' ? 'terminated' : 'interrupt';
      log.info('received signal; shutting down', { signal: name, pkg: 'pkg/osutil', capnslog: `received ${name} signal, shutting down...` });
      member.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    member.server.once('removed', () => member.stop().then(resolve, resolve));
  });
  await closeLogOutputs(logger);
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`etcd: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
