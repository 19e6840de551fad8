/**
 * The peer transport: Raft messages between members over HTTP(S).
 *
 * - Each member keeps one long-lived POST /raft/stream to every peer, whose request body is an endless sequence of
 *   frames (see codec.ts). Messages given to send() in one turn of the event loop go out in one write (batching);
 *   a peer that does not keep up has a bounded queue, past which messages are dropped and Raft is told the peer is
 *   unreachable (Raft resends what matters; it never relies on the transport for delivery).
 * - Snapshots go separately, POST /raft/snapshot, streamed both ways (see snapshot.ts), and their outcome is
 *   reported to Raft (reportSnapshot).
 * - Every request says who sends it, to whom and for which cluster (X-Server-From, X-Raft-To, X-Etcd-Cluster-ID):
 *   a member of another cluster is answered 412 and a removed member 410, and never gets a message through.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { alertName } from '../tls/tls-settings';
import { noteArrival, noteRequest } from '../pkg/busy-poll';
import { Message, MessageType } from '../raft';
import { FrameDecoder, encodeFrame } from './codec';
import { SnapshotReceiveError, receiveSnapshot, snapshotRequest, sweepPartialSnapshots, writeSnapshotBody } from './snapshot';

export const STREAM_PATH = '/raft/stream';
export const SNAPSHOT_PATH = '/raft/snapshot';
/** An idle stream sends a link heartbeat this often; one silent for LINK_TIMEOUT_MS is taken for dead. */
export const LINK_HEARTBEAT_MS = 1000;
export const LINK_TIMEOUT_MS = 5000;
const LINK_HEARTBEAT = Buffer.alloc(4);
/** Messages waiting for one peer before new ones are dropped. */
export const MAX_QUEUED_MESSAGES = 4096;
/** The largest frame a stream accepts (a MsgApp is bounded by the Raft max message size, 1 MiB here, plus entries). */
export const MAX_STREAM_FRAME = 64 * 1024 * 1024;

/**
 * How a peer URL is dialled: http and https over TCP; unix and unixs (HTTP and HTTPS) over the socket file named by
 * the URL's host, as etcd's transport dials them. Undefined for any other scheme.
 */
export function peerTarget(u: URL): { url: URL; secure: boolean; socketPath?: string } | undefined {
  if (u.protocol === 'http:' || u.protocol === 'https:') return { url: u, secure: u.protocol === 'https:' };
  if (u.protocol !== 'unix:' && u.protocol !== 'unixs:') return undefined;
  const secure = u.protocol === 'unixs:';
  return { url: new URL(u.href.replace(/^unixs?:/, secure ? 'https:' : 'http:')), secure, socketPath: u.host };
}

/**
 * Why a request to a peer failed, in etcd's words where it has them: a TLS alert from the peer is Go's
 * "remote error: tls: <alert>" (what etcd's e2e tests and operators grep for). A peer of ours refuses a certificate
 * by its CN, hostname, SAN or CRL only after the handshake (Node cannot send an alert there): a TLS connection
 * closed right after its handshake, unanswered, is said to be that.
 */
export function peerDialError(err: Error & { code?: string }, handshook: boolean): { error: string; reason?: string } {
  if (/alert/i.test(err.message) && /^ERR_SSL_/.test(err.code ?? '')) return { error: `remote error: tls: ${alertName(err.message)}`, reason: err.message };
  if (handshook && (err.code === 'ECONNRESET' || err.message === 'socket hang up')) {
    return { error: err.message, reason: 'the peer closed the connection right after the TLS handshake: it refused our certificate (remote error: tls: bad certificate)' };
  }
  return { error: err.message };
}

export interface RaftReporter {
  /** A message from a peer, for the Raft core. */
  process(m: Message): void;
  reportUnreachable(id: string): void;
  reportSnapshot(id: string, ok: boolean): void;
  /** Whether a member ID was removed from the cluster (its messages are refused with 410). */
  isRemoved(id: string): boolean;
  /** A peer answered 410: this member was removed from the cluster. */
  removedByPeer(peer: string): void;
}

