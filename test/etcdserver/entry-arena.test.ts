import { allocEntryData } from '../../server/etcdserver/entry-arena';
import { Method, WriteRequest, decodeRequest, encodeRequest } from '../../server/etcdserver/request';

describe('the arena of v2 log entries', () => {
  test('entries share slabs without overlapping: each keeps what was written into it', () => {
    const sizes = Array.from({ length: 2000 }, (_, i) => 1 + ((i * 37) % 300));
    const bufs = sizes.map((n, i) => {
      const b = allocEntryData(n);
      b.fill(i & 0xff);
      return b;
    });
    bufs.forEach((b, i) => {
      expect(b.length).toBe(sizes[i]);
      expect(b.every((x) => x === (i & 0xff))).toBe(true);
      // Aligned as an entry's own buffer would be.
      expect(b.byteOffset % 8).toBe(0);
    });
    // Small entries are carved from a few large buffers, not one allocation each.
    expect(new Set(bufs.map((b) => b.buffer)).size).toBeLessThan(20);
  });

  test('a large entry gets a buffer of its own', () => {
    const big = allocEntryData(100 * 1024);
    expect(big.length).toBe(100 * 1024);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(100 * 1024);
  });

  test('v2 writes encoded into the arena decode to what was written, the headroom left free', () => {
    const reqs: WriteRequest[] = Array.from({ length: 1000 }, (_, i) => ({
      id: i + 1, method: Method.PUT, path: `/k/${i}`, value: 'v'.repeat(i % 150), dir: false, prevValue: '',
      prevIndex: 0, expiration: 0, refresh: false, recursive: false, time: 0,
    }));
    const bufs = reqs.map((r) => encodeRequest(r, 11));
    bufs.forEach((b) => b.fill(0xee, 0, 11));
    bufs.forEach((b, i) => {
      expect(b.subarray(0, 11).every((x) => x === 0xee)).toBe(true);
      expect(decodeRequest(b.subarray(11))).toEqual(reqs[i]);
    });
  });
});
