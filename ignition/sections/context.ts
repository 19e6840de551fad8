/** What every section's translation gets: where to report, what to add to, and the command-line settings. */
import type { Report } from '../diagnostics';
import type { ModelBuilder } from '../model';
import type { Platform } from '../platforms';

export interface TranslateContext {
  report: Report;
  out: ModelBuilder;
  /** Set by `--platform`; needed for `{PRIVATE_IPV4}`-style templating. */
  platform?: Platform;
  /** Set by `--files-dir`; where `contents.local` files are read from. */
  filesDir?: string;
}
