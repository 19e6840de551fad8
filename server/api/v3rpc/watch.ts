/**
 * The etcdserverpb.Watch service (etcd's v3rpc/watch.go): one bidirectional stream carries many watchers. Create
 * requests (keys, ranges, "\0" for every key from key, start revisions, prev_kv, NOPUT/NODELETE, progress_notify,
 * fragment, watch IDs given or assigned), cancel requests and progress requests come in; created/canceled answers,
 * events, progress notifications and compaction answers go out in one FIFO queue per stream, in the order they
 * happened. The queue holds at most CHAN_BUF_LEN watch responses (etcd's chanBufLen): when the client does not read,
 * its watchers fall behind and are caught up from history later (mvcc/watchable.ts), and past CTRL_BUF_LEN more
 * answers its requests are no longer read (etcd's ctrlStream), so a stream's memory is bounded whatever the client does.
 */
import * as grpc from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Event } from './pb/mvccpb/kv';
import { type ResponseHeader, WatchCreateRequest_FilterType, WatchRequest, WatchResponse } from './pb/etcdserverpb/rpc';
import {
  ErrGRPCAuthOldRevision, ErrGRPCInvalidAuthToken, ErrGRPCNoLeader, ErrGRPCPermissionDenied, ErrGRPCUserEmpty, GRPC_OVERHEAD_BYTES, toGRPCError, V3Error,
} from './errors';
import { FramedWriter } from './framed-writer';
import type { HeaderProvider } from './kv';
import type { GrpcMetrics, MethodCounters } from './metrics';
import { encodeMessage, encodeToBuffer, type CallGate, type MessageCodec } from './service';
import { HeaderBytes, putVarint, varintSize } from './wire';
import { WatchError, type WatchableStore, type WatchEvent, type WatchResult, type WatchSink, type WatchStream, type Watcher } from '../../mvcc/watchable';

/** etcd's chanBufLen: watch responses a stream queues before its watchers are slow. */
export const CHAN_BUF_LEN = 128;
/** etcd's ctrlStreamBufLen: answers to requests queued beyond that before requests are no longer read. */
const CTRL_BUF_LEN = 16;
/** etcd's default --experimental-watch-progress-notify-interval (10 minutes), and its minimum. */
export const DEFAULT_PROGRESS_NOTIFY_MS = 10 * 60 * 1000;
export const MIN_PROGRESS_NOTIFY_MS = 100;
/** etcd's maxNoLeaderCnt: election timeouts without a leader before require-leader streams are ended. */
const MAX_NO_LEADER_CNT = 3;
/** clientv3.InvalidWatchID */
const INVALID_WATCH_ID = -1n;

export interface WatchServiceOptions {
  watchable: WatchableStore;
  header: HeaderProvider;
  /** --max-request-bytes: fragmented responses are cut at this plus the gRPC overhead, as etcd's are */
  maxRequestBytes: number;
  /** --experimental-watch-progress-notify-interval in ms */
  progressNotifyIntervalMs?: number;
  /** Whether the member knows a leader (streams opened with clientv3's WithRequireLeader need one). */
  hasLeader?: () => boolean;
  /** The election timeout (ms): require-leader streams end after MAX_NO_LEADER_CNT of them without a leader. */
  electionMs?: number;
  /** What a learner refuses (etcd 3.4's stream interceptor: a learner serves no streams). */
  gate?: CallGate;
  /** With auth enabled: may the stream's caller watch [key, rangeEnd)? An error is the create's cancel reason. */
  authorize?: (call: grpc.ServerDuplexStream<WatchRequest, Buffer>, key: Buffer, rangeEnd: Buffer) => Error | undefined;
}

/** A response as it is put on the wire: the events' bytes encoded once, whichever watchers they go to. */
const WatchResponseWire: MessageCodec<WatchResponse> = {
  encode(m: WatchResponse, w: BinaryWriter = new BinaryWriter()): BinaryWriter {
    WatchResponse.encode({ ...m, events: [] }, w);
    for (const ev of m.events as WatchEvent[]) w.uint32(90).bytes(ev.encoded!);
    return w;
  },
  decode: (b) => WatchResponse.decode(b),
};

/** Encodes the events not yet encoded (before the response, which encodes through the same shared writer). */
function encodeEvents(events: WatchEvent[]): number {
  let size = 0;
  for (const ev of events) {
    ev.encoded ??= encodeMessage(Event, ev);
    size += eventFieldSize(ev);
  }
  return size;
}

/** An event's bytes in a WatchResponse: its tag, its length and itself. */
const eventFieldSize = (ev: WatchEvent): number => 1 + varintSize(ev.encoded!.length) + ev.encoded!.length;

/** Watch IDs the direct encoding takes (a client may name any int64; larger ones go through the generic one). */
const MAX_DIRECT_WATCH_ID = 2n ** 31n;

