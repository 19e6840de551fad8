/**
 * etcdctl v3's cluster and maintenance commands, as etcd 3.4's: `member add|remove|update|list|promote`,
 * `endpoint health|status|hashkv` (with --cluster), `alarm disarm|list`, `defrag`, `move-leader` and
 * `snapshot save|restore|status`, with etcd's arguments, checks, messages, exit codes and output formats
 * (printer-cluster.ts). `snapshot restore` and `status` read etcd's snapshot files (bbolt), which this server's
 * are too, and the LMDB files of its first releases (see README).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AlarmRequest, AlarmRequest_AlarmAction, AlarmResponse, AlarmType, DefragmentRequest, HashKVRequest, HashKVResponse,
  MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
  MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest, MoveLeaderResponse,
  RangeRequest, RangeResponse, StatusRequest, StatusResponse,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { urlProblem } from '../../config';
import { etcdSnapshotStatus } from '../../etcdserver/etcd-backend';
import { hasChecksum, restoreSnapshot, snapshotDB, snapshotStatus } from '../../etcdserver/restore';
import { MvccStore } from '../../mvcc/store';
import { goDuration, humanBytes } from '../../pkg/go-compat';
import { CallError, V3Client } from './client';
import type { Command, Ctx } from './main';
import type { FlagSpec } from '../../pkg/pflag';
import * as out from './printer-cluster';
import { UnsupportedFormat, type Format } from './printer';

/** What the commands need of etcdctl's main: its flags, client and exits. */
export interface CommandHelpers {
  /** Applies ETCDCTL_* and checks -w (etcdctl does when it builds the client): the output format. */
  format(ctx: Ctx): Format;
  /** A client of these endpoints (default: --endpoints); `dialed`: one endpoint dialed for a Maintenance call. */
  client(ctx: Ctx, endpoints?: string[], dialed?: boolean): Promise<V3Client>;
  /** etcdctl's ExitWithError: "Error: message" on stderr, exit code. */
  fail(code: number, message: string): Error;
  /** os.Exit(code), nothing printed. */
  exit(code: number): Error;
}

const EXIT_ERROR = 1;
const EXIT_BAD_FEATURE = 4;
const EXIT_INTERRUPTED = 5;
const EXIT_BAD_ARGS = 128;

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });
const clusterFlag: FlagSpec = { name: 'cluster', kind: 'bool', def: 'false', usage: 'use all endpoints from the cluster member list' };

const str = (ctx: Ctx, name: string) => ctx.flags.values.get(name) as string;
const bool = (ctx: Ctx, name: string) => ctx.flags.values.get(name) === true;

/** Go's %q of a string (printable ASCII but for quotes and backslashes, which is what names and URLs hold). */
const goQuote = (s: string) => JSON.stringify(s);
/** Go's %v of a []string. */
const goSlice = (a: string[]) => `[${a.join(' ')}]`;

/** strconv.ParseUint(s, 16, 64), with its error text. */
function parseHexUint64(s: string): bigint {
  if (!/^[0-9a-fA-F]+$/.test(s)) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax`);
  const v = BigInt(`0x${s}`);
  if (v > 0xffffffffffffffffn) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: value out of range`);
  return v;
}

