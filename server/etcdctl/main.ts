#!/usr/bin/env node
/**
 * etcdctl: the v2 commands of etcd's etcdctl, with the same arguments, output and exit codes, against any etcd
 * (ours or the real one) through the v2 HTTP API; with ETCDCTL_API unset or 3, the v3 commands (v3/main.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { goParseBool, goParseDuration } from '../pkg/go-compat';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { getClientEndpoints, systemResolver } from '../discovery/srv';
import { ClusterError, V2Client, V2Member, V2Response } from './client';
import { formatResponse } from './format';
import { COMMAND_HELP, MEMBER_HELP, MEMBER_SUBCOMMAND_HELP, memberAppHelp } from './help';
import { runV3 } from './v3/main';

/** etcdctl's exit codes. */
export const enum Exit {
  Success = 0,
  BadArgs = 1,
  BadConnection = 2,
  BadAuth = 3,
  ServerError = 4,
  ClusterNotHealthy = 5,
}

export interface IO {
  stdout: (s: string) => void;
  /** Raw bytes (v3 keys and values need not be UTF-8); without it they go to stdout as UTF-8 text. */
  stdoutBytes?: (b: Buffer) => void;
  stderr: (s: string) => void;
  readStdin: () => string;
  /** One byte of stdin, -1 at its end (password prompts). */
  readStdinByte?: () => number;
  /** Terminal echo around a password prompt. */
  setEcho?: (on: boolean) => void;
}

/** Ends the command with an exit code (the way os.Exit does in etcdctl). */
class ExitWith extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface FlagSpec {
  names: string[];
  kind: 'bool' | 'string' | 'int' | 'duration';
}

const GLOBAL_FLAGS: FlagSpec[] = [
  { names: ['debug'], kind: 'bool' },
  { names: ['no-sync'], kind: 'bool' },
  { names: ['output', 'o'], kind: 'string' },
  { names: ['discovery-srv', 'D'], kind: 'string' },
  { names: ['insecure-discovery'], kind: 'bool' },
  { names: ['peers', 'C'], kind: 'string' },
  { names: ['endpoint'], kind: 'string' },
  { names: ['endpoints'], kind: 'string' },
  { names: ['cert-file', 'cert'], kind: 'string' },
  { names: ['key-file', 'key'], kind: 'string' },
  { names: ['ca-file', 'cacert'], kind: 'string' },
  { names: ['insecure-skip-tls-verify'], kind: 'bool' },
  { names: ['username', 'u'], kind: 'string' },
  { names: ['timeout'], kind: 'duration' },
  { names: ['total-timeout'], kind: 'duration' },
  { names: ['help', 'h'], kind: 'bool' },
  { names: ['version', 'v'], kind: 'bool' },
];

const COMMAND_FLAGS: Record<string, FlagSpec[]> = {
  set: [{ names: ['ttl'], kind: 'int' }, { names: ['swap-with-value'], kind: 'string' }, { names: ['swap-with-index'], kind: 'int' }],
  get: [{ names: ['sort'], kind: 'bool' }, { names: ['quorum', 'q'], kind: 'bool' }],
  mk: [{ names: ['in-order'], kind: 'bool' }, { names: ['ttl'], kind: 'int' }],
  mkdir: [{ names: ['ttl'], kind: 'int' }],
  setdir: [{ names: ['ttl'], kind: 'int' }],
  update: [{ names: ['ttl'], kind: 'int' }],
  updatedir: [{ names: ['ttl'], kind: 'int' }],
  rm: [{ names: ['dir'], kind: 'bool' }, { names: ['recursive', 'r'], kind: 'bool' }, { names: ['with-value'], kind: 'string' }, { names: ['with-index'], kind: 'int' }],
  rmdir: [],
  ls: [{ names: ['sort'], kind: 'bool' }, { names: ['recursive', 'r'], kind: 'bool' }, { names: ['p'], kind: 'bool' }, { names: ['quorum', 'q'], kind: 'bool' }],
  watch: [{ names: ['forever', 'f'], kind: 'bool' }, { names: ['after-index'], kind: 'int' }, { names: ['recursive', 'r'], kind: 'bool' }],
  'exec-watch': [{ names: ['after-index'], kind: 'int' }, { names: ['recursive', 'r'], kind: 'bool' }],
  'cluster-health': [{ names: ['forever', 'f'], kind: 'bool' }],
  member: [],
};

type FlagValues = Map<string, string | boolean>;

/** urfave/cli appends its help flag to every command. */
const HELP_FLAG: FlagSpec = { names: ['help', 'h'], kind: 'bool' };


