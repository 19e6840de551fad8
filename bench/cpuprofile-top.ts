/**
 * The top self-time functions of a V8 .cpuprofile (from `node --cpu-prof`), for finding where a server spends its
 * CPU under a benchmark's load:
 *
 *   node dist/bench/cpuprofile-top.js PROFILE.cpuprofile [N]
 *
 * Self time is the sum of the sample intervals whose top frame is the function (by name, file and line), with its
 * share of all samples; "(garbage collector)", "(program)" and "(idle)" are V8's own buckets.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function main(): void {
  const [file, n] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpuprofile-top PROFILE.cpuprofile [N]');
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]);
    if (!node) continue;
    const dt = p.timeDeltas[i] ?? 0;
    const f = node.callFrame;
    const where = f.url ? ` ${f.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n ?? 25));
  console.log(`${(total / 1000).toFixed(0)} ms sampled`);
  for (const [k, us] of top) console.log(`${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}

main();
