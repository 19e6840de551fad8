/** The backup planner, table-driven: an EtcdBackup's observed state → its next status and actions. */
import { jobName, planBackup, type AgentResult, type BackupObserved, type JobView } from '../../operator/backup-planner';
import type { EtcdBackupSpec, EtcdBackupStatus } from '../../operator/api/types';

const T0 = Date.parse('2024-03-10T10:00:00Z');
const s = (sec: number): number => T0 + sec * 1000;
const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');
const EPS = ['http://db-1.db.ns.svc:2379', 'http://db-0.db.ns.svc:2379'];
const spec = (o: Partial<EtcdBackupSpec> = {}): EtcdBackupSpec => ({ clusterName: 'db', storage: { persistentVolumeClaim: { claimName: 'b' } }, ...o });
const ok = (file: string, o: Partial<Extract<AgentResult, { ok: true }>> = {}): AgentResult => ({
  ok: true,
  file,
  member: 'db-1',
  endpoint: EPS[0],
  time: iso(s(61)),
  size: 20512,
  sha256: 'ab'.repeat(32),
  revision: 52,
  kept: [file],
  ...o,
});
function observe(o: Partial<BackupObserved> & { status?: EtcdBackupStatus } = {}): BackupObserved {
  return { spec: spec(), status: {}, createdAt: T0, now: s(60), jobs: [], cluster: { exists: true, available: true, endpoints: EPS }, ...o };
}
const job = (name: string, sec: number, state: JobView['state'], result?: AgentResult, failure?: string): JobView => ({ name, scheduledTime: s(sec), state, result, failure, finishedAt: state === 'active' ? undefined : s(sec + 2) });

describe('one-off backups', () => {
  test('cluster available → one Job now, from the given members in order', () => {
    const p = planBackup('once', observe());
    expect(p.createJob).toEqual({ name: `once-${s(60) / 1000}`, scheduledTime: s(60), endpoints: EPS });
    expect(p.status).toMatchObject({ phase: 'Running', active: [`once-${s(60) / 1000}`], lastScheduleTime: iso(s(60)) });
    expect(p.events.map((e) => e.reason)).toEqual(['BackupStarted']);
  });
  test.each([
    ['the cluster has no quorum', { exists: true, available: false, endpoints: EPS }, 'Pending', /waiting for EtcdCluster db to be available/],
    ['no ready member to ask', { exists: true, available: true, endpoints: [] }, 'Pending', /waiting/],
    ['the cluster does not exist', { exists: false, available: false, endpoints: [] }, 'Pending', /EtcdCluster db not found/],
  ])('%s → no Job, looked at again soon', (_n, cluster, phase, msg) => {
    const p = planBackup('once', observe({ cluster }));
    expect(p.createJob).toBeUndefined();
    expect(p.status.phase).toBe(phase);
    expect(p.status.message).toMatch(msg);
    expect(p.requeueAfterMs).toBeGreaterThan(0);
  });
  test('a Job of ours exists but the status did not say so (a lost write) → no second Job', () => {
    const p = planBackup('once', observe({ jobs: [job('once-1', 30, 'active')] }));
    expect(p.createJob).toBeUndefined();
    expect(p.status).toMatchObject({ phase: 'Running', active: ['once-1'], lastScheduleTime: iso(s(30)) });
  });
  test('its Job succeeded → the snapshot recorded (time, revision, size, SHA-256, member), Succeeded, an event; counted once', () => {
    const status: EtcdBackupStatus = { lastScheduleTime: iso(s(30)) };
    const o = observe({ status, jobs: [job('once-1', 30, 'succeeded', ok('once-a.db'))] });
    const p = planBackup('once', o);
    expect(p.status.lastBackup).toEqual({ file: 'once-a.db', time: iso(s(61)), revision: 52, size: 20512, sha256: 'ab'.repeat(32), member: 'db-1', job: 'once-1' });
    expect(p.status).toMatchObject({ phase: 'Succeeded', succeeded: 1, lastSuccessfulTime: iso(s(61)), backups: [{ file: 'once-a.db', revision: 52 }] });
    expect(p.events.map((e) => e.reason)).toEqual(['BackupSucceeded']);
    expect(p.succeeded.map((r) => r.job)).toEqual(['once-1']);
    const again = planBackup('once', { ...o, status: p.status });
    expect([again.events, again.succeeded, again.createJob, again.status.succeeded]).toEqual([[], [], undefined, 1]);
  });
  test.each([
    ['with its report', ok('x') && ({ ok: false, error: 'no member gave a snapshot: …' } as AgentResult), undefined, 'no member gave a snapshot: …'],
    ['killed at its deadline, no report', undefined, 'DeadlineExceeded: Job was active longer than specified deadline', 'DeadlineExceeded: Job was active longer than specified deadline'],
  ])('its Job failed %s → Failed, the reason kept', (_n, result, failure, why) => {
    const p = planBackup('once', observe({ status: { lastScheduleTime: iso(s(30)) }, jobs: [job('once-1', 30, 'failed', result, failure)] }));
    expect(p.status).toMatchObject({ phase: 'Failed', failed: 1, lastFailure: { job: 'once-1', message: why, time: iso(s(32)) } });
    expect(p.events).toEqual([{ type: 'Warning', reason: 'BackupFailed', message: `backup once-1 failed: ${why}` }]);
  });
});

