/**
 * What the container tests share: the podman CLI (builds), a Node base image made from the host's `node` (no
 * registry can be reached here, so the official node image cannot be pulled), an image holding the host's compiled
 * dist/ and production node_modules (the Dockerfiles' "prebuilt" target takes it instead of their build stage's
 * output: `npm ci` cannot reach the registry from inside a build here), and cleanup.
 */
import './engine-env';
import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SETUP_HINT } from './engine-env';

export const REPO = path.resolve(__dirname, '../..');

/** A name no other run uses (tags, container names). */
export const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36)}`;

export interface Exec {
  stdout: string;
  stderr: string;
}

function hasPodman(): boolean {
  try {
    execFileSync('podman', ['--version'], { env: process.env, stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Runs the podman CLI (with the same configuration as the service, see engine-env.ts); rejects with its output. */
export function podman(args: string[], timeoutMs = 180_000): Promise<Exec> {
  if (!hasPodmanCached()) throw new Error(`podman is not installed. ${SETUP_HINT}`);
  return new Promise((resolve, reject) => {
    // The environment is passed on explicitly: jest gives each test file its own process.env, which child processes
    // would not otherwise see (CONTAINERS_CONF set by engine-env.ts).
    execFile('podman', args, { env: process.env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`podman ${args.join(' ')} failed (${(err as NodeJS.ErrnoException).code ?? err.message}):\n${stderr}\n${stdout}`.slice(0, 8000)));
      else resolve({ stdout, stderr });
    });
  });
}
let podmanChecked: boolean | undefined;
function hasPodmanCached(): boolean {
  podmanChecked ??= hasPodman();
  return podmanChecked;
}

function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The shared libraries `ldd` lists for a binary (none for a static one). */
export function sharedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', timeout: 10_000 });
  } catch {
    return []; // "not a dynamic executable"
  }
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs];
}

/**
 * Builds a stand-in for docker.io/library/node:<version>-bookworm-slim: FROM scratch with the host's node binary
 * (at /usr/local/bin/node, as in the official image), the libraries it links, and the official image's users
 * (root, node = 1000). No shell: the runtime stage of the Dockerfiles must not need one. With buildTools, also what
 * the build stage runs: a /bin/sh, cp, mkdir, env and the host's npm (as in the official image, at
 * /usr/local/lib/node_modules/npm with npm and npx in /usr/local/bin).
 */
export async function buildNodeBase(tag: string, o: { buildTools?: boolean; podmanArgs?: string[] } = {}): Promise<void> {
  const dir = tmpDir('ts-etcd-base-');
  try {
    const root = path.join(dir, 'rootfs');
    const node = fs.realpathSync(process.execPath);
    const put = (src: string, dest: string) => {
      fs.mkdirSync(path.dirname(path.join(root, dest)), { recursive: true });
      fs.copyFileSync(fs.realpathSync(src), path.join(root, dest));
      fs.chmodSync(path.join(root, dest), fs.statSync(src).mode & 0o777);
    };
    put(node, '/usr/local/bin/node');
    for (const lib of sharedLibraries(node)) put(lib, lib);
    if (o.buildTools) {
      const tools: [string, string][] = [['/bin/sh', '/bin/sh'], ['/bin/cp', '/bin/cp'], ['/bin/mkdir', '/bin/mkdir'], ['/usr/bin/env', '/usr/bin/env']];
      for (const [src, dest] of tools) {
        put(src, dest);
        for (const lib of sharedLibraries(fs.realpathSync(src))) put(lib, lib);
      }
      const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
      const npmDir = path.resolve(path.dirname(npmCli), '..');
      fs.cpSync(npmDir, path.join(root, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
      fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr/local/bin/npm'));
      fs.symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'usr/local/bin/npx'));
    }
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nnode:x:1000:1000::/home/node:/sbin/nologin\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
    fs.mkdirSync(path.join(root, 'tmp'));
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    fs.mkdirSync(path.join(root, 'home/node'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'Dockerfile'),
      'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin NODE_VERSION=' + process.version.slice(1) + '\nCMD ["node"]\n',
    );
    await podman([...(o.podmanArgs ?? []), 'build', '--format', 'docker', '-q', '-t', tag, dir]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The top-level node_modules entries package-lock.json marks as production (not dev) dependencies. */
export function productionPackages(repo = REPO): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const top = new Set<string>();
  for (const [key, meta] of Object.entries(lock.packages)) {
    if (!key || meta.dev || meta.devOptional) continue;
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(key);
    if (m) top.add(m[1]);
  }
  return [...top].sort();
}

/**
 * Builds the image the Dockerfiles' "prebuilt" target takes (APP_IMAGE) instead of their build stage's output:
 * FROM scratch with /out/app holding the host's compiled dist/, package.json and the production node_modules
 * (copied from the host's, as `npm prune --omit=dev` would leave them), and an empty /out/data.
 */
export async function buildAppImage(tag: string): Promise<void> {
  for (const entry of ['dist/server/main.js', 'node_modules']) {
    if (!fs.existsSync(path.join(REPO, entry))) throw new Error(`${entry} is missing: run \`npm ci && npm run build\` before the container tests`);
  }
  const dir = tmpDir('ts-etcd-app-');
  try {
    const app = path.join(dir, 'out/app');
    fs.mkdirSync(app, { recursive: true });
    fs.mkdirSync(path.join(dir, 'out/data'));
    fs.cpSync(path.join(REPO, 'dist'), path.join(app, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(app, 'package.json'));
    for (const p of productionPackages()) {
      const src = path.join(REPO, 'node_modules', p);
      if (fs.existsSync(src)) fs.cpSync(src, path.join(app, 'node_modules', p), { recursive: true, verbatimSymlinks: true });
    }
    fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY out/ /out/\n');
    await podman(['build', '--format', 'docker', '-q', '-t', tag, dir]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface BuildOptions {
  dockerfile: string;
  context: string;
  tags: string[];
  args?: Record<string, string>;
  platform?: string;
  /** The stage to build (default: the last). */
  target?: string;
  /** Bind mounts for the RUN steps (`podman build --volume`). */
  volumes?: string[];
  /** podman's global options (e.g. --root/--runroot for a store of its own). */
  podmanArgs?: string[];
  /**
   * Build every layer again. For a test that checks labels set from build arguments: podman 4.3 (buildah) reuses a
   * cached LABEL layer built with other values of its arguments (seen: one test's image got another test's labels).
   */
  noCache?: boolean;
}

/**
 * `podman build` of one image (docker format: OCI images drop HEALTHCHECK). Its intermediate layers are removed
 * with the image (`--layers=false` is broken in podman 4.3 for a stage that is only an alias of an image).
 */
export async function buildImage(o: BuildOptions): Promise<void> {
  const args = [...(o.podmanArgs ?? []), 'build', '--format', 'docker', '-q', '-f', o.dockerfile];
  for (const v of o.volumes ?? []) args.push('--volume', v);
  for (const t of o.tags) args.push('-t', t);
  for (const [k, v] of Object.entries(o.args ?? {})) args.push('--build-arg', `${k}=${v}`);
  if (o.platform) args.push('--platform', o.platform);
  if (o.target) args.push('--target', o.target);
  if (o.noCache) args.push('--no-cache');
  args.push(o.context);
  await podman(args, 300_000);
}

export interface ImageConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  User?: string;
  WorkingDir?: string;
  ExposedPorts?: Record<string, unknown>;
  Volumes?: Record<string, unknown>;
  Labels?: Record<string, string>;
  Env?: string[];
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number };
}

/** The image's configuration as `podman image inspect` reports it. */
export async function inspectImage(ref: string): Promise<{ Config: ImageConfig; Architecture: string; Os: string }> {
  const { stdout } = await podman(['image', 'inspect', ref]);
  const parsed = JSON.parse(stdout) as unknown;
  const raw = (Array.isArray(parsed) ? parsed[0] : parsed) as { Config: ImageConfig; Architecture: string; Os: string; Healthcheck?: ImageConfig['Healthcheck'] };
  // podman reports the health check beside Config (and its Docker API leaves it out).
  raw.Config.Healthcheck ??= raw.Healthcheck;
  return raw;
}

/** Removes images (by reference), ignoring ones already gone. */
export async function removeImages(refs: string[]): Promise<void> {
  if (refs.length === 0) return;
  await podman(['rmi', '--force', '--ignore', ...refs], 60_000).catch(() => undefined);
}

export function removeDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/** A reference under localhost/ts-etcd-test/ for this run. */
export function testRef(name: string): string {
  return `localhost/ts-etcd-test/${name}:${RUN_ID}`;
}

/** The stand-ins a test run builds once: the Node base image and the compiled program's image. */
export interface TestInputs {
  base: string;
  app: string;
}

export async function buildTestInputs(): Promise<TestInputs> {
  const inputs = { base: testRef('node-base'), app: testRef('app') };
  await buildNodeBase(inputs.base);
  await buildAppImage(inputs.app);
  return inputs;
}

/**
 * Builds images/<which>/Dockerfile's "prebuilt" target on the stand-ins (the runtime stage's instructions, the
 * compiled tree from the app image; the build context is the repository, as in production).
 */
export async function buildTestImage(which: 'etcd' | 'operator', tag: string, inputs: TestInputs, args: Record<string, string> = {}, noCache = false): Promise<void> {
  await buildImage({
    noCache,
    dockerfile: path.join(REPO, 'images', which, 'Dockerfile'),
    context: REPO,
    tags: [tag],
    target: 'prebuilt',
    args: { BASE_IMAGE: inputs.base, APP_IMAGE: inputs.app, ...args },
  });
}

/** etcd's flags for a single member `name` listening on all interfaces in its container. */
export function singleMemberFlags(name: string): string[] {
  return [
    '--name', name,
    '--enable-v2=true',
    '--listen-client-urls', 'http://0.0.0.0:2379',
    '--advertise-client-urls', 'http://127.0.0.1:2379',
    '--listen-peer-urls', 'http://0.0.0.0:2380',
    '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', `${name}=http://127.0.0.1:2380`,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', `test-${RUN_ID}`,
  ];
}

/** etcd's flags for member `name` of a cluster whose members reach each other by their names (network aliases). */
export function clusterMemberFlags(name: string, members: string[], token: string): string[] {
  return [
    '--name', name,
    '--enable-v2=true',
    '--listen-client-urls', 'http://0.0.0.0:2379',
    '--advertise-client-urls', `http://${name}:2379`,
    '--listen-peer-urls', 'http://0.0.0.0:2380',
    '--initial-advertise-peer-urls', `http://${name}:2380`,
    '--initial-cluster', members.map((m) => `${m}=http://${m}:2380`).join(','),
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
  ];
}

/**
 * Starts a container, again (up to `attempts` times) when the engine lost the race for the host port it picked
 * for a published port ("address already in use": podman chooses a free port, and before its listener binds it an
 * outgoing connection elsewhere on this busy machine may take it). Any other failure is thrown at once.
 */
export async function startContainer<T>(c: { start(): Promise<T> }, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await c.start();
    } catch (err) {
      if (i >= attempts || !/address already in use/.test(String((err as Error).message))) throw err;
      console.warn(`container start lost a host port race (attempt ${i} of ${attempts}); starting it again: ${(err as Error).message}`);
    }
  }
}
