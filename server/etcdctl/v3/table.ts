/**
 * etcdctl's `-w table` output: olekukonko/tablewriter as etcdctl sets it up (headers upper-cased and centred,
 * cells aligned right, borders, cells wrapped at 30 columns with tablewriter's minimal-raggedness line breaking).
 */

/** tablewriter's MAX_ROW_WIDTH: cells wider than this are wrapped at spaces. */
const MAX_WIDTH = 30;

/** The display width of a cell's text (ASCII here: one column a character). */
const width = (s: string): number => [...s].length;

/** tablewriter's WrapWords: line breaks with the least sum of squared slack, too-long lines penalised. */
function wrapWords(words: string[], lim: number): string[][] {
  const n = words.length;
  const len: number[][] = [];
  for (let i = 0; i < n; i++) {
    len[i] = [];
    len[i][i] = width(words[i]);
    for (let j = i + 1; j < n; j++) len[i][j] = len[i][j - 1] + 1 + width(words[j]);
  }
  const nbrk = new Array<number>(n).fill(0);
  const cost = new Array<number>(n).fill(2 ** 31 - 1);
  for (let i = n - 1; i >= 0; i--) {
    if (len[i][n - 1] <= lim) {
      cost[i] = 0;
      nbrk[i] = n;
      continue;
    }
    for (let j = i + 1; j < n; j++) {
      const d = lim - len[i][j - 1];
      let c = d * d + cost[j];
      if (len[i][j - 1] > lim) c += 1e5;
      if (c < cost[i]) {
        cost[i] = c;
        nbrk[i] = j;
      }
    }
  }
  const lines: string[][] = [];
  for (let i = 0; i < n; i = nbrk[i]) lines.push(words.slice(i, nbrk[i]));
  return lines;
}

/** tablewriter's WrapString. */
function wrapString(s: string, lim: number): string[] {
  const words = s.replace(/\n/g, ' ').split(' ');
  for (const w of words) if (width(w) > lim) lim = width(w);
  return wrapWords(words, lim).map((l) => l.join(' '));
}

/** A cell's lines (parseDimension with auto-wrap and reflow), and the column width they need. */
function cellLines(s: string): { lines: string[]; w: number } {
  let raw = s.split('\n');
  let max = Math.min(Math.max(...raw.map(width)), MAX_WIDTH);
  raw = [raw.join(' ')];
  let w = max;
  const out: string[] = [];
  for (const para of raw) {
    for (const line of wrapString(para, max)) {
      out.push(line);
      if (width(line) > w) w = width(line);
    }
  }
  max = w;
  return { lines: out, w: max };
}

/** tablewriter's Title: `_` and non-numeric `.` as spaces, trimmed, upper case. */
function title(name: string): string {
  const rs = [...name];
  const numOrSpace = (c: string | undefined) => c !== undefined && /[0-9 ]/.test(c);
  for (let i = 0; i < rs.length; i++) {
    if (rs[i] === '_') rs[i] = ' ';
    else if (rs[i] === '.' && ((i !== 0 && !numOrSpace(rs[i - 1])) || (i !== rs.length - 1 && !numOrSpace(rs[i + 1])))) rs[i] = ' ';
  }
  const t = rs.join('').trim();
  return (t === '' && name.length > 0 ? ' ' : t).toUpperCase();
}

const center = (s: string, w: number): string => {
  const gap = w - width(s);
  if (gap <= 0) return s;
  const left = Math.floor(gap / 2);
  return ' '.repeat(left) + s + ' '.repeat(gap - left);
};
const right = (s: string, w: number): string => ' '.repeat(Math.max(0, w - width(s))) + s;

/** Renders a table as etcdctl does: the header centred, every cell right-aligned. */
export function renderTable(header: string[], rows: string[][]): string {
  const cs: number[] = [];
  const fit = (i: number, w: number) => {
    if (cs[i] === undefined || cs[i] < w || cs[i] === 0) cs[i] = w;
  };
  const head = header.map((h, i) => {
    const c = cellLines(h);
    fit(i, c.w);
    return c.lines;
  });
  const body = rows.map((row) => row.map((v, i) => {
    const c = cellLines(v);
    fit(i, c.w);
    return c.lines;
  }));
  const line = `+${cs.map((w) => '-'.repeat(w + 2)).join('+')}+\n`;
  let out = line;
  const headHeight = Math.max(...head.map((l) => l.length));
  for (let x = 0; x < headHeight; x++) out += `|${head.map((l, y) => ` ${center(title(l[x] ?? ''), cs[y])} |`).join('')}\n`;
  out += line;
  for (const cells of body) {
    const h = Math.max(...cells.map((l) => l.length));
    for (let x = 0; x < h; x++) out += `|${cells.map((l, y) => ` ${right(l[x] ?? '  ', cs[y])} `).join('|')}|\n`;
  }
  return out + line;
}
