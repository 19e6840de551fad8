/**
 * etcdctl v3 (what etcd 3.4's etcdctl runs unless ETCDCTL_API=2): put, get, del, txn, compaction, lease and version
 * with etcd's flags, ETCDCTL_* variables, output formats, messages and exit codes, over gRPC to any etcd speaking v3.
 */
import {
  AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest,
  AuthRoleListRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest,
  AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
  CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest,
  RequestOp, TxnRequest, RangeRequest, RangeRequest_SortOrder, RangeRequest_SortTarget,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { getClientEndpoints, systemResolver } from '../../discovery/srv';
import { CallError, V3Client } from './client';
import { FlagError, flagTable, parseFlags, convert, type FlagSpec, type Parsed } from '../../pkg/pflag';
import { FORMATS, LeasePrinter, Printer, UnsupportedFormat, hex16, type Format } from './printer';
import { AuthPrinter } from './auth-printer';
import { prefixEnd } from '../../api/v3client/concurrency';
import { argify, GoPanic, LineReader, parseCompare, TxnInputError } from './txn-input';
import { spawn } from 'node:child_process';
import { Event_EventType } from '../../api/v3rpc/pb/mvccpb/kv';
import { eventTypeName, goQuote } from './printer';
import { ClientWatcher, type ClientWatchResponse, type WatchSpec } from './watch';
import { parseWatchArgs, WATCH_FLAGS, WatchArgsError, type WatchFlags } from './watch-args';
import { clusterCommands } from './cluster-commands';
import { concurrencyCommands } from './concurrency-commands';
import { checkCommands } from './check-commands';
import { mirrorCommands } from './mirror-command';
import { migrateCommand } from './migrate-command';

/** What the v3 commands read and write; stdout carries bytes (keys and values need not be UTF-8). */
export interface V3IO {
  stdout(s: string): void;
  stdoutBytes(b: Buffer): void;
  stderr(s: string): void;
  readStdin(): string;
  /** One byte of stdin (-1 at its end), for password prompts that read a line as etcdctl does; else readStdin's. */
  readStdinByte?(): number;
  /** Terminal echo off and on around a password prompt (etcdctl runs `stty -echo` and `stty echo` on its stdio). */
  setEcho?(on: boolean): void;
  /** Standard input as a stream, for commands that read it line by line as it comes (watch -i); process.stdin if none. */
  stdin?(): NodeJS.ReadableStream;
}

/** etcdctl v3's exit codes (ctlv3/command/error.go). */
export const enum ExitV3 {
  Success = 0,
  Error = 1,
  BadConnection = 2,
  InvalidInput = 3,
  BadFeature = 4,
  Interrupted = 5,
  IO = 6,
  BadArgs = 128,
}

export const API_VERSION = '3.4';

/** os.Exit with etcdctl's "Error: ..." line. */
class Exit extends Error {
  constructor(readonly code: number, message?: string) {
    super(message ?? `exit ${code}`);
  }
}
const fail = (code: number, message: string) => new Exit(code, message);

const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'endpoints', kind: 'stringSlice', def: '[127.0.0.1:2379]', usage: 'gRPC endpoints' },
  { name: 'debug', kind: 'bool', def: 'false', usage: 'enable client-side debug logging' },
  { name: 'write-out', short: 'w', kind: 'string', def: 'simple', usage: 'set the output format (fields, json, protobuf, simple, table)' },
  { name: 'hex', kind: 'bool', def: 'false', usage: 'print byte strings as hex encoded strings' },
  { name: 'dial-timeout', kind: 'duration', def: '2s', usage: 'dial timeout for client connections' },
  { name: 'command-timeout', kind: 'duration', def: '5s', usage: 'timeout for short running command (excluding dial timeout)' },
  { name: 'keepalive-time', kind: 'duration', def: '2s', usage: 'keepalive time for client connections' },
  { name: 'keepalive-timeout', kind: 'duration', def: '6s', usage: 'keepalive timeout for client connections' },
  { name: 'insecure-transport', kind: 'bool', def: 'true', usage: 'disable transport security for client connections' },
  { name: 'insecure-discovery', kind: 'bool', def: 'true', usage: 'accept insecure SRV records describing cluster endpoints' },
  { name: 'insecure-skip-tls-verify', kind: 'bool', def: 'false', usage: 'skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)' },
  { name: 'cert', kind: 'string', def: '', usage: 'identify secure client using this TLS certificate file' },
  { name: 'key', kind: 'string', def: '', usage: 'identify secure client using this TLS key file' },
  { name: 'cacert', kind: 'string', def: '', usage: 'verify certificates of TLS-enabled secure servers using this CA bundle' },
  { name: 'user', kind: 'string', def: '', usage: 'username[:password] for authentication (prompt if password is not supplied)' },
  { name: 'password', kind: 'string', def: '', usage: "password for authentication (if this option is used, --user option shouldn't include password)" },
  { name: 'discovery-srv', short: 'd', kind: 'string', def: '', usage: 'domain name to query for SRV records describing cluster endpoints' },
  { name: 'discovery-srv-name', kind: 'string', def: '', usage: 'service name to query when using DNS discovery' },
];

export interface Ctx {
  flags: Parsed;
  args: string[];
  env: Record<string, string | undefined>;
  io: V3IO;
  /** --user and --password once read (prompting if need be) when the client is configured; null: no user. */
  auth?: { name: string; password: string } | null;
  /** stdin as the prompts read it. */
  stdin?: Stdin;
  /** the whole command line, as os.Args (program name first): watch looks for "--" in it */
  argv: string[];
  /** the command's name */
  command: string;
}

/** A command, or a group of subcommands (cobra's command without Run: it prints its usage). */
export interface Command {
  use: string;
  short: string;
  long?: string;
  /** Its own flags (with its help flag). */
  flags: FlagSpec[];
  run?(ctx: Ctx): Promise<void>;
  subcommands?: Record<string, Command>;
  /** Flags its subcommands inherit (cobra's persistent flags), listed with theirs under GLOBAL OPTIONS. */
  persistent?: FlagSpec[];
}

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });

