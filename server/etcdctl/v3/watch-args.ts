/**
 * etcdctl's parseWatchArgs (ctlv3/command/watch_command.go): the key and range end of `watch`, from the arguments
 * or ETCDCTL_WATCH_KEY / ETCDCTL_WATCH_RANGE_END, and the command to run for each event after `--`, with etcd's
 * errors and quirks (the raw command line is searched for "watch" and "--", as etcdctl searches os.Args).
 */
import { FlagError, parseFlags, type FlagSpec, type Parsed } from '../../pkg/pflag';

export const WATCH_FLAGS: FlagSpec[] = [
  { name: 'interactive', short: 'i', kind: 'bool', def: 'false', usage: 'Interactive mode' },
  { name: 'prefix', kind: 'bool', def: 'false', usage: 'Watch on a prefix if prefix is set' },
  { name: 'rev', kind: 'int64', def: '0', usage: 'Revision to start watching' },
  { name: 'prev-kv', kind: 'bool', def: 'false', usage: 'get the previous key-value pair before the event happens' },
];

export const errBadArgsNum = 'bad number of arguments';
export const errBadArgsNumConflictEnv = 'bad number of arguments (found conflicting environment key)';
export const errBadArgsNumSeparator = 'bad number of arguments (found separator --, but no commands)';

/** A parse failure: etcdctl exits with ExitBadArgs and this message. */
export class WatchArgsError extends Error {}

export interface WatchFlags {
  prefix: boolean;
  rev: bigint;
  prevKv: boolean;
}

export interface WatchArgs {
  watchArgs: string[];
  execArgs: string[];
  /** interactive: the flags of the line (the command line's otherwise) */
  flags?: WatchFlags;
}

function parseLineFlags(args: string[]): Parsed {
  try {
    return parseFlags(args, WATCH_FLAGS);
  } catch (err) {
    if (err instanceof FlagError) throw new WatchArgsError(err.message);
    throw err;
  }
}

/**
 * osArgs: the whole command line (program name first); commandArgs: the positional arguments cobra parsed (the
 * words of the line, "watch" first, in interactive mode).
 */
export function parseWatchArgs(osArgs: string[], commandArgs: string[], envKey: string, envRange: string, interactive: boolean): WatchArgs {
  let rawArgs = [...osArgs];
  let watchArgs = [...commandArgs];
  const w = rawArgs.indexOf('watch');
  if (w >= 0) rawArgs = rawArgs.slice(w + 1);
  if (interactive) {
    if (watchArgs[0] !== 'watch') throw new WatchArgsError("args[0] must be 'watch' for interactive calls");
    watchArgs = watchArgs.slice(1);
  }
  let execIdx = 0;
  let execExist = false;
  if (!interactive) {
    for (execIdx = 0; execIdx < rawArgs.length; execIdx++) if (rawArgs[execIdx] === '--') break;
    execExist = execIdx < rawArgs.length;
    if (!execExist) execIdx = rawArgs.length - 1; // Go's range leaves the last index
    if (execExist && execIdx === rawArgs.length - 1) throw new WatchArgsError(errBadArgsNumSeparator);
    if (!execExist && rawArgs.length < 1 && envKey === '') throw new WatchArgsError(errBadArgsNum);
    if (execExist && envKey !== '') {
      let ridx = rawArgs.length - 1;
      for (let widx = watchArgs.length - 1; widx >= 0; widx--) {
        if (watchArgs[widx] === rawArgs[ridx]) {
          ridx--;
          continue;
        }
        if (ridx === execIdx) throw new WatchArgsError(errBadArgsNumConflictEnv);
      }
    }
    if (!execExist && watchArgs.length > 0 && envKey !== '') throw new WatchArgsError(errBadArgsNumConflictEnv);
  } else {
    for (execIdx = 0; execIdx < watchArgs.length; execIdx++) if (watchArgs[execIdx] === '--') break;
    execExist = execIdx < watchArgs.length;
    if (execExist && execIdx === watchArgs.length - 1) throw new WatchArgsError(errBadArgsNumSeparator);
    const pArgs = parseLineFlags(watchArgs).args;
    if (!execExist && envKey === '' && pArgs.length < 1) throw new WatchArgsError(errBadArgsNum);
    if (!execExist && pArgs.length > 0 && envKey !== '') throw new WatchArgsError(errBadArgsNumConflictEnv);
  }
  const argsWithSep = interactive ? watchArgs : rawArgs;
  const idx = argsWithSep.indexOf('--');
  const foundSep = idx >= 0;
  const execArgs = foundSep ? argsWithSep.slice(idx + 1) : [];
  let flags: WatchFlags | undefined;
  if (interactive) {
    const p = parseLineFlags(argsWithSep);
    watchArgs = p.args;
    flags = { prefix: p.values.get('prefix') === true, rev: p.values.get('rev') as bigint, prevKv: p.values.get('prev-kv') === true };
  }
  if (envKey !== '') watchArgs = [envKey, ...(envRange !== '' ? [envRange] : []), ...watchArgs];
  if (!foundSep) return { watchArgs, execArgs: [], flags };
  // "watch foo bar --rev 1 -- echo hello": the words from the command's first one on are not the watch's
  let endIdx = watchArgs.length - 1;
  for (; endIdx >= 0; endIdx--) if (watchArgs[endIdx] === argsWithSep[idx + 1]) break;
  return { watchArgs: watchArgs.slice(0, Math.max(endIdx, 0)), execArgs, flags };
}
