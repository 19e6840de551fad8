/** Names and URLs of what the operator creates for an EtcdCluster (pure). */
import { CLIENT_PORT, PEER_PORT, type EtcdClusterSpec } from './types';

/** The headless Service that gives every member a stable DNS name (`<pod>.<cluster>.<ns>.svc`). */
export const peerServiceName = (cluster: string): string => cluster;
/** The client Service (ClusterIP) applications use. */
export const clientServiceName = (cluster: string): string => `${cluster}-client`;
/** The headless Service over every member's metrics port, for Prometheus. */
export const metricsServiceName = (cluster: string): string => `${cluster}-metrics`;
export const pdbName = (cluster: string): string => cluster;
export const memberPodName = (cluster: string, ordinal: number): string => `${cluster}-${ordinal}`;

/** spec.tls.auto's (and spec.tls.certManager's) Secrets: the CA, each member's certificate, the client certificate (the operator's). */
export const caSecretName = (cluster: string): string => `${cluster}-ca`;
export const memberTLSSecretName = (pod: string): string => `${pod}-tls`;
export const clientTLSSecretName = (cluster: string): string => `${cluster}-client-tls`;

/** The Secrets a member pod mounts for its client and peer URLs, and the one the operator's client uses. */
export function tlsSecrets(spec: EtcdClusterSpec, cluster: string, pod?: string): { client?: string; peer?: string; operator?: string } {
  const t = spec.tls;
  if (t?.auto || t?.certManager) return { client: pod && memberTLSSecretName(pod), peer: pod && memberTLSSecretName(pod), operator: clientTLSSecretName(cluster) };
  return { client: t?.clientSecret, peer: t?.peerSecret, operator: t?.operatorSecret };
}

export function peerScheme(spec: EtcdClusterSpec): string {
  return spec.tls?.peerSecret || spec.tls?.auto || spec.tls?.certManager ? 'https' : 'http';
}
export function clientScheme(spec: EtcdClusterSpec): string {
  return spec.tls?.clientSecret || spec.tls?.auto || spec.tls?.certManager ? 'https' : 'http';
}
export function memberHost(cluster: string, namespace: string, pod: string): string {
  return `${pod}.${peerServiceName(cluster)}.${namespace}.svc`;
}
export function peerURL(cluster: string, namespace: string, pod: string, spec: EtcdClusterSpec): string {
  return `${peerScheme(spec)}://${memberHost(cluster, namespace, pod)}:${PEER_PORT}`;
}
export function advertiseClientURL(cluster: string, namespace: string, pod: string, spec: EtcdClusterSpec): string {
  return `${clientScheme(spec)}://${memberHost(cluster, namespace, pod)}:${CLIENT_PORT}`;
}
export function clientServiceURL(cluster: string, namespace: string, spec: EtcdClusterSpec): string {
  return `${clientScheme(spec)}://${clientServiceName(cluster)}.${namespace}.svc:${CLIENT_PORT}`;
}

/** The member pod a peer URL names, if it is one of ours (`<scheme>://<pod>.<cluster>.<ns>.svc:2380`). */
export function podFromPeerURL(url: string, cluster: string, namespace: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const suffix = `.${peerServiceName(cluster)}.${namespace}.svc`;
  if (!u.hostname.endsWith(suffix)) return undefined;
  const pod = u.hostname.slice(0, -suffix.length);
  return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(pod) ? pod : undefined;
}

/** The ordinal of a member pod name (`<cluster>-<n>`), or undefined. */
export function ordinalOf(cluster: string, pod: string): number | undefined {
  if (!pod.startsWith(`${cluster}-`)) return undefined;
  const rest = pod.slice(cluster.length + 1);
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

/** The image tag → version ("ts-etcd/etcd:3.4.34" → "3.4.34"; digests and untagged images → undefined). */
export function versionOfImage(image: string | undefined): string | undefined {
  if (!image || image.includes('@')) return undefined;
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? image.slice(colon + 1) : undefined;
}
export function imageOf(spec: EtcdClusterSpec): string {
  return `${spec.repository}:${spec.version}`;
}