export interface TransportOptions {
  reporter: RaftReporter;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>) => void;
  /** Where incoming snapshots are written while they arrive (the member's snap directory). */
  snapshotDir: string;
  /** For https:// peer URLs (TLS settings of the peer client side). */
  httpsAgentOptions?: https.AgentOptions;
  /** Called with the bytes sent to / received from a peer, and on failed sends (for the metrics). */
  onSent?: (to: string, bytes: number) => void;
  onReceived?: (from: string, bytes: number) => void;
  onSendFailure?: (to: string) => void;
  /** The stream to a peer came up (true) or went down (false). */
  onPeerActive?: (peer: string, active: boolean) => void;
  /** A heartbeat's round trip to a peer, in seconds. */
  onRoundTrip?: (to: string, seconds: number) => void;
  /** A peer sent something this member could not take (a malformed message, a refused snapshot). */
  onReceiveFailure?: (from: string) => void;
  /** A snapshot sent to / received from a peer: how long it took, and whether it got through. */
  onSnapshotSent?: (to: string, seconds: number, ok: boolean) => void;
  onSnapshotReceived?: (from: string, seconds: number, ok: boolean) => void;
}

/** What /v2/stats/leader shows of a follower: heartbeat round trips and their outcomes. */
export interface FollowerStats {
  latency: { current: number; average: number; standardDeviation: number; minimum: number; maximum: number };
  counts: { fail: number; success: number };
}

function headers(t: Transport, to: string): Record<string, string> {
  const h: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'X-Server-From': t.id, 'X-Raft-To': to, 'X-Etcd-Cluster-ID': t.clusterId };
  // So that a member that does not know this one yet (behind on the log) can still answer it, as etcd's remotes.
  if (t.peerURLs.length > 0) h['X-PeerURLs'] = t.peerURLs.join(',');
  return h;
}

class Peer {
  private req: http.ClientRequest | undefined;
  private connected = false;
  /** When the stream to this peer last came up (performance.now() ms); undefined while it is down. */
  activeSince: number | undefined;
  private waitingDrain = false;
  private queue: Buffer[] = [];
  private flushScheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** The reason of the last failed stream, so that a change of reason is logged. */
  private lastFailure = '';
  private urlIndex = 0;
  private stopped = false;
  private lastMismatchLog = 0;
  private heartbeatSentAt = new Map<number, number>();
  readonly stats: FollowerStats = {
    latency: { current: 0, average: 0, standardDeviation: 0, minimum: 0, maximum: 0 },
    counts: { fail: 0, success: 0 },
  };
  private latencySquares = 0;

  constructor(
    readonly id: string,
    public urls: string[],
    private readonly t: Transport,
  ) {}

  private lastWrite = 0;
  private linkTimer: NodeJS.Timeout | undefined;

  /**
   * Whether this peer is reachable: the stream to it is up and it has been heard from lately (its own stream to
   * this member carries its messages or link heartbeats; a host that died without a word falls silent).
   */
  isActive(): boolean {
    return this.connected && performance.now() - this.t.lastHeard(this.id) < LINK_TIMEOUT_MS;
  }

  private startLinkHeartbeats(): void {
    this.stopLinkHeartbeats();
    this.linkTimer = setInterval(() => {
      if (!this.connected || !this.req || this.waitingDrain) return;
      if (performance.now() - this.lastWrite < LINK_HEARTBEAT_MS) return;
      this.lastWrite = performance.now();
      this.req.write(LINK_HEARTBEAT);
    }, LINK_HEARTBEAT_MS);
    this.linkTimer.unref();
  }

  private stopLinkHeartbeats(): void {
    if (this.linkTimer) clearInterval(this.linkTimer);
    this.linkTimer = undefined;
  }

  /** Opens the stream now, before there is anything to send (as etcd keeps a stream to every peer). */
  ensureConnected(): void {
    if (!this.req && !this.retryTimer && !this.stopped) this.connect();
  }

