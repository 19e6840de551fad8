/**
 * The pass-through TCP proxy of `etcd gateway` (etcd's proxy/tcpproxy): every client connection is joined to a
 * connection to one endpoint, picked as etcd picks it (the best SRV priority; among those, by weight, or round
 * robin when none has a weight). An endpoint that refuses a connection is set aside and the next one tried; every
 * monitor interval the ones set aside are dialled again and brought back when they answer.
 */
import * as net from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
  /** SRV priority and weight (0 and 0 for --endpoints). */
  priority: number;
  weight: number;
}

interface Remote {
  ep: Endpoint;
  addr: string;
  inactive: boolean;
}

export type ProxyLog = (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;

export interface TCPProxyOptions {
  endpoints: Endpoint[];
  /** --retry-delay: how long an endpoint that failed stays aside before it is tried again (ms). */
  monitorIntervalMs: number;
  log: ProxyLog;
  /** An integer in [0, n) (tests give a fixed sequence). */
  randomInt?: (n: number) => number;
}

const hostPort = (host: string, port: number) => (net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

export class TCPProxy {
  private readonly remotes: Remote[];
  private pickCount = 0;
  private monitor: NodeJS.Timeout | undefined;
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private readonly randomInt: (n: number) => number;

  constructor(private readonly o: TCPProxyOptions) {
    this.remotes = o.endpoints.map((ep) => ({ ep, addr: hostPort(ep.host, ep.port), inactive: false }));
    this.randomInt = o.randomInt ?? ((n) => Math.floor(Math.random() * n));
  }

  /** The endpoint for the next connection, or undefined when every one is set aside (etcd's pick). */
  pick(): { host: string; port: number; addr: string } | undefined {
    let weighted: Remote[] | undefined;
    let unweighted: Remote[] | undefined;
    let best = 65535;
    let total = 0;
    for (const r of this.remotes) {
      if (r.inactive) continue;
      if (r.ep.priority < best) {
        best = r.ep.priority;
        total = 0;
        weighted = undefined;
        unweighted = [r];
      }
      // etcd's switch falls through from a new best priority: such an endpoint lands in `unweighted` once more.
      if (r.ep.priority === best) {
        if (r.ep.weight > 0) {
          (weighted ??= []).push(r);
          total += r.ep.weight;
        } else (unweighted ??= []).push(r);
      }
    }
    const out = (r: Remote) => ({ host: r.ep.host, port: r.ep.port, addr: r.addr });
    if (weighted) {
      // Now and then an unweighted endpoint of the same priority, as etcd does (1 in 100).
      if (unweighted && unweighted.length > 0 && this.randomInt(100) === 1) return out(unweighted[this.pickCount++ % unweighted.length]);
      let choose = this.randomInt(total);
      for (const r of weighted) {
        choose -= r.ep.weight;
        if (choose <= 0) return out(r);
      }
    }
    if (unweighted) {
      for (let i = 0; i < this.remotes.length; i++) {
        const r = this.remotes[this.pickCount++ % this.remotes.length];
        if (!r.inactive) return out(r);
      }
    }
    return undefined;
  }

  /** Accepts connections on `server` (listening) and proxies them until stop(). */
  run(server: net.Server): void {
    this.server = server;
    server.on('connection', (c) => this.serve(c));
    this.o.log('info', 'ready to proxy client requests', { endpoints: this.remotes.map((r) => r.addr) });
    this.monitor = setInterval(() => this.reactivate(), this.o.monitorIntervalMs);
    this.monitor.unref();
  }

  stop(): void {
    if (this.monitor) clearInterval(this.monitor);
    this.server?.close();
    for (const c of this.conns) c.destroy();
  }

  /** Joins one client connection to an endpoint; the first endpoint that takes the connection gets it. */
  serve(client: net.Socket): void {
    this.conns.add(client);
    client.on('close', () => this.conns.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const attempt = (): void => {
      const r = this.pick();
      if (!r) return void client.destroy();
      const upstream = net.connect({ host: r.host, port: r.port });
      const failed = (err: Error) => {
        upstream.destroy();
        const remote = this.remotes.find((x) => x.addr === r.addr);
        if (remote) remote.inactive = true;
        this.o.log('warn', 'deactivated endpoint', { address: r.addr, interval: this.o.monitorIntervalMs / 1000, error: err.message });
        if (!client.destroyed) attempt();
      };
      upstream.once('error', failed);
      upstream.once('connect', () => {
        upstream.off('error', failed);
        if (client.destroyed) return void upstream.destroy();
        this.conns.add(upstream);
        upstream.on('close', () => {
          this.conns.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        // Each direction until its end, then both closed (etcd's two io.Copy).
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt();
  }

  /** Dials every endpoint set aside; those that answer are used again. */
  private reactivate(): void {
    for (const r of this.remotes) {
      if (!r.inactive) continue;
      const c = net.connect({ host: r.ep.host, port: r.ep.port });
      c.once('connect', () => {
        c.destroy();
        r.inactive = false;
        this.o.log('info', 'activated', { address: r.addr });
      });
      c.once('error', (err) => {
        c.destroy();
        this.o.log('warn', 'failed to activate endpoint (stay inactive for another interval)', { address: r.addr, interval: this.o.monitorIntervalMs / 1000, error: err.message });
      });
    }
  }
}
