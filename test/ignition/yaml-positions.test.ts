import { ConfigError, parseYaml, type MappingYNode, type ScalarYNode } from '../../ignition/yaml-positions';
import { expectErrorAt, transpileErrors, transpileValid } from './helpers';

function parseMapping(text: string): MappingYNode {
  const node = parseYaml(text);
  if (node?.kind !== 'mapping') throw new Error('expected a mapping');
  return node;
}

function scalar(text: string, key: string): ScalarYNode {
  const v = parseMapping(text).entries.find((e) => e.key === key)?.value;
  if (v?.kind !== 'scalar') throw new Error(`no scalar ${key}`);
  return v;
}

describe('YAML with positions', () => {
  test('keys and values carry 1-based line and column', () => {
    const root = parseMapping('a: 1\nb:\n  c: [x, "y"]\n');
    expect(root.pos).toEqual({ line: 1, column: 1 });
    const b = root.entries[1];
    expect(b.keyPos).toEqual({ line: 2, column: 1 });
    if (b.value.kind !== 'mapping') throw new Error('b');
    const c = b.value.entries[0];
    expect(c.keyPos).toEqual({ line: 3, column: 3 });
    if (c.value.kind !== 'sequence') throw new Error('c');
    expect(c.value.pos).toEqual({ line: 3, column: 6 });
    expect(c.value.items.map((i) => i.pos)).toEqual([
      { line: 3, column: 7 },
      { line: 3, column: 10 },
    ]);
  });

  test('block scalars point at their first content line; tags and anchors at themselves', () => {
    expect(scalar('a: |\n  hi\n', 'a')).toMatchObject({ value: 'hi\n', pos: { line: 2, column: 3 } });
    expect(scalar('a: !!str 12\n', 'a')).toMatchObject({ value: '12', pos: { line: 1, column: 4 } });
    expect(scalar('a: &x v\n', 'a')).toMatchObject({ value: 'v', pos: { line: 1, column: 4 } });
  });

  test('plain scalars resolve with the core schema and keep their text', () => {
    expect(scalar('a: 3.4\n', 'a')).toMatchObject({ value: 3.4, text: '3.4', plain: true });
    expect(scalar('a: "3.4"\n', 'a')).toMatchObject({ value: '3.4', plain: false });
    expect(scalar('a: true\n', 'a').value).toBe(true);
    expect(scalar('a: ~\n', 'a').value).toBeNull();
    expect(scalar('a:\n', 'a').value).toBeNull();
    expect(scalar('a: 0x1F\n', 'a').value).toBe(31);
    expect(scalar('a: yes\n', 'a').value).toBe('yes');
  });

  test('aliases resolve to the anchored node', () => {
    const root = parseMapping('a: &k [1]\nb: *k\n');
    expect(root.entries[1].value).toBe(root.entries[0].value);
  });

  test('an empty document is null, and transpiles to an empty config', () => {
    expect(parseYaml('')).toBeNull();
    expect(parseYaml('# only a comment\n')).toBeNull();
    expect(transpileValid('').config).toEqual({ ignition: { version: '3.3.0' } });
  });

  test('syntax errors and duplicate keys name line and column', () => {
    expect(() => parseYaml('a: [1, 2\nb: 3\n')).toThrow(ConfigError);
    expectErrorAt('etcd:\n  name: [a\n', 'invalid YAML', 3, 1);
    expectErrorAt('etcd:\n  name: a\n  name: b\n', 'invalid YAML: duplicated mapping key', 3, 3);
    expectErrorAt('etcd:\n\tname: a\n', 'invalid YAML', 2, 1);
  });

  test('the top level must be a mapping of known sections', () => {
    expectErrorAt('- etcd\n', 'config: expected a mapping, found a sequence', 1, 1);
    expectErrorAt('etc:\n  name: a\n', 'unknown key "etc" at the top level (did you mean "etcd"?)', 1, 1);
    expectErrorAt('version: 1\n', 'only version 0', 1, 10);
    expect(transpileErrors('? [a]\n: b\n')[0].message).toMatch(/^invalid YAML: .*complex keys/);
    expect(transpileErrors('a: 1\n---\nb: 2\n')[0].message).toContain('one YAML document');
  });
});

test('keys named like Object.prototype members are just unknown keys', () => {
  expectErrorAt('etcd:\n  toString: x\n', 'unknown key "toString" in etcd', 2, 3);
  expectErrorAt('__proto__:\n  a: 1\n', 'unknown key "__proto__" at the top level', 1, 1);
});
