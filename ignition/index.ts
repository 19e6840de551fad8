/** The Container Linux Config → Ignition transpiler (`ct`), as a library. */
export { transpile, normalizeSpec, SPEC_VERSIONS } from './transpile';
export type { TranspileOptions, TranspileResult, SpecVersion } from './transpile';
export { TranspileError, formatDiagnostic } from './diagnostics';
export type { Diagnostic, Severity } from './diagnostics';
export { serialize } from './emit-util';
export { PLATFORMS, findPlatform } from './platforms';
export type { Platform } from './platforms';
export { ETCD_OPTIONS } from './sections/etcd';
