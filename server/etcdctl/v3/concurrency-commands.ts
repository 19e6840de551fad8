/**
 * etcdctl v3's `lock` and `elect`, as etcd 3.4's: clientv3/concurrency over KV, Lease and Watch (not the Lock and
 * Election services), with etcd's arguments, messages and exit codes. Each opens a session (a lease kept alive:
 * --ttl for lock, 60 s for elect); `lock <name>` prints the key it holds and keeps it until SIGINT or SIGTERM (then
 * deletes it), or runs a command while holding it; `elect <name> <proposal>` prints the leader key once elected and
 * resigns on a signal; `elect -l <name>` prints every leader and proclamation in order. A wait given up on a signal
 * is "context canceled"; a session whose lease is lost ends with "session expired".
 */
import { DeleteRangeRequest, LeaseGrantRequest, RangeRequest, type RangeResponse } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { campaign, ConcurrencyError, ContextCanceled, lock, observe, resign, type ConcurrencyClient, type Leadership } from '../../api/v3client/concurrency';
import { CallError, type V3Client } from './client';
import type { Command, Ctx } from './main';
import type { FlagSpec } from '../../pkg/pflag';
import { Printer, UnsupportedFormat, type Format } from './printer';
import { ClientWatcher } from './watch';

/** What the commands need of etcdctl's main. */
export interface ConcurrencyHelpers {
  /** Applies ETCDCTL_* and checks -w (etcdctl does when it builds the client): the output format. */
  format(ctx: Ctx): Format;
  client(ctx: Ctx): Promise<V3Client>;
  /** etcdctl's ExitWithError: "Error: message" on stderr, exit code. */
  fail(code: number, message: string): Error;
  /** Go's exec.Cmd.Run of a command with this environment, its output etcdctl's: Go's error text when it fails. */
  exec(ctx: Ctx, args: string[], env: Record<string, string>): Promise<string | undefined>;
}

const EXIT_ERROR = 1;
const EXIT_BAD_FEATURE = 4;
const EXIT_BAD_ARGS = 128;

/** clientv3/concurrency's default session TTL (elect's sessions). */
const DEFAULT_SESSION_TTL = 60n;

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });

/** clientv3 over the network, as the recipes use it: no deadline on any call (clientv3's background context). */
function recipesClient(c: V3Client, w: ClientWatcher): ConcurrencyClient {
  return {
    range: (r) => c.call((kv) => kv.range, r, Infinity),
    txn: (r) => c.call((kv) => kv.txn, r, Infinity),
    deleteRange: (r) => c.call((kv) => kv.deleteRange, r, Infinity),
    watch: (key, end, rev, signal, onEvents) => new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        cancel();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => finish(new CallError('context canceled'));
      const cancel = w.watch({ key, end: end ?? Buffer.alloc(0), rev, prevKv: false }, async (r) => {
        if (done) return;
        if (r.err !== undefined) return finish(new CallError(r.err));
        try {
          if (await onEvents(r.header, r.events ?? [])) finish();
        } catch (err) {
          finish(err as Error);
        }
      }, () => finish(new CallError('lost watcher waiting for delete')));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort);
    }),
  };
}

/** A session (clientv3's NewSession): a lease of this TTL, kept alive until stopped; `expired` settles if it is lost. */
async function newSession(c: V3Client, ttl: bigint): Promise<{ lease: bigint; expired: Promise<void>; stop(): void }> {
  const r = await c.callLease((l) => l.leaseGrant, LeaseGrantRequest.fromPartial({ TTL: ttl }), Infinity);
  const ac = new AbortController();
  const expired = c.keepAlive(r.ID, () => true, ac.signal);
  return { lease: r.ID, expired, stop: () => ac.abort() };
}

/** SIGINT and SIGTERM caught while a command runs (Go's signal.Notify): the handler is called for the first one. */
function onInterrupt(fn: () => void): () => void {
  let fired = false;
  const h = (): void => {
    if (fired) return;
    fired = true;
    fn();
  };
  process.on('SIGINT', h);
  process.on('SIGTERM', h);
  return () => {
    process.removeListener('SIGINT', h);
    process.removeListener('SIGTERM', h);
  };
}

