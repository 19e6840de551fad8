/**
 * Auth tokens (etcd's auth/simple_token.go and auth/jwt.go), chosen by --auth-token:
 * - `simple` (the default): a random 16-letter prefix from the member that took the Authenticate request, a dot and
 *   the Raft index of its entry; every member assigns it when applying that entry, so it works on all of them. It
 *   lives --auth-token-ttl seconds after its last use, and only in memory.
 * - `jwt,pub-key=…,priv-key=…,sign-method=RS256,ttl=5m`: a signed JWT with the user name and the auth revision it
 *   was issued at; any member with the public key verifies it.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';

export interface TokenInfo {
  username: string;
  /** 0: the auth store's current revision (simple tokens) */
  revision: number;
}

export interface TokenProvider {
  /** The token's user, or undefined when it is unknown, expired or forged. */
  info(token: string): TokenInfo | undefined;
  /** A new token for the user; prefix and index come from the Authenticate entry. */
  assign(username: string, revision: number, prefix: string, index: number): string;
  /** A fresh simple-token prefix (the proposing member makes it; empty for JWT). */
  genPrefix(): string;
  enable(): void;
  disable(): void;
  invalidateUser(username: string): void;
}

export class ErrInvalidAuthOpts extends Error {
  constructor() {
    super('auth: invalid auth options');
  }
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

export class SimpleTokens implements TokenProvider {
  private tokens = new Map<string, { username: string; expires: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  genPrefix(): string {
    const b = crypto.randomBytes(16);
    let s = '';
    for (let i = 0; i < 16; i++) s += LETTERS[b[i] % LETTERS.length];
    return s;
  }

  assign(username: string, _revision: number, prefix: string, index: number): string {
    const token = `${prefix}.${index}`;
    this.tokens.set(token, { username, expires: this.now() + this.ttlMs });
    return token;
  }

  info(token: string): TokenInfo | undefined {
    const t = this.tokens.get(token);
    if (!t) return undefined;
    const now = this.now();
    if (t.expires <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    t.expires = now + this.ttlMs; // a used token lives on, as etcd's resetSimpleToken
    return { username: t.username, revision: 0 };
  }

  enable(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      const now = this.now();
      for (const [k, t] of this.tokens) if (t.expires <= now) this.tokens.delete(k);
    }, Math.max(1000, Math.min(this.ttlMs, 60_000)));
    this.sweeper.unref();
  }

  disable(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.tokens.clear();
  }

  invalidateUser(username: string): void {
    for (const [k, t] of this.tokens) if (t.username === username) this.tokens.delete(k);
  }
}

const b64url = (b: Buffer): string => b.toString('base64url');

/** The JWT sign methods etcd 3.4 accepts, as Node's crypto signs them. */
const METHODS: Record<string, { hash: string; kind: 'rsa' | 'pss' | 'ec' | 'hmac'; ecBytes?: number }> = {
  RS256: { hash: 'sha256', kind: 'rsa' }, RS384: { hash: 'sha384', kind: 'rsa' }, RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'pss' }, PS384: { hash: 'sha384', kind: 'pss' }, PS512: { hash: 'sha512', kind: 'pss' },
  ES256: { hash: 'sha256', kind: 'ec', ecBytes: 32 }, ES384: { hash: 'sha384', kind: 'ec', ecBytes: 48 }, ES512: { hash: 'sha512', kind: 'ec', ecBytes: 66 },
  HS256: { hash: 'sha256', kind: 'hmac' }, HS384: { hash: 'sha384', kind: 'hmac' }, HS512: { hash: 'sha512', kind: 'hmac' },
};

/** Go duration strings as the ttl option takes them ("5m", "300s", "1h30m"). */
function parseDuration(s: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  let seen = '';
  for (let m; (m = re.exec(s)); ) {
    ms += Number(m[1]) * unit[m[2]];
    seen += m[0];
  }
  return seen === s && s !== '' ? ms : undefined;
}

export class JwtTokens implements TokenProvider {
  private readonly method: string;
  private readonly pub?: crypto.KeyObject;
  private readonly priv?: crypto.KeyObject;
  private readonly secret?: Buffer;
  private readonly ttlMs: number;

