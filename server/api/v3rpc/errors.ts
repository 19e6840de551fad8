/**
 * etcd 3.4's v3 errors: the gRPC status code and message of every error its v3 API returns (etcd's rpctypes), and
 * the mapping from the errors of the server, the MVCC store, leases, membership and auth to them (etcd's
 * togRPCError). Clients match on these messages (clientv3 turns them back into its typed errors), so they are
 * etcd's to the byte.
 */
import { status } from '@grpc/grpc-js';

/** A gRPC status error as grpc-js sends it: `code` and `details` go on the wire as grpc-status/grpc-message. */
export class V3Error extends Error {
  constructor(readonly code: status, readonly details: string) {
    super(details);
    this.name = 'V3Error';
  }
}

const e = (code: status, details: string) => new V3Error(code, details);

export const ErrGRPCEmptyKey = e(status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
export const ErrGRPCKeyNotFound = e(status.INVALID_ARGUMENT, 'etcdserver: key not found');
export const ErrGRPCValueProvided = e(status.INVALID_ARGUMENT, 'etcdserver: value is provided');
export const ErrGRPCLeaseProvided = e(status.INVALID_ARGUMENT, 'etcdserver: lease is provided');
export const ErrGRPCTooManyOps = e(status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
export const ErrGRPCDuplicateKey = e(status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
export const ErrGRPCCompacted = e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
export const ErrGRPCFutureRev = e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
export const ErrGRPCNoSpace = e(status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');

export const ErrGRPCLeaseNotFound = e(status.NOT_FOUND, 'etcdserver: requested lease not found');
export const ErrGRPCLeaseExist = e(status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
export const ErrGRPCLeaseTTLTooLarge = e(status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');

export const ErrGRPCWatchCanceled = e(status.CANCELLED, 'etcdserver: watch canceled');

export const ErrGRPCMemberExist = e(status.FAILED_PRECONDITION, 'etcdserver: member ID already exist');
export const ErrGRPCPeerURLExist = e(status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists');
export const ErrGRPCMemberNotEnoughStarted = e(status.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members');
export const ErrGRPCMemberBadURLs = e(status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid');
export const ErrGRPCMemberNotFound = e(status.NOT_FOUND, 'etcdserver: member not found');
export const ErrGRPCMemberNotLearner = e(status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
export const ErrGRPCLearnerNotReady = e(status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader');
export const ErrGRPCTooManyLearners = e(status.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster');

export const ErrGRPCRequestTooLarge = e(status.INVALID_ARGUMENT, 'etcdserver: request is too large');
export const ErrGRPCRequestTooManyRequests = e(status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');

export const ErrGRPCRootUserNotExist = e(status.FAILED_PRECONDITION, 'etcdserver: root user does not exist');
export const ErrGRPCRootRoleNotExist = e(status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role');
export const ErrGRPCUserAlreadyExist = e(status.FAILED_PRECONDITION, 'etcdserver: user name already exists');
export const ErrGRPCUserEmpty = e(status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
export const ErrGRPCUserNotFound = e(status.FAILED_PRECONDITION, 'etcdserver: user name not found');
export const ErrGRPCRoleAlreadyExist = e(status.FAILED_PRECONDITION, 'etcdserver: role name already exists');
export const ErrGRPCRoleNotFound = e(status.FAILED_PRECONDITION, 'etcdserver: role name not found');
export const ErrGRPCRoleEmpty = e(status.INVALID_ARGUMENT, 'etcdserver: role name is empty');
export const ErrGRPCAuthFailed = e(status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password');
export const ErrGRPCPermissionDenied = e(status.PERMISSION_DENIED, 'etcdserver: permission denied');
export const ErrGRPCRoleNotGranted = e(status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user');
export const ErrGRPCPermissionNotGranted = e(status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role');
export const ErrGRPCAuthNotEnabled = e(status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled');
export const ErrGRPCInvalidAuthToken = e(status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
export const ErrGRPCInvalidAuthMgmt = e(status.INVALID_ARGUMENT, 'etcdserver: invalid auth management');
export const ErrGRPCAuthOldRevision = e(status.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old');

export const ErrGRPCNoLeader = e(status.UNAVAILABLE, 'etcdserver: no leader');
export const ErrGRPCNotLeader = e(status.FAILED_PRECONDITION, 'etcdserver: not leader');
export const ErrGRPCLeaderChanged = e(status.UNAVAILABLE, 'etcdserver: leader changed');
export const ErrGRPCNotCapable = e(status.UNAVAILABLE, 'etcdserver: not capable');
export const ErrGRPCStopped = e(status.UNAVAILABLE, 'etcdserver: server stopped');
export const ErrGRPCTimeout = e(status.UNAVAILABLE, 'etcdserver: request timed out');
export const ErrGRPCTimeoutDueToLeaderFail = e(status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure');
export const ErrGRPCTimeoutDueToConnectionLost = e(status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost');
export const ErrGRPCTimeoutWaitAppliedIndex = e(status.UNAVAILABLE, 'etcdserver: request timed out, waiting for the applied index took too long');
export const ErrGRPCUnhealthy = e(status.UNAVAILABLE, 'etcdserver: unhealthy cluster');
export const ErrGRPCCorrupt = e(status.DATA_LOSS, 'etcdserver: corrupt cluster');
export const ErrGRPCNotSupportedForLearner = e(status.UNAVAILABLE, 'etcdserver: rpc not supported for learner');
export const ErrGRPCBadLeaderTransferee = e(status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee');

/**
 * The messages of the server-side errors etcd maps to gRPC statuses (etcdserver/errors.go, mvcc, lease, membership
 * and auth). The store, the applier and the Raft layer throw `new Error(ServerErrors.xxx)` (or serverError()), and the
 * service layer turns them into etcd's status with toGRPCError, as etcd's togRPCError does.
 */
export const ServerErrors = {
  // etcdserver
  unknownMethod: 'etcdserver: unknown method',
  stopped: 'etcdserver: server stopped',
  canceled: 'etcdserver: request cancelled',
  timeout: 'etcdserver: request timed out',
  timeoutDueToLeaderFail: 'etcdserver: request timed out, possibly due to previous leader failure',
  timeoutDueToConnectionLost: 'etcdserver: request timed out, possibly due to connection lost',
  timeoutWaitAppliedIndex: 'etcdserver: request timed out, waiting for the applied index took too long',
  timeoutLeaderTransfer: 'etcdserver: request timed out, leader transfer took too long',
  leaderChanged: 'etcdserver: leader changed',
  notEnoughStartedMembers: 'etcdserver: re-configuration failed due to not enough started members',
  learnerNotReady: 'etcdserver: can only promote a learner member which is in sync with leader',
  noLeader: 'etcdserver: no leader',
  notLeader: 'etcdserver: not leader',
  requestTooLarge: 'etcdserver: request is too large',
  noSpace: 'etcdserver: no space',
  tooManyRequests: 'etcdserver: too many requests',
  unhealthy: 'etcdserver: unhealthy cluster',
  keyNotFound: 'etcdserver: key not found',
  corrupt: 'etcdserver: corrupt cluster',
  badLeaderTransferee: 'etcdserver: bad leader transferee',
  // mvcc
  compacted: 'mvcc: required revision has been compacted',
  futureRev: 'mvcc: required revision is a future revision',
  // lease
  leaseNotFound: 'lease not found',
  leaseExists: 'lease already exists',
  leaseTTLTooLarge: 'too large lease TTL',
  // membership
  idRemoved: 'membership: ID removed',
  idExists: 'membership: ID exists',
  idNotFound: 'membership: ID not found',
  peerURLExists: 'membership: peerURL exists',
  memberNotLearner: 'membership: can only promote a learner member',
  tooManyLearners: 'membership: too many learner members in cluster',
  // auth
  rootUserNotExist: 'auth: root user does not exist',
  rootRoleNotExist: 'auth: root user does not have root role',
  userAlreadyExist: 'auth: user already exists',
  userEmpty: 'auth: user name is empty',
  userNotFound: 'auth: user not found',
  roleAlreadyExist: 'auth: role already exists',
  roleNotFound: 'auth: role not found',
  roleEmpty: 'auth: role name is empty',
  authFailed: 'auth: authentication failed, invalid user ID or password',
  permissionDenied: 'auth: permission denied',
  roleNotGranted: 'auth: role is not granted to the user',
  permissionNotGranted: 'auth: permission is not granted to the role',
  authNotEnabled: 'auth: authentication is not enabled',
  invalidAuthToken: 'auth: invalid auth token',
  invalidAuthMgmt: 'auth: invalid auth management',
  authOldRevision: 'auth: revision in header is old',
} as const;

export type ServerErrorName = keyof typeof ServerErrors;

/** An Error carrying one of etcd's server-side messages, for the store and server to throw. */
export function serverError(name: ServerErrorName): Error {
  return new Error(ServerErrors[name]);
}

/** etcd's togRPCError table, keyed by the server error's message. */
const toGRPC = new Map<string, V3Error>([
  [ServerErrors.idRemoved, ErrGRPCMemberNotFound],
  [ServerErrors.idNotFound, ErrGRPCMemberNotFound],
  [ServerErrors.idExists, ErrGRPCMemberExist],
  [ServerErrors.peerURLExists, ErrGRPCPeerURLExist],
  [ServerErrors.memberNotLearner, ErrGRPCMemberNotLearner],
  [ServerErrors.tooManyLearners, ErrGRPCTooManyLearners],
  [ServerErrors.notEnoughStartedMembers, ErrGRPCMemberNotEnoughStarted],
  [ServerErrors.learnerNotReady, ErrGRPCLearnerNotReady],

  [ServerErrors.compacted, ErrGRPCCompacted],
  [ServerErrors.futureRev, ErrGRPCFutureRev],
  [ServerErrors.requestTooLarge, ErrGRPCRequestTooLarge],
  [ServerErrors.noSpace, ErrGRPCNoSpace],
  [ServerErrors.tooManyRequests, ErrGRPCRequestTooManyRequests],

  [ServerErrors.noLeader, ErrGRPCNoLeader],
  [ServerErrors.notLeader, ErrGRPCNotLeader],
  [ServerErrors.leaderChanged, ErrGRPCLeaderChanged],
  [ServerErrors.stopped, ErrGRPCStopped],
  [ServerErrors.timeout, ErrGRPCTimeout],
  [ServerErrors.timeoutDueToLeaderFail, ErrGRPCTimeoutDueToLeaderFail],
  [ServerErrors.timeoutDueToConnectionLost, ErrGRPCTimeoutDueToConnectionLost],
  [ServerErrors.timeoutWaitAppliedIndex, ErrGRPCTimeoutWaitAppliedIndex],
  [ServerErrors.unhealthy, ErrGRPCUnhealthy],
  [ServerErrors.keyNotFound, ErrGRPCKeyNotFound],
  [ServerErrors.corrupt, ErrGRPCCorrupt],
  [ServerErrors.badLeaderTransferee, ErrGRPCBadLeaderTransferee],

  [ServerErrors.leaseNotFound, ErrGRPCLeaseNotFound],
  [ServerErrors.leaseExists, ErrGRPCLeaseExist],
  [ServerErrors.leaseTTLTooLarge, ErrGRPCLeaseTTLTooLarge],

  [ServerErrors.rootUserNotExist, ErrGRPCRootUserNotExist],
  [ServerErrors.rootRoleNotExist, ErrGRPCRootRoleNotExist],
  [ServerErrors.userAlreadyExist, ErrGRPCUserAlreadyExist],
  [ServerErrors.userEmpty, ErrGRPCUserEmpty],
  [ServerErrors.userNotFound, ErrGRPCUserNotFound],
  [ServerErrors.roleAlreadyExist, ErrGRPCRoleAlreadyExist],
  [ServerErrors.roleNotFound, ErrGRPCRoleNotFound],
  [ServerErrors.roleEmpty, ErrGRPCRoleEmpty],
  [ServerErrors.authFailed, ErrGRPCAuthFailed],
  [ServerErrors.permissionDenied, ErrGRPCPermissionDenied],
  [ServerErrors.roleNotGranted, ErrGRPCRoleNotGranted],
  [ServerErrors.permissionNotGranted, ErrGRPCPermissionNotGranted],
  [ServerErrors.authNotEnabled, ErrGRPCAuthNotEnabled],
  [ServerErrors.invalidAuthToken, ErrGRPCInvalidAuthToken],
  [ServerErrors.invalidAuthMgmt, ErrGRPCInvalidAuthMgmt],
  [ServerErrors.authOldRevision, ErrGRPCAuthOldRevision],
]);

/**
 * The gRPC status for an error thrown below the service layer: a V3Error as it is, a known server error as etcd
 * maps it, and anything else as UNKNOWN with its message (etcd's `status.Error(codes.Unknown, err.Error())`).
 */
export function toGRPCError(err: unknown): V3Error {
  if (err instanceof V3Error) return err;
  const message = err instanceof Error ? err.message : String(err);
  return toGRPC.get(message) ?? new V3Error(status.UNKNOWN, message);
}

/**
 * etcd's gRPC server accepts messages up to --max-request-bytes plus this much (v3rpc/grpc.go's grpcOverheadBytes),
 * so a request just over the limit still arrives and gets "etcdserver: request is too large" from the server.
 */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
