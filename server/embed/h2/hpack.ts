/**
 * HPACK (RFC 7541), as much as the client port needs to read a client's header blocks and write them again: a
 * decoder that keeps the client's dynamic table, and an encoder of literals that never touches the peer's table.
 * Names and values are byte strings held as latin1 strings (one char per byte), so sizes are the octet counts.
 */
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables';

export type Header = [name: string, value: string];

export class HpackError extends Error {
  constructor(message: string) {
    super(`hpack: ${message}`);
    this.name = 'HpackError';
  }
}

/** The Huffman code as a binary tree: node i's children are at tree[2i] (bit 0) and tree[2i+1] (bit 1). */
interface HuffmanTree {
  /** child node index, or -(symbol + 1) for a leaf, or 0 for none */
  children: Int32Array;
}

let huffmanTree: HuffmanTree | undefined;

function tree(): HuffmanTree {
  if (huffmanTree) return huffmanTree;
  // 257 leaves: at most 256 inner nodes.
  const children = new Int32Array(2 * 512);
  let next = 1;
  for (let sym = 0; sym < HUFFMAN_CODES.length; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const slot = 2 * node + ((code >>> b) & 1);
      if (b === 0) children[slot] = -(sym + 1);
      else {
        if (children[slot] === 0) children[slot] = next++;
        node = children[slot];
      }
    }
  }
  return (huffmanTree = { children });
}

/** Decodes a Huffman-coded string; the padding must be a prefix of EOS (all ones) shorter than a byte. */
export function huffmanDecode(src: Buffer): string {
  const { children } = tree();
  let out = '';
  let node = 0;
  let depth = 0;
  let ones = true;
  for (let i = 0; i < src.length; i++) {
    const byte = src[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = children[2 * node + bit];
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError('EOS in a Huffman-coded string');
        out += String.fromCharCode(sym);
        node = 0;
        depth = 0;
        ones = true;
      } else if (next === 0) throw new HpackError('invalid Huffman code');
      else {
        node = next;
        depth++;
        ones = ones && bit === 1;
      }
    }
  }
  if (depth > 7 || !ones) throw new HpackError('invalid Huffman padding');
  return out;
}

/** A reader over one header block. */
class BlockReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  more(): boolean {
    return this.pos < this.buf.length;
  }

  /** An integer with an N-bit prefix (RFC 7541 5.1); the first byte's other bits are the caller's. */
  int(prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    if (this.pos >= this.buf.length) throw new HpackError('truncated integer');
    let v = this.buf[this.pos++] & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new HpackError('truncated integer');
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (v > 0xffffffff) throw new HpackError('integer overflow');
      if ((b & 0x80) === 0) return v;
    }
  }

  string(): string {
    if (this.pos >= this.buf.length) throw new HpackError('truncated string');
    const huffman = (this.buf[this.pos] & 0x80) !== 0;
    const len = this.int(7);
    if (this.pos + len > this.buf.length) throw new HpackError('truncated string');
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return huffman ? huffmanDecode(raw) : raw.toString('latin1');
  }
}

const ENTRY_OVERHEAD = 32;

/** The decoding side of one connection: its dynamic table follows every block it is given, in order. */
export class HpackDecoder {
  private table: Header[] = [];
  private size = 0;
  private maxSize: number;

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE the decoding end announced (4096 unless told). */
  constructor(private readonly settingsMax = 4096) {
    this.maxSize = settingsMax;
  }

  decode(block: Buffer): Header[] {
    const r = new BlockReader(block);
    const out: Header[] = [];
    let fieldSeen = false;
    while (r.more()) {
      const b = block[r.pos];
      if (b & 0x80) {
        out.push(this.lookup(r.int(7)));
        fieldSeen = true;
      } else if (b & 0x40) {
        const h = this.literal(r, 6);
        this.add(h);
        out.push(h);
        fieldSeen = true;
      } else if (b & 0x20) {
        // A dynamic table size update: only at the start of a block (RFC 7541 4.2).
        if (fieldSeen) throw new HpackError('table size update after a header field');
        const size = r.int(5);
        if (size > this.settingsMax) throw new HpackError('table size update above the announced maximum');
        this.maxSize = size;
        this.evict(0);
      } else {
        out.push(this.literal(r, 4));
        fieldSeen = true;
      }
    }
    return out;
  }

  private literal(r: BlockReader, prefixBits: number): Header {
    const index = r.int(prefixBits);
    const name = index === 0 ? r.string() : this.lookup(index)[0];
    return [name, r.string()];
  }

  private lookup(index: number): Header {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) {
      const [n, v] = STATIC_TABLE[index - 1];
      return [n, v];
    }
    const h = this.table[index - STATIC_TABLE.length - 1];
    if (!h) throw new HpackError(`index ${index} out of the table`);
    return h;
  }

  private add(h: Header): void {
    const size = h[0].length + h[1].length + ENTRY_OVERHEAD;
    this.evict(size);
    // An entry larger than the table empties it and is not added (RFC 7541 4.4).
    if (size > this.maxSize) return;
    this.table.unshift(h);
    this.size += size;
  }

  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.maxSize) {
      const h = this.table.pop()!;
      this.size -= h[0].length + h[1].length + ENTRY_OVERHEAD;
    }
  }
}

function writeInt(out: number[], firstByteBits: number, prefixBits: number, v: number): void {
  const max = (1 << prefixBits) - 1;
  if (v < max) {
    out.push(firstByteBits | v);
    return;
  }
  out.push(firstByteBits | max);
  v -= max;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/**
 * A header block of literals without indexing and with literal names (RFC 7541 6.2.2): the decoder's dynamic table
 * is never used or changed, so blocks written this way can be read by a decoder that saw no other block.
 */
export function encodeLiterals(headers: Header[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    out.push(0);
    for (const s of [name, value]) {
      writeInt(out, 0, 7, s.length);
      for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(out);
}
