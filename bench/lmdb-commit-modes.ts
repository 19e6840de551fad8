/**
 * The commit options the MVCC store chose between: one LMDB write transaction per applied entry (3 puts: record,
 * history, latest; 256-byte values) with fsync on commit (lmdb-js default), without (noSync), and without with a
 * write map (noSync + useWritemap). Compare with bench/mvcc-store.ts (buffer + batched commits).
 * `node dist/bench/lmdb-commit-modes.js [N]` (N defaults to 20,000).
 */
import { mkdtempSync, rmSync } from 'fs';
import { open, RootDatabaseOptions } from 'lmdb';
import { tmpdir } from 'os';
import * as path from 'path';

async function run(name: string, extra: Partial<RootDatabaseOptions>, n: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lmdb-modes-'));
  const env = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', ...extra });
  const dbs = ['kv', 'hist', 'latest'].map((name) => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' }));
  const value = Buffer.alloc(256, 1);
  const t0 = performance.now();
  for (let i = 1; i <= n; i++) {
    const k = Buffer.from(`key${(i * 7919) % n}`);
    const rev = Buffer.alloc(16);
    rev.writeUInt32BE(i, 4);
    const rec = Buffer.concat([k, value]);
    env.transactionSync(() => {
      dbs[0].putSync(rev, rec);
      dbs[1].putSync(Buffer.concat([k, rev]), Buffer.from([0]));
      dbs[2].putSync(k, rev);
    });
  }
  console.log(JSON.stringify({ mode: name, entries: n, perSec: Math.round(n / ((performance.now() - t0) / 1000)) }));
  await env.close();
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 20000);
  await run('txn per entry, fsync', {}, Math.min(n, 5000));
  await run('txn per entry, noSync', { noSync: true }, n);
  await run('txn per entry, noSync + writemap', { noSync: true, useWritemap: true }, n);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
