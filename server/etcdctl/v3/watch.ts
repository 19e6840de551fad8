/**
 * clientv3's watcher as etcdctl uses it (clientv3/watch.go): every watch of a client shares one gRPC stream opened
 * with require-leader metadata; creates go one at a time, each bound to the watch ID of its created answer;
 * fragments are joined; progress answers (watch ID -1) go to every watch; a compaction answer is delivered and ends
 * its watch; a stream that fails with Unavailable (or Internal) is opened again, on the next endpoint, and each
 * watch resumes from the revision after the last one it saw, so no event is lost or repeated; any other failure, or
 * "etcdserver: no leader", ends every watch with the error.
 */
import * as grpc from '@grpc/grpc-js';
import { type ResponseHeader, WatchRequest, type WatchResponse } from '../../api/v3rpc/pb/etcdserverpb/rpc';
import type { Event } from '../../api/v3rpc/pb/mvccpb/kv';
import { GO_CODE, type V3Client } from './client';

/** What a watch hands etcdctl (clientv3's WatchResponse). */
export interface ClientWatchResponse {
  header: ResponseHeader;
  /** null when the client made the response itself (a watch ended by an error): Go's nil slice */
  events: Event[] | null;
  compactRevision: bigint;
  canceled: boolean;
  created: boolean;
  /** WatchResponse.Err(): set when the watch ends with this response */
  err?: string;
}

export interface WatchSpec {
  key: Buffer;
  end: Buffer;
  rev: bigint;
  prevKv: boolean;
}

const EMPTY_HEADER: ResponseHeader = { clusterId: 0n, memberId: 0n, revision: 0n, raftTerm: 0n };
/** clientv3's maxBackoff between attempts to open a stream again. */
const MAX_BACKOFF_MS = 100;
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';

/** clientv3's v3rpc.Error text for a failed call: etcd's own message as it is, anything else as grpc-go words it. */
function errorText(err: grpc.ServiceError): string {
  if (err.details?.startsWith('etcdserver: ')) return err.details;
  return `rpc error: code = ${GO_CODE[err.code] ?? `Code(${err.code})`} desc = ${err.details}`;
}

/** One watch (clientv3's watcherStream): its request, the revision to resume from, its responses in order. */
class Substream {
  id = -1n;
  closed = false;
  /** the created answer to the first create was seen (a resume's is not delivered either, and changes nothing) */
  private started = false;
  private readonly buf: ClientWatchResponse[] = [];
  private draining = false;

  constructor(
    readonly spec: WatchSpec,
    private readonly onResponse: (r: ClientWatchResponse) => Promise<void>,
    private readonly onEnd: () => void,
  ) {}

  request(): WatchRequest {
    const s = this.spec;
    return WatchRequest.fromPartial({ createRequest: { key: s.key, rangeEnd: s.end, startRevision: s.rev, prevKv: s.prevKv } });
  }

  /** serveSubstream: the revision to resume from follows what was received. */
  receive(r: ClientWatchResponse): void {
    if (this.closed) return;
    let next = this.spec.rev;
    if (r.created) {
      if (!this.started) {
        this.started = true;
        if (this.spec.rev === 0n) next = r.header.revision;
      }
    } else {
      next = r.header.revision;
    }
    if (r.events && r.events.length) next = r.events[r.events.length - 1].kv!.modRevision + 1n;
    this.spec.rev = next;
    if (r.created) return;
    this.deliver(r);
  }

  deliver(r: ClientWatchResponse): void {
    this.buf.push(r);
    void this.drain();
  }

  /** Ends the watch: with a response saying why (closeErr), or just ends it. */
  close(err?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (err !== undefined) this.buf.push({ header: EMPTY_HEADER, events: null, compactRevision: 0n, canceled: true, created: false, err });
    this.buf.push(END);
    void this.drain();
  }

  /** Responses reach etcdctl one at a time (it may run a command for each event). */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    while (this.buf.length) {
      const r = this.buf.shift()!;
      if (r === END) {
        this.onEnd();
        break;
      }
      await this.onResponse(r);
      if (r.err !== undefined && !this.closed) {
        this.closed = true;
        this.buf.length = 0;
        this.onEnd();
        break;
      }
    }
    this.draining = false;
  }
}

const END: ClientWatchResponse = { header: EMPTY_HEADER, events: null, compactRevision: 0n, canceled: false, created: false };

/** The shared stream of a client's watches (clientv3's watchGrpcStream). */
export class ClientWatcher {
  private call: grpc.ClientDuplexStream<WatchRequest, WatchResponse> | undefined;
  private readonly substreams = new Map<bigint, Substream>();
  /** watches waiting for their created answer, the head's create sent */
  private resuming: Substream[] = [];
  private cur: WatchResponse | undefined;
  private readonly cancelSent = new Set<bigint>();
  private endpoint = 0;
  private backoff = 1;
  private closeErr: string | undefined;
  private stopped = false;

  /** `requireLeader`: the stream goes with clientv3.WithRequireLeader (etcdctl's watch; make-mirror's goes without). */
  constructor(private readonly client: V3Client, private readonly requireLeader = true) {}

  /** A watch on the shared stream; the function returned cancels it (clientv3's cancelled context: nothing more comes). */
  watch(spec: WatchSpec, onResponse: (r: ClientWatchResponse) => Promise<void>, onEnd: () => void): () => void {
    const ws = new Substream(spec, onResponse, onEnd);
    const cancel = (): void => this.cancel(ws);
    if (this.closeErr !== undefined) {
      ws.close(this.closeErr);
      return cancel;
    }
    this.resuming.push(ws);
    if (!this.call) this.open();
    else if (this.resuming.length === 1) this.call.write(ws.request());
    return cancel;
  }

