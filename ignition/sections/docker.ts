/** The `docker:` section: extra daemon flags, as ct writes them into docker.service's `DOCKER_OPTS`. */
import { object, posOf, strList, type Infer } from '../decode';
import { goQuote } from '../validate';
import type { TranslateContext } from './context';

export const dockerSchema = object({ flags: strList });
export type DockerConfig = NonNullable<Infer<typeof dockerSchema>>;

export function translateDocker(docker: DockerConfig, ctx: TranslateContext): void {
  const contents = `[Service]\nEnvironment=${goQuote(`DOCKER_OPTS=${(docker.flags ?? []).join(' ')}`)}`;
  ctx.out.addUnit({ name: 'docker.service', enabled: true, dropins: [{ name: '20-clct-docker.conf', contents }] }, posOf(docker));
}
