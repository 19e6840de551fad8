/**
 * What /v2/stats/self reports, kept as etcd keeps it: the member's start time, who it follows (or that it leads)
 * and since when, and the append requests it received (a follower) or sent (the leader) with their rates over the
 * last 200 of them (none for a second: no rate).
 */

const QUEUE_CAPACITY = 200;

class RateQueue {
  private readonly times: number[] = [];
  private readonly sizes: number[] = [];
  private totalSize = 0;

  insert(now: number, size: number): void {
    this.times.push(now);
    this.sizes.push(size);
    this.totalSize += size;
    if (this.times.length > QUEUE_CAPACITY) {
      this.times.shift();
      this.totalSize -= this.sizes.shift()!;
    }
  }

  /** Requests and bytes per second over the queue; nothing once the last request is more than a second old. */
  rate(now: number): [number, number] {
    const n = this.times.length;
    if (n === 0) return [0, 0];
    if (now - this.times[n - 1] > 1000) {
      this.times.length = 0;
      this.sizes.length = 0;
      this.totalSize = 0;
      return [0, 0];
    }
    const seconds = (this.times[n - 1] - this.times[0]) / 1000;
    if (seconds <= 0) return [0, 0];
    return [n / seconds, this.totalSize / seconds];
  }
}

/** A duration as Go's time.Duration prints it ("1h2m3.5s", "5m15.767423215s", "1.5ms", "0s"). */
export function goDuration(ms: number): string {
  let ns = Math.round(ms * 1e6);
  if (ns === 0) return '0s';
  const neg = ns < 0;
  if (neg) ns = -ns;
  const frac = (value: number, digits: number): string => {
    const whole = Math.floor(value / 10 ** digits);
    const rest = String(value % 10 ** digits).padStart(digits, '0').replace(/0+$/, '');
    return rest ? `${whole}.${rest}` : String(whole);
  };
  let out: string;
  if (ns < 1e3) out = `${ns}ns`;
  else if (ns < 1e6) out = `${frac(ns, 3)}µs`;
  else if (ns < 1e9) out = `${frac(ns, 6)}ms`;
  else {
    const h = Math.floor(ns / 3.6e12);
    const m = Math.floor((ns % 3.6e12) / 6e10);
    const s = frac(ns % 6e10, 9);
    out = h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
  }
  return neg ? `-${out}` : out;
}

export class ServerStats {
  private readonly startTime: number;
  private leader = '';
  private leaderSince: number;
  private leading = false;
  private recvAppendRequestCnt = 0;
  private sendAppendRequestCnt = 0;
  private readonly recv = new RateQueue();
  private readonly send = new RateQueue();

  constructor(
    private readonly id: () => string,
    private readonly now: () => number = Date.now,
  ) {
    this.startTime = now();
    this.leaderSince = this.startTime;
  }

  /** A follower received an append from `leader`. */
  recvAppendReq(leader: string, size: number): void {
    const now = this.now();
    this.leading = false;
    if (leader !== this.leader) {
      this.leader = leader;
      this.leaderSince = now;
    }
    this.recv.insert(now, size);
    this.recvAppendRequestCnt++;
  }

  /** The leader sent an append. */
  sendAppendReq(size: number): void {
    this.becomeLeader();
    this.send.insert(this.now(), size);
    this.sendAppendRequestCnt++;
  }

  becomeLeader(): void {
    if (this.leading) return;
    this.leading = true;
    this.leader = this.id();
    this.leaderSince = this.now();
  }

  /** The /v2/stats/self body, fields in etcd's order (rates only when there are some). */
  json(name: string, state: string): string {
    const now = this.now();
    const [recvPkgRate, recvBandwidthRate] = this.recv.rate(now);
    const [sendPkgRate, sendBandwidthRate] = this.send.rate(now);
    const body: Record<string, unknown> = {
      name,
      id: this.id(),
      state,
      startTime: new Date(this.startTime).toISOString(),
      leaderInfo: { leader: this.leader, uptime: goDuration(now - this.leaderSince), startTime: new Date(this.leaderSince).toISOString() },
      recvAppendRequestCnt: this.recvAppendRequestCnt,
    };
    if (recvPkgRate) body.recvPkgRate = recvPkgRate;
    if (recvBandwidthRate) body.recvBandwidthRate = recvBandwidthRate;
    body.sendAppendRequestCnt = this.sendAppendRequestCnt;
    if (sendPkgRate) body.sendPkgRate = sendPkgRate;
    if (sendBandwidthRate) body.sendBandwidthRate = sendBandwidthRate;
    return JSON.stringify(body);
  }
}
