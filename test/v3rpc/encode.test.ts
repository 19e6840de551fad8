/**
 * The shared writer behind every v3 message the server encodes: each encoding is exactly the message's own bytes,
 * whatever was encoded before it (a larger message, a message whose encoding threw half-way).
 */
import { encodeMessage, encodeToBuffer } from '../../server/api/v3rpc/service';
import { PutRequest, RangeResponse } from '../../server/api/v3rpc/pb/etcdserverpb/rpc';

const put = (key: string, value: Buffer, lease = 0n) => PutRequest.fromPartial({ key: Buffer.from(key), value, lease });

test('an encoding is the message alone, after larger messages and after one that threw half-way', () => {
  const small = put('k', Buffer.from('v'));
  const alone = PutRequest.encode(small).finish();
  expect(Buffer.from(encodeMessage(PutRequest, put('big', Buffer.alloc(5000, 7))))).toHaveLength(PutRequest.encode(put('big', Buffer.alloc(5000, 7))).finish().length);
  expect(Buffer.from(encodeMessage(PutRequest, small))).toEqual(Buffer.from(alone));
  // The key and value are written before the out-of-range lease throws: nothing of them may leak into the next.
  expect(() => encodeMessage(PutRequest, put('half', Buffer.alloc(300, 1), 1n << 70n))).toThrow(/too large/);
  expect(Buffer.from(encodeMessage(PutRequest, small))).toEqual(Buffer.from(alone));
  expect(PutRequest.decode(encodeMessage(PutRequest, small))).toEqual(small);
});

test('the bytes handed out are not overwritten by the next encoding', () => {
  const a = encodeToBuffer(PutRequest, put('a', Buffer.alloc(100, 1)));
  const copy = Buffer.from(a);
  encodeToBuffer(PutRequest, put('b', Buffer.alloc(100, 2)));
  expect(a).toEqual(copy);
  // A message beyond the shared writer's limit (64 KiB) is encoded whole, and the next small one still alone.
  const big = RangeResponse.fromPartial({ kvs: [{ key: Buffer.from('x'), value: Buffer.alloc(100_000, 3) }] });
  expect(RangeResponse.decode(encodeToBuffer(RangeResponse, big)).kvs[0].value.length).toBe(100_000);
  expect(PutRequest.decode(encodeToBuffer(PutRequest, put('c', Buffer.from('d')))).key.toString()).toBe('c');
});