const COMMANDS: Record<string, Command> = {
  auth: {
    use: 'auth <enable or disable>',
    short: 'Enable or disable authentication',
    flags: [help('auth')],
    subcommands: {
      enable: { use: 'enable', short: 'Enables authentication', flags: [help('enable')], run: authEnable },
      disable: { use: 'disable', short: 'Disables authentication', flags: [help('disable')], run: authDisable },
    },
  },
  compaction: {
    use: 'compaction [options] <revision>',
    short: 'Compacts the event history in etcd',
    flags: [{ name: 'physical', kind: 'bool', def: 'false', usage: "'true' to wait for compaction to physically remove all old revisions" }, help('compaction')],
    run: compaction,
  },
  del: {
    use: 'del [options] <key> [range_end]',
    short: 'Removes the specified key or range of keys [key, range_end)',
    flags: [
      { name: 'prefix', kind: 'bool', def: 'false', usage: 'delete keys with matching prefix' },
      { name: 'prev-kv', kind: 'bool', def: 'false', usage: 'return deleted key-value pairs' },
      { name: 'from-key', kind: 'bool', def: 'false', usage: 'delete keys that are greater than or equal to the given key using byte compare' },
      help('del'),
    ],
    run: del,
  },
  get: {
    use: 'get [options] <key> [range_end]',
    short: 'Gets the key or a range of keys',
    flags: [
      { name: 'consistency', kind: 'string', def: 'l', usage: 'Linearizable(l) or Serializable(s)' },
      { name: 'order', kind: 'string', def: '', usage: 'Order of results; ASCEND or DESCEND (ASCEND by default)' },
      { name: 'sort-by', kind: 'string', def: '', usage: 'Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION' },
      { name: 'limit', kind: 'int64', def: '0', usage: 'Maximum number of results' },
      { name: 'prefix', kind: 'bool', def: 'false', usage: 'Get keys with matching prefix' },
      { name: 'from-key', kind: 'bool', def: 'false', usage: 'Get keys that are greater than or equal to the given key using byte compare' },
      { name: 'rev', kind: 'int64', def: '0', usage: 'Specify the kv revision' },
      { name: 'keys-only', kind: 'bool', def: 'false', usage: 'Get only the keys' },
      { name: 'print-value-only', kind: 'bool', def: 'false', usage: 'Only write values when using the "simple" output format' },
      help('get'),
    ],
    run: get,
  },
  put: {
    use: 'put [options] <key> <value> (<value> can also be given from stdin)',
    short: 'Puts the given key into the store',
    long: `
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
`,
    flags: [
      { name: 'lease', kind: 'string', def: '0', usage: 'lease ID (in hexadecimal) to attach to the key' },
      { name: 'prev-kv', kind: 'bool', def: 'false', usage: 'return the previous key-value pair before modification' },
      { name: 'ignore-value', kind: 'bool', def: 'false', usage: 'updates the key using its current value' },
      { name: 'ignore-lease', kind: 'bool', def: 'false', usage: 'updates the key using its current lease' },
      help('put'),
    ],
    run: put,
  },
  lease: {
    use: 'lease <subcommand>',
    short: 'Lease related commands',
    flags: [help('lease')],
    subcommands: {
      grant: { use: 'grant <ttl>', short: 'Creates leases', flags: [help('grant')], run: leaseGrant },
      revoke: { use: 'revoke <leaseID>', short: 'Revokes leases', flags: [help('revoke')], run: leaseRevoke },
      timetolive: {
        use: 'timetolive <leaseID> [options]',
        short: 'Get lease information',
        flags: [{ name: 'keys', kind: 'bool', def: 'false', usage: 'Get keys attached to this lease' }, help('timetolive')],
        run: leaseTimeToLive,
      },
      list: { use: 'list', short: 'List all active leases', flags: [help('list')], run: leaseList },
      'keep-alive': {
        use: 'keep-alive [options] <leaseID>',
        short: 'Keeps leases alive (renew)',
        flags: [{ name: 'once', kind: 'bool', def: 'false', usage: 'Resets the keep-alive time to its original value and exits immediately' }, help('keep-alive')],
        run: leaseKeepAlive,
      },
    },
  },
  role: {
    use: 'role <subcommand>',
    short: 'Role related commands',
    flags: [help('role')],
    subcommands: {
      add: { use: 'add <role name>', short: 'Adds a new role', flags: [help('add')], run: roleAdd },
      delete: { use: 'delete <role name>', short: 'Deletes a role', flags: [help('delete')], run: roleDelete },
      get: { use: 'get <role name>', short: 'Gets detailed information of a role', flags: [help('get')], run: roleGet },
      list: { use: 'list', short: 'Lists all roles', flags: [help('list')], run: roleList },
      'grant-permission': {
        use: 'grant-permission [options] <role name> <permission type> <key> [endkey]',
        short: 'Grants a key to a role',
        flags: [
          { name: 'prefix', kind: 'bool', def: 'false', usage: 'grant a prefix permission' },
          { name: 'from-key', kind: 'bool', def: 'false', usage: 'grant a permission of keys that are greater than or equal to the given key using byte compare' },
          help('grant-permission'),
        ],
        run: roleGrantPermission,
      },
      'revoke-permission': {
        use: 'revoke-permission <role name> <key> [endkey]',
        short: 'Revokes a key from a role',
        flags: [
          { name: 'prefix', kind: 'bool', def: 'false', usage: 'revoke a prefix permission' },
          { name: 'from-key', kind: 'bool', def: 'false', usage: 'revoke a permission of keys that are greater than or equal to the given key using byte compare' },
          help('revoke-permission'),
        ],
        run: roleRevokePermission,
      },
    },
  },
  txn: {
    use: 'txn [options]',
    short: 'Txn processes all the requests in one transaction',
    flags: [{ name: 'interactive', short: 'i', kind: 'bool', def: 'false', usage: 'Input transaction in interactive mode' }, help('txn')],
    run: txn,
  },
  user: {
    use: 'user <subcommand>',
    short: 'User related commands',
    flags: [help('user')],
    subcommands: {
      add: {
        use: 'add <user name or user:password> [options]',
        short: 'Adds a new user',
        flags: [
          { name: 'interactive', kind: 'bool', def: 'true', usage: 'Read password from stdin instead of interactive terminal' },
          { name: 'new-user-password', kind: 'string', def: '', usage: 'Supply password from the command line flag' },
          { name: 'no-password', kind: 'bool', def: 'false', usage: 'Create a user without password (CN based auth only)' },
          help('add'),
        ],
        run: userAdd,
      },
      delete: { use: 'delete <user name>', short: 'Deletes a user', flags: [help('delete')], run: userDelete },
      get: {
        use: 'get <user name> [options]',
        short: 'Gets detailed information of a user',
        flags: [{ name: 'detail', kind: 'bool', def: 'false', usage: 'Show permissions of roles granted to the user' }, help('get')],
        run: userGet,
      },
      list: { use: 'list', short: 'Lists all users', flags: [help('list')], run: userList },
      passwd: {
        use: 'passwd <user name> [options]',
        short: 'Changes password of user',
        flags: [{ name: 'interactive', kind: 'bool', def: 'true', usage: 'If true, read password from stdin instead of interactive terminal' }, help('passwd')],
        run: userPasswd,
      },
      'grant-role': { use: 'grant-role <user name> <role name>', short: 'Grants a role to a user', flags: [help('grant-role')], run: userGrantRole },
      'revoke-role': { use: 'revoke-role <user name> <role name>', short: 'Revokes a role from a user', flags: [help('revoke-role')], run: userRevokeRole },
    },
  },
  watch: {
    use: 'watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]',
    short: 'Watches events stream on keys or prefixes',
    flags: [...WATCH_FLAGS, help('watch')],
    run: watch,
  },
  version: {
    use: 'version',
    short: 'Prints the version of etcdctl',
    flags: [help('version')],
    run: async ({ io }) => io.stdout(`etcdctl version: ${etcdctlVersion}\nAPI version: ${API_VERSION}\n`),
  },
};

// The cluster and maintenance commands (cluster-commands.ts), with what they need of this module.
Object.assign(COMMANDS, clusterCommands({
  format: (ctx) => {
    printer(ctx);
    return str(ctx, 'write-out') as Format;
  },
  client: (ctx, endpoints, dialed) => client(ctx, endpoints, dialed),
  fail,
  exit: (code) => new Exit(code),
}));

// lock and elect (concurrency-commands.ts).
Object.assign(COMMANDS, concurrencyCommands({
  format: (ctx) => {
    printer(ctx);
    return str(ctx, 'write-out') as Format;
  },
  client: (ctx) => client(ctx),
  fail,
  exec: (ctx, args, env) => runForEvent(ctx, args, env),
}));

// check perf and datascale (check-commands.ts), make-mirror (mirror-command.ts), migrate (refused: migrate-command.ts).
Object.assign(COMMANDS, checkCommands({
  format: (ctx) => void printer(ctx),
  client: (ctx, endpoints, dialed) => client(ctx, endpoints, dialed),
  endpoints: (ctx) => endpointsOf(ctx),
  fail,
  exit: (code) => new Exit(code),
}));
Object.assign(COMMANDS, mirrorCommands({ format: (ctx) => void printer(ctx), client: (ctx) => client(ctx), fail }));
Object.assign(COMMANDS, migrateCommand(fail));

/** Every command of etcd 3.4's etcdctl, in the order it adds them (cobra's prefix matching and suggestions go by it). */
const ALL_COMMANDS = [
  'get', 'put', 'del', 'txn', 'compaction', 'alarm', 'defrag', 'endpoint', 'move-leader', 'watch', 'version', 'lease', 'member',
  'snapshot', 'make-mirror', 'migrate', 'lock', 'elect', 'auth', 'user', 'role', 'check', 'help', 'completion',
];

let etcdctlVersion = '';

