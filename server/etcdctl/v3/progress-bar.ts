/**
 * The progress bar etcdctl's `check` commands draw (gopkg.in/cheggaaa/pb.v1 with the "Bom !" format): every 200 ms
 * "\r", the counters, a bar as wide as the terminal allows (none without a terminal), the percentage and the time
 * left; on finish the time it took and a newline.
 */
import * as fs from 'node:fs';
import * as tty from 'node:tty';

const REFRESH_MS = 200;
/** "Bom !": start, current, current's head, empty, end. */
const [BAR_START, CURRENT, CURRENT_N, EMPTY, BAR_END] = ['B', 'o', 'm', ' ', '!'];

/** pb's terminal width: the controlling terminal's (/dev/tty), else stdin's; 0 when there is none. */
function terminalWidth(): number {
  let fd: number;
  try {
    fd = fs.openSync('/dev/tty', 'r');
  } catch {
    return process.stdin.isTTY && process.stdout.isTTY ? (process.stdout.columns ?? 0) : 0;
  }
  try {
    if (!tty.isatty(fd)) return 0;
    const ws = new tty.WriteStream(fd);
    const cols = ws.columns ?? 0;
    ws.destroy();
    return cols;
  } catch {
    return 0;
  }
}

/** Go's time.Duration.String of whole seconds. */
function goSeconds(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

/** pb's formatDuration of the time left: [days d][hours h]MMmSSs. */
function leftDuration(ms: number): string {
  let s = Math.floor(ms / 1000);
  let out = '';
  if (s > 86400) {
    out += `${Math.floor(s / 86400)}d`;
    s %= 86400;
  }
  if (s > 3600) {
    out += `${Math.floor(s / 3600)}h`;
    s %= 3600;
  }
  return `${out}${String(Math.floor(s / 60)).padStart(2, '0')}m${String(s % 60).padStart(2, '0')}s`;
}

export class ProgressBar {
  private current = 0;
  private previous = 0;
  private startTime = 0;
  private changeTime = 0;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  private readonly width = terminalWidth();

  constructor(private readonly total: number, private readonly write: (s: string) => void) {}

  start(): this {
    this.startTime = this.changeTime = Date.now();
    this.update();
    this.timer = setInterval(() => this.update(), REFRESH_MS);
    return this;
  }

  add(n: number): void {
    this.current += n;
  }

  /** Stops redrawing, as a process exiting does. */
  stop(): void {
    clearInterval(this.timer);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    this.draw(true);
    this.write('\n');
  }

  private update(): void {
    if (this.current !== this.previous) {
      this.changeTime = Date.now();
      this.previous = this.current;
    }
    this.draw(false);
  }

  private draw(final: boolean): void {
    const { total, current } = this;
    const percentBox = ` ${(total > 0 ? current / (total / 100) : current / 100).toFixed(2).padStart(6)}%`;
    const countersBox = ` ${current} / ${total > 0 ? total : '?'} `;
    const now = Date.now();
    let timeLeftBox = '';
    if (final) timeLeftBox = ` ${goSeconds(Math.floor((now - this.startTime) / 1000))}`;
    else if (current > 0 && total > 0) {
      const perEntry = (this.changeTime - this.startTime) / current;
      const left = Math.floor(((total - current) * perEntry - (now - this.changeTime)) / 1000) * 1000;
      if (left > 0) timeLeftBox = ` ${leftDuration(left)}`;
    }
    let barBox = '';
    const size = this.width - (countersBox.length + BAR_START.length + BAR_END.length + percentBox.length + timeLeftBox.length);
    if (size > 0 && total > 0) {
      const curSize = Math.min(size, Math.ceil((current / total) * size));
      const emptySize = Math.max(0, size - curSize);
      barBox = BAR_START;
      if (emptySize <= 0) barBox += CURRENT.repeat(curSize);
      else if (curSize > 0) barBox += CURRENT.repeat(Math.max(0, curSize - 1)) + CURRENT_N;
      barBox += EMPTY.repeat(emptySize) + BAR_END;
    }
    const out = countersBox + barBox + percentBox + timeLeftBox;
    this.write(`\r${out}${' '.repeat(Math.max(0, this.width - out.length))}`);
  }
}
