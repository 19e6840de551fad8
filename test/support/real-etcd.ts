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

export interface RunningEtcd {
  clientURL: string;
  peerURL: string;
  stop(): Promise<void>;
}

/**
 * Starts the real etcd (v2 enabled) on free loopback ports with a fresh data dir and waits until /health answers.
 * Every instance started with the same name and token gets the same member and cluster IDs.
 */
export async function startRealEtcd(dataDir: string, extraArgs: string[] = []): Promise<RunningEtcd> {
  const { spawn } = await import('node:child_process');
  const http = await import('node:http');
  const [cport, pport] = [await freePort(), await freePort()];
  const clientURL = `http://127.0.0.1:${cport}`;
  const peerURL = `http://127.0.0.1:${pport}`;
  const proc = spawn(
    requireRealEtcd(),
    [
      '--data-dir', dataDir, '--enable-v2=true',
      '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
      '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
      '--initial-cluster', `default=${peerURL}`,
      ...extraArgs,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const healthy = () =>
    new Promise<boolean>((resolve) => {
      http.get(`${clientURL}/health`, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
      }).on('error', () => resolve(false));
    });
  const deadline = Date.now() + 20000;
  while (!(await healthy())) {
    if (proc.exitCode !== null) throw new Error(`real etcd exited with ${proc.exitCode} before becoming healthy`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('real etcd did not become healthy within 20s');
    }
    await new Promise<void>((r) => setTimeout(r, 50)); // poll until /health answers
  }
  return {
    clientURL,
    peerURL,
    stop: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
