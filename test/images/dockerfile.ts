/** The Dockerfiles as instructions (parsed by dockerfile-ast, the parser of the Docker language server), by stage. */
import { DockerfileParser, Instruction } from 'dockerfile-ast';
import * as fs from 'fs';

export interface Stage {
  /** FROM's image (ARGs expanded with their defaults, or with the given build arguments). */
  from: string;
  name?: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  file: string;
  /** ARGs before the first FROM, with their values (defaults, or the build arguments given). */
  globalArgs: Record<string, string>;
  stages: Stage[];
  instructions: Instruction[];
}

export function expandArgs(s: string, args: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string | undefined, b: string | undefined) => args[(a ?? b) as string] ?? '');
}

export function parseDockerfile(file: string, buildArgs: Record<string, string> = {}): ParsedDockerfile {
  const doc = DockerfileParser.parse(fs.readFileSync(file, 'utf8'));
  const instructions = doc.getInstructions();
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    const kw = ins.getKeyword();
    if (kw === 'FROM') {
      const words = (ins.getArgumentsContent() ?? '').split(/\s+/).filter((w) => !w.startsWith('--'));
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ from: expandArgs(words[0] ?? '', globalArgs), name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (kw !== 'ARG') throw new Error(`${file}: ${kw} before the first FROM`);
      const content = ins.getArgumentsContent() ?? '';
      const eq = content.indexOf('=');
      const name = eq >= 0 ? content.slice(0, eq) : content;
      const def = eq >= 0 ? expandArgs(content.slice(eq + 1).replace(/^"(.*)"$/, '$1'), globalArgs) : '';
      globalArgs[name] = buildArgs[name] ?? def;
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { file, globalArgs, stages, instructions };
}

/** The arguments of a JSON-form (exec-form) instruction, or undefined if it is in shell form. */
export function execForm(ins: Instruction): string[] | undefined {
  let content = (ins.getArgumentsContent() ?? '').trim();
  if (ins.getKeyword() === 'HEALTHCHECK') {
    content = content.replace(/^(--[a-z-]+=\S+\s+)*/, '');
    if (!/^CMD\s/i.test(content)) return undefined;
    content = content.replace(/^CMD\s+/i, '');
  }
  if (!content.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(content) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** A LABEL instruction's key=value pairs. */
export function labelsOf(ins: Instruction): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z0-9._\-/]+)=("(?:[^"\\]|\\.)*"|\S+)/g;
  for (const m of (ins.getArgumentsContent() ?? '').matchAll(re)) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  return out;
}

/** An instruction's whole text after its keyword, flags included (continuation lines joined). */
export function textOf(ins: Instruction): string {
  return ins.toString().trim().slice(ins.getInstruction().length).trim();
}
