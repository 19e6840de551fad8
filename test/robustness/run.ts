/**
 * Long robustness runs, and replays. Built with `npx tsc -p test/robustness/tsconfig.json` (after the server's build)
 * to dist/test/robustness/run.js, or all at once with `npm run robustness -- <flags>`:
 *
 *   --seed N           the seed (default: a new one, printed); the same seed replays the same schedule
 *   --minutes M        how long the clients run (or --seconds S; default 10 minutes)
 *   --ops N            at most this many operations (default 10,000,000)
 *   --clients N        concurrent v2 clients (default 6)
 *   --registers N      v2 register keys (default 4)
 *   --no-v2            no v2 workload
 *   --no-v3            no v3 workload (by default both run at once, on one cluster)
 *   --v3-clients N     v3 register and write-once clients (default 4)
 *   --v3-registers N   v3 register keys (default 3)
 *   --lease-clients N  v3 lease clients (default 2)
 *   --watchers N       v3 watchers (default 2)
 *   --faults LIST      kill,term,stop,partition,oneway,member (default all; "none" for none)
 *   --no-ttl           no TTL keys in the workload
 *   --no-control       skip the negative control
 *   --out DIR          where to save the history, report and members' logs (default: a new dir under the temp dir)
 *   --check FILE       check a saved history.json again (no cluster), printing the smallest illegal fragments
 *
 * Exit status: 0 when every check passed, 1 on a violation, 2 on a usage error.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkFinalKeys, checkRegisters, checkTTLReads } from './checks';
import { checkV3 } from './checks-v3';
import { FAULT_KINDS, FaultKind } from './faults';
import { DEFAULTS, RunOptions, SavedRun, TTL_PREFIX, UNIQUE_PREFIX, runRobustness, summary } from './runner';
import { V3Options, V3_LEASE, V3_REG, V3_UNIQ } from './workload-v3';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nsee the comment at the top of test/robustness/run.ts for the flags\n`);
  process.exit(2);
}

function parse(argv: string[]): { run?: RunOptions; check?: string } {
  const o: RunOptions = { ...DEFAULTS, seed: Math.floor(Math.random() * 2 ** 31), durationMs: 10 * 60000, maxOps: 10_000_000, log: (l) => console.log(l) };
  const v3: V3Options = { ...(DEFAULTS.v3 as V3Options) };
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) usage(`${a} needs a number`);
      return v;
    };
    switch (a) {
      case '--seed': o.seed = Math.floor(num()); break;
      case '--minutes': o.durationMs = num() * 60000; break;
      case '--seconds': o.durationMs = num() * 1000; break;
      case '--ops': o.maxOps = num(); break;
      case '--clients': o.clients = Math.max(1, num()); break;
      case '--registers': o.registers = Math.max(1, num()); break;
      case '--faults': {
        const list = (argv[++i] ?? '').split(',').filter((f) => f && f !== 'none');
        for (const f of list) if (!FAULT_KINDS.includes(f as FaultKind)) usage(`unknown fault ${f} (known: ${FAULT_KINDS.join(', ')})`);
        o.faults = list as FaultKind[];
        break;
      }
      case '--no-ttl': o.ttl = false; break;
      case '--no-v2': o.v2 = false; break;
      case '--no-v3': o.v3 = false; break;
      case '--v3-clients': v3.clients = Math.max(1, num()); break;
      case '--v3-registers': v3.registers = Math.max(1, num()); break;
      case '--lease-clients': v3.leaseClients = num(); break;
      case '--watchers': v3.watchers = num(); break;
      case '--no-control': o.control = false; break;
      case '--out': out = argv[++i]; break;
      case '--check': return { check: argv[++i] ?? usage('--check needs a file') };
      default: usage(`unknown flag ${a}`);
    }
  }
  if (o.v3) o.v3 = v3;
  if (!o.v2 && !o.v3) usage('--no-v2 and --no-v3 leave nothing to run');
  o.outDir = out ?? mkdtempSync(path.join(os.tmpdir(), `ts-etcd-robustness-${o.seed}-`));
  return { run: o };
}

/** Checks a saved history again, as the run did. */
function recheck(file: string): number {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as SavedRun;
  const lin = checkRegisters(saved.ops, { t0: saved.t0 });
  const keys = checkFinalKeys([...saved.ops, ...saved.controlOps], saved.present, { uniquePrefix: UNIQUE_PREFIX, ttlPrefix: TTL_PREFIX });
  const violations = [...lin.violations, ...keys.lost.map((l) => `lost write: ${l}`), ...keys.phantom.map((p) => `never written: ${p}`), ...checkTTLReads(saved.ops).map((t) => `TTL: ${t}`)];
  console.log(`seed ${saved.options.seed}: ${saved.ops.length} ops; linearizability ${lin.report.verdict} on ${lin.report.keys} registers (${lin.report.checkMs} ms)`);
  if (saved.v3) {
    const r3 = checkV3(saved.v3, { registerPrefix: V3_REG, uniquePrefix: V3_UNIQ, leasePrefix: V3_LEASE });
    violations.push(...r3.violations.map((v) => `v3: ${v}`));
    console.log(`v3: ${saved.v3.ops.length} ops; linearizability ${r3.report.linearizability.verdict} on ${r3.report.linearizability.keys} registers (${r3.report.linearizability.checkMs} ms); ${r3.report.watch.events} watch events`);
  }
  for (const v of violations) console.log(`VIOLATION ${v}`);
  return violations.length === 0 ? 0 : 1;
}

async function main(): Promise<void> {
  // Ports from a slice of their own (the last of test/support's 20), not the one of a lone jest run beside it.
  process.env.JEST_WORKER_ID ??= '20';
  const { run, check } = parse(process.argv.slice(2));
  if (check) process.exit(recheck(check));
  const o = run!;
  console.log(`seed ${o.seed} (replay: --seed ${o.seed}); saving to ${o.outDir}`);
  const report = await runRobustness(o);
  console.log(summary(report));
  if (report.violations.length > 0) console.log(`replay with: node dist/test/robustness/run.js --seed ${o.seed} --seconds ${o.durationMs / 1000}; re-check with --check ${path.join(report.saved!, 'history.json')}`);
  process.exit(report.violations.length === 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
