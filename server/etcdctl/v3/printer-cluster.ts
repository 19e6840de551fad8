/**
 * etcdctl v3's output for the cluster and maintenance commands (member, endpoint, alarm, move-leader, snapshot
 * status), byte for byte as etcd 3.4's printers write it: simple (comma-separated rows, etcd's sentences), json (Go's
 * encoding/json of the response or etcdctl's own structs), table (tablewriter), fields and protobuf where etcdctl
 * has them; a format etcdctl lacks for a command is its "<format> not supported as output format".
 */
import {
  AlarmResponse, AlarmResponse as AlarmCodec, AlarmType, HashKVResponse, Member, MemberAddResponse, MemberAddResponse as MemberAddCodec,
  MemberListResponse, MemberListResponse as MemberListCodec, MemberPromoteResponse, MemberPromoteResponse as MemberPromoteCodec,
  MemberRemoveResponse, MemberRemoveResponse as MemberRemoveCodec, MemberUpdateResponse, MemberUpdateResponse as MemberUpdateCodec,
  MoveLeaderResponse, MoveLeaderResponse as MoveLeaderCodec, StatusResponse,
} from '../../api/v3rpc/pb/etcdserverpb/rpc';
import { goJSONString, humanBytes } from '../../pkg/go-compat';
import { fieldsHeader, jsonFields, jsonHeader, UnsupportedFormat, type Format } from './printer';
import { renderTable } from './table';
import { GoPanic } from './txn-input';

/** What a command prints: stdout (text or protobuf bytes) and, for some, stderr. */
export interface Printed {
  stdout: string | Buffer;
  stderr?: string;
}

export interface EpHealth {
  ep: string;
  health: boolean;
  took: string;
  error: string;
}

export interface EpStatus {
  ep: string;
  resp: StatusResponse;
}

export interface EpHashKV {
  ep: string;
  resp: HashKVResponse;
}

export interface DBStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

const unsupported = (f: Format): never => {
  throw new UnsupportedFormat(`${f} not supported as output format`);
};

/** Go's %16x: hex, padded with spaces to 16. */
const hex16 = (n: bigint): string => n.toString(16).padStart(16, ' ');
const hex = (n: bigint): string => n.toString(16);
const lines = (rows: string[][]): string => rows.map((r) => `${r.join(', ')}\n`).join('');
const num = (n: bigint | number): string | undefined => (n === 0n || n === 0 ? undefined : String(n));
const str = (s: string): string | undefined => (s === '' ? undefined : goJSONString(s));
const strs = (a: string[]): string | undefined => (a.length === 0 ? undefined : `[${a.map(goJSONString).join(',')}]`);
const bool = (b: boolean): string | undefined => (b ? 'true' : undefined);

/** Go's %v of a []string: [a b c]. */
const goSlice = (a: string[]): string => `[${a.join(' ')}]`;

function jsonMember(m: Member): string {
  return jsonFields([['ID', num(m.ID)], ['name', str(m.name)], ['peerURLs', strs(m.peerURLs)], ['clientURLs', strs(m.clientURLs)], ['isLearner', bool(m.isLearner)]]);
}
const jsonMembers = (ms: Member[]): string | undefined => (ms.length === 0 ? undefined : `[${ms.map(jsonMember).join(',')}]`);

function memberRows(r: MemberListResponse): string[][] {
  return r.members.map((m) => [hex(m.ID), m.name === '' ? 'unstarted' : 'started', m.name, m.peerURLs.join(','), m.clientURLs.join(','), String(m.isLearner)]);
}

export function memberList(f: Format, r: MemberListResponse): Printed {
  switch (f) {
    case 'simple':
      return { stdout: lines(memberRows(r)) };
    case 'table':
      return { stdout: renderTable(['ID', 'Status', 'Name', 'Peer Addrs', 'Client Addrs', 'Is Learner'], memberRows(r)) };
    case 'json':
      return { stdout: `${jsonFields([['header', jsonHeader(r.header)], ['members', jsonMembers(r.members)]])}\n` };
    case 'protobuf':
      return { stdout: Buffer.from(MemberListCodec.encode(r).finish()) };
    case 'fields': {
      const out: string[] = [];
      fieldsHeader(out, r.header);
      let s = out.map((l) => `${l}\n`).join('');
      for (const m of r.members) {
        s += `"ID" : ${m.ID}\n"Name" : ${goQuoteStr(m.name)}\n`;
        for (const u of m.peerURLs) s += `"PeerURL" : ${goQuoteStr(u)}\n`;
        for (const u of m.clientURLs) s += `"ClientURL" : ${goQuoteStr(u)}\n`;
        s += `"IsLearner" : ${m.isLearner}\n\n`;
      }
      return { stdout: s };
    }
  }
}

