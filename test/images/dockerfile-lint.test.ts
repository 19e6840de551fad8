/**
 * The Dockerfiles against the rules that matter (hadolint is not packaged for npm or Debian here): a pinned base,
 * no `latest`, a non-root USER, no secrets, a HEALTHCHECK (whose one-liner is run here against a fake /health),
 * an exec-form ENTRYPOINT, a multi-stage build that ships only the compiled output and production dependencies,
 * OCI labels, and a .dockerignore that keeps node_modules, data and tests out. No container engine needed.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { loadBake } from './bake';
import { execForm, labelsOf, parseDockerfile, ParsedDockerfile, Stage, textOf } from './dockerfile';

const REPO = path.resolve(__dirname, '../..');
const FILES = { etcd: 'images/etcd/Dockerfile', operator: 'images/operator/Dockerfile' } as const;

/** The last stage (the default target) with the instructions of the stages it is built FROM, first to last. */
function finalStage(d: ParsedDockerfile, name?: string): Stage {
  const last = name ? d.stages.find((s) => s.name === name)! : d.stages[d.stages.length - 1];
  const chain: Stage[] = [last];
  for (let s = last; ; ) {
    const parent = d.stages.find((p) => p.name === s.from);
    if (!parent) break;
    chain.unshift(parent);
    s = parent;
  }
  return { from: chain[0].from, name: last.name, instructions: chain.flatMap((s) => s.instructions) };
}
const kw = (s: Stage, k: string) => s.instructions.filter((i) => i.getKeyword() === k);