  constructor(opts: Map<string, string>, private readonly now: () => number = Date.now) {
    this.method = opts.get('sign-method') ?? '';
    const m = METHODS[this.method];
    if (!m) throw new Error('auth: invalid auth signature method');
    const ttl = opts.has('ttl') ? parseDuration(opts.get('ttl')!) : 5 * 60_000;
    if (ttl === undefined) throw new ErrInvalidAuthOpts();
    this.ttlMs = ttl;
    const pubFile = opts.get('pub-key');
    const privFile = opts.get('priv-key');
    if (m.kind === 'hmac') {
      if (!privFile) throw new Error('auth: missing key data');
      this.secret = fs.readFileSync(privFile);
      return;
    }
    if (!pubFile && !privFile) throw new Error('auth: missing key data');
    if (privFile) this.priv = crypto.createPrivateKey(fs.readFileSync(privFile));
    this.pub = pubFile ? crypto.createPublicKey(fs.readFileSync(pubFile)) : crypto.createPublicKey(this.priv!);
  }

  genPrefix(): string {
    return '';
  }

  assign(username: string, revision: number): string {
    if (!this.priv && !this.secret) throw new Error('auth: token signing attempted with verify-only key');
    const header = b64url(Buffer.from(JSON.stringify({ alg: this.method, typ: 'JWT' })));
    const claims = { exp: Math.floor((this.now() + this.ttlMs) / 1000), revision, username };
    const body = b64url(Buffer.from(JSON.stringify(claims)));
    return `${header}.${body}.${b64url(this.sign(Buffer.from(`${header}.${body}`)))}`;
  }

  info(token: string): TokenInfo | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    try {
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString()) as { alg?: string };
      if (header.alg !== this.method) return undefined;
      if (!this.verify(Buffer.from(`${parts[0]}.${parts[1]}`), Buffer.from(parts[2], 'base64url'))) return undefined;
      const c = JSON.parse(Buffer.from(parts[1], 'base64url').toString()) as { username?: unknown; revision?: unknown; exp?: unknown };
      if (typeof c.username !== 'string' || typeof c.revision !== 'number') return undefined;
      if (typeof c.exp === 'number' && c.exp * 1000 <= this.now()) return undefined;
      return { username: c.username, revision: c.revision };
    } catch {
      return undefined;
    }
  }

  private sign(data: Buffer): Buffer {
    const m = METHODS[this.method];
    if (m.kind === 'hmac') return crypto.createHmac(m.hash, this.secret!).update(data).digest();
    if (m.kind === 'ec') return crypto.sign(m.hash, data, { key: this.priv!, dsaEncoding: 'ieee-p1363' });
    if (m.kind === 'pss') return crypto.sign(m.hash, data, { key: this.priv!, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST });
    return crypto.sign(m.hash, data, this.priv!);
  }

  private verify(data: Buffer, sig: Buffer): boolean {
    const m = METHODS[this.method];
    if (m.kind === 'hmac') {
      const want = crypto.createHmac(m.hash, this.secret!).update(data).digest();
      return want.length === sig.length && crypto.timingSafeEqual(want, sig);
    }
    if (m.kind === 'ec') return crypto.verify(m.hash, data, { key: this.pub!, dsaEncoding: 'ieee-p1363' }, sig);
    if (m.kind === 'pss') return crypto.verify(m.hash, data, { key: this.pub!, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_AUTO }, sig);
    return crypto.verify(m.hash, data, this.pub!, sig);
  }

  enable(): void {}
  disable(): void {}
  invalidateUser(): void {}
}

/** The provider for --auth-token ("simple", "jwt,k=v,…"), checked as etcd's NewTokenProvider. */
export function newTokenProvider(spec: string, ttlSeconds: number): TokenProvider {
  const [type, ...rest] = spec.split(',');
  const opts = new Map<string, string>();
  for (const kv of rest) {
    const pair = kv.split('=');
    if (pair.length !== 2 || opts.has(pair[0])) throw new ErrInvalidAuthOpts();
    opts.set(pair[0], pair[1]);
  }
  if (type === 'simple') return new SimpleTokens(ttlSeconds * 1000);
  if (type === 'jwt') return new JwtTokens(opts);
  throw new ErrInvalidAuthOpts();
}
