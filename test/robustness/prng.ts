/** The seedable PRNG of the Raft simulation (mulberry32), so that a seed replays the same choices. */
export { prng } from '../raft/simulation';

/** An integer in [lo, hi]. */
export function between(rnd: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

export function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}
