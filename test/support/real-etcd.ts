/** Helpers for tests that use Debian's real etcd (package etcd-server) as the reference. */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

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

/**
 * A port for a test member to listen on. Ports come from below the kernel's ephemeral range (32768+ here), so an
 * outgoing connection can never be holding one, and each jest worker has its own slice, so two test files running
 * side by side never hand out the same port. Each is checked free by binding it before it is handed out.
 */
const PORTS_BASE = 20000;
const PORTS_PER_WORKER = 600;
/** Read when a port is asked for: a script outside jest (the robustness runs) picks its own slice first. */
const workerSlice = () => (Number(process.env.JEST_WORKER_ID ?? '1') - 1) % 20;
let nextPortOffset = Math.floor(Math.random() * PORTS_PER_WORKER);

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORTS_PER_WORKER; tries++) {
    const port = PORTS_BASE + workerSlice() * PORTS_PER_WORKER + (nextPortOffset++ % PORTS_PER_WORKER);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port left in this jest worker\'s slice');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function realEtcdVersion(): string {
  return execFileSync(requireRealEtcd(), ['--version'], { encoding: 'utf8' });
}

export interface RunningEtcd {
  clientURL: string;
  peerURL: string;
  dataDir: string;
  pid: number;
  /** What the process wrote to stdout and stderr so far. */
  output(): string;
  /** kill -9, and wait for the exit. */
  stop(): Promise<void>;
  /** Sends a signal and resolves with the exit code (or signal name). */
  signal(sig: NodeJS.Signals): Promise<number | string>;
  /** Resolves with the exit code (or signal name) when the process ends by itself. */
  exited: Promise<number | string>;
}

/**
 * The repository root, from test/support (jest) or from dist/test/support (the compiled robustness script): the one
 * with a tsconfig.json (dist/ has a package.json too, copied there by the build).
 */
const ROOT = existsSync(path.join(__dirname, '..', '..', 'tsconfig.json')) ? path.join(__dirname, '..', '..') : path.join(__dirname, '..', '..', '..');

/** Our server, as built by `npm run build` (npm test builds first). */
export const OUR_ETCD = path.join(ROOT, 'dist', 'server', 'main.js');

/** Starts our etcd command (the built binary) the way startRealEtcd starts the real one. */
export function startOurEtcd(dataDir: string, extraArgs: string[] = [], ports?: { client: number; peer: number }): Promise<RunningEtcd> {
  if (!existsSync(OUR_ETCD)) throw new Error(`${OUR_ETCD} is missing: run npm run build first (npm test does)`);
  return startEtcdProcess(process.execPath, [OUR_ETCD], dataDir, extraArgs, ports);
}

/**
 * Starts the real etcd (v2 enabled) on free loopback ports with a fresh data dir and waits until /health answers.
 * Every instance started with the same name and token gets the same member and cluster IDs.
 */
export function startRealEtcd(dataDir: string, extraArgs: string[] = [], ports?: { client: number; peer: number }): Promise<RunningEtcd> {
  return startEtcdProcess(requireRealEtcd(), [], dataDir, extraArgs, ports);
}

async function startEtcdProcess(
  command: string,
  prefix: string[],
  dataDir: string,
  extraArgs: string[],
  ports?: { client: number; peer: number },
): Promise<RunningEtcd> {
  const cport = ports?.client ?? (await freePort());
  const pport = ports?.peer ?? (await freePort());
  const clientURL = `http://127.0.0.1:${cport}`;
  const peerURL = `http://127.0.0.1:${pport}`;
  const args = [
    ...prefix,
    '--data-dir', dataDir, '--enable-v2=true',
    '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
    '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
    '--initial-cluster', `default=${peerURL}`,
    ...extraArgs,
  ];
  return spawnEtcd(command, args, { clientURL, peerURL, dataDir });
}

/** Our etcd with exactly these arguments; resolves once `clientURL`/health answers (or `healthy: false`: once it listens). */
export function spawnOurEtcd(args: string[], where: { clientURL: string; peerURL: string; dataDir: string }, o: { healthy?: boolean; wait?: boolean; cwd?: string } = {}): Promise<RunningEtcd> {
  if (!existsSync(OUR_ETCD)) throw new Error(`${OUR_ETCD} is missing: run npm run build first (npm test does)`);
  return spawnEtcd(process.execPath, [OUR_ETCD, ...args], where, o);
}

/** The real etcd with exactly these arguments (see spawnOurEtcd). */
export function spawnRealEtcd(args: string[], where: { clientURL: string; peerURL: string; dataDir: string }, o: { healthy?: boolean; wait?: boolean; cwd?: string } = {}): Promise<RunningEtcd> {
  return spawnEtcd(requireRealEtcd(), args, where, o);
}

export async function spawnEtcd(
  command: string,
  args: string[],
  where: { clientURL: string; peerURL: string; dataDir: string },
  o: { healthy?: boolean; wait?: boolean; cwd?: string } = {},
): Promise<RunningEtcd> {
  const { clientURL, peerURL, dataDir } = where;
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: o.cwd });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const ready = () =>
    new Promise<boolean>((resolve) => {
      const req = http.get(`${clientURL}/health`, { timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(o.healthy === false || (res.statusCode === 200 && body.includes('true'))));
      });
      req.on('timeout', () => req.destroy(new Error('no answer')));
      req.on('error', () => resolve(false));
    });
  const deadline = Date.now() + 20000;
  while (o.wait !== false && !(await ready())) {
    if (proc.exitCode !== null) throw new Error(`${command} exited with ${proc.exitCode} before becoming healthy:\n${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${command} did not become healthy within 20s:\n${out}`);
    }
    await new Promise<void>((r) => setTimeout(r, 50)); // poll until /health answers
  }
  return {
    clientURL,
    peerURL,
    dataDir,
    pid: proc.pid!,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    signal: async (sig) => {
      proc.kill(sig);
      return exited;
    },
    exited,
  };
}

/**
 * Runs `fn`; if it throws, the error is re-thrown with each member's state (running or exit status) and the end of
 * its output, so a failure in CI explains itself.
 */
export async function explainFailure<T>(members: { name: string; proc: RunningEtcd }[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const states = await Promise.all(
      members.map(async (m) => {
        const exit = await Promise.race([m.proc.exited.then((c) => `exited with ${c}`), new Promise<string>((r) => setImmediate(() => r('running')))]);
        return `--- ${m.name} (${m.proc.clientURL}, ${exit}), last output:\n${m.proc.output().slice(-4000)}`;
      }),
    );
    (err as Error).message += `\n${states.join('\n')}`;
    throw err;
  }
}
