/**
 * The systemd drop-in ct writes for the services it configures through a wrapper script (etcd-member.service,
 * flanneld.service): environment variables, then `ExecStart=` reset and the wrapper run with one `--flag=value` per
 * option. With templating, the drop-in also waits for coreos-metadata and reads its environment file.
 */
import type { Dropin } from '../model';
import type { Position } from '../yaml-positions';
import { expandTemplates, hasTemplate } from '../platforms';
import { goQuote } from '../validate';
import type { TranslateContext } from './context';

export interface FlagArg {
  flag: string;
  value: string | number | boolean;
  /** For messages: the CLC key path and the value's position. */
  path: string;
  pos: Position;
}

export interface WrapperDropin {
  name: string;
  /** The command, e.g. "/usr/lib/coreos/etcd-wrapper $ETCD_OPTS". */
  exec: string;
  /** `NAME=value` pairs written as Environment="NAME=value". */
  env: string[];
  args: FlagArg[];
  /** More [Service] lines after ExecStart (already expanded), and where each comes from. */
  extraService?: { line: string; pos?: Position }[];
  /** Where the section is. */
  pos: Position;
}

/**
 * Renders the drop-in, knowing for each line of it the option it comes from; returns undefined (having reported why)
 * when templating cannot be expanded.
 */
export function renderWrapperDropin(d: WrapperDropin, ctx: TranslateContext): Dropin | undefined {
  const templated = d.args.some((a) => typeof a.value === 'string' && hasTemplate(a.value));
  const unit: string[] = [];
  const service: string[] = [];
  if (templated) {
    unit.push('Requires=coreos-metadata.service', 'After=coreos-metadata.service');
    service.push('EnvironmentFile=/run/metadata/coreos');
  }
  for (const v of d.env) service.push(`Environment=${goQuote(v)}`);
  let exec = d.exec;
  const execLines: (Position | undefined)[] = [undefined];
  let ok = true;
  for (const a of d.args) {
    let text: string;
    if (typeof a.value === 'string') {
      const expanded = expandTemplates(a.value, ctx.platform, ctx.report, a.path, a.pos);
      if (expanded === undefined) {
        ok = false;
        continue;
      }
      text = goQuote(expanded);
    } else {
      text = String(a.value);
    }
    exec += ` \\\n  --${a.flag}=${text}`;
    execLines.push(a.pos);
  }
  if (!ok) return undefined;
  const serviceLines: (Position | undefined)[] = ['[Service]', ...service, 'ExecStart='].map(() => undefined);
  service.push('ExecStart=', `ExecStart=${exec}`, ...(d.extraService ?? []).map((x) => x.line));
  serviceLines.push(...execLines, ...(d.extraService ?? []).map((x) => x.pos));
  const sections: string[] = [];
  const lines: (Position | undefined)[] = [];
  if (unit.length > 0) {
    sections.push(['[Unit]', ...unit].join('\n'));
    lines.push(...['[Unit]', ...unit, ''].map(() => undefined));
  }
  sections.push(['[Service]', ...service].join('\n'));
  lines.push(...serviceLines);
  return { name: d.name, contents: sections.join('\n\n'), lines, at: { node: d.pos, values: {} } };
}
