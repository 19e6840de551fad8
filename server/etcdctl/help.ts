/**
 * The help texts of etcdctl's v2 commands, as Debian's etcdctl 3.4 (urfave/cli 1.22) prints them: after
 * "Incorrect Usage", for `etcdctl help <command>` and for `etcdctl <command> --help`.
 */

/** urfave/cli's CommandHelpTemplate; the flag column is aligned as its tabwriter aligns it. */
function commandHelp(name: string, usage: string, argsUsage: string, flags: [string, string][], description?: string): string {
  const width = Math.max(0, ...flags.map(([f]) => f.length)) + 2;
  let s = `NAME:\n   ${name} - ${usage}\n\nUSAGE:\n   ${name}${flags.length > 0 ? ' [command options]' : ''} ${argsUsage}`;
  if (description) s += `\n\nDESCRIPTION:\n   ${description}`;
  if (flags.length > 0) s += `\n\nOPTIONS:\n   ${flags.map(([f, u]) => `${f.padEnd(width)}${u}\n   `).join('')}`;
  return s + '\n';
}

const HELP_USAGE = 'Shows a list of commands or help for one command';

const TTL: [string, string] = ['--ttl value', 'key time-to-live in seconds (default: 0)'];

const SET_DESCRIPTION = `Set sets the value of a key.

   When <value> begins with '-', <value> is interpreted as a flag.
   Insert '--' for workaround:

   $ set -- <key> <value>`;

/** `etcdctl help <command>` and `etcdctl <command> --help`. */
export const COMMAND_HELP: Record<string, string> = {
  'cluster-health': commandHelp('etcdctl cluster-health', 'check the health of the etcd cluster', ' ', [['--forever, -f', 'forever check the health every 10 second until CTRL+C']]),
  mk: commandHelp('etcdctl mk', 'make a new key with a given value', '<key> <value>', [['--in-order', 'create in-order key under directory <key>'], TTL]),
  mkdir: commandHelp('etcdctl mkdir', 'make a new directory', '<key>', [TTL]),
  rm: commandHelp('etcdctl rm', 'remove a key or a directory', '<key>', [
    ['--dir', 'removes the key if it is an empty directory or a key-value pair'],
    ['--recursive, -r', 'removes the key and all child keys(if it is a directory)'],
    ['--with-value value', 'previous value'],
    ['--with-index value', 'previous index (default: 0)'],
  ]),
  rmdir: commandHelp('etcdctl rmdir', 'removes the key if it is an empty directory or a key-value pair', '<key>', []),
  get: commandHelp('etcdctl get', 'retrieve the value of a key', '<key>', [
    ['--sort', 'returns result in sorted order'],
    ['--quorum, -q', 'require quorum for get request'],
  ]),
  ls: commandHelp('etcdctl ls', 'retrieve a directory', '[key]', [
    ['--sort', 'returns result in sorted order'],
    ['--recursive, -r', 'returns all key names recursively for the given path'],
    ['-p', 'append slash (/) to directories'],
    ['--quorum, -q', 'require quorum for get request'],
  ]),
  set: commandHelp(
    'etcdctl set',
    'set the value of a key',
    '<key> <value>',
    [TTL, ['--swap-with-value value', 'previous value'], ['--swap-with-index value', 'previous index (default: 0)']],
    SET_DESCRIPTION,
  ),
  setdir: commandHelp('etcdctl setdir', 'create a new directory or update an existing directory TTL', '<key>', [TTL]),
  update: commandHelp('etcdctl update', 'update an existing key with a given value', '<key> <value>', [TTL]),
  updatedir: commandHelp('etcdctl updatedir', 'update an existing directory', '<key> <value>', [TTL]),
  watch: commandHelp('etcdctl watch', 'watch a key for changes', '<key>', [
    ['--forever, -f', 'forever watch a key until CTRL+C'],
    ['--after-index value', 'watch after the given index (default: 0)'],
    ['--recursive, -r', 'returns all values for key and child keys'],
  ]),
  'exec-watch': commandHelp('etcdctl exec-watch', 'watch a key for changes and exec an executable', '<key> <command> [args...]', [
    ['--after-index value', 'watch after the given index (default: 0)'],
    ['--recursive, -r', 'watch all values for key and child keys'],
  ]),
  // `etcdctl help member`: the command's own template, which knows nothing of its subcommands.
  member: commandHelp('etcdctl member', 'member add, remove and list subcommands', '[arguments...]', []),
  // urfave/cli's own help command, whose help name is empty at the top level.
  help: commandHelp('', HELP_USAGE, '[command]', []),
  h: commandHelp('', HELP_USAGE, '[command]', []),
};

const MEMBER_COMMANDS =
  'COMMANDS:\n' +
  '   list    enumerate existing cluster members\n' +
  '   add     add a new member to the etcd cluster\n' +
  '   remove  remove an existing member from the etcd cluster\n' +
  '   update  update an existing member in the etcd cluster\n';

/** Bare `etcdctl member`, `etcdctl member --help`, and after a usage error of `member` itself. */
export const MEMBER_HELP =
  'NAME:\n   etcdctl member - member add, remove and list subcommands\n\n' +
  'USAGE:\n   etcdctl member command [command options] [arguments...]\n\n' +
  MEMBER_COMMANDS +
  '\nOPTIONS:\n   --help, -h  show help\n   \n';

/** `etcdctl member help`: the member sub-application's own help, with the version of this etcdctl. */
export function memberAppHelp(version: string): string {
  return (
    'NAME:\n   etcdctl member - member add, remove and list subcommands\n\n' +
    'USAGE:\n   etcdctl member [global options] command [command options] [arguments...]\n\n' +
    `VERSION:\n   ${version}\n\n` +
    MEMBER_COMMANDS +
    '\nGLOBAL OPTIONS:\n   --help, -h  show help\n'
  );
}

/** `etcdctl member help <subcommand>` and `etcdctl member <subcommand> --help`. */
export const MEMBER_SUBCOMMAND_HELP: Record<string, string> = {
  list: commandHelp('etcdctl member list', 'enumerate existing cluster members', ' ', []),
  add: commandHelp('etcdctl member add', 'add a new member to the etcd cluster', '<name> <peerURL>', []),
  remove: commandHelp('etcdctl member remove', 'remove an existing member from the etcd cluster', '<memberID>', []),
  update: commandHelp('etcdctl member update', 'update an existing member in the etcd cluster', '<memberID> <peerURLs>', []),
  help: commandHelp('etcdctl member help', HELP_USAGE, '[command]', []),
  h: commandHelp('etcdctl member help', HELP_USAGE, '[command]', []),
};
