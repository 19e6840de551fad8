import { posix } from 'node:path';
import { KeyRequestError, goExpiration, parseForm, parseKeyRequest } from '../../server/api/v2/key-request';

function parse(method: string, url: string, body?: string) {
  const u = new URL(url, 'http://localhost');
  return parseKeyRequest(method, decodeURIComponent(u.pathname), parseForm(u.search.slice(1), body));
}

function errorOf(method: string, url: string, body?: string): [number, string] {
  try {
    parse(method, url, body);
  } catch (err) {
    if (err instanceof KeyRequestError) return [err.errorCode, err.cause_];
    throw err;
  }
  throw new Error('expected a KeyRequestError');
}

describe('v2 keys request parsing (etcd 3.4 parseKeyRequest)', () => {
  test('a PUT with a form body', () => {
    const r = parse('PUT', '/v2/keys/message', 'value=Hello');
    expect(r).toMatchObject({ method: 'PUT', key: '/message', value: 'Hello', dir: false, prevExist: undefined, ttl: undefined });
  });

  test('query parameters work as well as the body, and the body wins', () => {
    expect(parse('PUT', '/v2/keys/a?value=fromquery').value).toBe('fromquery');
    expect(parse('PUT', '/v2/keys/a?value=fromquery', 'value=frombody').value).toBe('frombody');
  });

  test('keys are cleaned as etcd cleans them', () => {
    expect(parse('GET', '/v2/keys/').key).toBe('/');
    expect(parse('GET', '/v2/keys').key).toBe('/');
    expect(parse('GET', '/v2/keys/a/b/').key).toBe('/a/b');
    expect(parse('GET', '/v2/keys/a//b/../c').key).toBe('/a/c');
    expect(parse('GET', '/v2/keys/sp%20ace').key).toBe('/sp ace');
  });

  test.each(['/a', '/a/b/c', '/a/', '/a/.', '/a/..', '/./a', '/.hidden/x', '/a.b/c..d', '/a//', '//a', '/', '', 'x', '/a/./b/'])(
    'the key of /v2/keys%s is path.join\'s (without a trailing slash)',
    (rest) => {
      const joined = posix.join('/', rest);
      expect(parse('GET', `/v2/keys${rest}`).key).toBe(joined.length > 1 && joined.endsWith('/') ? joined.slice(0, -1) : joined);
    },
  );

  test('booleans and numbers as Go parses them', () => {
    const r = parse('GET', '/v2/keys/d?recursive=T&sorted=1&quorum=True&wait=true&waitIndex=17&stream=0');
    expect(r).toMatchObject({ recursive: true, sorted: true, quorum: true, wait: true, waitIndex: 17, stream: false });
    const w = parse('PUT', '/v2/keys/k?prevExist=false&prevIndex=3&prevValue=x', 'value=v&ttl=20');
    expect(w).toMatchObject({ prevExist: false, prevIndex: 3, prevValue: 'x', ttl: 20n });
  });

  test('fields with no value that etcd accepts: an empty ttl or value, an unknown field', () => {
    expect(parse('PUT', '/v2/keys/k?ttl&value&other', 'x')).toMatchObject({ ttl: undefined, value: '', recursive: false, dir: false });
  });

  test('a refresh carries a TTL and no value', () => {
    expect(parse('PUT', '/v2/keys/k', 'ttl=5&refresh=true')).toMatchObject({ refresh: true, ttl: 5n, value: '' });
  });

  test.each([
    ['GET', '/v2/keys/a?prevIndex=x', undefined, 203, 'invalid value for "prevIndex"'],
    ['GET', '/v2/keys/a?prevIndex=-1', undefined, 203, 'invalid value for "prevIndex"'],
    ['GET', '/v2/keys/a?waitIndex=1.5', undefined, 203, 'invalid value for "waitIndex"'],
    ['GET', '/v2/keys/a?recursive=yes', undefined, 209, 'invalid value for "recursive"'],
    ['GET', '/v2/keys/a?sorted=2', undefined, 209, 'invalid value for "sorted"'],
    ['GET', '/v2/keys/a?wait=maybe', undefined, 209, 'invalid value for "wait"'],
    ['PUT', '/v2/keys/a?dir=nope', undefined, 209, 'invalid value for "dir"'],
    ['GET', '/v2/keys/a?quorum=x', undefined, 209, 'invalid value for "quorum"'],
    ['GET', '/v2/keys/a?stream=x', undefined, 209, 'invalid value for "stream"'],
    ['PUT', '/v2/keys/a?wait=true', undefined, 209, '"wait" can only be used with GET requests'],
    ['PUT', '/v2/keys/a?prevValue=', 'value=v', 201, '"prevValue" cannot be empty'],
    ['PUT', '/v2/keys/a?noValueOnSuccess=x', 'value=v', 209, 'invalid value for "noValueOnSuccess"'],
    ['PUT', '/v2/keys/a', 'value=v&ttl=abc', 202, 'invalid value for "ttl"'],
    ['PUT', '/v2/keys/a', 'value=v&ttl=-5', 202, 'invalid value for "ttl"'],
    ['PUT', '/v2/keys/a?prevExist=perhaps', 'value=v', 209, 'invalid value for prevExist'],
    ['PUT', '/v2/keys/a?refresh=x', 'ttl=5', 209, 'invalid value for refresh'],
    ['PUT', '/v2/keys/a?refresh=true', 'ttl=5&value=v', 211, 'A value was provided on a refresh'],
    ['PUT', '/v2/keys/a?refresh=true', '', 212, 'No TTL value set'],
    ['GET', '/v3/keys/a', undefined, 210, 'incorrect key prefix'],
    // A field given without a value is present, and "" parses as neither a bool nor a number (etcd's getBool and
    // getUint64), in the query or in the body.
    ['GET', '/v2/keys/a?recursive', undefined, 209, 'invalid value for "recursive"'],
    ['GET', '/v2/keys/a?sorted', undefined, 209, 'invalid value for "sorted"'],
    ['GET', '/v2/keys/a?wait', undefined, 209, 'invalid value for "wait"'],
    ['GET', '/v2/keys/a?quorum=', undefined, 209, 'invalid value for "quorum"'],
    ['GET', '/v2/keys/a?stream', undefined, 209, 'invalid value for "stream"'],
    ['PUT', '/v2/keys/a?dir', undefined, 209, 'invalid value for "dir"'],
    ['DELETE', '/v2/keys/a?recursive', undefined, 209, 'invalid value for "recursive"'],
    ['PUT', '/v2/keys/a', 'value=v&noValueOnSuccess', 209, 'invalid value for "noValueOnSuccess"'],
    ['PUT', '/v2/keys/a?prevIndex', 'value=v', 203, 'invalid value for "prevIndex"'],
    ['GET', '/v2/keys/a?waitIndex=', undefined, 203, 'invalid value for "waitIndex"'],
    ['PUT', '/v2/keys/a?prevExist', 'value=v', 209, 'invalid value for prevExist'],
    ['PUT', '/v2/keys/a?refresh', 'ttl=5', 209, 'invalid value for refresh'],
    // The checks come in etcd's order: the indexes, then the flags.
    ['GET', '/v2/keys/a?recursive&waitIndex', undefined, 203, 'invalid value for "waitIndex"'],
  ])('%s %s %s → %i %s', (method, url, body, code, cause) => {
    expect(errorOf(method, url, body)).toEqual([code, cause]);
  });
});

