import { createHash } from 'node:crypto';

/**
 * etcd's deterministic IDs. A member's ID is the first 8 bytes (big-endian) of SHA-1 over its sorted peer URLs,
 * the cluster token, and (for members added at runtime) the Unix time of the addition. The cluster ID is the same
 * over the sorted member IDs as 8-byte big-endian words. So every member of a bootstrap computes the same IDs, and
 * a member started with another token or other peers gets other IDs (and is refused).
 *
 * IDs are written as etcd writes them: lowercase hex without leading zeros.
 */

export function memberId(peerURLs: string[], clusterToken: string, addedAtUnixSeconds?: number): string {
  const h = createHash('sha1');
  for (const u of [...peerURLs].sort()) h.update(u);
  h.update(clusterToken);
  if (addedAtUnixSeconds !== undefined) h.update(String(addedAtUnixSeconds));
  return h.digest().readBigUInt64BE(0).toString(16);
}

export function clusterId(memberIds: string[]): string {
  const ids = memberIds.map((id) => parseId(id)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => buf.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(buf).digest().readBigUInt64BE(0).toString(16);
}

/** Parses an ID in etcd's hex form; throws on anything else. */
export function parseId(s: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) throw new Error(`invalid member ID "${s}"`);
  return BigInt('0x' + s);
}