/** The usage text etcdctl prints for a command, `name` or `group sub` (its help template through Go's tabwriter). */
export function commandUsage(name: string, sub?: string): string {
  const group = COMMANDS[name];
  const c = sub === undefined ? group : group.subcommands![sub];
  const full = sub === undefined ? name : `${name} ${sub}`;
  let s = `NAME:\n\t${full} - ${c.short}\n\nUSAGE:\n\tetcdctl ${sub === undefined ? '' : `${name} `}${c.use} [flags]\n`;
  if (c.subcommands) {
    s += `\nAPI VERSION:\n\t${API_VERSION}\n\n\nCOMMANDS:\n${tabbed(Object.entries(c.subcommands).sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, x]) => [n, x.short]))}`;
  }
  if (c.long) s += `\nDESCRIPTION:\n${c.long.replace(/^[\n\t ]+|[\n\t ]+$/g, '').split('\n').map((l) => `\t${l}\n`).join('')}`;
  s += `\nOPTIONS:\n${flagTable([...c.flags, ...(c.persistent ?? [])])}`;
  s += `\nGLOBAL OPTIONS:\n${flagTable([...GLOBAL_FLAGS, ...(sub === undefined ? [] : group.persistent ?? [])])}\n`;
  return s;
}

/** Lines of `\tname\tdescription`, the names' column aligned as Go's tabwriter aligns it (tab width 8). */
function tabbed(rows: string[][]): string {
  const width = Math.ceil((Math.max(...rows.map(([n]) => n.length)) + 1) / 8) * 8;
  return rows.map(([n, d]) => `\t${n}${'\t'.repeat(width / 8 - Math.floor(n.length / 8))}${d}\n`).join('');
}

/** Levenshtein distance, ignoring case (cobra's suggestions). */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

function unknownCommand(io: V3IO, name: string): Exit {
  const suggestions = ALL_COMMANDS.filter((c) => distance(name, c) <= 2 || c.startsWith(name.toLowerCase()));
  let msg = `unknown command ${JSON.stringify(name)} for "etcdctl"`;
  if (suggestions.length) msg += `\n\nDid you mean this?\n${suggestions.map((s) => `\t${s}\n`).join('')}`;
  io.stderr(`Error: ${msg}\nRun 'etcdctl --help' for usage.\n`);
  return fail(ExitV3.Error, msg);
}

/** cobra's command lookup with prefix matching: the exact name, or the one command the name begins. */
function matchCommand(typed: string): string | undefined {
  return matchName(typed, ALL_COMMANDS);
}

function matchName(typed: string, names: string[]): string | undefined {
  if (names.includes(typed)) return typed;
  const matches = names.filter((c) => c.startsWith(typed));
  return matches.length === 1 ? matches[0] : undefined;
}

/** The command named by the first non-flag argument (the values of these flags skipped), with prefix matching. */
function findCommand(argv: string[], specs: FlagSpec[] = GLOBAL_FLAGS): { name: string | undefined; index: number } {
  const valued = new Set(specs.filter((f) => f.kind !== 'bool').flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return { name: argv[i + 1], index: i + 1 };
    if (a.startsWith('-') && a.length > 1) {
      if (valued.has(a)) i++;
      continue;
    }
    return { name: a, index: i };
  }
  return { name: undefined, index: -1 };
}

