import { Method, RequestIdGenerator, WriteRequest, decodeRequest, encodeRequest } from '../../server/etcdserver/request';

const base: WriteRequest = {
  id: 123456789,
  method: Method.PUT,
  path: '/message',
  value: 'Hello',
  dir: false,
  prevValue: '',
  prevIndex: 0,
  expiration: 0,
  refresh: false,
  recursive: false,
  time: 0,
};

describe('the log encoding of v2 writes', () => {
  test.each([
    ['a plain set', base],
    ['a directory with TTL', { ...base, dir: true, value: '', expiration: 1764048000123 }],
    ['compare-and-swap', { ...base, prevValue: 'old', prevIndex: 42, prevExist: true }],
    ['create only', { ...base, method: Method.POST, prevExist: false }],
    ['a recursive delete', { ...base, method: Method.DELETE, recursive: true, dir: true }],
    ['a refresh', { ...base, refresh: true, value: '', expiration: 1 }],
    ['SYNC', { ...base, method: Method.SYNC, path: '', value: '', time: 1764048000000 }],
    ['unicode and empty strings', { ...base, path: '/ключ/键/🔑', value: '' }],
  ] as [string, WriteRequest][])('%s survives a round trip', (_name, r) => {
    expect(decodeRequest(encodeRequest(r))).toEqual(r);
  });

  test('a large value', () => {
    const r = { ...base, value: 'x'.repeat(1024 * 1024) };
    expect(decodeRequest(encodeRequest(r)).value.length).toBe(1024 * 1024);
  });

  test('corrupt data is a clear error, not garbage', () => {
    expect(() => decodeRequest(Buffer.alloc(10))).toThrow(/too short/);
    const bad = encodeRequest(base);
    bad.writeUInt8(99, 0);
    expect(() => decodeRequest(bad)).toThrow(/unknown method 99/);
    const cut = encodeRequest(base).subarray(0, 50);
    expect(() => decodeRequest(cut)).toThrow(/runs past/);
  });

  test('request IDs are unique, and differ between members and restarts', () => {
    const a = new RequestIdGenerator('8e9e05c52164694d', 1_700_000_000_000);
    const ids = new Set(Array.from({ length: 1000 }, () => a.id()));
    expect(ids.size).toBe(1000);
    const b = new RequestIdGenerator('8e9e05c52164694e', 1_700_000_000_000);
    const c = new RequestIdGenerator('8e9e05c52164694d', 1_700_000_005_000);
    expect(ids.has(b.id())).toBe(false);
    expect(ids.has(c.id())).toBe(false);
    expect(Number.isSafeInteger(a.id())).toBe(true);
  });
});