describe.each(Object.entries(FILES))('%s image Dockerfile', (which, rel) => {
  const file = path.join(REPO, rel);
  const d = parseDockerfile(file);
  const runtime = finalStage(d);

  test('the base image is Node 20 slim, pinned to a full version, and never latest', () => {
    expect(d.globalArgs.NODE_VERSION).toMatch(/^20\.\d+\.\d+$/);
    expect(runtime.from).toBe(`docker.io/library/node:${d.globalArgs.NODE_VERSION}-bookworm-slim`);
    for (const s of d.stages) {
      const stageNames = d.stages.map((x) => x.name);
      if (s.from === 'scratch' || stageNames.includes(s.from)) continue;
      const [repo, tag] = [s.from.replace(/[:@].*$/, ''), /:([^/@]+)$/.exec(s.from)?.[1]];
      expect({ repo, tag }).toEqual({ repo: expect.stringMatching(/^[a-z0-9./-]+$/), tag: expect.stringMatching(/^\d+\.\d+\.\d+-[a-z]+-slim$/) });
    }
    expect(fs.readFileSync(file, 'utf8')).not.toMatch(/:latest\b/);
  });

  test('the base image follows the bake file\'s NODE_VERSION', async () => {
    const plan = await loadBake(path.join(REPO, 'docker-bake.hcl'), {});
    expect(d.globalArgs.NODE_VERSION).toBe(plan.variables.NODE_VERSION);
  });

  test('multi-stage: dev dependencies only in the build stage, the runtime copies the compiled output alone', () => {
    const build = d.stages.find((s) => s.name === 'build');
    expect(build).toBeDefined();
    const runs = kw(build!, 'RUN').map((i) => i.getArgumentsContent() ?? '').join('\n');
    expect(runs).toMatch(/npm ci --ignore-scripts\b/); // no dependency runs code at install (none in production needs to)
    expect(runs).toMatch(/tsc -p tsconfig\.json/);
    expect(runs).toMatch(/npm prune --omit=dev/);
    // The default target is "runtime": FROM the base stage, the program copied from the build stage; nothing runs.
    expect(runtime.name).toBe('runtime');
    expect(kw(runtime, 'RUN')).toHaveLength(0);
    expect(kw(runtime, 'ADD')).toHaveLength(0);
    const copies = kw(runtime, 'COPY').map(textOf);
    expect(copies).toContain('--from=build --chown=0:0 /out/app /app');
    for (const c of copies) expect(c).toMatch(/^--from=build /);
  });

  test('the "prebuilt" target is the runtime with the compiled tree from APP_IMAGE instead', () => {
    const prebuilt = finalStage(d, 'prebuilt');
    const swap = (t: string) => t.replace('--from=app-image ', '--from=build ');
    expect(prebuilt.instructions.map((i) => swap(i.toString()))).toEqual(runtime.instructions.map((i) => i.toString()));
    expect(d.stages.find((s) => s.name === 'app-image')?.from).toBe('scratch'); // APP_IMAGE's default: never pulled
  });

  test('runs as a non-root user (numeric, so Kubernetes can check runAsNonRoot)', () => {
    const users = kw(runtime, 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = (users[users.length - 1].getArgumentsContent() ?? '').split(':')[0];
    expect(user).toMatch(/^\d+$/);
    expect(user).not.toBe('0');
    // Nothing after the USER switches back.
    const idx = runtime.instructions.indexOf(users[users.length - 1]);
    expect(runtime.instructions.slice(idx).filter((i) => i.getKeyword() === 'USER')).toHaveLength(1);
  });

  test('no secrets: no credentials in ARG/ENV/LABEL, no key or .npmrc files copied', () => {
    for (const ins of d.instructions) {
      const k = ins.getKeyword();
      const content = ins.getArgumentsContent() ?? '';
      if (['ARG', 'ENV', 'LABEL'].includes(k)) expect(content).not.toMatch(/(pass(word)?|secret|token|api[_-]?key|private[_-]?key|credential|auth)\w*\s*=/i);
      if (['COPY', 'ADD'].includes(k)) expect(content).not.toMatch(/\.npmrc|\.env\b|\.pem\b|\.key\b|id_rsa|\.ssh/);
      if (k === 'RUN') expect(content).not.toMatch(/_authToken|NPM_TOKEN|--password/);
    }
  });

  test('ENTRYPOINT is the command, in exec form (flags pass straight through), with no CMD to prepend', () => {
    const eps = kw(runtime, 'ENTRYPOINT');
    expect(eps).toHaveLength(1);
    const ep = execForm(eps[0]);
    expect(ep).toEqual(['node', which === 'etcd' ? '/app/dist/server/main.js' : '/app/dist/operator/main.js']);
    expect(kw(runtime, 'CMD')).toHaveLength(0);
    expect(fs.existsSync(path.join(REPO, which === 'etcd' ? 'server/main.ts' : 'operator/main.ts'))).toBe(true);
  });

  test('a HEALTHCHECK in exec form, with a timeout', () => {
    const hcs = kw(runtime, 'HEALTHCHECK');
    expect(hcs).toHaveLength(1);
    const cmd = execForm(hcs[0]);
    expect(cmd?.slice(0, 2)).toEqual(['node', '-e']);
    expect(textOf(hcs[0])).toMatch(/--timeout=\d+s/);
  });

  test('OCI labels: source, version and revision from build arguments', () => {
    const labels = Object.assign({}, ...kw(runtime, 'LABEL').map(labelsOf)) as Record<string, string>;
    expect(labels['org.opencontainers.image.source']).toBe('${SOURCE}');
    expect(labels['org.opencontainers.image.version']).toBe('${VERSION}');
    expect(labels['org.opencontainers.image.revision']).toBe('${REVISION}');
    expect(labels['org.opencontainers.image.licenses']).toBe('Apache-2.0');
    const args = kw(runtime, 'ARG').map((i) => (i.getArgumentsContent() ?? '').split('=')[0]);
    expect(args).toEqual(expect.arrayContaining(['SOURCE', 'VERSION', 'REVISION']));
  });

  test('WORKDIRs are absolute', () => {
    for (const w of d.instructions.filter((i) => i.getKeyword() === 'WORKDIR')) expect(w.getArgumentsContent()).toMatch(/^\//);
  });
});

test('the etcd image exposes the client and peer ports and keeps its data in a volume it owns', () => {
  const runtime = finalStage(parseDockerfile(path.join(REPO, FILES.etcd)));
  expect(kw(runtime, 'EXPOSE').flatMap((i) => (i.getArgumentsContent() ?? '').split(/\s+/))).toEqual(['2379', '2380']);
  expect(kw(runtime, 'VOLUME').map((i) => execForm(i) ?? i.getArgumentsContent())).toEqual([['/var/lib/etcd']]);
  expect(kw(runtime, 'WORKDIR').map((i) => i.getArgumentsContent())).toEqual(['/var/lib/etcd']);
  expect(kw(runtime, 'COPY').map(textOf)).toContain('--from=build --chown=1000:1000 /out/data /var/lib/etcd');
  // The COPY creates the directory (so it belongs to the user): nothing before it may.
  const idx = runtime.instructions.findIndex((i) => textOf(i).endsWith('/out/data /var/lib/etcd'));
  expect(runtime.instructions.slice(0, idx).filter((i) => (i.getArgumentsContent() ?? '').includes('/var/lib/etcd'))).toEqual([]);
});

test('.dockerignore keeps node_modules, build output, data directories, tests and secrets out of the context', () => {
  const lines = fs
    .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  expect(lines).toEqual(expect.arrayContaining(['**/node_modules', 'dist', 'test', '.git', '*.etcd', '**/*.etcd', '.npmrc', '**/.npmrc', '.env']));
  // The build stage needs these: nothing that matches them may be ignored.
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'server', 'operator']) expect(lines).not.toContain(needed);
});

