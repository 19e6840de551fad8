/**
 * bcrypt off the event loop. A hash or check at the default cost takes 50–500 ms of CPU; on the main thread that
 * stalls every client and the Raft heartbeats with it (a burst of Authenticate calls, or a UserAdd applied on every
 * member, was enough for followers to start an election). etcd runs bcrypt on goroutines; here it runs on up to two
 * worker threads, started on first use and let go of (unref) while idle, so they never keep a process alive.
 *
 * Where the compiled worker is not found (TypeScript run without a build), the work is done inline, as before.
 */
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { checkPassword, hashPassword } from './bcrypt';

type JobBody = { op: 'hash'; password: Uint8Array; cost: number } | { op: 'check'; password: Uint8Array; hash: string };
export type BcryptJob = JobBody & { id: number };

type Answer = { id: number; result?: string | boolean; error?: string };

/** The compiled worker: next to this file in dist/, or dist/ of the checkout when this file runs from source. */
const WORKER_FILE = [path.join(__dirname, 'bcrypt-worker.js'), path.join(__dirname, '../../dist/server/auth/bcrypt-worker.js')].find((f) => existsSync(f));
const SIZE = Math.max(1, Math.min(2, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length));

interface Slot {
  worker: Worker;
  jobs: Map<number, { resolve: (v: string | boolean) => void; reject: (e: Error) => void }>;
}

const slots: Slot[] = [];
let nextId = 1;

function spawnSlot(): Slot {
  const slot: Slot = { worker: new Worker(WORKER_FILE!), jobs: new Map() };
  slot.worker.unref();
  slot.worker.on('message', (a: Answer) => {
    const job = slot.jobs.get(a.id);
    if (!job) return;
    slot.jobs.delete(a.id);
    if (slot.jobs.size === 0) slot.worker.unref();
    if (a.error !== undefined) job.reject(new Error(a.error));
    else job.resolve(a.result!);
  });
  // A worker that dies takes its jobs with it: they fail, and the next job starts a new worker.
  const fail = (err: Error) => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    for (const job of slot.jobs.values()) job.reject(err);
    slot.jobs.clear();
  };
  slot.worker.on('error', fail);
  slot.worker.on('exit', (code) => fail(new Error(`bcrypt worker exited with code ${code}`)));
  slots.push(slot);
  return slot;
}

function run(job: JobBody): Promise<string | boolean> {
  // The least busy worker; a new one while fewer than SIZE run and every one is busy.
  let slot = slots.reduce<Slot | undefined>((best, s) => (!best || s.jobs.size < best.jobs.size ? s : best), undefined);
  if (!slot || (slot.jobs.size > 0 && slots.length < SIZE)) slot = spawnSlot();
  const id = nextId++;
  const s = slot;
  return new Promise((resolve, reject) => {
    if (s.jobs.size === 0) s.worker.ref();
    s.jobs.set(id, { resolve, reject });
    s.worker.postMessage({ ...job, id });
  });
}

const bytes = (p: string | Uint8Array): Uint8Array => (typeof p === 'string' ? Buffer.from(p) : p);

/** bcrypt.GenerateFromPassword on a worker thread: "$2a$cost$salt+hash". */
export async function hashPasswordAsync(password: string | Uint8Array, cost: number): Promise<Buffer> {
  if (!WORKER_FILE) return hashPassword(Buffer.from(bytes(password)), cost);
  return Buffer.from((await run({ op: 'hash', password: bytes(password), cost })) as string, 'latin1');
}

/** bcrypt.CompareHashAndPassword on a worker thread. */
export async function checkPasswordAsync(hash: Buffer | string, password: string | Uint8Array): Promise<boolean> {
  const h = typeof hash === 'string' ? hash : hash.toString('latin1');
  if (!WORKER_FILE) return checkPassword(h, Buffer.from(bytes(password)));
  return (await run({ op: 'check', password: bytes(password), hash: h })) as boolean;
}