/**
 * Go's flag.FlagSet.Parse: flags up to the first non-flag argument or "--" (which is consumed), then urfave/cli's
 * normalizeFlags (one flag given under two of its names is an error).
 */
function goFlagParse(args: string[], specs: FlagSpec[]): { flags: FlagValues; rest: string[] } {
  const flags: FlagValues = new Map();
  const given: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a.length < 2 || a[0] !== '-') break;
    let minuses = 1;
    if (a[1] === '-') {
      minuses = 2;
      if (a.length === 2) {
        i++;
        break;
      }
    }
    let name = a.slice(minuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') throw new UsageError(`bad flag syntax: ${a}`);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = specs.find((s) => s.names.includes(name));
    if (!spec) throw new UsageError(`flag provided but not defined: -${name}`);
    if (spec.kind === 'bool') {
      const b = value === undefined ? true : goParseBool(value);
      if (b === undefined) throw new UsageError(`invalid boolean value "${value}" for -${name}: parse error`);
      flags.set(spec.names[0], b);
    } else {
      if (value === undefined) {
        if (i + 1 >= args.length) throw new UsageError(`flag needs an argument: -${name}`);
        value = args[++i];
      }
      if (spec.kind === 'int' && !/^[+-]?(\d+|0[xX][0-9a-fA-F]+)$/.test(value)) {
        throw new UsageError(`invalid value "${value}" for flag -${name}: parse error`);
      }
      if (spec.kind === 'duration') {
        try {
          goParseDuration(value);
        } catch {
          throw new UsageError(`invalid value "${value}" for flag -${name}: parse error`);
        }
      }
      flags.set(spec.names[0], value);
    }
    given.push(name);
  }
  for (const spec of specs) {
    let first: string | undefined;
    for (const n of spec.names) {
      if (!given.includes(n)) continue;
      if (first !== undefined) throw new NormalizeError(`Cannot use two forms of the same flag: ${n} ${first}`);
      first = n;
    }
  }
  return { flags, rest: args.slice(i) };
}

/** urfave/cli's argIsFlag: one of this command's flags, as -name, --name or --name=value. */
function argIsFlag(specs: FlagSpec[], arg: string): boolean {
  if (arg === '-' || arg === '--' || !arg.startsWith('-')) return false;
  let name = arg.startsWith('--') ? arg.slice(2) : arg;
  if (name.startsWith('-')) name = name.slice(1);
  name = name.split('=')[0];
  return specs.some((s) => s.names.includes(name));
}

/**
 * urfave/cli 1.22's reorderArgs (what Debian's etcdctl is built with): the command's flags, each with the argument
 * after it unless that is a flag too, move to the front; "--" moves to the front of the rest, so the flag parser
 * consumes it. (Hence `exec-watch /k -- cmd` takes its key from the last argument, as the real etcdctl does.)
 */
function reorderArgs(specs: FlagSpec[], args: string[]): string[] {
  const reordered: string[] = [];
  let remaining: string[] = [];
  let nextMayBeValue = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (nextMayBeValue && !argIsFlag(specs, arg)) {
      nextMayBeValue = false;
      reordered.push(arg);
    } else if (arg === '--') {
      remaining = ['--', ...remaining, ...args.slice(i + 1)];
      break;
    } else if (argIsFlag(specs, arg)) {
      reordered.push(arg);
      nextMayBeValue = !arg.includes('=');
    } else {
      remaining.push(arg);
    }
  }
  return [...reordered, ...remaining];
}

/** A command's arguments as urfave/cli parses them: reordered, then the flags up to the first argument. */
function parseCommandArgs(args: string[], specs: FlagSpec[]): { flags: FlagValues; rest: string[] } {
  return goFlagParse(reorderArgs(specs, args), specs);
}

class UsageError extends Error {}

/** A flag given under two of its names (urfave/cli's normalizeFlags), which the top level reports on its own. */
class NormalizeError extends UsageError {}