/**
 * The bytes of a WatchResponse of events (no created, canceled, compaction or fragment), as WatchResponse.encode
 * writes them (header, watch_id, events), from the header's bytes and the events' own: no message object, no
 * writer. The size of the response first (watchResponseSize), then its bytes at buf[at].
 */
export function watchResponseSize(header: Uint8Array, watchId: number, eventsSize: number): number {
  return 1 + varintSize(header.length) + header.length + (watchId ? 1 + varintSize(watchId) : 0) + eventsSize;
}

export function putWatchResponse(buf: Buffer, at: number, header: Uint8Array, watchId: number, events: WatchEvent[]): number {
  buf[at++] = 0x0a; // header, field 1
  at = putVarint(buf, at, header.length);
  buf.set(header, at);
  at += header.length;
  if (watchId) {
    buf[at++] = 0x10; // watch_id, field 2
    at = putVarint(buf, at, watchId);
  }
  for (const ev of events) {
    buf[at++] = 0x5a; // events, field 11
    at = putVarint(buf, at, ev.encoded!.length);
    buf.set(ev.encoded!, at);
    at += ev.encoded!.length;
  }
  return at;
}

type Item = { w: Watcher; r: WatchResult; bytes?: undefined } | { w?: undefined; r?: undefined; bytes: Buffer };

/** The streams opened with require-leader metadata, ended when the member stays without a leader (etcd's monitorLeader). */
class LeaderMonitor {
  private readonly streams = new Set<ServerWatchStream>();
  private timer: NodeJS.Timeout | undefined;
  private noLeader = 0;

  constructor(private readonly hasLeader: () => boolean, private readonly electionMs: number) {}

  add(s: ServerWatchStream): void {
    this.streams.add(s);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.electionMs);
      this.timer.unref();
    }
  }

  delete(s: ServerWatchStream): void {
    this.streams.delete(s);
    if (!this.streams.size && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.noLeader = 0;
    }
  }

  private check(): void {
    this.noLeader = this.hasLeader() ? 0 : this.noLeader + 1;
    if (this.noLeader < MAX_NO_LEADER_CNT) return;
    for (const s of [...this.streams]) s.fail(ErrGRPCNoLeader);
  }
}

/** etcd's serverWatchStream: one client stream, its watchers and its outgoing queue. */
class ServerWatchStream implements WatchSink {
  private readonly ws: WatchStream;
  private readonly queue: (Item | undefined)[] = [];
  private head = 0;
  /** watch responses in the queue (answers to requests are not counted: they are never refused) */
  private queuedWatch = 0;
  private readonly out: FramedWriter;
  private paused = false;
  private pumping = false;
  private ended = false;
  /** watchers with progress_notify: true when no event was sent them since the last tick (etcd's progress map) */
  private readonly progress = new Map<bigint, boolean>();
  private ticker: NodeJS.Timeout | undefined;
  private readonly maxBytes: number;

  constructor(
    private readonly call: grpc.ServerDuplexStream<WatchRequest, Buffer>,
    private readonly opts: WatchServiceOptions,
    private readonly counters: MethodCounters | undefined,
    private readonly monitor: LeaderMonitor | undefined,
    private readonly headers: HeaderBytes,
  ) {
    this.maxBytes = opts.maxRequestBytes + GRPC_OVERHEAD_BYTES;
    this.out = new FramedWriter(call as grpc.ServerDuplexStream<unknown, Buffer>, () => this.pump());
    this.ws = opts.watchable.newWatchStream(this);
    monitor?.add(this);
    call.on('data', (req: WatchRequest) => {
      counters?.received();
      this.onRequest(req);
    });
    // A half-close ends nothing: etcd goes on sending until the client cancels the stream.
    call.on('end', () => undefined);
    call.on('cancelled', () => this.close(grpc.status.CANCELLED));
    call.on('error', () => this.close(grpc.status.CANCELLED));
  }

  // ---- WatchSink ----

  ready(): boolean {
    return !this.ended && this.queuedWatch < CHAN_BUF_LEN;
  }

  send(w: Watcher, r: WatchResult): void {
    if (this.ended) return;
    this.queue.push({ w, r });
    this.queuedWatch++;
    this.opts.watchable.counts.pendingEvents += r.events.length;
    this.pump();
  }

  // ---- requests ----

  private onRequest(req: WatchRequest): void {
    if (this.ended) return;
    if (req.createRequest) this.create(req.createRequest);
    else if (req.cancelRequest) {
      const id = req.cancelRequest.watchId;
      // An unknown watch ID is answered with nothing, as etcd 3.4 does.
      if (this.ws.cancel(id)) {
        this.progress.delete(id);
        this.ctrl({ watchId: id, canceled: true });
      }
    } else if (req.progressRequest) {
      this.ctrl({ watchId: INVALID_WATCH_ID });
    }
  }

