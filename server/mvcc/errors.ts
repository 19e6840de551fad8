/**
 * The MVCC store's errors, with etcd's messages (mvcc/kvstore.go): the v3 service maps them by message to etcd's
 * gRPC statuses (ErrGRPCCompacted, ErrGRPCFutureRev), as etcd's togRPCError does.
 */
export class ErrCompacted extends Error {
  constructor() {
    super('mvcc: required revision has been compacted');
    this.name = 'ErrCompacted';
  }
}

export class ErrFutureRev extends Error {
  constructor() {
    super('mvcc: required revision is a future revision');
    this.name = 'ErrFutureRev';
  }
}

/** LMDB's limit on key length (lmdb-js is built with 1978 bytes at the default page size); etcd has none. */
export const MAX_KEY_BYTES = 1978 - 18;

export class ErrKeyTooLong extends Error {
  constructor() {
    super(`mvcc: key is longer than ${MAX_KEY_BYTES} bytes`);
    this.name = 'ErrKeyTooLong';
  }
}
