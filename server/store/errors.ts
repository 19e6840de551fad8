/** The v2 API's errors: etcd's codes, messages and HTTP statuses. */

export const ErrorCode = {
  KeyNotFound: 100,
  TestFailed: 101,
  NotFile: 102,
  NotDir: 104,
  NodeExist: 105,
  RootROnly: 107,
  DirNotEmpty: 108,
  Unauthorized: 110,
  PrevValueRequired: 201,
  TTLNaN: 202,
  IndexNaN: 203,
  InvalidField: 209,
  InvalidForm: 210,
  RefreshValue: 211,
  RefreshTTLRequired: 212,
  RaftInternal: 300,
  LeaderElect: 301,
  WatcherCleared: 400,
  EventIndexCleared: 401,
} as const;

const MESSAGES: Record<number, string> = {
  100: 'Key not found',
  101: 'Compare failed',
  102: 'Not a file',
  103: 'Reached the max number of peers in the cluster',
  104: 'Not a directory',
  105: 'Key already exists',
  106: 'The prefix of given key is a keyword in etcd',
  107: 'Root is read only',
  108: 'Directory not empty',
  109: 'Peer address has existed',
  110: 'The request requires user authentication',
  200: 'Value is Required in POST form',
  201: 'PrevValue is Required in POST form',
  202: 'The given TTL in POST form is not a number',
  203: 'The given index in POST form is not a number',
  204: 'Value or TTL is required in POST form',
  205: 'The given timeout in POST form is not a number',
  206: 'Name is required in POST form',
  207: 'Index or value is required',
  208: 'Index and value cannot both be specified',
  209: 'Invalid field',
  210: 'Invalid POST form',
  211: 'Value provided on refresh',
  212: 'A TTL must be provided on refresh',
  300: 'Raft Internal Error',
  301: 'During Leader Election',
  400: 'watcher is cleared due to etcd recovery',
  401: 'The event in requested index is outdated and cleared',
  500: 'Client Internal Error',
};

const STATUS: Record<number, number> = {
  100: 404,
  102: 403,
  108: 403,
  110: 401,
  101: 412,
  105: 412,
  300: 500,
  301: 500,
};

/** An error of the v2 API; its JSON is etcd's {"errorCode","message","cause","index"}. */
export class V2Error extends Error {
  readonly errorCode: number;
  readonly cause_: string;
  index: number;

  constructor(errorCode: number, cause_: string, index: number) {
    // These are answers to clients, thrown on hot paths (a GET of a missing key): no stack trace to capture.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${errorCode}: ${MESSAGES[errorCode] ?? 'Unknown error'} (${cause_}) [${index}]`);
    Error.stackTraceLimit = limit;
    this.name = 'V2Error';
    this.errorCode = errorCode;
    this.cause_ = cause_;
    this.index = index;
  }

  get etcdMessage(): string {
    return MESSAGES[this.errorCode] ?? 'Unknown error';
  }

  /** etcd answers 400 for every code without a specific status. */
  statusCode(): number {
    return STATUS[this.errorCode] ?? 400;
  }

  toJSON(): { errorCode: number; message: string; cause?: string; index: number } {
    const j: { errorCode: number; message: string; cause?: string; index: number } = { errorCode: this.errorCode, message: this.etcdMessage, index: this.index };
    if (this.cause_ !== '') {
      // Field order as etcd's: errorCode, message, cause, index.
      return { errorCode: this.errorCode, message: this.etcdMessage, cause: this.cause_, index: this.index };
    }
    return j;
  }
}
