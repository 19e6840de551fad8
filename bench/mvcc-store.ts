/**
 * The MVCC store alone: N puts of 256-byte values (one write txn each, as the applier does), then RSS, database
 * size and the time to reopen. `node dist/bench/mvcc-store.js [N] [dir]` (N defaults to 1,000,000).
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { MvccStore } from '../server/mvcc/store';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  const dir = process.argv[3] ?? mkdtempSync(path.join(tmpdir(), 'mvcc-bench-'));
  const value = Buffer.alloc(256, 97);
  let s = MvccStore.open(dir);
  const t0 = performance.now();
  for (let i = 1; i <= n; i++) {
    const t = s.write(i);
    t.put(Buffer.from(`/registry/key/${i.toString(16).padStart(8, '0')}`), value, 0n);
    t.end();
    if (i % 10000 === 0) await new Promise((r) => setImmediate(r)); // let batches commit, as a server would
  }
  const applyMs = performance.now() - t0;
  const cpu = process.cpuUsage();
  await s.close();
  const totalMs = performance.now() - t0;
  const rss = process.memoryUsage().rss;
  const du = execFileSync('du', ['-sk', dir]).toString().split('\t')[0];
  const t1 = performance.now();
  s = MvccStore.open(dir);
  const one = s.range(Buffer.from(`/registry/key/${(n >> 1).toString(16).padStart(8, '0')}`), undefined);
  const reopenMs = performance.now() - t1;
  const t2 = performance.now();
  const got = s.range(Buffer.from('/registry/key/'), Buffer.from('/registry/key0'), { limit: 10 });
  const limit10Ms = performance.now() - t2;
  console.log(
    JSON.stringify({
      puts: n,
      applyPerSec: Math.round(n / (applyMs / 1000)),
      applyCpuSec: Math.round((cpu.user + cpu.system) / 1e4) / 100,
      withCommitPerSec: Math.round(n / (totalMs / 1000)),
      rssMB: Math.round(rss / 2 ** 20),
      dbFileMB: Math.round(s.dbSize() / 2 ** 20),
      diskMB: Math.round(Number(du) / 1024),
      reopenAndGetMs: Math.round(reopenMs),
      found: one.count,
      rangeLimit10WithCountMs: Math.round(limit10Ms),
      count: got.count,
    }),
  );
  await s.close();
  if (!process.argv[3]) rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
