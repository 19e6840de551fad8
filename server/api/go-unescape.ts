/**
 * Go's url.PathUnescape, as etcd's handlers see request paths: %XX escapes become bytes, and the bytes are a Go
 * string, which need not be valid UTF-8 (JSON shows an invalid byte as U+FFFD, and so does this decoding). A
 * malformed escape ("%zz", a lone "%") is an error: undefined.
 */
export function goPathUnescape(s: string): string | undefined {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s.charCodeAt(i) === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const cp = s.codePointAt(i)!;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
      i += cp > 0xffff ? 2 : 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
