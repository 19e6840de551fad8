/**
 * Reads a systemd unit file the way Ignition checks one: with go-systemd's unit deserializer (what
 * `validateUnitContent` calls), which rejects an option line without "=", a "[" without "]", text after a section
 * header and lines systemd would cut (longer than LINE_MAX, 2048 bytes).
 *
 * Which long lines it notices depends on how much of the text its 4096-byte bufio.Reader holds when it looks: the
 * check runs before each step of its lexer and only when at least 2048 bytes are buffered. The reader is followed
 * here byte for byte, so the answer is Ignition's, long lines included.
 */

export interface UnitOption {
  section: string;
  name: string;
  value: string;
}

export type UnitParse = { ok: true; options: UnitOption[] } | { ok: false; error: string; /** 0-based line of the problem. */ line: number };

const LINE_MAX = 2048;
const BUFFER_SIZE = 4096;

/** Go's bufio.Reader (4096 bytes) over a strings.Reader, reduced to the positions it keeps. */
class BufferedBytes {
  /** Offset in the source of buf[0]. */
  private base = 0;
  private r = 0;
  private w = 0;
  private eof = false;
  private lastRuneSize = -1;

  constructor(private readonly src: Buffer) {}

  /** Where the next byte is read from, as an offset in the source. */
  get offset(): number {
    return this.base + this.r;
  }

  buffered(): number {
    return this.w - this.r;
  }

  private fill(): void {
    if (this.r > 0) {
      this.base += this.r;
      this.w -= this.r;
      this.r = 0;
    }
    const n = Math.min(BUFFER_SIZE - this.w, this.src.length - (this.base + this.w));
    if (n === 0) this.eof = true;
    else this.w += n;
  }

  private byteAt(i: number): number {
    return this.src[this.base + i];
  }

  slice(from: number, to: number): Buffer {
    return this.src.subarray(from, to);
  }

  /** The next `n` bytes without reading them (filling the buffer as Peek does). */
  peek(n: number): Buffer {
    this.lastRuneSize = -1;
    while (this.w - this.r < n && this.w - this.r < BUFFER_SIZE && !this.eof) this.fill();
    const end = Math.min(this.r + n, this.w);
    return this.src.subarray(this.base + this.r, this.base + end);
  }

  /** The next rune, or undefined at the end. Invalid UTF-8 reads as U+FFFD, one byte long. */
  readRune(): number | undefined {
    const full = (): boolean => {
      const avail = this.w - this.r;
      if (avail <= 0) return false;
      const b = this.byteAt(this.r);
      const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      return avail >= need;
    };
    while (this.r + 4 > this.w && !full() && !this.eof && this.w - this.r < BUFFER_SIZE) this.fill();
    this.lastRuneSize = -1;
    if (this.r === this.w) {
      this.eof = false;
      return undefined;
    }
    let rune = this.byteAt(this.r);
    let size = 1;
    if (rune >= 0x80) {
      const text = this.src.subarray(this.base + this.r, this.base + Math.min(this.r + 4, this.w)).toString('utf8');
      rune = text.codePointAt(0) ?? 0xfffd;
      size = rune === 0xfffd ? 1 : Buffer.byteLength(String.fromCodePoint(rune));
    }
    this.r += size;
    this.lastRuneSize = size;
    return rune;
  }

  unreadRune(): void {
    if (this.lastRuneSize >= 0 && this.r >= this.lastRuneSize) this.r -= this.lastRuneSize;
    this.lastRuneSize = -1;
  }

  /** Reads through `delim`; `found` is false when the text ended first. */
  readBytes(delim: number): { bytes: Buffer; found: boolean } {
    this.lastRuneSize = -1;
    const start = this.offset;
    let search = 0;
    for (;;) {
      const from = this.base + this.r + search;
      const i = this.src.subarray(from, this.base + this.w).indexOf(delim);
      if (i >= 0) {
        this.r += search + i + 1;
        return { bytes: this.src.subarray(start, this.offset), found: true };
      }
      if (this.eof) {
        this.r = this.w;
        this.eof = false;
        return { bytes: this.src.subarray(start, this.offset), found: false };
      }
      if (this.w - this.r >= BUFFER_SIZE) {
        // A full buffer is handed over and reading goes on (ReadBytes collects the pieces).
        this.r = this.w;
        search = 0;
      } else {
        search = this.w - this.r;
      }
      this.fill();
    }
  }
}

const NL = 0x0a;
const CR = 0x0d;

/** Go's unicode.IsSpace. */
const isSpace = (r: number): boolean =>
  r === 0x20 || (r >= 0x09 && r <= 0x0d) || r === 0x85 || r === 0xa0 || r === 0x1680 || (r >= 0x2000 && r <= 0x200a) || [0x2028, 0x2029, 0x202f, 0x205f, 0x3000].includes(r);
