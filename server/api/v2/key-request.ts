import * as posixPath from 'node:path/posix';
import { goParseBool } from '../../pkg/go-compat';

/** The v2 error codes of bad requests (their messages are etcd's, in the store's error table). */
export const enum RequestErrorCode {
  PrevValueRequired = 201,
  TTLNaN = 202,
  IndexNaN = 203,
  InvalidField = 209,
  InvalidForm = 210,
  RefreshValue = 211,
  RefreshTTLRequired = 212,
}

/** A request etcd refuses before it reaches the store: its code and cause, as etcd sends them. */
export class KeyRequestError extends Error {
  constructor(readonly errorCode: number, readonly cause_: string) {
    super(cause_);
    this.name = 'KeyRequestError';
  }
}

export interface KeyRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** The key, cleaned as etcd cleans it ("/a/../b/" is "/b"). */
  key: string;
  value: string;
  dir: boolean;
  prevValue: string;
  prevIndex: number;
  /** prevIndex as the client wrote it (exact past 2^53, where the number is not). */
  prevIndexText: string;
  prevExist?: boolean;
  /** TTL in seconds, when one was given (exact: etcd's arithmetic on it wraps as Go's int64 does). */
  ttl?: bigint;
  refresh: boolean;
  recursive: boolean;
  sorted: boolean;
  quorum: boolean;
  wait: boolean;
  waitIndex: number;
  stream: boolean;
  noValueOnSuccess: boolean;
}

export const KEYS_PREFIX = '/v2/keys';

const MAX_UINT64 = (1n << 64n) - 1n;

/** Go's strconv.ParseUint(s, 10, 64): exact, as a bigint. */
function parseGoUint64(s: string): bigint | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n <= MAX_UINT64 ? n : undefined;
}

/**
 * Go's strconv.ParseUint(s, 10, 64) as a number: exact up to 2^53; above, only its size matters (an index that
 * large matches no entry, as in etcd, where such a prevIndex fails its compare and such a waitIndex waits).
 */
function parseGoUint(s: string): number | undefined {
  const n = parseGoUint64(s);
  return n === undefined ? undefined : Number(n);
}

/**
 * The absolute expiration etcd computes for a TTL, in ms since the epoch: now.Add(time.Duration(ttl) *
 * time.Second).UnixNano(), in Go's int64 arithmetic (a TTL past ~292 years wraps around as it does in etcd),
 * so every TTL a client can send gives a time that a date can hold.
 */
export function goExpiration(nowMs: number, ttlSeconds: bigint): number {
  const nowNs = BigInt(Math.round(nowMs * 1e6));
  const d = BigInt.asIntN(64, BigInt.asIntN(64, ttlSeconds) * 1_000_000_000n);
  const ns = BigInt.asIntN(64, nowNs + d);
  return Number(ns / 1_000_000n);
}

/**
 * The form of a request as Go's ParseForm builds it: body values (url-encoded PUT/POST bodies) first, then the
 * query's. The first value of a field is the one used.
 */
export function parseForm(query: string, body: string | undefined): Map<string, string[]> {
  const form = new Map<string, string[]>();
  // Like Go's ParseForm: parse everything, then report the first error.
  const err = (body ? goParseQuery(body, form) : undefined) ?? (query ? goParseQuery(query, form) : undefined);
  if (err !== undefined) throw new KeyRequestError(RequestErrorCode.InvalidForm, err);
  return form;
}

/** Go's url.ParseQuery into `form`: returns the first error's message (Go keeps parsing the rest). */
function goParseQuery(s: string, form: Map<string, string[]>): string | undefined {
  let first: string | undefined;
  for (const part of s.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) {
      first ??= 'invalid semicolon separator in query';
      continue;
    }
    const eq = part.indexOf('=');
    const k = goQueryUnescape(eq >= 0 ? part.slice(0, eq) : part);
    const v = goQueryUnescape(eq >= 0 ? part.slice(eq + 1) : '');
    if (typeof k !== 'string' || typeof v !== 'string') {
      first ??= (typeof k !== 'string' ? k : (v as { error: string })).error;
      continue;
    }
    const list = form.get(k);
    if (list) list.push(v);
    else form.set(k, [v]);
  }
  return first;
}

