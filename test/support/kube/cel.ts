/**
 * A small subset of CEL (the Common Expression Language of CRD `x-kubernetes-validations` rules), enough for the
 * rules our CRD uses and their usual neighbours: `self`, `oldSelf`, field selection (`self.a.b`, `self['a']`),
 * `has(self.a)`, `size(x)` / `x.size()`, `in`, the operators `! - == != < <= > >= && || + ?:`, parentheses, and
 * literals (integers, doubles, strings in '' or "", true, false, null, lists). Values are the JSON the API server
 * holds; equality is deep, as CEL's on lists and maps. `compile` throws on anything else, so a rule this evaluator
 * cannot check fails the CRD's install in a test instead of being skipped.
 *
 * As in CEL, selecting a field that is absent is an error ("no such key"), `&&`/`||` are commutative over errors
 * (false && error is false, true || error is true), and there is no implicit conversion but between the numbers
 * JSON cannot tell apart.
 */

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'id'; name: string }
  | { k: 'sel'; on: Node; field: string }
  | { k: 'index'; on: Node; at: Node }
  | { k: 'has'; on: Node; field: string }
  | { k: 'call'; fn: 'size'; args: Node[] }
  | { k: 'list'; items: Node[] }
  | { k: 'un'; op: '!' | '-'; a: Node }
  | { k: 'bin'; op: string; a: Node; b: Node }
  | { k: 'cond'; c: Node; a: Node; b: Node };

export class CelError extends Error {}

/** A compiled rule: which variables it uses (a transition rule uses oldSelf) and how to run it. */
export interface Program {
  usesOldSelf: boolean;
  eval(vars: { self: unknown; oldSelf?: unknown }): unknown;
}

