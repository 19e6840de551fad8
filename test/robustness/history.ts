/**
 * What the robustness clients did: every v2 request with when it was sent and answered, what it asked and what
 * came back (or that nothing did). The history is plain JSON, saved and re-checked as it is.
 */
import * as http from 'node:http';

export type OpKind =
  /** A register (/reg/…): read (quorum unless `quorum` is false), set, compare-and-swap by prevValue or prevIndex. */
  | 'get' | 'set' | 'cas'
  /** A key written once (/uniq/…). */
  | 'put'
  /** A key written once with a TTL (/ttl/…), and the quorum read of it that follows. */
  | 'ttl-put' | 'ttl-get';

export interface NodeSeen {
  value: string | null;
  modifiedIndex: number;
}

export interface RecordedOp {
  id: number;
  client: number;
  /** The member the request went to. */
  member: string;
  kind: OpKind;
  key: string;
  /** Sent and answered, in ms on the runner's monotonic clock (performance.now); ret null: no answer. */
  call: number;
  ret: number | null;
  /** Date.now() when sent and answered (TTLs are wall-clock times on the server). */
  wall: number;
  wallRet?: number;
  /** For a ttl-get: the id of the ttl-put it reads back. */
  of?: number;
  value?: string;
  quorum?: boolean;
  prevValue?: string;
  prevIndex?: number;
  /** For a compare-and-swap: the value the compare expects (the value read at prevIndex). */
  expect?: string;
  ttl?: number;
  /** The answer: HTTP status, the node (null: 404), the prevNode, an etcd error. */
  status?: number;
  node?: NodeSeen | null;
  prev?: NodeSeen | null;
  errorCode?: number;
  cause?: string;
  /** Why there was no answer (or the answer of a server in trouble). */
  error?: string;
}

/**
 * What an answer says about the operation: it happened as answered ('ok'), it was applied and failed ('failed':
 * a compare that did not match), it certainly did not happen ('refused': nothing listened), or nobody knows
 * ('unknown': no answer, a timeout, a member in trouble).
 */
export function outcome(op: RecordedOp): 'ok' | 'failed' | 'refused' | 'unknown' {
  if (op.ret === null) return op.error?.startsWith('connect ECONNREFUSED') || op.error?.startsWith('ECONNREFUSED') ? 'refused' : 'unknown';
  if (op.status !== undefined && op.status >= 200 && op.status < 300) return 'ok';
  // A read of a key that is not there answered none; a compare that did not hold was applied and failed.
  if (op.errorCode === 100 && (op.kind === 'get' || op.kind === 'ttl-get')) return 'ok';
  if (op.kind === 'cas' && (op.errorCode === 100 || op.errorCode === 101)) return 'failed';
  return 'unknown';
}

/** Records every request of the run's clients. */
export class HistoryRecorder {
  readonly ops: RecordedOp[] = [];
  private nextId = 0;
  /** No keep-alive: a killed member refuses the next connection (certainly not applied) instead of resetting it. */
  private readonly agent = new http.Agent({ keepAlive: false });

  constructor(private readonly timeoutMs: number) {}

  /** Sends one v2 keys request and records it; the op is returned once answered or given up on. */
  async run(
    client: number,
    member: { name: string; clientURL: string },
    kind: OpKind,
    key: string,
    method: 'GET' | 'PUT',
    params: Record<string, string | number | boolean | undefined>,
    fields: Partial<RecordedOp> = {},
  ): Promise<RecordedOp> {
    const form = Object.entries(params)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
      .join('&');
    const op: RecordedOp = { id: this.nextId++, client, member: member.name, kind, key, call: 0, ret: null, wall: Date.now(), ...fields };
    this.ops.push(op);
    const path = method === 'GET' ? `/v2/keys${key}${form ? `?${form}` : ''}` : `/v2/keys${key}`;
    op.call = performance.now();
    try {
      const a = await send(this.agent, member.clientURL, method, path, method === 'PUT' ? form : undefined, this.timeoutMs);
      op.ret = performance.now();
      op.wallRet = Date.now();
      op.status = a.status;
      let body: { node?: { value?: string; modifiedIndex: number }; prevNode?: { value?: string; modifiedIndex: number }; errorCode?: number; cause?: string; message?: string };
      try {
        body = JSON.parse(a.body) as typeof body;
      } catch {
        op.error = `HTTP ${a.status}: ${a.body.slice(0, 200)}`;
        return op;
      }
      if (body.errorCode !== undefined) {
        op.errorCode = body.errorCode;
        op.cause = body.cause;
        if (body.errorCode === 100 && (kind === 'get' || kind === 'ttl-get')) op.node = null;
        if (outcome(op) === 'unknown') op.error = `${body.errorCode} ${body.message ?? ''}: ${body.cause ?? ''}`;
      }
      if (body.node) op.node = { value: body.node.value ?? null, modifiedIndex: body.node.modifiedIndex };
      if (kind === 'set' || kind === 'cas' || kind === 'put' || kind === 'ttl-put') {
        if (op.status >= 200 && op.status < 300) op.prev = body.prevNode ? { value: body.prevNode.value ?? null, modifiedIndex: body.prevNode.modifiedIndex } : null;
      }
    } catch (err) {
      // Refused: the request never left (ECONNREFUSED). Anything else: the member may have taken it.
      const code = (err as NodeJS.ErrnoException).code;
      op.error = code && !(err as Error).message.includes(code) ? `${code} ${(err as Error).message}` : (err as Error).message;
    }
    return op;
  }
}

function send(agent: http.Agent, base: string, method: string, path: string, form: string | undefined, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (form !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = String(Buffer.byteLength(form));
    }
    const req = http.request(new URL(path, base), { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(form);
  });
}