const isComment = (b: number): boolean => b === 0x23 /* # */ || b === 0x3b; /* ; */

type Step = () => Step | undefined;

class UnitLexer {
  readonly options: UnitOption[] = [];
  /** go-systemd's lexer names this in one message but never sets it, so the message says "section name :". */
  private readonly section = '';

  constructor(private readonly buf: BufferedBytes) {}

  /** A line without its "\n" (a "\r" is cut only from a last line without "\n", as go-systemd does); whether the
   * text ended. */
  private toEOL(): { line: Buffer; eof: boolean } {
    const { bytes, found } = this.buf.readBytes(NL);
    let line = bytes;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1);
    if (line.length > 0 && line[line.length - 1] === NL) line = line.subarray(0, -1);
    return { line, eof: !found };
  }

  nextSection: Step = () => {
    const b = this.buf.readRune();
    if (b === undefined) return undefined;
    if (b === 0x5b /* [ */) return this.sectionName;
    if (isComment(b)) return this.ignoreLine(this.nextSection);
    return this.nextSection;
  };

  sectionName: Step = () => {
    const start = this.buf.offset;
    const { bytes, found } = this.buf.readBytes(0x5d /* ] */);
    if (!found) throw new UnitSyntaxError('unable to find end of section', start - 1);
    const section = bytes.subarray(0, -1).toString('utf8');
    return () => {
      const garbage = goTrim(this.toEOL().line.toString('utf8'));
      if (garbage !== '') throw new UnitSyntaxError(`found garbage after section name ${this.section}: ${JSON.stringify(garbage)}`);
      return this.nextSectionOrOption(section);
    };
  };

  ignoreLine(next: Step): Step {
    return () => {
      for (;;) {
        let line = this.toEOL().line;
        if (line.length > 0 && line[line.length - 1] === 0x20) line = line.subarray(0, -1);
        if (!(line.length > 0 && line[line.length - 1] === 0x5c)) break;
      }
      return next;
    };
  }

  nextSectionOrOption(section: string): Step {
    const step: Step = () => {
      const b = this.buf.readRune();
      if (b === undefined) return undefined;
      if (isSpace(b)) return step;
      if (b === 0x5b) return this.sectionName;
      if (isComment(b)) return this.ignoreLine(step);
      this.buf.unreadRune();
      return this.optionName(section);
    };
    return step;
  }

  optionName(section: string): Step {
    return () => {
      const start = this.buf.offset;
      for (;;) {
        const b = this.buf.readRune();
        if (b === undefined) throw new UnitSyntaxError('EOF');
        if (b === NL || b === CR) throw new UnitSyntaxError('unexpected newline encountered while parsing option name');
        if (b === 0x3d /* = */) break;
      }
      const name = goTrim(this.buf.slice(start, this.buf.offset - 1).toString('utf8'));
      return this.optionValue(section, name, []);
    };
  }

  optionValue(section: string, name: string, partial: Buffer[]): Step {
    return () => {
      const { line, eof } = this.toEOL();
      let more = false;
      if (goTrim(line.toString('utf8')) !== '') {
        partial.push(line);
        const continued = line.length > 0 && line[line.length - 1] === 0x5c;
        if (continued) {
          if (!eof) partial.push(Buffer.from('\n'));
          more = true;
        }
      }
      if (more) return this.optionValue(section, name, partial);
      const value = Buffer.concat(partial).toString('utf8');
      this.options.push({ section, name, value: value.endsWith('\n') ? `${goTrim(value)}\n` : goTrim(value) });
      return this.nextSectionOrOption(section);
    };
  }
}

/** A lexer error; `offset` is where it lies when that is not just before where reading stopped. */
class UnitSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** Go's strings.TrimSpace: Unicode white space, which is not quite JavaScript's. */
function goTrim(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, '');
}

/** Parses unit file text as Ignition's validation does; on failure, says why and on which line. */
export function parseUnitFile(text: string): UnitParse {
  const src = Buffer.from(text, 'utf8');
  const buf = new BufferedBytes(src);
  const lexer = new UnitLexer(buf);
  const lineOf = (offset: number): number => {
    let n = 0;
    for (let i = 0; i < offset && i < src.length; i++) if (src[i] === NL) n++;
    return n;
  };
  let step: Step | undefined = lexer.nextSection;
  try {
    while (step) {
      if (buf.buffered() >= LINE_MAX) {
        const ahead = buf.peek(LINE_MAX);
        if (!ahead.includes(NL) && !ahead.includes(CR)) {
          return { ok: false, error: `line too long (max ${LINE_MAX} bytes)`, line: lineOf(buf.offset) };
        }
      }
      step = step();
    }
  } catch (e) {
    if (e instanceof UnitSyntaxError) return { ok: false, error: e.message, line: lineOf(e.offset ?? Math.max(0, buf.offset - 1)) };
    throw e;
  }
  return { ok: true, options: lexer.options };
}
