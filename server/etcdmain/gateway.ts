/**
 * `etcd gateway start`: etcd 3.4's stateless pass-through TCP proxy (etcdmain/gateway.go), with its flags, usage
 * texts, errors and exit codes. Endpoints come from --endpoints, or from the DNS SRV records of --discovery-srv
 * (`_etcd-client-ssl._tcp` and `_etcd-client._tcp`, with their priorities and weights); the proxy is
 * server/proxy/tcpproxy.ts. Logs are JSON lines on stderr, as etcd's zap production logger writes them.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { FlagError, type FlagSpec, cobraFlagUsages, parseFlags } from '../pkg/pflag';
import { type Resolver, type SRVRecord, systemResolver } from '../discovery/srv';
import { type Endpoint, TCPProxy } from '../proxy/tcpproxy';

export interface CommandIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const START_FLAGS: FlagSpec[] = [
  { name: 'listen-addr', kind: 'string', def: '127.0.0.1:23790', usage: 'listen address' },
  { name: 'discovery-srv', kind: 'string', def: '', usage: 'DNS domain used to bootstrap initial cluster' },
  { name: 'discovery-srv-name', kind: 'string', def: '', usage: 'service name to query when using DNS discovery' },
  { name: 'insecure-discovery', kind: 'bool', def: 'false', usage: 'accept insecure SRV records' },
  { name: 'trusted-ca-file', kind: 'string', def: '', usage: 'path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided.' },
  { name: 'endpoints', kind: 'stringSlice', def: '[127.0.0.1:2379]', usage: 'comma separated etcd cluster endpoints' },
  { name: 'retry-delay', kind: 'duration', def: '1m0s', usage: 'duration of delay before retrying failed endpoints' },
  { name: 'help', short: 'h', kind: 'bool', def: 'false', usage: 'help for start' },
];

const GATEWAY_HELP = `gateway related command

Usage:
  etcd gateway [command]

Available Commands:
  start       start the gateway

Flags:
  -h, --help   help for gateway

Use "etcd gateway [command] --help" for more information about a command.
`;

const startUsage = () => `Usage:\n  etcd gateway start [flags]\n\nFlags:\n${cobraFlagUsages(START_FLAGS)}`;

/** A zap production log line: {"level","ts","caller","msg",...fields}. */
function zapLine(io: CommandIO, level: 'info' | 'warn' | 'error', caller: string, msg: string, fields: Record<string, unknown> = {}): void {
  io.stderr(`${JSON.stringify({ level, ts: Date.now() / 1000, caller, msg, ...fields })}\n`);
}

/** Host and port of an endpoint, its scheme stripped (etcd's stripSchema, then net.SplitHostPort). */
function splitHostPort(ep: string): { host: string; port: string } | undefined {
  let hp = ep;
  try {
    const u = new URL(ep);
    if (u.host !== '' && /^[a-z][a-z0-9+.-]*:\/\//i.test(ep)) hp = u.host;
  } catch {
    // not a URL: host:port as given
  }
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(hp);
  return m ? { host: m[1] ?? m[2], port: m[3] } : undefined;
}

/** The SRV records of the client services of a domain (etcd's srv.GetClient), https first. */
async function discoverSRV(r: Resolver, domain: string, serviceName: string): Promise<{ urls: string[]; srvs: (SRVRecord & { secure: boolean })[] }> {
  const suffix = serviceName ? `-${serviceName}` : '';
  const urls: string[] = [];
  const srvs: (SRVRecord & { secure: boolean })[] = [];
  const errors: string[] = [];
  for (const [scheme, service] of [['https', `etcd-client-ssl${suffix}`], ['http', `etcd-client${suffix}`]] as const) {
    try {
      for (const rec of await r.resolveSrv(`_${service}._tcp.${domain}`)) {
        const host = rec.name.replace(/\.$/, '');
        urls.push(`${scheme}://${host}:${rec.port}`);
        srvs.push({ ...rec, name: host, secure: scheme === 'https' });
      }
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length === 2) throw new Error(`dns lookup errors: ${errors[0]} and ${errors[1]}`);
  return { urls, srvs };
}

/** Whether a TLS connection to an https endpoint is verified by the CA (etcd's ValidateSecureEndpoints). */
function verifies(url: string, ca: Buffer | undefined, servername: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca, servername }, () => {
      s.destroy();
      resolve(true);
    });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('error', () => resolve(false));
  });
}

/**
 * Runs `etcd gateway …` (argv after "gateway"). Resolves with the exit code when the command ends by itself; a
 * started gateway runs until the process is stopped (its promise stays pending).
 */
