/**
 * The v2 keys API side by side: the same requests go to Debian's real etcd (--enable-v2) and to ours, and the
 * answers must match: status, JSON body field for field (in the same order), and the X-Etcd-Index header.
 * Index values are compared relative to each server's index after the first write (the real etcd's v2 store
 * already holds its membership, so its indexes start higher); expiration times are compared as present/absent.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Answer, request } from '../support/http';
import { TestCluster, eventually } from '../support/cluster';
import { RunningEtcd, freePort, spawnRealEtcd, startOurEtcd, startRealEtcd } from '../support/real-etcd';

interface Step {
  method: string;
  path: string;
  form?: string;
  body?: string;
  headers?: Record<string, string>;
  /** The path's bytes go on the request line as they are, not %-escaped: its UTF-8, or one byte a character. */
  raw?: 'utf8' | 'latin1';
}

const put = (p: string, form?: string): Step => ({ method: 'PUT', path: p, form });
const get = (p: string): Step => ({ method: 'GET', path: p });
const del = (p: string): Step => ({ method: 'DELETE', path: p });
const post = (p: string, form?: string): Step => ({ method: 'POST', path: p, form });

/** The answer with index values made relative to `base` and times made comparable. */
function normalise(a: Answer, base: number): { status: number; etcdIndex: string | undefined; body: unknown; contentType: string | undefined } {
  const rel = (n: number): string => (n === 0 ? "0" : `i${n - base}`);
  let body: unknown = a.body;
  try {
    body = JSON.parse(a.body, function (key, value: unknown) {
      if ((key === 'modifiedIndex' || key === 'createdIndex' || key === 'index') && typeof value === 'number') return rel(value);
      if (key === 'expiration' && typeof value === 'string') return Number.isNaN(Date.parse(value)) ? value : 'EXPIRATION';
      if (key === 'key' && typeof value === 'string') return value.replace(/\d{20}/g, (d) => rel(Number(d)));
      if (key === 'cause' && typeof value === 'string') {
        return value
          .replace(/\d{20}/g, (d) => String(rel(Number(d))))
          .replace(/\[(\d+) != (\d+)\]/g, (_, want: string, have: string) => `[${want} != ${rel(Number(have))}]`)
          .replace(/\[(\d+)\/(\d+)\]$/, (_, start: string, asked: string) => `[${rel(Number(start))}/${rel(Number(asked))}]`);
      }
      return value;
    });
  } catch {
    // Not JSON: compared as text.
  }
  const xi = a.headers['x-etcd-index'];
  return {
    status: a.status,
    etcdIndex: typeof xi === 'string' ? rel(Number(xi)) : undefined,
    body,
    contentType: a.headers['content-type'],
  };
}

/** Sends a step; `@N` in its path stands for the index N writes after the server's first one. */
async function send(url: string, s: Step, agent: http.Agent, base: number): Promise<Answer> {
  const p = s.path.replace(/@(\d+)/g, (_, n: string) => String(base + Number(n)));
  if (s.raw) return rawRequest(url, s.method, s.raw === 'utf8' ? Buffer.from(p, 'utf8').toString('latin1') : p, s.form, agent);
  return request(url, s.method, p, { form: s.form, body: s.body, headers: s.headers, agent });
}