  enqueue(m: Message): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUED_MESSAGES) {
      if (m.type === MessageType.App) this.stats.counts.fail++;
      this.t.o.onSendFailure?.(this.id);
      this.t.o.reporter.reportUnreachable(this.id);
      return;
    }
    if (m.type === MessageType.Heartbeat) this.heartbeatSentAt.set(m.term, performance.now());
    if (m.type === MessageType.App) {
      // /v2/stats/leader counts and times appends as etcd 3.4 does: the time to encode one onto the stream.
      const start = performance.now();
      this.queue.push(encodeFrame(m));
      this.appendSent(performance.now() - start);
    } else {
      this.queue.push(encodeFrame(m));
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** A heartbeat response came back: one round trip (etcd_network_peer_round_trip_time_seconds). */
  heartbeatAnswered(term: number): void {
    const sent = this.heartbeatSentAt.get(term);
    if (sent === undefined) return;
    this.heartbeatSentAt.delete(term);
    this.t.o.onRoundTrip?.(this.id, (performance.now() - sent) / 1000);
  }

  /** One append went onto the stream, taking `ms` to encode (etcd's FollowerStats.Succ). */
  private appendSent(ms: number): void {
    const s = this.stats;
    s.counts.success++;
    const n = s.counts.success;
    s.latency.current = ms;
    s.latency.average += (ms - s.latency.average) / n;
    this.latencySquares += ms * ms;
    s.latency.standardDeviation = Math.sqrt(Math.max(0, this.latencySquares / n - s.latency.average * s.latency.average));
    s.latency.minimum = n === 1 ? ms : Math.min(s.latency.minimum, ms);
    s.latency.maximum = Math.max(s.latency.maximum, ms);
  }

  private flush(): void {
    if (this.stopped || this.queue.length === 0) return;
    if (!this.req) {
      if (!this.retryTimer) this.connect();
      return;
    }
    if (!this.connected || this.waitingDrain) return;
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
    this.t.o.onSent?.(this.id, data.length);
    this.lastWrite = performance.now();
    if (!this.req.write(data)) {
      this.waitingDrain = true;
      this.req.once('drain', () => {
        this.waitingDrain = false;
        this.flush();
      });
    }
  }

  private connect(): void {
    const target = peerTarget(new URL(STREAM_PATH, this.urls[this.urlIndex % this.urls.length]));
    if (!target) {
      if (this.failures === 0) this.t.o.log('warn', 'cannot reach a peer at this URL (only http, https, unix and unixs peer URLs are supported)', { peer: this.id, url: this.urls[this.urlIndex % this.urls.length] });
      this.fail();
      return;
    }
    const { url, secure, socketPath } = target;
    const mod = secure ? https : http;
    const req = mod.request(url, {
      method: 'POST',
      headers: headers(this.t, this.id),
      ...this.t.dialOptions(secure, socketPath),
      timeout: 5000,
    });
    this.req = req;
    // An idle stream (nothing to send for a while) must still notice a peer that went away without a word.
    let handshook = false;
    req.on('socket', (socket) => {
      socket.setKeepAlive(true, 5000);
      socket.once('secureConnect', () => (handshook = true));
    });
    req.on('response', (res) => {
      handshook = false;
      if (res.statusCode === 200) {
        // The peer accepts our stream; the connection stays open as long as both live.
        req.setTimeout(0);
        this.connected = true;
        this.activeSince ??= performance.now();
        this.t.o.onPeerActive?.(this.id, true);
        this.startLinkHeartbeats();
        this.failures = 0;
        this.t.o.log('info', 'peer stream established', { peer: this.id, url: url.origin });
        this.flush();
        res.resume();
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 410) this.t.o.reporter.removedByPeer(this.id);
        else if (res.statusCode === 412) this.logMismatch(body.trim());
        else if (this.failures === 0) this.t.o.log('warn', 'peer refused the stream', { peer: this.id, status: res.statusCode, body: body.trim() });
        this.fail();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out connecting')));
    req.on('error', (err) => {
      if (this.req === req) {
        // Logged at the first failure and whenever the reason changes (a peer first down, then refusing our
        // certificate, says so), not at every retry.
        const why = peerDialError(err, handshook);
        if (this.failures === 0 || why.error !== this.lastFailure) this.t.o.log('warn', 'lost the stream to a peer', { peer: this.id, url: url.origin, ...why });
        this.lastFailure = why.error;
        this.fail();
      }
    });
    req.on('close', () => {
      if (this.req === req) this.fail();
    });
    req.flushHeaders();
  }

  private logMismatch(body: string): void {
    const now = Date.now();
    if (now - this.lastMismatchLog < 5000) return;
    this.lastMismatchLog = now;
    this.t.o.log('error', 'a peer refused this member: it belongs to another cluster (check --initial-cluster and --initial-cluster-token)', {
      peer: this.id,
      localClusterId: this.t.clusterId,
      answer: body,
    });
  }

  private fail(): void {
    const req = this.req;
    this.req = undefined;
    if (this.connected) this.t.o.onPeerActive?.(this.id, false);
    this.connected = false;
    this.activeSince = undefined;
    this.stopLinkHeartbeats();
    this.waitingDrain = false;
    if (req && !req.destroyed) req.destroy();
    // What was queued is stale by the time the peer is back: Raft resends what still matters.
    this.queue = [];
    this.heartbeatSentAt.clear();
    if (this.stopped) return;
    this.t.o.onSendFailure?.(this.id);
    this.t.o.reporter.reportUnreachable(this.id);
    this.failures++;
    this.urlIndex++;
    const delay = Math.min(1000, 50 * 2 ** Math.min(this.failures, 5));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped && !this.req) this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  sendSnapshot(m: Message): void {
    const target = peerTarget(new URL(SNAPSHOT_PATH, this.urls[this.urlIndex % this.urls.length]));
    if (!target) {
      this.t.o.reporter.reportSnapshot(this.id, false);
      return;
    }
    const { url, secure, socketPath } = target;
    const mod = secure ? https : http;
    const started = performance.now();
    snapshotRequest(m).then(
      (body) => this.postSnapshot(m, url, mod, body, started, socketPath),
      (err: Error) => {
        this.t.o.log('warn', 'sending a snapshot failed', { peer: this.id, index: m.snapshot?.metadata.index, error: err.message });
        this.t.o.reporter.reportSnapshot(this.id, false);
      },
    );
  }

  private postSnapshot(m: Message, url: URL, mod: typeof http | typeof https, body: { headers: Record<string, string>; head: Buffer; data: Uint8Array }, started: number, socketPath?: string): void {
    if (this.stopped) return;
    const done = (ok: boolean, why?: string) => {
      this.t.o.onSnapshotSent?.(this.id, (performance.now() - started) / 1000, ok);
      if (!ok) this.t.o.log('warn', 'sending a snapshot failed', { peer: this.id, index: m.snapshot?.metadata.index, error: why });
      else this.t.o.log('info', 'sent a snapshot', { peer: this.id, index: m.snapshot?.metadata.index, bytes: body.data.byteLength });
      this.t.o.reporter.reportSnapshot(this.id, ok);
    };
    const secure = mod === https;
    const req = mod.request(url, {
      method: 'POST',
      headers: { ...headers(this.t, this.id), ...body.headers },
      ...this.t.dialOptions(secure, socketPath),
    });
    let settled = false;
    const settle = (ok: boolean, why?: string) => {
      if (settled) return;
      settled = true;
      done(ok, why);
    };
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => settle(res.statusCode === 204, `status ${res.statusCode}`));
    });
    req.on('error', (err) => settle(false, err.message));
    writeSnapshotBody(req, body.head, body.data, (n) => this.t.o.onSent?.(this.id, n));
  }

  stop(): void {
    this.stopped = true;
    this.stopLinkHeartbeats();
    if (this.connected) this.t.o.onPeerActive?.(this.id, false);
    this.connected = false;
    this.activeSince = undefined;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.req?.destroy();
    this.req = undefined;
    this.queue = [];
  }
}

