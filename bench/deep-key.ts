/**
 * Issue 11's deep keys, measured side by side against Debian's etcd (single member, --snapshot-count 20, fresh
 * data dir): the time of a PUT of a 5,000-level and of a 1,990-level key and of a /health asked meanwhile, the
 * resident memory before and after, then a recursive GET and a recursive DELETE of the 1,990-level tree (time,
 * size, and whether the answers are etcd's once indexes are taken relative to the PUT), with snapshots in between.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/deep-key.js
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './cluster';
import { NODE_FLAGS } from '../server/node-flags';

const REAL_ETCD = process.env.REAL_ETCD ?? '/usr/bin/etcd';
const OURS = path.join(__dirname, '../server/main.js');
const D5000 = `/deep5000${'/a'.repeat(5000)}`;
const D1990 = `/deep1990${'/a'.repeat(1990)}`;

interface Answer {
  status: number;
  body: string;
  ms: number;
}

function ask(base: string, method: string, p: string, form?: string): Promise<Answer> {
  const t = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t) / 1e6;
  return new Promise((resolve) => {
    const headers: Record<string, string> = form ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {};
    const req = http.request(new URL(p, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: ms() }));
    });
    req.setTimeout(120_000, () => req.destroy(new Error('no answer in 120 s')));
    req.on('error', (err) => resolve({ status: 0, body: err.message, ms: ms() }));
    req.end(form);
  });
}

const rssMB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Indexes made relative to `base` (the 1,990-level PUT's), so that two servers' answers compare. */
const relative = (body: string, base: number) => body.replace(/"(modifiedIndex|createdIndex)":(\d+)/g, (_, k: string, n: string) => `"${k}":${Number(n) - base}`);

async function measure(name: string, command: string, args: string[]): Promise<Record<string, string | number>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'deep-key-'));
  const [cp, pp] = [await freePort(), await freePort()];
  const client = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const proc: ChildProcess = spawn(command, [...args, '--data-dir', dir, '--enable-v2=true', '--snapshot-count', '20',
    '--listen-client-urls', client, '--advertise-client-urls', client, '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`], { stdio: 'ignore' });
  try {
    for (let i = 0; (await ask(client, 'GET', '/health')).status !== 200; i++) {
      if (i > 200) throw new Error(`${name} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const r: Record<string, string | number> = { server: name };
    const rss0 = rssMB(proc.pid!);
    r['RSS at start MB'] = rss0.toFixed(1);
    const [p5000, h5000] = await Promise.all([ask(client, 'PUT', `/v2/keys${D5000}`, 'value=x'), new Promise<Answer>((res) => setTimeout(() => void ask(client, 'GET', '/health').then(res), 5))]);
    r['PUT 5000 levels'] = `${p5000.status || p5000.body} in ${p5000.ms.toFixed(1)} ms`;
    r['/health meanwhile'] = `${h5000.status} in ${h5000.ms.toFixed(1)} ms`;
    const rss1 = rssMB(proc.pid!);
    r['RSS after 5000 MB'] = `${rss1.toFixed(1)} (+${(rss1 - rss0).toFixed(1)})`;
    const p1990 = await ask(client, 'PUT', `/v2/keys${D1990}`, 'value=x');
    r['PUT 1990 levels'] = `${p1990.status} in ${p1990.ms.toFixed(1)} ms`;
    const rss2 = rssMB(proc.pid!);
    r['RSS after 1990 MB'] = `${rss2.toFixed(1)} (+${(rss2 - rss1).toFixed(1)})`;
    const base = (JSON.parse(p1990.body) as { node: { createdIndex: number } }).node.createdIndex;
    const get = await ask(client, 'GET', '/v2/keys/deep1990?recursive=true&sorted=true');
    r['GET 1990 recursive'] = `${get.status}, ${get.body.length} bytes in ${get.ms.toFixed(1)} ms`;
    r.getBody = relative(get.body, base);
    for (let i = 0; i < 25; i++) await ask(client, 'PUT', `/v2/keys/w/${i}`, 'value=v'); // a snapshot or more
    const del = await ask(client, 'DELETE', '/v2/keys/deep1990?recursive=true');
    r['DELETE 1990 recursive'] = `${del.status} in ${del.ms.toFixed(1)} ms`;
    r.delBody = relative(del.body, base);
    for (let i = 25; i < 50; i++) await ask(client, 'PUT', `/v2/keys/w/${i}`, 'value=v');
    const after = await ask(client, 'GET', `/v2/keys${D5000}`);
    r['GET 5000 after snapshots'] = after.status;
    r['/health at the end'] = (await ask(client, 'GET', '/health')).status;
    r['RSS at the end MB'] = rssMB(proc.pid!).toFixed(1);
    return r;
  } finally {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const etcd = await measure('etcd', REAL_ETCD, []);
  const ours = await measure('ours', process.execPath, [...NODE_FLAGS, OURS]);
  for (const k of Object.keys(ours)) if (!k.endsWith('Body')) console.log(`${k.padEnd(26)} ${String(etcd[k]).padEnd(34)} ${ours[k]}`);
  console.log(`recursive GET answer as etcd's: ${ours.getBody === etcd.getBody}; recursive DELETE answer as etcd's: ${ours.delBody === etcd.delBody}`);
  if (ours.delBody !== etcd.delBody) console.log(`  etcd: ${String(etcd.delBody).slice(0, 300)}\n  ours: ${String(ours.delBody).slice(0, 300)}`);
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