export function clusterCommands(h: CommandHelpers): Record<string, Command> {
  /** Prints what a printer made; a format the command lacks is etcdctl's ExitBadFeature. */
  const show = (ctx: Ctx, print: () => out.Printed): void => {
    let p: out.Printed;
    try {
      p = print();
    } catch (err) {
      if (err instanceof UnsupportedFormat) throw h.fail(EXIT_BAD_FEATURE, err.message);
      throw err;
    }
    if (p.stdout.length) ctx.io.stdoutBytes(typeof p.stdout === 'string' ? Buffer.from(p.stdout) : p.stdout);
    if (p.stderr) ctx.io.stderr(p.stderr);
  };

  /** One call with a client; a failure is "Error: <clientv3's message>", exit 1. */
  const call = async <T>(c: V3Client, fn: (c: V3Client) => Promise<T>, code = EXIT_ERROR): Promise<T> => {
    try {
      return await fn(c);
    } catch (err) {
      if (err instanceof CallError) throw h.fail(code, err.message);
      throw err;
    } finally {
      c.close();
    }
  };

  /** clientv3 checks peer URLs before it asks (types.NewURLs): its error, exit 1. */
  const checkURLs = (urls: string[]): void => {
    for (const u of urls) {
      const why = urlProblem(u.trim());
      if (why) throw h.fail(EXIT_ERROR, why);
    }
  };

  const memberID = (ctx: Ctx): bigint => {
    if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'member ID is not provided');
    try {
      return parseHexUint64(ctx.args[0]);
    } catch (err) {
      throw h.fail(EXIT_BAD_ARGS, `bad member ID arg (${(err as Error).message}), expecting ID in Hex`);
    }
  };

  /** The endpoints to act on: --endpoints, or with --cluster every member's client URLs. */
  const endpoints = async (ctx: Ctx): Promise<string[]> => {
    const given = (ctx.flags.values.get('endpoints') as string[]).map((e) => e.trim());
    if (!bool(ctx, 'cluster')) return given;
    let list: MemberListResponse;
    try {
      list = await call(await h.client(ctx), (c) => c.rpc<MemberListResponse>('cluster', 'memberList', MemberListRequest.fromPartial({})));
    } catch (err) {
      throw h.fail(EXIT_ERROR, `failed to fetch endpoints from etcd cluster member list: ${(err as Error).message.replace(/^Error: /, '')}`);
    }
    return list.members.flatMap((m) => m.clientURLs);
  };

  const member: Command = {
    use: 'member <subcommand>',
    short: 'Membership related commands',
    flags: [help('member')],
    subcommands: {
      add: {
        use: 'add <memberName> [options]',
        short: 'Adds a member into the cluster',
        flags: [
          { name: 'peer-urls', kind: 'string', def: '', usage: 'comma separated peer URLs for the new member.' },
          { name: 'learner', kind: 'bool', def: 'false', usage: 'indicates if the new member is raft learner' },
          help('add'),
        ],
        run: async (ctx) => {
          if (ctx.args.length < 1) throw h.fail(EXIT_BAD_ARGS, 'member name not provided');
          if (ctx.args.length > 1) {
            let ev = 'too many arguments';
            for (const a of ctx.args) if (a.toLowerCase().startsWith('http')) ev += `, did you mean --peer-urls=${a}`;
            throw h.fail(EXIT_BAD_ARGS, ev);
          }
          const name = ctx.args[0];
          const peerURLs = str(ctx, 'peer-urls');
          if (peerURLs === '') throw h.fail(EXIT_BAD_ARGS, 'member peer urls not provided');
          const f = h.format(ctx);
          checkURLs(peerURLs.split(','));
          const req = MemberAddRequest.fromPartial({ peerURLs: peerURLs.split(','), isLearner: bool(ctx, 'learner') });
          const r = await call(await h.client(ctx), (c) => c.rpc<MemberAddResponse>('cluster', 'memberAdd', req));
          show(ctx, () => out.memberAdd(f, r));
          if (f !== 'simple') return;
          const conf = r.members.flatMap((m) => m.peerURLs.map((u) => `${m.ID === r.member!.ID ? name : m.name}=${u}`));
          ctx.io.stdout(`\nETCD_NAME=${goQuote(name)}\nETCD_INITIAL_CLUSTER=${goQuote(conf.join(','))}\nETCD_INITIAL_ADVERTISE_PEER_URLS=${goQuote(peerURLs)}\nETCD_INITIAL_CLUSTER_STATE="existing"\n`);
        },
      },
      list: {
        use: 'list',
        short: 'Lists all members in the cluster',
        long: `When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
`,
        flags: [help('list')],
        run: async (ctx) => {
          const f = h.format(ctx);
          const r = await call(await h.client(ctx), (c) => c.rpc<MemberListResponse>('cluster', 'memberList', MemberListRequest.fromPartial({})));
          show(ctx, () => out.memberList(f, r));
        },
      },
      promote: {
        use: 'promote <memberID>',
        short: 'Promotes a non-voting member in the cluster',
        long: `Promotes a non-voting learner member to a voting one in the cluster.
`,
        flags: [help('promote')],
        run: async (ctx) => {
          const id = memberID(ctx);
          const f = h.format(ctx);
          const r = await call(await h.client(ctx), (c) => c.rpc<MemberPromoteResponse>('cluster', 'memberPromote', MemberPromoteRequest.fromPartial({ ID: id })));
          show(ctx, () => out.memberPromote(f, id, r));
        },
      },
      remove: {
        use: 'remove <memberID>',
        short: 'Removes a member from the cluster',
        flags: [help('remove')],
        run: async (ctx) => {
          const id = memberID(ctx);
          const f = h.format(ctx);
          const r = await call(await h.client(ctx), (c) => c.rpc<MemberRemoveResponse>('cluster', 'memberRemove', MemberRemoveRequest.fromPartial({ ID: id })));
          show(ctx, () => out.memberRemove(f, id, r));
        },
      },
      update: {
        use: 'update <memberID> [options]',
        short: 'Updates a member in the cluster',
        flags: [{ name: 'peer-urls', kind: 'string', def: '', usage: 'comma separated peer URLs for the updated member.' }, help('update')],
        run: async (ctx) => {
          const id = memberID(ctx);
          const peerURLs = str(ctx, 'peer-urls');
          if (peerURLs === '') throw h.fail(EXIT_BAD_ARGS, 'member peer urls not provided');
          const f = h.format(ctx);
          checkURLs(peerURLs.split(','));
          const r = await call(await h.client(ctx), (c) => c.rpc<MemberUpdateResponse>('cluster', 'memberUpdate', MemberUpdateRequest.fromPartial({ ID: id, peerURLs: peerURLs.split(',') })));
          show(ctx, () => out.memberUpdate(f, id, r));
        },
      },
    },
  };

  const endpoint: Command = {
    use: 'endpoint <subcommand>',
    short: 'Endpoint related commands',
    flags: [help('endpoint')],
    persistent: [clusterFlag],
    subcommands: {
      health: {
        use: 'health',
        short: 'Checks the healthiness of endpoints specified in `--endpoints` flag',
        flags: [help('health')],
        run: async (ctx) => {
          const f = h.format(ctx);
          const eps = await endpoints(ctx);
          // Each endpoint on its own, all at once; listed as they answer.
          const results: out.EpHealth[] = [];
          await Promise.all(eps.map(async (ep) => {
            const c = await h.client(ctx, [ep]);
            const start = process.hrtime.bigint();
            let error = '';
            try {
              await c.call((kv) => kv.range, RangeRequest.fromPartial({ key: Buffer.from('health') })) as RangeResponse;
            } catch (err) {
              // Permission denied is healthy: the request went through consensus.
              if (!(err instanceof CallError)) throw err;
              if (err.message !== 'etcdserver: permission denied') error = err.message;
            } finally {
              c.close();
            }
            results.push({ ep, health: error === '', took: goDuration(Number(process.hrtime.bigint() - start)), error });
          }));
          show(ctx, () => out.endpointHealth(f, results));
          if (results.some((r) => r.error !== '')) throw h.fail(EXIT_ERROR, 'unhealthy cluster');
        },
      },
      status: {
        use: 'status',
        short: 'Prints out the status of endpoints specified in `--endpoints` flag',
        long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
`,
        flags: [help('status')],
        run: async (ctx) => {
          const f = h.format(ctx);
          const list: out.EpStatus[] = [];
          let failed = false;
          for (const ep of await endpoints(ctx)) {
            try {
              list.push({ ep, resp: await call(await h.client(ctx, [ep], true), (c) => c.rpc<StatusResponse>('maintenance', 'status', StatusRequest.fromPartial({}))) });
            } catch (err) {
              failed = true;
              ctx.io.stderr(`Failed to get the status of endpoint ${ep} (${(err as Error).message})\n`);
            }
          }
          show(ctx, () => out.endpointStatus(f, list));
          if (failed) throw h.exit(EXIT_ERROR);
        },
      },
      hashkv: {
        use: 'hashkv',
        short: 'Prints the KV history hash for each endpoint in --endpoints',
        flags: [help('hashkv')],
        persistent: [{ name: 'rev', kind: 'int64', def: '0', usage: 'maximum revision to hash (default: all revisions)' }],
        run: async (ctx) => {
          const f = h.format(ctx);
          const rev = ctx.flags.values.get('rev') as bigint;
          const list: out.EpHashKV[] = [];
          let last: Error | undefined;
          for (const ep of await endpoints(ctx)) {
            try {
              list.push({ ep, resp: await call(await h.client(ctx, [ep], true), (c) => c.rpc<HashKVResponse>('maintenance', 'hashKv', HashKVRequest.fromPartial({ revision: rev }))) });
            } catch (err) {
              last = err as Error;
              ctx.io.stderr(`Failed to get the hash of endpoint ${ep} (${last.message})\n`);
            }
          }
          show(ctx, () => out.endpointHashKV(f, list));
          if (last) throw h.fail(EXIT_ERROR, last.message);
        },
      },
    },
  };

  const alarm: Command = {
    use: 'alarm <subcommand>',
    short: 'Alarm related commands',
    flags: [help('alarm')],
    subcommands: {
      disarm: {
        use: 'disarm',
        short: 'Disarms all alarms',
        flags: [help('disarm')],
        run: async (ctx) => {
          if (ctx.args.length !== 0) throw h.fail(EXIT_BAD_ARGS, 'alarm disarm command accepts no arguments');
          const f = h.format(ctx);
          // clientv3's AlarmDisarm of every alarm: the list, then each one deactivated.
          const r = await call(await h.client(ctx), async (c) => {
            const all = await c.rpc<AlarmResponse>('maintenance', 'alarm', AlarmRequest.fromPartial({ action: AlarmRequest_AlarmAction.GET, memberID: 0n, alarm: AlarmType.NONE }));
            const done: AlarmResponse = { header: undefined, alarms: [] };
            for (const a of all.alarms) {
              const d = await c.rpc<AlarmResponse>('maintenance', 'alarm', AlarmRequest.fromPartial({ action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: a.memberID, alarm: a.alarm }));
              done.alarms.push(...d.alarms);
            }
            return done;
          });
          show(ctx, () => out.alarm(f, r));
        },
      },
      list: {
        use: 'list',
        short: 'Lists all alarms',
        flags: [help('list')],
        run: async (ctx) => {
          if (ctx.args.length !== 0) throw h.fail(EXIT_BAD_ARGS, 'alarm list command accepts no arguments');
          const f = h.format(ctx);
          const r = await call(await h.client(ctx), (c) => c.rpc<AlarmResponse>('maintenance', 'alarm', AlarmRequest.fromPartial({ action: AlarmRequest_AlarmAction.GET, memberID: 0n, alarm: AlarmType.NONE })));
          show(ctx, () => out.alarm(f, r));
        },
      },
    },
  };

  const defrag: Command = {
    use: 'defrag',
    short: 'Defragments the storage of the etcd members with given endpoints',
    flags: [{ name: 'data-dir', kind: 'string', def: '', usage: 'Optional. If present, defragments a data directory not in use by etcd.' }, help('defrag')],
    persistent: [clusterFlag],
    run: async (ctx) => {
      const dataDir = str(ctx, 'data-dir');
      if (dataDir !== '') {
        try {
          await defragDataDir(dataDir);
        } catch (err) {
          ctx.io.stderr(`Failed to defragment etcd data[${dataDir}] (${(err as Error).message})\n`);
          throw h.exit(EXIT_ERROR);
        }
        return;
      }
      h.format(ctx);
      let failures = 0;
      for (const ep of await endpoints(ctx)) {
        try {
          await call(await h.client(ctx, [ep], true), (c) => c.rpc('maintenance', 'defragment', DefragmentRequest.fromPartial({})));
          ctx.io.stdout(`Finished defragmenting etcd member[${ep}]\n`);
        } catch (err) {
          ctx.io.stderr(`Failed to defragment etcd member[${ep}] (${(err as Error).message})\n`);
          failures++;
        }
      }
      if (failures) throw h.exit(EXIT_ERROR);
    },
  };

  const moveLeader: Command = {
    use: 'move-leader <transferee-member-id>',
    short: 'Transfers leadership to another etcd cluster member.',
    flags: [help('move-leader')],
    run: async (ctx) => {
      if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'move-leader command needs 1 argument');
      let target: bigint;
      try {
        target = parseHexUint64(ctx.args[0]);
      } catch (err) {
        throw h.fail(EXIT_BAD_ARGS, (err as Error).message);
      }
      const f = h.format(ctx);
      const eps = (ctx.flags.values.get('endpoints') as string[]).map((e) => e.trim());
      // The leader among the endpoints, by asking each in turn.
      let leader: string | undefined;
      let leaderID = 0n;
      for (const ep of eps) {
        const s = await call(await h.client(ctx, [ep], true), (c) => c.rpc<StatusResponse>('maintenance', 'status', StatusRequest.fromPartial({})));
        if (s.header?.memberId === s.leader) {
          leader = ep;
          leaderID = s.leader;
          break;
        }
      }
      if (leader === undefined) throw h.fail(EXIT_BAD_ARGS, `no leader endpoint given at ${goSlice(eps)}`);
      const r = await call(await h.client(ctx, [leader]), (c) => c.rpc<MoveLeaderResponse>('maintenance', 'moveLeader', MoveLeaderRequest.fromPartial({ targetID: target })));
      show(ctx, () => out.moveLeader(f, leaderID, target, r));
    },
  };

  const snapshot: Command = {
    use: 'snapshot <subcommand>',
    short: 'Manages etcd node snapshots',
    flags: [help('snapshot')],
    subcommands: {
      restore: {
        use: 'restore <filename> [options]',
        short: 'Restores an etcd member snapshot to an etcd directory',
        flags: [
          { name: 'data-dir', kind: 'string', def: '', usage: 'Path to the data directory' },
          { name: 'wal-dir', kind: 'string', def: '', usage: 'Path to the WAL directory (use --data-dir if none given)' },
          { name: 'initial-cluster', kind: 'string', def: 'default=http://localhost:2380', usage: 'Initial cluster configuration for restore bootstrap' },
          { name: 'initial-cluster-token', kind: 'string', def: 'etcd-cluster', usage: 'Initial cluster token for the etcd cluster during restore bootstrap' },
          { name: 'initial-advertise-peer-urls', kind: 'string', def: 'http://localhost:2380', usage: "List of this member's peer URLs to advertise to the rest of the cluster" },
          { name: 'name', kind: 'string', def: 'default', usage: 'Human-readable name for this member' },
          { name: 'skip-hash-check', kind: 'bool', def: 'false', usage: 'Ignore snapshot integrity hash value (required if copied from data directory)' },
          help('restore'),
        ],
        run: async (ctx) => {
          if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'snapshot restore requires exactly one argument');
          const name = str(ctx, 'name');
          const dataDir = str(ctx, 'data-dir') || `${name}.etcd`;
          const walDir = str(ctx, 'wal-dir') || path.join(dataDir, 'member', 'wal');
          const log = zapProduction(ctx);
          try {
            await restoreSnapshot({
              snapshotPath: ctx.args[0], name, dataDir, walDir: str(ctx, 'wal-dir'),
              peerURLs: str(ctx, 'initial-advertise-peer-urls').split(','), initialCluster: str(ctx, 'initial-cluster'),
              initialClusterToken: str(ctx, 'initial-cluster-token'), skipHashCheck: bool(ctx, 'skip-hash-check'),
              log: (msg, fields) => log(msg, msg === 'added member' ? 'membership/cluster.go:392' : msg === 'restoring snapshot' ? 'snapshot/v3_snapshot.go:296' : 'snapshot/v3_snapshot.go:309', msg === 'added member' ? fields : { ...fields, 'wal-dir': walDir }),
            });
          } catch (err) {
            throw h.fail(EXIT_ERROR, (err as Error).message);
          }
        },
      },
      save: {
        use: 'save <filename>',
        short: 'Stores an etcd node backend snapshot to a given file',
        flags: [help('save')],
        run: async (ctx) => {
          if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'snapshot save expects one argument');
          const log = zapProduction(ctx);
          h.format(ctx);
          const eps = (ctx.flags.values.get('endpoints') as string[]).map((e) => e.trim());
          const file = ctx.args[0];
          if (eps.length !== 1) throw h.fail(EXIT_INTERRUPTED, `snapshot must be requested to one selected node, not multiple ${goSlice(eps)}`);
          const part = `${file}.part`;
          let fd: number;
          try {
            fd = fs.openSync(part, 'w', 0o600);
          } catch (err) {
            throw h.fail(EXIT_INTERRUPTED, `could not open ${part} (open ${part}: ${goError(err as NodeJS.ErrnoException)})`);
          }
          try {
            log('created temporary db file', 'snapshot/v3_snapshot.go:119', { path: part });
            const start = process.hrtime.bigint();
            // No timeout unless --command-timeout is given (flag or ETCDCTL_COMMAND_TIMEOUT), as etcdctl.
            const timed = ctx.flags.changed.has('command-timeout') || !!ctx.env.ETCDCTL_COMMAND_TIMEOUT;
            const c = await h.client(ctx);
            let size = 0;
            try {
              clientLog(ctx, 'opened snapshot stream; downloading', 'clientv3/maintenance.go:200');
              log('fetching snapshot', 'snapshot/v3_snapshot.go:127', { endpoint: eps[0] });
              await c.snapshot((blob) => {
                fs.writeSync(fd, blob);
                size += blob.length;
              }, timed ? (ctx.flags.values.get('command-timeout') as number) : undefined);
              clientLog(ctx, 'completed snapshot read; closing', 'clientv3/maintenance.go:208');
            } catch (err) {
              if (err instanceof CallError) throw h.fail(EXIT_INTERRUPTED, err.message);
              throw err;
            } finally {
              c.close();
            }
            if (!hasChecksum(size)) throw h.fail(EXIT_INTERRUPTED, `sha256 checksum not found [bytes: ${size}]`);
            fs.fsyncSync(fd);
            fs.closeSync(fd);
            fd = -1;
            log('fetched snapshot', 'snapshot/v3_snapshot.go:142', { endpoint: eps[0], size: humanBytes(size), took: Number(process.hrtime.bigint() - start) / 1e9 });
            fs.renameSync(part, file);
            log('saved', 'snapshot/v3_snapshot.go:152', { path: file });
          } finally {
            if (fd >= 0) fs.closeSync(fd);
            fs.rmSync(part, { force: true });
          }
          ctx.io.stdout(`Snapshot saved at ${file}\n`);
        },
      },
      status: {
        use: 'status <filename>',
        short: 'Gets backend snapshot status of a given file',
        long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
        flags: [help('status')],
        run: async (ctx) => {
          if (ctx.args.length !== 1) throw h.fail(EXIT_BAD_ARGS, 'snapshot status requires exactly one argument');
          const f = h.format(ctx);
          const file = ctx.args[0];
          let status: out.DBStatus;
          const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'etcdctl-snapshot-status-'));
          try {
            try {
              fs.statSync(file);
            } catch (err) {
              throw new Error(`stat ${file}: ${goError(err as NodeJS.ErrnoException)}`);
            }
            status = await snapshotStatus(file, scratch);
          } catch (err) {
            throw h.fail(EXIT_ERROR, (err as Error).message);
          } finally {
            fs.rmSync(scratch, { recursive: true, force: true });
          }
          show(ctx, () => out.dbStatus(f, status));
        },
      },
    },
  };

  return { alarm, defrag, endpoint, member, 'move-leader': moveLeader, snapshot };
}

/** Go's error text of a failed system call: "no such file or directory" … */
function goError(err: NodeJS.ErrnoException): string {
  const texts: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'not a directory', EEXIST: 'file exists' };
  return (err.code && texts[err.code]) || err.message;
}

/** The snapshot package's zap.NewProduction() lines on stderr: JSON, the time in seconds. */
function zapProduction(ctx: Ctx): (msg: string, caller: string, fields: Record<string, unknown>) => void {
  return (msg, caller, fields) => {
    ctx.io.stderr(`${JSON.stringify({ level: 'info', ts: Date.now() / 1000, caller, msg, ...fields })}\n`);
  };
}

/** clientv3's own logger lines (ISO-8601 time). */
function clientLog(ctx: Ctx, msg: string, caller: string): void {
  ctx.io.stderr(`${JSON.stringify({ level: 'info', ts: new Date().toISOString(), caller, msg })}\n`);
}

/** `defrag --data-dir`: a member's v3 store defragmented offline (refused while a member has it open). */
async function defragDataDir(dataDir: string): Promise<void> {
  const dir = path.join(dataDir, 'member', 'v3');
  if (!fs.existsSync(path.join(dir, 'data.mdb'))) throw new Error(`open ${path.join(dir, 'data.mdb')}: no such file or directory`);
  const store = MvccStore.open(dir);
  try {
    if (store.readersElsewhere() > 0) throw new Error(`${dir} is open in a running member: defragment it with etcdctl defrag --endpoints=<its client URL>`);
    await store.defrag();
  } finally {
    await store.close();
  }
}
