/**
 * One member per data dir. etcd holds flocks on its WAL files and its bbolt file, so a second etcd started on the
 * same data dir waits for the first to let go (bbolt's open blocks; etcd warns after 10 s). LMDB lets many
 * processes share a store and Node has no flock, so the lock here is a Linux abstract Unix socket named after the
 * data dir's real path: binding it is exclusive and the kernel releases it when the process ends, however it ends
 * (kill -9 included), leaving nothing on disk. Its limit: abstract sockets belong to a network namespace, so two
 * containers with their own namespaces sharing one volume do not see each other's lock (Kubernetes' ReadWriteOnce
 * volumes keep that from happening there).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';

/** How long a second process waits in silence before it says why it waits (etcd's 10 s flock warning). */
const WARN_AFTER_MS = 10_000;
const RETRY_MS = 100;

export interface DirLock {
  release(): void;
}

/** The socket name for a directory (exported for tests). */
export function lockName(dir: string): string {
  const real = fs.realpathSync(dir);
  return `\0ts-etcd:${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
}

/**
 * Takes the directory's lock, waiting (and, after 10 s, warning once) while another process holds it. The returned
 * lock is released by release() or by the process ending.
 */
export async function lockDir(dir: string, warn: (msg: string) => void, opts: { warnAfterMs?: number } = {}): Promise<DirLock> {
  const name = lockName(dir);
  const started = Date.now();
  let warned = false;
  for (;;) {
    const server = net.createServer();
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen({ path: name, exclusive: true }, () => resolve(undefined));
    });
    if (!err) {
      server.unref();
      // Nobody is meant to connect: a connection is refused at once.
      server.on('connection', (s) => s.destroy());
      let held = true;
      return {
        release: () => {
          if (held) server.close();
          held = false;
        },
      };
    }
    server.close();
    if (err.code !== 'EADDRINUSE') throw err;
    if (!warned && Date.now() - started >= (opts.warnAfterMs ?? WARN_AFTER_MS)) {
      warned = true;
      warn(`data dir ${dir} is in use by another process (another member on the same data dir?); waiting for it to stop`);
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}
