/**
 * kill -9 of a process granting leases, putting keys on them and revoking them: the store reopens at some applied
 * index with the leases, their keys and the keyspace exactly as the entries up to that index left them (the lease
 * table is written with the consistent index, never ahead of or behind the keys).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MvccStore } from '../../server/mvcc/store';
import { killWriterAfter } from '../support/crash-writer';
import { Lessor } from '../../server/lease/lessor';

const DIST = path.join(__dirname, '..', '..', 'dist', 'server');
const KEYS = 13;

// Entry i: i % 10 == 1 grants lease i (TTL 60); i % 10 == 7 revokes lease i - 16 (granted a decade before) when it
// exists; otherwise it puts k(i % KEYS) on the latest lease (none when i % 3 == 0).
const step = `
function step(i, grant, revoke, put) {
  if (i % 10 === 1) return grant(BigInt(i));
  if (i % 10 === 7) return revoke(BigInt(i - 16));
  const latest = BigInt(i - ((i - 1) % 10));
  put('k' + (i % ${KEYS}), i % 3 === 0 ? 0n : latest);
}
`;

const child = `
const { MvccStore } = require(${JSON.stringify(path.join(DIST, 'mvcc', 'store.js'))});
const { Lessor } = require(${JSON.stringify(path.join(DIST, 'lease', 'lessor.js'))});
${step}
const s = MvccStore.open(process.argv[2], { batchInterval: 3, batchLimit: 300 });
const le = new Lessor({ store: s, minTTL: 1, now: Date.now, expiredRetryMs: 1000 });
let i = s.consistentIndex();
function burst() {
  for (let n = 0; n < 200; n++) {
    i++;
    step(i, (id) => { le.grant(id, 60); s.setConsistentIndex(i); }, (id) => {
      if (le.lookup(id)) le.revoke(id, i); else s.setConsistentIndex(i);
    }, (k, lease) => { const t = s.write(i); t.put(Buffer.from(k), Buffer.from('v' + i), lease); t.end(); });
  }
  process.stdout.write(i + '\\n');
  setImmediate(burst);
}
burst();
`;

const modelStep = new Function(`${step}; return step;`)() as (i: number, grant: (id: bigint) => void, revoke: (id: bigint) => void, put: (k: string, lease: bigint) => void) => void;

test('kill -9 mid-writes: leases, their keys and the keyspace reopen as the entries up to the consistent index left them', async () => {
  if (!existsSync(path.join(DIST, 'lease', 'lessor.js'))) throw new Error('dist is missing: run npm run build first (npm test does)');
  const dir = mkdtempSync(path.join(tmpdir(), 'lease-crash-'));
  try {
    const script = path.join(dir, 'writer.js');
    writeFileSync(script, child);
    let lastCi = 0;
    for (let round = 0; round < 3; round++) {
      await killWriterAfter(script, path.join(dir, 'db'), 2000 + round * 700);

      const s = MvccStore.open(path.join(dir, 'db'));
      try {
        const le = new Lessor({ store: s, minTTL: 1, now: Date.now, expiredRetryMs: 1000 });
        const ci = s.consistentIndex();
        expect(ci).toBeGreaterThan(lastCi);
        lastCi = ci;
        // the model: key -> [value, lease], lease -> its keys
        const kvs = new Map<string, [string, bigint]>();
        const leases = new Map<bigint, Set<string>>();
        for (let i = 1; i <= ci; i++) {
          modelStep(
            i,
            (id) => void leases.set(id, new Set()),
            (id) => {
              for (const k of leases.get(id) ?? []) kvs.delete(k);
              leases.delete(id);
            },
            (k, lease) => {
              const old = kvs.get(k);
              if (old) leases.get(old[1])?.delete(k);
              kvs.set(k, [`v${i}`, lease]);
              leases.get(lease)?.add(k);
            },
          );
        }
        const got = new Map<string, [string, bigint]>();
        for (const kv of s.range(Buffer.from('k'), Buffer.from('l')).kvs) got.set(`${kv.key}`, [`${kv.value}`, kv.lease]);
        expect(got).toEqual(kvs);
        expect(new Map(le.leases().map((l) => [l.id, new Set(l.keyList().map(String))]))).toEqual(leases);
      } finally {
        await s.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
