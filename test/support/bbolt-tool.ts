/**
 * Debian's bbolt as a reference for our bbolt reader and writer: test/fixtures/bbolt-tool/main.go, built offline
 * (GOPATH mode, Debian's Go sources: golang-go and golang-etcd-server-dev, which .ci/run installs) once per source
 * version into the temp dir, then run: `make FILE` writes a database with nested, inline and empty buckets,
 * overflow pages and a freelist; `dump FILE` runs bbolt's check and lists every bucket.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SOURCE = path.join(__dirname, '..', 'fixtures', 'bbolt-tool', 'main.go');
const GOCODE = '/usr/share/gocode';

/** A bucket as the tool dumps it: root 0 for an inline bucket; entries with a value (hex) or a nested bucket. */
export interface DumpedBucket {
  root: number;
  entries: { k: string; v?: string; b?: DumpedBucket }[];
}

export interface Dump {
  /** bbolt's tx.Check errors */
  check: string[];
  root: DumpedBucket;
}

let built: string | undefined;

/** The tool's path, built on first use; fails loudly when Go or Debian's bbolt source is missing. */
export function bboltTool(): string {
  if (built) return built;
  if (!existsSync(path.join(GOCODE, 'src', 'go.etcd.io', 'bbolt', 'db.go'))) {
    throw new Error(`${GOCODE}/src/go.etcd.io/bbolt is missing: apt-get install -y golang-go golang-etcd-server-dev, as .ci/run does`);
  }
  const src = readFileSync(SOURCE);
  const dir = path.join(os.tmpdir(), `ts-etcd-bbolt-tool-${createHash('sha256').update(src).digest('hex').slice(0, 12)}`);
  const bin = path.join(dir, 'bbolt-tool');
  if (!existsSync(bin)) {
    const pkg = path.join(dir, 'gopath', 'src', 'bbolttool');
    mkdirSync(pkg, { recursive: true });
    copyFileSync(SOURCE, path.join(pkg, 'main.go'));
    const env = { ...process.env, GO111MODULE: 'off', GOPATH: `${path.join(dir, 'gopath')}:${GOCODE}`, GOCACHE: path.join(dir, 'cache'), GOPROXY: 'off', GOFLAGS: '' };
    const tmp = `${bin}.${process.pid}`;
    execFileSync('go', ['build', '-o', tmp, 'bbolttool'], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    renameSync(tmp, bin);
  }
  built = bin;
  return bin;
}

export function boltMake(file: string): void {
  execFileSync(bboltTool(), ['make', file], { timeout: 60_000 });
}

export function boltDump(file: string): Dump {
  return JSON.parse(execFileSync(bboltTool(), ['dump', file], { timeout: 60_000, maxBuffer: 256 << 20, encoding: 'utf8' })) as Dump;
}