const HELP = `NAME:
   etcdctl - A simple command line client for etcd.

USAGE:
   etcdctl [global options] command [command options] [arguments...]

COMMANDS:
   cluster-health  check the health of the etcd cluster
   mk              make a new key with a given value
   mkdir           make a new directory
   rm              remove a key or a directory
   rmdir           removes the key if it is an empty directory or a key-value pair
   get             retrieve the value of a key
   ls              retrieve a directory
   set             set the value of a key
   setdir          create a new directory or update an existing directory TTL
   update          update an existing key with a given value
   updatedir       update an existing directory
   watch           watch a key for changes
   exec-watch      watch a key for changes and exec an executable
   member          member add, remove and list subcommands
   help, h         Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --debug                          output cURL commands which can be used to reproduce the request
   --no-sync                        don't synchronize cluster information before sending request
   --output simple, -o simple       output response in the given format (simple, \`extended\` or \`json\`) (default: "simple")
   --endpoints value                a comma-delimited list of machine addresses in the cluster (default: "http://127.0.0.1:2379,http://127.0.0.1:4001")
   --cert-file value, --cert value  identify HTTPS client using this SSL certificate file
   --key-file value, --key value    identify HTTPS client using this SSL key file
   --ca-file value, --cacert value  verify certificates of HTTPS-enabled servers using this CA bundle
   --insecure-skip-tls-verify       skip server certificate verification
   --timeout value                  connection timeout per request (default: 2s)
   --total-timeout value            timeout for the command execution (except watch) (default: 5s)
   --help, -h                       show help
   --version, -v                    print the version
`;

export const VERSION = '3.4.0-ts-etcd';

interface Ctx {
  g: FlagValues;
  f: FlagValues;
  args: string[];
  env: Record<string, string | undefined>;
  io: IO;
  /** The -o value as given: simple, extended, json, or anything else (then each response is reported unsupported). */
  output: string;
}

function str(m: FlagValues, name: string, def = ''): string {
  const v = m.get(name);
  return typeof v === 'string' ? v : def;
}

function num(m: FlagValues, name: string): number {
  return Number(str(m, name, '0'));
}

/** As etcdctl's handleError: the message on stderr (etcd's errors print as text even with -o json). */
function handleError(ctx: Ctx, code: number, err: unknown): never {
  ctx.io.stderr(`Error:  ${(err as Error).message}\n`);
  if (err instanceof ClusterError) ctx.io.stderr(err.detail() + '\n');
  throw new ExitWith(code);
}

