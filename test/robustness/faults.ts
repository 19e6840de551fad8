/**
 * Faults injected into a running cluster, one at a time, chosen from a seed: kill -9 (then a restart on the same data
 * dir), SIGTERM (a graceful stop: a leader hands its leadership over first, as etcd's does; then a restart), SIGSTOP
 * (then SIGCONT), a member cut off both ways, one-way loss (every message from one member to another
 * lost, the other way untouched), and a member removed from the cluster (then added back on the same URLs with an
 * empty data dir: it catches up from a snapshot), each aimed at the leader or at any member. After each, the injector
 * waits for the cluster to be whole again (one leader, every member healthy); a cluster that does not recover is a
 * finding.
 */
import { rmSync } from 'node:fs';
import { request } from '../support/http';
import { MemberSlot, TestCluster, eventually } from '../support/cluster';
import { between, pick } from './prng';

export type FaultKind = 'kill' | 'stop' | 'partition' | 'oneway' | 'member' | 'term';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'stop', 'partition', 'oneway', 'member', 'term'];

export interface FaultRecord {
  kind: FaultKind;
  /** What was hit, e.g. "leader m1", "m2", "m0 -> m1 (leader)". */
  target: string;
  /** ms since the run started: injected, and healed. */
  at: number;
  healedAt?: number;
}

interface SelfStats {
  id: string;
  state: string;
  leaderInfo: { leader: string };
}

export class FaultInjector {
  readonly done: FaultRecord[] = [];
  /** Members under SIGSTOP now (never left stopped: see release()). */
  private readonly stopped = new Set<MemberSlot>();
  /** Everything each member printed, across restarts. */
  readonly logs = new Map<string, string[]>();

  constructor(
    private readonly c: TestCluster,
    private readonly rnd: () => number,
    private readonly kinds: readonly FaultKind[],
    private readonly t0: number,
    private readonly log: (line: string) => void,
    private readonly timing = { gapMs: [300, 1500] as [number, number], holdMs: [800, 3500] as [number, number], recoverMs: 45000 },
  ) {}

  /** Injects faults until `end` (performance.now() ms); throws when the cluster does not recover from one. */
  async run(end: number): Promise<void> {
    while (performance.now() < end) {
      // Pacing of the faults (the workload runs meanwhile), not a wait for any state.
      await delay(between(this.rnd, ...this.timing.gapMs));
      if (performance.now() >= end || this.kinds.length === 0) break;
      const kind = pick(this.rnd, this.kinds);
      const atLeader = this.rnd() < 0.5;
      const hold = between(this.rnd, ...this.timing.holdMs);
      const choice = this.rnd();
      const leader = atLeader ? await this.leader() : undefined;
      const victim = leader ?? this.c.members[Math.floor(choice * this.c.members.length)];
      const name = (m: MemberSlot) => `${m.name}${m === leader ? ' (leader)' : ''}`;
      const rec: FaultRecord = { kind, target: name(victim), at: Math.round(performance.now() - this.t0) };
      const heal = await this.inject(kind, victim, choice, rec, name);
      this.done.push(rec);
      this.log(`fault ${this.done.length}: ${kind} ${rec.target} for ${hold} ms (at ${(rec.at / 1000).toFixed(1)} s)`);
      await delay(hold);
      await heal();
      rec.healedAt = Math.round(performance.now() - this.t0);
      await this.waitForAgreement(`after ${kind} ${rec.target}`);
    }
  }

  private async inject(kind: FaultKind, victim: MemberSlot, choice: number, rec: FaultRecord, name: (m: MemberSlot) => string): Promise<() => Promise<void>> {
    switch (kind) {
      case 'kill': {
        this.keepLog(victim);
        await this.c.kill(victim);
        return async () => this.restart(victim);
      }
      case 'stop': {
        process.kill(victim.proc!.pid, 'SIGSTOP');
        this.stopped.add(victim);
        return async () => this.cont(victim);
      }
      case 'partition': {
        this.c.partition([victim]);
        return async () => this.c.heal();
      }
      case 'term': {
        this.keepLog(victim);
        const asked = performance.now();
        const code = await victim.proc!.signal('SIGTERM');
        rec.target += ` (stopped in ${Math.round(performance.now() - asked)} ms${code !== 0 ? `, exit ${code}` : ''})`;
        victim.proc = undefined;
        return async () => this.restart(victim);
      }
      case 'member': {
        await this.remove(victim);
        return async () => this.addBack(victim);
      }
      case 'oneway': {
        // Messages from the victim to another member are lost, or the other way round (chosen by the same draw).
        const others = this.c.members.filter((m) => m !== victim);
        const other = others[Math.floor(choice * 1000) % others.length];
        const outgoing = Math.floor(choice * 2000) % 2 === 0;
        const [from, to] = outgoing ? [victim, other] : [other, victim];
        rec.target = `${name(from)} -> ${name(to)}`;
        this.c.cut(from, to);
        return async () => this.c.heal();
      }
    }
  }

