/** EtcdBackup schedules: cron's five fields (UTC) and @every, table-driven. */
import { lastRunBetween, nextRun, parseSchedule, ScheduleError } from '../../operator/cron';

const t = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString().replace('.000Z', 'Z'));

describe('next run after a time', () => {
  test.each([
    ['* * * * *', '2024-03-10T10:15:30Z', '2024-03-10T10:16:00Z'],
    ['* * * * *', '2024-03-10T10:15:00Z', '2024-03-10T10:16:00Z'],
    ['*/15 * * * *', '2024-03-10T10:15:00Z', '2024-03-10T10:30:00Z'],
    ['*/15 * * * *', '2024-03-10T10:50:00Z', '2024-03-10T11:00:00Z'],
    ['5/20 * * * *', '2024-03-10T10:06:00Z', '2024-03-10T10:25:00Z'],
    ['0 2 * * *', '2024-03-10T10:00:00Z', '2024-03-11T02:00:00Z'],
    ['30 1,13 * * *', '2024-03-10T10:00:00Z', '2024-03-10T13:30:00Z'],
    ['0 9-17/4 * * *', '2024-03-10T13:00:00Z', '2024-03-10T17:00:00Z'],
    ['0 0 1 * *', '2024-01-31T12:00:00Z', '2024-02-01T00:00:00Z'],
    ['0 0 29 2 *', '2024-03-01T00:00:00Z', '2028-02-29T00:00:00Z'],
    ['0 0 31 * *', '2024-04-01T00:00:00Z', '2024-05-31T00:00:00Z'],
    ['0 12 * * mon', '2024-03-10T10:00:00Z', '2024-03-11T12:00:00Z'], // 2024-03-10 is a Sunday
    ['0 12 * * 7', '2024-03-10T10:00:00Z', '2024-03-10T12:00:00Z'], // 7 is Sunday too
    ['0 12 * * sat,sun', '2024-03-11T10:00:00Z', '2024-03-16T12:00:00Z'],
    ['0 0 * jun *', '2024-03-10T10:00:00Z', '2024-06-01T00:00:00Z'],
    ['0 0 13 * fri', '2024-03-10T10:00:00Z', '2024-03-13T00:00:00Z'], // either the 13th or a Friday (cron's rule)
    ['0 0 13 * fri', '2024-03-13T10:00:00Z', '2024-03-15T00:00:00Z'],
    ['@hourly', '2024-03-10T10:15:00Z', '2024-03-10T11:00:00Z'],
    ['@daily', '2024-12-31T10:15:00Z', '2025-01-01T00:00:00Z'],
    ['@weekly', '2024-03-10T00:00:00Z', '2024-03-17T00:00:00Z'],
    ['@every 30s', '2024-03-10T10:15:10Z', '2024-03-10T10:15:40Z'],
    ['@every 1h30m', '2024-03-10T10:15:00Z', '2024-03-10T11:45:00Z'],
  ])('%s after %s → %s', (expr, after, want) => {
    expect(iso(nextRun(parseSchedule(expr), t(after)))).toBe(want);
  });

  test('a day that never comes: no next run', () => {
    expect(nextRun(parseSchedule('0 0 30 2 *'), t('2024-01-01T00:00:00Z'))).toBeUndefined();
  });
});

describe('the run that is due', () => {
  test.each([
    ['*/10 * * * *', '2024-03-10T10:00:00Z', '2024-03-10T10:05:00Z', undefined],
    ['*/10 * * * *', '2024-03-10T10:00:00Z', '2024-03-10T10:10:00Z', '2024-03-10T10:10:00Z'],
    // missed runs count as one: the latest
    ['*/10 * * * *', '2024-03-10T10:00:00Z', '2024-03-10T13:07:00Z', '2024-03-10T13:00:00Z'],
    ['@every 5s', '2024-03-10T10:00:00Z', '2024-03-10T10:00:04Z', undefined],
    ['@every 5s', '2024-03-10T10:00:00Z', '2024-03-10T10:00:17Z', '2024-03-10T10:00:15Z'],
  ])('%s since %s, at %s → %s', (expr, since, now, want) => {
    expect(iso(lastRunBetween(parseSchedule(expr), t(since), t(now)))).toBe(want);
  });
});

describe('what is refused, and why', () => {
  test.each([
    ['* * * *', /5 fields/],
    ['* * * * * *', /5 fields/],
    ['60 * * * *', /minute: 60 is out of range 0-59/],
    ['* 24 * * *', /hour: 24 is out of range/],
    ['* * 0 * *', /day of month: 0 is out of range 1-31/],
    ['* * * 13 *', /month: 13 is out of range 1-12/],
    ['* * * * 8', /day of week: 8 is out of range 0-7/],
    ['*/0 * * * *', /bad step/],
    ['5-1 * * * *', /goes backwards/],
    ['0 0 * * sat-sun', /goes backwards/], // Sunday is 0 (or 7): sat-sun is written 6-7
    ['x * * * *', /not a number/],
    ['@often', /unknown schedule macro/],
    ['@every 10', /@every wants a duration/],
    ['@every 100ms', /@every wants a duration of at least 1s/],
  ])('%j', (expr, why) => {
    expect(() => parseSchedule(expr)).toThrow(ScheduleError);
    expect(() => parseSchedule(expr)).toThrow(why);
  });
});
