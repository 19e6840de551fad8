/**
 * Builds every target of docker-bake.hcl's default group with podman, from the plan resolved as buildx would
 * (bake.ts), for the host's platform (the plan's other platform needs emulation, which is not here): the tags,
 * Dockerfile, context and build arguments all come from the plan, with REGISTRY/TAG/REVISION overridden through
 * the environment as in CI. The base image and the compiled program are the local stand-ins (support.ts).
 */
import './engine-env';
import * as path from 'path';
import { expand, loadBake, BakePlan } from './bake';
import { buildImage, buildTestInputs, inspectImage, podman, removeImages, REPO, RUN_ID, TestInputs } from './support';
import { NODE_FLAGS } from '../../server/node-flags';

jest.setTimeout(300_000);

const hostPlatform = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;
let inputs: TestInputs | undefined;
let plan: BakePlan;
const built: string[] = [];

beforeAll(async () => {
  plan = await loadBake(path.join(REPO, 'docker-bake.hcl'), { REGISTRY: `localhost/ts-etcd-test-${RUN_ID}`, TAG: `t${RUN_ID}`, REVISION: 'cafef00d' });
  inputs = await buildTestInputs();
}, 300_000);

afterAll(async () => {
  await removeImages([...built, ...(inputs ? [inputs.app, inputs.base] : [])]);
}, 120_000);

describe.each(['etcd', 'operator'])('bake target %s', (name) => {
  test('builds from the plan, with its tags, labels and entrypoint', async () => {
    expect(expand(plan, 'default')).toContain(name);
    const t = plan.targets[name];
    expect(t.platforms).toContain(hostPlatform);
    expect(t.target).toBeUndefined();
    built.push(...t.tags);
    const context = path.resolve(REPO, t.context);
    await buildImage({
      dockerfile: path.resolve(context, t.dockerfile),
      context,
      tags: t.tags,
      platform: hostPlatform,
      // The plan's target is the Dockerfile's last stage (runtime); its twin "prebuilt" takes the compiled tree
      // from the stand-in instead of compiling it (no registry from inside a build here; see production-build.test.ts).
      target: t.target ?? 'prebuilt',
      args: { ...t.args, BASE_IMAGE: inputs!.base, APP_IMAGE: inputs!.app },
      // Its labels come from the plan's arguments: no layer cached by another test's build.
      noCache: true,
    });
    for (const tag of t.tags) {
      const img = await inspectImage(tag);
      expect(`${img.Os}/${img.Architecture}`).toBe(hostPlatform);
      expect(img.Config.Labels).toMatchObject({
        'org.opencontainers.image.version': `t${RUN_ID}`,
        'org.opencontainers.image.revision': 'cafef00d',
        'org.opencontainers.image.source': plan.variables.SOURCE,
      });
      expect(img.Config.Entrypoint).toEqual(name === 'etcd' ? ['node', ...NODE_FLAGS, '/app/dist/server/main.js'] : ['node', '/app/dist/operator/main.js']);
    }
    // The built image runs its command with the arguments given.
    const out = await podman(['run', '--rm', t.tags[0], name === 'etcd' ? '--version' : '--help'], 60_000);
    expect(out.stdout).toMatch(name === 'etcd' ? /^etcd Version: / : /usage: etcd-operator/);
  });
});
