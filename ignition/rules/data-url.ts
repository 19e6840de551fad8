/**
 * Which `data:` URLs Ignition accepts. It decodes them with the Go package vincent-petithory/dataurl (RFC 2397), which
 * is stricter than browsers: a media type needs its "/", parameters must be tokens or quoted strings, the data may
 * hold only URL characters (no spaces, quotes, "#", "{", ...) with well-formed %-escapes, and base64 data must be
 * padded. `checkDataUrl` walks the same grammar and returns its error message, or undefined when it accepts the URL.
 */
import { utf8Bytes } from './go-url';

const TSPECIALS = '()<>@,;:\\"/[]?=';

/** An RFC 2045 token character (ASCII, not a control, space or tspecial). */
function isToken(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code < 0x7f && !TSPECIALS.includes(c);
}

/** A character RFC 2396 lets a URL hold unescaped ("%" included: escapes are checked when decoding). */
function isUrlChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code < 0x7f && !'<>#"{}|\\^[]`'.includes(c);
}

const isBase64Char = (c: string): boolean => /^[A-Za-z0-9+/=\n]$/.test(c);

const DISCRETE_TYPES = ['text', 'image', 'audio', 'video', 'application', 'message', 'multipart'];

/** RFC 2396 unescaping of parameter values and ASCII data: ASCII only, "%" followed by two hex digits. */
function checkUnescape(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) return 'rfc2396: non-ASCII char detected';
    if (s[i] !== '%') continue;
    for (const c of [s[i + 1], s[i + 2]]) {
      if (c === undefined) return 'rfc2396: unexpected end of unescape sequence';
      if (!/^[0-9a-fA-F]$/.test(c)) return 'rfc2396: invalid char 0x25 in unescape sequence';
    }
    i += 2;
  }
  return undefined;
}

/** Go's strconv.Unquote of `"value"`, as a check (the escapes Go knows; no newline). */
function checkUnquote(value: string): string | undefined {
  if (value.includes('\n')) return 'invalid syntax';
  const escape = /\\(?:[abfnrtv\\"]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3})/y;
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '\\') continue;
    escape.lastIndex = i;
    const m = escape.exec(value);
    if (!m) return 'invalid syntax';
    if (/^\\[0-7]{3}$/.test(m[0]) && Number.parseInt(m[0].slice(1), 8) > 255) return 'invalid syntax';
    if (/^\\[uU]/.test(m[0])) {
      // A rune: at most U+10FFFF and not a surrogate.
      const rune = Number.parseInt(m[0].slice(2), 16);
      if (rune > 0x10ffff || (rune >= 0xd800 && rune <= 0xdfff)) return 'invalid syntax';
    }
    i += m[0].length - 1;
  }
  return undefined;
}

/** Go's base64.StdEncoding decoding, as a check: padded quanta of four; "\r" and "\n" are skipped anywhere. */
function checkBase64(src: string): string | undefined {
  const bad = (offset: number): string => `illegal base64 data at input byte ${offset}`;
  const newline = (c: string | undefined): boolean => c === '\n' || c === '\r';
  let si = 0;
  while (si < src.length) {
    for (let j = 0; j < 4; j++) {
      if (si === src.length) return j === 0 ? undefined : bad(si - j);
      const c = src[si++];
      if (/^[A-Za-z0-9+/]$/.test(c)) continue;
      if (newline(c)) {
        j--;
        continue;
      }
      if (c !== '=' || j < 2) return bad(si - 1);
      if (j === 2) {
        // "==" ends a quantum of two.
        while (si < src.length && newline(src[si])) si++;
        if (si === src.length) return bad(src.length);
        if (src[si] !== '=') return bad(si - 1);
        si++;
      }
      while (si < src.length && newline(src[si])) si++;
      return si < src.length ? bad(si) : undefined;
    }
  }
  return undefined;
}

