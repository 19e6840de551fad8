/** Errors and warnings found while reading and translating a Container Linux Config. */
import type { Position } from './yaml-positions';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  message: string;
  pos?: Position;
}

/** "error: unknown key "foo" in etcd (line 3, column 3)" */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.pos ? ` (line ${d.pos.line}, column ${d.pos.column})` : '';
  return `${d.severity}: ${d.message}${where}`;
}

/** Collects diagnostics; translation goes on after an error so that one run reports as many problems as possible. */
export class Report {
  readonly entries: Diagnostic[] = [];

  error(message: string, pos?: Position): void {
    this.entries.push({ severity: 'error', message, pos });
  }

  warn(message: string, pos?: Position): void {
    this.entries.push({ severity: 'warning', message, pos });
  }

  get errors(): Diagnostic[] {
    return this.entries.filter((d) => d.severity === 'error');
  }

  get warnings(): Diagnostic[] {
    return this.entries.filter((d) => d.severity === 'warning');
  }

  hasErrors(): boolean {
    return this.entries.some((d) => d.severity === 'error');
  }
}

/**
 * Thrown by `transpile` when the config has errors (or warnings under `strict`). It carries the whole report, in the
 * order it was found, warnings included (as ct prints them): a warning often explains an error next to it, and the
 * user fixing the errors should not meet the warnings only on the next run. The message is that report, one line
 * each.
 */
export class TranspileError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'TranspileError';
  }

  get errors(): Diagnostic[] {
    return this.diagnostics.filter((d) => d.severity === 'error');
  }

  get warnings(): Diagnostic[] {
    return this.diagnostics.filter((d) => d.severity === 'warning');
  }
}
