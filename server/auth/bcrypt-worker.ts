/**
 * A worker thread of bcrypt-pool.ts: runs bcrypt jobs posted by the main thread, one at a time, and posts back
 * {id, result} or {id, error}.
 */
import { parentPort } from 'node:worker_threads';
import { checkPassword, hashPassword } from './bcrypt';
import type { BcryptJob } from './bcrypt-pool';

parentPort!.on('message', (job: BcryptJob) => {
  try {
    const result = job.op === 'hash' ? hashPassword(Buffer.from(job.password), job.cost).toString('latin1') : checkPassword(job.hash, Buffer.from(job.password));
    parentPort!.postMessage({ id: job.id, result });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
