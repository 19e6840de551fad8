/**
 * V8's young generation held at its initial size (1 MiB a semi-space) while the server's modules load, then let grow
 * as usual. Loading the modules leaves most of what it allocates alive (code, closures), and V8 doubles the young
 * generation each time more survives than it holds: 8 MiB a semi-space (11 MiB resident) before the first request,
 * which an idle server keeps until V8's memory reducer runs (8 s after a full collection, at low allocation rate).
 * Under load it grows as before (the factor is V8's default again by then). Imported first by the `etcd` command,
 * before its other modules; a growth factor given on node's command line is left alone. The command's own flags
 * (server/node-flags.ts) start the young generation at 16 MiB a semi-space, for the latency under load: this hold then
 * changes nothing, and matters only where node is started without them.
 */
import * as v8 from 'node:v8';

const FLAG = '--semi-space-growth-factor';
const givenByUser = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith(FLAG) || a.startsWith('--semi_space_growth_factor'));
let held = !givenByUser;
if (held) v8.setFlagsFromString(`${FLAG}=1`);

/** V8's default growth again (doubling): once the modules are loaded. */
export function letYoungGenerationGrow(): void {
  if (!held) return;
  v8.setFlagsFromString(`${FLAG}=2`);
  held = false;
}