/** capnslog's line: local time to the microsecond, the level letter, the package. */
function capnslog(level: 'C' | 'W', pkg: string, msg: string): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}000`;
  return `${ts} ${level} | ${pkg}: ${msg}\n`;
}

/**
 * etcd's flags.SetPflagsFromEnv over the global flags: ETCDCTL_<FLAG> for each flag not on the command line (a value
 * that does not parse is ignored, as etcdctl ignores the error); a variable shadowed by a flag given on the command
 * line is fatal, other ETCDCTL_* variables are warned about.
 */
function applyEnv(ctx: Ctx): void {
  const { flags: p, env, io } = ctx;
  const used = new Set<string>();
  const alreadySet = new Set<string>();
  // etcdctl adds these two to the flags it reads from the environment for watch (silencing their warning)
  if (ctx.command === 'watch') for (const k of ['ETCDCTL_WATCH_KEY', 'ETCDCTL_WATCH_RANGE_END']) if (env[k]) used.add(k);
  for (const spec of GLOBAL_FLAGS) {
    const key = `ETCDCTL_${spec.name.toUpperCase().replace(/-/g, '_')}`;
    if (p.changed.has(spec.name)) {
      alreadySet.add(key);
      continue;
    }
    const v = env[key];
    if (v === undefined || v === '') continue;
    used.add(key);
    try {
      p.values.set(spec.name, convert(spec, v));
    } catch {
      // etcdctl drops SetPflagsFromEnv's error: the flag keeps its default.
    }
  }
  for (const [k, v] of Object.entries(env)) {
    // etcdctl's main unsets ETCDCTL_API before anything reads the environment.
    if (v === undefined || used.has(k) || k === 'ETCDCTL_API') continue;
    if (alreadySet.has(k)) {
      io.stderr(capnslog('C', 'pkg/flags', `conflicting environment variable ${JSON.stringify(k)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`));
      throw new Exit(ExitV3.Error);
    }
    if (k.startsWith('ETCDCTL_')) io.stderr(capnslog('W', 'pkg/flags', `unrecognized environment variable ${k}=${v}`));
  }
}

export async function runV3(argv: string[], env: Record<string, string | undefined>, io: V3IO, version: string): Promise<number> {
  etcdctlVersion = version;
  try {
    const { name: typed, index } = findCommand(argv);
    if (typed === undefined) {
      io.stdout(rootUsage(version));
      return ExitV3.Success;
    }
    const name = matchCommand(typed);
    if (name === undefined) throw unknownCommand(io, typed);
    if (name === 'help') {
      // `etcdctl help <command>`: that command's usage.
      const topics = argv.slice(index + 1).filter((a) => !a.startsWith('-'));
      const of = topics[0] === undefined ? undefined : matchCommand(topics[0]);
      const subs = of && COMMANDS[of]?.subcommands;
      const sub = subs && topics[1] !== undefined ? matchName(topics[1], Object.keys(subs)) : undefined;
      io.stdout(of && COMMANDS[of] ? commandUsage(of, sub) : rootUsage(version));
      return ExitV3.Success;
    }
    const group = COMMANDS[name];
    if (!group) throw fail(ExitV3.Error, `the "${name}" command is not supported by this etcdctl yet`);
    let rest = [...argv.slice(0, index), ...argv.slice(index + 1)];
    let command = group;
    let sub: string | undefined;
    if (group.subcommands) {
      // cobra finds the subcommand among the arguments, flags (and their values) left aside; none: the group's usage.
      const found = findCommand(rest, [...GLOBAL_FLAGS, ...group.flags, ...(group.persistent ?? [])]);
      sub = found.name === undefined ? undefined : matchName(found.name, Object.keys(group.subcommands));
      if (sub !== undefined) {
        command = group.subcommands[sub];
        rest = [...rest.slice(0, found.index), ...rest.slice(found.index + 1)];
      }
    }
    const specs = [...command.flags, ...(command.persistent ?? []), ...(sub === undefined ? [] : group.persistent ?? []), ...GLOBAL_FLAGS];
    let flags: Parsed;
    try {
      flags = parseFlags(rest, specs);
    } catch (err) {
      if (!(err instanceof FlagError)) throw err;
      // cobra: the error, the usage (etcdctl's usage function writes it to stdout), then etcdctl's own report.
      io.stderr(`Error: ${err.message}\n`);
      io.stdout(commandUsage(name, sub));
      io.stderr('\n');
      throw fail(ExitV3.Error, err.message);
    }
    if (flags.values.get('help') === true || !command.run) {
      io.stdout(commandUsage(name, sub));
      return ExitV3.Success;
    }
    await command.run({ flags, args: flags.args, env, io, argv: ['etcdctl', ...argv], command: name });
    return ExitV3.Success;
  } catch (err) {
    if (err instanceof Exit) {
      if (err.message !== `exit ${err.code}`) io.stderr(`Error: ${err.message}\n`);
      return err.code;
    }
    if (err instanceof GoPanic) {
      // Where etcdctl (Go) panics: the message, and Go's exit status for it.
      io.stderr(`panic: ${err.message}\n\ngoroutine 1 [running]:\n`);
      return 2;
    }
    throw err;
  }
}

function rootUsage(version: string): string {
  // Every runnable command, subcommands as "group sub", in the order cobra lists them (by name).
  const cmds = Object.entries(COMMANDS).sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([n, c]) => [
    ...(c.run ? [[n, c.short]] : []),
    ...Object.entries(c.subcommands ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, x]) => [`${n} ${s}`, x.short]),
  ]);
  const width = Math.ceil((Math.max(...cmds.map(([n]) => n.length)) + 1) / 8) * 8;
  const list = cmds.map(([n, s]) => `\t${n}${'\t'.repeat(width / 8 - Math.floor(n.length / 8))}${s}\n`).join('');
  return `NAME:\n\tetcdctl - A simple command line client for etcd3.\n\nUSAGE:\n\tetcdctl [flags]\n\nVERSION:\n\t${version}\n\nAPI VERSION:\n\t${API_VERSION}\n\n\nCOMMANDS:\n${list}\nOPTIONS:\n${flagTable([...GLOBAL_FLAGS, help('etcdctl')])}\n`;
}

// --- the commands ---

function str(ctx: Ctx, name: string): string {
  return ctx.flags.values.get(name) as string;
}
function bool(ctx: Ctx, name: string): boolean {
  return ctx.flags.values.get(name) === true;
}

/** The printer for -w/--hex (etcdctl checks the format when it builds the client, after the arguments). */
function printer(ctx: Ctx, valueOnly = false): Printer {
  // etcdctl reads ETCDCTL_* when it builds the client, after checking the command's arguments.
  applyEnv(ctx);
  authConfig(ctx);
  const format = str(ctx, 'write-out');
  if (!FORMATS.includes(format)) throw fail(ExitV3.BadFeature, 'unsupported output format');
  return new Printer(format as Format, bool(ctx, 'hex'), valueOnly);
}

/**
 * The endpoints: with --discovery-srv those of the domain's `_etcd-client-ssl._tcp` and `_etcd-client._tcp` SRV
 * records (http ones dropped unless --insecure-discovery), else --endpoints, as etcdctl's endpointsFromCmd.
 */
async function endpointsOf(ctx: Ctx): Promise<string[]> {
  const domain = str(ctx, 'discovery-srv');
  let found: string[] = [];
  if (domain !== '') {
    try {
      found = await getClientEndpoints(systemResolver, domain, str(ctx, 'discovery-srv-name'));
    } catch (err) {
      throw fail(ExitV3.Error, (err as Error).message);
    }
    if (!bool(ctx, 'insecure-discovery')) {
      for (const ep of found.filter((e) => e.startsWith('http://'))) ctx.io.stderr(`ignoring discovered insecure endpoint "${ep}"\n`);
      found = found.filter((e) => !e.startsWith('http://'));
    }
  }
  return found.length > 0 ? found : (ctx.flags.values.get('endpoints') as string[]).map((e) => e.trim());
}

/**
 * etcdctl's authCfgFromCmd: --user as user:password, or a user whose password is --password or asked for
 * ("Password: ", read as speakeasy reads it).
 */
function authConfig(ctx: Ctx): void {
  const user = str(ctx, 'user');
  const password = str(ctx, 'password');
  if (user === '') {
    ctx.auth = null;
    return;
  }
  if (password !== '') {
    ctx.auth = { name: user, password };
    return;
  }
  const at = user.indexOf(':');
  ctx.auth = at < 0 ? { name: user, password: ask(ctx, 'Password: ') } : { name: user.slice(0, at), password: user.slice(at + 1) };
}

/** A client of these endpoints (default: --endpoints or --discovery-srv); `dialed`: one endpoint dialed for a Maintenance call. */
async function client(ctx: Ctx, endpoints?: string[], dialed = false): Promise<V3Client> {
  const ms = (n: string) => ctx.flags.values.get(n) as number;
  const c = newClient(ctx, endpoints ?? (await endpointsOf(ctx)), ms, dialed);
  // clientv3 authenticates when it dials, with a user name and a password both given
  const auth = ctx.auth;
  if (auth && auth.name !== '' && auth.password !== '') {
    try {
      await c.authenticate(auth.name, auth.password, ms('dial-timeout'));
    } catch (err) {
      c.close();
      if (err instanceof CallError) throw fail(ExitV3.BadConnection, err.message);
      throw err;
    }
  }
  return c;
}

function newClient(ctx: Ctx, eps: string[], ms: (n: string) => number, dialed = false): V3Client {
  return new V3Client({
    endpoints: eps,
    commandTimeoutMs: ms('command-timeout'),
    keepAliveTimeMs: ms('keepalive-time'),
    keepAliveTimeoutMs: ms('keepalive-timeout'),
    insecureTransport: bool(ctx, 'insecure-transport'),
    insecureSkipVerify: bool(ctx, 'insecure-skip-tls-verify'),
    cert: str(ctx, 'cert'),
    key: str(ctx, 'key'),
    cacert: str(ctx, 'cacert'),
    warn: (line) => ctx.io.stderr(`${line}\n`),
    dialed,
  });
}

/** Runs one call and prints its answer; a failed call is "Error: <clientv3's message>", exit 1. */
async function withClient<T>(ctx: Ctx, p: Printer, call: (c: V3Client) => Promise<T>, print: (p: Printer, r: T) => void): Promise<void> {
  const c = await client(ctx);
  let r: T;
  try {
    r = await call(c);
  } catch (err) {
    if (err instanceof CallError) throw fail(ExitV3.Error, err.message);
    throw err;
  } finally {
    c.close();
  }
  try {
    print(p, r);
  } catch (err) {
    if (err instanceof UnsupportedFormat) throw fail(ExitV3.BadFeature, err.message);
    throw err;
  }
}

const out = (ctx: Ctx) => ({ stdoutBytes: (b: Buffer) => ctx.io.stdoutBytes(b) });

/** put's arguments as a PutRequest (etcdctl's getPutOp, also used for txn's put lines). */
function putRequest(ctx: Ctx): PutRequest {
  const { args } = ctx;
  if (args.length === 0) throw fail(ExitV3.BadArgs, 'put command needs 1 argument and input from stdin or 2 arguments');
  const ignoreValue = bool(ctx, 'ignore-value');
  if (ignoreValue && args.length > 1) throw fail(ExitV3.BadArgs, "put command needs only 1 argument when 'ignore-value' is set");
  let value = '';
  if (!ignoreValue) {
    if (args.length > 1) value = args[1];
    else {
      value = ctx.io.readStdin();
      if (value === '') throw fail(ExitV3.BadArgs, 'put command needs 1 argument and input from stdin or 2 arguments');
    }
  }
  const leaseStr = str(ctx, 'lease');
  let lease: bigint;
  try {
    lease = parseHexInt64(leaseStr);
  } catch (err) {
    throw fail(ExitV3.BadArgs, `bad lease ID (${(err as Error).message}), expecting ID in Hex`);
  }
  return PutRequest.fromPartial({
    key: Buffer.from(args[0]), value: Buffer.from(value), lease, prevKv: bool(ctx, 'prev-kv'), ignoreValue, ignoreLease: bool(ctx, 'ignore-lease'),
  });
}

async function put(ctx: Ctx): Promise<void> {
  const req = putRequest(ctx);
  const p = printer(ctx);
  await withClient(ctx, p, (c) => c.call((kv) => kv.put, req), (pr, r) => pr.put(out(ctx), r));
}

/** strconv.ParseInt(s, 16, 64) */
function parseHexInt64(s: string): bigint {
  const m = /^([+-]?)([0-9a-fA-F]+)$/.exec(s);
  if (!m) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  const v = BigInt(`0x${m[2]}`) * (m[1] === '-' ? -1n : 1n);
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  return v;
}

/** get's arguments as a RangeRequest (etcdctl's getGetOp, also used for txn's get lines). */
function rangeRequest(ctx: Ctx): RangeRequest {
  const { args } = ctx;
  if (args.length === 0) throw fail(ExitV3.BadArgs, 'get command needs one argument as key and an optional argument as range_end');
  const prefix = bool(ctx, 'prefix');
  const fromKey = bool(ctx, 'from-key');
  if (prefix && fromKey) throw fail(ExitV3.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  const consistency = str(ctx, 'consistency');
  if (consistency !== 's' && consistency !== 'l') throw fail(ExitV3.BadFeature, `unknown consistency flag ${JSON.stringify(consistency)}`);
  let key: Buffer = Buffer.from(args[0]);
  let rangeEnd: Buffer = Buffer.alloc(0);
  if (args.length > 1) {
    if (prefix || fromKey) throw fail(ExitV3.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set');
    rangeEnd = Buffer.from(args[1]);
  }
  const order = str(ctx, 'order');
  const sortOrder = ({ ASCEND: RangeRequest_SortOrder.ASCEND, DESCEND: RangeRequest_SortOrder.DESCEND, '': RangeRequest_SortOrder.NONE } as Record<string, RangeRequest_SortOrder>)[order.toUpperCase()];
  if (sortOrder === undefined) throw fail(ExitV3.BadFeature, `bad sort order ${order}`);
  const by = str(ctx, 'sort-by');
  const targets: Record<string, RangeRequest_SortTarget> = {
    CREATE: RangeRequest_SortTarget.CREATE, KEY: RangeRequest_SortTarget.KEY, MODIFY: RangeRequest_SortTarget.MOD,
    VALUE: RangeRequest_SortTarget.VALUE, VERSION: RangeRequest_SortTarget.VERSION, '': RangeRequest_SortTarget.KEY,
  };
  const sortTarget = targets[by.toUpperCase()];
  if (sortTarget === undefined) throw fail(ExitV3.BadFeature, `bad sort target ${by}`);
  if (prefix || fromKey) {
    if (key.length === 0) {
      key = Buffer.from([0]);
      rangeEnd = Buffer.from([0]);
    } else rangeEnd = prefix ? prefixEnd(key) : Buffer.from([0]);
  }
  const rev = ctx.flags.values.get('rev') as bigint;
  // clientv3's WithSort: sorting by key ascending is the store's order already, so it asks for none.
  const effectiveOrder = sortTarget === RangeRequest_SortTarget.KEY && sortOrder === RangeRequest_SortOrder.ASCEND ? RangeRequest_SortOrder.NONE : sortOrder;
  return RangeRequest.fromPartial({
    key, rangeEnd, limit: ctx.flags.values.get('limit') as bigint, revision: rev > 0n ? rev : 0n,
    sortOrder: effectiveOrder, sortTarget,
    serializable: consistency === 's', keysOnly: bool(ctx, 'keys-only'),
  });
}

async function get(ctx: Ctx): Promise<void> {
  const req = rangeRequest(ctx);
  const valueOnly = bool(ctx, 'print-value-only');
  const p = printer(ctx, valueOnly);
  await withClient(ctx, p, (c) => c.call((kv) => kv.range, req), (pr, r) => {
    // Checked once the answer is in, as etcdctl does.
    if (valueOnly && str(ctx, 'write-out') !== 'simple') throw fail(ExitV3.BadArgs, 'print-value-only is only for `--write-out=simple`');
    pr.get(out(ctx), r);
  });
}

/** del's arguments as a DeleteRangeRequest (etcdctl's getDelOp, also used for txn's del lines). */
function deleteRequest(ctx: Ctx): DeleteRangeRequest {
  const { args } = ctx;
  if (args.length === 0 || args.length > 2) throw fail(ExitV3.BadArgs, 'del command needs one argument as key and an optional argument as range_end');
  const prefix = bool(ctx, 'prefix');
  const fromKey = bool(ctx, 'from-key');
  if (prefix && fromKey) throw fail(ExitV3.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  let key: Buffer = Buffer.from(args[0]);
  let rangeEnd: Buffer = Buffer.alloc(0);
  if (args.length > 1) {
    if (prefix || fromKey) throw fail(ExitV3.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set');
    rangeEnd = Buffer.from(args[1]);
  }
  if (prefix || fromKey) {
    if (key.length === 0) {
      key = Buffer.from([0]);
      rangeEnd = Buffer.from([0]);
    } else rangeEnd = prefix ? prefixEnd(key) : Buffer.from([0]);
  }
  return DeleteRangeRequest.fromPartial({ key, rangeEnd, prevKv: bool(ctx, 'prev-kv') });
}

async function del(ctx: Ctx): Promise<void> {
  const req = deleteRequest(ctx);
  const p = printer(ctx);
  await withClient(ctx, p, (c) => c.call((kv) => kv.deleteRange, req), (pr, r) => pr.del(out(ctx), r));
}


async function compaction(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'compaction command needs 1 argument');
  const m = /^[+-]?[0-9]+$/.exec(ctx.args[0]);
  const rev = m ? BigInt(ctx.args[0]) : undefined;
  if (rev === undefined) throw fail(ExitV3.Error, `strconv.ParseInt: parsing ${JSON.stringify(ctx.args[0])}: invalid syntax`);
  if (rev > 0x7fffffffffffffffn || rev < -0x8000000000000000n) throw fail(ExitV3.Error, `strconv.ParseInt: parsing ${JSON.stringify(ctx.args[0])}: value out of range`);
  const p = printer(ctx);
  const req = CompactionRequest.fromPartial({ revision: rev, physical: bool(ctx, 'physical') });
  // Whatever the output format, etcdctl prints this line.
  await withClient(ctx, p, (c) => c.call((kv) => kv.compact, req), () => ctx.io.stdout(`compacted revision ${rev}\n`));
}

/** A txn request line (`put k v`, `get k --prefix`, `del k`) as etcdctl's parseRequestUnion reads it. */
function requestOp(ctx: Ctx, line: string): RequestOp {
  const args = argify(line);
  if (args.length < 2) throw new TxnInputError(`invalid txn compare request: ${line}`);
  const builders: Record<string, (c: Ctx) => RequestOp> = {
    put: (c) => RequestOp.fromPartial({ requestPut: putRequest(c) }),
    get: (c) => RequestOp.fromPartial({ requestRange: rangeRequest(c) }),
    del: (c) => RequestOp.fromPartial({ requestDeleteRange: deleteRequest(c) }),
  };
  // A cobra root of its own with put, get and del (and cobra's help and completion), prefixes matched.
  const names = ['put', 'get', 'del', 'help', 'completion'];
  const name = names.includes(args[0]) ? args[0] : names.filter((n) => n.startsWith(args[0])).length === 1 ? names.find((n) => n.startsWith(args[0])) : undefined;
  const build = name === undefined ? undefined : builders[name];
  if (!build) throw new TxnInputError(`invalid txn request: ${line}`);
  let flags: Parsed;
  try {
    flags = parseFlags(args.slice(1), COMMANDS[name!].flags);
  } catch (err) {
    if (err instanceof FlagError) throw new TxnInputError(`invalid txn request: ${line}`);
    throw err;
  }
  // What is left of stdin for a put without a value: bufio has taken it all.
  return build({ ...ctx, flags, args: flags.args, io: { ...ctx.io, readStdin: () => '' } });
}

async function txn(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 0) throw fail(ExitV3.BadArgs, 'txn command does not accept argument');
  const p = printer(ctx);
  const interactive = bool(ctx, 'interactive');
  const prompt = (s: string) => { if (interactive) ctx.io.stdout(`${s}\n`); };
  const reader = new LineReader(ctx.io.readStdin());
  const section = <T>(parse: (line: string) => T): T[] => {
    const items: T[] = [];
    for (;;) {
      const line = reader.readLine().trim();
      if (line === '') return items;
      items.push(parse(line));
    }
  };
  let req: TxnRequest;
  try {
    prompt('compares:');
    const compare = section(parseCompare);
    prompt('success requests (get, put, del):');
    const success = section((l) => requestOp(ctx, l));
    prompt('failure requests (get, put, del):');
    const failure = section((l) => requestOp(ctx, l));
    req = TxnRequest.fromPartial({ compare, success, failure });
  } catch (err) {
    if (err instanceof TxnInputError) throw fail(ExitV3.InvalidInput, err.message);
    throw err;
  }
  await withClient(ctx, p, (c) => c.call((kv) => kv.txn, req), (pr, r) => pr.txn(out(ctx), r));
}

// --- lease ---

/** The lease printer for -w (checked when the client is built, as etcdctl does). */
function leasePrinter(ctx: Ctx): LeasePrinter {
  applyEnv(ctx);
  authConfig(ctx);
  const format = str(ctx, 'write-out');
  if (!FORMATS.includes(format)) throw fail(ExitV3.BadFeature, 'unsupported output format');
  return new LeasePrinter(format as Format);
}

/** Runs the printing, an output format the command does not have being etcdctl's ExitBadFeature. */
function display(print: () => void): void {
  try {
    print();
  } catch (err) {
    if (err instanceof UnsupportedFormat) throw fail(ExitV3.BadFeature, err.message);
    throw err;
  }
}

/** One call; a failure is `Error: <wrap(clientv3's message)>` with the code given. */
async function leaseCall<T>(ctx: Ctx, code: number, wrap: (msg: string) => string, call: (c: V3Client) => Promise<T>): Promise<T> {
  const c = await client(ctx);
  try {
    return await call(c);
  } catch (err) {
    if (err instanceof CallError) throw fail(code, wrap(err.message));
    throw err;
  } finally {
    c.close();
  }
}

/** etcdctl's leaseFromArgs: strconv.ParseInt(arg, 16, 64). */
function leaseFromArgs(arg: string): bigint {
  try {
    return parseHexInt64(arg);
  } catch (err) {
    throw fail(ExitV3.BadArgs, `bad lease ID arg (${(err as Error).message}), expecting ID in Hex`);
  }
}

/** strconv.ParseInt(s, 10, 64) */
function parseDecInt64(s: string): bigint {
  if (!/^[+-]?[0-9]+$/.test(s)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  const v = BigInt(s);
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  return v;
}

async function leaseGrant(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'lease grant command needs TTL argument');
  let ttl: bigint;
  try {
    ttl = parseDecInt64(ctx.args[0]);
  } catch (err) {
    throw fail(ExitV3.BadArgs, `bad TTL (${(err as Error).message})`);
  }
  const p = leasePrinter(ctx);
  const r = await leaseCall(ctx, ExitV3.Error, (m) => `failed to grant lease (${m})`, (c) => c.callLease((l) => l.leaseGrant, LeaseGrantRequest.fromPartial({ TTL: ttl })));
  display(() => p.grant(out(ctx), r));
}

async function leaseRevoke(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'lease revoke command needs 1 argument');
  const id = leaseFromArgs(ctx.args[0]);
  const p = leasePrinter(ctx);
  const r = await leaseCall(ctx, ExitV3.Error, (m) => `failed to revoke lease (${m})`, (c) => c.callLease((l) => l.leaseRevoke, LeaseRevokeRequest.fromPartial({ ID: id })));
  display(() => p.revoke(out(ctx), id, r));
}

async function leaseTimeToLive(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'lease timetolive command needs lease ID as argument');
  const keys = bool(ctx, 'keys');
  const id = leaseFromArgs(ctx.args[0]);
  const p = leasePrinter(ctx);
  const r = await leaseCall(ctx, ExitV3.BadConnection, (m) => m, (c) => c.callLease((l) => l.leaseTimeToLive, LeaseTimeToLiveRequest.fromPartial({ ID: id, keys })));
  display(() => p.timeToLive(out(ctx), r, keys));
}

