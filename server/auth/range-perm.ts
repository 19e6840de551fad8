/**
 * A user's key permissions merged from all its roles (etcd's auth/range_perm_cache.go): for reading and for writing,
 * the union of its permitted intervals. A permission with no range end is one key; a range end of "\0" means every
 * key from key on. A request for a range is permitted when the union covers all of it; for one key, when some
 * permission holds it.
 */
import { Permission_Type, type Permission, type Role, type User } from '../api/v3rpc/pb/authpb/auth';

/** [begin, end); end undefined: unbounded ("\0" in a request or permission). */
interface Interval {
  begin: Buffer;
  end: Buffer | undefined;
}

const ZERO = Buffer.from([0]);

/** Intervals merged into disjoint, sorted ones. */
function merge(ivs: Interval[]): Interval[] {
  ivs.sort((a, b) => Buffer.compare(a.begin, b.begin));
  const out: Interval[] = [];
  for (const iv of ivs) {
    const last = out[out.length - 1];
    if (last && (last.end === undefined || Buffer.compare(iv.begin, last.end) <= 0)) {
      if (last.end !== undefined && (iv.end === undefined || Buffer.compare(iv.end, last.end) > 0)) last.end = iv.end;
    } else out.push({ begin: iv.begin, end: iv.end });
  }
  return out;
}

function permInterval(p: Permission): Interval {
  if (p.rangeEnd.length === 0) return { begin: p.key, end: Buffer.concat([p.key, ZERO]) };
  if (p.rangeEnd.length === 1 && p.rangeEnd[0] === 0) return { begin: p.key, end: undefined };
  return { begin: p.key, end: p.rangeEnd };
}

export class UnifiedPerms {
  constructor(
    private readonly read: Interval[],
    private readonly write: Interval[],
  ) {}

  static of(user: User, roles: Map<string, Role>): UnifiedPerms {
    const read: Interval[] = [];
    const write: Interval[] = [];
    for (const name of user.roles) {
      const role = roles.get(name);
      if (!role) continue;
      for (const p of role.keyPermission) {
        const iv = permInterval(p);
        if (p.permType === Permission_Type.READ || p.permType === Permission_Type.READWRITE) read.push(iv);
        if (p.permType === Permission_Type.WRITE || p.permType === Permission_Type.READWRITE) write.push({ ...iv });
      }
    }
    return new UnifiedPerms(merge(read), merge(write));
  }

  /** Whether key (rangeEnd empty) or [key, rangeEnd) is permitted for reading (READ) or writing (WRITE). */
  permits(key: Buffer, rangeEnd: Buffer | undefined, type: Permission_Type.READ | Permission_Type.WRITE): boolean {
    const ivs = type === Permission_Type.READ ? this.read : this.write;
    if (!rangeEnd || rangeEnd.length === 0) {
      for (const iv of ivs) {
        if (Buffer.compare(iv.begin, key) <= 0 && (iv.end === undefined || Buffer.compare(key, iv.end) < 0)) return true;
      }
      return false;
    }
    const end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? undefined : rangeEnd;
    // The merged intervals are disjoint: one of them must hold the whole request.
    for (const iv of ivs) {
      if (Buffer.compare(iv.begin, key) > 0) continue;
      if (iv.end === undefined) return true;
      if (end === undefined) continue;
      if (Buffer.compare(end, iv.end) <= 0) return true;
    }
    return false;
  }
}
