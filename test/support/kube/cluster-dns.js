/**
 * The test cluster's DNS, for processes the ProcessKubelet runs (and the operator beside them): preloaded with
 * `node --require <this file>`, it answers `dns.lookup` for names under `.svc` / `.svc.cluster.local` from the JSON
 * file named by $TEST_CLUSTER_DNS_FILE ({ "hosts": { "<name>": ["127.0.0.N", ...] } }), which the kubelet rewrites
 * as pods come and go: `<pod>.<cluster>.<ns>.svc` → the pod's IP (a headless Service with publishNotReadyAddresses),
 * `<cluster>-client.<ns>.svc` → the ready pods' IPs. Unknown `.svc` names fail with ENOTFOUND, like a real resolver;
 * every other name goes to the real resolver. Plain JavaScript on purpose: child processes load it without a build.
 */
'use strict';
const dns = require('node:dns');
const fs = require('node:fs');

const file = process.env.TEST_CLUSTER_DNS_FILE;
if (file) {
  const realLookup = dns.lookup;
  let cache = { mtimeMs: -1, size: -1, hosts: {} };
  const hosts = () => {
    try {
      const st = fs.statSync(file);
      if (st.mtimeMs !== cache.mtimeMs || st.size !== cache.size) {
        cache = { mtimeMs: st.mtimeMs, size: st.size, hosts: JSON.parse(fs.readFileSync(file, 'utf8')).hosts || {} };
      }
    } catch {
      // being rewritten (the kubelet renames a complete file into place) or gone: keep the last view
    }
    return cache.hosts;
  };
  const clusterName = (host) => {
    const h = String(host).toLowerCase().replace(/\.$/, '').replace(/\.cluster\.local$/, '');
    return h.endsWith('.svc') ? h : undefined;
  };
  const resolve = (name) => {
    const ips = hosts()[name];
    if (!ips || ips.length === 0) return undefined;
    // a Service name with several endpoints: spread the connections like kube-proxy would
    return ips.length === 1 ? ips : [...ips.slice(Math.floor(Math.random() * ips.length)), ...ips].slice(0, ips.length);
  };
  const lookup = function (host, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    const name = clusterName(host);
    if (name === undefined) return realLookup.call(this, host, options, callback);
    const opts = typeof options === 'number' ? { family: options } : options || {};
    const ips = resolve(name);
    if (!ips || opts.family === 6) {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname: host });
      process.nextTick(callback, err);
      return {};
    }
    if (opts.all) process.nextTick(callback, null, ips.map((address) => ({ address, family: 4 })));
    else process.nextTick(callback, null, ips[0], 4);
    return {};
  };
  dns.lookup = lookup;
  const realPromise = dns.promises.lookup;
  dns.promises.lookup = (host, options) =>
    new Promise((res, rej) => {
      if (clusterName(host) === undefined) return realPromise(host, options).then(res, rej);
      lookup(host, options || {}, (err, address, family) => (err ? rej(err) : res(Array.isArray(address) ? address : { address, family })));
    });
}
