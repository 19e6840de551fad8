/**
 * The text etcdctl's txn command reads: compare lines (`mod("key") > "3"`, scanned as Go's fmt.Sscanf("%q) %s %q")
 * does) and request lines split by etcdctl's argify (its regular expression, Go string unquoting, and its slicing of
 * single-quoted words by the number of words, kept as it is), with Go's errors and panics.
 */
import { Compare, Compare_CompareResult, Compare_CompareTarget } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { goQuote } from './printer';

/** Bad input: etcdctl exits with ExitInvalidInput and this message. */
export class TxnInputError extends Error {}

/** A Go panic: etcdctl dies with exit status 2 and "panic: <message>". */
export class GoPanic extends Error {}

const isSpace = (c: string | undefined) => c !== undefined && /^\s$/.test(c);

/** strconv.Unquote of a double-quoted Go string literal (quotes included); the bytes, decoded as UTF-8. */
export function goUnquote(lit: string): string {
  if (lit.length < 2 || lit[0] !== '"' || lit[lit.length - 1] !== '"' || lit.includes('\n')) throw new TxnInputError('invalid syntax');
  const body = lit.slice(1, -1);
  const out: number[] = [];
  const pushStr = (s: string) => out.push(...Buffer.from(s));
  const bad = () => new TxnInputError('invalid syntax');
  for (let i = 0; i < body.length; ) {
    const c = body[i];
    if (c === '"') throw bad();
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      pushStr(String.fromCodePoint(cp));
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };
    if (e !== undefined && e in simple) {
      out.push(simple[e]);
      continue;
    }
    const hex = (n: number) => {
      const h = body.slice(i, i + n);
      if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) throw bad();
      i += n;
      return parseInt(h, 16);
    };
    if (e === 'x') out.push(hex(2));
    else if (e === 'u' || e === 'U') {
      const cp = hex(e === 'u' ? 4 : 8);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw bad();
      pushStr(String.fromCodePoint(cp));
    } else if (e !== undefined && e >= '0' && e <= '7') {
      const o = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) throw bad();
      i += 2;
      out.push(parseInt(o, 8));
    } else throw bad();
  }
  return Buffer.from(out).toString('utf8');
}

