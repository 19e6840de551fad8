/**
 * The V8 flags the `etcd` command runs with (server/node-flags.ts) are the same wherever it is started (its shebang,
 * `npm start`; the image's entrypoint is checked in test/images/dockerfile-lint.test.ts), the shebang starts it, and
 * node takes the flags to mean what server/node-flags.ts says: the young generation starts at 16 MiB a semi-space.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { NODE_FLAGS } from '../../server/node-flags';

const ROOT = path.join(__dirname, '../..');

test("the shebang of the etcd command and `npm start` carry the flags", () => {
  const shebang = readFileSync(path.join(ROOT, 'server/main.ts'), 'utf8').split('\n')[0];
  expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
  expect(start).toContain(`node ${NODE_FLAGS.join(' ')} dist/server/main.js `);
});

test('the built command starts through its shebang (env -S splits the flags from node)', () => {
  const main = path.join(ROOT, 'dist/server/main.js');
  const shebang = readFileSync(main, 'utf8').split('\n')[0];
  expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  // As the kernel runs it: the interpreter and the one argument after it, then the script and its arguments.
  const [interpreter, ...rest] = shebang.slice(2).split(' ');
  const r = spawnSync(interpreter, [rest.join(' '), main, '--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` } });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^etcd Version: /m);
});

test('node starts the young generation at 16 MiB a semi-space with the flags, at 1 MiB without', () => {
  const newSpace = (flags: readonly string[]): number => {
    const r = spawnSync(process.execPath, [...flags, '-e', "process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size))"], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    return Number(r.stdout);
  };
  const MiB = 1024 * 1024;
  expect(newSpace(NODE_FLAGS)).toBeGreaterThanOrEqual(16 * MiB);
  expect(newSpace([])).toBeLessThan(16 * MiB);
});
