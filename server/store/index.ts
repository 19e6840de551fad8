export { V2Store, STATS_FIELDS } from './store';
export type { TTLOptions, StoreStats } from './store';
export { V2Error, ErrorCode } from './errors';
export { V2Event, Action, nodeExtern, formatExpiration, eventJSON } from './event';
export type { NodeExtern } from './event';
export { Watcher, WatcherHub, EventHistory } from './watcher-hub';