export class Transport {
  private readonly peers = new Map<string, Peer>();
  private agent: https.Agent | undefined;
  /** When each peer was last heard from on its stream to this member (performance.now() ms). */
  private readonly heard = new Map<string, number>();

  lastHeard(id: string): number {
    return this.heard.get(id) ?? -Infinity;
  }

  /** Open inbound streams, by the member that opened each. */
  private readonly inbound = new Map<http.IncomingMessage, string>();
  /** This member and its cluster (known once the server has started). */
  id = '';
  clusterId = '';

  constructor(readonly o: TransportOptions) {
    sweepPartialSnapshots(o.snapshotDir);
  }

  /** This member's own peer URLs, sent with every request (X-PeerURLs). */
  peerURLs: string[] = [];

  setLocal(id: string, clusterId: string, peerURLs: string[] = []): void {
    this.id = id;
    this.clusterId = clusterId;
    this.peerURLs = peerURLs;
    for (const p of this.peers.values()) p.ensureConnected();
  }

  /** The agent, or the socket file, of a request to a peer. */
  dialOptions(secure: boolean, socketPath: string | undefined): https.RequestOptions {
    // A unix socket is dialled directly (the agents pool TCP connections by host and port).
    if (socketPath !== undefined) return { socketPath, agent: false, ...(secure ? this.o.httpsAgentOptions : {}) };
    return { agent: secure ? this.httpsAgent() : false };
  }

