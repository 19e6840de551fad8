/**
 * etcd's initial corruption check (--experimental-initial-corrupt-check, etcdserver/corrupt.go): before a member
 * serves clients, it compares the hash of its v3 keyspace at its revision with every peer's hash at that revision
 * (asked over the peer listener, GET /members/hashkv with a JSON {"revision":N}) and refuses to start when a peer
 * with the same compact revision has another hash. Peers that cannot answer (down, behind, compacted past it) are
 * logged and skipped, as etcd does.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { peerTarget } from '../rafthttp/transport';

export const PEER_HASHKV_PATH = '/members/hashkv';

export interface HashKV {
  hash: number;
  rev: number;
  compactRev: number;
}

/** The peer answer: Go's json.Marshal of a HashKVResponse. */
export interface PeerHashKVResponse {
  header: { member_id?: string | number; revision?: number };
  hash?: number;
  compact_revision?: number;
}

export interface CorruptCheckDeps {
  localId: string;
  /** Other members and their peer URLs. */
  peers: { id: string; peerURLs: string[] }[];
  hashKV(rev: number): Promise<HashKV>;
  fetch(url: string, rev: number): Promise<PeerHashKVResponse>;
  log(level: 'info' | 'warn' | 'error', msg: string, meta?: Record<string, unknown>): void;
}

export async function checkInitialHashKV(d: CorruptCheckDeps): Promise<void> {
  d.log('info', 'starting initial corruption check', { 'local-member-id': d.localId });
  let local: HashKV;
  try {
    local = await d.hashKV(0);
  } catch (err) {
    throw new Error(`${d.localId} failed to fetch hash (${(err as Error).message})`);
  }
  let mismatch = 0;
  for (const p of d.peers) {
    let resp: PeerHashKVResponse | undefined;
    let lastErr: Error | undefined;
    for (const ep of p.peerURLs) {
      try {
        resp = await d.fetch(ep, local.rev);
        break;
      } catch (err) {
        lastErr = err as Error;
        d.log('warn', 'failed hash kv request', { 'local-member-id': d.localId, 'requested-revision': local.rev, 'remote-peer-endpoint': ep, error: lastErr.message });
      }
    }
    const fields = { 'local-member-id': d.localId, 'local-member-revision': local.rev, 'local-member-compact-revision': local.compactRev, 'local-member-hash': local.hash, 'remote-peer-id': p.id, 'remote-peer-endpoints': p.peerURLs };
    if (!resp) {
      if (lastErr && /future revision/.test(lastErr.message)) d.log('warn', 'cannot fetch hash from slow remote peer', { ...fields, error: lastErr.message });
      else if (lastErr && /compacted/.test(lastErr.message)) d.log('warn', 'cannot fetch hash from remote peer; local member is behind', { ...fields, error: lastErr.message });
      continue;
    }
    const peer = { ...fields, 'remote-peer-revision': resp.header.revision ?? 0, 'remote-peer-compact-revision': resp.compact_revision ?? 0, 'remote-peer-hash': resp.hash ?? 0 };
    if ((resp.hash ?? 0) === local.hash) continue;
    if ((resp.compact_revision ?? 0) === local.compactRev) {
      d.log('warn', 'found different hash values from remote peer', peer);
      mismatch++;
    } else {
      d.log('warn', 'found different compact revision values from remote peer', peer);
    }
  }
  if (mismatch > 0) throw new Error(`${d.localId} found data inconsistency with peers`);
  d.log('info', 'initial corruption checking passed; no corruption', { 'local-member-id': d.localId });
}

/** Asks a peer for its hash at a revision (GET /members/hashkv), with the peer transport's TLS settings. */
export function fetchPeerHashKV(peerURL: string, rev: number, timeoutMs: number, tlsOptions?: https.AgentOptions): Promise<PeerHashKVResponse> {
  return new Promise((resolve, reject) => {
    const target = peerTarget(new URL(PEER_HASHKV_PATH, peerURL));
    if (!target) return reject(new Error(`unsupported peer URL ${peerURL}`));
    const body = JSON.stringify({ revision: rev });
    const opts: https.RequestOptions = { method: 'GET', timeout: timeoutMs, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, socketPath: target.socketPath, ...(target.url.protocol === 'https:' ? tlsOptions : {}) };
    const req = (target.url.protocol === 'https:' ? https : http).request(target.url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(text.trim() || `status ${res.statusCode}`));
        try {
          resolve(JSON.parse(text) as PeerHashKVResponse);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The peer listener's side: GET /members/hashkv, as etcd's hashKVHandler answers it. */
export function serveHashKV(req: http.IncomingMessage, res: http.ServerResponse, memberId: string, hashKV: ((rev: number) => Promise<HashKV>) | undefined): void {
  const fail = (status: number, text: string): void => {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end(`${text}\n`);
  };
  if (req.method !== 'GET') {
    res.setHeader('Allow', 'GET');
    return fail(405, 'Method Not Allowed');
  }
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => {
    text += c;
    if (text.length > 4096) req.destroy();
  });
  req.on('end', () => {
    let rev: number;
    try {
      const j = JSON.parse(text) as { revision?: unknown };
      rev = Number(j.revision ?? 0);
      if (!Number.isSafeInteger(rev) || rev < 0) throw new Error('bad revision');
    } catch {
      return fail(400, 'error unmarshalling request');
    }
    if (!hashKV) return fail(503, 'not ready');
    hashKV(rev).then(
      (h) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ header: { member_id: BigInt('0x' + memberId).toString(), revision: h.rev }, hash: h.hash, compact_revision: h.compactRev }));
      },
      (err: Error) => fail(400, err.message),
    );
  });
}