async function leaseList(ctx: Ctx): Promise<void> {
  const p = leasePrinter(ctx);
  const r = await leaseCall(ctx, ExitV3.BadConnection, (m) => m, (c) => c.callLease((l) => l.leaseLeases, LeaseLeasesRequest.fromPartial({})));
  display(() => p.leases(out(ctx), r));
}

async function leaseKeepAlive(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'lease keep-alive command needs lease ID as argument');
  const id = leaseFromArgs(ctx.args[0]);
  const p = leasePrinter(ctx);
  if (bool(ctx, 'once')) {
    const r = await leaseCall(ctx, ExitV3.BadConnection, (m) => m, (c) => c.keepAliveOnce(id));
    return display(() => p.keepAlive(out(ctx), r));
  }
  const c = await client(ctx);
  let failed: unknown;
  try {
    await c.keepAlive(id, (r) => {
      try {
        display(() => p.keepAlive(out(ctx), r));
        return true;
      } catch (err) {
        failed = err;
        return false;
      }
    });
  } finally {
    c.close();
  }
  if (failed) throw failed;
  if (str(ctx, 'write-out') === 'simple') ctx.io.stdout(`lease ${hex16(id)} expired or revoked.\n`);
}

// --- auth, user and role ---

/** stdin as etcdctl's prompts read it: a byte at a time, so that what one prompt leaves the next one reads. */
class Stdin {
  private all: Buffer | undefined;
  private pos = 0;

