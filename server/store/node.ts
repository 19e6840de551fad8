/**
 * A node of the v2 store's tree. A node keeps only its own name and its parent, never its full path: a chain of
 * n directories then costs O(n) memory, where full paths would cost O(n²) (5,000 levels of `/a` took 700 MB).
 * Paths are built where they are needed, by the walk that needs them.
 */
export class StoreNode {
  value = '';
  children: Map<string, StoreNode> | undefined;
  expireTime = 0;
  heapIndex = -1;

  constructor(
    /** The last component of the path; '' for the root. */
    readonly name: string,
    public createdIndex: number,
    public modifiedIndex: number,
    public parent: StoreNode | undefined,
    dir: boolean,
  ) {
    if (dir) this.children = new Map();
  }

  get isDir(): boolean {
    return this.children !== undefined;
  }

  get isPermanent(): boolean {
    return this.expireTime === 0;
  }

  get isHidden(): boolean {
    return this.name.startsWith('_');
  }

  /** The full path, walked up from the node: O(depth), for the few places that have no path at hand (expiry). */
  get path(): string {
    if (!this.parent) return '/';
    const names: string[] = [];
    for (let n: StoreNode | undefined = this; n && n.parent; n = n.parent) names.push(n.name);
    return '/' + names.reverse().join('/');
  }
}

/** The path of a child of the node at `parentPath`. */
export function childPath(parentPath: string, name: string): string {
  return parentPath === '/' ? '/' + name : parentPath + '/' + name;
}