function endpointsOf(ctx: Ctx): string[] {
  const s =
    str(ctx.g, 'endpoints') ||
    ctx.env.ETCDCTL_ENDPOINTS ||
    str(ctx.g, 'endpoint') ||
    ctx.env.ETCDCTL_ENDPOINT ||
    str(ctx.g, 'peers') ||
    ctx.env.ETCDCTL_PEERS ||
    'http://127.0.0.1:2379,http://127.0.0.1:4001';
  return s.split(',').map((e) => (/^[a-z]+:\/\//.test(e) ? e : `http://${e}`));
}

/**
 * With --discovery-srv (or ETCDCTL_DISCOVERY_SRV) the endpoints of the domain's `_etcd-client-ssl._tcp` and
 * `_etcd-client._tcp` records, http ones dropped unless --insecure-discovery (or ETCDCTL_INSECURE_DISCOVERY), as
 * etcdctl v2's getDomainDiscoveryFlagValue; none found: the usual endpoint flags.
 */
async function discoveredEndpoints(ctx: Ctx): Promise<string[]> {
  const domain = str(ctx.g, 'discovery-srv') || ctx.env.ETCDCTL_DISCOVERY_SRV || '';
  if (domain === '') return [];
  let eps: string[];
  try {
    eps = await getClientEndpoints(systemResolver, domain, ctx.env.ETCDCTL_DISCOVERY_SRV_NAME ?? '');
  } catch (err) {
    ctx.io.stderr(`${(err as Error).message}\n`);
    throw new ExitWith(1);
  }
  if (ctx.g.get('insecure-discovery') === true || (ctx.env.ETCDCTL_INSECURE_DISCOVERY ?? '') !== '') return eps;
  for (const ep of eps.filter((e) => e.startsWith('http://'))) ctx.io.stderr(`ignoring discovered insecure endpoint "${ep}"\n`);
  return eps.filter((e) => !e.startsWith('http://'));
}

async function newClient(ctx: Ctx): Promise<V2Client> {
  const env = ctx.env;
  const found = await discoveredEndpoints(ctx);
  return new V2Client({
    endpoints: found.length > 0 ? found : endpointsOf(ctx),
    certFile: str(ctx.g, 'cert-file') || env.ETCDCTL_CERT_FILE || env.ETCDCTL_CERT || undefined,
    keyFile: str(ctx.g, 'key-file') || env.ETCDCTL_KEY_FILE || env.ETCDCTL_KEY || undefined,
    caFile: str(ctx.g, 'ca-file') || env.ETCDCTL_CA_FILE || env.ETCDCTL_CACERT || undefined,
    insecureSkipVerify: ctx.g.get('insecure-skip-tls-verify') === true || env.ETCDCTL_INSECURE_SKIP_TLS_VERIFY === 'true',
    headerTimeoutMs: goParseDuration(str(ctx.g, 'timeout', '2s')) || 2000,
  });
}

/** etcdctl's isConnectionError: every endpoint failed to connect (a 5xx or a timeout is not one). */
function isConnectionError(err: unknown): boolean {
  return err instanceof ClusterError && err.connectionErrors;
}

/** A client synchronized with the cluster's published client URLs, unless --no-sync. */
async function syncedClient(ctx: Ctx): Promise<V2Client> {
  const c = await newClient(ctx);
  if (ctx.g.get('no-sync') === true) return c;
  try {
    await c.sync();
  } catch (err) {
    if (isConnectionError(err)) handleError(ctx, Exit.BadConnection, err);
  }
  return c;
}

function argOrStdin(ctx: Ctx, i: number): string | undefined {
  if (i < ctx.args.length) return ctx.args[i];
  const s = ctx.io.readStdin();
  return s === '' ? undefined : s;
}

function requireKey(ctx: Ctx): string {
  if (ctx.args.length === 0) handleError(ctx, Exit.BadArgs, new Error('key required'));
  return ctx.args[0];
}

async function keysCall(ctx: Ctx, fn: (c: V2Client) => Promise<V2Response>): Promise<V2Response> {
  const c = await syncedClient(ctx);
  try {
    return await fn(c);
  } catch (err) {
    handleError(ctx, Exit.ServerError, err);
  }
}

/** printResponseKey: an unsupported -o is reported on stderr (per response, and the command still succeeds). */
function print(ctx: Ctx, resp: V2Response): void {
  const out = formatResponse(resp, ctx.output);
  if (out === undefined) ctx.io.stderr(`Unsupported output format: ${ctx.output}\n`);
  else ctx.io.stdout(out);
}

function setForm(value: string | undefined, ttl: number): Record<string, string> {
  const form: Record<string, string> = {};
  if (value !== undefined) form.value = value;
  if (ttl > 0) form.ttl = String(ttl);
  return form;
}

const COMMANDS: Record<string, (ctx: Ctx) => Promise<void>> = {
  async set(ctx) {
    const key = requireKey(ctx);
    const value = argOrStdin(ctx, 1);
    if (value === undefined) handleError(ctx, Exit.BadArgs, new Error('value required'));
    const q: Record<string, string> = {};
    if (str(ctx.f, 'swap-with-value')) q.prevValue = str(ctx.f, 'swap-with-value');
    if (num(ctx.f, 'swap-with-index')) q.prevIndex = String(num(ctx.f, 'swap-with-index'));
    print(ctx, await keysCall(ctx, (c) => c.keys('PUT', key, q, setForm(value, num(ctx.f, 'ttl')))));
  },
  async mk(ctx) {
    const key = requireKey(ctx);
    const value = argOrStdin(ctx, 1);
    if (value === undefined) handleError(ctx, Exit.BadArgs, new Error('value required'));
    const form = setForm(value, num(ctx.f, 'ttl'));
    const resp = ctx.f.get('in-order')
      ? await keysCall(ctx, (c) => c.keys('POST', key, {}, form))
      : await keysCall(ctx, (c) => c.keys('PUT', key, { prevExist: 'false' }, form, { oneShot: true }));
    print(ctx, resp);
  },
  async update(ctx) {
    const key = requireKey(ctx);
    const value = argOrStdin(ctx, 1);
    if (value === undefined) handleError(ctx, Exit.BadArgs, new Error('value required'));
    print(ctx, await keysCall(ctx, (c) => c.keys('PUT', key, { prevExist: 'true' }, setForm(value, num(ctx.f, 'ttl')))));
  },
  async mkdir(ctx) {
    await dirCommand(ctx, 'false');
  },
  async setdir(ctx) {
    await dirCommand(ctx, undefined);
  },
  async updatedir(ctx) {
    await dirCommand(ctx, 'true');
  },
  async get(ctx) {
    const key = requireKey(ctx);
    const q = { recursive: 'false', sorted: String(ctx.f.get('sort') === true), quorum: String(ctx.f.get('quorum') === true) };
    const resp = await keysCall(ctx, (c) => c.keys('GET', key, q));
    if (resp.node.dir) {
      ctx.io.stderr(`${resp.node.key}: is a directory\n`);
      throw new ExitWith(1);
    }
    print(ctx, resp);
  },
  async ls(ctx) {
    const key = ctx.args[0] ?? '/';
    const q = { recursive: String(ctx.f.get('recursive') === true), sorted: String(ctx.f.get('sort') === true), quorum: String(ctx.f.get('quorum') === true) };
    const resp = await keysCall(ctx, (c) => c.keys('GET', key, q));
    if (ctx.output !== 'simple') {
      print(ctx, resp);
      return;
    }
    let out = '';
    if (!resp.node.dir) out += `${resp.node.key}\n`;
    const slash = ctx.f.get('p') === true;
    const walk = (n: V2Response['node']): void => {
      out += n.dir && slash ? `${n.key}/\n` : `${n.key}\n`;
      for (const child of n.nodes ?? []) walk(child);
    };
    for (const child of resp.node.nodes ?? []) walk(child);
    ctx.io.stdout(out);
  },
  async rm(ctx) {
    const key = requireKey(ctx);
    const q: Record<string, string> = {};
    if (str(ctx.f, 'with-value')) q.prevValue = str(ctx.f, 'with-value');
    if (num(ctx.f, 'with-index')) q.prevIndex = String(num(ctx.f, 'with-index'));
    if (ctx.f.get('dir') === true) q.dir = 'true';
    if (ctx.f.get('recursive') === true) q.recursive = 'true';
    const resp = await keysCall(ctx, (c) => c.keys('DELETE', key, q));
    if (!resp.node.dir || ctx.output !== 'simple') print(ctx, resp);
  },
  async rmdir(ctx) {
    const key = requireKey(ctx);
    const resp = await keysCall(ctx, (c) => c.keys('DELETE', key, { dir: 'true' }));
    if (!resp.node.dir || ctx.output !== 'simple') print(ctx, resp);
  },
  async watch(ctx) {
    const key = requireKey(ctx);
    const recursive = ctx.f.get('recursive') === true;
    const forever = ctx.f.get('forever') === true;
    const c = await syncedClient(ctx);
    const after = num(ctx.f, 'after-index');
    let waitIndex = after > 0 ? after + 1 : 0;
    for (;;) {
      let resp: V2Response;
      try {
        resp = await c.keys('GET', key, { wait: 'true', waitIndex: String(waitIndex), recursive: String(recursive) }, undefined, { waitForever: true });
      } catch (err) {
        handleError(ctx, Exit.ServerError, err);
      }
      waitIndex = resp.node.modifiedIndex + 1;
      if (resp.node.dir) continue;
      if (recursive) ctx.io.stdout(`[${resp.action}] ${resp.node.key}\n`);
      print(ctx, resp);
      if (!forever) return;
    }
  },
  async 'exec-watch'(ctx) {
    const args = ctx.args;
    if (args.length < 2) handleError(ctx, Exit.BadArgs, new Error('key and command to exec required'));
    // As execWatchCommandFunc: a "--" left after flag parsing (not first) separates the key from the command;
    // otherwise the key is the last argument.
    const foundSep = args.some((a, i) => a === '--' && i !== 0);
    const key = foundSep ? args[0] : args[args.length - 1];
    const cmd = foundSep ? args.slice(2) : args.slice(0, args.length - 1);
    const c = await syncedClient(ctx);
    // --after-index I: the first event has an index above I (the Go watcher waits from AfterIndex + 1).
    const after = num(ctx.f, 'after-index');
    let waitIndex = after > 0 ? after + 1 : 0;
    const recursive = ctx.f.get('recursive') === true;
    for (;;) {
      let resp: V2Response;
      try {
        resp = await c.keys('GET', key, { wait: 'true', waitIndex: String(waitIndex), recursive: String(recursive) }, undefined, { waitForever: true });
      } catch (err) {
        handleError(ctx, Exit.ServerError, err);
      }
      waitIndex = resp.node.modifiedIndex + 1;
      if (resp.node.dir) {
        ctx.io.stderr(`Ignored dir ${resp.node.key} change\n`);
        continue;
      }
      // Go's exec.Command: the command runs with the environment plus ETCD_WATCH_*, sharing stdout and stderr, and
      // is not waited for; one that cannot start ends etcdctl with Go's error text (no newline) and exit code 1.
      const child = spawn(cmd[0], cmd.slice(1), {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          ETCD_WATCH_ACTION: resp.action,
          ETCD_WATCH_MODIFIED_INDEX: String(resp.node.modifiedIndex),
          ETCD_WATCH_KEY: resp.node.key,
          ETCD_WATCH_VALUE: resp.node.value ?? '',
        },
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        ctx.io.stderr(goExecError(cmd[0], err));
        process.exit(1);
      });
    }
  },
  async member(ctx) {
    const sub = ctx.args[0];
    const args = ctx.args.slice(1);
    const fail = (msg: string): never => {
      ctx.io.stderr(msg + '\n');
      throw new ExitWith(1);
    };
    if (sub === 'list') {
      if (args.length !== 0) fail('No arguments accepted');
      const c = await syncedClient(ctx);
      let members: V2Member[] = [];
      let leader: V2Member | undefined;
      try {
        members = await c.members();
      } catch (err) {
        fail((err as Error).message);
      }
      try {
        leader = await c.leader();
      } catch (err) {
        fail(`Failed to get leader:  ${(err as Error).message}`);
      }
      let out = '';
      for (const m of members) {
        if (!m.name) out += `${m.id}[unstarted]: peerURLs=${m.peerURLs.join(',')}\n`;
        else out += `${m.id}: name=${m.name} peerURLs=${m.peerURLs.join(',')} clientURLs=${m.clientURLs.join(',')} isLeader=${m.id === leader?.id}\n`;
      }
      ctx.io.stdout(out);
      return;
    }
    if (sub === 'add') {
      if (args.length !== 2) fail('Provide a name and a single member peerURL');
      const c = await syncedClient(ctx);
      const [newName, url] = args;
      let m: V2Member;
      let members: V2Member[] = [];
      try {
        m = await c.addMember(url);
      } catch (err) {
        fail((err as Error).message);
      }
      ctx.io.stdout(`Added member named ${newName} with ID ${m!.id} to cluster\n`);
      try {
        members = await c.members();
      } catch (err) {
        fail((err as Error).message);
      }
      const conf: string[] = [];
      for (const mm of members) for (const u of mm.peerURLs) conf.push(`${mm.id === m!.id ? newName : mm.name}=${u}`);
      ctx.io.stdout(`\nETCD_NAME=${JSON.stringify(newName)}\nETCD_INITIAL_CLUSTER=${JSON.stringify(conf.join(','))}\nETCD_INITIAL_CLUSTER_STATE="existing"\n`);
      return;
    }
    if (sub === 'remove') {
      if (args.length !== 1) fail('Provide a single member ID');
      const id = args[0];
      const c = await syncedClient(ctx);
      let members: V2Member[] = [];
      try {
        members = await c.members();
      } catch (err) {
        fail(`Error while verifying ID against known members: ${(err as Error).message}`);
      }
      let found = false;
      for (const m of members) {
        if (m.id === id) found = true;
        if (m.name === id) {
          ctx.io.stderr(`Found a member named ${m.name}; if this is correct, please use its ID, eg:\n\tetcdctl member remove ${m.id}\n`);
          ctx.io.stderr('For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n');
        }
      }
      if (!found) fail(`Couldn't find a member in the cluster with an ID of ${id}.`);
      try {
        await c.removeMember(id);
      } catch (err) {
        ctx.io.stderr(`Received an error trying to remove member ${id}: ${(err as Error).message}`);
        throw new ExitWith(1);
      }
      ctx.io.stdout(`Removed member ${id} from cluster\n`);
      return;
    }
    if (sub === 'update') {
      if (args.length !== 2) fail('Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)');
      const c = await syncedClient(ctx);
      try {
        await c.updateMember(args[0], args[1].split(','));
      } catch (err) {
        fail((err as Error).message);
      }
      ctx.io.stdout(`Updated member with ID ${args[0]} in cluster\n`);
      return;
    }
    throw new Error(`unknown member subcommand ${sub}`);
  },
  async 'cluster-health'(ctx) {
    const c = await newClient(ctx);
    let members: V2Member[];
    try {
      members = await c.members();
    } catch (err) {
      ctx.io.stdout('cluster may be unhealthy: failed to list members\n');
      handleError(ctx, Exit.ServerError, err);
    }
    let healthy = 0;
    let out = '';
    for (const m of members) {
      if (m.clientURLs.length === 0) {
        out += `member ${m.id} is unreachable: no available published client urls\n`;
        continue;
      }
      let checked = false;
      for (const url of m.clientURLs) {
        let body: string;
        try {
          body = await getText(`${url.replace(/\/+$/, '')}/health`, c);
        } catch (err) {
          out += `failed to check the health of member ${m.id} on ${url}: ${(err as Error).message}\n`;
          continue;
        }
        let ok: boolean;
        try {
          const h = (JSON.parse(body) as { health?: string | boolean }).health;
          ok = h === 'true' || h === true;
        } catch (err) {
          out += `failed to check the health of member ${m.id} on ${url}: ${(err as Error).message}\n`;
          continue;
        }
        checked = true;
        if (ok) {
          out += `member ${m.id} is healthy: got healthy result from ${url}\n`;
          healthy++;
        } else {
          out += `member ${m.id} is unhealthy: got unhealthy result from ${url}\n`;
        }
        break;
      }
      if (!checked) out += `member ${m.id} is unreachable: [${m.clientURLs.join(' ')}] are all unreachable\n`;
    }
    out += healthy === members.length ? 'cluster is healthy\n' : healthy === 0 ? 'cluster is unavailable\n' : 'cluster is degraded\n';
    ctx.io.stdout(out);
    if (healthy !== members.length) throw new ExitWith(Exit.ClusterNotHealthy);
  },
};

async function dirCommand(ctx: Ctx, prevExist: 'true' | 'false' | undefined): Promise<void> {
  const key = requireKey(ctx);
  const q: Record<string, string> = { dir: 'true' };
  if (prevExist) q.prevExist = prevExist;
  // A create (prevExist=false) is one-shot in the Go client: its first failure is the error.
  const resp = await keysCall(ctx, (c) => c.keys('PUT', key, q, setForm(undefined, num(ctx.f, 'ttl')), { oneShot: prevExist === 'false' }));
  if (ctx.output !== 'simple') print(ctx, resp);
}

/** What Go's exec.Cmd.Start says when the command cannot be started. */
function goExecError(file: string, err: NodeJS.ErrnoException): string {
  const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', ENOEXEC: 'exec format error' };
  if (!file.includes('/') && err.code === 'ENOENT') return `exec: "${file}": executable file not found in $PATH`;
  return `fork/exec ${file}: ${why[err.code ?? ''] ?? err.message}`;
}

function getText(url: string, c: V2Client): Promise<string> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(u, { timeout: c.opts.headerTimeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`Get ${url}: timeout`)));
    req.on('error', (err) => reject(new Error(`Get ${url}: ${(err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? `dial tcp ${u.host}: connect: connection refused` : err.message}`)));
  });
}

