/**
 * Who a v2 request comes from and what it may do, as etcd 3.4's v2http decides (client_auth.go): HTTP Basic auth
 * (or, under --client-cert-auth and without an Authorization header, a verified client certificate's common name),
 * the root role for the auth and members APIs, read/write permissions on key paths for /v2/keys, and the guest role
 * for a request without credentials. With auth disabled everything is allowed, at the cost of one map lookup.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { checkPasswordAsync } from '../bcrypt-pool';
import { GUEST_ROLE, ROOT_ROLE, V2User, roleHasAccess } from './model';
import { InvalidRecordError, V2AuthStore } from './store';

/** Verified passwords remembered (by hash), at most this many; past it the memory starts again. */
const MAX_VERIFIED = 1024;

const isRead = (method: string | undefined): boolean => method === 'GET' || method === 'HEAD';

/** A lookup whose error etcd's checks take as "no such user (role)". */
function orNone<T>(lookup: () => T | undefined): T | undefined {
  try {
    return lookup();
  } catch (err) {
    if (err instanceof InvalidRecordError) return undefined;
    throw err;
  }
}

/** Go's Request.BasicAuth: "Basic " (any case) and standard base64 of user:password; undefined when malformed. */
export function parseBasicAuth(header: string): { user: string; password: Buffer } | undefined {
  if (header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const b64 = header.slice(6);
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) return undefined;
  const raw = Buffer.from(b64, 'base64');
  const colon = raw.indexOf(0x3a);
  if (colon < 0) return undefined;
  return { user: raw.toString('utf8', 0, colon), password: raw.subarray(colon + 1) };
}

export class V2AuthAccess {
  /**
   * bcrypt hash → SHA-256 of the password that matched it. etcd runs bcrypt on every request with credentials
   * (tens of ms of CPU); a password already verified against the same hash is not checked again. A changed
   * password is a new hash, so nothing stale is ever accepted.
   */
  private readonly verified = new Map<string, Buffer>();

  constructor(
    readonly store: V2AuthStore,
    /** --client-cert-auth: a verified client certificate's common name names the user when no header is given */
    private readonly clientCertAuth: boolean,
  ) {}

  /**
   * etcd's hasWriteRootAccess: reads are open to all; anything else needs the root role (the members API). A
   * Promise only when a password must go through bcrypt (on a worker thread, bcrypt-pool.ts).
   */
  hasWriteRootAccess(req: http.IncomingMessage): boolean | Promise<boolean> {
    return isRead(req.method) || this.hasRootAccess(req);
  }

  /** etcd's hasRootAccess: a user holding the root role (the auth API). */
  hasRootAccess(req: http.IncomingMessage): boolean | Promise<boolean> {
    if (!this.store.enabled()) return true;
    const header = req.headers.authorization;
    const user = !header && this.clientCertAuth ? this.userFromClientCertificate(req) : this.userFromBasicAuth(header);
    const root = (u: V2User | undefined) => u?.roles?.includes(ROOT_ROLE) ?? false;
    return user instanceof Promise ? user.then(root) : root(user);
  }

  /**
   * etcd's hasKeyPrefixAccess: may this request read (GET, HEAD) or write `key` (the path after /v2/keys, as the
   * client wrote it)? A recursive request needs a permission ending in * that covers the key. Throws GoPanic where
   * etcd's handler panics (a role with an empty permission path, a user or role name that is a directory). A Promise
   * only when a password must go through bcrypt: with auth off, or a password already verified, the answer is here.
   */
  hasKeyAccess(req: http.IncomingMessage, key: string, recursive: boolean): boolean | Promise<boolean> {
    if (!this.store.enabled()) return true;
    const write = !isRead(req.method);
    const header = req.headers.authorization;
    if (!header) {
      const user = this.clientCertAuth ? this.userFromClientCertificate(req) : undefined;
      if (!user) {
        // No credentials: the guest role's permissions, matched as single keys even for a recursive request.
        const guest = orNone(() => this.store.getRole(GUEST_ROLE));
        return guest !== undefined && roleHasAccess(guest, key, write, false);
      }
      return this.rolesAllow(user, key, write, recursive);
    }
    const user = this.userFromBasicAuth(header);
    if (user instanceof Promise) return user.then((u) => (u ? this.rolesAllow(u, key, write, recursive) : false));
    return user ? this.rolesAllow(user, key, write, recursive) : false;
  }

  private rolesAllow(user: V2User, key: string, write: boolean, recursive: boolean): boolean {
    for (const name of user.roles ?? []) {
      const role = orNone(() => this.store.getRole(name));
      if (role && roleHasAccess(role, key, write, recursive)) return true;
    }
    return false;
  }

  private userFromBasicAuth(header: string | undefined): V2User | undefined | Promise<V2User | undefined> {
    const creds = header ? parseBasicAuth(header) : undefined;
    if (!creds) return undefined;
    const user = orNone(() => this.store.getUser(creds.user));
    if (!user) return undefined;
    const ok = this.passwordMatches(user.password, creds.password);
    // The user is looked up again after bcrypt: its roles (or its password) may have changed meanwhile.
    return ok === true ? user : ok === false ? undefined : ok.then((yes) => {
      const now = yes ? orNone(() => this.store.getUser(creds.user)) : undefined;
      return now?.password === user.password ? now : undefined;
    });
  }

  private passwordMatches(hash: string, password: Buffer): boolean | Promise<boolean> {
    const digest = createHash('sha256').update(password).digest();
    const known = this.verified.get(hash);
    if (known && timingSafeEqual(known, digest)) return true;
    return checkPasswordAsync(hash, password).then((ok) => {
      if (!ok) return false;
      if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
      this.verified.set(hash, digest);
      return true;
    });
  }

  /** etcd's userFromClientCertificate: the first common name along the verified chain that names a user. */
  private userFromClientCertificate(req: http.IncomingMessage): V2User | undefined {
    const socket = req.socket as TLSSocket;
    if (!socket.encrypted || !socket.authorized) return undefined;
    const seen = new Set<PeerCertificate>();
    for (let cert: PeerCertificate | undefined = socket.getPeerCertificate(true); cert?.subject && !seen.has(cert); cert = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate) {
      seen.add(cert);
      const cn = cert.subject.CN as string | string[] | undefined;
      for (const name of Array.isArray(cn) ? cn : cn ? [cn] : []) {
        const user = orNone(() => this.store.getUser(name));
        if (user) return user;
      }
    }
    return undefined;
  }
}
