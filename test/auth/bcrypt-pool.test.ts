/**
 * bcrypt off the event loop (server/auth/bcrypt-pool.ts), and the auth store's two kinds of password entries: a
 * version 2 Auth entry carries the hash the proposing member made, which every member keeps as it is; a version 1
 * entry (a log written by the previous release) carries the password, hashed while applying, as before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { InternalRaftRequest } from '../../server/api/v3rpc/pb/etcdserverpb/raft_internal';
import { checkPassword, hashPassword } from '../../server/auth/bcrypt';
import { checkPasswordAsync, hashPasswordAsync } from '../../server/auth/bcrypt-pool';
import { AuthStore } from '../../server/auth/store';
import { newTokenProvider } from '../../server/auth/tokens';
import { MvccStore } from '../../server/mvcc/store';

describe('bcrypt on worker threads', () => {
  test('hashes verify with the synchronous bcrypt and the other way round', async () => {
    const h = await hashPasswordAsync('secret', 4);
    expect(h.toString()).toMatch(/^\$2a\$04\$[./A-Za-z0-9]{53}$/);
    expect(checkPassword(h, 'secret')).toBe(true);
    expect(await checkPasswordAsync(hashPassword('pw', 4), 'pw')).toBe(true);
    expect(await checkPasswordAsync(hashPassword('pw', 4), 'pW')).toBe(false);
    expect(await checkPasswordAsync('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*U')).toBe(true);
    expect(await checkPasswordAsync('garbage', 'secret')).toBe(false);
  });

  test('timers keep firing while a hash is computed (the event loop is not held)', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      // Cost 12: a few hundred ms of CPU. Run inline, no timer could fire before the hash is done.
      const pending = hashPasswordAsync('secret', 12);
      let during = 0;
      await Promise.race([pending, new Promise<void>((resolve) => {
        const check = setInterval(() => {
          during = ticks;
          if (ticks >= 5) {
            clearInterval(check);
            resolve();
          }
        }, 5);
        void pending.finally(() => clearInterval(check));
      })]);
      expect(during).toBeGreaterThanOrEqual(5);
      expect(checkPassword(await pending, 'secret')).toBe(true);
    } finally {
      clearInterval(timer);
    }
  });
});

describe('the auth store applies password entries of both versions', () => {
  let dir: string;
  let mvcc: MvccStore;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'auth-pw-'));
    mvcc = MvccStore.open(dir, { batchInterval: 5 });
  });
  afterEach(async () => {
    await mvcc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const entry = (r: Partial<InternalRaftRequest>) => InternalRaftRequest.encode(InternalRaftRequest.fromPartial({ header: { ID: 1n }, ...r })).finish();

  test('version 2 keeps the hash it carries; version 1 hashes the password it carries', async () => {
    const store = new AuthStore(mvcc, newTokenProvider('simple', 300), { bcryptCost: 4 });
    const hash = (await hashPasswordAsync('pw-a', 4)).toString('latin1');
    expect(store.apply(entry({ authUserAdd: { name: 'a', password: hash, options: { noPassword: false } } }), { index: 1, term: 1, requestId: 0, version: 2, legacy: false }).error).toBeUndefined();
    expect(store.apply(entry({ authUserAdd: { name: 'b', password: 'pw-b', options: { noPassword: false } } }), { index: 2, term: 1, requestId: 0, version: 1, legacy: false }).error).toBeUndefined();
    expect(store.apply(entry({ authEnable: {} }), { index: 3, term: 1, requestId: 0, version: 1, legacy: false }).error).toBeDefined(); // no root user yet
    expect(store.apply(entry({ authUserAdd: { name: 'root', password: 'r', options: { noPassword: false } } }), { index: 4, term: 1, requestId: 0, version: 1, legacy: false }).error).toBeUndefined();
    expect(store.apply(entry({ authUserGrantRole: { user: 'root', role: 'root' } }), { index: 5, term: 1, requestId: 0, version: 1, legacy: false }).error).toBeUndefined();
    expect(store.apply(entry({ authEnable: {} }), { index: 6, term: 1, requestId: 0, version: 1, legacy: false }).error).toBeUndefined();
    expect(store.passwordOf('a').hash.toString('latin1')).toBe(hash);
    expect(checkPassword(store.passwordOf('b').hash, 'pw-b')).toBe(true);
    // A changed password, version 2: the new hash as given.
    const next = (await hashPasswordAsync('pw-a2', 4)).toString('latin1');
    expect(store.apply(entry({ header: { ID: 2n, username: 'root', authRevision: 0n }, authUserChangePassword: { name: 'a', password: next } }), { index: 7, term: 1, requestId: 0, version: 2, legacy: false }).error).toBeUndefined();
    expect(store.passwordOf('a').hash.toString('latin1')).toBe(next);
    expect(() => store.passwordOf('nobody')).toThrow('authentication failed');
  });
});
