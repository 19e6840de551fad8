/**
 * Go's encoding/json where etcd's answers depend on it: how json.Decoder reads a request body (the first JSON value,
 * whatever follows it; duplicate keys in order; field names matched regardless of case) and how json.Marshal writes
 * a string (Go 1.19, as Debian's etcd 3.4.23 is built: HTML characters escaped). Tested in test/pkg/go-json.test.ts.
 */

/** A JSON value as Go's decoder sees it: objects keep their keys in order, duplicates included; numbers as text. */
export type GoJSON = null | boolean | string | GoJSONNumber | GoJSON[] | GoJSONObject;
export interface GoJSONNumber {
  num: string;
}
export interface GoJSONObject {
  pairs: [string, GoJSON][];
}

export const isGoObject = (v: GoJSON): v is GoJSONObject => typeof v === 'object' && v !== null && !Array.isArray(v) && 'pairs' in v;

/** Go's scanner refuses a value nested deeper than this. */
const MAX_DEPTH = 10000;

type Frame = { arr: GoJSON[] } | { obj: GoJSONObject; key: string };

/**
 * The first JSON value of `text`, as json.Decoder.Decode reads it: leading white space skipped, anything after the
 * value ignored; undefined when there is none or it is malformed (Go: EOF or a syntax error). A \u escape of a lone
 * surrogate reads as U+FFFD, as in Go. Iterative, so no nesting depth Go takes can exhaust the stack.
 */
export function goDecodeFirst(text: string): GoJSON | undefined {
  return parseValue(text)?.value;
}

/** json.Unmarshal's reading: the text must be one JSON value and nothing but white space after it. */
export function goUnmarshal(text: string): GoJSON | undefined {
  const r = parseValue(text);
  return r && /^[ \t\n\r]*$/.test(text.slice(r.end)) ? r.value : undefined;
}

function parseValue(text: string): { value: GoJSON; end: number } | undefined {
  const s = text;
  const n = s.length;
  let i = 0;
  const ws = (): void => {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
    }
  };
  /** An object key and its colon; undefined when malformed. */
  const key = (): string | undefined => {
    ws();
    if (s.charCodeAt(i) !== 0x22) return undefined;
    const k = readString();
    if (k === undefined) return undefined;
    ws();
    if (s.charCodeAt(i) !== 0x3a) return undefined;
    i++;
    return k;
  };
  const readString = (): string | undefined => {
    i++; // the opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) return undefined;
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        out += s.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) return undefined;
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      const e = s[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const u = hex4(i);
          if (u < 0) return undefined;
          i += 4;
          if (u >= 0xd800 && u < 0xdc00 && s[i] === '\\' && s[i + 1] === 'u') {
            const lo = hex4(i + 2);
            if (lo >= 0xdc00 && lo < 0xe000) {
              out += String.fromCharCode(u, lo);
              i += 6;
              break;
            }
          }
          out += u >= 0xd800 && u < 0xe000 ? '\ufffd' : String.fromCharCode(u);
          break;
        }
        default:
          return undefined;
      }
      start = i;
    }
  };
  const hex4 = (at: number): number => {
    const h = s.slice(at, at + 4);
    return /^[0-9a-fA-F]{4}$/.test(h) ? parseInt(h, 16) : -1;
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const stack: Frame[] = [];
  for (;;) {
    ws();
    if (i >= n) return undefined;
    let value: GoJSON;
    const c = s[i];
    if (c === '{' || c === '[') {
      if (stack.length >= MAX_DEPTH) return undefined;
      i++;
      ws();
      if (c === '{') {
        const obj: GoJSONObject = { pairs: [] };
        if (s[i] === '}') {
          i++;
          value = obj;
        } else {
          const k = key();
          if (k === undefined) return undefined;
          stack.push({ obj, key: k });
          continue;
        }
      } else {
        const arr: GoJSON[] = [];
        if (s[i] === ']') {
          i++;
          value = arr;
        } else {
          stack.push({ arr });
          continue;
        }
      }
    } else if (c === '"') {
      const str = readString();
      if (str === undefined) return undefined;
      value = str;
    } else if (s.startsWith('true', i)) {
      i += 4;
      value = true;
    } else if (s.startsWith('false', i)) {
      i += 5;
      value = false;
    } else if (s.startsWith('null', i)) {
      i += 4;
      value = null;
    } else {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(s);
      if (!m) return undefined;
      // A number cut short ("1.", "1e") is malformed: Go's scanner reads on after a '.' or an 'e' where the
      // grammar allows one, so the digits would have to follow.
      const t = m[0];
      const next = s[i + t.length];
      const exp = /[eE]/.test(t);
      if (!exp && (next === 'e' || next === 'E' || (next === '.' && !t.includes('.')))) return undefined;
      i += t.length;
      value = { num: t };
    }
    // A complete value: into its container, closing those that end here.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) return { value, end: i };
      if ('arr' in top) top.arr.push(value);
      else top.obj.pairs.push([top.key, value]);
      ws();
      if (s[i] === ',') {
        i++;
        if ('obj' in top) {
          const k = key();
          if (k === undefined) return undefined;
          top.key = k;
        }
        break;
      }
      if (s[i] !== ('arr' in top ? ']' : '}')) return undefined;
      i++;
      stack.pop();
      value = 'arr' in top ? top.arr : top.obj;
    }
  }
}

/**
 * Does a JSON key name this struct field, as Go's decoder matches them: exactly, or equal under simple case folding
 * (where K, the Kelvin sign, is a k and ſ, the long s, an s). `field` is lower-case ASCII.
 */
export function goFieldMatches(key: string, field: string): boolean {
  if (key === field) return true;
  if (key.length !== field.length) return false;
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    else if (c === 0x212a) c = 0x6b;
    else if (c === 0x17f) c = 0x73;
    if (c !== field.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * A string as Go's json.Marshal writes it: ", \ and control characters escaped (\n, \r, \t by name, the others as
 * \u00XX), <, >, & and U+2028/U+2029 as \u escapes, and a lone surrogate (no valid UTF-8) as \ufffd.
 */
export function goJSONString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26) {
      esc = c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : c === 0x0a ? '\\n' : c === 0x0d ? '\\r' : c === 0x09 ? '\\t' : `\\u00${c.toString(16).padStart(2, '0')}`;
    } else if (c === 0x2028 || c === 0x2029) {
      esc = `\\u${c.toString(16)}`;
    } else if (c >= 0xd800 && c < 0xe000) {
      const lo = s.charCodeAt(i + 1);
      if (c < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
        i++;
        continue;
      }
      esc = '\\ufffd';
    }
    if (esc === undefined) continue;
    out += s.slice(start, i) + esc;
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}
