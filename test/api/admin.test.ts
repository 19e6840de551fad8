/**
 * The endpoints around the keys API: /version, /health, /v2/members, /v2/machines, /v2/stats/*, and /metrics
 * (checked by Prometheus' own promtool). Shapes are compared with Debian's real etcd.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterId, memberId } from '../../server/membership/ids';
import { request } from '../support/http';
import { RunningEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

const PROMTOOL = '/usr/bin/promtool';

/** The keys of a JSON value, recursively, with the types of the leaves: what a client can rely on. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shape);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]));
  return typeof v;
}

/** A metric's value from the Prometheus text format (the first series of that name with these labels). */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name}{`)));
  if (!line) throw new Error(`no metric ${name}${labels} in:\n${text.slice(0, 2000)}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('admin endpoints', () => {
  let dir: string;
  let real: RunningEtcd;
  let ours: RunningEtcd;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'admin-'));
    [real, ours] = await Promise.all([startRealEtcd(path.join(dir, 'real')), startOurEtcd(path.join(dir, 'ours'))]);
  });
  afterAll(async () => {
    await Promise.all([real?.stop(), ours?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** What a client sees of an answer, with each server's own URLs and IDs made alike. */
  const comparable = (a: { status: number; headers: import('node:http').IncomingHttpHeaders; body: string }, m: RunningEtcd, id: string) => {
    const pick = ['allow', 'content-type', 'x-content-type-options', 'access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers'];
    const body = a.body.split(m.clientURL).join('CLIENT').split(m.peerURL).join('PEER').split(id).join('ID');
    return { status: a.status, headers: Object.fromEntries(pick.map((h) => [h, a.headers[h]])), body };
  };

  const noBody = '';
  test.each([
    ...[
      ['GET', '/health'], ['POST', '/health'], ['OPTIONS', '/health'], ['POST', '/version'], ['PUT', '/v2/stats/self'], ['DELETE', '/v2/stats/store'],
      ['POST', '/v2/stats/leader'], ['POST', '/v2/machines'], ['PATCH', '/v2/members'], ['OPTIONS', '/v2/members'], ['GET', '/v2/members'],
      ['GET', '/v2/members/leader'], ['POST', '/v2/members/leader'], ['GET', '/no/such/path'], ['PATCH', '/v2/keys/x'], ['OPTIONS', '/v2/keys/x'],
    ].map(([method, p]) => [method, p, noBody]),
    // Member adds refused before anything changes (a valid add would cost either server its quorum).
    ...['{"peerURLs":[]}', '{}', '{"peerURLs":null}', '{"peerURLs":"http://a:1"}', '{"peerURLs":[1]}', '{"peerURLs":["ftp://a:1"]}', '{"peerURLs":["http://a"]}', '{"peerURLs":["http://a:1/p"]}'].map(
      (body) => ['POST', '/v2/members', body],
    ),
  ])('%s %s %s: the same status, headers and body as etcd', async (method, p, body) => {
    const o2 = body === noBody ? {} : { body, headers: { 'Content-Type': 'application/json' } };
    const [r, o] = await Promise.all([request(real.clientURL, method, p, o2), request(ours.clientURL, method, p, o2)]);
    const [rid, oid] = await Promise.all([real, ours].map(async (m) => (JSON.parse((await request(m.clientURL, 'GET', '/v2/members')).body) as { members: { id: string }[] }).members[0].id));
    expect(comparable(o, ours, oid)).toEqual(comparable(r, real, rid));
  });

  test.each(['/version', '/health', '/v2/members', '/v2/stats/self', '/v2/stats/store', '/v2/members/leader'])('%s has the shape etcd gives it', async (p) => {
    const [r, o] = await Promise.all([request(real.clientURL, 'GET', p), request(ours.clientURL, 'GET', p)]);
    expect(o.status).toBe(r.status);
    expect(shape(JSON.parse(o.body))).toEqual(shape(JSON.parse(r.body)));
    expect(o.headers['content-type']).toBe(r.headers['content-type']);
  });

  test('the member list names this member with its advertised URLs', async () => {
    const a = await request(ours.clientURL, 'GET', '/v2/members');
    const { members } = JSON.parse(a.body) as { members: { id: string; name: string; peerURLs: string[]; clientURLs: string[] }[] };
    const id = memberId([ours.peerURL], 'etcd-cluster');
    expect(members).toEqual([{ id, name: 'default', peerURLs: [ours.peerURL], clientURLs: [ours.clientURL] }]);
    expect(a.headers['x-etcd-cluster-id']).toBe(clusterId([id]));
    expect((await request(ours.clientURL, 'GET', '/v2/machines')).body).toBe(ours.clientURL);
  });

  test('the store statistics count what clients did', async () => {
    const before = JSON.parse((await request(ours.clientURL, 'GET', '/v2/stats/store')).body) as Record<string, number>;
    await request(ours.clientURL, 'PUT', '/v2/keys/stats/a', { form: 'value=1' });
    await request(ours.clientURL, 'GET', '/v2/keys/stats/missing');
    await request(ours.clientURL, 'PUT', '/v2/keys/stats/a?prevValue=nope', { form: 'value=2' });
    const after = JSON.parse((await request(ours.clientURL, 'GET', '/v2/stats/store')).body) as Record<string, number>;
    expect(after.setsSuccess - before.setsSuccess).toBe(1);
    expect(after.getsFail - before.getsFail).toBe(1);
    expect(after.compareAndSwapFail - before.compareAndSwapFail).toBe(1);
  });

  test('/metrics passes promtool check metrics and uses etcd metric names', async () => {
    if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: apt-get install -y prometheus (as .ci/run does)`);
    const text = (await request(ours.clientURL, 'GET', '/metrics')).body;
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // No lint problem but those etcd's own names have (etcd_server_health_success is a counter without _total):
    // dashboards and alerts use etcd's names as they are.
    const lint = (r: { stdout: string; stderr: string }) => `${r.stdout}${r.stderr}`.split('\n').filter((l) => l !== '');
    const theirs = new Set(lint(spawnSync(PROMTOOL, ['check', 'metrics'], { input: (await request(real.clientURL, 'GET', '/metrics')).body, encoding: 'utf8' })));
    expect([0, 3]).toContain(check.status); // 3: lint problems only
    expect(lint(check).filter((p) => !theirs.has(p))).toEqual([]);
    for (const name of [
      'etcd_server_has_leader',
      'etcd_server_is_leader',
      'etcd_server_leader_changes_seen_total',
      'etcd_server_proposals_committed_total',
      'etcd_server_proposals_applied_total',
      'etcd_server_proposals_pending',
      'etcd_server_proposals_failed_total',
      'etcd_disk_wal_fsync_duration_seconds_bucket',
      'etcd_disk_backend_commit_duration_seconds_bucket',
      'etcd_debugging_store_watchers',
      'etcd_debugging_store_writes_total',
      'etcd_server_health_success',
      'etcd_server_health_failures',
      'process_resident_memory_bytes',
    ]) {
      expect(text).toContain(`\n${name}`);
    }
    expect(metric(text, 'etcd_server_has_leader')).toBe(1);
    expect(metric(text, 'etcd_server_is_leader')).toBe(1);
    expect(metric(text, 'etcd_server_leader_changes_seen_total')).toBe(1);
  });

  test('each /health check is counted, as etcd counts it', async () => {
    const read = async () => metric((await request(ours.clientURL, 'GET', '/metrics')).body, 'etcd_server_health_success');
    const before = await read();
    expect((await request(ours.clientURL, 'GET', '/health')).status).toBe(200);
    expect((await request(ours.clientURL, 'POST', '/health')).status).toBe(405); // refused before any check, not counted
    expect(await read()).toBe(before + 1);
    expect(metric((await request(ours.clientURL, 'GET', '/metrics')).body, 'etcd_server_health_failures')).toBe(0);
  });

  test('metrics move with the work: proposals, fsyncs, writes', async () => {
    const read = async () => (await request(ours.clientURL, 'GET', '/metrics')).body;
    const before = await read();
    for (let i = 0; i < 5; i++) await request(ours.clientURL, 'PUT', `/v2/keys/m/${i}`, { form: 'value=x' });
    const after = await read();
    for (const name of ['etcd_server_proposals_committed_total', 'etcd_server_proposals_applied_total', 'etcd_disk_wal_fsync_duration_seconds_count']) {
      expect(metric(after, name) - metric(before, name)).toBeGreaterThanOrEqual(5);
    }
    expect(metric(after, 'etcd_debugging_store_writes_total', '{action="set"}') - metric(before, 'etcd_debugging_store_writes_total', '{action="set"}')).toBe(5);
  });

  test('store metrics count as etcd does: reads by get/getRecursive, failures in *_total and *_failed_total, watch requests', async () => {
    const read = async () => (await request(ours.clientURL, 'GET', '/metrics')).body;
    const m = (text: string, name: string, labels = '') => (text.split('\n').some((l) => l.startsWith(`${name}${labels} `)) ? metric(text, name, labels) : 0);
    await request(ours.clientURL, 'PUT', '/v2/keys/sm/a', { form: 'value=1' });
    const before = await read();
    await request(ours.clientURL, 'GET', '/v2/keys/sm?recursive=true');
    await request(ours.clientURL, 'GET', '/v2/keys/sm/a');
    await request(ours.clientURL, 'GET', '/v2/keys/sm/missing');
    await request(ours.clientURL, 'PUT', '/v2/keys/sm/a?prevValue=wrong', { form: 'value=2' });
    await request(ours.clientURL, 'GET', '/v2/keys/sm/a?wait=true&waitIndex=1');
    const after = await read();
    const d = (name: string, labels: string) => m(after, name, labels) - m(before, name, labels);
    expect(d('etcd_debugging_store_reads_total', '{action="getRecursive"}')).toBe(1);
    expect(d('etcd_debugging_store_reads_total', '{action="get"}')).toBe(2);
    expect(d('etcd_debugging_store_reads_failed_total', '{action="get"}')).toBe(1);
    expect(d('etcd_debugging_store_writes_total', '{action="compareAndSwap"}')).toBe(1);
    expect(d('etcd_debugging_store_writes_failed_total', '{action="compareAndSwap"}')).toBe(1);
    expect(d('etcd_debugging_store_watch_requests_total', '')).toBe(1);
  });

  test('a members API request with a body that is not JSON gets a 400 with a JSON message, and the server stays up', async () => {
    const a = await request(ours.clientURL, 'POST', '/v2/members', { body: '{not json', headers: { 'Content-Type': 'application/json' } });
    expect(a.status).toBe(400);
    expect(a.headers['content-type']).toBe('application/json');
    expect(JSON.parse(a.body).message).toMatch(/^invalid JSON body/);
    expect((await request(ours.clientURL, 'GET', '/health')).status).toBe(200);
  });

  test('/health with an alarm raised: false, unless ?exclude= names it (once or repeated), as etcd answers', async () => {
    // The alarm raised through the JSON gateway (etcd's Maintenance.Alarm, ACTIVATE), on both servers.
    const alarm = async (m: RunningEtcd, action: 'ACTIVATE' | 'DEACTIVATE') => {
      const id = BigInt(`0x${(JSON.parse((await request(m.clientURL, 'GET', '/v2/members')).body) as { members: { id: string }[] }).members[0].id}`).toString();
      const r = await request(m.clientURL, 'POST', '/v3/maintenance/alarm', { body: JSON.stringify({ action, memberID: id, alarm: 'NOSPACE' }) });
      expect(r.status).toBe(200);
    };
    const paths = ['/health', '/health?exclude=NOSPACE', '/health?exclude=CORRUPT', '/health?exclude=CORRUPT&exclude=NOSPACE', '/health?exclude=nospace'];
    const answers = async (m: RunningEtcd) => Promise.all(paths.map(async (p) => {
      const a = await request(m.clientURL, 'GET', p);
      return { p, status: a.status, type: a.headers['content-type'], nosniff: a.headers['x-content-type-options'], body: a.body };
    }));
    await Promise.all([real, ours].map((m) => alarm(m, 'ACTIVATE')));
    try {
      const [r, o] = await Promise.all([answers(real), answers(ours)]);
      expect(o).toEqual(r);
      expect(o.map((a) => a.status)).toEqual([503, 200, 503, 200, 503]);
    } finally {
      await Promise.all([real, ours].map((m) => alarm(m, 'DEACTIVATE')));
    }
    expect((await request(ours.clientURL, 'GET', '/health')).body).toBe('{"health":"true"}');
  });

  test('unknown paths get a 404', async () => {
    const [r, o] = await Promise.all([request(real.clientURL, 'GET', '/nope'), request(ours.clientURL, 'GET', '/nope')]);
    expect({ status: o.status, body: o.body }).toEqual({ status: r.status, body: r.body });
  });
});