  httpsAgent(): https.Agent {
    this.agent ??= new https.Agent({ keepAlive: true, ...this.o.httpsAgentOptions });
    return this.agent;
  }

  /** New TLS settings for outbound connections (a rotated certificate): used from the next connection on. */
  setHttpsAgentOptions(options: https.AgentOptions): void {
    this.o.httpsAgentOptions = options;
    this.agent = undefined;
  }

  send(messages: Message[]): void {
    for (const m of messages) {
      const p = this.peers.get(m.to);
      if (!p) continue;
      if (m.type === MessageType.Snap) p.sendSnapshot(m);
      else p.enqueue(m);
    }
  }

  addPeer(id: string, urls: string[]): void {
    if (id === this.id) return;
    const p = this.peers.get(id);
    if (p) {
      p.urls = urls;
      return;
    }
    const peer = new Peer(id, urls, this);
    this.peers.set(id, peer);
    // Every member keeps a stream to every peer, even one it has nothing to say to yet (a follower to another
    // follower): whether a peer is reachable is then known at once (strict reconfiguration, active_peers).
    if (this.id !== '') peer.ensureConnected();
  }

  removePeer(id: string): void {
    this.peers.get(id)?.stop();
    this.peers.delete(id);
    // Its streams to this member end too: its next connection attempt is answered 410 if it was removed.
    for (const [req, from] of this.inbound) if (from === id) req.destroy();
  }

  /** Makes the peers exactly these members (after a snapshot replaced the membership). */
  setPeers(members: { id: string; peerURLs: string[] }[]): void {
    const want = new Set(members.map((m) => m.id));
    for (const id of [...this.peers.keys()]) if (!want.has(id)) this.removePeer(id);
    for (const m of members) this.addPeer(m.id, m.peerURLs);
  }

  isActive(id: string): boolean {
    return this.peers.get(id)?.isActive() ?? false;
  }

  /** Since when the stream to a peer has been up (performance.now() ms), or undefined when it is down. */
  activeSince(id: string): number | undefined {
    const p = this.peers.get(id);
    return p?.isActive() ? p.activeSince : undefined;
  }

  followerStats(): Record<string, FollowerStats> {
    return Object.fromEntries([...this.peers].map(([id, p]) => [id, p.stats]));
  }

  stop(): void {
    for (const p of this.peers.values()) p.stop();
    this.peers.clear();
    for (const r of this.inbound.keys()) r.destroy();
    this.agent?.destroy();
  }

  /** Checks who a peer request comes from; answers and returns false when it must be refused. */
  private admit(req: http.IncomingMessage, res: http.ServerResponse): string | undefined {
    const from = String(req.headers['x-server-from'] ?? '');
    const to = String(req.headers['x-raft-to'] ?? '');
    const cid = String(req.headers['x-etcd-cluster-id'] ?? '');
    const refuse = (status: number, text: string) => {
      req.resume();
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Etcd-Cluster-ID': this.clusterId });
      res.end(text + '\n');
      return undefined;
    };
    if (this.id === '') return refuse(503, 'member not started yet');
    if (cid !== this.clusterId) {
      this.o.log('warn', 'refused a peer request from another cluster', { from, remoteClusterId: cid, localClusterId: this.clusterId });
      return refuse(412, `cluster ID mismatch: local ${this.clusterId}, remote ${cid}`);
    }
    if (to !== this.id) return refuse(412, `member ID mismatch: this is ${this.id}, not ${to}`);
    if (!/^[0-9a-f]{1,16}$/.test(from)) return refuse(404, 'invalid from');
    if (this.o.reporter.isRemoved(from)) return refuse(410, 'removed member');
    if (!this.peers.has(from)) {
      // A member of this cluster that this one does not know yet: it is behind on the log (the member was added
      // since). As etcd does with a "remote", take its messages and answer it at the peer URLs it gives, until
      // the log tells who it is. Without them there is no way to answer: refused, as etcd refuses its stream.
      const urls = String(req.headers['x-peerurls'] ?? '').split(',').filter((u) => /^(https?|unixs?):\/\/[^/\s]+$/.test(u));
      if (urls.length === 0) return refuse(404, 'error sender not found');
      this.o.log('info', 'a member not yet known here is talking to it; answering it at its peer URLs', { from, urls });
      this.addPeer(from, urls);
    }
    return from;
  }

