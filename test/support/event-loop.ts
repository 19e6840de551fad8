/** Resolves once `cond()` holds, checked on every turn of the event loop; fails after `ms` (10 s). */
export async function until(cond: () => boolean, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms`);
    await new Promise((r) => setImmediate(r));
  }
}