/** etcdctl's argify: words, "Go strings" unquoted, 'single-quoted' words cut as etcdctl cuts them. */
export function argify(line: string): string[] {
  const words = line.match(/"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?/g) ?? [];
  return words.map((w) => {
    if (w[0] === "'") {
      // etcdctl slices [1 : number of words - 1] (not the word's length): kept, with Go's bounds panic.
      const b = Buffer.from(w);
      const end = words.length - 1;
      if (end > b.length) throw new GoPanic(`runtime error: slice bounds out of range [:${end}] with length ${b.length}`);
      if (end < 1) throw new GoPanic(`runtime error: slice bounds out of range [1:${end}]`);
      return b.subarray(1, end).toString('utf8');
    }
    if (w[0] === '"') return goUnquote(w);
    return w;
  });
}

/** fmt's %q scan at pos: a "Go string" (unquoted) or a `raw string`; undefined when it fails. */
function scanQuoted(s: string, pos: number): { value: string; pos: number } | undefined {
  while (isSpace(s[pos])) pos++;
  const q = s[pos];
  if (q === '`') {
    const end = s.indexOf('`', pos + 1);
    return end < 0 ? undefined : { value: s.slice(pos + 1, end), pos: end + 1 };
  }
  if (q !== '"') return undefined;
  let i = pos + 1;
  while (i < s.length) {
    if (s[i] === '\\') i += 2;
    else if (s[i] === '"') break;
    else i++;
  }
  if (i >= s.length) return undefined;
  try {
    return { value: goUnquote(s.slice(pos, i + 1)), pos: i + 1 };
  } catch {
    return undefined;
  }
}

/** fmt.Sscanf(s, "%q) %s %q"): the items scanned before the first failure. */
function scanCompare(s: string): { n: number; key: string; op: string; val: string } {
  const r = { n: 0, key: '', op: '', val: '' };
  const k = scanQuoted(s, 0);
  if (!k) return r;
  r.key = k.value;
  r.n = 1;
  let pos = k.pos;
  if (s[pos] !== ')') return r;
  pos++;
  // A space in the format needs at least one in the input (or the end of it).
  const space = (): boolean => {
    if (pos >= s.length) return true;
    if (!isSpace(s[pos])) return false;
    while (isSpace(s[pos])) pos++;
    return true;
  };
  if (!space()) return r;
  while (isSpace(s[pos])) pos++;
  if (pos >= s.length) return r;
  const start = pos;
  while (pos < s.length && !isSpace(s[pos])) pos++;
  r.op = s.slice(start, pos);
  r.n = 2;
  if (!space()) return r;
  const v = scanQuoted(s, pos);
  if (!v) return r;
  r.val = v.value;
  r.n = 3;
  return r;
}

/** etcdctl's parseCompare, then clientv3.Compare (whose panics are etcdctl's). */
export function parseCompare(line: string): Compare {
  const paren = line.indexOf('(');
  if (paren < 0) throw new TxnInputError(`malformed comparison: ${line}`);
  const target = line.slice(0, paren);
  const { n, key, op, val } = scanCompare(line.slice(paren + 1));
  if (n !== 3) throw new TxnInputError(`malformed comparison: ${line}; got ${target}(${goQuote(Buffer.from(key))}) ${op} ${goQuote(Buffer.from(val))}`);
  const targets: Record<string, Compare_CompareTarget> = {
    ver: Compare_CompareTarget.VERSION, version: Compare_CompareTarget.VERSION,
    c: Compare_CompareTarget.CREATE, create: Compare_CompareTarget.CREATE,
    m: Compare_CompareTarget.MOD, mod: Compare_CompareTarget.MOD,
    val: Compare_CompareTarget.VALUE, value: Compare_CompareTarget.VALUE,
    lease: Compare_CompareTarget.LEASE,
  };
  const t = targets[target];
  if (t === undefined) throw new TxnInputError(`malformed comparison: ${line} (unknown target ${target})`);
  let num: bigint | undefined;
  if (t === Compare_CompareTarget.VERSION || t === Compare_CompareTarget.CREATE || t === Compare_CompareTarget.MOD) {
    const m = /^[+-]?[0-9]+$/.exec(val);
    num = m ? BigInt(val) : undefined;
    if (num === undefined || num > 0x7fffffffffffffffn || num < -0x8000000000000000n) throw new TxnInputError(`invalid txn compare request: ${line}`);
  }
  const results: Record<string, Compare_CompareResult> = {
    '=': Compare_CompareResult.EQUAL, '!=': Compare_CompareResult.NOT_EQUAL, '>': Compare_CompareResult.GREATER, '<': Compare_CompareResult.LESS,
  };
  const result = results[op];
  if (result === undefined) throw new GoPanic('Unknown result op');
  // etcdctl builds the lease compare with no key, and hands clientv3 the value as a string, which it refuses.
  if (t === Compare_CompareTarget.LEASE) throw new GoPanic('bad value');
  const cmp = Compare.fromPartial({ result, target: t, key: Buffer.from(key) });
  if (t === Compare_CompareTarget.VALUE) cmp.value = Buffer.from(val);
  else if (t === Compare_CompareTarget.VERSION) cmp.version = num;
  else if (t === Compare_CompareTarget.CREATE) cmp.createRevision = num;
  else cmp.modRevision = num;
  return cmp;
}

/** bufio.Reader.ReadString('\n') over the input: a line, or an EOF error when no newline is left. */
export class LineReader {
  private pos = 0;
  constructor(private readonly text: string) {}

  readLine(): string {
    const nl = this.text.indexOf('\n', this.pos);
    if (nl < 0) throw new TxnInputError('EOF');
    const line = this.text.slice(this.pos, nl + 1);
    this.pos = nl + 1;
    return line;
  }
}
