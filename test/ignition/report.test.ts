/** What `transpile` reports: a failed run's error carries the whole report, warnings included, as ct prints it. */
import { transpile, TranspileError } from '../../ignition';
import { yaml } from './helpers';

/** A config with a warning (no mode) found in the same pass as an error (masked and enabled). */
const WARNING_AND_ERROR = yaml`
  storage:
    files:
      - path: /etc/a
  systemd:
    units:
      - name: a.service
        mask: true
        enabled: true
`;

function thrown(run: () => unknown): TranspileError {
  try {
    run();
  } catch (e) {
    if (e instanceof TranspileError) return e;
    throw e;
  }
  throw new Error('expected a TranspileError');
}

describe('the report of a failed transpile', () => {
  test('carries the warnings along with the errors, in the order found', () => {
    const e = thrown(() => transpile(WARNING_AND_ERROR));
    const warning = {
      severity: 'warning',
      message: 'storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644',
      pos: { line: 3, column: 7 },
    };
    const error = { severity: 'error', message: 'systemd.units[0]: a unit cannot be both masked and enabled', pos: { line: 7, column: 13 } };
    expect(e.diagnostics).toEqual([warning, error]);
    expect(e.warnings).toEqual([warning]);
    expect(e.errors).toEqual([error]);
    expect(e.message).toBe(
      [
        'warning: storage.files[0]: mode unspecified for file "/etc/a", defaulting to 0644 (line 3, column 7)',
        'error: systemd.units[0]: a unit cannot be both masked and enabled (line 7, column 13)',
      ].join('\n'),
    );
  });

  test('under strict, the warnings are errors', () => {
    const e = thrown(() => transpile(WARNING_AND_ERROR, { strict: true }));
    expect(e.diagnostics.map((d) => d.severity)).toEqual(['error', 'error']);
    expect(e.warnings).toEqual([]);
  });
});
