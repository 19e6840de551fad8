/**
 * etcdctl v3's `migrate` (etcd 3.4's flags and usage): etcd's replays an etcd v2 member's WAL and snapshot through
 * etcd's v2 applier into a bbolt backend. This etcdctl cannot, and refuses with an error and exit 1 rather than
 * appearing to succeed.
 */
import type { FlagSpec } from '../../pkg/pflag';
import type { Command } from './main';

const EXIT_ERROR = 1;

const help = (name: string): FlagSpec => ({ name: 'help', short: 'h', kind: 'bool', def: 'false', usage: `help for ${name}` });

export function migrateCommand(fail: (code: number, message: string) => Error): Record<string, Command> {
  return {
    migrate: {
      use: 'migrate',
      short: 'Migrates keys in a v2 store to a mvcc store',
      flags: [
        { name: 'no-ttl', kind: 'bool', def: 'false', usage: 'Do not convert TTL keys' },
        { name: 'data-dir', kind: 'string', def: '', usage: 'Path to the data directory' },
        { name: 'wal-dir', kind: 'string', def: '', usage: 'Path to the WAL directory' },
        { name: 'transformer', kind: 'string', def: '', usage: 'Path to the user-provided transformer program' },
        help('migrate'),
      ],
      run: async () => {
        throw fail(EXIT_ERROR, 'migrate is not supported by this etcdctl: it cannot convert an etcd v2 data directory to a v3 store (use etcd 3.4\'s etcdctl migrate)');
      },
    },
  };
}
