/** Runs the built operator (`dist/operator/main.js`) as a child process, the way a Deployment would run it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from '../support/http';
import { waitFor } from '../support/kube/kubelet';

const ROOT = path.join(__dirname, '..', '..');
export const OPERATOR_MAIN = path.join(ROOT, 'dist', 'operator', 'main.js');

/** The build must be there and newer than the sources (`npx tsc -p tsconfig.json`; `npm test` builds first). */
export function checkBuild(): void {
  if (!fs.existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npx tsc -p tsconfig.json`);
  const built = fs.statSync(OPERATOR_MAIN).mtimeMs;
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  const stale = walk(path.join(ROOT, 'operator')).filter((f) => f.endsWith('.ts') && fs.statSync(f).mtimeMs > built);
  if (stale.length > 0) throw new Error(`dist/ is older than ${stale.map((f) => path.relative(ROOT, f)).join(', ')}: run npx tsc -p tsconfig.json`);
}

export class OperatorProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  metricsURL = '';
  private exited?: number | null;

  constructor(readonly identity: string, args: string[], extraEnv: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [OPERATOR_MAIN, '--identity', identity, '--metrics-addr', '127.0.0.1:0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1', ...extraEnv },
    });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line) as Record<string, unknown>;
          this.lines.push(j);
          if (j.message === 'serving /metrics and /healthz') this.metricsURL = `http://${j.address as string}`;
        } catch {
          this.lines.push({ raw: line });
        }
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => this.lines.push({ stderr: d.toString() }));
    this.child.on('exit', (code) => (this.exited = code));
  }

  get running(): boolean {
    return this.exited === undefined;
  }

  async ready(): Promise<void> {
    await waitFor(`${this.identity} to serve /metrics`, () => {
      if (!this.running) throw new Error(`${this.identity} exited: ${JSON.stringify(this.lines.slice(-5))}`);
      return this.metricsURL !== '';
    });
  }

  /** A metric's value (summed over its label sets), 0 when absent. */
  async metric(name: string, labels?: string): Promise<number> {
    const r = await request(this.metricsURL, 'GET', '/metrics');
    let sum = 0;
    for (const line of r.body.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (m && m[1] === name && (labels === undefined || (m[2] ?? '').includes(labels))) sum += Number(m[3]);
    }
    return sum;
  }

  logs(message: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.message === message);
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill(signal);
    await done;
  }
}
