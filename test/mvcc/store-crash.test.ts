/**
 * kill -9 of a process in the middle of writes: the store opens, consistent at some applied index, with every key
 * exactly as the writes up to that index left it (the WAL replays the rest).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MvccStore } from '../../server/mvcc/store';
import { killWriterAfter } from '../support/crash-writer';

const DIST_STORE = path.join(__dirname, '..', '..', 'dist', 'server', 'mvcc', 'store.js');
const KEYS = 97;

// Entry i puts key k(i % KEYS) = "v<i>" (every 7th entry deletes the key instead, every 1000th from the 500th
// compacts at its revision less 200).
const child = `
const { MvccStore } = require(${JSON.stringify(DIST_STORE)});
const s = MvccStore.open(process.argv[2], { batchInterval: 3, batchLimit: 500 });
const value = Buffer.alloc(200, 120);
let i = s.consistentIndex();
function burst() {
  for (let n = 0; n < 300; n++) {
    i++;
    if (i % 1000 === 500) {
      s.compact(s.rev() - 200, i);
      continue;
    }
    const t = s.write(i);
    const key = Buffer.from('k' + (i % ${KEYS}));
    if (i % 7 === 0) t.deleteRange(key, undefined);
    else t.put(key, Buffer.concat([Buffer.from('v' + i + ':'), value]), 0n);
    t.end();
  }
  process.stdout.write(i + '\\n');
  setImmediate(burst);
}
burst();
`;

test('kill -9 mid-writes: reopens consistent at an index at or below the last applied one', async () => {
  if (!existsSync(DIST_STORE)) throw new Error(`${DIST_STORE} is missing: run npm run build first (npm test does)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'mvcc-crash-'));
  try {
    const script = path.join(dir, 'writer.js');
    writeFileSync(script, child);
    let lastCi = 0;
    for (let round = 0; round < 3; round++) {
      await killWriterAfter(script, path.join(dir, 'db'), 3000 + round * 1000);

      const s = MvccStore.open(path.join(dir, 'db'));
      try {
        const ci = s.consistentIndex();
        expect(ci).toBeGreaterThan(lastCi); // what was committed before a crash stays
        lastCi = ci;
        // every entry wrote one revision (a delete of a missing key writes none, a compaction none)
        const expected = new Map<string, string | undefined>();
        const atRev: Map<string, string | undefined>[] = [];
        let rev = 1; // a new store's revision, as etcd's
        let compactRev = -1;
        for (let i = 1; i <= ci; i++) {
          atRev[rev] ??= new Map(expected);
          if (i % 1000 === 500) {
            compactRev = rev - 200;
            continue;
          }
          const k = `k${i % KEYS}`;
          if (i % 7 === 0) {
            if (expected.get(k) !== undefined) rev++;
            expected.set(k, undefined);
          } else {
            rev++;
            expected.set(k, `v${i}`);
          }
        }
        atRev[rev] = new Map(expected);
        expect([s.rev(), s.compactRev()]).toEqual([rev, compactRev]);
        const got = new Map<string, string>();
        for (const kv of s.range(Buffer.from('k'), Buffer.from('l')).kvs) got.set(`${kv.key}`, `${kv.value}`.split(':')[0]);
        for (let k = 0; k < KEYS; k++) expect([`k${k}`, got.get(`k${k}`)]).toEqual([`k${k}`, expected.get(`k${k}`)]);
        // a read at the compaction revision sees the keys as they were then
        const past = new Map<string, string>();
        for (const kv of s.range(Buffer.from('k'), Buffer.from('l'), { rev: compactRev }).kvs) past.set(`${kv.key}`, `${kv.value}`.split(':')[0]);
        for (let k = 0; k < KEYS; k++) expect([compactRev, `k${k}`, past.get(`k${k}`)]).toEqual([compactRev, `k${k}`, atRev[compactRev].get(`k${k}`)]);
      } finally {
        await s.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
