/**
 * Debian's etcd and ours side by side, for a describe block of a side-by-side test: a fresh member of each (own data
 * dir) started before the tests with the clients `connect` makes for it, stopped after them; `same` runs one step on
 * both at once and expects the same answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startOurEtcd, startRealEtcd, type RunningEtcd } from './real-etcd';

export interface SideBase {
  name: 'etcd' | 'ours';
  proc: RunningEtcd;
}

export interface SideBySide<S extends SideBase> {
  /** Debian's etcd first, then ours (once beforeAll has run). */
  sides(): S[];
  /** Runs the same step on both and expects the same answer; returns it. */
  same(step: (s: S) => Promise<unknown>): Promise<unknown>;
}

export function sideBySide<S extends SideBase>(
  prefix: string,
  connect: (base: SideBase, target: string) => S,
  close: (s: S) => void,
  extraArgs: string[] = [],
): SideBySide<S> {
  let dirs: string[] = [];
  let sides: S[] = [];
  beforeAll(async () => {
    const open = async (name: 'etcd' | 'ours', start: typeof startRealEtcd): Promise<S> => {
      const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-${name}-`));
      dirs.push(dir);
      const proc = await start(dir, extraArgs);
      return connect({ name, proc }, proc.clientURL.replace('http://', ''));
    };
    sides = await Promise.all([open('etcd', startRealEtcd), open('ours', startOurEtcd)]);
  });
  afterAll(async () => {
    for (const s of sides) {
      close(s);
      await s.proc.stop();
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    sides = [];
    dirs = [];
  });
  return {
    sides: () => sides,
    async same(step) {
      const [theirs, ours] = await Promise.all(sides.map(step));
      expect(ours).toEqual(theirs);
      return ours;
    },
  };
}
