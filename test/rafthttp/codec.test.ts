import { ConfChangeType, EntryType, MessageType, encodeConfChange, makeMessage } from '../../server/raft';
import { ENTRY_TYPE_CODES, MESSAGE_TYPE_CODES, decodeMessage, encodeFrame } from '../../server/rafthttp/codec';

/**
 * The peer protocol's numbers. These are what members of different releases exchange: changing one breaks a
 * rolling upgrade. A new type gets a new number; these lines never change.
 */
const PINNED_MESSAGE_CODES: [MessageType, number][] = [
  [MessageType.Hup, 0],
  [MessageType.Beat, 1],
  [MessageType.Prop, 2],
  [MessageType.App, 3],
  [MessageType.AppResp, 4],
  [MessageType.Vote, 5],
  [MessageType.VoteResp, 6],
  [MessageType.PreVote, 7],
  [MessageType.PreVoteResp, 8],
  [MessageType.Snap, 9],
  [MessageType.Heartbeat, 10],
  [MessageType.HeartbeatResp, 11],
  [MessageType.Unreachable, 12],
  [MessageType.SnapStatus, 13],
  [MessageType.CheckQuorum, 14],
  [MessageType.TransferLeader, 15],
  [MessageType.TimeoutNow, 16],
  [MessageType.ReadIndex, 17],
  [MessageType.ReadIndexResp, 18],
];

test.each(PINNED_MESSAGE_CODES)('message type %s is code %d on the wire, both ways', (type, code) => {
  const frame = encodeFrame(makeMessage({ type, to: 'a', from: 'b', term: 1 }));
  expect(frame[4]).toBe(code); // after the u32 frame length
  expect(decodeMessage(frame.subarray(4)).type).toBe(type);
});

test('every message type has a code of its own, and a new type must be pinned here', () => {
  const types = Object.values(MessageType);
  expect(new Set(types)).toEqual(new Set(PINNED_MESSAGE_CODES.map(([t]) => t)));
  const codes = types.map((t) => MESSAGE_TYPE_CODES[t]);
  expect(new Set(codes).size).toBe(codes.length);
});

test('an unknown message code is refused, not mapped to some type', () => {
  const frame = encodeFrame(makeMessage({ type: MessageType.Heartbeat, to: 'a', from: 'b' }));
  frame[4] = 200;
  expect(() => decodeMessage(frame.subarray(4))).toThrow(/unknown type 200/);
});

test.each([
  [EntryType.Normal, 0],
  [EntryType.ConfChange, 1],
])('entry type %s is code %d on the wire', (type, code) => {
  expect(ENTRY_TYPE_CODES[type]).toBe(code);
  const m = makeMessage({ type: MessageType.App, to: 'a', from: 'b', entries: [{ term: 1, index: 1, type, data: Buffer.from('x') }] });
  const body = encodeFrame(m).subarray(4);
  // The entry's type byte follows its term and index (two f64) at the end of the fixed header.
  const entryStart = body.length - 1 /* hasSnapshot */ - (8 + 8 + 1 + 4 + 1);
  expect(body[entryStart + 16]).toBe(code);
  expect(decodeMessage(body).entries[0].type).toBe(type);
});

test.each([
  [ConfChangeType.AddNode, 0],
  [ConfChangeType.RemoveNode, 1],
  [ConfChangeType.AddLearnerNode, 2],
])('conf change type %s is code %d in the log', (type, code) => {
  expect(encodeConfChange({ type, nodeId: 'a' })[0]).toBe(code);
});
