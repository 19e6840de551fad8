/** The `docker:` section: extra daemon flags, as ct writes them into docker.service's `DOCKER_OPTS`. */
import { object, posOf, positionsOf, strList, type Infer } from '../decode';
import { goQuote } from '../validate';
import type { TranslateContext } from './context';

export const dockerSchema = object({ flags: strList });
export type DockerConfig = NonNullable<Infer<typeof dockerSchema>>;

export function translateDocker(docker: DockerConfig, ctx: TranslateContext): void {
  const contents = `[Service]\nEnvironment=${goQuote(`DOCKER_OPTS=${(docker.flags ?? []).join(' ')}`)}`;
  // The flags are on the drop-in's second line.
  const at = positionsOf(docker);
  const dropin = { name: '20-clct-docker.conf', contents, at, lines: [undefined, posOf(docker, 'flags')] };
  ctx.out.addUnit({ name: 'docker.service', enabled: true, dropins: [dropin], at }, posOf(docker));
}