/** A record's own entry (never one of Object.prototype's, for a command named "constructor"). */
function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

/** urfave/cli's usage error: the message on stderr (etcdctl's main prints the error), then `prefix message` and the help. */
function usageError(io: IO, prefix: string, err: Error, help: string): ExitWith {
  io.stderr(`${err.message}\n`);
  io.stdout(`${prefix}${err.message}\n\n${help}`);
  return new ExitWith(Exit.BadArgs);
}

/** urfave/cli's ExitError for an unknown help topic: the message on stderr, exit code 3. */
function noHelpTopic(io: IO, topic: string): ExitWith {
  io.stderr(`No help topic for '${topic}'\n`);
  return new ExitWith(3);
}

/** Parses a command's arguments; a usage error prints "Incorrect Usage:" and the command's help; --help prints it. */
function commandArgs(io: IO, args: string[], specs: FlagSpec[], help: string): { flags: FlagValues; rest: string[] } {
  let parsed: { flags: FlagValues; rest: string[] };
  try {
    parsed = parseCommandArgs(args, [...specs, HELP_FLAG]);
  } catch (err) {
    if (err instanceof UsageError) throw usageError(io, 'Incorrect Usage: ', err, help);
    throw err;
  }
  if (parsed.flags.get('help') === true) {
    io.stdout(help);
    throw new ExitWith(Exit.Success);
  }
  return parsed;
}

