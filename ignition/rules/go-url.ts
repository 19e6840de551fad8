/**
 * Which URLs Go's `net/url.Parse` (Go 1.19, what Ignition is built with) accepts, and the parts of them Ignition
 * looks at. Ignition takes a resource's source only when Parse does; the WHATWG parser Node has differs (it accepts
 * `http://a b/`, `http://h:x/` fixes nothing, `%zz` escapes and control characters are taken), so the rules are
 * written out here. Strings are handled as their UTF-8 bytes, as Go does.
 */

export interface GoUrl {
  /** Lower-cased, as Parse leaves it. */
  scheme: string;
  /** Everything after "?" (before "#"), not decoded. */
  rawQuery: string;
}

export type GoUrlResult = { ok: true; url: GoUrl } | { ok: false; error: string };

/** The UTF-8 bytes of `s` as a string of one character per byte. */
export function utf8Bytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

const isAlpha = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);

type Mode = 'host' | 'zone' | 'path' | 'userPassword' | 'fragment';

/** Go's shouldEscape for the modes Parse checks against (host and zone only reject what they must escape). */
function mustEscapeInHost(c: string): boolean {
  if (isAlpha(c) || isDigit(c)) return false;
  return !"!$&'()*+,;=:[]<>\"-_.~".includes(c);
}

/** Go's unescape, as a check: %-escapes well formed, hosts without characters they cannot hold. */
function checkEscapes(s: string, mode: Mode): string | undefined {
  for (let i = 0; i < s.length; ) {
    const c = s[i];
    if (c === '%') {
      if (i + 2 >= s.length || !isHex(s[i + 1]) || !isHex(s[i + 2])) return `invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}`;
      const escape = s.slice(i, i + 3);
      // In a host, %-encoding is only for non-ASCII bytes (and %25 before a zone).
      if (mode === 'host' && Number.parseInt(s[i + 1], 16) < 8 && escape !== '%25') return `invalid URL escape ${JSON.stringify(escape)}`;
      if (mode === 'zone') {
        const v = String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 3), 16));
        if (escape !== '%25' && v !== ' ' && mustEscapeInHost(v)) return `invalid URL escape ${JSON.stringify(escape)}`;
      }
      i += 3;
      continue;
    }
    if ((mode === 'host' || mode === 'zone') && c.charCodeAt(0) < 0x80 && mustEscapeInHost(c)) {
      return `invalid character ${JSON.stringify(c)} in host name`;
    }
    i++;
  }
  return undefined;
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

function checkHost(host: string): string | undefined {
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0) return "missing ']' in host";
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort)) return `invalid port ${JSON.stringify(colonPort)} after host`;
    const zone = host.slice(0, close).indexOf('%25');
    if (zone >= 0) {
      return checkEscapes(host.slice(0, zone), 'host') ?? checkEscapes(host.slice(zone, close), 'zone') ?? checkEscapes(host.slice(close), 'host');
    }
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0 && !validOptionalPort(host.slice(colon))) return `invalid port ${JSON.stringify(host.slice(colon))} after host`;
  }
  return checkEscapes(host, 'host');
}

const USERINFO = /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/;

function checkAuthority(authority: string): string | undefined {
  const at = authority.lastIndexOf('@');
  const hostError = checkHost(at < 0 ? authority : authority.slice(at + 1));
  if (hostError || at < 0) return hostError;
  const userinfo = authority.slice(0, at);
  if (!USERINFO.test(userinfo)) return 'net/url: invalid userinfo';
  const colon = userinfo.indexOf(':');
  if (colon < 0) return checkEscapes(userinfo, 'userPassword');
  return checkEscapes(userinfo.slice(0, colon), 'userPassword') ?? checkEscapes(userinfo.slice(colon + 1), 'userPassword');
}

/** Splits off "scheme:" as Go's getScheme does; an error only for a leading ":". */
function splitScheme(raw: string): { scheme: string; rest: string } | { error: string } {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (isAlpha(c)) continue;
    if (isDigit(c) || c === '+' || c === '-' || c === '.') {
      if (i === 0) return { scheme: '', rest: raw };
      continue;
    }
    if (c === ':') return i === 0 ? { error: 'missing protocol scheme' } : { scheme: raw.slice(0, i), rest: raw.slice(i + 1) };
    return { scheme: '', rest: raw };
  }
  return { scheme: '', rest: raw };
}

/** Go's `url.Parse(s)`: whether it succeeds, and the scheme and query when it does. */
export function parseGoUrl(s: string): GoUrlResult {
  const bytes = utf8Bytes(s);
  const hash = bytes.indexOf('#');
  const main = hash < 0 ? bytes : bytes.slice(0, hash);
  const fragment = hash < 0 ? '' : bytes.slice(hash + 1);
  const fail = (error: string): GoUrlResult => ({ ok: false, error });

  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(main)) return fail('net/url: invalid control character in URL');
  if (main === '*') return { ok: true, url: { scheme: '', rawQuery: '' } };
  const split = splitScheme(main);
  if ('error' in split) return fail(split.error);
  const scheme = split.scheme.toLowerCase();
  let rest = split.rest;
  let rawQuery = '';
  if (rest.endsWith('?') && rest.indexOf('?') === rest.length - 1) {
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q >= 0) {
      rawQuery = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
  }
  const ok = (): GoUrlResult => {
    if (fragment !== '') {
      const e = checkEscapes(fragment, 'fragment');
      if (e) return fail(e);
    }
    return { ok: true, url: { scheme, rawQuery } };
  };
  if (!rest.startsWith('/')) {
    // An opaque URL ("data:,x", "mailto:a@b"): nothing more is checked.
    if (scheme !== '') return ok();
    const slash = rest.indexOf('/');
    if ((slash < 0 ? rest : rest.slice(0, slash)).includes(':')) return fail('first path segment in URL cannot contain colon');
  }
  if ((scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    const slash = authority.indexOf('/');
    rest = slash < 0 ? '' : authority.slice(slash);
    if (slash >= 0) authority = authority.slice(0, slash);
    const e = checkAuthority(authority);
    if (e) return fail(e);
  }
  const e = checkEscapes(rest, 'path');
  return e ? fail(e) : ok();
}

/** Go's `url.Values` of a raw query, as `URL.Query()` builds it (malformed pairs are skipped). */
export function goQueryValues(rawQuery: string): Map<string, string[]> {
  const values = new Map<string, string[]>();
  const unescape = (s: string): string | undefined => {
    if (checkEscapes(s, 'path')) return undefined;
    return Buffer.from(s.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))), 'latin1').toString('utf8');
  };
  for (const pair of rawQuery.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = unescape(eq < 0 ? pair : pair.slice(0, eq));
    const value = unescape(eq < 0 ? '' : pair.slice(eq + 1));
    if (key === undefined || value === undefined) continue;
    values.set(key, [...(values.get(key) ?? []), value]);
  }
  return values;
}
