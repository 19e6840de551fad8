/**
 * etcdctl v3's `make-mirror`, as etcd 3.4's (clientv3/mirror's syncer): the keys under --prefix copied to the
 * destination cluster as of one revision, in batches of 1000, then every change after that revision followed through
 * a watch and applied there, the events of one revision in one transaction; keys renamed from --prefix to
 * --dest-prefix (--prefix itself by default, the root with --no-dest-prefix). Every 30 s the count of keys mirrored
 * so far goes to stdout. It runs until the watch ends (a compaction: etcd's error; anything else: "Error: <nil>").
 */
import { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { Event_EventType } from '../../api/v3rpc/pb/mvccpb/kv';
import { prefixEnd } from '../../api/v3client/concurrency';
import { CallError, V3Client } from './client';
import type { FlagSpec } from '../../pkg/pflag';
import type { Command, Ctx } from './main';
import { ClientWatcher } from './watch';

export interface MirrorHelpers {
  /** Applies ETCDCTL_* and --user and checks -w (etcdctl does when it builds the client). */
  format(ctx: Ctx): void;
  /** A client of the command's endpoints (the source). */
  client(ctx: Ctx): Promise<V3Client>;
  fail(code: number, message: string): Error;
}

const EXIT_ERROR = 1;
const EXIT_BAD_ARGS = 128;
/** clientv3/mirror's batch of keys per range. */
const BATCH_LIMIT = 1000n;
const REPORT_EVERY_MS = 30_000;
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });

/** Go's strings.Replace(key, from, to, 1): the first `from` in the key (its start, for "") becomes `to`. */
function replaceFirst(key: Buffer, from: Buffer, to: Buffer): Buffer {
  const at = key.indexOf(from);
  if (at < 0) return key;
  return Buffer.concat([key.subarray(0, at), to, key.subarray(at + from.length)]);
}

/** The destination's client: its one endpoint, the --dest-* TLS settings, the global timeouts, no user. */
function destinationClient(ctx: Ctx, endpoint: string): V3Client {
  const v = (n: string) => ctx.flags.values.get(n);
  return new V3Client({
    endpoints: [endpoint],
    commandTimeoutMs: v('command-timeout') as number,
    keepAliveTimeMs: v('keepalive-time') as number,
    keepAliveTimeoutMs: v('keepalive-timeout') as number,
    insecureTransport: v('dest-insecure-transport') === true,
    insecureSkipVerify: false,
    cert: v('dest-cert') as string,
    key: v('dest-key') as string,
    cacert: v('dest-cacert') as string,
    warn: (line) => ctx.io.stderr(`${line}\n`),
  });
}

export function mirrorCommands(h: MirrorHelpers): Record<string, Command> {
  const run = async (ctx: Ctx): Promise<void> => {
    if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'make-mirror takes one destination argument');
    h.format(ctx);
    const dc = destinationClient(ctx, ctx.args[0]);
    const c = await h.client(ctx).catch((err) => {
      dc.close();
      throw err;
    });
    // clientv3/mirror watches without WithRequireLeader: a member without a leader keeps the watch
    const w = new ClientWatcher(c, false);
    let total = 0;
    const report = setInterval(() => ctx.io.stdout(`${total}\n`), REPORT_EVERY_MS);
    try {
      const prefix = Buffer.from(ctx.flags.values.get('prefix') as string);
      let destPrefix = Buffer.from(ctx.flags.values.get('dest-prefix') as string);
      const noDestPrefix = ctx.flags.values.get('no-dest-prefix') === true;
      const rename = (key: Buffer): Buffer => replaceFirst(key, prefix, destPrefix);

      // the revision to mirror as of: the latest
      const rev = (await c.call((kv) => kv.range, RangeRequest.fromPartial({ key: Buffer.from('foo') }), Infinity)).header!.revision;
      if (noDestPrefix && destPrefix.length > 0) throw h.fail(EXIT_BAD_ARGS, '`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one');
      if (!noDestPrefix && destPrefix.length === 0) destPrefix = prefix;

      // the existing keys, in batches at that revision
      let key = prefix.length === 0 ? Buffer.from([0]) : prefix;
      const rangeEnd = prefix.length === 0 ? Buffer.from([0]) : prefixEnd(prefix);
      for (;;) {
        const r = await c.call((kv) => kv.range, RangeRequest.fromPartial({ key, rangeEnd, limit: BATCH_LIMIT, revision: rev }), Infinity);
        for (const kv of r.kvs) {
          await dc.call((k) => k.put, PutRequest.fromPartial({ key: rename(kv.key), value: kv.value }), Infinity);
          total++;
        }
        if (!r.more) break;
        key = Buffer.concat([r.kvs[r.kvs.length - 1].key, Buffer.from([0])]);
      }

      // then every change after it, the events of one revision in one transaction
      const watchKey = prefix.length === 0 ? Buffer.from([0]) : prefix;
      await new Promise<void>((resolve, reject) => {
        const cancel = w.watch({ key: watchKey, end: rangeEnd, rev: rev + 1n, prevKv: false }, async (wr) => {
          if (wr.compactRevision !== 0n) {
            cancel();
            return reject(new CallError(COMPACTED));
          }
          let ops: RequestOp[] = [];
          let lastRev = 0n;
          const commit = async (): Promise<void> => {
            await dc.call((k) => k.txn, TxnRequest.fromPartial({ success: ops }), Infinity);
            ops = [];
          };
          try {
            for (const ev of wr.events ?? []) {
              const kv = ev.kv!;
              if (lastRev !== 0n && kv.modRevision > lastRev) await commit();
              lastRev = kv.modRevision;
              ops.push(ev.type === Event_EventType.DELETE
                ? RequestOp.fromPartial({ requestDeleteRange: DeleteRangeRequest.fromPartial({ key: rename(kv.key) }) })
                : RequestOp.fromPartial({ requestPut: PutRequest.fromPartial({ key: rename(kv.key), value: kv.value }) }));
              total++;
            }
            if (ops.length) await commit();
          } catch (err) {
            cancel();
            reject(err);
          }
        }, resolve);
      });
      // the watch ended without an error of its own: etcdctl reports its nil error
      throw h.fail(EXIT_ERROR, '<nil>');
    } catch (err) {
      if (err instanceof CallError) throw h.fail(EXIT_ERROR, err.message);
      throw err;
    } finally {
      clearInterval(report);
      w.stop();
      c.close();
      dc.close();
    }
  };

  return {
    'make-mirror': {
      use: 'make-mirror [options] <destination>',
      short: 'Makes a mirror at the destination etcd cluster',
      flags: [
        { name: 'prefix', kind: 'string', def: '', usage: 'Key-value prefix to mirror' },
        { name: 'dest-prefix', kind: 'string', def: '', usage: 'destination prefix to mirror a prefix to a different prefix in the destination cluster' },
        { name: 'no-dest-prefix', kind: 'bool', def: 'false', usage: 'mirror key-values to the root of the destination cluster' },
        { name: 'dest-cert', kind: 'string', def: '', usage: 'Identify secure client using this TLS certificate file for the destination cluster' },
        { name: 'dest-key', kind: 'string', def: '', usage: 'Identify secure client using this TLS key file' },
        { name: 'dest-cacert', kind: 'string', def: '', usage: 'Verify certificates of TLS enabled secure servers using this CA bundle' },
        { name: 'dest-insecure-transport', kind: 'bool', def: 'true', usage: 'Disable transport security for client connections' },
        help('make-mirror'),
      ],
      run,
    },
  };
}