/** `etcdctl help [command]` (and `h`): urfave/cli's help command. */
function helpCommand(io: IO, args: string[]): void {
  const { rest } = commandArgs(io, args, [], COMMAND_HELP.help);
  if (rest.length === 0) {
    io.stdout(HELP);
    return;
  }
  const help = own(COMMAND_HELP, rest[0]);
  if (help === undefined) throw noHelpTopic(io, rest[0]);
  io.stdout(help);
}

/**
 * `etcdctl member ...`: urfave/cli runs a command with subcommands as an application of its own, which parses its
 * flags (only --help) without reordering, then runs the subcommand, its help command, or shows its help.
 */
function memberArgs(io: IO, args: string[]): { sub: string; args: string[] } | undefined {
  let parsed: { flags: FlagValues; rest: string[] };
  try {
    parsed = goFlagParse(args, [HELP_FLAG]);
  } catch (err) {
    if (err instanceof NormalizeError) {
      io.stderr(`${err.message}\n`);
      io.stdout(`${err.message}\n\n${MEMBER_HELP}`);
      throw new ExitWith(Exit.BadArgs);
    }
    if (err instanceof UsageError) throw usageError(io, 'Incorrect Usage. ', err, MEMBER_HELP);
    throw err;
  }
  if (parsed.flags.get('help') === true || parsed.rest.length === 0) {
    io.stdout(MEMBER_HELP);
    return undefined;
  }
  const [sub, ...rest] = parsed.rest;
  if (sub === 'help' || sub === 'h') {
    const { rest: topics } = commandArgs(io, rest, [], MEMBER_SUBCOMMAND_HELP.help);
    if (topics.length === 0) {
      io.stdout(memberAppHelp(VERSION));
      return undefined;
    }
    const help = own(MEMBER_SUBCOMMAND_HELP, topics[0]);
    if (help === undefined) throw noHelpTopic(io, topics[0]);
    io.stdout(help);
    return undefined;
  }
  const help = own(MEMBER_SUBCOMMAND_HELP, sub);
  if (help === undefined) throw noHelpTopic(io, sub);
  return { sub, args: commandArgs(io, rest, [], help).rest };
}

