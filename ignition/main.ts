#!/usr/bin/env node
/**
 * `ct`: transpiles a Container Linux Config (YAML) into an Ignition config (JSON).
 *
 *   ct [--in-file FILE] [--out-file FILE] [--pretty] [--strict] [--platform NAME] [--files-dir DIR]
 *      [--ignition-version 3.3.0|2.2.0] [--version] [--help]
 *
 * Reads stdin and writes stdout unless given files; warnings and errors go to stderr. Exit status: 0 on success,
 * 1 when the config has errors (or warnings under --strict), 2 for a bad command line or unreadable files.
 */
import * as fs from 'node:fs';
import { version } from '../package.json';
import { formatDiagnostic, TranspileError } from './diagnostics';
import { serialize } from './emit-util';
import { PLATFORMS } from './platforms';
import { SPEC_VERSIONS, transpile } from './transpile';

const USAGE = `Usage: ct [options]
Transpile a Container Linux Config (YAML) into an Ignition config (JSON).

Options:
  --in-file FILE            read the config from FILE (default: stdin)
  --out-file FILE           write the Ignition config to FILE (default: stdout)
  --pretty                  indent the JSON output
  --strict                  fail on warnings
  --platform NAME           platform for templating such as {PRIVATE_IPV4}
                            (${PLATFORMS.map((p) => p.name).join(', ')})
  --files-dir DIR           directory that storage.files[].contents.local paths are relative to
  --ignition-version VER    output spec: ${SPEC_VERSIONS.join(' (default) or ')} (alias: --spec; 3.3 and 2.2 accepted)
  --version                 print the version and exit
  --help                    show this help
`;

/** What --version prints, in the original's form ("ct v0.9.0"). */
export const VERSION_LINE = `ct v${version}`;

export interface CliOptions {
  inFile?: string;
  outFile?: string;
  pretty: boolean;
  strict: boolean;
  platform?: string;
  filesDir?: string;
  spec?: string;
  help: boolean;
  version: boolean;
}

class UsageError extends Error {}

const VALUE_FLAGS: Record<string, keyof CliOptions> = {
  'in-file': 'inFile',
  'out-file': 'outFile',
  platform: 'platform',
  'files-dir': 'filesDir',
  'ignition-version': 'spec',
  spec: 'spec',
};
const BOOLEAN_FLAGS: Record<string, keyof CliOptions> = { pretty: 'pretty', strict: 'strict', help: 'help', version: 'version' };

/** Parses `--flag value`, `--flag=value` and `-flag` (Go's flag package, which ct used, takes one dash too). */
export function parseArgs(argv: string[]): CliOptions {
  const opts: CliOptions = { pretty: false, strict: false, help: false, version: false };
  const values = opts as unknown as Record<string, string | boolean | undefined>;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"`);
    const [, name, inline] = m;
    if (name in BOOLEAN_FLAGS) {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') throw new UsageError(`--${name} takes no value`);
      values[BOOLEAN_FLAGS[name]] = inline !== 'false';
    } else if (name in VALUE_FLAGS) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values[VALUE_FLAGS[name]] = value;
    } else {
      throw new UsageError(`unknown flag "${arg}"`);
    }
  }
  return opts;
}

export function run(argv: string[]): number {
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`ct: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts.version) {
    process.stdout.write(`${VERSION_LINE}\n`);
    return 0;
  }
  let input: string;
  try {
    input = fs.readFileSync(opts.inFile ?? 0, 'utf8');
  } catch (e) {
    process.stderr.write(`ct: cannot read ${opts.inFile ?? 'stdin'}: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const result = transpile(input, { spec: opts.spec, platform: opts.platform, filesDir: opts.filesDir, strict: opts.strict });
    for (const w of result.warnings) process.stderr.write(`${w}\n`);
    const text = serialize(result.config, opts.pretty);
    if (opts.outFile) fs.writeFileSync(opts.outFile, text);
    else process.stdout.write(text);
    return 0;
  } catch (e) {
    if (e instanceof TranspileError) {
      // Every warning and error, in the order found, as ct prints its report.
      for (const d of e.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
      return 1;
    }
    process.stderr.write(`ct: ${(e as Error).message}\n`);
    return 2;
  }
}

if (require.main === module) {
  process.exitCode = run(process.argv.slice(2));
}