  /**
   * Starts a killed member again as it was (same flags, same data dir), once it listens. Its ports were free for a
   * while: another process on the machine may hold one for a moment (a port probe of another test); then again.
   */
  private async restart(m: MemberSlot): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.c.restart(m, false);
        return;
      } catch (err) {
        if (!/EADDRINUSE/.test((err as Error).message) || attempt >= 5) throw err;
        this.log(`restart of ${m.name}: one of its ports is taken by another process; trying again`);
        await delay(500 * attempt); // back off before trying the port again
      }
    }
  }

  /**
   * Removes a member through another one (etcd refuses while the leader has not been connected to a quorum of the
   * members that stay for 5 s: asked again until then), waits for it to stop by itself as a removed member does, and
   * empties its data dir.
   */
  private async remove(m: MemberSlot): Promise<void> {
    const id = m.id!;
    await eventually(`the removal of ${m.name} to be accepted`, async () => {
      const via = this.c.members.find((x) => x !== m && x.proc && !this.stopped.has(x))!;
      const a = await request(via.clientURL, 'DELETE', `/v2/members/${id}`, { timeoutMs: 5000 });
      // 410: a removal asked before, that timed out, went through.
      return a.status === 204 || a.status === 410 ? true : undefined;
    }, 30000);
    this.keepLog(m);
    const exited = await Promise.race([m.proc!.exited, new Promise<undefined>((r) => setTimeout(r, 10000, undefined))]);
    if (exited === undefined) this.log(`${m.name} was removed but did not stop within 10 s; killed`);
    await this.c.kill(m);
    rmSync(m.dataDir, { recursive: true, force: true });
  }

  /** Adds a removed member back on its URLs (a new member ID) and starts it on an empty data dir. */
  private async addBack(m: MemberSlot): Promise<void> {
    const a = await eventually(`${m.name} to be added back`, async () => {
      const via = this.c.members.find((x) => x !== m && x.proc)!;
      const r = await request(via.clientURL, 'POST', '/v2/members', { body: JSON.stringify({ peerURLs: [m.peerURL] }), headers: { 'Content-Type': 'application/json' }, timeoutMs: 5000 });
      return r.status === 500 ? undefined : r;
    }, 30000);
    if (a.status === 201) m.id = (JSON.parse(a.body) as { id: string }).id;
    else if (a.status === 409) {
      // An add asked before, that timed out, went through: the member is there with these URLs.
      const list = await request(this.c.members.find((x) => x !== m && x.proc)!.clientURL, 'GET', '/v2/members');
      m.id = (JSON.parse(list.body) as { members: { id: string; peerURLs: string[] }[] }).members.find((x) => x.peerURLs.includes(m.peerURL))?.id;
      if (!m.id) throw new Error(`adding ${m.name} back answered 409, and no member has its URL`);
    } else throw new Error(`adding ${m.name} back answered ${a.status}: ${a.body}`);
    await this.restart(m);
  }

  private cont(m: MemberSlot): void {
    if (m.proc && this.stopped.has(m)) process.kill(m.proc.pid, 'SIGCONT');
    this.stopped.delete(m);
  }

  private keepLog(m: MemberSlot): void {
    if (!m.proc) return;
    const l = this.logs.get(m.name) ?? [];
    l.push(m.proc.output());
    this.logs.set(m.name, l);
  }

  /** Every member's whole output so far. */
  output(m: MemberSlot): string {
    return [...(this.logs.get(m.name) ?? []), m.proc?.output() ?? ''].join('\n--- restarted ---\n');
  }

  /** Undoes whatever fault is on (for the end of a run, and on the way out after a failure). */
  async release(): Promise<void> {
    for (const m of [...this.stopped]) this.cont(m);
    this.c.heal();
    for (const m of this.c.members) if (!m.proc) await this.restart(m);
  }

  /** The member that says it leads and that the others follow, among those that answer within a second. */
  async leader(among = this.c.members): Promise<MemberSlot | undefined> {
    const views = await Promise.all(
      among.map(async (m) => {
        if (!m.proc || this.stopped.has(m)) return undefined;
        try {
          const a = await request(m.clientURL, 'GET', '/v2/stats/self', { timeoutMs: 1000 });
          return a.status === 200 ? (JSON.parse(a.body) as SelfStats) : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const leaders = views.filter((v) => v?.state === 'StateLeader');
    const followed = leaders.sort((a, b) => votes(b!.id) - votes(a!.id))[0];
    return followed ? among.find((m) => m.id === followed.id) : undefined;
    function votes(id: string): number {
      return views.filter((v) => v?.leaderInfo.leader === id).length;
    }
  }

  /**
   * Waits (polling the members' own state) until every member runs, exactly one says it leads, and every member's
   * /health passes (a quorum read through the leader within a second). Not by the leader /v2/stats/self names: a
   * follower names whoever sent it the last append, even one from a deposed leader at an older term (as etcd's).
   */
  async waitForAgreement(what: string): Promise<void> {
    const deadline = performance.now() + this.timing.recoverMs;
    for (;;) {
      const views = await Promise.all(
        this.c.members.map(async (m) => {
          if (!m.proc) return 'down';
          try {
            const [self, health] = await Promise.all([
              request(m.clientURL, 'GET', '/v2/stats/self', { timeoutMs: 2000 }),
              request(m.clientURL, 'GET', '/health', { timeoutMs: 3000 }),
            ]);
            const state = (JSON.parse(self.body) as SelfStats).state;
            return { state, healthy: health.status === 200 && (JSON.parse(health.body) as { health: string }).health === 'true' };
          } catch (err) {
            return (err as Error).message;
          }
        }),
      );
      const up = views.filter((v): v is { state: string; healthy: boolean } => typeof v === 'object');
      if (up.length === views.length && up.every((v) => v.healthy) && up.filter((v) => v.state === 'StateLeader').length === 1) return;
      if (performance.now() > deadline) {
        const states = views.map((v, i) => `${this.c.members[i].name}: ${typeof v === 'object' ? `${v.state}, ${v.healthy ? 'healthy' : 'unhealthy'}` : v}`).join('; ');
        throw new Error(`the cluster did not recover within ${this.timing.recoverMs / 1000} s ${what} (${states})`);
      }
      await delay(100); // poll the members' state again
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