/** A request whose target is written byte for byte (node:http writes a path's characters up to U+00FF as bytes). */
function rawRequest(url: string, method: string, latin1Path: string, form: string | undefined, agent: http.Agent): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = form === undefined ? {} : { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(Buffer.byteLength(form)) };
    const req = http.request({ host: u.hostname, port: u.port, method, path: latin1Path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${latin1Path}: no answer`)));
    req.on('error', reject);
    req.end(form);
  });
}

describe('v2 keys API, side by side with the real etcd', () => {
  let dir: string;
  let real: RunningEtcd;
  let ours: RunningEtcd;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const base = { real: 0, ours: 0 };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'v2-side-by-side-'));
    [real, ours] = await Promise.all([startRealEtcd(path.join(dir, 'real')), startOurEtcd(path.join(dir, 'ours'))]);
    // The reference point for indexes: each server's index after one write.
    for (const [name, srv] of [['real', real], ['ours', ours]] as const) {
      const a = await request(srv.clientURL, 'PUT', '/v2/keys/_origin', { form: 'value=x', agent });
      base[name] = Number(a.headers['x-etcd-index']);
    }
  });

  afterAll(async () => {
    agent.destroy();
    await Promise.all([real?.stop(), ours?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function both(s: Step): Promise<[ReturnType<typeof normalise>, ReturnType<typeof normalise>]> {
    const r = await send(real.clientURL, s, agent, base.real);
    const o = await send(ours.clientURL, s, agent, base.ours);
    return [normalise(r, base.real), normalise(o, base.ours)];
  }

  async function expectSame(steps: Step[]): Promise<void> {
    for (const s of steps) {
      const [r, o] = await both(s);
      expect({ step: `${s.method} ${s.path} ${s.form ?? ''}`, ...o }).toEqual({ step: `${s.method} ${s.path} ${s.form ?? ''}`, ...r });
    }
  }

  test("the README's examples: set, get, delete, TTL, not found", async () => {
    await expectSame([
      put('/v2/keys/message', 'value=Hello'),
      get('/v2/keys/message'),
      put('/v2/keys/message', 'value=Hello%20again'),
      del('/v2/keys/message'),
      get('/v2/keys/message'),
      put('/v2/keys/foo?ttl=20', 'value=bar'),
      get('/v2/keys/foo'),
      get('/v2/keys/nothing/here'),
    ]);
  });

  test('values from the query string and from the form body; the form wins', async () => {
    await expectSame([
      put('/v2/keys/q?value=fromquery'),
      get('/v2/keys/q'),
      put('/v2/keys/q?value=fromquery', 'value=fromform'),
      get('/v2/keys/q'),
      put('/v2/keys/q', 'value=a%26b%3Dc&unknown=1'),
      get('/v2/keys/q'),
      put('/v2/keys/empty', 'value='),
      put('/v2/keys/novalue'),
      get('/v2/keys/novalue'),
    ]);
  });

  test('directories: create, list, recursive, sorted, delete', async () => {
    await expectSame([
      put('/v2/keys/dir', 'dir=true'),
      put('/v2/keys/dir', 'dir=true'),
      put('/v2/keys/dir/b', 'value=2'),
      put('/v2/keys/dir/a', 'value=1'),
      put('/v2/keys/dir/sub/c', 'value=3'),
      get('/v2/keys/dir?sorted=true'),
      get('/v2/keys/dir?recursive=true&sorted=true'),
      get('/v2/keys/dir/a/b'),
      put('/v2/keys/dir/a/b', 'value=x'),
      put('/v2/keys/dir', 'value=not-a-dir'),
      del('/v2/keys/dir'),
      del('/v2/keys/dir?dir=true'),
      del('/v2/keys/dir/sub?dir=true'),
      del('/v2/keys/dir/sub?recursive=true'),
      del('/v2/keys/dir/a?dir=true'),
      put('/v2/keys/emptydir?dir=true'),
      del('/v2/keys/emptydir?dir=true'),
      del('/v2/keys/dir?recursive=true'),
      get('/v2/keys/dir'),
      get('/v2/keys/?sorted=true'),
      del('/v2/keys/?recursive=true'),
      put('/v2/keys/', 'value=root'),
    ]);
  });

  test('the root listing and hidden keys', async () => {
    await expectSame([
      put('/v2/keys/hid/_hidden', 'value=h'),
      put('/v2/keys/hid/shown', 'value=s'),
      put('/v2/keys/hid/_hdir/x', 'value=y'),
      get('/v2/keys/hid?sorted=true'),
      get('/v2/keys/hid?recursive=true&sorted=true'),
      get('/v2/keys/hid/_hidden'),
      del('/v2/keys/hid?recursive=true'),
    ]);
  });

  test('in-order keys with POST', async () => {
    await expectSame([
      post('/v2/keys/queue', 'value=Job1'),
      post('/v2/keys/queue', 'value=Job2'),
      post('/v2/keys/queue?ttl=30', 'value=Job3'),
      get('/v2/keys/queue?recursive=true&sorted=true'),
      put('/v2/keys/plain', 'value=v'),
      post('/v2/keys/plain', 'value=x'),
      del('/v2/keys/queue?recursive=true'),
    ]);
  });

  test('compare-and-swap and compare-and-delete', async () => {
    await expectSame([
      put('/v2/keys/cas', 'value=one'),
      put('/v2/keys/cas?prevExist=false', 'value=two'),
      put('/v2/keys/cas-new?prevExist=false', 'value=new'),
      put('/v2/keys/cas?prevExist=true', 'value=three'),
      put('/v2/keys/missing?prevExist=true', 'value=x'),
      put('/v2/keys/cas?prevValue=wrong', 'value=four'),
      put('/v2/keys/cas?prevValue=three', 'value=four'),
      put('/v2/keys/cas?prevIndex=1', 'value=five'),
      get('/v2/keys/cas'),
      put('/v2/keys/cas?prevIndex=0', 'value=six'),
      put('/v2/keys/cas?prevValue=four&prevIndex=1', 'value=seven'),
      put('/v2/keys/cas?prevValue=', 'value=eight'),
      put('/v2/keys/cas?prevExist=maybe', 'value=x'),
      put('/v2/keys/cas?prevIndex=abc', 'value=x'),
      put('/v2/keys/cas?prevIndex=-3', 'value=x'),
      put('/v2/keys/missing?prevValue=a', 'value=x'),
      del('/v2/keys/cas?prevValue=wrong'),
      del('/v2/keys/cas?prevIndex=1'),
      del('/v2/keys/missing?prevValue=a'),
      del('/v2/keys/cas?prevValue=four'),
      put('/v2/keys/casdir?dir=true'),
      put('/v2/keys/casdir?prevValue=x', 'value=y'),
      del('/v2/keys/casdir?prevValue=x'),
      put('/v2/keys/cas-new?prevExist=true&prevValue=new', 'value=newer'),
      put('/v2/keys/cas-new?prevExist=false&prevValue=new', 'value=newer'),
    ]);
  });

  test('TTLs: set, refresh, remove, directory TTL, bad values', async () => {
    await expectSame([
      put('/v2/keys/ttl?ttl=100', 'value=v'),
      put('/v2/keys/ttl?ttl=200&refresh=true'),
      get('/v2/keys/ttl'),
      put('/v2/keys/ttl?ttl=200&refresh=true', 'value=other'),
      put('/v2/keys/ttl', 'value=v&ttl='),
      get('/v2/keys/ttl'),
      put('/v2/keys/nottl?refresh=true&ttl=5'),
      put('/v2/keys/ttl2', 'value=a'),
      put('/v2/keys/ttl2?refresh=true&ttl=5'),
      put('/v2/keys/ttl2?refresh=true'),
      put('/v2/keys/ttl?ttl=abc', 'value=v'),
      put('/v2/keys/ttl?ttl=-1', 'value=v'),
      put('/v2/keys/ttl?ttl=1.5', 'value=v'),
      put('/v2/keys/ttldir?dir=true&ttl=100'),
      put('/v2/keys/ttldir/child', 'value=c'),
      get('/v2/keys/ttldir?recursive=true'),
      put('/v2/keys/ttldir?dir=true&ttl=300&prevExist=true'),
      get('/v2/keys/ttldir'),
      del('/v2/keys/ttldir?recursive=true'),
      // Gone before it expires: each server would expire it on its own clock, a moment apart, and the indexes of
      // the later tests would differ for that moment.
      del('/v2/keys/ttl2'),
    ]);
  });

  test('bad requests: reserved and malformed paths, bad flags, bad methods', async () => {
    await expectSame([
      get('/v2/keys/foo?recursive=maybe'),
      get('/v2/keys/foo?sorted=yes'),
      get('/v2/keys/foo?wait=1x'),
      get('/v2/keys/foo?waitIndex=abc'),
      get('/v2/keys/foo?wait=true&waitIndex=-1'),
      put('/v2/keys/foo?dir=maybe', 'value=x'),
      put('/v2/keys/foo?refresh=1x', 'value=x'),
      put('/v2/keys/foo?noValueOnSuccess=1x', 'value=x'),
      put('/v2/keys/foo?quorum=1x', 'value=x'),
      put('/v2/keys/foo?noValueOnSuccess=true', 'value=quiet'),
      put('/v2/keys/foo?dir=true', 'value=x'),
      put('/v2/keys/foo', 'dir=true&value=x'),
      put('/v2/keys/%ZZ', 'value=x'),
      put('/v2/keys/a%2Fb', 'value=x'),
      get('/v2/keys/a/b'),
      put('/v2/keys//double//slash/', 'value=x'),
      get('/v2/keys/double/slash'),
      { method: 'PATCH', path: '/v2/keys/foo' },
      { method: 'OPTIONS', path: '/v2/keys/foo' },
      { method: 'PUT', path: '/v2/keys/json', body: '{"value":"x"}', headers: { 'Content-Type': 'application/json' } },
      get('/v2/keys/json'),
      { method: 'PUT', path: '/v2/keys/badform', body: 'value=%zz', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
    ]);
  });

  test('form encodings: plus signs, UTF-8, semicolons, repeated fields, a body too large', async () => {
    await expectSame([
      put('/v2/keys/enc', 'value=a+b%2Bc'),
      put('/v2/keys/enc', 'value=%C3%A9t%C3%A9%20%E2%9C%93'),
      put('/v2/keys/%C3%A9t%C3%A9', 'value=x'),
      get('/v2/keys/%C3%A9t%C3%A9'),
      put('/v2/keys/enc', 'value=first&value=second'),
      put('/v2/keys/enc?value=q;x=1', 'value=b'),
      put('/v2/keys/enc', 'value=b;x=1'),
      { method: 'PUT', path: '/v2/keys/big', body: 'value=' + 'x'.repeat(10 * 1024 * 1024 + 10), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
      get('/v2/keys/big'),
    ]);
  });

  test('a key with a TTL expires: watchers see the expire event, the key is gone', async () => {
    const [r0, o0] = await both(put('/v2/keys/exp?ttl=1', 'value=soon'));
    expect(o0).toEqual(r0);
    // From the index after the set: the expiry is seen even if it came before the watch did.
    const next = { real: Number(r0.etcdIndex!.slice(1)) + base.real + 1, ours: Number(o0.etcdIndex!.slice(1)) + base.ours + 1 };
    const watches = await Promise.all([
      request(real.clientURL, 'GET', `/v2/keys/exp?wait=true&waitIndex=${next.real}`, { timeoutMs: 10000 }),
      request(ours.clientURL, 'GET', `/v2/keys/exp?wait=true&waitIndex=${next.ours}`, { timeoutMs: 10000 }),
    ]);
    expect(normalise(watches[1], base.ours)).toEqual(normalise(watches[0], base.real));
    expect(JSON.parse(watches[1].body)).toMatchObject({ action: 'expire', prevNode: { key: '/exp', value: 'soon' } });
    await expectSame([get('/v2/keys/exp')]);
  });

  test('quorum reads and HEAD', async () => {
    await expectSame([
      put('/v2/keys/qr', 'value=1'),
      get('/v2/keys/qr?quorum=true'),
      get('/v2/keys/qr-missing?quorum=true'),
      { method: 'HEAD', path: '/v2/keys/qr' },
      { method: 'HEAD', path: '/v2/keys/qr-missing' },
    ]);
  });

  test('watches: a past index answers from the history, a future one waits for the change', async () => {
    const [r0, o0] = await both(put('/v2/keys/w/a', 'value=1'));
    expect(o0).toEqual(r0);
    // A wait from the index of that write answers at once, from the history.
    const idx = { real: Number(r0.etcdIndex!.slice(1)) + base.real, ours: Number(o0.etcdIndex!.slice(1)) + base.ours };
    const past = await Promise.all([
      request(real.clientURL, 'GET', `/v2/keys/w/a?wait=true&waitIndex=${idx.real}`),
      request(ours.clientURL, 'GET', `/v2/keys/w/a?wait=true&waitIndex=${idx.ours}`),
    ]);
    expect(normalise(past[1], base.ours)).toEqual(normalise(past[0], base.real));
    for (const recursive of [false, true]) {
      const q = recursive ? '/v2/keys/w?wait=true&recursive=true' : '/v2/keys/w/a?wait=true';
      const waits = [request(real.clientURL, 'GET', q), request(ours.clientURL, 'GET', q)];
      // The watchers are registered once the servers have sent their headers; a write on both then wakes them.
      await Promise.all([waitForWatchers(real.clientURL, 1), waitForWatchers(ours.clientURL, 1)]);
      await both(put('/v2/keys/w/a', `value=${recursive ? 'r' : 'n'}`));
      const got = await Promise.all(waits);
      expect(normalise(got[1], base.ours)).toEqual(normalise(got[0], base.real));
    }
  });

  test('the event history keeps the last 1000 events: an older waitIndex is error 401', async () => {
    for (const srv of [real, ours]) {
      const writes = [];
      for (let i = 0; i < 1010; i++) writes.push(request(srv.clientURL, 'PUT', `/v2/keys/hist/${i % 50}`, { form: `value=${i}`, agent }));
      await Promise.all(writes);
    }
    await expectSame([get('/v2/keys/hist/1?wait=true&waitIndex=@5'), get('/v2/keys/hist?wait=true&recursive=true&waitIndex=@5')]);
  });

  test("a DELETE's form body is ignored (Go reads form bodies only for POST, PUT and PATCH)", async () => {
    await expectSame([
      put('/v2/keys/delbody', 'value=1'),
      { method: 'DELETE', path: '/v2/keys/delbody', form: 'prevValue=wrong' },
      get('/v2/keys/delbody'),
      put('/v2/keys/delbody-dir/k', 'value=1'),
      { method: 'DELETE', path: '/v2/keys/delbody-dir', form: 'recursive=true' },
      { method: 'DELETE', path: '/v2/keys/delbody-dir?recursive=true', form: 'recursive=false&prevIndex=1' },
      get('/v2/keys/delbody-dir'),
    ]);
  });

  test('a flag given without a value is a bad request, not false', async () => {
    await expectSame([
      put('/v2/keys/flags/k', 'value=1'),
      get('/v2/keys/flags?recursive'),
      get('/v2/keys/flags?sorted'),
      get('/v2/keys/flags/k?wait'),
      get('/v2/keys/flags/k?quorum'),
      get('/v2/keys/flags/k?stream'),
      get('/v2/keys/flags?recursive=&sorted=true'),
      get('/v2/keys/flags/k?wait=true&waitIndex'),
      put('/v2/keys/flags/d?dir'),
      get('/v2/keys/flags/d'),
      put('/v2/keys/flags/d', 'dir'),
      put('/v2/keys/flags/k?prevIndex', 'value=2'),
      put('/v2/keys/flags/k', 'value=2&noValueOnSuccess'),
      put('/v2/keys/flags/k?prevExist', 'value=2'),
      put('/v2/keys/flags/k?refresh&ttl=5'),
      put('/v2/keys/flags/k?ttl&value&unknown', 'value=3'),
      get('/v2/keys/flags/k'),
      del('/v2/keys/flags?recursive'),
      del('/v2/keys/flags/k?dir'),
      get('/v2/keys/flags?recursive=true&sorted=true'),
      del('/v2/keys/flags?recursive=true'),
    ]);
  });

  test('raw UTF-8 bytes in the target (not %-escaped) name the same key as the escaped form', async () => {
    await expectSame([
      { method: 'PUT', path: '/v2/keys/raw/日本', form: 'value=1', raw: 'utf8' },
      { method: 'GET', path: '/v2/keys/raw/日本', raw: 'utf8' },
      get('/v2/keys/raw/%E6%97%A5%E6%9C%AC'),
      { method: 'PUT', path: '/v2/keys/raw/é?value=é&ttl=100', raw: 'utf8' },
      { method: 'GET', path: '/v2/keys/raw?recursive=true&sorted=true', raw: 'utf8' },
      { method: 'PUT', path: '/v2/keys/raw/\xff\xfe', form: 'value=invalid', raw: 'latin1' },
      { method: 'GET', path: '/v2/keys/raw/\xff\xfe', raw: 'latin1' },
      { method: 'PUT', path: '/v2/keys/raw/%zz/日', form: 'value=x', raw: 'utf8' },
      { method: 'DELETE', path: '/v2/keys/raw/日本', raw: 'utf8' },
      { method: 'DELETE', path: '/v2/keys/raw?recursive=true', raw: 'utf8' },
      get('/v2/keys/raw'),
    ]);
  });

  test('sorted listings are in UTF-8 byte order (code points past U+FFFF after U+FB00)', async () => {
    const names = ['z', 'a', 'é', '\ufb00', '😀', '\ue000', '\uffee', '日本', 'Z', '𝄞x', '\u00ff', 'ab', 'a b'];
    await expectSame([
      ...names.map((n) => put(`/v2/keys/sortu/${encodeURIComponent(n)}`, 'value=1')),
      put('/v2/keys/sortu/\ufb00d/😀', 'value=2'),
      put('/v2/keys/sortu/\ufb00d/\ufb00', 'value=3'),
      get('/v2/keys/sortu?sorted=true'),
      get('/v2/keys/sortu?sorted=true&recursive=true'),
      del('/v2/keys/sortu?recursive=true'),
    ]);
  });

  test('a 1,990-level key (the deepest a 4 KB request line takes): PUT, recursive GET and recursive DELETE answer as etcd', async () => {
    const deep = `/v2/keys/deep${'/a'.repeat(1990)}`;
    // Compared as text with indexes made relative: JSON this deep is past what JSON.parse and jest's equality take.
    const text = (a: Answer, b: number) => ({ status: a.status, body: a.body.replace(/"(modifiedIndex|createdIndex)":(\d+)/g, (_, k: string, n: string) => `"${k}":i${Number(n) - b}`) });
    for (const s of [put(deep, 'value=bottom'), get('/v2/keys/deep?recursive=true&sorted=true'), del('/v2/keys/deep?recursive=true'), get(deep)]) {
      const r = text(await send(real.clientURL, s, agent, base.real), base.real);
      const o = text(await send(ours.clientURL, s, agent, base.ours), base.ours);
      expect([s.method, r.status]).toEqual([s.method, s.method === 'PUT' ? 201 : s.path.includes('?recursive') ? 200 : 404]);
      const where = [...o.body].findIndex((ch, i) => ch !== r.body[i]);
      expect({ step: `${s.method} ${s.path.slice(0, 40)}`, status: o.status, length: o.body.length, firstDifference: where === -1 && o.body.length === r.body.length ? undefined : o.body.slice(Math.max(0, where - 40), where + 40) }).toEqual({
        step: `${s.method} ${s.path.slice(0, 40)}`,
        status: r.status,
        length: r.body.length,
        firstDifference: undefined,
      });
    }
  });

  test('/v2/members: unknown paths, HEAD, missing and malformed IDs, as etcd answers them', async () => {
    const json = { 'Content-Type': 'application/json' };
    const body = JSON.stringify({ peerURLs: ['http://127.0.0.1:1'] });
    const cases: [string, string, string?][] = [
      ['GET', '/v2/members/abc'], ['GET', '/v2/members/leader/'], ['GET', '/v2/members/abc/def'], ['GET', '/v2/members/'],
      ['HEAD', '/v2/members'], ['HEAD', '/v2/members/leader'], ['HEAD', '/v2/members/abc'], ['PATCH', '/v2/members/abc'],
      ['DELETE', '/v2/members'], ['DELETE', '/v2/members/'], ['PUT', '/v2/members', body], ['PUT', '/v2/members/', body],
      ['DELETE', '/v2/members/ABC'], ['DELETE', '/v2/members/00000000000000000001'], ['DELETE', '/v2/members/0x1'],
      ['DELETE', '/v2/members/10000000000000000'], ['DELETE', '/v2/members/abc/def'], ['DELETE', '/v2/members/%41'],
      ['PUT', '/v2/members/ABC', body], ['PUT', '/v2/members/zz', body],
      ['HEAD', '/health'], ['HEAD', '/version'], ['HEAD', '/v2/stats/self'], ['HEAD', '/v2/stats/store'], ['HEAD', '/v2/machines'],
    ];
    for (const [method, p, b] of cases) {
      const o = b === undefined ? { agent } : { body: b, headers: json, agent };
      const [r, ours_] = await Promise.all([request(real.clientURL, method, p, o), request(ours.clientURL, method, p, o)]);
      const seen = (a: Answer, m: RunningEtcd) => ({
        step: `${method} ${p}`,
        status: a.status,
        allow: a.headers.allow,
        contentType: a.headers['content-type'],
        contentLength: a.headers['content-length'],
        clusterId: typeof a.headers['x-etcd-cluster-id'],
        body: a.body.split(m.clientURL).join('CLIENT').split(m.peerURL).join('PEER').replace(/"id":"[0-9a-f]+"/g, '"id":"ID"'),
      });
      const [rs, os_] = [seen(r, real), seen(ours_, ours)];
      // A member list's length depends on each server's URLs and ID: the rest must match.
      if (method === 'GET' && p === '/v2/members/') rs.contentLength = os_.contentLength = undefined;
      expect(os_).toEqual(rs);
    }
  });

  async function waitForWatchers(url: string, n: number): Promise<void> {
    const deadline = Date.now() + 10000;
    for (;;) {
      const a = await request(url, 'GET', '/v2/stats/store');
      if ((JSON.parse(a.body) as { watchers: number }).watchers >= n) return;
      if (Date.now() > deadline) throw new Error(`no watcher registered on ${url}`);
      await new Promise((r) => setTimeout(r, 10)); // poll the server's own watcher count
    }
  }
});

/** Three members of Debian's etcd, timed as TestCluster times ours. */
async function startRealCluster(root: string): Promise<RunningEtcd[]> {
  const slots = await Promise.all(['r0', 'r1', 'r2'].map(async (name) => ({ name, client: await freePort(), peer: await freePort() })));
  const initial = slots.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const started = await Promise.allSettled(slots.map((m) => {
    const where = { clientURL: `http://127.0.0.1:${m.client}`, peerURL: `http://127.0.0.1:${m.peer}`, dataDir: path.join(root, m.name) };
    return spawnRealEtcd([
      '--name', m.name, '--data-dir', where.dataDir, '--enable-v2=true',
      '--listen-client-urls', where.clientURL, '--advertise-client-urls', where.clientURL,
      '--listen-peer-urls', where.peerURL, '--initial-advertise-peer-urls', where.peerURL,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'health-side-by-side',
      '--heartbeat-interval', '50', '--election-timeout', '500',
    ], where);
  }));
  const up = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(up.map((m) => m.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return up;
}

/** Debian's etcdctl cluster-health against these endpoints: its verdict (last line) and exit code. */
function clusterHealth(endpoints: string[]): Promise<{ verdict: string; code: number | null }> {
  return new Promise((resolve) => {
    const p = spawn('/usr/bin/etcdctl', ['--endpoints', endpoints.join(','), 'cluster-health'], { env: { ...process.env, ETCDCTL_API: '2' } });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.on('exit', (code) => resolve({ verdict: out.trim().split('\n').pop() ?? '', code }));
  });
}

describe('/health needs a quorum, side by side with a cluster of the real etcd', () => {
  let root: string;
  let ourCluster: TestCluster;
  let realMembers: RunningEtcd[];

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'health-side-by-side-'));
    const [o, r] = await Promise.allSettled([TestCluster.start(3), startRealCluster(root)]);
    if (o.status === 'fulfilled') ourCluster = o.value;
    if (r.status === 'fulfilled') realMembers = r.value;
    if (o.status === 'rejected') throw o.reason;
    if (r.status === 'rejected') throw r.reason;
  }, 60000);

  afterAll(async () => {
    await Promise.all([ourCluster?.stop(), ...(realMembers ?? []).map((m) => m.stop())]);
    rmSync(root, { recursive: true, force: true });
  });

  const health = async (url: string) => {
    const a = await request(url, 'GET', '/health', { timeoutMs: 10000 });
    return { status: a.status, body: a.body, contentType: a.headers['content-type'], nosniff: a.headers['x-content-type-options'] };
  };

  /** The member that leads, as the members themselves say. */
  const realLeader = () =>
    eventually('a leader among the real members', async () => {
      for (const m of realMembers) {
        const self = JSON.parse((await request(m.clientURL, 'GET', '/v2/stats/self')).body) as { state: string };
        if (self.state === 'StateLeader') return m;
      }
      return undefined;
    });

  test('all three up: every member is healthy; two of three killed: the one left is not, as etcd says', async () => {
    const ours = ourCluster.members.map((m) => m.clientURL);
    const reals = realMembers.map((m) => m.clientURL);
    const expected = await health(reals[0]);
    expect(expected).toEqual({ status: 200, body: '{"health":"true"}', contentType: 'text/plain; charset=utf-8', nosniff: undefined });
    for (const url of [...ours, ...reals]) expect(await health(url)).toEqual(expected);
    expect(await clusterHealth(ours)).toEqual(await clusterHealth(reals));

    // Kill the two followers: the leader that is left knows it leads for a while, but no quorum answers it.
    const ourLeader = await ourCluster.waitForLeader();
    const theirLeader = await realLeader();
    await Promise.all([
      ...ourCluster.members.filter((m) => m !== ourLeader).map((m) => ourCluster.kill(m)),
      ...realMembers.filter((m) => m !== theirLeader).map((m) => m.stop()),
    ]);
    const [r, o] = await Promise.all([health(theirLeader.clientURL), health(ourLeader.clientURL)]);
    expect(r).toEqual({ status: 503, body: '{"health":"false"}\n', contentType: 'text/plain; charset=utf-8', nosniff: 'nosniff' });
    expect(o).toEqual(r);
    // Still so once the election timeout has passed (the leader has stepped down, or still waits for a quorum).
    const [r2, o2] = await Promise.all([health(theirLeader.clientURL), health(ourLeader.clientURL)]);
    expect(o2).toEqual(r2);
    const verdicts = await Promise.all([clusterHealth(ours), clusterHealth(reals)]);
    expect(verdicts[0]).toEqual(verdicts[1]);
    expect(verdicts[0]).toEqual({ verdict: 'cluster is unavailable', code: 5 });
  }, 60000);
});