describe("TTLs and indexes beyond 2^53, in etcd's arithmetic", () => {
  test.each([
    // etcd 3.4 answers (Debian's etcd): now + time.Duration(ttl)*time.Second in int64 nanoseconds, wrapping.
    ['20', 20_000],
    ['9007199254740991', Number(BigInt.asIntN(64, 9007199254740991n * 1_000_000_000n) / 1_000_000n)],
    ['18446744073709551615', -1000],
  ])('ttl=%s expires at now + %i ms', (ttl, deltaMs) => {
    const now = Date.UTC(2026, 10, 28);
    expect(goExpiration(now, BigInt(ttl)) - now).toBe(deltaMs);
  });

  test('a TTL as large as a uint64 is accepted, one past it is not', () => {
    expect(parse('PUT', '/v2/keys/k', 'value=v&ttl=18446744073709551615').ttl).toBe(18446744073709551615n);
    expect(() => parse('PUT', '/v2/keys/k', 'value=v&ttl=18446744073709551616')).toThrow('invalid value for "ttl"');
  });

  test('a prevIndex or waitIndex above 2^53 is a number too (it matches no entry), not an error', () => {
    expect(parse('PUT', '/v2/keys/k?prevIndex=18446744073709551615', 'value=v').prevIndex).toBeGreaterThan(2 ** 53);
    expect(parse("GET", "/v2/keys/k?wait=true&waitIndex=9007199254740993").waitIndex).toBeGreaterThanOrEqual(2 ** 53);
  });
});
