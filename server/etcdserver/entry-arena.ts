/**
 * Memory for the data of the log entries this member proposes (v2 requests, v3 requests, membership), carved from
 * 64 KiB slabs. A buffer of its own per entry costs about 400 bytes of allocator and V8 bookkeeping beyond its data,
 * more than a 100-byte value's whole entry, and the Raft log keeps up to --snapshot-count (100,000) entries. Entries
 * leave the log in the order they were made (compaction), so a slab is freed with its last entry; what outlives an
 * entry is what its applier decoded (strings, or copies: the v3 decoders copy bytes fields), never a view of its
 * bytes. Entries larger than a slab's share get a buffer of their own.
 */
const SLAB_BYTES = 64 * 1024;
/** Larger entries are allocated alone: a slab's tail is never wasted on them. */
const MAX_SHARED = 4 * 1024;

let slab: Buffer | undefined;
let used = SLAB_BYTES;

/** `size` bytes for one entry's data (contents unset), not shared with Node's 8 KB buffer pool. */
export function allocEntryData(size: number): Buffer {
  if (size > MAX_SHARED) return Buffer.allocUnsafeSlow(size);
  if (!slab || used + size > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    used = 0;
  }
  // Entries start on 8-byte boundaries, as their own buffers would (readers may take typed views of them).
  const buf = slab.subarray(used, used + size);
  used += (size + 7) & ~7;
  return buf;
}
