/** The test API server's CEL subset (test/support/kube/cel.ts): CEL's semantics where the CRD rules rely on them. */
import { compile, CelError } from '../support/kube/cel';

const run = (rule: string, self: unknown, oldSelf?: unknown): unknown => compile(rule).eval({ self, oldSelf });

test('equality is deep over maps and lists; order of keys does not matter, of list items does', () => {
  expect(run('self == oldSelf', { a: { b: [1, 2] }, c: 'x' }, { c: 'x', a: { b: [1, 2] } })).toBe(true);
  expect(run('self == oldSelf', { a: { b: [1, 2] } }, { a: { b: [2, 1] } })).toBe(false);
  expect(run('self == oldSelf', { a: 1 }, { a: 1, b: null })).toBe(false);
  expect(run('self != oldSelf', 'x', 'y')).toBe(true);
});

test('has() tests presence; selecting an absent field is an error, which && and || absorb as CEL does', () => {
  expect(run('has(self.tls) == has(oldSelf.tls)', { tls: {} }, {})).toBe(false);
  expect(run('has(self.tls) == has(oldSelf.tls)', {}, {})).toBe(true);
  expect(() => run('self.tls == oldSelf.tls', {}, {})).toThrow(CelError);
  expect(run('!has(self.tls) || self.tls.clientSecret == "c"', {})).toBe(true);
  expect(run('self.tls.clientSecret == "c" || !has(self.tls)', {})).toBe(true); // commutative over the error
  expect(run('self.tls.clientSecret == "c" && false', {})).toBe(false);
  expect(() => run('self.tls.clientSecret == "c" && true', {})).toThrow(/no such key: tls/);
});

test('the usual neighbours: size, in, comparison, arithmetic, ?:, literals, index', () => {
  expect(run("size(self.name) <= 10 && self.name.size() > 0 && 'b' in self.tags && self['n'] + 1 == 4", { name: 'abc', tags: ['a', 'b'], n: 3 })).toBe(true);
  expect(run('self.n > 2 ? "big" : "small"', { n: 1 })).toBe('small');
  expect(run("self == 'it\\'s'", "it's")).toBe(true);
  expect(run('self.items[1] == -2 && self.ok == true && self.none == null', { items: [1, -2], ok: true, none: null })).toBe(true);
  expect(() => run('self.n < "1"', { n: 1 })).toThrow(/no such overload/);
});

test('anything outside the subset fails to compile (a rule it cannot run fails the CRD install, never passes)', () => {
  for (const rule of ['self.all(x, x > 0)', 'self.matches("^a")', 'int(self) > 1', 'self.startsWith("a")', 'self ==', 'transitionRule(self)']) {
    expect([rule, (() => { try { compile(rule); return 'compiled'; } catch (e) { return e instanceof CelError ? 'refused' : String(e); } })()]).toEqual([rule, 'refused']);
  }
  expect(compile('self == oldSelf').usesOldSelf).toBe(true);
  expect(compile('has(self.a)').usesOldSelf).toBe(false);
});
