/** This build's version, as `etcd --version` and the metrics report it. */
export const VERSION = '3.4.0-ts-etcd';