export function concurrencyCommands(h: ConcurrencyHelpers): Record<string, Command> {
  /** The command's client, session, recipes' client and interrupt signal, all released when `run` settles. */
  const withSession = async (ctx: Ctx, ttl: bigint, run: (s: { c: V3Client; cc: ConcurrencyClient; lease: bigint; expired: Promise<void>; signal: AbortSignal; interrupted: Promise<void> }) => Promise<void>): Promise<void> => {
    h.format(ctx);
    const c = await h.client(ctx);
    const w = new ClientWatcher(c);
    const ac = new AbortController();
    let interrupt!: () => void;
    const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
    const release = onInterrupt(() => {
      ac.abort();
      interrupt();
    });
    let session: Awaited<ReturnType<typeof newSession>> | undefined;
    try {
      session = await newSession(c, ttl);
      await run({ c, cc: recipesClient(c, w), lease: session.lease, expired: session.expired, signal: ac.signal, interrupted });
    } catch (err) {
      // clientv3's errors, a wait given up ("context canceled") and the recipes' own: "Error: <text>"
      if (err instanceof CallError || err instanceof ContextCanceled || err instanceof ConcurrencyError) throw h.fail(EXIT_ERROR, err.message);
      throw err;
    } finally {
      release();
      session?.stop();
      w.stop();
      c.close();
    }
  };

  /** display.Get of a response in the command's format. */
  const display = (ctx: Ctx, r: RangeResponse): void => {
    const p = new Printer(ctx.flags.values.get('write-out') as Format, ctx.flags.values.get('hex') === true);
    try {
      p.get({ stdoutBytes: (b: Buffer) => ctx.io.stdoutBytes(b) }, r);
    } catch (err) {
      if (err instanceof UnsupportedFormat) throw h.fail(EXIT_BAD_FEATURE, err.message);
      throw err;
    }
  };

  const lockCommand = async (ctx: Ctx): Promise<void> => {
    if (ctx.args.length === 0) throw h.fail(EXIT_BAD_ARGS, 'lock takes a lock name argument and an optional command to execute');
    const [name, ...cmdArgs] = ctx.args;
    let ttl = ctx.flags.values.get('ttl') as bigint;
    if (ttl <= 0n) ttl = DEFAULT_SESSION_TTL;
    await withSession(ctx, ttl, async ({ c, cc, lease, expired, signal, interrupted }) => {
      const held = await lock(cc, Buffer.from(name), lease, signal);
      const unlock = () => c.call((kv) => kv.deleteRange, DeleteRangeRequest.fromPartial({ key: held.key }), Infinity);
      if (cmdArgs.length > 0) {
        // the command runs with the lock held; etcdctl's own environment comes after, and wins
        const env: Record<string, string> = { ETCD_LOCK_KEY: held.key.toString(), ETCD_LOCK_REV: String(held.header.revision) };
        for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined && k !== 'ETCDCTL_API') env[k] = v;
        const err = await h.exec(ctx, cmdArgs, env);
        await unlock();
        if (err !== undefined) throw h.fail(EXIT_ERROR, err);
        return;
      }
      const k = await c.call((kv) => kv.range, RangeRequest.fromPartial({ key: held.key }), Infinity);
      if (k.kvs.length === 0) throw h.fail(EXIT_ERROR, 'lock lost on init');
      display(ctx, k);
      const why = await Promise.race([interrupted.then(() => 'signal' as const), expired.then(() => 'expired' as const)]);
      if (why === 'signal') {
        await unlock();
        return;
      }
      throw h.fail(EXIT_ERROR, 'session expired');
    });
  };

  const electCommand = async (ctx: Ctx): Promise<void> => {
    const { args } = ctx;
    if (args.length !== 1 && args.length !== 2) throw h.fail(EXIT_BAD_ARGS, 'elect takes one election name argument and an optional proposal argument');
    const listen = ctx.flags.values.get('listen') === true;
    if (args.length === 1 && !listen) throw h.fail(EXIT_BAD_ARGS, 'no proposal argument but -l not set');
    if (args.length === 2 && listen) throw h.fail(EXIT_BAD_ARGS, 'proposal given but -l is set');
    const name = Buffer.from(args[0]);
    await withSession(ctx, DEFAULT_SESSION_TTL, async ({ c, cc, lease, expired, signal, interrupted }) => {
      if (listen) {
        await observe(cc, name, signal, (r) => display(ctx, r));
        if (!signal.aborted) throw h.fail(EXIT_ERROR, 'elect: observer lost');
        return;
      }
      const won = await campaign(cc, name, lease, Buffer.from(args[1]), signal);
      const l: Leadership = { key: won.key, rev: won.rev, lease };
      display(ctx, await c.call((kv) => kv.range, RangeRequest.fromPartial({ key: won.key }), Infinity));
      const why = await Promise.race([interrupted.then(() => 'signal' as const), expired.then(() => 'expired' as const)]);
      if (why === 'expired') throw h.fail(EXIT_ERROR, 'elect: session expired');
      await resign(cc, l);
    });
  };

  return {
    lock: {
      use: 'lock <lockname> [exec-command arg1 arg2 ...]',
      short: 'Acquires a named lock',
      flags: [{ name: 'ttl', kind: 'int64', def: '10', usage: 'timeout for session' }, help('lock')],
      run: lockCommand,
    },
    elect: {
      use: 'elect <election-name> [proposal]',
      short: 'Observes and participates in leader election',
      flags: [{ name: 'listen', short: 'l', kind: 'bool', def: 'false', usage: 'observation mode' }, help('elect')],
      run: electCommand,
    },
  };
}
