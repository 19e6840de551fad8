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

/** A key over LMDB's limit (1960 bytes, less one per zero byte); etcd has none. The v3 service should refuse it. */
export class ErrKeyTooLong extends Error {
  constructor() {
    super('mvcc: key is too long for the storage engine');
    this.name = 'ErrKeyTooLong';
  }
}
