/**
 * A TCP proxy in front of a member's peer port that a test can cut, for partitions. Members advertise the proxy's
 * URL, so every peer connection to that member passes through it; the proxy reads the first request's headers to
 * learn which member opened the connection (X-Server-From) and drops it when the test has cut that pair.
 */
import * as net from 'node:net';

export class PeerProxy {
  private server: net.Server | undefined;
  private readonly conns = new Set<{ from: string; client: net.Socket; upstream: net.Socket }>();

  /**
   * @param target the member's real peer port
   * @param blocked whether a connection from that member ID to this one must be dropped ('' when not a member's)
   */
  constructor(
    private readonly target: number,
    private readonly blocked: (from: string) => boolean,
  ) {}

  listen(port: number): Promise<void> {
    this.server = net.createServer((client) => this.accept(client));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
  }

  private accept(client: net.Socket): void {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 64 * 1024) return;
      client.off('data', onData);
      client.pause();
      const m = /\r\nx-server-from:\s*([^\r\n]*)/i.exec(head.toString('latin1', 0, end < 0 ? head.length : end));
      const from = m ? m[1].trim() : '';
      if (this.blocked(from)) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.target, '127.0.0.1');
      const entry = { from, client, upstream };
      this.conns.add(entry);
      const drop = () => {
        this.conns.delete(entry);
        client.destroy();
        upstream.destroy();
      };
      upstream.on('error', drop);
      client.on('error', drop);
      upstream.on('close', drop);
      client.on('close', drop);
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    client.on('data', onData);
    client.on('error', () => client.destroy());
  }

  /** Drops the open connections that are now blocked (new ones are refused as they come). */
  enforce(): void {
    for (const c of [...this.conns]) {
      if (this.blocked(c.from)) {
        this.conns.delete(c);
        c.client.destroy();
        c.upstream.destroy();
      }
    }
  }

  close(): Promise<void> {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    this.conns.clear();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
