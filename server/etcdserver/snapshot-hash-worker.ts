/**
 * A worker thread of restore.ts: the SHA-256 of a snapshot file's first `size` bytes, read in large sequential
 * chunks while the main thread imports the file, posted back as {sha} (or {error}).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { sha256Prefix } from './snapshot-hash';

try {
  const { file, size } = workerData as { file: string; size: number };
  parentPort!.postMessage({ sha: sha256Prefix(file, size) });
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
