/**
 * docker-bake.hcl resolved as buildx would (see bake.ts; buildx itself is not packaged here): the default group
 * builds both images for linux/amd64 and linux/arm64, tags come from REGISTRY and TAG, build arguments from the
 * variables, and the names match what the operator and the manifests refer to. No container engine needed;
 * bake-build.test.ts builds the targets from this plan.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expand, loadBake } from './bake';

const REPO = path.resolve(__dirname, '../..');
const BAKE = path.join(REPO, 'docker-bake.hcl');
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };

test('the default group builds etcd and operator, for amd64 and arm64, tagged from the variables', async () => {
  const plan = await loadBake(BAKE, {});
  expect(Object.keys(plan.variables).sort()).toEqual(['ETCD_VERSION', 'NODE_VERSION', 'REGISTRY', 'REVISION', 'SOURCE', 'TAG']);
  expect(expand(plan, 'default')).toEqual(['etcd', 'operator']);
  const { REGISTRY, TAG, NODE_VERSION, REVISION, SOURCE, ETCD_VERSION } = plan.variables;
  expect(plan.targets.etcd).toEqual({
    name: 'etcd',
    context: '.',
    dockerfile: 'images/etcd/Dockerfile',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [`${REGISTRY}/ts-etcd/etcd:${TAG}`, `${REGISTRY}/ts-etcd/etcd:${ETCD_VERSION}`],
    args: { NODE_VERSION, VERSION: TAG, REVISION, SOURCE },
    labels: {},
  });
  expect(plan.targets.operator).toMatchObject({
    dockerfile: 'images/operator/Dockerfile',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [`${REGISTRY}/ts-etcd/etcd-operator:${TAG}`],
    args: { NODE_VERSION, VERSION: TAG, REVISION, SOURCE },
  });
  for (const t of expand(plan, 'default')) expect(fs.existsSync(path.join(REPO, plan.targets[t].context, plan.targets[t].dockerfile))).toBe(true);
});

test('defaults: docker.io, the package version, Node 20 pinned', async () => {
  const plan = await loadBake(BAKE, {});
  expect(plan.variables.REGISTRY).toBe('docker.io');
  expect(plan.variables.TAG).toBe(pkg.version);
  expect(plan.variables.NODE_VERSION).toMatch(/^20\.\d+\.\d+$/);
  expect(plan.targets.etcd.tags).toEqual([`docker.io/ts-etcd/etcd:${pkg.version}`, `docker.io/ts-etcd/etcd:${plan.variables.ETCD_VERSION}`]);
});

test('environment variables override the variables, as with `REGISTRY=... TAG=... docker buildx bake`', async () => {
  const plan = await loadBake(BAKE, { REGISTRY: 'registry.example.test:5000/team', TAG: '1.2.3-rc.1', REVISION: '0123abcd', NODE_VERSION: '20.1.0' });
  expect(plan.targets.etcd.tags).toEqual(['registry.example.test:5000/team/ts-etcd/etcd:1.2.3-rc.1', 'registry.example.test:5000/team/ts-etcd/etcd:3.4.34']);
  expect(plan.targets.operator.tags).toEqual(['registry.example.test:5000/team/ts-etcd/etcd-operator:1.2.3-rc.1']);
  expect(plan.targets.etcd.args).toMatchObject({ VERSION: '1.2.3-rc.1', REVISION: '0123abcd', NODE_VERSION: '20.1.0' });
});

test('the resolver refuses what it does not understand rather than guess', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bake-'));
  try {
    const f = path.join(dir, 'docker-bake.hcl');
    fs.writeFileSync(f, 'variable "X" { default = "a" }\ntarget "t" { tags = ["${upper(X)}"] }\n');
    await expect(loadBake(f, {})).rejects.toThrow(/unsupported expression/);
    fs.writeFileSync(f, 'target "t" { tags = ["${NOPE}"] }\n');
    await expect(loadBake(f, {})).rejects.toThrow(/undefined variable NOPE/);
    fs.writeFileSync(f, 'target "a" { inherits = ["b"] }\ntarget "b" { inherits = ["a"] }\n');
    await expect(loadBake(f, {})).rejects.toThrow(/cycle/);
    fs.writeFileSync(f, 'target "t" {\n  tags = [\n');
    await expect(loadBake(f, {})).rejects.toThrow();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Image references to ts-etcd's images in the operator's sources and the manifests. */
function imageReferences(): { file: string; ref: string }[] {
  const out: { file: string; ref: string }[] = [];
  const walk = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|ya?ml|json)$/.test(e.name)) {
        for (const m of fs.readFileSync(p, 'utf8').matchAll(/(?<![\w.-])((?:[\w.-]+(?::\d+)?\/)*ts-etcd\/etcd[\w.-]*)(?::[\w.${}-]+)?/g)) out.push({ file: path.relative(REPO, p), ref: m[1] });
      }
    }
  };
  walk(path.join(REPO, 'operator'));
  walk(path.join(REPO, 'manifests'));
  return out;
}

test('the operator and the manifests name the images the bake file builds', async () => {
  const plan = await loadBake(BAKE, {});
  const repos = expand(plan, 'default').flatMap((t) => plan.targets[t].tags.map((tag) => tag.replace(/:[^/:]+$/, '')));
  // A name without a registry is Docker Hub's (docker.io), as the container runtimes resolve it.
  const normalize = (ref: string): string => (/^[^/]+[.:][^/]*\//.test(ref) ? ref : `docker.io/${ref}`);
  const refs = imageReferences();
  // The operator's default member image (operator/api/types.ts DEFAULT_REPOSITORY).
  expect(refs.some((r) => r.file.startsWith('operator') && r.ref === 'ts-etcd/etcd')).toBe(true);
  const wrong = refs.filter((r) => !repos.includes(normalize(r.ref)));
  expect(wrong).toEqual([]);
});

test("the etcd image's tags include the operator's default member version, the manifests run the operator at TAG", async () => {
  const plan = await loadBake(BAKE, {});
  const types = fs.readFileSync(path.join(REPO, 'operator/api/types.ts'), 'utf8');
  const defaultVersion = /DEFAULT_VERSION\s*=\s*'([^']+)'/.exec(types)?.[1];
  expect(defaultVersion).toBeDefined();
  expect(plan.targets.etcd.tags).toContain(`${plan.variables.REGISTRY}/ts-etcd/etcd:${defaultVersion}`);
  const manifests = path.join(REPO, 'manifests');
  const operatorImages = fs.existsSync(manifests)
    ? fs.readdirSync(manifests).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => [...fs.readFileSync(path.join(manifests, f), 'utf8').matchAll(/image:\s*["']?(\S*ts-etcd\/etcd-operator\S*?)["']?\s*$/gm)].map((m) => m[1]))
    : [];
  expect(operatorImages.length).toBeGreaterThan(0);
  for (const img of operatorImages) expect(img).toMatch(new RegExp(`ts-etcd/etcd-operator:${plan.variables.TAG.replace(/\./g, '\\.')}$`));
});