  constructor(private readonly io: V3IO) {}

  private byte(): number {
    if (this.io.readStdinByte) return this.io.readStdinByte();
    this.all ??= Buffer.from(this.io.readStdin());
    return this.pos < this.all.length ? this.all[this.pos++] : -1;
  }

  /** speakeasy's readline: the bytes up to a newline or the end, without a trailing "\r". */
  line(): string {
    const bytes: number[] = [];
    for (let b = this.byte(); b !== -1 && b !== 0x0a; b = this.byte()) bytes.push(b);
    return Buffer.from(bytes).toString('utf8').replace(/\r$/, '');
  }

  /** fmt.Scanf("%s"): blanks skipped (a newline first gives nothing), then the bytes up to the next white space. */
  token(): string {
    let b = this.byte();
    while (b === 0x20 || b === 0x09) b = this.byte();
    const bytes: number[] = [];
    for (; b !== -1 && ![0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c].includes(b); b = this.byte()) bytes.push(b);
    return Buffer.from(bytes).toString('utf8');
  }
}

const stdin = (ctx: Ctx): Stdin => (ctx.stdin ??= new Stdin(ctx.io));

/** speakeasy.Ask: the prompt on stdout, echo off, a line (trimmed) read, echo on, a newline. */
function ask(ctx: Ctx, prompt: string): string {
  ctx.io.stdout(prompt);
  ctx.io.setEcho?.(false);
  const line = stdin(ctx).line().trim();
  ctx.io.setEcho?.(true);
  ctx.io.stdout('\n');
  return line;
}

/** etcdctl's readPasswordInteractive: the password twice, the same and not empty. */
function readPasswordInteractive(ctx: Ctx, name: string): string {
  const p1 = ask(ctx, `Password of ${name}: `);
  if (p1 === '') throw fail(ExitV3.BadArgs, 'empty password');
  const p2 = ask(ctx, `Type password of ${name} again for confirmation: `);
  if (p1 !== p2) throw fail(ExitV3.BadArgs, 'given passwords are different');
  return p1;
}

/** The printer for -w, checked (with ETCDCTL_* read and --user's password asked for) as etcdctl builds its client. */
function authPrinter(ctx: Ctx): AuthPrinter {
  applyEnv(ctx);
  authConfig(ctx);
  const format = str(ctx, 'write-out');
  if (!FORMATS.includes(format)) throw fail(ExitV3.BadFeature, 'unsupported output format');
  return new AuthPrinter(format as Format);
}

/** One client for a command's calls; a failed call is `Error: <clientv3's message>`, exit 1. */
async function session(ctx: Ctx, run: (c: V3Client) => Promise<void>): Promise<void> {
  const c = await client(ctx);
  try {
    await run(c);
  } catch (err) {
    if (err instanceof CallError) throw fail(ExitV3.Error, err.message);
    throw err;
  } finally {
    c.close();
  }
}

