/** The Raft consensus core: a pure state machine (no timers, sockets, disk or clock). */
export * from './types';
export * from './errors';
export { MemoryStorage, limitSize, emptySnapshot } from './storage';
export type { Storage } from './storage';
export { RaftLog } from './log';
export { Progress, ProgressState, ProgressTracker, Inflights } from './progress';
export { ReadOnlyOption } from './read-only';
export { Raft, CampaignType } from './raft';
export type { RaftConfig, RaftStatus } from './raft';
export { RawNode } from './raw-node';
export type { Peer } from './raw-node';
export { encodeConfChange, decodeConfChange } from './confchange';
