/**
 * The peer transport between two members in one process: a member that does not know the sender yet (it is behind
 * on the log: the sender joined since) takes its messages and answers it at the peer URLs the sender gives, as
 * etcd does with a "remote"; without them it refuses; another cluster is refused; a removed member hears 410.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Message, MessageType } from '../../server/raft';
import { Transport } from '../../server/rafthttp/transport';
import { eventually } from '../support/cluster';

interface Node {
  t: Transport;
  url: string;
  got: Message[];
  removedBy: string[];
  removed: Set<string>;
  server: http.Server;
}

const dirs: string[] = [];
const nodes: Node[] = [];

async function node(id: string, clusterId = 'c1'): Promise<Node> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'transport-'));
  dirs.push(dir);
  const got: Message[] = [];
  const removedBy: string[] = [];
  const removed = new Set<string>();
  const t = new Transport({
    reporter: { process: (m) => void got.push(m), reportUnreachable: () => undefined, reportSnapshot: () => undefined, isRemoved: (x) => removed.has(x), removedByPeer: (p) => void removedBy.push(p) },
    log: () => undefined,
    snapshotDir: dir,
  });
  const server = http.createServer({ requestTimeout: 0 }, t.handler((_req, res) => res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  t.setLocal(id, clusterId, [url]);
  const n = { t, url, got, removedBy, removed, server };
  nodes.push(n);
  return n;
}

const msg = (from: string, to: string, type = MessageType.Heartbeat): Message => ({ type, to, from, term: 2, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, entries: [] });

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.t.stop();
    n.server.closeAllConnections();
    await new Promise((r) => n.server.close(r));
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

test('a member behind on the log takes messages from a newcomer it does not know, and can answer it', async () => {
  const [behind, newcomer] = [await node('aa'), await node('dd')];
  newcomer.t.addPeer('aa', [behind.url]); // the newcomer knows everyone; "behind" has not applied its addition yet
  newcomer.t.send([msg('dd', 'aa')]);
  await eventually('the message to arrive', async () => (behind.got.some((m) => m.from === 'dd') ? true : undefined));
  behind.t.send([msg('aa', 'dd', MessageType.HeartbeatResp)]);
  await eventually('the answer to arrive', async () => (newcomer.got.some((m) => m.from === 'aa' && m.type === MessageType.HeartbeatResp) ? true : undefined));
});

test('a sender of another cluster is refused; a removed member is told so with 410', async () => {
  const [a, stranger, gone] = [await node('aa'), await node('ee', 'other-cluster'), await node('ff')];
  stranger.t.addPeer('aa', [a.url]);
  stranger.t.send([msg('ee', 'aa')]);
  a.removed.add('ff');
  gone.t.addPeer('aa', [a.url]);
  gone.t.send([msg('ff', 'aa')]);
  await eventually('the removed member to hear it', async () => (gone.removedBy.includes('aa') ? true : undefined));
  expect(a.got.filter((m) => m.from === 'ee' || m.from === 'ff')).toEqual([]);
});

test('a stream without peer URLs from an unknown sender is refused (404), as etcd refuses it', async () => {
  const a = await node('aa');
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${a.url}/raft/stream`, { method: 'POST', headers: { 'X-Server-From': 'bb', 'X-Raft-To': 'aa', 'X-Etcd-Cluster-ID': 'c1' } }, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
  expect(res).toEqual({ status: 404, body: 'error sender not found\n' });
});

test('a peer that falls silent (no message, no link heartbeat) is inactive, and its stream is closed', async () => {
  const a = await node('aa');
  // "bb" answers a's stream (so a's side of the link is up) but never sends anything on its own stream to a.
  const sink = http.createServer({ requestTimeout: 0 }, (req, res) => {
    res.writeHead(200);
    res.flushHeaders();
    req.resume();
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const sinkURL = `http://127.0.0.1:${(sink.address() as net.AddressInfo).port}`;
  try {
    const closed = new Promise<number>((resolve) => {
      const started = performance.now();
      const req = http.request(`${a.url}/raft/stream`, { method: 'POST', headers: { 'X-Server-From': 'bb', 'X-Raft-To': 'aa', 'X-Etcd-Cluster-ID': 'c1', 'X-PeerURLs': sinkURL } });
      req.on('response', (res) => {
        res.resume();
        res.on('close', () => resolve(performance.now() - started));
      });
      req.on('error', () => resolve(performance.now() - started));
      req.flushHeaders();
    });
    await eventually('a to take bb as a peer and connect to it', async () => (a.t.activeSince('bb') !== undefined ? true : undefined));
    expect(a.t.isActive('bb')).toBe(true);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(4000); // not before the link timeout (5 s, checked every second)
    expect(a.t.isActive('bb')).toBe(false);
    expect(a.t.activeSince('bb')).toBeUndefined();
  } finally {
    sink.closeAllConnections();
    await new Promise((r) => sink.close(r));
  }
}, 20000);

test('an idle but live link stays active: link heartbeats keep it so', async () => {
  const [a, b] = [await node('aa'), await node('bb')];
  a.t.addPeer('bb', [b.url]);
  b.t.addPeer('aa', [a.url]);
  await eventually('both links up', async () => (a.t.isActive('bb') && b.t.isActive('aa') ? true : undefined));
  const upSince = a.t.activeSince('bb')!;
  // Nothing is sent for longer than the link timeout; the link must still count as up, since the same moment.
  await new Promise((r) => setTimeout(r, 6500)); // waiting out the link timeout is the point of this test
  expect(a.t.isActive('bb')).toBe(true);
  expect(a.t.activeSince('bb')).toBe(upSince);
  expect(b.t.isActive('aa')).toBe(true);
}, 20000);