const ROOT_ROLE_MISSING = 'etcdserver: root user does not have root role';

async function authEnable(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 0) throw fail(ExitV3.BadArgs, 'auth enable command does not accept any arguments');
  authPrinter(ctx);
  await session(ctx, async (c) => {
    // as etcdctl: a root user without the root role gets it, and enabling is tried again
    for (;;) {
      try {
        await c.callAuth((a) => a.authEnable, AuthEnableRequest.fromPartial({}));
        break;
      } catch (err) {
        if (!(err instanceof CallError) || err.message !== ROOT_ROLE_MISSING) throw err;
        await c.callAuth((a) => a.roleAdd, AuthRoleAddRequest.fromPartial({ name: 'root' }));
        await c.callAuth((a) => a.userGrantRole, AuthUserGrantRoleRequest.fromPartial({ user: 'root', role: 'root' }));
      }
    }
  });
  ctx.io.stdout('Authentication Enabled\n');
}

async function authDisable(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 0) throw fail(ExitV3.BadArgs, 'auth disable command does not accept any arguments');
  authPrinter(ctx);
  await session(ctx, (c) => c.callAuth((a) => a.authDisable, AuthDisableRequest.fromPartial({})).then(() => undefined));
  ctx.io.stdout('Authentication Disabled\n');
}

async function userAdd(ctx: Ctx): Promise<void> {
  const { args } = ctx;
  if (args.length !== 1) throw fail(ExitV3.BadArgs, 'user add command requires user name as its argument');
  const noPassword = bool(ctx, 'no-password');
  let user = args[0];
  let password = '';
  if (!noPassword) {
    const fromFlag = str(ctx, 'new-user-password');
    const at = args[0].indexOf(':');
    if (fromFlag !== '') password = fromFlag;
    else if (at < 0) password = bool(ctx, 'interactive') ? readPasswordInteractive(ctx, user) : stdin(ctx).token();
    else {
      user = args[0].slice(0, at);
      password = args[0].slice(at + 1);
      if (user === '') throw fail(ExitV3.BadArgs, 'empty user name is not allowed');
    }
  }
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userAdd, AuthUserAddRequest.fromPartial({ name: user, password, options: { noPassword } }));
    display(() => p.userAdd(out(ctx), user, r));
  });
}

async function userDelete(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'user delete command requires user name as its argument');
  const p = authPrinter(ctx);
  const name = ctx.args[0];
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userDelete, AuthUserDeleteRequest.fromPartial({ name }));
    display(() => p.userDelete(out(ctx), name, r));
  });
}

async function userGet(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'user get command requires user name as its argument');
  const name = ctx.args[0];
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userGet, AuthUserGetRequest.fromPartial({ name }));
    if (!bool(ctx, 'detail')) return display(() => p.userGet(out(ctx), name, r));
    // --detail: etcdctl's own line, then each role as `role get` prints it, in any format
    ctx.io.stdout(`User: ${name}\n`);
    for (const role of r.roles) {
      ctx.io.stdout('\n');
      const rr = await c.callAuth((a) => a.roleGet, AuthRoleGetRequest.fromPartial({ role }));
      display(() => p.roleGet(out(ctx), role, rr));
    }
  });
}

async function userList(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 0) throw fail(ExitV3.BadArgs, 'user list command requires no arguments');
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userList, AuthUserListRequest.fromPartial({}));
    display(() => p.userList(out(ctx), r));
  });
}

async function userPasswd(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'user passwd command requires user name as its argument');
  const name = ctx.args[0];
  const password = bool(ctx, 'interactive') ? readPasswordInteractive(ctx, name) : stdin(ctx).token();
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userChangePassword, AuthUserChangePasswordRequest.fromPartial({ name, password }));
    display(() => p.userChangePassword(out(ctx), r));
  });
}

async function userGrantRole(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 2) throw fail(ExitV3.BadArgs, 'user grant command requires user name and role name as its argument');
  const [user, role] = ctx.args;
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userGrantRole, AuthUserGrantRoleRequest.fromPartial({ user, role }));
    display(() => p.userGrantRole(out(ctx), user, role, r));
  });
}

async function userRevokeRole(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 2) throw fail(ExitV3.BadArgs, 'user revoke-role requires user name and role name as its argument');
  const [name, role] = ctx.args;
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.userRevokeRole, AuthUserRevokeRoleRequest.fromPartial({ name, role }));
    display(() => p.userRevokeRole(out(ctx), name, role, r));
  });
}

async function roleAdd(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'role add command requires role name as its argument');
  const name = ctx.args[0];
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleAdd, AuthRoleAddRequest.fromPartial({ name }));
    display(() => p.roleAdd(out(ctx), name, r));
  });
}

async function roleDelete(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'role delete command requires role name as its argument');
  const role = ctx.args[0];
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleDelete, AuthRoleDeleteRequest.fromPartial({ role }));
    display(() => p.roleDelete(out(ctx), role, r));
  });
}

async function roleGet(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 1) throw fail(ExitV3.BadArgs, 'role get command requires role name as its argument');
  const role = ctx.args[0];
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleGet, AuthRoleGetRequest.fromPartial({ role }));
    display(() => p.roleGet(out(ctx), role, r));
  });
}

async function roleList(ctx: Ctx): Promise<void> {
  if (ctx.args.length !== 0) throw fail(ExitV3.BadArgs, 'role list command requires no arguments');
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleList, AuthRoleListRequest.fromPartial({}));
    display(() => p.roleList(out(ctx), r));
  });
}

/** etcdctl's permRange: a key and range end from the arguments and --prefix / --from-key ("\0" ends: open). */
function permRange(ctx: Ctx, args: string[]): [Buffer, Buffer] {
  const prefix = bool(ctx, 'prefix');
  const fromKey = bool(ctx, 'from-key');
  const exclusive = '--from-key and --prefix flags are mutually exclusive';
  if (args[0] === '') {
    if (prefix && fromKey) throw fail(ExitV3.BadArgs, exclusive);
    // the empty key as "\0", and for --prefix or --from-key the whole key space
    return [Buffer.from([0]), prefix || fromKey ? Buffer.from([0]) : Buffer.alloc(0)];
  }
  const key = Buffer.from(args[0]);
  if (args.length === 1) {
    if (prefix && fromKey) throw fail(ExitV3.BadArgs, exclusive);
    if (prefix) return [key, prefixEnd(key)];
    return [key, fromKey ? Buffer.from([0]) : Buffer.alloc(0)];
  }
  if (prefix) throw fail(ExitV3.BadArgs, 'unexpected endkey argument with --prefix flag');
  if (fromKey) throw fail(ExitV3.BadArgs, 'unexpected endkey argument with --from-key flag');
  return [key, Buffer.from(args[1])];
}

async function roleGrantPermission(ctx: Ctx): Promise<void> {
  const { args } = ctx;
  if (args.length < 3) throw fail(ExitV3.BadArgs, 'role grant command requires role name, permission type, and key [endkey] as its argument');
  const permType = ['READ', 'WRITE', 'READWRITE'].indexOf(args[1].toUpperCase());
  if (permType < 0) throw fail(ExitV3.BadArgs, `invalid permission type: ${args[1]}`);
  const [key, rangeEnd] = permRange(ctx, args.slice(2));
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleGrantPermission, AuthRoleGrantPermissionRequest.fromPartial({ name: args[0], perm: { permType, key, rangeEnd } }));
    display(() => p.roleGrantPermission(out(ctx), args[0], r));
  });
}

async function roleRevokePermission(ctx: Ctx): Promise<void> {
  const { args } = ctx;
  if (args.length < 2) throw fail(ExitV3.BadArgs, 'role revoke-permission command requires role name and key [endkey] as its argument');
  const [key, rangeEnd] = permRange(ctx, args.slice(1));
  const p = authPrinter(ctx);
  await session(ctx, async (c) => {
    const r = await c.callAuth((a) => a.roleRevokePermission, AuthRoleRevokePermissionRequest.fromPartial({ role: args[0], key, rangeEnd }));
    display(() => p.roleRevokePermission(out(ctx), args[0], args[1], rangeEnd, r));
  });
}