  /** Ends a watch from this side: its server watcher is cancelled (now, or once its created answer names it). */
  private cancel(ws: Substream): void {
    if (ws.closed) return;
    ws.closed = true;
    if (ws.id >= 0n && this.substreams.get(ws.id) === ws) {
      this.substreams.delete(ws.id);
      this.cancelSent.add(ws.id);
      this.call?.write(WatchRequest.fromPartial({ cancelRequest: { watchId: ws.id } }));
    }
  }

  /** A progress request on the stream (opened if there is none yet). */
  requestProgress(): void {
    if (!this.call) this.open();
    this.call?.write(WatchRequest.fromPartial({ progressRequest: {} }));
  }

  stop(): void {
    this.stopped = true;
    this.call?.cancel();
  }

  private open(): void {
    if (this.stopped) return;
    // The auth token once --user authenticated, as on every other call.
    const md = this.client.metadata();
    if (this.requireLeader) md.set('hasleader', 'true'); // clientv3.WithRequireLeader
    const call = this.client.watchClient(this.endpoint).watch(md);
    this.call = call;
    this.cur = undefined;
    this.cancelSent.clear();
    call.on('data', (r: WatchResponse) => {
      if (call !== this.call) return;
      this.backoff = 1;
      this.onResponse(r);
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (call === this.call) this.onError(err);
    });
    call.on('end', () => undefined);
    if (this.resuming.length) call.write(this.resuming[0].request());
  }

  private onResponse(r: WatchResponse): void {
    if (!this.cur || r.created || r.canceled) this.cur = r;
    else if (this.cur.watchId === r.watchId) {
      this.cur.events.push(...r.events);
      this.cur.fragment = r.fragment;
    }
    const cur = this.cur;
    if (r.created) {
      const ws = this.resuming.shift();
      if (ws?.closed && r.watchId !== -1n && !r.canceled) {
        // cancelled while its create was on the way
        this.cancelSent.add(r.watchId);
        this.call!.write(WatchRequest.fromPartial({ cancelRequest: { watchId: r.watchId } }));
      } else if (ws) {
        this.addSubstream(r, ws);
        this.dispatch(r);
      }
      this.cur = undefined;
      if (this.resuming.length) this.call!.write(this.resuming[0].request());
    } else if (r.canceled && r.compactRevision === 0n) {
      // canceled by the server: the watch just ends
      const ws = this.substreams.get(r.watchId);
      this.substreams.delete(r.watchId);
      ws?.close(this.closeErr);
      this.cur = undefined;
    } else if (cur.fragment) {
      return;
    } else {
      this.cur = undefined;
      if (this.dispatch(cur) || this.cancelSent.has(cur.watchId)) return;
      // events for a watch this client does not know: cancel it
      this.cancelSent.add(cur.watchId);
      this.call!.write(WatchRequest.fromPartial({ cancelRequest: { watchId: cur.watchId } }));
    }
  }

  private addSubstream(r: WatchResponse, ws: Substream): void {
    if (r.watchId === -1n || (r.canceled && r.cancelReason !== '')) {
      this.closeErr = r.cancelReason;
      ws.close(this.closeErr);
      return;
    }
    ws.id = r.watchId;
    this.substreams.set(r.watchId, ws);
  }

  private dispatch(r: WatchResponse): boolean {
    const wr: ClientWatchResponse = {
      header: r.header ?? EMPTY_HEADER,
      events: r.events,
      compactRevision: r.compactRevision,
      canceled: r.canceled,
      created: r.created,
    };
    if (r.compactRevision !== 0n) wr.err = COMPACTED;
    else if (r.canceled) wr.err = r.cancelReason ? `rpc error: code = FailedPrecondition desc = ${r.cancelReason}` : 'etcdserver: mvcc: required revision is a future revision';
    const progress = !wr.events!.length && !wr.canceled && !wr.created && wr.compactRevision === 0n && wr.header.revision !== 0n;
    if (progress && r.watchId === -1n) {
      for (const ws of this.substreams.values()) ws.receive({ ...wr, events: [] });
      return true;
    }
    const ws = this.substreams.get(r.watchId);
    if (!ws) return false;
    ws.receive(wr);
    return true;
  }

  /** The stream failed: Unavailable and Internal are retried (the next endpoint, after a backoff), anything else ends every watch. */
  private onError(err: grpc.ServiceError): void {
    this.call = undefined;
    if (this.stopped) return;
    const text = errorText(err);
    if ((err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.INTERNAL) || text === 'etcdserver: no leader') {
      this.closeErr = text;
      for (const ws of [...this.substreams.values(), ...this.resuming]) ws.close(text);
      this.substreams.clear();
      this.resuming = [];
      return;
    }
    // every watch resumes, from the revision after the last it saw
    this.resuming = [...this.resuming, ...this.substreams.values()].filter((ws) => !ws.closed);
    for (const ws of this.resuming) ws.id = -1n;
    this.substreams.clear();
    if (this.client.endpointCount > 1) this.endpoint++;
    this.backoff = Math.min(MAX_BACKOFF_MS, Math.max(this.backoff + this.backoff / 4, 1));
    setTimeout(() => this.open(), this.backoff);
  }
}
