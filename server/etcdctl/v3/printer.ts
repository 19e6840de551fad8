/**
 * etcdctl v3's output formats for the KV and lease commands, byte for byte as etcd 3.4's: simple (with --hex and
 * --print-value-only), json (Go's encoding/json of the response: omitempty fields, bytes as base64, 64-bit ids as
 * exact decimals), fields (Go's %q quoting) and protobuf (the response's wire bytes).
 */
import type {
  DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
  PutResponse, RangeResponse, ResponseHeader, ResponseOp, TxnResponse,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import {
  DeleteRangeResponse as DeleteCodec, PutResponse as PutCodec, RangeResponse as RangeCodec, ResponseHeader as HeaderCodec, TxnResponse as TxnCodec,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import type { KeyValue } from '../../api/v3rpc/pb/mvccpb/kv';
import { WatchResponse as WatchCodec } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { Event_EventType, type Event } from '../../api/v3rpc/pb/mvccpb/kv';
import type { ClientWatchResponse } from './watch';

/** Where output goes: bytes, since keys and values are bytes (not necessarily UTF-8). */
export interface Out {
  stdoutBytes(b: Buffer): void;
}

export type Format = 'simple' | 'json' | 'fields' | 'protobuf' | 'table';

export const FORMATS: readonly string[] = ['simple', 'fields', 'json', 'protobuf', 'table'];

/** etcdctl's addHexPrefix(hex.EncodeToString(b)): every byte as \xNN. */
function hexBytes(b: Buffer): string {
  let s = '';
  for (const byte of b) s += `\\x${byte.toString(16).padStart(2, '0')}`;
  return s;
}

/** A line of simple output: a key or value goes out as its bytes, as Go prints string(bytes). */
type Line = string | Buffer;

function simpleKV(out: Line[], kv: KeyValue, hex: boolean, valueOnly: boolean): void {
  if (!valueOnly) out.push(hex ? hexBytes(kv.key) : kv.key);
  out.push(hex ? hexBytes(kv.value) : kv.value);
}

// --- json: Go's encoding/json of the gogo-generated structs (fields in proto order, omitempty) ---

export function jsonFields(fields: [string, string | undefined][]): string {
  return `{${fields.filter(([, v]) => v !== undefined).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
}
const num = (n: bigint): string | undefined => (n === 0n ? undefined : n.toString());
const bytes = (b: Buffer): string | undefined => (b.length === 0 ? undefined : `"${b.toString('base64')}"`);
const bool = (x: boolean): string | undefined => (x ? 'true' : undefined);

export function jsonHeader(h: ResponseHeader | undefined): string | undefined {
  if (!h) return undefined;
  return jsonFields([['cluster_id', num(h.clusterId)], ['member_id', num(h.memberId)], ['revision', num(h.revision)], ['raft_term', num(h.raftTerm)]]);
}

function jsonKV(kv: KeyValue | undefined): string | undefined {
  if (!kv) return undefined;
  return jsonFields([
    ['key', bytes(kv.key)], ['create_revision', num(kv.createRevision)], ['mod_revision', num(kv.modRevision)],
    ['version', num(kv.version)], ['value', bytes(kv.value)], ['lease', num(kv.lease)],
  ]);
}

const jsonKVs = (kvs: KeyValue[]): string | undefined => (kvs.length === 0 ? undefined : `[${kvs.map((kv) => jsonKV(kv)).join(',')}]`);

const jsonRange = (r: RangeResponse) => jsonFields([['header', jsonHeader(r.header)], ['kvs', jsonKVs(r.kvs)], ['more', bool(r.more)], ['count', num(r.count)]]);
const jsonPut = (r: PutResponse) => jsonFields([['header', jsonHeader(r.header)], ['prev_kv', jsonKV(r.prevKv)]]);
const jsonDel = (r: DeleteRangeResponse) => jsonFields([['header', jsonHeader(r.header)], ['deleted', num(r.deleted)], ['prev_kvs', jsonKVs(r.prevKvs)]]);

/** A ResponseOp as Go encodes it: the oneof under "Response", keyed by the Go field name. */
function jsonOp(op: ResponseOp): string {
  let inner: string | undefined;
  if (op.responseRange) inner = `{"ResponseRange":${jsonRange(op.responseRange)}}`;
  else if (op.responsePut) inner = `{"ResponsePut":${jsonPut(op.responsePut)}}`;
  else if (op.responseDeleteRange) inner = `{"ResponseDeleteRange":${jsonDel(op.responseDeleteRange)}}`;
  else if (op.responseTxn) inner = `{"ResponseTxn":${jsonTxn(op.responseTxn)}}`;
  return jsonFields([['Response', inner ?? 'null']]);
}

function jsonTxn(r: TxnResponse): string {
  return jsonFields([['header', jsonHeader(r.header)], ['succeeded', bool(r.succeeded)], ['responses', r.responses.length ? `[${r.responses.map(jsonOp).join(',')}]` : undefined]]);
}

/** mvccpb.Event: the type as a number (PUT, 0, left out), kv and prev_kv. */
const jsonEvent = (e: Event) => jsonFields([['type', e.type ? String(e.type) : undefined], ['kv', jsonKV(e.kv)], ['prev_kv', jsonKV(e.prevKv)]]);

/** clientv3's WatchResponse as encoding/json writes it: exported fields by their Go names, a nil Events as null. */
const jsonWatch = (r: ClientWatchResponse) =>
  `{"Header":${jsonHeader(r.header)},"Events":${r.events === null ? 'null' : `[${r.events.map(jsonEvent).join(',')}]`},"CompactRevision":${r.compactRevision},"Canceled":${r.canceled},"Created":${r.created}}`;

/** Go's String() of an event type. */
export const eventTypeName = (t: Event_EventType): string => (t === Event_EventType.PUT ? 'PUT' : t === Event_EventType.DELETE ? 'DELETE' : String(t));

// --- fields: fmt's %q and %d/%v ---

/** Go's strconv.Quote of a byte string: printable runes as they are, invalid UTF-8 as \xNN, the rest escaped. */
export function goQuote(b: Buffer): string {
  let s = '"';
  let i = 0;
  while (i < b.length) {
    const [cp, size] = decodeRune(b, i);
    if (cp < 0) {
      s += `\\x${b[i].toString(16).padStart(2, '0')}`;
      i += 1;
      continue;
    }
    i += size;
    const c = String.fromCodePoint(cp);
    if (c === '"' || c === '\\') s += `\\${c}`;
    else if (cp === 0x20 || (cp > 0x20 && cp !== 0x7f && /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(c))) s += c;
    else if (cp === 7) s += '\\a';
    else if (cp === 8) s += '\\b';
    else if (cp === 12) s += '\\f';
    else if (cp === 10) s += '\\n';
    else if (cp === 13) s += '\\r';
    else if (cp === 9) s += '\\t';
    else if (cp === 11) s += '\\v';
    else if (cp < 0x80) s += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp < 0x10000) s += `\\u${cp.toString(16).padStart(4, '0')}`;
    else s += `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return `${s}"`;
}

/** One UTF-8 sequence at i as Go decodes it: [code point, length], or [-1, 1] when invalid. */
function decodeRune(b: Buffer, i: number): [number, number] {
  const c0 = b[i];
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number) => i + k < b.length && (b[i + k] & 0xc0) === 0x80;
  if (c0 >= 0xc2 && c0 <= 0xdf && cont(1)) return [((c0 & 0x1f) << 6) | (b[i + 1] & 0x3f), 2];
  if (c0 >= 0xe0 && c0 <= 0xef && cont(1) && cont(2)) {
    const cp = ((c0 & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f);
    if (cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) return [cp, 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4 && cont(1) && cont(2) && cont(3)) {
    const cp = ((c0 & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) | (b[i + 3] & 0x3f);
    if (cp >= 0x10000 && cp <= 0x10ffff) return [cp, 4];
  }
  return [-1, 1];
}

export function fieldsHeader(out: string[], h: ResponseHeader | undefined): void {
  const x = h ?? { clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n };
  out.push(`"ClusterID" : ${x.clusterId}`, `"MemberID" : ${x.memberId}`, `"Revision" : ${x.revision}`, `"RaftTerm" : ${x.raftTerm}`);
}

function fieldsKV(out: string[], pfx: string, kv: KeyValue): void {
  out.push(
    `"${pfx}Key" : ${goQuote(kv.key)}`, `"${pfx}CreateRevision" : ${kv.createRevision}`, `"${pfx}ModRevision" : ${kv.modRevision}`,
    `"${pfx}Version" : ${kv.version}`, `"${pfx}Value" : ${goQuote(kv.value)}`, `"${pfx}Lease" : ${kv.lease}`,
  );
}

/** Thrown for an output format a command does not have (etcdctl exits with ExitBadFeature). */
const NEWLINE = Buffer.from('\n');

export class UnsupportedFormat extends Error {}

export class Printer {
  constructor(private readonly format: Format, private readonly hex: boolean, private readonly valueOnly = false) {}

  private lines(out: Out, lines: Line[]): void {
    if (!lines.length) return;
    const parts: Buffer[] = [];
    for (const l of lines) parts.push(typeof l === 'string' ? Buffer.from(l) : l, NEWLINE);
    out.stdoutBytes(Buffer.concat(parts));
  }

  private other(out: Out, json: string, pb: () => Uint8Array): void {
    if (this.format === 'json') out.stdoutBytes(Buffer.from(`${json}\n`));
    else if (this.format === 'protobuf') out.stdoutBytes(Buffer.from(pb()));
    else throw new UnsupportedFormat(`${this.format} not supported as output format`);
  }

  get(out: Out, r: RangeResponse): void {
    if (this.format === 'simple') {
      const lines: Line[] = [];
      for (const kv of r.kvs) simpleKV(lines, kv, this.hex, this.valueOnly);
      return this.lines(out, lines);
    }
    if (this.format === 'fields') {
      const lines: string[] = [];
      fieldsHeader(lines, r.header);
      for (const kv of r.kvs) fieldsKV(lines, '', kv);
      lines.push(`"More" : ${r.more}`, `"Count" : ${r.count}`);
      return this.lines(out, lines);
    }
    this.other(out, jsonRange(r), () => RangeCodec.encode(r).finish());
  }

  put(out: Out, r: PutResponse): void {
    if (this.format === 'simple') {
      const lines: Line[] = ['OK'];
      if (r.prevKv) simpleKV(lines, r.prevKv, this.hex, this.valueOnly);
      return this.lines(out, lines);
    }
    if (this.format === 'fields') {
      const lines: string[] = [];
      fieldsHeader(lines, r.header);
      if (r.prevKv) fieldsKV(lines, 'Prev', r.prevKv);
      return this.lines(out, lines);
    }
    this.other(out, jsonPut(r), () => PutCodec.encode(r).finish());
  }

  del(out: Out, r: DeleteRangeResponse): void {
    if (this.format === 'simple') {
      const lines: Line[] = [String(r.deleted)];
      for (const kv of r.prevKvs) simpleKV(lines, kv, this.hex, this.valueOnly);
      return this.lines(out, lines);
    }
    if (this.format === 'fields') {
      const lines: string[] = [];
      fieldsHeader(lines, r.header);
      lines.push(`"Deleted" : ${r.deleted}`);
      for (const kv of r.prevKvs) fieldsKV(lines, 'Prev', kv);
      return this.lines(out, lines);
    }
    this.other(out, jsonDel(r), () => DeleteCodec.encode(r).finish());
  }

  /** Each event's type, then its previous and its new key and value (simple); the whole response otherwise. */
  watch(out: Out, r: ClientWatchResponse): void {
    const events = r.events ?? [];
    if (this.format === 'simple') {
      const lines: Line[] = [];
      for (const e of events) {
        lines.push(eventTypeName(e.type));
        if (e.prevKv) simpleKV(lines, e.prevKv, this.hex, this.valueOnly);
        simpleKV(lines, e.kv!, this.hex, this.valueOnly);
      }
      return this.lines(out, lines);
    }
    if (this.format === 'fields') {
      const lines: string[] = [];
      fieldsHeader(lines, r.header);
      for (const e of events) {
        lines.push(`"Type" : ${eventTypeName(e.type)}`);
        if (e.prevKv) fieldsKV(lines, 'Prev', e.prevKv);
        fieldsKV(lines, '', e.kv!);
      }
      return this.lines(out, lines);
    }
    // protobuf: etcdserverpb.WatchResponse with the header, events, compact revision and the two flags
    this.other(out, jsonWatch(r), () =>
      WatchCodec.encode({ header: r.header, watchId: 0n, created: r.created, canceled: r.canceled, compactRevision: r.compactRevision, cancelReason: '', fragment: false, events }).finish(),
    );
  }

  /** SUCCESS or FAILURE, then each response after an empty line (simple); the whole response otherwise. */
  txn(out: Out, r: TxnResponse): void {
    if (this.format === 'simple') {
      out.stdoutBytes(Buffer.from(r.succeeded ? 'SUCCESS\n' : 'FAILURE\n'));
      for (const op of r.responses) {
        out.stdoutBytes(NEWLINE);
        if (op.responseDeleteRange) this.del(out, op.responseDeleteRange);
        else if (op.responsePut) this.put(out, op.responsePut);
        else if (op.responseRange) this.get(out, op.responseRange);
      }
      return;
    }
    if (this.format === 'fields') {
      const lines: string[] = [];
      fieldsHeader(lines, r.header);
      lines.push(`"Succeeded" : ${r.succeeded}`);
      this.lines(out, lines);
      for (const op of r.responses) {
        if (op.responseDeleteRange) this.del(out, op.responseDeleteRange);
        else if (op.responsePut) this.put(out, op.responsePut);
        else if (op.responseRange) this.get(out, op.responseRange);
      }
      return;
    }
    this.other(out, jsonTxn(r), () => TxnCodec.encode(r).finish());
  }
}

// --- leases (etcdctl's lease commands print clientv3's lease types) ---

/** Go's %016x of an int64: 16 hex digits, zero-padded; a negative one signed and padded to 16 with its sign. */
export function hex16(id: bigint): string {
  return id < 0n ? `-${(-id).toString(16).padStart(15, '0')}` : id.toString(16).padStart(16, '0');
}

/**
 * The JSON of a clientv3 lease response: its embedded *pb.ResponseHeader's fields first (omitempty), then its own
 * fields, each [name, JSON value] (always present, as clientv3's fields have no omitempty).
 */
function jsonEmbedded(h: ResponseHeader | undefined, fields: [string, string][]): string {
  const head: [string, string | undefined][] = h
    ? [['cluster_id', num(h.clusterId)], ['member_id', num(h.memberId)], ['revision', num(h.revision)], ['raft_term', num(h.raftTerm)]]
    : [];
  return jsonFields([...head, ...fields]);
}

/** gogo's compact text of a ResponseHeader (its String(), as fmt's %v shows it): non-zero fields, each with a space after. */
function compactHeader(h: ResponseHeader | undefined): string {
  if (!h) return '<nil>';
  const f: [string, bigint][] = [['cluster_id', h.clusterId], ['member_id', h.memberId], ['revision', h.revision], ['raft_term', h.raftTerm]];
  return f.filter(([, v]) => v !== 0n).map(([k, v]) => `${k}:${v} `).join('');
}

/** The protobuf printer marshals a clientv3 lease response through its embedded header: the header's bytes only. */
const headerBytes = (h: ResponseHeader | undefined): Uint8Array => (h ? HeaderCodec.encode(h).finish() : new Uint8Array(0));

export class LeasePrinter {
  constructor(private readonly format: Format) {}

  private text(out: Out, lines: Line[]): void {
    const parts: Buffer[] = [];
    for (const l of lines) parts.push(typeof l === 'string' ? Buffer.from(l) : l, NEWLINE);
    out.stdoutBytes(Buffer.concat(parts));
  }

  private unsupported(): never {
    throw new UnsupportedFormat(`${this.format} not supported as output format`);
  }

  grant(out: Out, r: LeaseGrantResponse): void {
    switch (this.format) {
      case 'simple':
        return this.text(out, [`lease ${hex16(r.ID)} granted with TTL(${r.TTL}s)`]);
      case 'fields': {
        const lines: string[] = [];
        fieldsHeader(lines, r.header);
        lines.push(`"ID" : ${r.ID}`, `"TTL" : ${r.TTL}`);
        return this.text(out, lines);
      }
      case 'json':
        return this.text(out, [jsonEmbedded(r.header, [['ID', String(r.ID)], ['TTL', String(r.TTL)], ['Error', JSON.stringify(r.error)]])]);
      case 'protobuf':
        return out.stdoutBytes(Buffer.from(headerBytes(r.header)));
      default:
        this.unsupported();
    }
  }

  revoke(out: Out, id: bigint, r: LeaseRevokeResponse): void {
    switch (this.format) {
      case 'simple':
        return this.text(out, [`lease ${hex16(id)} revoked`]);
      case 'fields': {
        const lines: string[] = [];
        fieldsHeader(lines, r.header);
        return this.text(out, lines);
      }
      case 'json':
        return this.text(out, [jsonFields([['header', jsonHeader(r.header)]])]);
      case 'protobuf':
        // clientv3.LeaseRevokeResponse has no Marshal method: etcdctl refuses, after the revocation
        throw new UnsupportedFormat(`marshal unsupported for type clientv3.LeaseRevokeResponse ({${compactHeader(r.header)}})`);
      default:
        this.unsupported();
    }
  }

  keepAlive(out: Out, r: LeaseKeepAliveResponse): void {
    switch (this.format) {
      case 'simple':
        return this.text(out, [`lease ${hex16(r.ID)} keepalived with TTL(${r.TTL})`]);
      case 'fields': {
        const lines: string[] = [];
        fieldsHeader(lines, r.header);
        lines.push(`"ID" : ${r.ID}`, `"TTL" : ${r.TTL}`);
        return this.text(out, lines);
      }
      case 'json':
        return this.text(out, [jsonEmbedded(r.header, [['ID', String(r.ID)], ['TTL', String(r.TTL)]])]);
      case 'protobuf':
        return out.stdoutBytes(Buffer.from(headerBytes(r.header)));
      default:
        this.unsupported();
    }
  }

  timeToLive(out: Out, r: LeaseTimeToLiveResponse, keys: boolean): void {
    switch (this.format) {
      case 'simple': {
        if (r.grantedTTL === 0n && r.TTL === -1n) return this.text(out, [`lease ${hex16(r.ID)} already expired`]);
        let line: Line = `lease ${hex16(r.ID)} granted with TTL(${r.grantedTTL}s), remaining(${r.TTL}s)`;
        // Go's %v of a []string: the keys' bytes, space-separated, in brackets
        if (keys) line = Buffer.concat([Buffer.from(`${line}, attached keys([`), Buffer.concat(r.keys.flatMap((k, i) => (i ? [Buffer.from(' '), k] : [k]))), Buffer.from('])')]);
        return this.text(out, [line]);
      }
      case 'fields': {
        const lines: string[] = [];
        fieldsHeader(lines, r.header);
        lines.push(`"ID" : ${r.ID}`, `"TTL" : ${r.TTL}`, `"GrantedTTL" : ${r.grantedTTL}`);
        for (const k of r.keys) lines.push(`"Key" : ${goQuote(k)}`);
        return this.text(out, lines);
      }
      case 'json': {
        const ks = r.keys.length ? `[${r.keys.map((k) => `"${k.toString('base64')}"`).join(',')}]` : 'null';
        return this.text(out, [jsonEmbedded(r.header, [['id', String(r.ID)], ['ttl', String(r.TTL)], ['granted-ttl', String(r.grantedTTL)], ['keys', ks]])]);
      }
      case 'protobuf':
        return out.stdoutBytes(Buffer.from(headerBytes(r.header)));
      default:
        this.unsupported();
    }
  }

  leases(out: Out, r: LeaseLeasesResponse): void {
    switch (this.format) {
      case 'simple':
        return this.text(out, [`found ${r.leases.length} leases`, ...r.leases.map((l) => hex16(l.ID))]);
      case 'fields': {
        const lines: string[] = [];
        fieldsHeader(lines, r.header);
        for (const l of r.leases) lines.push(`"ID" : ${l.ID}`);
        return this.text(out, lines);
      }
      case 'json':
        return this.text(out, [jsonEmbedded(r.header, [['leases', `[${r.leases.map((l) => `{"id":${l.ID}}`).join(',')}]`]])]);
      case 'protobuf':
        return out.stdoutBytes(Buffer.from(headerBytes(r.header)));
      default:
        this.unsupported();
    }
  }
}