// --- watch ---

const quoteStr = (s: string): string => goQuote(Buffer.from(s));

/** etcdctl's getWatchChan: the watch of the arguments (key, range end or --prefix, --rev, --prev-kv). */
function watchSpec(args: string[], f: WatchFlags): WatchSpec {
  if (args.length < 1) throw new WatchArgsError('bad number of arguments');
  let key: Buffer = Buffer.from(args[0]);
  let end: Buffer = Buffer.alloc(0);
  if (args.length === 2) {
    if (f.prefix) throw new WatchArgsError('`range_end` and `--prefix` are mutually exclusive');
    end = Buffer.from(args[1]);
  }
  if (f.prefix) {
    if (key.length === 0) {
      key = Buffer.from([0]);
      end = Buffer.from([0]);
    } else end = prefixEnd(key);
  }
  return { key, end, rev: f.rev, prevKv: f.prevKv };
}

/**
 * Go's exec.Cmd.Run of the command for one event, with the event in ETCD_WATCH_* (Go's %q of each), its output
 * etcdctl's; resolves with Go's error text when it fails.
 */
function runForEvent(ctx: Ctx, execArgs: string[], env: Record<string, string>): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(execArgs[0], execArgs.slice(1), { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') resolve(execArgs[0].includes('/') ? `fork/exec ${execArgs[0]}: no such file or directory` : `exec: ${quoteStr(execArgs[0])}: executable file not found in $PATH`);
      else if (err.code === 'EACCES') resolve(`fork/exec ${execArgs[0]}: permission denied`);
      else resolve(err.message);
    });
    child.on('exit', (code, signal) => resolve(signal ? `signal: ${signalName(signal)}` : code ? `exit status ${code}` : undefined));
  });
}

/** Go's names of the signals a command may die of. */
function signalName(sig: NodeJS.Signals): string {
  const names: Partial<Record<NodeJS.Signals, string>> = { SIGKILL: 'killed', SIGTERM: 'terminated', SIGINT: 'interrupt', SIGSEGV: 'segmentation fault', SIGABRT: 'aborted', SIGPIPE: 'broken pipe', SIGHUP: 'hangup', SIGQUIT: 'quit' };
  return names[sig] ?? sig;
}

/** etcdctl's printWatchCh for one response: a cancel on stderr, a progress notification, the events, the command. */
async function printWatchResponse(ctx: Ctx, p: Printer, r: ClientWatchResponse, execArgs: string[]): Promise<void> {
  if (r.canceled) ctx.io.stderr(`watch was canceled (${r.err})\n`);
  const events = r.events ?? [];
  if (!events.length && !r.canceled && !r.created && r.compactRevision === 0n && r.header.revision !== 0n) ctx.io.stdout(`progress notify: ${r.header.revision}\n`);
  try {
    p.watch(out(ctx), r);
  } catch (err) {
    if (err instanceof UnsupportedFormat) throw fail(ExitV3.BadFeature, err.message);
    throw err;
  }
  if (!execArgs.length) return;
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined && k !== 'ETCDCTL_API') base[k] = v;
  for (const ev of events) {
    const env = {
      ...base,
      ETCD_WATCH_REVISION: String(r.header.revision),
      ETCD_WATCH_EVENT_TYPE: quoteStr(eventTypeName(ev.type ?? Event_EventType.PUT)),
      ETCD_WATCH_KEY: goQuote(ev.kv!.key),
      ETCD_WATCH_VALUE: goQuote(ev.kv!.value),
    };
    const err = await runForEvent(ctx, execArgs, env);
    if (err !== undefined) {
      ctx.io.stderr(`command [${execArgs.map(quoteStr).join(' ')}] error (${err})\n`);
      throw new Exit(ExitV3.Error);
    }
  }
}

/** Runs a watch until it ends; rejects with the Exit of a failed command or an unsupported format. */
function runWatch(ctx: Ctx, w: ClientWatcher, p: Printer, spec: WatchSpec, execArgs: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    w.watch(spec, (r) => printWatchResponse(ctx, p, r, execArgs).catch((err) => reject(err)), resolve);
  });
}

function watchFlags(ctx: Ctx): WatchFlags {
  return { prefix: bool(ctx, 'prefix'), rev: ctx.flags.values.get('rev') as bigint, prevKv: bool(ctx, 'prev-kv') };
}

async function watch(ctx: Ctx): Promise<void> {
  const envKey = ctx.env.ETCDCTL_WATCH_KEY ?? '';
  const envRange = ctx.env.ETCDCTL_WATCH_RANGE_END ?? '';
  if (envKey === '' && envRange !== '') throw fail(ExitV3.BadArgs, `ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=${quoteStr(envRange)}`);
  if (bool(ctx, 'interactive')) return watchInteractive(ctx, envKey, envRange);
  let parsed;
  try {
    parsed = parseWatchArgs(ctx.argv, ctx.args, envKey, envRange, false);
  } catch (err) {
    if (err instanceof WatchArgsError) throw fail(ExitV3.BadArgs, err.message);
    throw err;
  }
  const p = printer(ctx);
  const c = await client(ctx);
  const w = new ClientWatcher(c);
  try {
    let spec: WatchSpec;
    try {
      spec = watchSpec(parsed.watchArgs, watchFlags(ctx));
    } catch (err) {
      if (err instanceof WatchArgsError) throw fail(ExitV3.BadArgs, err.message);
      throw err;
    }
    await runWatch(ctx, w, p, spec, parsed.execArgs);
  } finally {
    w.stop();
    c.close();
  }
  throw fail(ExitV3.Interrupted, 'watch is canceled by the server');
}

/** watch -i: "watch ..." and "progress" lines from standard input, each watch printed as it goes, until end of input. */
async function watchInteractive(ctx: Ctx, envKey: string, envRange: string): Promise<void> {
  const p = printer(ctx);
  const c = await client(ctx);
  const w = new ClientWatcher(c);
  const input = ctx.io.stdin?.() ?? process.stdin;
  try {
    await new Promise<void>((resolve, reject) => {
      let pending = '';
      const line = (l: string): void => {
        const args = argify(l);
        if (args.length < 1) return ctx.io.stderr(`Invalid command: ${l} (watch and progress supported)\n`);
        if (args[0] === 'watch') {
          if (args.length < 2 && envKey === '') return ctx.io.stderr(`Invalid command ${l} (command type or key is not provided)\n`);
          let parsed;
          try {
            parsed = parseWatchArgs(ctx.argv, args, envKey, envRange, true);
          } catch (err) {
            if (err instanceof WatchArgsError) return reject(fail(ExitV3.BadArgs, err.message));
            throw err;
          }
          let spec: WatchSpec;
          try {
            spec = watchSpec(parsed.watchArgs, parsed.flags!);
          } catch (err) {
            if (err instanceof WatchArgsError) return ctx.io.stderr(`Invalid command ${l} (${err.message})\n`);
            throw err;
          }
          runWatch(ctx, w, p, spec, parsed.execArgs).catch(reject);
        } else if (args[0] === 'progress') {
          w.requestProgress();
        } else {
          ctx.io.stderr(`Invalid command ${l} (only support watch)\n`);
        }
      };
      input.on('data', (chunk: Buffer | string) => {
        pending += chunk.toString();
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
          const l = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          try {
            line(l);
          } catch (err) {
            reject(err);
          }
        }
      });
      input.on('end', () => reject(fail(ExitV3.InvalidInput, 'Error reading watch request line: EOF')));
      input.on('error', (err: Error) => reject(fail(ExitV3.InvalidInput, `Error reading watch request line: ${err.message}`)));
    });
  } finally {
    input.removeAllListeners('data');
    (input as NodeJS.ReadStream).pause?.();
    w.stop();
    c.close();
  }
}
