/**
 * The SHA-256 that etcd's snapshot files end with, of what comes before it: on a worker thread, so that a restore
 * checks it while it imports the file (both read the file; the page cache serves the second), rather than in a pass
 * of its own first. Where the compiled worker is not found (TypeScript run without a build), computed inline.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/** Large sequential reads: the file is read once, front to back, at the speed of the disk. */
const CHUNK = 4 << 20;

/** The SHA-256 of the first size bytes of file. */
export function sha256Prefix(file: string, size: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const sha = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size)));
    for (let at = 0; at < size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      if (n === 0) throw new Error(`${file}: file ended at byte ${at}`);
      sha.update(buf.subarray(0, n));
      at += n;
    }
    return sha.digest();
  } finally {
    fs.closeSync(fd);
  }
}

/** The compiled worker: next to this file in dist/, or dist/ of the checkout when this file runs from source. */
const WORKER_FILE = [path.join(__dirname, 'snapshot-hash-worker.js'), path.join(__dirname, '../../dist/server/etcdserver/snapshot-hash-worker.js')].find((f) => fs.existsSync(f));

/**
 * Starts hashing the first size bytes of file on a worker thread, which goes on while this thread is busy; the
 * promise is its SHA-256, or the error of reading the file.
 */
export function sha256PrefixInBackground(file: string, size: number): Promise<Buffer> {
  if (!WORKER_FILE) return new Promise((resolve) => resolve(sha256Prefix(file, size)));
  return new Promise<Buffer>((resolve, reject) => {
    const worker = new Worker(WORKER_FILE, { workerData: { file, size } });
    let settled = false;
    worker.once('message', (m: { sha?: Uint8Array; error?: string }) => {
      settled = true;
      if (m.sha) resolve(Buffer.from(m.sha));
      else reject(new Error(m.error));
    });
    // A worker that cannot run (it posts the errors of reading the file): the hash on this thread instead.
    worker.once('error', () => {
      settled = true;
      try {
        resolve(sha256Prefix(file, size));
      } catch (err) {
        reject(err);
      }
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`snapshot hash worker exited with code ${code}`));
    });
  });
}
