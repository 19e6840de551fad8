/**
 * --discovery-srv: the initial cluster from DNS SRV records, served by a DNS responder on loopback
 * (test/support/dns.ts). Each member runs with that server as its /etc/resolv.conf in a private mount namespace, so
 * it resolves exactly as in production; Debian's etcd runs the same way, side by side. Plain (`_etcd-server`) and
 * TLS (`_etcd-server-ssl`) records, --discovery-srv-name, a member matched by an advertised hostname or IP, and
 * records that point nowhere or leave the member out; `etcdctl --discovery-srv` finds the client endpoints.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Issued, issue, makeCA } from '../support/certs';
import { Impl, clusterView, etcdmainErrors } from '../support/discovery';
import { SRVTarget, TestDns, resolvWrapped, startDns, startDnsmasq } from '../support/dns';
import { OUR_ETCD, REAL_ETCD, RunningEtcd, explainFailure, freePort, spawnEtcd } from '../support/real-etcd';
import { eventually } from '../support/cluster';

const ETCDCTL = path.join(__dirname, '..', '..', 'dist', 'server', 'etcdctl', 'main.js');

describe('bootstrap by DNS SRV records (--discovery-srv)', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'discovery-srv-'));
  const procs: RunningEtcd[] = [];
  let dns: TestDns;
  let ca: Issued;
  let dirs = 0;

  beforeAll(async () => {
    dns = await startDns(root, { srv: {}, a: {} });
    ca = makeCA(path.join(root, 'pki'), 'srv-ca');
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await dns?.close();
    rmSync(root, { recursive: true, force: true });
  });

  interface Planned {
    name: string;
    host: string;
    peerPort: number;
    clientURL: string;
    dataDir: string;
  }

  /** Names and ports for members of `domain`, each host resolving to 127.0.0.1. */
  const plan = async (domain: string, names: string[]): Promise<Planned[]> =>
    Promise.all(
      names.map(async (name) => {
        const host = `${name}.${domain}`;
        dns.records.a![host] = '127.0.0.1';
        return { name, host, peerPort: await freePort(), clientURL: `http://127.0.0.1:${await freePort()}`, dataDir: path.join(root, `${name}-${dirs++}`) };
      }),
    );

  const srv = (service: string, domain: string, members: Planned[]): void => {
    dns.records.srv![`_${service}._tcp.${domain}`] = members.map((m): SRVTarget => ({ target: `${m.host}.`, port: m.peerPort }));
  };

  /** Starts a member inside the test resolver; `advertise`: its peer URL's host (its SRV hostname or 127.0.0.1). */
  const start = async (
    impl: Impl,
    m: Planned,
    o: { scheme: 'http' | 'https'; domain: string; advertise?: string; extra?: string[]; wait?: boolean; resolvConf?: string; systemCA?: Issued },
  ): Promise<RunningEtcd> => {
    const tls: string[] = [];
    if (o.systemCA) {
      // No --peer-trusted-ca-file: peers are checked against the system's CAs, here made to include o.systemCA.
      const cert = issue(path.join(root, 'pki'), `${m.name}-${dirs++}`, o.systemCA, { cn: m.name, hosts: [o.domain] });
      tls.push('--peer-cert-file', cert.certFile, '--peer-key-file', cert.keyFile);
    } else if (o.scheme === 'https') {
      const cert = issue(path.join(root, 'pki'), `${m.name}-${dirs++}`, ca, { cn: m.name, hosts: [m.host, '127.0.0.1'] });
      tls.push('--peer-cert-file', cert.certFile, '--peer-key-file', cert.keyFile, '--peer-trusted-ca-file', ca.certFile, '--peer-client-cert-auth');
    }
    const args = [
      '--name', m.name, '--data-dir', m.dataDir, '--enable-v2=true',
      '--listen-client-urls', m.clientURL, '--advertise-client-urls', m.clientURL,
      '--listen-peer-urls', `${o.scheme}://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `${o.scheme}://${o.advertise ?? m.host}:${m.peerPort}`,
      '--heartbeat-interval', '50', '--election-timeout', '500',
      '--discovery-srv', o.domain,
      ...tls,
      ...(o.extra ?? []),
    ];
    const resolv = o.resolvConf ?? dns.resolvConf;
    // The system's CAs: Node adds NODE_EXTRA_CA_CERTS to its own, Go reads SSL_CERT_FILE instead of the system's.
    const caEnv = o.systemCA ? [`NODE_EXTRA_CA_CERTS=${o.systemCA.certFile}`, `SSL_CERT_FILE=${o.systemCA.certFile}`] : [];
    const cmd = resolvWrapped(resolv, 'env', [...caEnv, ...(impl === 'ours' ? [process.execPath, OUR_ETCD] : [REAL_ETCD]), ...args]);
    const p = await spawnEtcd(cmd.command, cmd.args, { clientURL: m.clientURL, peerURL: '', dataDir: m.dataDir }, { wait: o.wait });
    procs.push(p);
    return p;
  };

  /** Starts all members at once; they serve once they find each other. */
  const startAll = async (impl: Impl, ms: Planned[], o: Parameters<typeof start>[2], advertise?: (i: number) => string | undefined): Promise<RunningEtcd[]> => {
    const started = await Promise.allSettled(ms.map((m, i) => start(impl, m, { ...o, advertise: advertise?.(i) })));
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    return started.map((r) => (r as PromiseFulfilledResult<RunningEtcd>).value);
  };

  /** The cluster as every member sees it, ports replaced by the member's index, to compare two servers' clusters. */
  const shape = async (members: RunningEtcd[], planned: Planned[], domain: string) => {
    // Members publish their names through the log after they start: wait until every member sees every name.
    const same = async () => {
      const vs = await Promise.all(members.map(clusterView));
      const complete = vs.every((v) => v.members.length === planned.length && v.members.every((m, i) => m.name === [...planned].map((p) => p.name).sort()[i]));
      return complete && vs.every((v) => JSON.stringify(v) === JSON.stringify(vs[0])) ? vs : undefined;
    };
    const views = await explainFailure(members.map((proc, i) => ({ name: planned[i].name, proc })), async () => (await eventually('every member to see the same, complete cluster', same, 20000).catch(() => undefined)) ?? Promise.all(members.map(clusterView)));
    for (const v of views) expect(v).toEqual(views[0]);
    return views[0].members.map((m) => ({ name: m.name, peerURLs: m.peerURLs.map((u) => u.replace(domain, 'DOMAIN').replace(/:\d+$/, ':PORT')) }));
  };

  test('plain records (_etcd-server._tcp): three of our members form one cluster, matched by hostname or IP; Debian\'s 3.4.23 cannot (it drops http records)', async () => {
    const domain = 'plain.test';
    const ms = await plan(domain, ['m1', 'm2', 'm3']);
    srv('etcd-server', domain, ms);
    // m1 advertises its SRV hostname, the others 127.0.0.1: each is found by the address its URLs resolve to.
    const members = await startAll('ours', ms, { scheme: 'http', domain }, (i) => (i === 0 ? undefined : '127.0.0.1'));
    expect(await shape(members, ms, domain)).toEqual(['m1', 'm2', 'm3'].map((name) => ({ name, peerURLs: [`http://${name}.DOMAIN:PORT`] })));
    expect(dns.asked).toContain(`_etcd-server-ssl._tcp.${domain}/33`);
    // A member restarted on its data dir does not look the records up again: gone from DNS, it still rejoins.
    delete dns.records.srv![`_etcd-server._tcp.${domain}`];
    await members[0].signal('SIGTERM');
    const again = await start('ours', ms[0], { scheme: 'http', domain });
    expect((await clusterView(again)).members.map((m) => m.name)).toEqual(['m1', 'm2', 'm3']);

    // etcd 3.4.23 keeps the http records only when their lookup fails (fixed in 3.5): it reports the https lookup.
    const lone = await plan('plain-etcd.test', ['solo']);
    srv('etcd-server', 'plain-etcd.test', lone);
    const theirs = await start('etcd', lone[0], { scheme: 'http', domain: 'plain-etcd.test', wait: false });
    expect(await theirs.exited).toBe(1);
    expect(etcdmainErrors(theirs.output(), '\0')).toEqual([
      `error setting up initial cluster: error querying DNS SRV records for _etcd-server-ssl lookup _etcd-server-ssl._tcp.plain-etcd.test on ${dns.address}:53: no such host`,
    ]);
  });

  test('TLS records (_etcd-server-ssl._tcp): ours and Debian\'s etcd each form the same 3-member https cluster', async () => {
    const shapes = [];
    for (const impl of ['ours', 'etcd'] as Impl[]) {
      const domain = `tls-${impl}.test`;
      const ms = await plan(domain, ['m1', 'm2', 'm3']);
      srv('etcd-server-ssl', domain, ms);
      const members = await startAll(impl, ms, { scheme: 'https', domain }, (i) => (i === 2 ? '127.0.0.1' : undefined));
      shapes.push(await shape(members, ms, domain));
    }
    expect(shapes[0]).toEqual(['m1', 'm2', 'm3'].map((name) => ({ name, peerURLs: [`https://${name}.DOMAIN:PORT`] })));
    expect(shapes[1]).toEqual(shapes[0]);
  });

  test('TLS records and no --peer-trusted-ca-file: peer certificates are checked against the domain, as etcd does', async () => {
    const systemCA = makeCA(path.join(root, 'pki'), 'system-ca');
    const shapes = [];
    for (const impl of ['ours', 'etcd'] as Impl[]) {
      const domain = `sysca-${impl}.test`;
      const ms = await plan(domain, ['m1', 'm2', 'm3']);
      srv('etcd-server-ssl', domain, ms);
      // The certificates name only the domain, not the members' hosts.
      const members = await startAll(impl, ms, { scheme: 'https', domain, systemCA });
      shapes.push(await shape(members, ms, domain));
    }
    expect(shapes[0]).toEqual(['m1', 'm2', 'm3'].map((name) => ({ name, peerURLs: [`https://${name}.DOMAIN:PORT`] })));
    expect(shapes[1]).toEqual(shapes[0]);
  });

  test('--discovery-srv-name, records that leave the member out or point nowhere: as Debian\'s etcd, side by side', async () => {
    const outcome = async (impl: Impl) => {
      const domain = `named-${impl}.test`;
      // --discovery-srv-name prod: only _etcd-server-ssl-prod._tcp counts.
      const [solo] = await plan(domain, ['solo']);
      srv('etcd-server-ssl-prod', domain, [solo]);
      const named = await start(impl, solo, { scheme: 'https', domain, extra: ['--discovery-srv-name', 'prod'] });
      const namedShape = await shape([named], [solo], domain);
      // Records for other members only: this one is not among them.
      const [left, other] = await plan(`left-${impl}.test`, ['left', 'other']);
      srv('etcd-server-ssl', `left-${impl}.test`, [other]);
      const leftOut = await start(impl, left, { scheme: 'https', domain: `left-${impl}.test`, wait: false });
      // Records whose targets do not resolve.
      const [lost] = await plan(`nowhere-${impl}.test`, ['lost']);
      dns.records.srv![`_etcd-server-ssl._tcp.nowhere-${impl}.test`] = [{ target: `ghost.nowhere-${impl}.test.`, port: lost.peerPort }];
      const nowhere = await start(impl, lost, { scheme: 'https', domain: `nowhere-${impl}.test`, wait: false });
      const failed = async (p: RunningEtcd) => ({ code: await p.exited, errors: etcdmainErrors(p.output(), '\0').map((e) => e.replace(/-(ours|etcd)\.test/g, '-IMPL.test')) });
      return { namedShape, leftOut: await failed(leftOut), nowhere: await failed(nowhere) };
    };
    const ours = await outcome('ours');
    const theirs = await outcome('etcd');
    expect(ours).toEqual(theirs);
    expect(ours.namedShape).toEqual([{ name: 'solo', peerURLs: ['https://solo.DOMAIN:PORT'] }]);
    expect(ours.leftOut).toEqual({ code: 1, errors: ['error setting up initial cluster: cannot find local etcd member "left" in SRV records'] });
    expect(ours.nowhere).toEqual({
      code: 1,
      errors: [`error setting up initial cluster: error querying DNS SRV records for _etcd-server-ssl lookup ghost.nowhere-IMPL.test. on ${dns.address}:53: no such host`],
    });
  });

  test("a real resolver, Debian's dnsmasq, serving the records: three of our members bootstrap, plain and TLS", async () => {
    const plain = await plan('real-plain.test', ['m1', 'm2', 'm3']);
    const tls = await plan('real-tls.test', ['m1', 'm2', 'm3']);
    const records = {
      srv: {
        '_etcd-server._tcp.real-plain.test': plain.map((m) => ({ target: m.host, port: m.peerPort })),
        '_etcd-server-ssl._tcp.real-tls.test': tls.map((m) => ({ target: m.host, port: m.peerPort })),
      },
      a: Object.fromEntries([...plain, ...tls].map((m) => [m.host, '127.0.0.1'])),
    };
    const real = await startDnsmasq(root, records);
    try {
      for (const [scheme, domain, ms] of [['http', 'real-plain.test', plain], ['https', 'real-tls.test', tls]] as const) {
        const members = await startAll('ours', ms, { scheme, domain, resolvConf: real.resolvConf }, (i) => (i === 1 ? '127.0.0.1' : undefined));
        expect(await shape(members, ms, domain)).toEqual(['m1', 'm2', 'm3'].map((name) => ({ name, peerURLs: [`${scheme}://${name}.DOMAIN:PORT`] })));
      }
    } finally {
      await real.close();
    }
  });

  test("etcdctl --discovery-srv finds the client endpoints from _etcd-client._tcp, v3 and v2, as Debian's etcdctl", async () => {
    const domain = 'clients.test';
    const [m] = await plan(domain, ['c1']);
    srv('etcd-server', domain, [m]);
    await start('ours', m, { scheme: 'http', domain });
    const port = new URL(m.clientURL).port;
    dns.records.a![`api.${domain}`] = '127.0.0.1';
    dns.records.srv![`_etcd-client._tcp.${domain}`] = [{ target: `api.${domain}.`, port: Number(port) }];
    // Asynchronously: the DNS server answers from this process.
    const ctl = (tool: string, api: '2' | '3', args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        const c = tool === 'ours' ? resolvWrapped(dns.resolvConf, process.execPath, [ETCDCTL, ...args]) : resolvWrapped(dns.resolvConf, '/usr/bin/etcdctl', args);
        execFile(c.command, c.args, { encoding: 'utf8', timeout: 20000, env: { ...process.env, ETCDCTL_API: api } }, (err, stdout, stderr) =>
          resolve({ status: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
        );
      });
    const runs = async (tool: string) => [
      await ctl(tool, '3', ['--discovery-srv', domain, 'put', `found-${tool}`, 'by-srv']),
      await ctl(tool, '3', ['--discovery-srv', domain, 'get', `found-${tool}`]),
      // Without --insecure-discovery, http endpoints are dropped (with etcdctl's note) and --endpoints is used.
      await ctl(tool, '3', ['--discovery-srv', domain, '--insecure-discovery=false', '--endpoints', m.clientURL, 'get', `found-${tool}`]),
      await ctl(tool, '3', ['--discovery-srv', 'nothing.test', 'get', `found-${tool}`]),
      // v2: insecure endpoints only with --insecure-discovery.
      await ctl(tool, '2', ['--discovery-srv', domain, '--insecure-discovery', 'set', `/v2-${tool}`, 'by-srv']),
      await ctl(tool, '2', ['--discovery-srv', domain, '--endpoints', m.clientURL, 'get', `/v2-${tool}`]),
      await ctl(tool, '2', ['--discovery-srv', 'nothing.test', 'get', `/v2-${tool}`]),
    ].map((r) => ({ ...r, stdout: r.stdout.split(tool).join('TOOL') }));
    const ours = await runs('ours');
    const theirs = await runs('etcd');
    expect(ours).toEqual(theirs);
    const noSuchHost = (service: string) => `lookup _etcd-client${service}._tcp.nothing.test on ${dns.address}:53: no such host`;
    const insecure = `ignoring discovered insecure endpoint "http://api.${domain}.:${port}"\n`;
    expect(ours).toEqual([
      { status: 0, stdout: 'OK\n', stderr: '' },
      { status: 0, stdout: 'found-TOOL\nby-srv\n', stderr: '' },
      { status: 0, stdout: 'found-TOOL\nby-srv\n', stderr: insecure },
      { status: 1, stdout: '', stderr: `Error: dns lookup errors: ${noSuchHost('-ssl')} and ${noSuchHost('')}\n` },
      { status: 0, stdout: 'by-srv\n', stderr: '' },
      { status: 0, stdout: 'by-srv\n', stderr: insecure },
      { status: 1, stdout: '', stderr: `dns lookup errors: ${noSuchHost('-ssl')} and ${noSuchHost('')}\n` },
    ]);
  });

});