describe('scheduled backups', () => {
  const every10 = spec({ schedule: '@every 10s', retention: 2 });
  test('not due yet → Scheduled, the next run said, looked at again when it comes', () => {
    const p = planBackup('b', observe({ spec: every10, now: s(7) }));
    expect(p.createJob).toBeUndefined();
    expect(p.status).toMatchObject({ phase: 'Scheduled', nextScheduleTime: iso(s(10)) });
    expect(p.requeueAfterMs).toBe(3000 + 50);
  });
  test('due → a Job named for its due time; the next one said', () => {
    const p = planBackup('b', observe({ spec: every10, now: s(10.5) }));
    expect(p.createJob).toEqual({ name: `b-${s(10) / 1000}`, scheduledTime: s(10), endpoints: EPS });
    expect(p.status).toMatchObject({ phase: 'Running', lastScheduleTime: iso(s(10)), nextScheduleTime: iso(s(20)) });
  });
  test('missed runs (the operator was down) → one Job, for the latest', () => {
    const p = planBackup('b', observe({ spec: every10, now: s(75), status: { lastScheduleTime: iso(s(10)) } }));
    expect(p.createJob?.scheduledTime).toBe(s(70));
  });
  test('due while the last run is still going → skipped, with a warning; never two at once', () => {
    const p = planBackup('b', observe({ spec: every10, now: s(20), status: { lastScheduleTime: iso(s(10)) }, jobs: [job('b-10', 10, 'active')] }));
    expect(p.createJob).toBeUndefined();
    expect(p.events.map((e) => e.reason)).toEqual(['BackupSkipped']);
    expect(p.status).toMatchObject({ phase: 'Running', lastScheduleTime: iso(s(20)), nextScheduleTime: iso(s(30)) });
  });
  test('due while the cluster has no quorum → skipped, with a warning', () => {
    const p = planBackup('b', observe({ spec: every10, now: s(20), status: { lastScheduleTime: iso(s(10)) }, cluster: { exists: true, available: false, endpoints: EPS } }));
    expect(p.createJob).toBeUndefined();
    expect(p.events[0]).toMatchObject({ type: 'Warning', reason: 'BackupSkipped', message: expect.stringMatching(/not available/) });
  });
  test('suspended → no runs', () => {
    const p = planBackup('b', observe({ spec: { ...every10, suspend: true }, now: s(95) }));
    expect(p.createJob).toBeUndefined();
    expect(p.status.phase).toBe('Suspended');
  });
  test('cron: daily at 02:00 UTC', () => {
    const p = planBackup('b', observe({ spec: spec({ schedule: '0 2 * * *' }), now: s(60) }));
    expect(p.status.nextScheduleTime).toBe('2024-03-11T02:00:00Z');
  });
  test.each([
    ['a schedule that does not parse', spec({ schedule: '61 * * * *' }), /spec.schedule: minute: 61 is out of range/],
    ['a retention of 0', spec({ retention: 0 }), /spec.retention must be at least 1/],
  ])('%s → Failed, said why, nothing run', (_n, sp, why) => {
    const p = planBackup('b', observe({ spec: sp }));
    expect(p.createJob).toBeUndefined();
    expect(p.status.phase).toBe('Failed');
    expect(p.status.message).toMatch(why);
  });
  test('finished runs are counted in the order they were due; the kept list is what the last one left on the claim', () => {
    const status: EtcdBackupStatus = { lastScheduleTime: iso(s(30)), backups: [{ file: 'b-0.db', revision: 40, sha256: 'aa' }] };
    const jobs = [
      job('b-30', 30, 'succeeded', ok('b-30.db', { revision: 60, kept: ['b-20.db', 'b-30.db'] })),
      job('b-10', 10, 'succeeded', ok('b-10.db', { revision: 50, kept: ['b-0.db', 'b-10.db'] })),
      job('b-20', 20, 'failed', undefined, 'BackoffLimitExceeded: Job has reached the specified backoff limit'),
    ];
    const p = planBackup('b', observe({ spec: every10, now: s(35), status, jobs }));
    expect(p.succeeded.map((r) => r.job)).toEqual(['b-10', 'b-30']);
    expect(p.failed).toEqual(['b-20']);
    expect(p.events.map((e) => e.reason)).toEqual(['BackupSucceeded', 'BackupFailed', 'BackupSucceeded']);
    expect(p.status).toMatchObject({ succeeded: 2, failed: 1, lastFinishedScheduleTime: iso(s(30)), lastBackup: { file: 'b-30.db', revision: 60 } });
    // b-20.db is on the claim but was never seen: listed by name; b-0.db was pruned
    expect(p.status.backups).toEqual([{ file: 'b-20.db' }, { file: 'b-30.db', time: iso(s(61)), revision: 60, size: 20512, sha256: 'ab'.repeat(32), member: 'db-1' }]);
  });
  test('old Jobs go once counted: the last 3 successful and the last failed one stay', () => {
    const jobs = [10, 20, 30, 40, 50].map((t) => job(`b-${t}`, t, 'succeeded', ok(`b-${t}.db`))).concat([job('b-15', 15, 'failed'), job('b-25', 25, 'failed'), job('b-60', 60, 'active')]);
    const p = planBackup('b', observe({ spec: every10, now: s(65), status: { lastScheduleTime: iso(s(60)), lastFinishedScheduleTime: iso(s(50)) }, jobs }));
    expect(p.deleteJobs.sort()).toEqual(['b-10', 'b-15', 'b-20']);
    // a Job counted only now stays until a written status says so (were the write lost, it would be counted again)
    const q = planBackup('b', observe({ spec: every10, now: s(65), status: { lastScheduleTime: iso(s(60)), lastFinishedScheduleTime: iso(s(5)) }, jobs }));
    expect(q.succeeded).toHaveLength(5);
    expect(q.deleteJobs).toEqual([]);
  });
});

test('Job names fit in a label value (63 characters), the due time kept', () => {
  expect(jobName('nightly', s(0))).toBe(`nightly-${s(0) / 1000}`);
  const long = jobName('a'.repeat(80), s(0));
  expect(long.length).toBeLessThanOrEqual(63);
  expect(long.endsWith(`-${s(0) / 1000}`)).toBe(true);
});