describe('the HEALTHCHECK one-liners, run against a fake member', () => {
  let server: http.Server;
  let reply: { status: number; body: string } = { status: 200, body: '{"health":"true"}' };
  let base = '';
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      res.writeHead(req.url === '/health' ? reply.status : 404, { 'Content-Type': 'application/json' });
      res.end(req.url === '/health' ? reply.body : '404 page not found\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const healthcheck = (which: keyof typeof FILES, url: string): Promise<number | null> => {
    const runtime = finalStage(parseDockerfile(path.join(REPO, FILES[which])));
    const cmd = execForm(kw(runtime, 'HEALTHCHECK')[0])!;
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, cmd.slice(1), { env: { ...process.env, HEALTHCHECK_URL: url }, stdio: 'ignore', timeout: 15_000 });
      p.on('error', reject);
      p.on('exit', (code) => resolve(code));
    });
  };

  test('etcd: healthy only on 200 with {"health":"true"}', async () => {
    reply = { status: 200, body: '{"health":"true"}' };
    expect(await healthcheck('etcd', `${base}/health`)).toBe(0);
    reply = { status: 503, body: '{"health":"false"}' };
    expect(await healthcheck('etcd', `${base}/health`)).toBe(1);
    reply = { status: 200, body: '{"health":"false"}' };
    expect(await healthcheck('etcd', `${base}/health`)).toBe(1);
    reply = { status: 200, body: 'not json' };
    expect(await healthcheck('etcd', `${base}/health`)).toBe(1);
    expect(await healthcheck('etcd', `http://127.0.0.1:1/health`)).toBe(1);
  });

  test('etcd: the default URL is the client port on loopback', () => {
    const runtime = finalStage(parseDockerfile(path.join(REPO, FILES.etcd)));
    expect(execForm(kw(runtime, 'HEALTHCHECK')[0])![2]).toContain("'http://127.0.0.1:2379/health'");
  });

  test('operator: the default URL is its /healthz on the default --metrics-addr port, which it exposes', () => {
    const runtime = finalStage(parseDockerfile(path.join(REPO, FILES.operator)));
    expect(execForm(kw(runtime, 'HEALTHCHECK')[0])![2]).toContain("'http://127.0.0.1:8080/healthz'");
    expect(kw(runtime, 'EXPOSE').map((i) => i.getArgumentsContent())).toEqual(['8080']);
    expect(fs.readFileSync(path.join(REPO, 'operator/main.ts'), 'utf8')).toMatch(/metricsAddr: '0\.0\.0\.0:8080'/);
  });

  test('operator: healthy on 200', async () => {
    reply = { status: 200, body: 'ok' };
    expect(await healthcheck('operator', `${base}/health`)).toBe(0);
    reply = { status: 500, body: 'no' };
    expect(await healthcheck('operator', `${base}/health`)).toBe(1);
    expect(await healthcheck('operator', `http://127.0.0.1:1/health`)).toBe(1);
  });
});