/** Go's url.QueryUnescape: + is a space, %XX a byte; a malformed escape is an error naming it. */
function goQueryUnescape(s: string): string | { error: string } {
  if (!s.includes('%')) return s.includes('+') ? s.replace(/\+/g, ' ') : s;
  for (let i = s.indexOf('%'); i >= 0; i = s.indexOf('%', i + 1)) {
    if (!/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) return { error: `invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}` };
  }
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let j = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x25) {
      out[j++] = parseInt(src.toString('latin1', i + 1, i + 3), 16);
      i += 2;
    } else {
      out[j++] = c === 0x2b ? 0x20 : c;
    }
  }
  return out.toString('utf8', 0, j);
}

/**
 * Validates and types a v2 keys request exactly as etcd 3.4 does (its order of checks, codes and causes).
 * `path` is the decoded URL path, starting with /v2/keys.
 */
export function parseKeyRequest(method: string, path: string, form: Map<string, string[]>): KeyRequest {
  if (!path.startsWith(KEYS_PREFIX)) throw new KeyRequestError(RequestErrorCode.InvalidForm, 'incorrect key prefix');
  // Go's path.Join: cleaned, and without a trailing slash (except the root).
  const rest = path.slice(KEYS_PREFIX.length);
  // A key already clean ("/a/b": no empty, "." or ".." segment) is its own join; the rest go through path.join.
  let key = rest.length > 1 && rest.charCodeAt(0) === 0x2f && !rest.includes('//') && !rest.includes('/.') ? rest : posixPath.join('/', rest);
  if (key.length > 1 && key.endsWith('/')) key = key.slice(0, -1);
  const first = (k: string) => form.get(k)?.[0] ?? '';
  // etcd's getUint64 and getBool: an absent field is 0 or false, a present one must parse, even when empty
  // ("?recursive" or "?prevIndex=" is a bad request).
  const uint = (k: string, code: number, cause: string): number => {
    if (!form.has(k)) return 0;
    const n = parseGoUint(first(k));
    if (n === undefined) throw new KeyRequestError(code, cause);
    return n;
  };
  const bool = (k: string, cause = `invalid value for "${k}"`): boolean => {
    if (!form.has(k)) return false;
    const b = goParseBool(first(k));
    if (b === undefined) throw new KeyRequestError(RequestErrorCode.InvalidField, cause);
    return b;
  };
  const prevIndex = uint('prevIndex', RequestErrorCode.IndexNaN, 'invalid value for "prevIndex"');
  const waitIndex = uint('waitIndex', RequestErrorCode.IndexNaN, 'invalid value for "waitIndex"');
  const recursive = bool('recursive');
  const sorted = bool('sorted');
  const wait = bool('wait');
  const dir = bool('dir');
  const quorum = bool('quorum');
  const stream = bool('stream');
  if (wait && method !== 'GET') {
    throw new KeyRequestError(RequestErrorCode.InvalidField, '"wait" can only be used with GET requests');
  }
  const prevValue = first('prevValue');
  if (form.has('prevValue') && prevValue === '') {
    throw new KeyRequestError(RequestErrorCode.PrevValueRequired, '"prevValue" cannot be empty');
  }
  const noValueOnSuccess = bool('noValueOnSuccess');
  let ttl: bigint | undefined;
  if (first('ttl').length > 0) {
    ttl = parseGoUint64(first('ttl'));
    if (ttl === undefined) throw new KeyRequestError(RequestErrorCode.TTLNaN, 'invalid value for "ttl"');
  }
  let prevExist: boolean | undefined;
  if (form.has('prevExist')) {
    prevExist = goParseBool(first('prevExist'));
    if (prevExist === undefined) throw new KeyRequestError(RequestErrorCode.InvalidField, 'invalid value for prevExist');
  }
  let refresh = false;
  if (form.has('refresh')) {
    const r = goParseBool(first('refresh'));
    if (r === undefined) throw new KeyRequestError(RequestErrorCode.InvalidField, 'invalid value for refresh');
    refresh = r;
    if (refresh) {
      if (form.has('value') && first('value') !== '') {
        throw new KeyRequestError(RequestErrorCode.RefreshValue, 'A value was provided on a refresh');
      }
      if (ttl === undefined) throw new KeyRequestError(RequestErrorCode.RefreshTTLRequired, 'No TTL value set');
    }
  }
  return {
    method: method as KeyRequest['method'],
    key,
    value: first('value'),
    dir,
    prevValue,
    prevIndex,
    prevIndexText: first('prevIndex') === '' ? '0' : String(parseGoUint64(first('prevIndex')) ?? 0n),
    prevExist,
    ttl,
    refresh,
    recursive,
    sorted,
    quorum,
    wait,
    waitIndex,
    stream,
    noValueOnSuccess,
  };
}
