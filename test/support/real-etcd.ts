/** Helpers for tests that use Debian's real etcd (package etcd-server) as the reference. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as net from 'node:net';

export const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';

/** Fails loudly (never skips) when the reference binary is missing: CI installs it through .ci/run. */
export function requireRealEtcd(): string {
  if (!existsSync(REAL_ETCD)) {
    throw new Error(`${REAL_ETCD} is missing: install Debian's etcd-server (apt-get install -y etcd-server), as .ci/run does`);
  }
  return REAL_ETCD;
}

/** Runs the real etcd with args, for commands that exit by themselves (bad flags); bounded by a timeout. */
export function runRealEtcd(args: string[], cwd: string): { status: number | null; stderr: string } {
  const r = spawnSync(requireRealEtcd(), args, { cwd, encoding: 'utf8', timeout: 15000 });
  return { status: r.status, stderr: `${r.stderr}${r.stdout}` };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function realEtcdVersion(): string {
  return execFileSync(requireRealEtcd(), ['--version'], { encoding: 'utf8' });
}
