/**
 * Points the container tests at the podman service that `.ci/podman-setup.sh` starts (a Docker-compatible API on
 * unix:///run/podman/podman.sock), when the environment does not say already. Imported first by every container
 * test (before testcontainers reads the environment). Throws — the test file fails with this message — when no
 * engine is set up: the container tests are never skipped silently.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';

export const PODMAN_SOCKET = '/run/podman/podman.sock';
const CONF = '/etc/ts-etcd/containers.conf';
const STORAGE_CONF = '/etc/ts-etcd/storage.conf';

export const SETUP_HINT =
  'The container tests need podman set up as a Docker-compatible engine: run `eval "$(bash .ci/podman-setup.sh)"` ' +
  '(as root; installs podman and runc, writes its configuration and starts `podman system service` on ' +
  `unix://${PODMAN_SOCKET}), or point DOCKER_HOST at another Docker-compatible engine.`;

export function configureEngineEnv(env: NodeJS.ProcessEnv = process.env): void {
  if (!env.DOCKER_HOST) {
    if (!fs.existsSync(PODMAN_SOCKET)) throw new Error(`No container engine: DOCKER_HOST is unset and ${PODMAN_SOCKET} does not exist. ${SETUP_HINT}`);
    env.DOCKER_HOST = `unix://${PODMAN_SOCKET}`;
  }
  const socket = /^unix:\/\/(.+)$/.exec(env.DOCKER_HOST)?.[1];
  if (socket && !ping(socket)) throw new Error(`No container engine answers on ${env.DOCKER_HOST} (GET /_ping). ${SETUP_HINT}`);
  // testcontainers' reaper container (Ryuk) needs a Docker engine's socket inside a container; the tests clean up themselves.
  env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  // The podman CLI (used for builds) must use the same configuration as the service: one storage from the first use on.
  if (!env.CONTAINERS_CONF && fs.existsSync(CONF)) env.CONTAINERS_CONF = CONF;
  if (!env.CONTAINERS_STORAGE_CONF && fs.existsSync(STORAGE_CONF)) env.CONTAINERS_STORAGE_CONF = STORAGE_CONF;
}

/** Whether the Docker-compatible API on a unix socket answers GET /_ping (synchronously, in a child process). */
function ping(socket: string): boolean {
  const script = `require('http').get({socketPath:${JSON.stringify(socket)},path:'/_ping',timeout:5000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))`;
  try {
    execFileSync(process.execPath, ['-e', script], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

configureEngineEnv();
