/**
 * A full garbage collection on request, for the rare moments when a burst of garbage has just been made and the
 * server may go idle: V8 collects only when the program allocates, so an idle server would otherwise keep that
 * garbage resident for as long as it stays idle (Go's runtime, etcd's, collects and returns memory on a timer).
 * The collection runs once the caller's turn is over, when what it was holding is garbage too.
 * The collection runs from V8's task queue, not inside the caller.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

type GC = () => void;
let gc: GC | undefined;

export function collectGarbage(): void {
  if (!gc) {
    // V8's gc() without --expose-gc on the command line: only a new context gets it, the program's globals do not.
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as GC;
  }
  setImmediate(gc!).unref();
}
