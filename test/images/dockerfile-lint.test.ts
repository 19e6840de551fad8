/**
 * The Dockerfiles against the rules that matter (hadolint is not packaged for npm or Debian here): a pinned base,
 * no `latest`, no floating `# syntax=` frontend, a non-root USER, no secrets, a HEALTHCHECK (whose one-liner is run
 * here against a fake /health, over http and https), an exec-form ENTRYPOINT, a multi-stage build that ships only the compiled output and production dependencies,
 * OCI labels, and a .dockerignore that keeps node_modules, data and tests out. No container engine needed.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { loadBake } from './bake';
import { issue, makeCA } from '../support/certs';
import { execForm, labelsOf, parseDockerfile, ParsedDockerfile, Stage, textOf } from './dockerfile';
import { NODE_FLAGS } from '../../server/node-flags';

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
    // the etcd command with its V8 flags (server/node-flags.ts)
    expect(ep).toEqual(which === 'etcd' ? ['node', ...NODE_FLAGS, '/app/dist/server/main.js'] : ['node', '/app/dist/operator/main.js']);
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

  test('no floating BuildKit frontend: no `# syntax=` directive (or one pinned to a version), and nothing that needs one', async () => {
    const text = fs.readFileSync(file, 'utf8');
    // Parser directives are the `# key=value` lines at the very top; a `syntax` one makes BuildKit pull that frontend
    // image (docker/dockerfile:1 floats to whatever 1.x is newest). A build argument BUILDKIT_SYNTAX does the same.
    const directives: [string, string][] = [];
    for (const line of text.split('\n')) {
      const m = /^#\s*([A-Za-z]+)\s*=\s*(\S*)\s*$/.exec(line);
      if (!m) break;
      directives.push([m[1].toLowerCase(), m[2]]);
    }
    const syntax = directives.filter(([k]) => k === 'syntax').map(([, v]) => v);
    for (const v of syntax) expect(v).toMatch(/^docker\/dockerfile:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$/);
    expect(text).not.toMatch(/BUILDKIT_SYNTAX/);
    const plan = await loadBake(path.join(REPO, 'docker-bake.hcl'), {});
    for (const t of Object.values(plan.targets)) expect(Object.keys(t.args)).not.toContain('BUILDKIT_SYNTAX');
    if (syntax.length === 0) {
      // The built-in frontend (and buildah, which ignores the directive) must do: no features that came with the
      // external frontends — RUN --mount/--network/--security, heredocs, COPY --link/--parents/--exclude, ADD --checksum.
      const needsFrontend = d.instructions
        .map((i) => i.toString())
        .filter((t) => /<<-?\s*["']?[A-Za-z_]+["']?\s*$/m.test(t) || /^\s*(RUN|COPY|ADD)\s+(--\S+\s+)*--(mount|network|security|link|parents|exclude|checksum|keep-git-dir)\b/i.test(t));
      expect(needsFrontend).toEqual([]);
    }
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

  /** Runs an image's HEALTHCHECK command here, with HEALTHCHECK_URL (unless undefined) and these variables only. */
  const healthcheck = (which: keyof typeof FILES, url: string | undefined, env: Record<string, string> = {}): Promise<number | null> => {
    const runtime = finalStage(parseDockerfile(path.join(REPO, FILES[which])));
    const cmd = execForm(kw(runtime, 'HEALTHCHECK')[0])!;
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'HEALTHCHECK_URL'));
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, cmd.slice(1), { env: { ...clean, ...(url === undefined ? {} : { HEALTHCHECK_URL: url }), ...env }, stdio: 'ignore', timeout: 15_000 });
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
    expect(execForm(kw(runtime, 'HEALTHCHECK')[0])![2]).toContain("'http://127.0.0.1:2379'");
  });

  describe('etcd over https', () => {
    // A member's certificate, signed by a CA the probe does not have, for a name that is not 127.0.0.1 (as with
    // --auto-tls, or a certificate for the member's DNS name): the probe asks anyway.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'healthcheck-tls-'));
    const ca = makeCA(dir, 'ca');
    const member = issue(dir, 'member', ca, { cn: 'member', hosts: ['member.example.invalid'] });
    const servers: https.Server[] = [];
    const serve = async (o: https.ServerOptions): Promise<string> => {
      const srv = https.createServer({ cert: member.certPem, key: member.keyPem, ...o }, (req, res) => {
        res.writeHead(req.url === '/health' ? reply.status : 404, { 'Content-Type': 'application/json' });
        res.end(req.url === '/health' ? reply.body : '404 page not found\n');
      });
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      return `127.0.0.1:${(srv.address() as AddressInfo).port}`;
    };
    let tlsAddr = '';
    let mtlsAddr = '';
    beforeAll(async () => {
      tlsAddr = await serve({});
      // --client-cert-auth: no certificate signed by the CA, no TLS connection
      mtlsAddr = await serve({ requestCert: true, rejectUnauthorized: true, ca: ca.certPem });
    });
    afterAll(() => Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r())))));

    test('an https HEALTHCHECK_URL is asked over TLS, whatever certificate the member has; the answer still decides', async () => {
      reply = { status: 200, body: '{"health":"true"}' };
      expect(await healthcheck('etcd', `https://${tlsAddr}/health`)).toBe(0);
      // plain HTTP to the TLS port is no answer
      expect(await healthcheck('etcd', `http://${tlsAddr}/health`)).toBe(1);
      reply = { status: 503, body: '{"health":"false"}' };
      expect(await healthcheck('etcd', `https://${tlsAddr}/health`)).toBe(1);
      reply = { status: 200, body: '{"health":"false"}' };
      expect(await healthcheck('etcd', `https://${tlsAddr}/health`)).toBe(1);
    });

    test("without HEALTHCHECK_URL: the first listen client URL, its wildcard host asked on loopback", async () => {
      reply = { status: 200, body: '{"health":"true"}' };
      const tlsPort = tlsAddr.split(':')[1];
      const httpPort = new URL(base).port;
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `https://0.0.0.0:${tlsPort},http://127.0.0.1:${httpPort}` })).toBe(0);
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `http://0.0.0.0:${httpPort}` })).toBe(0);
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `https://[::]:${tlsPort}` })).toBe(0); // asked on 127.0.0.1 too
      reply = { status: 503, body: '{"health":"false"}' };
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `https://0.0.0.0:${tlsPort}` })).toBe(1);
      // the scheme is the listen URL's: http to the TLS port is no answer
      reply = { status: 200, body: '{"health":"true"}' };
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `http://0.0.0.0:${tlsPort}` })).toBe(1);
    });

    test("with client certificate auth the member's own certificate (ETCD_CERT_FILE/ETCD_KEY_FILE) is presented", async () => {
      reply = { status: 200, body: '{"health":"true"}' };
      expect(await healthcheck('etcd', `https://${mtlsAddr}/health`)).toBe(1);
      expect(await healthcheck('etcd', `https://${mtlsAddr}/health`, { ETCD_CERT_FILE: member.certFile, ETCD_KEY_FILE: member.keyFile, ETCD_TRUSTED_CA_FILE: ca.certFile })).toBe(0);
      expect(await healthcheck('etcd', undefined, { ETCD_LISTEN_CLIENT_URLS: `https://0.0.0.0:${mtlsAddr.split(':')[1]}`, ETCD_CERT_FILE: member.certFile, ETCD_KEY_FILE: member.keyFile })).toBe(0);
    });
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