  private create(c: NonNullable<WatchRequest['createRequest']>): void {
    // "\0" is the smallest key; a range end of "\0" is every key from key on (empty end for the store)
    const key = c.key.length ? c.key : Buffer.from([0]);
    const end = c.rangeEnd.length === 0 ? undefined : c.rangeEnd.length === 1 && c.rangeEnd[0] === 0 ? Buffer.alloc(0) : c.rangeEnd;
    const wsrev = this.ws.rev();
    const start = c.startRevision === 0n ? wsrev + 1 : Number(c.startRevision);
    let id: bigint;
    let reason = '';
    // etcd's isWatchPermitted, with the range as etcd checks it: a "\0" range end (every key from key on) as an
    // empty one, so only the key itself is checked (etcd 3.4 does so).
    const denied = this.opts.authorize?.(this.call, key, end ?? Buffer.alloc(0));
    if (denied) {
      // etcd's gRPC error for an invalid token, an old auth revision or no user; permission denied for the rest
      const e = toGRPCError(denied);
      const m = e === ErrGRPCInvalidAuthToken || e === ErrGRPCAuthOldRevision || e === ErrGRPCUserEmpty ? e.details : ErrGRPCPermissionDenied.details;
      this.ctrl({ watchId: INVALID_WATCH_ID, created: true, canceled: true, cancelReason: m }, wsrev);
      return;
    }
    try {
      id = this.ws.watch(c.watchId, key, end, start, {
        prevKv: c.prevKv,
        noPut: c.filters.includes(WatchCreateRequest_FilterType.NOPUT),
        noDelete: c.filters.includes(WatchCreateRequest_FilterType.NODELETE),
        fragment: c.fragment,
      });
    } catch (err) {
      if (!(err instanceof WatchError)) throw err;
      id = INVALID_WATCH_ID;
      reason = err.message;
    }
    // Queued before anything the watcher is sent: its events come later (next txn, or the next catch-up round).
    this.ctrl({ watchId: id, created: true, canceled: reason !== '', cancelReason: reason }, wsrev);
    if (reason === '' && c.progressNotify) {
      this.progress.set(id, true);
      this.startTicker();
    }
  }

  private startTicker(): void {
    if (this.ticker) return;
    const interval = Math.max(this.opts.progressNotifyIntervalMs ?? DEFAULT_PROGRESS_NOTIFY_MS, MIN_PROGRESS_NOTIFY_MS);
    // etcd adds up to a tenth of the interval as jitter, so that watchers created together do not tick together
    this.ticker = setInterval(() => this.tick(), interval + Math.floor(Math.random() * (interval / 10)));
    this.ticker.unref();
  }

  /** etcd's progress ticker: a notification to each progress watcher that was sent no event since the last tick. */
  private tick(): void {
    for (const [id, idle] of this.progress) {
      if (idle) this.ws.requestProgress(id);
      this.progress.set(id, true);
    }
  }

  // ---- the outgoing queue ----

  private header(rev: number | bigint): ResponseHeader {
    const h = this.opts.header;
    return { clusterId: h.clusterId(), memberId: h.memberId(), revision: BigInt(rev), raftTerm: h.raftTerm() };
  }

