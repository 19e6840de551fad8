/**
 * Idle memory (issue 19): the resident set of our server 2 s after its first healthy /health answer (as bench/run.ts
 * measures it, no load), split into anonymous memory (V8's heap, malloc) and file pages (the node binary, native
 * addons), median of several starts on fresh data dirs; and the floor, a bare `node -e 'setInterval(()=>{},1000)'`.
 *
 *   npm run build && node dist/bench/idle-rss.js
 *   IDLE_RSS_STARTS=5 node dist/bench/idle-rss.js
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './cluster';
import { healthy } from './v3';
import { NODE_FLAGS } from '../server/node-flags';

const OURS = path.join(__dirname, '../server/main.js');
const STARTS = Number(process.env.IDLE_RSS_STARTS ?? 3);
const SETTLE_MS = 2000;

interface Sample {
  rss: number;
  anon: number;
  file: number;
  /** spawn to first healthy answer (ms) */
  ready: number;
}

/** VmRSS, RssAnon and RssFile of a process, in MiB. */
function sample(pid: number, ready: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), ready };
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(proc: ChildProcess, ready: () => Promise<boolean>): Promise<Sample> {
  const t0 = Date.now();
  const deadline = t0 + 30_000;
  while (!(await ready())) {
    if (proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error('not ready within 30 s');
    await sleep(20);
  }
  const readyMs = Date.now() - t0;
  await sleep(SETTLE_MS);
  return sample(proc.pid!, readyMs);
}

async function ours(): Promise<Sample> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'idle-rss-'));
  const [c, p] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${c}`;
  const peer = `http://127.0.0.1:${p}`;
  const args = ['--data-dir', path.join(dir, 'data'), '--enable-v2=true', '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`];
  const proc = spawn(process.execPath, [...NODE_FLAGS, OURS, ...args], { stdio: 'ignore' });
  try {
    return await measure(proc, () => healthy(url));
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function floor(): Promise<Sample> {
  const proc = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
  try {
    return await measure(proc, async () => true);
  } finally {
    proc.kill('SIGKILL');
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function line(name: string, ss: Sample[]): string {
  const m = (k: keyof Sample) => median(ss.map((s) => s[k]));
  return `${name.padEnd(6)} ${m('rss').toFixed(1).padStart(7)} ${m('anon').toFixed(1).padStart(7)} ${m('file').toFixed(1).padStart(7)}   [${ss.map((s) => s.rss.toFixed(1)).join(', ')}]  ready ${m('ready')} ms`;
}

async function main(): Promise<void> {
  const oursSamples: Sample[] = [];
  const floorSamples: Sample[] = [];
  for (let i = 0; i < STARTS; i++) {
    oursSamples.push(await ours());
    floorSamples.push(await floor());
  }
  console.log(`idle RSS (MiB), ${SETTLE_MS / 1000} s after the first healthy answer, median of ${STARTS} starts (node ${process.version})`);
  console.log('          rss    anon    file   [rss of each start]');
  console.log(line('ours', oursSamples));
  console.log(line('node', floorSamples));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