/** Returns dataurl's error for `url`, or undefined when Ignition can decode it. */
export function checkDataUrl(url: string): string | undefined {
  const s = utf8Bytes(url);
  if (!s.startsWith('data:')) return 'missing data prefix';
  let i = 'data:'.length;
  const at = (): string | undefined => s[i];
  let base64 = false;

  /** The media type "type/subtype", when there is one. */
  const mediaType = (): string | undefined => {
    const start = i;
    let xToken = false;
    if (s[i] === 'x' || s[i] === 'X') {
      // "x-" starts an extension type; otherwise the character after the "x" is taken without a look.
      i++;
      xToken = at() === '-';
      if (at() !== undefined) i++;
    } else {
      i++;
    }
    for (;;) {
      const c = at();
      if (c === '/') break;
      if (c === undefined) return 'missing media type slash';
      if (!isToken(c)) return 'invalid character for media type';
      i++;
    }
    if (!xToken && !DISCRETE_TYPES.some((t) => s.slice(start, i).startsWith(t))) return 'invalid media type';
    i++;
    for (;;) {
      const c = at();
      if (c === ';' || c === ',') break;
      if (c === undefined) return 'incomplete media type';
      if (!isToken(c)) return 'invalid character for media subtype';
      i++;
    }
    return undefined;
  };

  /** ";attr=value" parameters and ";base64", up to the comma. */
  const parameters = (): string | undefined => {
    // An empty quoted value leaves its "unquote" mark for the next value (dataurl's parser does).
    let unquoteNext = false;
    const decodeValue = (value: string, quoted: boolean): string | undefined => {
      const unquote = quoted || unquoteNext;
      unquoteNext = quoted && value === '';
      if (value === '') return undefined;
      return unquote ? checkUnquote(value) : checkUnescape(value);
    };
    while (at() === ';') {
      i++;
      const first = at();
      if (first === undefined || first === '=' || first === ',') return 'unterminated parameter sequence';
      if (!isToken(first)) return 'invalid character for parameter attribute';
      const start = i;
      for (;;) {
        const c = at();
        if (c === '=') break;
        if (c === ',') {
          const name = s.slice(start, i);
          if (name !== 'base64') return `expected base64, got ${name}`;
          base64 = true;
          return undefined;
        }
        if (c === undefined) return 'unterminated parameter sequence';
        if (!isToken(c)) return 'invalid character for parameter attribute';
        i++;
      }
      i++;
      const v = at();
      if (v === '"') {
        const valueStart = ++i;
        for (;;) {
          const c = at();
          if (c === undefined) return 'unclosed quoted string';
          if (c === '\\') {
            i++;
            const e = at();
            if (e === undefined) return 'unclosed quoted string';
            if (e.charCodeAt(0) >= 0x80) return 'invalid escaped character';
          } else if (c === '"') {
            break;
          } else if (c.charCodeAt(0) >= 0x80) {
            return 'invalid character for parameter value';
          }
          i++;
        }
        const e = decodeValue(s.slice(valueStart, i), true);
        if (e) return e;
        i++;
      } else {
        if (v === undefined) return 'missing comma before data';
        if (!isToken(v)) return 'invalid character for parameter value';
        const valueStart = i;
        for (;;) {
          const c = at();
          if (c === ';' || c === ',') break;
          if (c === undefined) return 'missing comma before data';
          if (!isToken(c)) return 'invalid character for parameter value';
          i++;
        }
        const e = decodeValue(s.slice(valueStart, i), false);
        if (e) return e;
      }
      const next = at();
      if (next === undefined) return 'missing comma before data';
      if (next !== ';' && next !== ',') return 'expected semicolon or comma';
    }
    return undefined;
  };

  const first = at();
  if (first === undefined) return 'missing comma before data';
  if (first !== ';' && first !== ',') {
    if (!isToken(first)) return 'invalid character after data prefix';
    const e = mediaType();
    if (e) return e;
  }
  const e = parameters();
  if (e) return e;
  if (at() !== ',') return 'missing comma before data';
  const data = s.slice(i + 1);
  for (const c of data) {
    if (!(base64 ? isBase64Char(c) : isUrlChar(c))) return 'invalid data character';
  }
  return base64 ? checkBase64(data) : checkUnescape(data);
}