/** Go's %q of a string (URLs and names: printable ASCII but for quotes and backslashes). */
function goQuoteStr(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, (c) => ({ '\n': '\\n', '\t': '\\t', '\r': '\\r' })[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`;
}

export function memberAdd(f: Format, r: MemberAddResponse): Printed {
  if (f === 'simple') return { stdout: `Member ${hex16(r.member!.ID)} added to cluster ${hex16(r.header!.clusterId)}\n` };
  if (f === 'json') return { stdout: `${jsonFields([['header', jsonHeader(r.header)], ['member', r.member ? jsonMember(r.member) : undefined], ['members', jsonMembers(r.members)]])}\n` };
  if (f === 'protobuf') return { stdout: Buffer.from(MemberAddCodec.encode(r).finish()) };
  return unsupported(f);
}

type MembersChange = MemberRemoveResponse | MemberUpdateResponse | MemberPromoteResponse;

function memberChange(verb: string, codec: { encode(m: never): { finish(): Uint8Array } }) {
  return (f: Format, id: bigint, r: MembersChange): Printed => {
    if (f === 'simple') return { stdout: `Member ${hex16(id)} ${verb} cluster ${hex16(r.header!.clusterId)}\n` };
    if (f === 'json') return { stdout: `${jsonFields([['header', jsonHeader(r.header)], ['members', jsonMembers(r.members)]])}\n` };
    if (f === 'protobuf') return { stdout: Buffer.from(codec.encode(r as never).finish()) };
    return unsupported(f);
  };
}

export const memberRemove = memberChange('removed from', MemberRemoveCodec);
export const memberUpdate = memberChange('updated in', MemberUpdateCodec);
export const memberPromote = memberChange('promoted in', MemberPromoteCodec);

export function endpointHealth(f: Format, hs: EpHealth[]): Printed {
  const rows = hs.map((h) => [h.ep, String(h.health), h.took, h.error]);
  switch (f) {
    case 'simple':
      return { stdout: '', stderr: hs.map((h) => (h.error === '' ? `${h.ep} is healthy: successfully committed proposal: took = ${h.took}\n` : `${h.ep} is unhealthy: failed to commit proposal: ${h.error}\n`)).join('') };
    case 'table':
      return { stdout: renderTable(['endpoint', 'health', 'took', 'error'], rows) };
    case 'json':
      return { stdout: `[${hs.map((h) => jsonFields([['endpoint', goJSONString(h.ep)], ['health', String(h.health)], ['took', goJSONString(h.took)], ['error', str(h.error)]])).join(',')}]\n` };
    case 'fields':
      return { stdout: hs.map((h) => `"Endpoint" : ${goQuoteStr(h.ep)}\n"Health" : ${h.health}\n"Took" : ${h.took}\n"Error" : ${h.error}\n\n`).join('') };
    default:
      return unsupported(f);
  }
}

function statusRows(list: EpStatus[]): string[][] {
  return list.map(({ ep, resp: r }) => [
    ep, hex(r.header!.memberId), r.version, humanBytes(Number(r.dbSize)), String(r.leader === r.header!.memberId), String(r.isLearner),
    String(r.raftTerm), String(r.raftIndex), String(r.raftAppliedIndex), r.errors.join(', '),
  ]);
}

function jsonStatus(r: StatusResponse): string {
  return jsonFields([
    ['header', jsonHeader(r.header)], ['version', str(r.version)], ['dbSize', num(r.dbSize)], ['leader', num(r.leader)],
    ['raftIndex', num(r.raftIndex)], ['raftTerm', num(r.raftTerm)], ['raftAppliedIndex', num(r.raftAppliedIndex)],
    ['errors', strs(r.errors)], ['dbSizeInUse', num(r.dbSizeInUse)], ['isLearner', bool(r.isLearner)],
  ]);
}

export function endpointStatus(f: Format, list: EpStatus[]): Printed {
  switch (f) {
    case 'simple':
      return { stdout: lines(statusRows(list)) };
    case 'table':
      return { stdout: renderTable(['endpoint', 'ID', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'], statusRows(list)) };
    case 'json':
      return { stdout: `[${list.map((s) => `{"Endpoint":${goJSONString(s.ep)},"Status":${jsonStatus(s.resp)}}`).join(',')}]\n` };
    case 'fields': {
      let out = '';
      for (const { ep, resp: r } of list) {
        const h: string[] = [];
        fieldsHeader(h, r.header);
        out += h.map((l) => `${l}\n`).join('');
        out += `"Version" : ${goQuoteStr(r.version)}\n"DBSize" : ${r.dbSize}\n"Leader" : ${r.leader}\n"IsLearner" : ${r.isLearner}\n"RaftIndex" : ${r.raftIndex}\n`;
        out += `"RaftTerm" : ${r.raftTerm}\n"RaftAppliedIndex" : ${r.raftAppliedIndex}\n"Errors" : ${goSlice(r.errors)}\n"Endpoint" : ${goQuoteStr(ep)}\n\n`;
      }
      return { stdout: out };
    }
    default:
      return unsupported(f);
  }
}

export function endpointHashKV(f: Format, list: EpHashKV[]): Printed {
  const rows = list.map((h) => [h.ep, String(h.resp.hash)]);
  switch (f) {
    case 'simple':
      return { stdout: lines(rows) };
    case 'table':
      return { stdout: renderTable(['endpoint', 'hash'], rows) };
    case 'json':
      return { stdout: `[${list.map((h) => `{"Endpoint":${goJSONString(h.ep)},"HashKV":${jsonFields([['header', jsonHeader(h.resp.header)], ['hash', num(h.resp.hash)], ['compact_revision', num(h.resp.compactRevision)]])}}`).join(',')}]\n` };
    case 'fields': {
      let out = '';
      for (const h of list) {
        const hd: string[] = [];
        fieldsHeader(hd, h.resp.header);
        out += `${hd.map((l) => `${l}\n`).join('')}"Endpoint" : ${goQuoteStr(h.ep)}\n"Hash" : ${h.resp.hash}\n\n`;
      }
      return { stdout: out };
    }
    default:
      return unsupported(f);
  }
}

/** An AlarmType as Go's String() names it. */
const alarmName = (t: AlarmType): string => (t >= 0 && AlarmType[t] !== undefined && t !== AlarmType.UNRECOGNIZED ? AlarmType[t] : String(t));

export function alarm(f: Format, r: AlarmResponse): Printed {
  switch (f) {
    case 'simple':
      return { stdout: r.alarms.map((a) => `memberID:${a.memberID} alarm:${alarmName(a.alarm)} \n`).join('') };
    case 'json':
      return { stdout: `${jsonFields([['header', jsonHeader(r.header)], ['alarms', r.alarms.length ? `[${r.alarms.map((a) => jsonFields([['memberID', num(a.memberID)], ['alarm', num(a.alarm)]])).join(',')}]` : undefined]])}\n` };
    case 'protobuf':
      return { stdout: Buffer.from(AlarmCodec.encode(r).finish()) };
    case 'fields': {
      // etcd's answer has no header, which etcdctl's fields printer reads: it panics.
      if (!r.header) throw new GoPanic('runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xb9181e]');
      const h: string[] = [];
      fieldsHeader(h, r.header);
      return { stdout: h.map((l) => `${l}\n`).join('') + r.alarms.map((a) => `"MemberID" : ${a.memberID}\n"AlarmType" : ${alarmName(a.alarm)}\n\n`).join('') };
    }
    default:
      return unsupported(f);
  }
}

export function moveLeader(f: Format, leader: bigint, target: bigint, r: MoveLeaderResponse): Printed {
  if (f === 'simple') return { stdout: `Leadership transferred from ${hex(leader)} to ${hex(target)}\n` };
  if (f === 'json') return { stdout: `${jsonFields([['header', jsonHeader(r.header)]])}\n` };
  if (f === 'protobuf') return { stdout: Buffer.from(MoveLeaderCodec.encode(r).finish()) };
  return unsupported(f);
}

export function dbStatus(f: Format, s: DBStatus): Printed {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize)];
  switch (f) {
    case 'simple':
      return { stdout: `${row.join(', ')}\n` };
    case 'table':
      return { stdout: renderTable(['hash', 'revision', 'total keys', 'total size'], [row]) };
    case 'json':
      return { stdout: `{"hash":${s.hash},"revision":${s.revision},"totalKey":${s.totalKey},"totalSize":${s.totalSize}}\n` };
    case 'fields':
      return { stdout: `"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n` };
    default:
      return unsupported(f);
  }
}
