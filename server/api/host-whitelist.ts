/**
 * etcd's --host-whitelist (its defence against DNS rebinding, CVE-2018-5702): a client request that did not come over
 * TLS must name, in its Host, a host on the list, or it gets 421 Misdirected Request with etcd's explanation. An
 * empty list or one holding "*" allows every host. Applied on the client listeners only (not metrics, not peers).
 */
import type * as http from 'node:http';

export class HostWhitelist {
  private readonly hosts: Set<string>;
  readonly allowsAll: boolean;

  constructor(hosts: readonly string[]) {
    this.hosts = new Set(hosts);
    this.allowsAll = this.hosts.size === 0 || this.hosts.has('*');
  }

  /** Whether a plain-HTTP request naming this host (port removed) may be served. */
  allows(host: string): boolean {
    return this.allowsAll || this.hosts.has(host);
  }
}

/**
 * The host a request names, as Go's httputil.GetHostname: the request target's host for an absolute-form target,
 * else the Host header (HTTP/2: :authority); without its port when it has one (`[::1]:2379` is `::1`), else as it is.
 */
export function requestHostname(req: http.IncomingMessage): string {
  const target = req.url ?? '';
  const abs = /^https?:\/\/([^/?#]*)/i.exec(target);
  // HTTP/2 names the host in :authority (Go's req.Host for both).
  const named = req.headers.host ?? (req.headers as Record<string, string | undefined>)[':authority'] ?? '';
  const host = abs && abs[1] !== '' ? abs[1] : named;
  return splitHost(host) ?? host;
}

/** Go's net.SplitHostPort's host, or undefined where it fails (no port, or a malformed one). */
function splitHost(hostport: string): string | undefined {
  const bracket = /^\[([^\]]*)\]:([^:]*)$/.exec(hostport);
  if (bracket) return bracket[1];
  const last = hostport.lastIndexOf(':');
  if (last < 0) return undefined;
  const host = hostport.slice(0, last);
  if (host.includes(':') || host.includes('[') || host.includes(']') || hostport.slice(last + 1).includes(']')) return undefined;
  return host;
}

/** etcd's answer to a host not on the list (embed/serve.go's errCVE20185702 through Go's http.Error). */
export function writeMisdirected(res: http.ServerResponse, host: string): void {
  const body = `
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist ${JSON.stringify(host)}

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).

`;
  res.writeHead(421, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
