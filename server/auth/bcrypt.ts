/**
 * bcrypt ($2a$, as Go's golang.org/x/crypto/bcrypt writes it), so the password hashes kept in the auth store are the
 * ones etcd keeps: no npm package provides it here, and Node's crypto has no Blowfish with bcrypt's key schedule.
 * Blowfish's initial P-array and S-boxes are the hex digits of pi: computed once (BigInt Machin formula, ~10 ms)
 * instead of a 4 KB table.
 */
import { randomBytes } from 'crypto';

const WORDS = 18 + 4 * 256;

let PI_WORDS: Uint32Array | undefined;

/** The first 1042 32-bit words of pi's fractional part. */
function piWords(): Uint32Array {
  if (PI_WORDS) return PI_WORDS;
  const bits = BigInt(WORDS * 32 + 64);
  const one = 1n << bits;
  const arctanInv = (x: bigint): bigint => {
    let sum = 0n;
    let term = one / x;
    const x2 = x * x;
    for (let k = 1n; term !== 0n; k += 2n) {
      sum += (k & 2n ? -term : term) / k;
      term /= x2;
    }
    return sum;
  };
  const pi = 4n * (4n * arctanInv(5n) - arctanInv(239n));
  let frac = (pi & (one - 1n)) >> 64n; // drop guard bits: WORDS*32 fractional bits
  const w = new Uint32Array(WORDS);
  for (let i = WORDS - 1; i >= 0; i--) {
    w[i] = Number(frac & 0xffffffffn);
    frac >>= 32n;
  }
  PI_WORDS = w;
  return w;
}

class Blowfish {
  readonly P: Uint32Array;
  readonly S: Uint32Array;
  constructor() {
    const w = piWords();
    this.P = w.slice(0, 18);
    this.S = w.slice(18);
  }
  private f(x: number): number {
    const S = this.S;
    return (((S[x >>> 24] + S[256 | ((x >>> 16) & 0xff)]) ^ S[512 | ((x >>> 8) & 0xff)]) + S[768 | (x & 0xff)]) >>> 0;
  }
  /** Encrypts lr[off], lr[off+1] in place. */
  encrypt(lr: Uint32Array, off: number): void {
    let l = lr[off];
    let r = lr[off + 1];
    const P = this.P;
    for (let i = 0; i < 16; i += 2) {
      l ^= P[i];
      r ^= this.f(l);
      r ^= P[i + 1];
      l ^= this.f(r);
    }
    lr[off] = (r ^ P[17]) >>> 0;
    lr[off + 1] = (l ^ P[16]) >>> 0;
  }
  /** bcrypt's ExpandKey(state, salt, key); salt may be empty (ExpandKey(state, 0, key)). */
  expand(key: Buffer, salt: Buffer | undefined): void {
    const pos = { k: 0, s: 0 };
    const word = (b: Buffer, p: 'k' | 's'): number => {
      let w = 0;
      for (let i = 0; i < 4; i++) {
        w = ((w << 8) | b[pos[p]]) >>> 0;
        pos[p] = (pos[p] + 1) % b.length;
      }
      return w;
    };
    for (let i = 0; i < 18; i++) this.P[i] = (this.P[i] ^ word(key, 'k')) >>> 0;
    const lr = new Uint32Array(2);
    const fill = (arr: Uint32Array): void => {
      for (let i = 0; i < arr.length; i += 2) {
        if (salt) {
          lr[0] ^= word(salt, 's');
          lr[1] ^= word(salt, 's');
        }
        this.encrypt(lr, 0);
        arr[i] = lr[0];
        arr[i + 1] = lr[1];
      }
    };
    fill(this.P);
    fill(this.S);
  }
}

const B64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function b64encode(b: Buffer): string {
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const c1 = b[i];
    const c2 = i + 1 < b.length ? b[i + 1] : 0;
    const c3 = i + 2 < b.length ? b[i + 2] : 0;
    out += B64[c1 >> 2] + B64[((c1 & 3) << 4) | (c2 >> 4)];
    if (i + 1 < b.length) out += B64[((c2 & 15) << 2) | (c3 >> 6)];
    if (i + 2 < b.length) out += B64[c3 & 63];
  }
  return out;
}

function b64decode(s: string, n: number): Buffer | undefined {
  const out: number[] = [];
  const v = (i: number): number => (i < s.length ? B64.indexOf(s[i]) : 0);
  for (let i = 0; out.length < n; i += 4) {
    const a = v(i), b = v(i + 1), c = v(i + 2), d = v(i + 3);
    if (a < 0 || b < 0 || c < 0 || d < 0) return undefined;
    out.push(((a << 2) | (b >> 4)) & 0xff);
    if (out.length < n) out.push(((b << 4) | (c >> 2)) & 0xff);
    if (out.length < n) out.push(((c << 6) | d) & 0xff);
  }
  return Buffer.from(out);
}

const MAGIC = Buffer.from('OrpheanBeholderScryDoubt');

function raw(password: Buffer, salt: Buffer, cost: number): Buffer {
  // Go's bcrypt: the key is the password with a NUL, at most 72 bytes.
  const key = Buffer.concat([password, Buffer.from([0])]).subarray(0, 72);
  const bf = new Blowfish();
  bf.expand(key, salt);
  for (let i = 0; i < 2 ** cost; i++) {
    bf.expand(key, undefined);
    bf.expand(salt, undefined);
  }
  const ctext = new Uint32Array(6);
  for (let i = 0; i < 6; i++) ctext[i] = MAGIC.readUInt32BE(i * 4);
  for (let i = 0; i < 64; i++) for (let j = 0; j < 6; j += 2) bf.encrypt(ctext, j);
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeUInt32BE(ctext[i], i * 4);
  return out.subarray(0, 23);
}

export const MIN_COST = 4;
export const MAX_COST = 31;
export const DEFAULT_COST = 10;

/** A new "$2a$cost$salt+hash" for the password, as bcrypt.GenerateFromPassword. */
export function hashPassword(password: string | Buffer, cost = DEFAULT_COST): Buffer {
  const salt = randomBytes(16);
  const pw = typeof password === 'string' ? Buffer.from(password) : password;
  const c = String(cost).padStart(2, '0');
  return Buffer.from(`$2a$${c}$${b64encode(salt)}${b64encode(raw(pw, salt, cost))}`);
}

/** Whether the password matches a bcrypt hash ($2a$, $2b$, $2y$), as bcrypt.CompareHashAndPassword. */
export function checkPassword(hash: Buffer | string, password: string | Buffer): boolean {
  const h = typeof hash === 'string' ? hash : hash.toString('latin1');
  const m = /^\$2[aby]?\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/.exec(h);
  if (!m) return false;
  const cost = Number(m[1]);
  if (cost < MIN_COST || cost > MAX_COST) return false;
  const salt = b64decode(m[2], 16);
  if (!salt) return false;
  const pw = typeof password === 'string' ? Buffer.from(password) : password;
  const got = b64encode(raw(pw, salt, cost));
  // constant-time enough: both are 31 chars
  let diff = 0;
  for (let i = 0; i < 31; i++) diff |= got.charCodeAt(i) ^ m[3].charCodeAt(i);
  return diff === 0;
}
