/**
 * The reference the checker's tests compare it with: every order of the operations that respects real time (one
 * returned before the other was called), each run on the model. Exponential: for small histories only.
 */
import type { Model, Operation } from './checker';

export function bruteForce<S, I, O>(model: Model<S, I, O>, h: Operation<I, O>[]): 'ok' | 'illegal' {
  const placed = new Array<boolean>(h.length).fill(false);
  const go = (state: S, left: number): boolean => {
    if (left === 0) return true;
    for (let i = 0; i < h.length; i++) {
      if (placed[i]) continue;
      if (h.some((o, j) => !placed[j] && j !== i && o.ret < h[i].call)) continue;
      const next = model.step(state, h[i].input, h[i].output);
      if (next === undefined) continue;
      placed[i] = true;
      const ok = go(next, left - 1);
      placed[i] = false;
      if (ok) return true;
    }
    return false;
  };
  return go(model.init(), h.length) ? 'ok' : 'illegal';
}
