/**
 * Schedules of EtcdBackups (pure): the five-field cron syntax of Kubernetes CronJobs (minute hour day-of-month month
 * day-of-week; `*`, numbers, ranges `a-b`, steps `* /n` and `a-b/n`, lists, month and day names, 7 as Sunday, the
 * macros @yearly @annually @monthly @weekly @daily @midnight @hourly), evaluated in UTC, and `@every <duration>`
 * (`@every 6h`, `@every 1h30m`, as Go's cron libraries write it) for fixed intervals. As in cron, when both the day of
 * the month and the day of the week are restricted, a day matching either one is a match.
 */

export type Schedule = { kind: 'every'; ms: number } | { kind: 'cron'; fields: CronFields };

interface CronFields {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  domStar: boolean;
  dowStar: boolean;
}

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export class ScheduleError extends Error {}

/** Parses a schedule; throws ScheduleError with what is wrong. */
export function parseSchedule(text: string): Schedule {
  const t = text.trim();
  const every = /^@every\s+(\S+)$/.exec(t);
  if (every) {
    const ms = parseGoDuration(every[1]);
    if (ms === undefined || ms < 1000) throw new ScheduleError(`@every wants a duration of at least 1s (like 30s, 6h, 1h30m), got ${JSON.stringify(every[1])}`);
    return { kind: 'every', ms };
  }
  const expr = MACROS[t.toLowerCase()] ?? t;
  if (expr.startsWith('@')) throw new ScheduleError(`unknown schedule macro ${JSON.stringify(t)}`);
  const parts = expr.split(/\s+/);
  if (parts.length !== 5) throw new ScheduleError(`a schedule has 5 fields (minute hour day-of-month month day-of-week), got ${parts.length} in ${JSON.stringify(t)}`);
  const dow = field(parts[4], 0, 7, DAYS, 'day of week');
  if (dow.has(7)) {
    dow.delete(7);
    dow.add(0);
  }
  return {
    kind: 'cron',
    fields: {
      minute: field(parts[0], 0, 59, undefined, 'minute'),
      hour: field(parts[1], 0, 23, undefined, 'hour'),
      dom: field(parts[2], 1, 31, undefined, 'day of month'),
      month: field(parts[3], 1, 12, MONTHS, 'month'),
      dow,
      domStar: parts[2] === '*' || parts[2] === '?',
      dowStar: parts[4] === '*' || parts[4] === '?',
    },
  };
}

function field(text: string, min: number, max: number, names: string[] | undefined, what: string): Set<number> {
  const out = new Set<number>();
  const num = (s: string): number => {
    const i = names?.indexOf(s.toLowerCase()) ?? -1;
    if (i >= 0) return i + (names === MONTHS ? 1 : 0);
    if (!/^\d+$/.test(s)) throw new ScheduleError(`${what}: ${JSON.stringify(s)} is not a number`);
    const n = Number(s);
    if (n < min || n > max) throw new ScheduleError(`${what}: ${n} is out of range ${min}-${max}`);
    return n;
  };
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1 || (stepText !== undefined && !/^\d+$/.test(stepText))) throw new ScheduleError(`${what}: bad step in ${JSON.stringify(part)}`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') {
      lo = min;
      hi = max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-');
      lo = num(a);
      hi = num(b);
      if (lo > hi) throw new ScheduleError(`${what}: range ${JSON.stringify(range)} goes backwards`);
    } else {
      lo = num(range);
      // `5/15` means from 5 to the end by 15, as in cron
      hi = stepText === undefined ? lo : max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Go's time.ParseDuration for the units a schedule needs (h, m, s, ms), or undefined. */
export function parseGoDuration(s: string): number | undefined {
  if (!/^(\d+(\.\d+)?(h|m|s|ms))+$/.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) ms += Number(m[1]) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[m[2] as 'h' | 'm' | 's' | 'ms'];
  return Math.round(ms);
}

/** The first time (ms since epoch, UTC) strictly after `after` that the schedule fires; undefined if never (Feb 30). */
export function nextRun(s: Schedule, after: number): number | undefined {
  if (s.kind === 'every') return after + s.ms;
  const f = s.fields;
  const d = new Date(Math.floor(after / 60_000) * 60_000 + 60_000);
  // a schedule that never fires (only impossible days) is given up after 5 years of candidate days
  const limit = after + 5 * 366 * 86_400_000;
  while (d.getTime() <= limit) {
    if (!f.month.has(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    const domOk = f.dom.has(d.getUTCDate());
    const dowOk = f.dow.has(d.getUTCDay());
    const dayOk = f.domStar && f.dowStar ? true : f.domStar ? dowOk : f.dowStar ? domOk : domOk || dowOk;
    if (!dayOk) {
      d.setUTCDate(d.getUTCDate() + 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!f.hour.has(d.getUTCHours())) {
      d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    if (!f.minute.has(d.getUTCMinutes())) {
      d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
      continue;
    }
    return d.getTime();
  }
  return undefined;
}

/** The last time at or before `now` (and after `after`) the schedule fired, or undefined (a missed run, if any). */
export function lastRunBetween(s: Schedule, after: number, now: number): number | undefined {
  if (s.kind === 'every') {
    if (now < after + s.ms) return undefined;
    return after + Math.floor((now - after) / s.ms) * s.ms;
  }
  let last: number | undefined;
  // bounded: a schedule missed for long (an operator down for days) counts only its latest run, as CronJobs do
  for (let t = nextRun(s, after), i = 0; t !== undefined && t <= now && i < 100_000; t = nextRun(s, t), i++) last = t;
  return last;
}
