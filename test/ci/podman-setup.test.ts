/**
 * `.ci/run` reads the environment that `.ci/podman-setup.sh` prints with `eval "$(bash .ci/podman-setup.sh)"`, and
 * `$(...)` returns only once nothing holds its pipe open any more. The script starts the podman service in the
 * background when none is answering, so that service (and any shell that waits for it) must not hold the pipe: a
 * subshell that did kept CI waiting until it was killed. Here the script runs against a stand-in `podman` (a small
 * HTTP server on the unix socket, as `podman system service` is) and a stand-in `dpkg`, with its socket, log and
 * configuration in a temporary directory.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
let dir: string;
let pidFile: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podman-setup-'));
  pidFile = path.join(dir, 'service.pid');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, 'podman'),
    `#!${process.execPath}
const args = process.argv.slice(2);
if (args[0] === 'system' && args[1] === 'service') {
  require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
  const sock = args[args.length - 1].replace(/^unix:\\/\\//, '');
  require('http').createServer((req, res) => res.end('OK')).listen(sock);
} else {
  console.log('podman version 4.3.1 (stand-in)');
}
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(bin, 'dpkg'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
});

afterEach(() => {
  if (fs.existsSync(pidFile)) {
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function ping(sock: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: sock, path: '/_ping' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('prints the environment and returns while the service it started in the background keeps running', async () => {
  const sock = path.join(dir, 'run', 'podman.sock');
  const env = {
    ...process.env,
    PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
    TS_ETCD_PODMAN_SOCK: sock,
    TS_ETCD_PODMAN_LOG: path.join(dir, 'service.log'),
    TS_ETCD_PODMAN_CONF_DIR: path.join(dir, 'etc'),
  };
  // As .ci/run reads it. The timeout only bounds a failure: a script whose background job holds the pipe never
  // returns on its own.
  const out = await new Promise<{ outcome: string; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', ['-c', 'env_lines="$(bash .ci/podman-setup.sh)" && printf "%s\\n" "$env_lines"'], { cwd: REPO, env, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ outcome: !err ? 'exit 0' : err.killed ? 'still waiting for its output after 30 s' : `exit ${err.code}`, stdout, stderr }),
    );
  });
  expect(out.stderr).toMatch(/starting podman system service/);
  expect(out.outcome).toBe('exit 0');
  expect(out.stdout).toContain(`export DOCKER_HOST=unix://${sock}`);
  expect(out.stdout).toContain(`export CONTAINERS_CONF=${path.join(dir, 'etc', 'containers.conf')}`);
  expect(fs.readFileSync(path.join(dir, 'etc', 'containers.conf'), 'utf8')).toMatch(/runtime = "runc"/);
  // The service outlived the script, detached from it.
  expect(await ping(sock)).toBe('OK');

  // A second run finds it answering and leaves it alone.
  const again = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    execFile('bash', ['.ci/podman-setup.sh'], { cwd: REPO, env, timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })));
  });
  expect(again.stderr).toMatch(/service already answering/);
  expect(again.stdout).toContain(`export DOCKER_HOST=unix://${sock}`);
});
