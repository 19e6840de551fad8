/** JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902), as the API server applies them. */
type J = unknown;

export function mergePatch(target: J, patch: J): J {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, J> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, J>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, J>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class PatchError extends Error {}

interface Op {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: J;
}

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`bad JSON pointer ${p}`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: J, path: string[]): { parent: Record<string, J> | J[]; key: string } {
  let cur = doc;
  for (const k of path.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') throw new PatchError(`path not found: /${path.join('/')}`);
    cur = Array.isArray(cur) ? cur[Number(k)] : (cur as Record<string, J>)[k];
  }
  if (cur === null || typeof cur !== 'object') throw new PatchError(`path not found: /${path.join('/')}`);
  return { parent: cur as Record<string, J> | J[], key: path[path.length - 1] };
}

function getAt(doc: J, path: string[]): J {
  let cur = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') throw new PatchError(`path not found: /${path.join('/')}`);
    cur = Array.isArray(cur) ? cur[Number(k)] : (cur as Record<string, J>)[k];
    if (cur === undefined) throw new PatchError(`path not found: /${path.join('/')}`);
  }
  return cur;
}

export function jsonPatch(doc: J, ops: Op[]): J {
  let d = structuredClone(doc);
  for (const op of ops) {
    const path = pointer(op.path);
    const add = (value: J): void => {
      if (path.length === 0) {
        d = value;
        return;
      }
      const { parent, key } = parentOf(d, path);
      if (Array.isArray(parent)) {
        const i = key === '-' ? parent.length : Number(key);
        if (!(i >= 0 && i <= parent.length)) throw new PatchError(`index out of range: ${op.path}`);
        parent.splice(i, 0, value);
      } else parent[key] = value;
    };
    const remove = (p: string[]): J => {
      const { parent, key } = parentOf(d, p);
      if (Array.isArray(parent)) return parent.splice(Number(key), 1)[0];
      if (!(key in parent)) throw new PatchError(`path not found: /${p.join('/')}`);
      const v = parent[key];
      delete parent[key];
      return v;
    };
    switch (op.op) {
      case 'add':
        add(structuredClone(op.value));
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        getAt(d, path);
        if (path.length === 0) d = structuredClone(op.value);
        else {
          const { parent, key } = parentOf(d, path);
          if (Array.isArray(parent)) parent[Number(key)] = structuredClone(op.value);
          else parent[key] = structuredClone(op.value);
        }
        break;
      case 'move': {
        const v = remove(pointer(op.from ?? ''));
        add(v);
        break;
      }
      case 'copy':
        add(structuredClone(getAt(d, pointer(op.from ?? ''))));
        break;
      case 'test':
        if (JSON.stringify(getAt(d, path)) !== JSON.stringify(op.value)) throw new PatchError(`test failed at ${op.path}`);
        break;
      default:
        throw new PatchError(`unknown op ${(op as Op).op}`);
    }
  }
  return d;
}