  /** An answer to a request, queued whatever the queue holds; past CTRL_BUF_LEN more, requests wait. */
  private ctrl(r: Partial<WatchResponse>, rev: number = this.ws.rev()): void {
    const resp: WatchResponse = { ...WatchResponse.fromPartial({}), ...r, header: this.header(rev) };
    this.queue.push({ bytes: encodeToBuffer(WatchResponseWire, resp) });
    if (!this.paused && this.queue.length - this.head > CHAN_BUF_LEN + CTRL_BUF_LEN) {
      this.paused = true;
      this.call.pause();
    }
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.head < this.queue.length && !this.out.blocked && !this.ended) {
        const item = this.queue[this.head]!;
        this.queue[this.head++] = undefined;
        if (item.bytes) {
          this.write(item.bytes);
          continue;
        }
        this.queuedWatch--;
        this.opts.watchable.counts.pendingEvents -= item.r.events.length;
        this.opts.watchable.counts.eventsSent += item.r.events.length;
        if (item.w.state === 'canceled') continue; // canceled since: its client wants none of it
        this.writeWatch(item.w, item.r);
      }
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
    } finally {
      this.pumping = false;
    }
    if (this.ended) return;
    if (this.paused && this.queue.length - this.head <= CHAN_BUF_LEN) {
      this.paused = false;
      this.call.resume();
    }
    if (this.queuedWatch < CHAN_BUF_LEN) this.ws.ready();
  }

  private write(bytes: Uint8Array): void {
    this.counters?.sent();
    this.out.message(bytes);
  }

  private writeWatch(w: Watcher, r: WatchResult): void {
    const size = encodeEvents(r.events);
    if (r.events.length && this.progress.get(w.id)) this.progress.set(w.id, false); // the next tick skips it
    if (r.compactRevision === 0 && w.id >= 0n && w.id < MAX_DIRECT_WATCH_ID) {
      // the common case, encoded straight into the stream's batch
      const header = this.headers.at(r.revision);
      const id = Number(w.id);
      const n = watchResponseSize(header, id, size);
      if (!w.opts.fragment || r.events.length < 2 || n < this.maxBytes) {
        this.counters?.sent();
        const [buf, at] = this.out.begin(n);
        putWatchResponse(buf, at, header, id, r.events);
        this.out.end();
        return;
      }
    }
    const resp: WatchResponse = {
      header: this.header(r.revision),
      watchId: w.id,
      created: false,
      canceled: r.compactRevision !== 0,
      compactRevision: BigInt(r.compactRevision),
      cancelReason: '',
      fragment: false,
      events: r.events,
    };
    if (!w.opts.fragment || r.events.length < 2) return this.write(encodeToBuffer(WatchResponseWire, resp));
    // etcd's sendFragments: whole when it is under the limit, else in parts of as many events as keep a part under
    // it (at least one), each marked fragment but the last
    const base = encodeToBuffer(WatchResponseWire, { ...resp, events: [], fragment: true }).length;
    if (base - 2 + size < this.maxBytes) return this.write(encodeToBuffer(WatchResponseWire, resp));
    let i = 0;
    while (i < r.events.length) {
      let partSize = base;
      const from = i;
      while (i < r.events.length) {
        const s = eventFieldSize(r.events[i]);
        if (i > from && partSize + s >= this.maxBytes) break;
        partSize += s;
        i++;
      }
      this.write(encodeToBuffer(WatchResponseWire, { ...resp, events: r.events.slice(from, i), fragment: i < r.events.length }));
    }
  }

  /** Ends the stream with an error status (a require-leader stream whose member lost its leader). */
  fail(err: V3Error): void {
    if (this.ended) return;
    this.out.flush(); // what was sent before goes out before the status
    this.close(err.code);
    this.call.emit('error', { code: err.code, details: err.details, metadata: new grpc.Metadata() });
  }

  private close(code: grpc.status): void {
    if (this.ended) return;
    this.ended = true;
    this.counters?.handled(code);
    if (this.ticker) clearInterval(this.ticker);
    this.monitor?.delete(this);
    this.ws.close();
    for (let i = this.head; i < this.queue.length; i++) {
      const item = this.queue[i];
      if (item?.r) this.opts.watchable.counts.pendingEvents -= item.r.events.length;
    }
    this.queue.length = 0;
    this.head = 0;
    this.queuedWatch = 0;
  }
}

export function addWatchService(server: grpc.Server, opts: WatchServiceOptions, metrics?: GrpcMetrics): void {
  const definition: grpc.ServiceDefinition = {
    Watch: {
      path: '/etcdserverpb.Watch/Watch',
      requestStream: true,
      responseStream: true,
      requestSerialize: (m: WatchRequest) => encodeToBuffer(WatchRequest, m),
      requestDeserialize: (b: Buffer) => WatchRequest.decode(b),
      // responses are encoded when they are queued or sent (see ServerWatchStream)
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => WatchResponse.decode(b),
    },
  };
  const counters = metrics?.forMethod('bidi_stream', 'etcdserverpb.Watch', 'Watch');
  const monitor = opts.hasLeader ? new LeaderMonitor(opts.hasLeader, opts.electionMs ?? 1000) : undefined;
  const headers = new HeaderBytes(opts.header);
  server.addService(definition, {
    Watch: (call: grpc.ServerDuplexStream<WatchRequest, Buffer>) => {
      counters?.started();
      const refused = opts.gate?.('/etcdserverpb.Watch/Watch', undefined);
      if (refused) {
        counters?.handled(refused.code);
        call.emit('error', { code: refused.code, details: refused.details, metadata: new grpc.Metadata() });
        return;
      }
      const requireLeader = call.metadata.get('hasleader')[0] === 'true';
      if (requireLeader && opts.hasLeader && !opts.hasLeader()) {
        counters?.handled(ErrGRPCNoLeader.code);
        call.emit('error', { code: ErrGRPCNoLeader.code, details: ErrGRPCNoLeader.details, metadata: new grpc.Metadata() });
        return;
      }
      new ServerWatchStream(call, opts, counters, requireLeader ? monitor : undefined, headers);
    },
  });
  metrics?.preRegister(definition);
}
