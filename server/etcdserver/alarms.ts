/**
 * etcd's alarms (etcdserver/api/v3alarm, apply.go's Alarm, applierV3Capped, applierV3Corrupt): a member raises
 * NOSPACE when the backend passes --quota-backend-bytes, CORRUPT when its data differs from the others'; alarms go
 * through the Raft log (Maintenance.Alarm), so every member holds the same ones, and are kept in the MVCC store's
 * meta table, committed with their entry and carried by snapshots. While one is active, the v3 applier refuses
 * writes as etcd's does: NOSPACE refuses puts (reads and deletes still work), CORRUPT every write.
 */
import { AlarmMember, AlarmRequest, AlarmRequest_AlarmAction, AlarmResponse, AlarmType } from '../api/v3rpc/pb/etcdserverpb/rpc';
import { serverError } from '../api/v3rpc/errors';
import type { MvccStore } from '../mvcc/store';

/** The meta table's key of the active alarms (an AlarmResponse holding them). */
export const ALARMS_META_KEY = 'alarms';

/** The meta value of a list of alarms. */
export function encodeAlarms(alarms: AlarmMember[]): Buffer {
  return Buffer.from(AlarmResponse.encode({ header: undefined, alarms }).finish());
}

/** The alarms of a meta value (none when there is none). */
export function decodeAlarms(data: Buffer | undefined): AlarmMember[] {
  return data && data.length ? AlarmResponse.decode(data).alarms : [];
}

/** What the v3 applier does while alarms are active, as etcd swaps its applier: all, no puts, no writes. */
export type ApplyMode = 'normal' | 'capped' | 'corrupt';

/** etcd's AlarmType names (Go's String() of the enum: the number for a value it has no name for). */
export function alarmTypeName(t: AlarmType): string {
  return AlarmType[t] && t !== AlarmType.UNRECOGNIZED ? AlarmType[t] : String(t);
}

/** An alarm as Go's proto text (AlarmMember.String()), how Status lists it in its errors: "memberID:N alarm:NOSPACE ". */
export function alarmString(a: AlarmMember): string {
  return `memberID:${a.memberID} alarm:${alarmTypeName(a.alarm)} `;
}

type Log = (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;

export class AlarmStore {
  /** By type, then member ID (hex), as etcd's map of maps. */
  private readonly byType = new Map<AlarmType, Map<bigint, AlarmMember>>();
  private applyMode: ApplyMode = 'normal';

  constructor(
    private readonly store: MvccStore,
    private readonly log: Log = () => undefined,
  ) {
    this.reload();
  }

  /** The alarms as committed in the store (at start, and after a snapshot replaced the store's data). */
  reload(): void {
    this.byType.clear();
    for (const a of decodeAlarms(this.store.readMetaValue(ALARMS_META_KEY))) this.add(a);
    // As etcd's restoreAlarms: CORRUPT over NOSPACE.
    this.applyMode = this.get(AlarmType.CORRUPT).length ? 'corrupt' : this.get(AlarmType.NOSPACE).length ? 'capped' : 'normal';
  }

  get mode(): ApplyMode {
    return this.applyMode;
  }

  /** The active alarms of a type (NONE: of every type), by type then member ID. */
  get(type: AlarmType): AlarmMember[] {
    const types = type === AlarmType.NONE ? [...this.byType.keys()].sort((a, b) => a - b) : [type];
    const out: AlarmMember[] = [];
    for (const t of types) {
      const m = this.byType.get(t);
      if (m) out.push(...[...m.values()].sort((a, b) => (a.memberID < b.memberID ? -1 : a.memberID > b.memberID ? 1 : 0)));
    }
    return out;
  }

  /** Whether this member has raised an alarm of this type. */
  has(type: AlarmType, memberID: bigint): boolean {
    return this.byType.get(type)?.has(memberID) ?? false;
  }

  /** Applies a Maintenance.Alarm request from the log entry at index, as etcd's applier does. */
  apply(index: number, r: AlarmRequest): AlarmResponse {
    const resp: AlarmResponse = { header: undefined, alarms: [] };
    const before = this.get(r.alarm).length;
    switch (r.action) {
      case AlarmRequest_AlarmAction.GET:
        resp.alarms = this.get(r.alarm);
        break;
      case AlarmRequest_AlarmAction.ACTIVATE: {
        const existing = this.byType.get(r.alarm)?.get(r.memberID);
        if (existing) {
          resp.alarms.push(existing);
          break;
        }
        const m: AlarmMember = { memberID: r.memberID, alarm: r.alarm };
        this.add(m);
        this.persist(index);
        resp.alarms.push(m);
        if (before !== 0) break;
        this.log('warn', 'alarm raised', { alarm: alarmTypeName(m.alarm), from: m.memberID.toString(16), capnslog: `alarm ${alarmTypeName(m.alarm)} raised by peer ${m.memberID.toString(16)}` });
        if (m.alarm === AlarmType.CORRUPT) this.applyMode = 'corrupt';
        else if (m.alarm === AlarmType.NOSPACE) this.applyMode = 'capped';
        else this.log('warn', 'unimplemented alarm activation', { alarm: alarmTypeName(m.alarm) });
        break;
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const set = this.byType.get(r.alarm);
        const m = set?.get(r.memberID);
        if (!m) break;
        set!.delete(r.memberID);
        this.persist(index);
        resp.alarms.push(m);
        if (this.get(r.alarm).length !== 0) break;
        if (m.alarm === AlarmType.NOSPACE || m.alarm === AlarmType.CORRUPT) {
          // etcd's capnslog line shows the request as Go's proto text.
          const req = `action:DEACTIVATE memberID:${r.memberID} alarm:${alarmTypeName(r.alarm)} `;
          this.log('warn', 'alarm disarmed', { alarm: alarmTypeName(m.alarm), from: m.memberID.toString(16), capnslog: `alarm disarmed ${req}` });
          this.applyMode = 'normal';
        } else this.log('warn', 'unimplemented alarm deactivation', { alarm: alarmTypeName(m.alarm) });
        break;
      }
      default:
        // etcd's applier answers nothing for an action it does not know: an empty response.
        break;
    }
    return resp;
  }

  /** The error a write gets while alarms are active (etcd's capped and corrupt appliers), or undefined. */
  refusal(write: { put: boolean }): Error | undefined {
    if (this.applyMode === 'corrupt') return serverError('corrupt');
    if (this.applyMode === 'capped' && write.put) return serverError('noSpace');
    return undefined;
  }

  private add(m: AlarmMember): void {
    let set = this.byType.get(m.alarm);
    if (!set) this.byType.set(m.alarm, (set = new Map()));
    if (!set.has(m.memberID)) set.set(m.memberID, m);
  }

  private persist(index: number): void {
    this.store.putMetaValue(ALARMS_META_KEY, encodeAlarms(this.get(AlarmType.NONE)), index);
  }
}
