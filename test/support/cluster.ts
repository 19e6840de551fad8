/**
 * A cluster of our etcd processes on 127.0.0.1 for tests: start from --initial-cluster, find the leader, kill -9
 * and restart members, add members at runtime, and partition members away through peer proxies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request } from './http';
import { PeerProxy } from './peer-proxy';
import { RunningEtcd, freePort, spawnOurEtcd } from './real-etcd';

export interface MemberSlot {
  name: string;
  clientURL: string;
  /** The URL members use to reach it: its proxy. */
  peerURL: string;
  listenPeerPort: number;
  dataDir: string;
  proc?: RunningEtcd;
  proxy: PeerProxy;
  id?: string;
}

export interface ClusterOptions {
  token?: string;
  /** Extra etcd flags for every member. */
  args?: string[];
}

/** Polls `fn` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 20000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50)); // poll the cluster's own state
  }
}

export class TestCluster {
  readonly members: MemberSlot[] = [];
  private readonly isolated = new Set<string>();
  /** One-way cuts, "fromId>toId": that member's messages to that one are lost. */
  private readonly cuts = new Set<string>();
  readonly root = mkdtempSync(path.join(os.tmpdir(), 'cluster-'));
  readonly token: string;

  private constructor(readonly o: ClusterOptions) {
    this.token = o.token ?? 'test-cluster-token';
  }

  static async start(n: number, o: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(o);
    try {
      for (let i = 0; i < n; i++) await c.newSlot(`m${i}`);
      const initial = c.initialCluster();
      // Every start settles before a failure is thrown, so that stop() finds every process that did start.
      const starts = await Promise.allSettled(c.members.map((m) => c.launch(m, ['--initial-cluster', initial, '--initial-cluster-state', 'new'], false)));
      for (const r of starts) if (r.status === 'rejected') throw r.reason;
      await c.waitForLeader();
      await c.learnIds();
      return c;
    } catch (err) {
      // No test will stop a cluster it never got: stop what did start, so nothing keeps running for later files.
      await c.stop().catch(() => undefined);
      throw err;
    }
  }

  async newSlot(name: string): Promise<MemberSlot> {
    const [clientPort, listenPeerPort, proxyPort] = [await freePort(), await freePort(), await freePort()];
    const slot: MemberSlot = {
      name,
      clientURL: `http://127.0.0.1:${clientPort}`,
      peerURL: `http://127.0.0.1:${proxyPort}`,
      listenPeerPort,
      dataDir: path.join(this.root, name),
      proxy: undefined as unknown as PeerProxy,
    };
    slot.proxy = new PeerProxy(listenPeerPort, (from) => from !== '' && slot.id !== undefined && (this.isolated.has(from) !== this.isolated.has(slot.id) || this.cuts.has(`${from}>${slot.id}`)));
    await slot.proxy.listen(proxyPort);
    this.members.push(slot);
    return slot;
  }

  initialCluster(slots = this.members): string {
    return slots.map((m) => `${m.name}=${m.peerURL}`).join(',');
  }

  args(m: MemberSlot, extra: string[]): string[] {
    return [
      '--name', m.name, '--data-dir', m.dataDir, '--enable-v2=true',
      '--listen-client-urls', m.clientURL, '--advertise-client-urls', m.clientURL,
      '--listen-peer-urls', `http://127.0.0.1:${m.listenPeerPort}`, '--initial-advertise-peer-urls', m.peerURL,
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', '50', '--election-timeout', '500',
      ...(this.o.args ?? []),
      ...extra,
    ];
  }

  /** Starts a member's process; `healthy` waits until it has a leader. */
  async launch(m: MemberSlot, extra: string[], healthy = true): Promise<RunningEtcd> {
    m.proc = await spawnOurEtcd(this.args(m, extra), { clientURL: m.clientURL, peerURL: m.peerURL, dataDir: m.dataDir }, { healthy });
    return m.proc;
  }

  async learnIds(): Promise<void> {
    const any = this.members.find((m) => m.proc);
    const a = await request(any!.clientURL, 'GET', '/v2/members');
    const { members } = JSON.parse(a.body) as { members: { id: string; peerURLs: string[] }[] };
    for (const s of this.members) s.id = members.find((x) => x.peerURLs.includes(s.peerURL))?.id ?? s.id;
  }

  /** The member every running member agrees is the leader. */
  async waitForLeader(among = this.running()): Promise<MemberSlot> {
    return eventually('a leader that every member agrees on', async () => {
      const views = await Promise.all(among.map(async (m) => JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self', { timeoutMs: 2000 })).body) as { id: string; state: string; leaderInfo: { leader: string } }));
      const lead = views[0].leaderInfo.leader;
      if (!lead || views.some((v) => v.leaderInfo.leader !== lead)) return undefined;
      const leader = views.find((v) => v.id === lead);
      if (!leader || leader.state !== 'StateLeader') return undefined;
      return among.find((m) => m.id === lead || views[among.indexOf(m)].id === lead);
    });
  }

  running(): MemberSlot[] {
    return this.members.filter((m) => m.proc);
  }

  async kill(m: MemberSlot): Promise<void> {
    await m.proc?.stop();
    m.proc = undefined;
  }

  /** Restarts a member on its data dir (its flags as at first start, which etcd ignores once it has data). */
  async restart(m: MemberSlot, healthy = true): Promise<void> {
    await this.launch(m, ['--initial-cluster', this.initialCluster(), '--initial-cluster-state', 'existing'], healthy);
  }

  /** Adds a member through the members API of `via`, then starts it with --initial-cluster-state existing. */
  async addMember(via: MemberSlot, name: string): Promise<MemberSlot> {
    const slot = await this.newSlot(name);
    // etcd refuses an add (500) until the member asked has been connected to every voter for 5 s; a refused add
    // changes nothing, so it is asked again until then. Any other answer is a failure.
    const a = await eventually(`member add of ${name} to be accepted`, async () => {
      const r = await request(via.clientURL, 'POST', '/v2/members', { body: JSON.stringify({ peerURLs: [slot.peerURL] }), headers: { 'Content-Type': 'application/json' } });
      if (r.status === 500) return undefined;
      return r;
    });
    if (a.status !== 201) throw new Error(`member add answered ${a.status}: ${a.body}`);
    slot.id = (JSON.parse(a.body) as { id: string }).id;
    const initial = this.initialCluster(this.members.filter((m) => m.proc || m === slot));
    await this.launch(slot, ['--initial-cluster', initial, '--initial-cluster-state', 'existing']);
    return slot;
  }

  /** Cuts these members off from the others (both directions), until heal(). */
  partition(minority: MemberSlot[]): void {
    this.isolated.clear();
    for (const m of minority) this.isolated.add(m.id!);
    for (const m of this.members) m.proxy.enforce();
  }

  /**
   * Loses every message from `from` to `to`, until heal(); `to`'s messages to `from` still arrive. A member's
   * messages to a peer all travel on connections it opens to that peer (streams and snapshots), so cutting those
   * at the peer's proxy cuts exactly one direction.
   */
  cut(from: MemberSlot, to: MemberSlot): void {
    this.cuts.add(`${from.id}>${to.id}`);
    for (const m of this.members) m.proxy.enforce();
  }

  heal(): void {
    this.isolated.clear();
    this.cuts.clear();
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map(async (m) => {
      await m.proc?.stop();
      await m.proxy.close();
    }));
    rmSync(this.root, { recursive: true, force: true });
  }
}
