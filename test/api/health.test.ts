/** /health's check as etcd 3.4's checkHealth makes it: a leader, then a read that a quorum answers within a second. */
import { HEALTH_READ_TIMEOUT_MS, isHealthy } from '../../server/api/admin';
import { NONE } from '../../server/raft';

/** A server whose quorum read ends as `read` says (or never: undefined), counting the reads asked for. */
function fakeServer(lead: string, read: 'ok' | 'fails' | undefined) {
  const s = {
    lead,
    reads: 0,
    linearizableRead(): Promise<void> {
      s.reads++;
      if (read === 'ok') return Promise.resolve();
      if (read === 'fails') return Promise.reject(new Error('etcdserver: request timed out'));
      return new Promise<void>(() => undefined);
    },
  };
  return s;
}

describe('the /health check', () => {
  afterEach(() => jest.useRealTimers());

  test('healthy when a leader is known and a quorum read succeeds', async () => {
    const s = fakeServer('a1', 'ok');
    await expect(isHealthy(s)).resolves.toBe(true);
    expect(s.reads).toBe(1);
  });

  test('unhealthy without a leader, and no read is tried', async () => {
    const s = fakeServer(NONE, 'ok');
    await expect(isHealthy(s)).resolves.toBe(false);
    expect(s.reads).toBe(0);
  });

  test('unhealthy when the quorum read fails', async () => {
    await expect(isHealthy(fakeServer('a1', 'fails'))).resolves.toBe(false);
  });

  test('a leader known but no quorum answering: unhealthy after exactly the 1 s etcd waits', async () => {
    jest.useFakeTimers();
    let result: boolean | undefined;
    const p = isHealthy(fakeServer('a1', undefined)).then((r) => (result = r));
    await jest.advanceTimersByTimeAsync(HEALTH_READ_TIMEOUT_MS - 1);
    expect(result).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1);
    await p;
    expect(result).toBe(false);
    expect(HEALTH_READ_TIMEOUT_MS).toBe(1000);
  });
});