export async function gatewayMain(argv: string[], io: CommandIO, resolver: Resolver = systemResolver): Promise<number> {
  // The subcommand is the first argument that is neither a flag nor a flag's value: cobra takes the flags of
  // `start` before its name too (`etcd gateway --endpoints=… start`, as etcd's e2e tests run it).
  const valued = new Set(START_FLAGS.filter((f) => f.kind !== 'bool').map((f) => `--${f.name}`));
  let at = -1;
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('-')) {
      at = i;
      break;
    }
    if (valued.has(argv[i])) i++;
  }
  // A flag before the subcommand that `start` does not have: cobra's error, with the group's usage.
  const known = new Set(START_FLAGS.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]));
  const unknown = argv.slice(0, at < 0 ? argv.length : at).find((a) => a.startsWith('-') && !known.has(a.split('=')[0]));
  if (unknown !== undefined && at >= 0) {
    const msg = unknown.startsWith('--') ? `unknown flag: ${unknown.split('=')[0]}` : `unknown shorthand flag: '${unknown[1]}' in ${unknown}`;
    io.stderr(`Error: ${msg}\n${GATEWAY_HELP.slice(GATEWAY_HELP.indexOf('Usage:'))}\n${msg}`);
    return 1;
  }
  if (at < 0 || argv[at] !== 'start') {
    // `etcd gateway`, `-h`, or an unknown subcommand: cobra prints the group's help.
    io.stdout(GATEWAY_HELP);
    return 0;
  }
  let flags;
  try {
    flags = parseFlags([...argv.slice(0, at), ...argv.slice(at + 1)], START_FLAGS);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.stderr(`Error: ${err.message}\n${startUsage()}\n${err.message}`);
    return 1;
  }
  if (flags.values.get('help')) {
    io.stdout(`start the gateway\n\n${startUsage()}`);
    return 0;
  }
  const listenAddr = flags.values.get('listen-addr') as string;
  const retryDelayMs = flags.values.get('retry-delay') as number;
  let endpoints = flags.values.get('endpoints') as string[];
  let srvs: Endpoint[] = [];

  const domain = flags.values.get('discovery-srv') as string;
  if (domain !== '') {
    let found;
    try {
      found = await discoverSRV(resolver, domain, flags.values.get('discovery-srv-name') as string);
    } catch (err) {
      io.stderr(`${(err as Error).message}\n`);
      return 1;
    }
    zapLine(io, 'info', 'etcdmain/util.go:39', 'discovered cluster from SRV', { 'srv-server': domain, endpoints: found.urls });
    srvs = found.srvs.map((r) => ({ host: r.name, port: r.port, priority: r.priority, weight: r.weight }));
    if (flags.values.get('insecure-discovery')) endpoints = found.urls;
    else {
      // Only https endpoints whose certificate the CA verifies are kept (the proxy still uses every SRV, as etcd's).
      const caFile = flags.values.get('trusted-ca-file') as string;
      const ca = caFile ? readFileSync(caFile) : undefined;
      zapLine(io, 'info', 'etcdmain/util.go:58', 'validating discovered SRV endpoints', { 'srv-server': domain, endpoints: found.urls });
      const ok: string[] = [];
      for (const u of found.urls) if (u.startsWith('https://') && (await verifies(u, ca, domain))) ok.push(u);
      endpoints = ok;
    }
    if (endpoints.length === 0) endpoints = flags.values.get('endpoints') as string[];
  }
  if (srvs.length === 0) {
    for (const ep of endpoints) {
      const hp = splitHostPort(ep);
      if (!hp) {
        io.stdout(`error parsing endpoint ${JSON.stringify(ep)}`);
        return 1;
      }
      srvs.push({ host: hp.host, port: Number(hp.port) || 0, priority: 0, weight: 0 });
    }
  }
  const listen = splitHostPort(listenAddr);
  if (!listen) {
    io.stdout(`failed to validate listen address: ${listenAddr}\n`);
    return 1;
  }
  const lookup = async (host: string): Promise<string[]> => (net.isIP(host) ? [host] : host === '' ? ['0.0.0.0', '::'] : resolver.lookup(host));
  let laddrs: string[];
  try {
    laddrs = await lookup(listen.host);
  } catch {
    io.stdout(`failed to resolve listen host: ${listen.host}\n`);
    return 1;
  }
  // An endpoint on the gateway's own address would proxy to itself.
  for (const s of srvs) {
    let eaddrs: string[];
    try {
      eaddrs = await lookup(s.host);
    } catch {
      io.stdout(`failed to resolve endpoint host: ${s.host}\n`);
      return 1;
    }
    if (String(s.port) !== listen.port) continue;
    const same = eaddrs.find((a) => laddrs.includes(a));
    if (same !== undefined) {
      io.stdout(`SRV or endpoint (${s.host}:${s.port}->${same}:${s.port}) should not resolve to the gateway listen addr (${listenAddr})\n`);
      return 1;
    }
  }
  if (endpoints.length === 0) {
    io.stdout('no endpoints found\n');
    return 1;
  }
  const server = net.createServer({ noDelay: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listen.host === '' ? undefined : listen.host, port: Number(listen.port) }, () => resolve());
    });
  } catch (err) {
    io.stderr(`listen tcp ${listenAddr}: ${(err as Error).message}\n`);
    return 1;
  }
  const proxy = new TCPProxy({
    endpoints: srvs,
    monitorIntervalMs: retryDelayMs > 0 ? retryDelayMs : 5 * 60_000,
    log: (level, msg, fields) => zapLine(io, level, 'tcpproxy/userspace.go:90', msg, fields),
  });
  proxy.run(server);
  return new Promise<number>(() => undefined);
}
