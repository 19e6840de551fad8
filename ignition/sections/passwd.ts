/** The `passwd:` section: users (with SSH keys, password hashes, groups) and groups. */
import { bool, int, list, object, posOf, positionsOf, str, strList, type Infer } from '../decode';
import type { TranslateContext } from './context';

/** ct's deprecated `create:` block of a user: the same settings, nested. */
const userCreate = object({
  uid: int,
  gecos: str,
  home_dir: str,
  no_create_home: bool,
  primary_group: str,
  groups: strList,
  no_user_group: bool,
  system: bool,
  no_log_init: bool,
  shell: str,
});

const user = object(
  {
    name: str,
    password_hash: str,
    ssh_authorized_keys: strList,
    uid: int,
    gecos: str,
    home_dir: str,
    no_create_home: bool,
    primary_group: str,
    groups: strList,
    no_user_group: bool,
    no_log_init: bool,
    shell: str,
    system: bool,
    create: userCreate,
  },
  { required: ['name'] },
);

const group = object({ name: str, gid: int, password_hash: str, system: bool }, { required: ['name'] });

export const passwdSchema = object({ users: list(user), groups: list(group) });
export type PasswdConfig = NonNullable<Infer<typeof passwdSchema>>;

export function translatePasswd(passwd: PasswdConfig, ctx: TranslateContext): void {
  const { users, groups } = ctx.out.model.passwd;
  for (const u of passwd.users ?? []) {
    if (users.some((x) => x.name === u.name)) {
      ctx.report.error(`passwd.users: user "${u.name}" is listed twice`, posOf(u, 'name'));
      continue;
    }
    const c = u.create;
    if (c) ctx.report.warn(`passwd.users: "create" (user "${u.name}") is deprecated; put its settings in the user itself`, posOf(u, 'create'));
    const keys = u.ssh_authorized_keys ?? [];
    keys.forEach((k, i) => {
      if (!/^(ssh-|ecdsa-|sk-)\S+\s+\S+/.test(k.trim())) {
        ctx.report.warn(`passwd.users: ssh_authorized_keys[${i}] of "${u.name}" does not look like an OpenSSH public key`, posOf(u, 'ssh_authorized_keys'));
      }
    });
    users.push({
      name: u.name,
      passwordHash: u.password_hash,
      sshAuthorizedKeys: u.ssh_authorized_keys,
      uid: u.uid ?? c?.uid,
      gecos: u.gecos ?? c?.gecos,
      homeDir: u.home_dir ?? c?.home_dir,
      noCreateHome: u.no_create_home ?? c?.no_create_home,
      primaryGroup: u.primary_group ?? c?.primary_group,
      groups: u.groups ?? c?.groups,
      noUserGroup: u.no_user_group ?? c?.no_user_group,
      noLogInit: u.no_log_init ?? c?.no_log_init,
      shell: u.shell ?? c?.shell,
      system: u.system ?? c?.system,
      at: positionsOf(u),
    });
  }
  for (const g of passwd.groups ?? []) {
    if (groups.some((x) => x.name === g.name)) {
      ctx.report.error(`passwd.groups: group "${g.name}" is listed twice`, posOf(g, 'name'));
      continue;
    }
    groups.push({ name: g.name, gid: g.gid, passwordHash: g.password_hash, system: g.system, at: positionsOf(g) });
  }
}
