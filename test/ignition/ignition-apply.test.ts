/**
 * Applies a transpiled config with the real Ignition binary (Debian package `ignition`, the dracut module's
 * `ignition`) to a scratch root: its "files" stage writes files, directories, links, units, drop-ins and presets
 * below `-root`, reading the config from `-config-cache` (where the "fetch" stage would have put it).
 *
 * Two things of a real first boot are stood in for: the files stage always relabels for SELinux at the end, which
 * needs /etc/selinux/config in the root and runs `setfiles` (a stub that accepts the file list here); and it chowns
 * what it writes to root, so when the tests do not run as root the binary runs in a user namespace
 * (`unshare --map-root-user`). Users and groups are left out: that needs useradd and a passwd database in the root.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transpile } from '../../ignition';
import { dropinOf, expectValidIgnition, tempDir, yaml } from './helpers';

const IGNITION = '/usr/lib/dracut/modules.d/30ignition/ignition';

const CONFIG = yaml`
  storage:
    files:
      - path: /etc/etcd/peers
        mode: 0600
        contents:
          inline: |
            my-etcd-1 10.240.0.1
            my-etcd-2 10.240.0.2
      - path: /opt/bin/etcd-backup
        mode: 0755
        contents:
          local: etcd-backup.sh
    directories:
      - path: /var/lib/etcd-backup
        mode: 0700
    links:
      - path: /etc/etcd/current
        target: /etc/etcd/peers
  systemd:
    units:
      - name: etcd-backup.service
        enabled: true
        contents: |
          [Unit]
          Description=Back up etcd
          [Service]
          ExecStart=/opt/bin/etcd-backup
          [Install]
          WantedBy=multi-user.target
        dropins:
          - name: 10-nice.conf
            contents: |
              [Service]
              Nice=10
      - name: update-engine.service
        mask: true
  networkd:
    units:
      - name: 00-eth0.network
        contents: |
          [Match]
          Name=eth0
  locksmith:
    reboot_strategy: etcd-lock
  etcd:
    version: 3.4.13
    name: my-etcd-1
    listen_client_urls: http://10.240.0.1:2379
    advertise_client_urls: http://10.240.0.1:2379
    listen_peer_urls: http://10.240.0.1:2380
    initial_advertise_peer_urls: http://10.240.0.1:2380
    initial_cluster: my-etcd-1=http://10.240.0.1:2380,my-etcd-2=http://10.240.0.2:2380,my-etcd-3=http://10.240.0.3:2380
    initial_cluster_token: my-etcd-token
    initial_cluster_state: new
`;

const BACKUP_SCRIPT = '#!/bin/sh\netcdctl snapshot save /var/lib/etcd-backup/snap.db\n';

describe('the real Ignition applies a transpiled config', () => {
  let scratch: string;
  let root: string;
  let config: object;
  let log: string;

  beforeAll(() => {
    if (!fs.existsSync(IGNITION)) throw new Error(`${IGNITION} is missing: install the Debian package "ignition"`);
    scratch = tempDir('apply');
    root = path.join(scratch, 'root');
    const filesDir = path.join(scratch, 'files');
    const bin = path.join(scratch, 'bin');
    for (const d of [path.join(root, 'etc', 'selinux'), filesDir, bin]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'selinux', 'config'), 'SELINUX=disabled\nSELINUXTYPE=targeted\n');
    fs.writeFileSync(path.join(bin, 'setfiles'), '#!/bin/sh\ncat >/dev/null\n', { mode: 0o755 });
    fs.writeFileSync(path.join(filesDir, 'etcd-backup.sh'), BACKUP_SCRIPT);

    config = transpile(CONFIG, { filesDir }).config;
    expectValidIgnition(config);
    const cache = path.join(scratch, 'config.json');
    fs.writeFileSync(cache, JSON.stringify(config));

    const args = ['-platform', 'file', '-stage', 'files', '-root', root, '-config-cache', cache, '-state-file', path.join(scratch, 'state'), '-log-to-stdout'];
    const asRoot = process.getuid?.() === 0;
    const r = spawnSync(asRoot ? IGNITION : 'unshare', asRoot ? args : ['--map-root-user', IGNITION, ...args], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      timeout: 60_000,
    });
    log = `${r.stdout}${r.stderr}`;
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`ignition -stage files failed (exit ${r.status}):\n${log}`);
  });

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const at = (p: string): string => path.join(root, p);
  const mode = (p: string): number => fs.lstatSync(at(p)).mode & 0o7777;

  test('Ignition reports success', () => {
    expect(log).toContain('files passed');
  });

  test('files, with contents and modes', () => {
    expect(fs.readFileSync(at('etc/etcd/peers'), 'utf8')).toBe('my-etcd-1 10.240.0.1\nmy-etcd-2 10.240.0.2\n');
    expect(mode('etc/etcd/peers')).toBe(0o600);
    expect(fs.readFileSync(at('opt/bin/etcd-backup'), 'utf8')).toBe(BACKUP_SCRIPT);
    expect(mode('opt/bin/etcd-backup')).toBe(0o755);
    expect(fs.readFileSync(at('etc/coreos/update.conf'), 'utf8')).toBe('REBOOT_STRATEGY="etcd-lock"\n');
    expect(mode('etc/coreos/update.conf')).toBe(0o644);
    expect(fs.readFileSync(at('etc/systemd/network/00-eth0.network'), 'utf8')).toBe('[Match]\nName=eth0\n');
  });

  test('directories and links', () => {
    expect(fs.statSync(at('var/lib/etcd-backup')).isDirectory()).toBe(true);
    expect(mode('var/lib/etcd-backup')).toBe(0o700);
    expect(fs.readlinkSync(at('etc/etcd/current'))).toBe('/etc/etcd/peers');
  });

  test('units, drop-ins, enablement and masking', () => {
    const system = 'etc/systemd/system';
    expect(fs.readFileSync(at(`${system}/etcd-backup.service`), 'utf8')).toContain('ExecStart=/opt/bin/etcd-backup');
    expect(fs.readFileSync(at(`${system}/etcd-backup.service.d/10-nice.conf`), 'utf8')).toBe('[Service]\nNice=10\n');
    expect(fs.readFileSync(at(`${system}/etcd-member.service.d/20-clct-etcd-member.conf`), 'utf8')).toBe(
      dropinOf(config, 'etcd-member.service', '20-clct-etcd-member.conf'),
    );
    expect(fs.readlinkSync(at(`${system}/update-engine.service`))).toBe('/dev/null');
    const presets = fs.readFileSync(at('etc/systemd/system-preset/20-ignition.preset'), 'utf8').trim().split('\n').sort();
    expect(presets).toEqual(['enable etcd-backup.service', 'enable etcd-member.service']);
  });
});
