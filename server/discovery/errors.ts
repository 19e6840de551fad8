/** Discovery's errors, apart from the protocols that raise them (loaded only by a member that uses discovery). */

/** etcd's v2discovery errors, with its texts. */
export const DISCOVERY_ERRORS = {
  invalidURL: 'discovery: invalid URL',
  badSizeKey: 'discovery: size key is bad',
  sizeNotFound: 'discovery: size key not found',
  duplicateID: 'discovery: found duplicate id',
  duplicateName: 'discovery: found duplicate name',
  fullCluster: 'discovery: cluster is full',
  badDiscoveryEndpoint: 'discovery: bad discovery endpoint',
} as const;

export type DiscoveryProblemKind = keyof typeof DISCOVERY_ERRORS;

/** One of etcd's v2discovery errors (DISCOVERY_ERRORS). */
export class DiscoveryProblem extends Error {
  constructor(readonly kind: DiscoveryProblemKind) {
    super(DISCOVERY_ERRORS[kind]);
  }
}

/** What etcd's failed start says of a discovery error: DiscoveryError's text. */
export class DiscoveryError extends Error {
  constructor(readonly op: string, readonly cause_: Error) {
    super(`failed to ${op} discovery cluster (${cause_.message})`);
  }
}
