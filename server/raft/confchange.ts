import { ConfChange, ConfChangeType } from './types';

/**
 * The encoding of a ConfChange in the data of a ConfChange log entry:
 * [u8 type][u16 BE id length][id UTF-8][context bytes...].
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const id = Buffer.from(cc.nodeId, 'utf8');
  const ctx = cc.context ?? new Uint8Array(0);
  const out = Buffer.allocUnsafe(3 + id.length + ctx.length);
  out.writeUInt8(cc.type, 0);
  out.writeUInt16BE(id.length, 1);
  id.copy(out, 3);
  out.set(ctx, 3 + id.length);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 3) throw new Error('conf change: data too short');
  const type = buf.readUInt8(0);
  if (type !== ConfChangeType.AddNode && type !== ConfChangeType.RemoveNode && type !== ConfChangeType.AddLearnerNode) {
    throw new Error(`conf change: unknown type ${type}`);
  }
  const idLen = buf.readUInt16BE(1);
  if (3 + idLen > buf.length) throw new Error('conf change: node id runs past the data');
  const nodeId = buf.toString('utf8', 3, 3 + idLen);
  const context = buf.subarray(3 + idLen);
  return { type, nodeId, context: context.length > 0 ? context : undefined };
}