  /** The peer listener's handler for the Raft paths; others go to `next`. */
  handler(next: (req: http.IncomingMessage, res: http.ServerResponse) => void): (req: http.IncomingMessage, res: http.ServerResponse) => void {
    return (req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'POST' && path === STREAM_PATH) return this.serveStream(req, res);
      if (req.method === 'POST' && path === SNAPSHOT_PATH) return this.serveSnapshot(req, res);
      next(req, res);
    };
  }

  private serveStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    const from = this.admit(req, res);
    if (from === undefined) return;
    res.writeHead(200, { 'X-Etcd-Cluster-ID': this.clusterId });
    res.flushHeaders();
    // A new stream from a member replaces its older ones (left open by a connection that died without a word).
    for (const [old, who] of this.inbound) if (who === from) old.destroy();
    req.socket.setKeepAlive(true, 5000);
    this.inbound.set(req, from);
    this.heard.set(from, performance.now());
    // A stream that stays silent past LINK_TIMEOUT_MS (no message, no link heartbeat) has lost its sender: closed,
    // so that the sender, if it lives, reconnects.
    const silence = setInterval(() => {
      if (performance.now() - this.lastHeard(from) > LINK_TIMEOUT_MS) req.destroy();
    }, LINK_HEARTBEAT_MS);
    silence.unref();
    req.on('close', () => clearInterval(silence));
    const decoder = new FrameDecoder(MAX_STREAM_FRAME);
    req.on('data', (chunk: Buffer) => {
      noteArrival();
      noteRequest();
      this.heard.set(from, performance.now());
      this.o.onReceived?.(from, chunk.length);
      let msgs: Message[];
      try {
        msgs = decoder.push(chunk);
      } catch (err) {
        this.o.log('warn', 'closing a peer stream that sent a malformed message', { from, error: (err as Error).message });
        this.o.onReceiveFailure?.(from);
        req.destroy();
        return;
      }
      if (this.o.reporter.isRemoved(from)) {
        // Removed while its stream was open: closing it makes the member reconnect and hear 410 (it then stops).
        req.destroy();
        return;
      }
      for (const m of msgs) {
        if (m.from !== from) continue; // a message must come from the member that opened the stream
        if (m.type === MessageType.Snap) continue; // snapshots come on their own path, checked there
        if (m.type === MessageType.HeartbeatResp) this.peers.get(from)?.heartbeatAnswered(m.term);
        try {
          this.o.reporter.process(m);
        } catch (err) {
          this.o.log('warn', 'dropped a peer message that could not be processed', { from, type: m.type, error: (err as Error).message });
        }
      }
    });
    const gone = () => {
      this.inbound.delete(req);
      res.end();
    };
    req.on('end', gone);
    req.on('close', gone);
  }

  private serveSnapshot(req: http.IncomingMessage, res: http.ServerResponse): void {
    const from = this.admit(req, res);
    if (from === undefined) return;
    const started = performance.now();
    const took = () => (performance.now() - started) / 1000;
    receiveSnapshot(req, from, this.o.snapshotDir, (n) => this.o.onReceived?.(from, n)).then(
      (m) => {
        this.o.onSnapshotReceived?.(from, took(), true);
        this.o.log('info', 'received a snapshot', { from, index: m.snapshot?.metadata.index, bytes: m.snapshot?.data.byteLength });
        try {
          this.o.reporter.process(m);
        } catch (err) {
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${(err as Error).message}\n`);
          return;
        }
        res.writeHead(204).end();
      },
      (err: Error) => {
        this.o.log('warn', 'refused an incoming snapshot', { from, error: err.message });
        this.o.onSnapshotReceived?.(from, took(), false);
        this.o.onReceiveFailure?.(from);
        const status = err instanceof SnapshotReceiveError ? err.status : 500;
        res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`);
      },
    );
  }
}
