/**
 * The snapshot path between members: the data streams to a file while it arrives (never held in memory as a body),
 * is checked against its declared length and SHA-256, and leaves no file behind, whatever happens to the transfer.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Message, MessageType } from '../../server/raft';
import { receiveSnapshot, snapshotRequest, sweepPartialSnapshots, writeSnapshotBody } from '../../server/rafthttp/snapshot';
import { eventually } from '../support/cluster';

let dir: string;
let server: http.Server;
let port: number;
let outcomes: { message?: Message; error?: Error & { status?: number } }[];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snap-recv-'));
  outcomes = [];
  server = http.createServer((req, res) => {
    receiveSnapshot(req, 'a1', dir, () => undefined).then(
      (message) => {
        outcomes.push({ message });
        res.writeHead(204).end();
      },
      (error) => {
        outcomes.push({ error });
        res.writeHead(error.status ?? 500).end(error.message);
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

function snapMessage(data: Uint8Array, from = 'a1'): Message {
  return {
    type: MessageType.Snap, to: 'b2', from, term: 3, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, entries: [],
    snapshot: { metadata: { index: 1234, term: 3, confState: { voters: ['a1', 'b2', 'c3'], learners: [] } }, data },
  };
}

function post(headers: Record<string, string>): { req: http.ClientRequest; answer: Promise<{ status: number; body: string }> } {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/raft/snapshot', headers });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
  });
  return { req, answer };
}

const partFiles = () => fs.readdirSync(dir).filter((n) => n.endsWith('.snap.part'));

test('a snapshot of several chunks arrives whole: metadata, membership and every byte', async () => {
  const data = randomBytes(5 * 1024 * 1024 + 17);
  const body = await snapshotRequest(snapMessage(data));
  const { req, answer } = post(body.headers);
  let sent = 0;
  writeSnapshotBody(req, body.head, body.data, (n) => (sent += n));
  expect((await answer).status).toBe(204);
  expect(sent).toBe(body.head.length + data.length);
  const m = outcomes[0].message!;
  expect(m.type).toBe(MessageType.Snap);
  expect(m.from).toBe('a1');
  expect(m.snapshot!.metadata).toEqual({ index: 1234, term: 3, confState: { voters: ['a1', 'b2', 'c3'], learners: [] } });
  expect(Buffer.compare(Buffer.from(m.snapshot!.data), data)).toBe(0);
  await eventually('the received file to be removed', async () => (partFiles().length === 0 ? true : undefined));
});

test('the data goes to disk while it arrives, before the transfer has ended', async () => {
  const data = randomBytes(3 * 1024 * 1024);
  const body = await snapshotRequest(snapMessage(data));
  const { req, answer } = post(body.headers);
  // Half the data, then wait: the receiver must already have it in its file.
  req.write(body.head);
  req.write(data.subarray(0, data.length / 2));
  await eventually('half the data to be in the incoming file', async () => {
    const [f] = partFiles();
    return f && fs.statSync(path.join(dir, f)).size === data.length / 2 ? true : undefined;
  });
  expect(outcomes).toEqual([]);
  req.end(data.subarray(data.length / 2));
  expect((await answer).status).toBe(204);
  expect(Buffer.compare(Buffer.from(outcomes[0].message!.snapshot!.data), data)).toBe(0);
});

test('the message header split across many small writes is put back together', async () => {
  const data = Buffer.from('a small snapshot');
  const body = await snapshotRequest(snapMessage(data));
  const { req, answer } = post(body.headers);
  const all = Buffer.concat([body.head, data]);
  for (let i = 0; i < all.length; i++) {
    req.write(all.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r)); // let each byte arrive as its own chunk
  }
  req.end();
  expect((await answer).status).toBe(204);
  expect(Buffer.from(outcomes[0].message!.snapshot!.data).toString()).toBe('a small snapshot');
});

test('data that does not match its digest is refused and leaves no file', async () => {
  const data = randomBytes(100000);
  const body = await snapshotRequest(snapMessage(data));
  const tampered = Buffer.from(data);
  tampered[500] ^= 0xff;
  const { req, answer } = post(body.headers);
  writeSnapshotBody(req, body.head, tampered, () => undefined);
  const a = await answer;
  expect(a.status).toBe(400);
  expect(a.body).toMatch(/does not match X-Snapshot-SHA256/);
  expect(partFiles()).toEqual([]);
});

test('a transfer cut off half way is refused and leaves no file', async () => {
  const data = randomBytes(2 * 1024 * 1024);
  const body = await snapshotRequest(snapMessage(data));
  const { req, answer } = post(body.headers);
  answer.catch(() => undefined);
  req.write(body.head);
  req.write(data.subarray(0, 1024 * 1024));
  await eventually('the transfer to have started', async () => (partFiles().length === 1 ? true : undefined));
  req.destroy();
  await eventually('the receiver to give up', async () => (outcomes.length === 1 ? true : undefined));
  expect(outcomes[0].error).toBeDefined();
  await eventually('the incoming file to be removed', async () => (partFiles().length === 0 ? true : undefined));
});

test('bad requests get a clear 400: no length headers, more data than declared, a message from someone else', async () => {
  const data = Buffer.from('snapshot data');
  const body = await snapshotRequest(snapMessage(data));

  const noHeaders = post({ 'Content-Length': String(body.head.length) });
  noHeaders.req.end(body.head);
  expect(await noHeaders.answer).toEqual({ status: 400, body: expect.stringMatching(/X-Snapshot-Data-Length/) });

  const tooMuch = post({ ...body.headers, 'Content-Length': String(body.head.length + data.length + 5) });
  tooMuch.req.end(Buffer.concat([body.head, data, Buffer.from('extra')]));
  expect(await tooMuch.answer).toEqual({ status: 400, body: expect.stringMatching(/more snapshot data/) });

  const other = await snapshotRequest(snapMessage(data, 'zz'));
  const impostor = post(other.headers);
  writeSnapshotBody(impostor.req, other.head, other.data, () => undefined);
  expect(await impostor.answer).toEqual({ status: 400, body: 'expected one MsgSnap' });

  const garbage = post({ ...body.headers, 'Content-Length': '8' });
  garbage.req.end(Buffer.from([0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]));
  expect((await garbage.answer).status).toBe(400);
  expect(partFiles()).toEqual([]);
});

test('files left by a transfer that a crash interrupted are swept at start', () => {
  fs.writeFileSync(path.join(dir, 'a1-0123456789ab.snap.part'), 'half');
  fs.writeFileSync(path.join(dir, '0000000000000003-00000000000004d2.snap'), 'a real snapshot');
  sweepPartialSnapshots(dir);
  expect(fs.readdirSync(dir)).toEqual(['0000000000000003-00000000000004d2.snap']);
});