export function compile(src: string): Program {
  const toks = tokenize(src);
  let i = 0;
  const peek = (): string | undefined => toks[i];
  const eat = (t?: string): string => {
    const x = toks[i];
    if (x === undefined || (t !== undefined && x !== t)) throw new CelError(`CEL: expected ${t ?? 'more'} at token ${i} of ${JSON.stringify(src)}`);
    i++;
    return x;
  };
  const expr = (): Node => {
    const c = or();
    if (peek() === '?') {
      eat('?');
      const a = expr();
      eat(':');
      return { k: 'cond', c, a, b: expr() };
    }
    return c;
  };
  const binary = (next: () => Node, ops: string[]) => (): Node => {
    let a = next();
    while (ops.includes(peek() ?? '')) {
      const op = eat();
      a = { k: 'bin', op, a, b: next() };
    }
    return a;
  };
  const unary = (): Node => {
    if (peek() === '!' || peek() === '-') return { k: 'un', op: eat() as '!' | '-', a: unary() };
    return member();
  };
  const add = binary(unary, ['+']);
  const rel = binary(add, ['==', '!=', '<', '<=', '>', '>=', 'in']);
  const and = binary(rel, ['&&']);
  const or = binary(and, ['||']);
  const member = (): Node => {
    let n = primary();
    for (;;) {
      if (peek() === '.') {
        eat('.');
        const field = eat();
        if (!/^[A-Za-z_]\w*$/.test(field)) throw new CelError(`CEL: bad field name ${field}`);
        if (peek() === '(') {
          eat('(');
          eat(')');
          if (field !== 'size') throw new CelError(`CEL: unsupported method ${field}() in ${JSON.stringify(src)}`);
          n = { k: 'call', fn: 'size', args: [n] };
        } else n = { k: 'sel', on: n, field };
      } else if (peek() === '[') {
        eat('[');
        n = { k: 'index', on: n, at: expr() };
        eat(']');
      } else return n;
    }
  };
  const primary = (): Node => {
    const t = eat();
    if (t === '(') {
      const e = expr();
      eat(')');
      return e;
    }
    if (t === '[') {
      const items: Node[] = [];
      while (peek() !== ']') {
        items.push(expr());
        if (peek() === ',') eat(',');
      }
      eat(']');
      return { k: 'list', items };
    }
    if (/^\d/.test(t)) return { k: 'lit', v: Number(t.replace(/[uU]$/, '')) };
    if (t[0] === '"') return { k: 'lit', v: JSON.parse(t) };
    if (t[0] === "'") return { k: 'lit', v: JSON.parse(`"${t.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) };
    if (t === 'true' || t === 'false') return { k: 'lit', v: t === 'true' };
    if (t === 'null') return { k: 'lit', v: null };
    if (t === 'has') {
      eat('(');
      const arg = member();
      eat(')');
      if (arg.k !== 'sel') throw new CelError('CEL: has() takes a field selection');
      return { k: 'has', on: arg.on, field: arg.field };
    }
    if (t === 'size') {
      eat('(');
      const arg = expr();
      eat(')');
      return { k: 'call', fn: 'size', args: [arg] };
    }
    if (t === 'self' || t === 'oldSelf') return { k: 'id', name: t };
    throw new CelError(`CEL: unsupported ${JSON.stringify(t)} in ${JSON.stringify(src)}`);
  };
  const root = expr();
  if (i !== toks.length) throw new CelError(`CEL: unexpected ${JSON.stringify(toks[i])} in ${JSON.stringify(src)}`);
  const usesOldSelf = toks.includes('oldSelf');
  return { usesOldSelf, eval: (vars) => run(root, vars) };
}

function tokenize(src: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?[uU]?)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([A-Za-z_]\w*)|(==|!=|<=|>=|&&|\|\||[!<>+\-?:.,()[\]]))/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new CelError(`CEL: cannot read ${JSON.stringify(src.slice(pos))}`);
    out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
    pos = re.lastIndex;
  }
  return out;
}

function run(n: Node, vars: { self: unknown; oldSelf?: unknown }): unknown {
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'id':
      return n.name === 'self' ? vars.self : vars.oldSelf;
    case 'list':
      return n.items.map((x) => run(x, vars));
    case 'sel':
    case 'has': {
      const on = run(n.on, vars);
      if (on === null || typeof on !== 'object' || Array.isArray(on)) throw new CelError(`no such key: ${n.field}`);
      const present = Object.prototype.hasOwnProperty.call(on, n.field);
      if (n.k === 'has') return present;
      if (!present) throw new CelError(`no such key: ${n.field}`);
      return (on as Record<string, unknown>)[n.field];
    }
    case 'index': {
      const on = run(n.on, vars);
      const at = run(n.at, vars);
      if (Array.isArray(on) && typeof at === 'number' && at >= 0 && at < on.length) return on[at];
      if (on !== null && typeof on === 'object' && typeof at === 'string' && Object.prototype.hasOwnProperty.call(on, at)) return (on as Record<string, unknown>)[at];
      throw new CelError(`no such key: ${String(at)}`);
    }
    case 'call': {
      const v = run(n.args[0], vars);
      if (typeof v === 'string') return [...v].length;
      if (Array.isArray(v)) return v.length;
      if (v !== null && typeof v === 'object') return Object.keys(v).length;
      throw new CelError('no such overload: size');
    }
    case 'un': {
      const a = run(n.a, vars);
      if (n.op === '!') {
        if (typeof a !== 'boolean') throw new CelError('no such overload: !');
        return !a;
      }
      if (typeof a !== 'number') throw new CelError('no such overload: -');
      return -a;
    }
    case 'cond': {
      const c = run(n.c, vars);
      if (typeof c !== 'boolean') throw new CelError('no such overload: ?:');
      return c ? run(n.a, vars) : run(n.b, vars);
    }
    case 'bin':
      return binop(n.op, n.a, n.b, vars);
  }
}

function binop(op: string, an: Node, bn: Node, vars: { self: unknown; oldSelf?: unknown }): unknown {
  if (op === '&&' || op === '||') {
    // commutative over errors, as CEL's logical operators
    const short = op === '||';
    let err: unknown;
    for (const side of [an, bn]) {
      try {
        const v = run(side, vars);
        if (typeof v !== 'boolean') throw new CelError(`no such overload: ${op}`);
        if (v === short) return short;
      } catch (e) {
        err = e;
      }
    }
    if (err) throw err;
    return !short;
  }
  const a = run(an, vars);
  const b = run(bn, vars);
  switch (op) {
    case '==':
      return deepEqual(a, b);
    case '!=':
      return !deepEqual(a, b);
    case 'in':
      if (Array.isArray(b)) return b.some((x) => deepEqual(x, a));
      if (b !== null && typeof b === 'object' && typeof a === 'string') return Object.prototype.hasOwnProperty.call(b, a);
      throw new CelError('no such overload: in');
    case '+':
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
      throw new CelError('no such overload: +');
    default: {
      const same = (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string');
      if (!same) throw new CelError(`no such overload: ${op}`);
      const x = a as number | string;
      const y = b as number | string;
      return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
    }
  }
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
