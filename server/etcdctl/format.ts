import { V2Node, V2Response } from './client';

export type OutputFormat = 'simple' | 'extended' | 'json';

/** A node as etcd's Go client marshals it (field order, `nodes: null`, omitted zero `dir` and `ttl`). */
function goNode(n: V2Node | undefined): object | null {
  if (!n) return null;
  const out: Record<string, unknown> = { key: n.key };
  if (n.dir) out.dir = true;
  out.value = n.value ?? '';
  out.nodes = n.nodes && n.nodes.length > 0 ? n.nodes.map((c) => goNode(c)) : null;
  out.createdIndex = n.createdIndex;
  out.modifiedIndex = n.modifiedIndex;
  if (n.expiration) out.expiration = n.expiration;
  if (n.ttl) out.ttl = n.ttl;
  return out;
}

export function responseJSON(resp: V2Response): string {
  return JSON.stringify({ action: resp.action, node: goNode(resp.node), prevNode: goNode(resp.prevNode) });
}

/** etcdctl's printResponseKey: what `get`, `set` and friends print; undefined for an unsupported format. */
export function formatResponse(resp: V2Response, format: string): string | undefined {
  switch (format) {
    case 'simple':
      return resp.action !== 'delete' ? `${resp.node.value ?? ''}\n` : `PrevNode.Value: ${resp.prevNode?.value ?? ''}\n`;
    case 'extended': {
      let s = `Key: ${resp.node.key}\nCreated-Index: ${resp.node.createdIndex}\nModified-Index: ${resp.node.modifiedIndex}\n`;
      if (resp.prevNode) s += `PrevNode.Value: ${resp.prevNode.value ?? ''}\n`;
      s += `TTL: ${resp.node.ttl ?? 0}\nIndex: ${resp.index}\n`;
      if (resp.action !== 'delete') s += `\n${resp.node.value ?? ''}\n`;
      return s;
    }
    case 'json':
      return responseJSON(resp) + '\n';
    default:
      return undefined;
  }
}
