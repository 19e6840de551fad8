/** The transpiler: CLC YAML text in, Ignition config (spec 3.3.0 or 2.2.0) out. */
import { clcSchema } from './clc-types';
import { formatDiagnostic, Report, TranspileError, type Diagnostic } from './diagnostics';
import { SourceMap } from './emit-util';
import { emitV2, SPEC_V2 } from './emit-v2';
import { emitV3, SPEC_V3 } from './emit-v3';
import { ModelBuilder } from './model';
import { checkIgnitionConfig, formatJsonPath, type IgnitionProblem } from './rules/ignition-rules';
import { findPlatform, platformUnits, PLATFORMS } from './platforms';
import type { TranslateContext } from './sections/context';
import { translateDocker } from './sections/docker';
import { translateEtcd } from './sections/etcd';
import { translateFlannel } from './sections/flannel';
import { translateIgnitionSection } from './sections/ignition-section';
import { translateNetworkd } from './sections/networkd';
import { translatePasswd } from './sections/passwd';
import { translateStorage } from './sections/storage';
import { translateSystemd } from './sections/systemd';
import { translateUpdate } from './sections/update';
import { ConfigError, parseYaml } from './yaml-positions';

export const SPEC_VERSIONS = [SPEC_V3, SPEC_V2] as const;
export type SpecVersion = (typeof SPEC_VERSIONS)[number];

export interface TranspileOptions {
  /** Output spec; "3.3.0" by default. "3.3" and "2.2" are accepted too. */
  spec?: string;
  /** Platform for `{PRIVATE_IPV4}`-style templating (ct's --platform). */
  platform?: string;
  /** Directory that `contents.local` paths are relative to (ct's --files-dir). */
  filesDir?: string;
  /** Treat warnings as errors. */
  strict?: boolean;
}

export interface TranspileResult {
  config: object;
  /** Formatted warnings ("warning: ... (line L, column C)"). */
  warnings: string[];
  diagnostics: Diagnostic[];
}

/** "3.3", "3.3.0", "2.2", "2.2.0" → the full spec version; undefined if not supported. */
export function normalizeSpec(spec: string | undefined): SpecVersion | undefined {
  if (spec === undefined) return SPEC_V3;
  return SPEC_VERSIONS.find((v) => v === spec || v === `${spec}.0`);
}

/**
 * Holds the emitted config to Ignition's own rules, as the original ct did, and reports what Ignition would refuse (or
 * warn about) at the YAML it came from. What the CLC's checks let through reaches here: a unit file Ignition cannot
 * read, a data URL or URL Go cannot parse, a device path that is not clean, a partition without number or label...
 */
function checkOutput(config: object, src: SourceMap, report: Report): void {
  const problems = checkIgnitionConfig(config);
  // Ignition checks a required source twice, at the resource and at its source: the second, closer one is enough.
  const restated = (p: IgnitionProblem): boolean =>
    problems.some((q) => q.message === p.message && q.path.length > p.path.length && p.path.every((part, i) => q.path[i] === part));
  for (const p of problems) {
    if (restated(p)) continue;
    const pos = src.positionOf(config, p.path, p.line);
    const where = formatJsonPath(p.path) + (p.line === undefined ? '' : ` (line ${p.line + 1} of the text)`);
    const message = `Ignition ${p.severity === 'error' ? 'rejects' : 'warns about'} ${where}: ${p.message}`;
    if (p.severity === 'error') report.error(message, pos);
    else report.warn(message, pos);
  }
}

/**
 * Transpiles a Container Linux Config. Throws TranspileError listing every problem (with line and column where it
 * has one) when there are errors, or warnings under `strict`; the error carries the warnings too.
 */
export function transpile(yamlText: string, options: TranspileOptions = {}): TranspileResult {
  const report = new Report();
  const spec = normalizeSpec(options.spec);
  if (!spec) report.error(`unsupported Ignition spec version "${options.spec}" (supported: ${SPEC_VERSIONS.join(', ')})`);
  const platform = options.platform === undefined ? undefined : findPlatform(options.platform);
  if (options.platform !== undefined && !platform) {
    report.error(`unknown platform "${options.platform}" (known: ${PLATFORMS.map((p) => p.name).join(', ')})`);
  }
  if (report.hasErrors()) throw new TranspileError(report.entries);

  let root;
  try {
    root = parseYaml(yamlText);
  } catch (e) {
    if (e instanceof ConfigError) throw new TranspileError([{ severity: 'error', message: e.reason, pos: e.pos }]);
    throw e;
  }
  const builder = new ModelBuilder(report);
  const ctx: TranslateContext = { report, out: builder, platform, filesDir: options.filesDir };
  const clc = root === null ? undefined : clcSchema(root, report, '');
  if (clc && !report.hasErrors()) {
    if (clc.ignition) translateIgnitionSection(clc.ignition, ctx);
    if (clc.storage) translateStorage(clc.storage, ctx);
    if (clc.systemd) translateSystemd(clc.systemd, ctx);
    if (clc.networkd) translateNetworkd(clc.networkd, ctx);
    if (clc.passwd) translatePasswd(clc.passwd, ctx);
    if (clc.etcd) translateEtcd(clc.etcd, ctx);
    if (clc.flannel) translateFlannel(clc.flannel, ctx);
    if (clc.docker) translateDocker(clc.docker, ctx);
    if (clc.update || clc.locksmith) translateUpdate(clc.update, clc.locksmith, ctx);
  }
  if (platform && !report.hasErrors()) for (const u of platformUnits(platform)) builder.addUnit(u);
  const src = new SourceMap();
  const config = report.hasErrors() ? {} : spec === SPEC_V2 ? emitV2(builder.model, report, src) : emitV3(builder.model, report, src);
  if (!report.hasErrors()) checkOutput(config, src, report);
  const failing = report.entries.filter((d) => d.severity === 'error' || options.strict);
  if (failing.length > 0) {
    // The whole report, as ct prints it: the warnings found along with the errors are not dropped.
    throw new TranspileError(options.strict ? report.entries.map((d) => ({ ...d, severity: 'error' as const })) : report.entries);
  }
  return { config, warnings: report.warnings.map(formatDiagnostic), diagnostics: report.entries };
}
