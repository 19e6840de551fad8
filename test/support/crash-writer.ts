/**
 * For crash tests of the stores: run a writer script (a child that prints the index it applied, one a line) on a
 * data dir, let it apply `entries` more entries than its first report, and kill -9 it.
 */
import { spawn } from 'node:child_process';

export async function killWriterAfter(script: string, dataDir: string, entries: number): Promise<void> {
  const p = spawn(process.execPath, [script, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let first = 0;
  await new Promise<void>((resolve, reject) => {
    p.once('exit', (code) => reject(new Error(`the writer exited with ${code} before it was killed`)));
    p.stdout.on('data', (d: Buffer) => {
      const lines = d.toString().trim().split('\n');
      const applied = Number(lines[lines.length - 1]);
      first ||= applied;
      if (applied - first >= entries) resolve();
    });
  });
  p.removeAllListeners('exit');
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}
