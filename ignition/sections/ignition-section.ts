/** The `ignition:` section: configs to merge or replace with, HTTP timeouts, and extra TLS certificate authorities. */
import { int, list, object, type Infer } from '../decode';
import type { TranslateContext } from './context';
import { configReference, resourceOf } from './storage';

export const ignitionSchema = object({
  config: object({ append: list(configReference), replace: configReference }),
  timeouts: object({ http_response_headers: int, http_total: int }),
  security: object({ tls: object({ certificate_authorities: list(configReference) }) }),
});
export type IgnitionSectionConfig = NonNullable<Infer<typeof ignitionSchema>>;

export function translateIgnitionSection(ign: IgnitionSectionConfig, ctx: TranslateContext): void {
  const m = ctx.out.model.ignition;
  m.merge.push(...(ign.config?.append ?? []).map(resourceOf));
  if (ign.config?.replace) m.replace = resourceOf(ign.config.replace);
  m.timeouts = { httpResponseHeaders: ign.timeouts?.http_response_headers, httpTotal: ign.timeouts?.http_total };
  m.certificateAuthorities.push(...(ign.security?.tls?.certificate_authorities ?? []).map(resourceOf));
}