/** Runs etcdctl with argv (without the program name); resolves to the exit code. */
export async function run(argv: string[], env: Record<string, string | undefined>, io: IO): Promise<number> {
  try {
    // etcd 3.4's etcdctl: v3 unless ETCDCTL_API=2.
    const api = env.ETCDCTL_API ?? '';
    if (api === '' || api === '3') {
      const stdoutBytes = io.stdoutBytes ?? ((b: Buffer) => io.stdout(b.toString('utf8')));
      return await runV3(argv, env, { ...io, stdoutBytes }, VERSION);
    }
    if (api !== '2') {
      io.stderr(`unsupported API version ${api}\n`);
      return Exit.BadArgs;
    }
    let g: FlagValues;
    let rest: string[];
    try {
      ({ flags: g, rest } = goFlagParse(argv, [...GLOBAL_FLAGS]));
    } catch (err) {
      if (err instanceof NormalizeError) {
        // urfave/cli's App.Run: the message alone, then the help.
        io.stderr(`${err.message}\n`);
        io.stdout(`${err.message}\n${HELP}`);
        return Exit.BadArgs;
      }
      if (err instanceof UsageError) throw usageError(io, 'Incorrect Usage. ', err, HELP);
      throw err;
    }
    if (g.get('help') === true) {
      io.stdout(HELP);
      return Exit.Success;
    }
    if (g.get('version') === true) {
      io.stdout(`etcdctl version: ${VERSION}\nAPI version: 2\n`);
      return Exit.Success;
    }
    const command = rest[0];
    if (command === undefined) {
      io.stdout(HELP);
      return Exit.Success;
    }
    if (command === 'help' || command === 'h') {
      helpCommand(io, rest.slice(1));
      return Exit.Success;
    }
    const output = str(g, 'output', 'simple');
    const impl = own(COMMANDS, command);
    if (!impl) {
      if (['backup', 'user', 'role', 'auth'].includes(command)) {
        io.stderr(`Error:  the "${command}" command is not supported by this etcdctl\n`);
        return Exit.BadArgs;
      }
      throw noHelpTopic(io, command);
    }
    let f: FlagValues = new Map();
    let args: string[];
    if (command === 'member') {
      const m = memberArgs(io, rest.slice(1));
      if (m === undefined) return Exit.Success;
      args = [m.sub, ...m.args];
    } else {
      ({ flags: f, rest: args } = commandArgs(io, rest.slice(1), COMMAND_FLAGS[command], COMMAND_HELP[command]));
    }
    if (str(g, 'username') || env.ETCDCTL_USERNAME) {
      io.stderr('Error:  authentication (--username) is not supported by this etcdctl\n');
      return Exit.BadAuth;
    }
    await impl({ g, f, args, env, io, output });
    return Exit.Success;
  } catch (err) {
    if (err instanceof ExitWith) return err.code;
    io.stderr(`Error:  ${(err as Error).message}\n`);
    return Exit.BadArgs;
  }
}

if (require.main === module) {
  const io: IO = {
    stdout: (s) => process.stdout.write(s),
    stdoutBytes: (b) => process.stdout.write(b),
    stderr: (s) => process.stderr.write(s),
    readStdin: () => {
      try {
        return fs.readFileSync(0, 'utf8');
      } catch {
        return '';
      }
    },
    readStdinByte: () => {
      const b = Buffer.alloc(1);
      for (;;) {
        try {
          return fs.readSync(0, b, 0, 1, null) === 1 ? b[0] : -1;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
          return -1;
        }
      }
    },
    // as speakeasy: stty on etcdctl's own stdio (on a pipe it says so on stderr, and the line is read all the same)
    setEcho: (on) => {
      spawnSync('/bin/stty', [on ? 'echo' : '-echo'], { stdio: 'inherit', argv0: 'stty' });
    },
  };
  run(process.argv.slice(2), process.env, io).then((code) => {
    process.exitCode = code;
  });
}
