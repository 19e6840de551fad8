/** The request line rewrite that lets raw UTF-8 in a target through Node's parser (see server/pkg/raw-target.ts). */
import { escapeTarget } from '../../server/pkg/raw-target';

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('escapeTarget', () => {
  test("escapes the target's bytes past ASCII, and only those: not the method, the version, headers or body", () => {
    const req = Buffer.concat([bytes('PUT /v2/keys/'), Buffer.from('日本?v=é', 'utf8'), bytes(' HTTP/1.1\r\nX-A: \xe9\r\n\r\nvalue=\xe9')]);
    expect(escapeTarget(req)?.toString('latin1')).toBe('PUT /v2/keys/%E6%97%A5%E6%9C%AC?v=%C3%A9 HTTP/1.1\r\nX-A: \xe9\r\n\r\nvalue=\xe9');
  });

  test('bytes that are no UTF-8 are escaped as they are', () => {
    expect(escapeTarget(bytes('GET /v2/keys/\xff%41 HTTP/1.1\n\n'))?.toString('latin1')).toBe('GET /v2/keys/%FF%41 HTTP/1.1\n\n');
  });

  test.each([
    ['nothing to escape', 'GET /v2/keys/a HTTP/1.1\r\n\r\n'],
    ['no whole request line yet', 'GET /v2/keys/\xe9'],
    ['not at the start of a request (the tail of a body before it)', 'x=1GET /v2/keys/\xe9 HTTP/1.1\r\n\r\n'],
    ['no version', 'GET /v2/keys/\xe9\r\n\r\n'],
  ])('leaves alone a chunk with %s', (_what, chunk) => {
    expect(escapeTarget(bytes(chunk))).toBeUndefined();
  });
});
