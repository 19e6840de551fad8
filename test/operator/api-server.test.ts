/**
 * The test API server of test/support/kube: the Kubernetes conventions it claims (raw HTTP), and
 * @kubernetes/client-node's typed APIs, Watch and informer working against it (run in a child process: client-node
 * 1.x is an ES module, which jest's CommonJS runtime cannot load; Node 20.19+ `require`s it natively).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as yaml from 'js-yaml';
import { KubeApiServer } from '../support/kube/api-server';
import { request } from '../support/http';
import { waitFor } from '../support/kube/kubelet';
import { certificateCRD } from '../support/kube/cert-manager';

const json = (o: unknown): { body: string; headers: Record<string, string> } => ({ body: JSON.stringify(o), headers: { 'Content-Type': 'application/json' } });

describe('test API server', () => {
  const api = new KubeApiServer();
  let url = '';
  beforeAll(async () => {
    url = await api.start();
    api.store.create('namespaces', undefined, { metadata: { name: 'ns' } });
  });
  afterAll(() => api.stop());
  const P = '/api/v1/namespaces/ns/pods';
  const C = '/apis/etcd.ts-etcd.io/v1alpha1/namespaces/ns/etcdclusters';

  test('create, get, 409 AlreadyExists, 404 NotFound with a Status, namespace must exist', async () => {
    const r = await request(url, 'POST', P, json({ metadata: { name: 'a', labels: { app: 'x', tier: 'db' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } }));
    expect(r.status).toBe(201);
    const a = JSON.parse(r.body);
    expect(a).toMatchObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'ns', generation: 1 } });
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    const dup = await request(url, 'POST', P, json({ metadata: { name: 'a' } }));
    expect(dup.status).toBe(409);
    expect(JSON.parse(dup.body)).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409 });
    const nf = await request(url, 'GET', `${P}/nope`);
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.body)).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404, details: { name: 'nope', kind: 'pods' } });
    const noNs = await request(url, 'POST', '/api/v1/namespaces/ghost/pods', json({ metadata: { name: 'a' } }));
    expect(noNs.status).toBe(404);
    const gen = await request(url, 'POST', P, json({ metadata: { generateName: 'g-', labels: { app: 'y' } } }));
    expect(JSON.parse(gen.body).metadata.name).toMatch(/^g-[a-z0-9]{5}$/);
  });

  test("another project's resource (cert-manager's Certificates) is served only while its CRD is installed", async () => {
    const CERTS = '/apis/cert-manager.io/v1/namespaces/ns/certificates';
    const cert = { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'x' }, spec: { secretName: 'x', issuerRef: { name: 'ca' }, usages: ['server auth'] } };
    expect((await request(url, 'GET', CERTS)).status).toBe(404);
    expect((await request(url, 'POST', CERTS, json(cert))).status).toBe(404);
    expect(JSON.parse((await request(url, 'GET', '/apis')).body).groups.map((g: { name: string }) => g.name)).not.toContain('cert-manager.io');
    api.store.create('customresourcedefinitions', undefined, certificateCRD());
    expect(JSON.parse((await request(url, 'GET', '/apis')).body).groups.map((g: { name: string }) => g.name)).toContain('cert-manager.io');
    expect((await request(url, 'POST', CERTS, json(cert))).status).toBe(201);
    // validated against the CRD's schema
    expect((await request(url, 'POST', CERTS, json({ ...cert, metadata: { name: 'y' }, spec: { ...cert.spec, usages: ['sign everything'] } }))).status).toBe(422);
    expect(JSON.parse((await request(url, 'GET', CERTS)).body).items.map((c: { metadata: { name: string } }) => c.metadata.name)).toEqual(['x']);
    api.store.delete('customresourcedefinitions', undefined, 'certificates.cert-manager.io');
    expect((await request(url, 'GET', CERTS)).status).toBe(404);
  });

  test('resourceVersion is a global counter; PUT with a stale one is 409 Conflict; no-op writes keep it', async () => {
    const a = JSON.parse((await request(url, 'GET', `${P}/a`)).body);
    const b = JSON.parse((await request(url, 'POST', P, json({ metadata: { name: 'b', labels: { app: 'x' } } }))).body);
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    a.metadata.labels.extra = '1';
    const ok = await request(url, 'PUT', `${P}/a`, json(a));
    expect(ok.status).toBe(200);
    const stale = await request(url, 'PUT', `${P}/a`, json(a));
    expect(stale.status).toBe(409);
    expect(JSON.parse(stale.body)).toMatchObject({ reason: 'Conflict', message: expect.stringContaining('the object has been modified') });
    const cur = JSON.parse(ok.body);
    const same = await request(url, 'PUT', `${P}/a`, json(cur));
    expect(JSON.parse(same.body).metadata.resourceVersion).toBe(cur.metadata.resourceVersion);
  });

  test('label selectors: =, ==, !=, exists, !key, in, notin', async () => {
    const names = async (sel: string): Promise<string[]> =>
      (JSON.parse((await request(url, 'GET', `${P}?labelSelector=${encodeURIComponent(sel)}`)).body).items as { metadata: { name: string } }[]).map((i) => i.metadata.name).sort();
    expect(await names('app=x')).toEqual(['a', 'b']);
    expect(await names('app==x,tier=db')).toEqual(['a']);
    expect(await names('app!=x')).toEqual([expect.stringMatching(/^g-/)]);
    expect(await names('tier')).toEqual(['a']);
    expect(await names('!tier,app')).toEqual(['b', expect.stringMatching(/^g-/)]);
    expect(await names('app in (x, z)')).toEqual(['a', 'b']);
    expect(await names('app notin (x)')).toEqual([expect.stringMatching(/^g-/)]);
    expect((await request(url, 'GET', `${P}?labelSelector=${encodeURIComponent('a b c')}`)).status).toBe(400);
  });

  test('generation moves with the spec only; the status subresource moves only the status', async () => {
    const r = await request(url, 'POST', C, json({ apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'e' }, spec: { size: 3 } }));
    const e = JSON.parse(r.body);
    expect(e.metadata.generation).toBe(1);
    const st = await request(url, 'PUT', `${C}/e/status`, json({ ...e, spec: { size: 99 }, status: { phase: 'Running' } }));
    expect(JSON.parse(st.body)).toMatchObject({ metadata: { generation: 1 }, spec: { size: 3 }, status: { phase: 'Running' } });
    const sp = await request(url, 'PATCH', `${C}/e`, { body: JSON.stringify({ spec: { size: 5 }, status: { phase: 'Nope' } }), headers: { 'Content-Type': 'application/merge-patch+json' } });
    expect(JSON.parse(sp.body)).toMatchObject({ metadata: { generation: 2 }, spec: { size: 5 }, status: { phase: 'Running' } });
    const lab = await request(url, 'PATCH', `${C}/e`, { body: JSON.stringify([{ op: 'add', path: '/metadata/labels', value: { k: 'v' } }]), headers: { 'Content-Type': 'application/json-patch+json' } });
    expect(JSON.parse(lab.body)).toMatchObject({ metadata: { generation: 2, labels: { k: 'v' } } });
    const pre = await request(url, 'PATCH', `${C}/e`, { body: JSON.stringify({ metadata: { resourceVersion: '1' }, spec: { size: 7 } }), headers: { 'Content-Type': 'application/merge-patch+json' } });
    expect(pre.status).toBe(409);
  });

  test('watch from a resourceVersion: ADDED, MODIFIED, DELETED lines; selector transitions; 410 when too old', async () => {
    const rv = JSON.parse((await request(url, 'GET', P)).body).metadata.resourceVersion;
    const events: { type: string; object: { metadata: { name: string } } }[] = [];
    const req = http.get(`${url}${P}?watch=true&resourceVersion=${rv}&labelSelector=app%3Dw`, (res) => {
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      });
    });
    try {
      await request(url, 'POST', P, json({ metadata: { name: 'w', labels: { app: 'w' } } }));
      await request(url, 'PATCH', `${P}/w`, { body: JSON.stringify({ metadata: { annotations: { a: '1' } } }), headers: { 'Content-Type': 'application/merge-patch+json' } });
      await request(url, 'PATCH', `${P}/w`, { body: JSON.stringify({ metadata: { labels: { app: 'other' } } }), headers: { 'Content-Type': 'application/merge-patch+json' } });
      await request(url, 'POST', P, json({ metadata: { name: 'w2', labels: { app: 'w' } } }));
      await request(url, 'DELETE', `${P}/w2`);
      await waitFor('5 events', () => events.length >= 5, 5000);
      expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED w', 'MODIFIED w', 'DELETED w', 'ADDED w2', 'DELETED w2']);
    } finally {
      req.destroy();
    }
    // too old: the history is bounded (20k changes); resourceVersion 0 is "now", so ask for one below the start
    const small = new KubeApiServer();
    const surl = await small.start();
    try {
      const s = small.store as unknown as { history: unknown[] };
      s.history.splice(0); // as if the history had rolled over
      const r = await request(surl, 'GET', `/api/v1/namespaces?watch=true&resourceVersion=1`, { timeoutMs: 3000 });
      expect(JSON.parse(r.body.trim())).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    } finally {
      await small.stop();
    }
  });

  test('deleting an owner garbage-collects its dependents (recursively); Orphan keeps them', async () => {
    const owner = JSON.parse((await request(url, 'POST', C, json({ metadata: { name: 'own' }, spec: {} }))).body);
    const ref = (o: { metadata: { name: string; uid: string } }, kind: string): unknown => [{ apiVersion: 'v1', kind, name: o.metadata.name, uid: o.metadata.uid, controller: true }];
    const svc = JSON.parse((await request(url, 'POST', '/api/v1/namespaces/ns/services', json({ metadata: { name: 's', ownerReferences: ref(owner, 'EtcdCluster') } }))).body);
    await request(url, 'POST', '/api/v1/namespaces/ns/configmaps', json({ metadata: { name: 'grandchild', ownerReferences: ref(svc, 'Service') } }));
    expect((await request(url, 'DELETE', `${C}/own`)).status).toBe(200);
    await waitFor('GC', async () => (await request(url, 'GET', '/api/v1/namespaces/ns/configmaps/grandchild')).status === 404, 5000);
    expect((await request(url, 'GET', '/api/v1/namespaces/ns/services/s')).status).toBe(404);
    const o2 = JSON.parse((await request(url, 'POST', C, json({ metadata: { name: 'own2' }, spec: {} }))).body);
    await request(url, 'POST', '/api/v1/namespaces/ns/services', json({ metadata: { name: 's2', ownerReferences: ref(o2, 'EtcdCluster') } }));
    await request(url, 'DELETE', `${C}/own2`, json({ kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Orphan' }));
    const s2 = JSON.parse((await request(url, 'GET', '/api/v1/namespaces/ns/services/s2')).body);
    expect(s2.metadata.ownerReferences ?? []).toEqual([]);
    // uid precondition
    const pod = JSON.parse((await request(url, 'GET', `${P}/a`)).body);
    expect((await request(url, 'DELETE', `${P}/a`, json({ preconditions: { uid: 'other' } }))).status).toBe(409);
    expect((await request(url, 'DELETE', `${P}/a`, json({ preconditions: { uid: pod.metadata.uid } }))).status).toBe(200);
  });

  test('@kubernetes/client-node: typed APIs, patches, the status subresource, Watch and an informer', async () => {
    const script = `
      const k8s = require('@kubernetes/client-node');
      (async () => {
        const kc = new k8s.KubeConfig();
        kc.loadFromOptions({ clusters: [{ name: 'c', server: process.argv[1], skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'c', cluster: 'c', user: 'u' }], currentContext: 'c' });
        const core = kc.makeApiClient(k8s.CoreV1Api);
        const custom = kc.makeApiClient(k8s.CustomObjectsApi);
        const out = {};
        const informer = k8s.makeInformer(kc, '/api/v1/namespaces/ns/pods', () => core.listNamespacedPod({ namespace: 'ns', labelSelector: 'via=client-node' }), 'via=client-node');
        const seen = [];
        informer.on('add', (o) => seen.push('add ' + o.metadata.name));
        informer.on('update', (o) => seen.push('update ' + o.metadata.name));
        informer.on('delete', (o) => seen.push('delete ' + o.metadata.name));
        await informer.start();
        await core.createNamespacedPod({ namespace: 'ns', body: { metadata: { name: 'cn', labels: { via: 'client-node' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } } });
        try { await core.createNamespacedPod({ namespace: 'ns', body: { metadata: { name: 'cn' } } }); } catch (e) { out.dupCode = e.code; }
        try { await core.readNamespacedPod({ namespace: 'ns', name: 'none' }); } catch (e) { out.missingCode = e.code; }
        const list = await core.listNamespacedPod({ namespace: 'ns', labelSelector: 'via=client-node' });
        out.listed = list.items.map((p) => p.metadata.name);
        const merged = await core.patchNamespacedPod({ namespace: 'ns', name: 'cn', body: { metadata: { annotations: { patched: 'merge' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
        out.merge = merged.metadata.annotations;
        const jp = await core.patchNamespacedPod({ namespace: 'ns', name: 'cn', body: [{ op: 'add', path: '/metadata/labels/extra', value: 'json-patch' }] });
        out.jsonPatch = jp.metadata.labels;
        const stale = { ...jp, metadata: { ...jp.metadata, resourceVersion: '1' } };
        try { await core.replaceNamespacedPod({ namespace: 'ns', name: 'cn', body: stale }); } catch (e) { out.conflictCode = e.code; }
        const ec = await custom.createNamespacedCustomObject({ group: 'etcd.ts-etcd.io', version: 'v1alpha1', namespace: 'ns', plural: 'etcdclusters', body: { apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'cn' }, spec: { size: 3 } } });
        const st = await custom.replaceNamespacedCustomObjectStatus({ group: 'etcd.ts-etcd.io', version: 'v1alpha1', namespace: 'ns', plural: 'etcdclusters', name: 'cn', body: { ...ec, status: { phase: 'Running' } } });
        out.status = st.status;
        await core.deleteNamespacedPod({ namespace: 'ns', name: 'cn' });
        const deadline = Date.now() + 5000;
        while (!seen.includes('delete cn') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        out.informer = seen;
        await informer.stop();
        console.log(JSON.stringify(out));
        process.exit(0);
      })().catch((e) => { console.error(e && e.stack || e); process.exit(1); });`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', script, url], { cwd: path.join(__dirname, '..', '..'), timeout: 30_000, env: { ...process.env, NODE_NO_WARNINGS: '1' } }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const r = JSON.parse(out.trim().split('\n').pop() as string);
    expect(r).toMatchObject({
      dupCode: 409,
      missingCode: 404,
      listed: ['cn'],
      merge: { patched: 'merge' },
      jsonPatch: { via: 'client-node', extra: 'json-patch' },
      conflictCode: 409,
      status: { phase: 'Running' },
    });
    expect(r.informer[0]).toBe('add cn');
    expect(r.informer).toContain('update cn');
    expect(r.informer[r.informer.length - 1]).toBe('delete cn');
  });

  describe("custom resources: the CRD of manifests/ as a real API server applies it", () => {
    const body = (r: { body: string }): { message?: string; reason?: string; code?: number; details?: { causes?: { field: string }[] }; spec?: Record<string, unknown>; status?: Record<string, unknown>; metadata?: { resourceVersion?: string; generation?: number } } => JSON.parse(r.body);
    const merge = (o: unknown): { body: string; headers: Record<string, string> } => ({ body: JSON.stringify(o), headers: { 'Content-Type': 'application/merge-patch+json' } });
    const ec = (name: string, spec?: Record<string, unknown>): unknown => ({ apiVersion: 'etcd.ts-etcd.io/v1alpha1', kind: 'EtcdCluster', metadata: { name }, ...(spec ? { spec } : {}) });

    test('writes are defaulted and validated: 422 Invalid with the field errors, on the object and on /status', async () => {
      const d = await request(url, 'POST', C, json(ec('defaults', {})));
      expect(d.status).toBe(201);
      expect(body(d).spec).toEqual({ size: 3, version: '3.4.34', repository: 'ts-etcd/etcd', paused: false });

      const bad = await request(url, 'POST', C, json(ec('bad', { size: 0, version: 'latest' })));
      expect(bad.status).toBe(422);
      expect(body(bad)).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
      expect(body(bad).message).toBe(
        'EtcdCluster.etcd.ts-etcd.io "bad" is invalid: [spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1, ' +
          `spec.version: Invalid value: "latest": spec.version in body should match '^v?[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.-]+)?$']`,
      );
      expect(body(bad).details?.causes?.map((c) => c.field)).toEqual(['spec.size', 'spec.version']);
      expect((await request(url, 'GET', `${C}/bad`)).status).toBe(404);
      expect(body(await request(url, 'POST', C, json(ec('nospec')))).message).toBe('EtcdCluster.etcd.ts-etcd.io "nospec" is invalid: spec: Required value');

      const tooBig = await request(url, 'PATCH', `${C}/defaults`, merge({ spec: { size: 10 } }));
      expect([tooBig.status, body(tooBig).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "defaults" is invalid: spec.size: Invalid value: 10: spec.size in body should be less than or equal to 9']);
      const cur = body(await request(url, 'GET', `${C}/defaults`));
      const st = await request(url, 'PUT', `${C}/defaults/status`, json({ ...cur, status: { phase: 'Sideways', members: [{ name: 'x' }] } }));
      expect([st.status, body(st).message]).toEqual([
        422,
        'EtcdCluster.etcd.ts-etcd.io "defaults" is invalid: [status.phase: Unsupported value: "Sideways": supported values: "Creating", "Running", "Scaling", "Upgrading", "Healing", "Degraded", "Failed", status.members[0].ready: Required value]',
      ]);
      // a status the operator writes is pruned of what the CRD does not declare, with a warning to the writer
      const pruned = await request(url, 'PUT', `${C}/defaults/status`, json({ ...cur, status: { phase: 'Running', leaderID: 'x' } }));
      expect(pruned.status).toBe(200);
      expect(body(pruned).status).toEqual({ phase: 'Running' });
      expect(pruned.headers.warning).toBe('299 - "unknown field \\"status.leaderID\\""');
      expect(api.warnings.map((w) => w.warning)).toContain('unknown field "status.leaderID"');
    });

    test('spec.tls and spec.storage are fixed at creation (the CRD\'s CEL rules); other changes and status writes pass', async () => {
      const storage = { volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } } };
      const made = await request(url, 'POST', C, json(ec('fixed', { size: 3, storage, tls: { clientSecret: 'c' } })));
      expect(made.status).toBe(201);
      const refused = async (patch: unknown): Promise<string | undefined> => {
        const r = await request(url, 'PATCH', `${C}/fixed`, merge(patch));
        return r.status === 422 ? body(r).message : `${r.status}`;
      };
      const invalid = (what: string): string => `EtcdCluster.etcd.ts-etcd.io "fixed" is invalid: ${what}`;
      expect(await refused({ spec: { storage: { volumeClaimTemplate: { spec: { resources: { requests: { storage: '2Gi' } } } } } } })).toBe(invalid('spec.storage: Invalid value: "object": spec.storage is immutable'));
      expect(await refused({ spec: { storage: null } })).toBe(invalid('spec: Invalid value: "object": spec.storage cannot be added or removed after creation'));
      expect(await refused({ spec: { tls: { clientSecret: 'other' } } })).toBe(invalid('spec.tls: Invalid value: "object": spec.tls is immutable'));
      expect(await refused({ spec: { tls: { peerSecret: 'p' } } })).toBe(invalid('spec.tls: Invalid value: "object": spec.tls is immutable'));
      expect(await refused({ spec: { tls: null } })).toBe(invalid('spec: Invalid value: "object": spec.tls cannot be added or removed after creation'));
      // the size, the version... change as before; the status subresource is not held back by the spec's rules
      const ok = await request(url, 'PATCH', `${C}/fixed`, merge({ spec: { size: 5, version: '3.4.35' } }));
      expect([ok.status, body(ok).metadata?.generation]).toEqual([200, 2]);
      const cur = body(ok);
      expect((await request(url, 'PUT', `${C}/fixed/status`, json({ ...cur, status: { phase: 'Running', size: 3 } }))).status).toBe(200);
      // a cluster made without them cannot get them later
      expect((await request(url, 'POST', C, json(ec('plain', { size: 1 })))).status).toBe(201);
      const add = await request(url, 'PATCH', `${C}/plain`, merge({ spec: { storage } }));
      expect([add.status, body(add).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "plain" is invalid: spec: Invalid value: "object": spec.storage cannot be added or removed after creation']);
      // nor be restored from a backup once it exists
      const restore = await request(url, 'PATCH', `${C}/plain`, merge({ spec: { restore: { backupName: 'b' } } }));
      expect([restore.status, body(restore).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "plain" is invalid: spec: Invalid value: "object": spec.restore cannot be added or removed after creation']);
      // spec.tls.auto makes its own certificates: named Secrets with it are refused
      const both = await request(url, 'POST', C, json(ec('both', { size: 1, tls: { auto: true, clientSecret: 'c' } })));
      expect([both.status, body(both).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "both" is invalid: spec.tls: Invalid value: "object": spec.tls.auto makes its own certificates; name no Secrets with it']);
      expect((await request(url, 'POST', C, json(ec('auto', { size: 1, tls: { auto: true } })))).status).toBe(201);
      // spec.tls.certManager: not with auto; the issuer's kind is Issuer or ClusterIssuer, defaults filled in; immutable
      const cmAuto = await request(url, 'POST', C, json(ec('cm-auto', { size: 1, tls: { auto: true, certManager: { issuerRef: { name: 'ca' } } } })));
      expect([cmAuto.status, body(cmAuto).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "cm-auto" is invalid: spec.tls: Invalid value: "object": spec.tls.certManager has cert-manager issue the certificates; not together with auto']);
      expect((await request(url, 'POST', C, json(ec('cm-kind', { size: 1, tls: { certManager: { issuerRef: { name: 'ca', kind: 'Secret' } } } })))).status).toBe(422);
      const cm = await request(url, 'POST', C, json(ec('cm', { size: 1, tls: { certManager: { issuerRef: { name: 'ca' }, duration: '720h' } } })));
      expect([cm.status, body(cm).spec?.tls]).toEqual([201, { certManager: { issuerRef: { name: 'ca', kind: 'Issuer', group: 'cert-manager.io' }, duration: '720h' } }]);
      const cmChange = await request(url, 'PATCH', `${C}/cm`, merge({ spec: { tls: { certManager: { issuerRef: { name: 'other' } } } } }));
      expect([cmChange.status, body(cmChange).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "cm" is invalid: spec.tls: Invalid value: "object": spec.tls is immutable']);
    });

    describe('/scale and kubectl scale', () => {
      let kubeconfig = '';
      const kubectl = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
        new Promise((resolve) => {
          execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
        });
      beforeAll(() => {
        kubeconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-')), 'config');
        const cfg = { apiVersion: 'v1', kind: 'Config', clusters: [{ name: 't', cluster: { server: url } }], users: [{ name: 't', user: {} }], contexts: [{ name: 't', context: { cluster: 't', user: 't', namespace: 'ns' } }], 'current-context': 't' };
        fs.writeFileSync(kubeconfig, yaml.dump(cfg));
      });

      test('GET, PUT and PATCH of the Scale read and write spec.size; status.replicas is status.size; discovery lists it', async () => {
        expect((await request(url, 'POST', C, json(ec('sc', { size: 3 })))).status).toBe(201);
        const cur = body(await request(url, 'GET', `${C}/sc`));
        await request(url, 'PUT', `${C}/sc/status`, json({ ...cur, status: { size: 2 } }));
        const sc = JSON.parse((await request(url, 'GET', `${C}/sc/scale`)).body);
        expect(sc).toMatchObject({ kind: 'Scale', apiVersion: 'autoscaling/v1', metadata: { name: 'sc', namespace: 'ns' }, spec: { replicas: 3 }, status: { replicas: 2 } });
        const put = await request(url, 'PUT', `${C}/sc/scale`, json({ ...sc, spec: { replicas: 5 } }));
        expect([put.status, JSON.parse(put.body).spec]).toEqual([200, { replicas: 5 }]);
        expect(body(await request(url, 'GET', `${C}/sc`)).spec?.size).toBe(5);
        expect((await request(url, 'PUT', `${C}/sc/scale`, json({ ...sc, spec: { replicas: 1 } }))).status).toBe(409); // sc's resourceVersion is stale
        const patched = await request(url, 'PATCH', `${C}/sc/scale`, merge({ spec: { replicas: 1 } }));
        expect(JSON.parse(patched.body).spec).toEqual({ replicas: 1 });
        const tooMany = await request(url, 'PATCH', `${C}/sc/scale`, merge({ spec: { replicas: 12 } }));
        expect([tooMany.status, JSON.parse(tooMany.body).message]).toEqual([422, 'EtcdCluster.etcd.ts-etcd.io "sc" is invalid: spec.size: Invalid value: 12: spec.size in body should be less than or equal to 9']);
        const disco = JSON.parse((await request(url, 'GET', '/apis/etcd.ts-etcd.io/v1alpha1')).body) as { resources: { name: string; kind: string; group?: string; version?: string }[] };
        expect(disco.resources.find((r) => r.name === 'etcdclusters/scale')).toMatchObject({ kind: 'Scale', group: 'autoscaling', version: 'v1' });
        expect((await request(url, 'GET', '/api/v1/namespaces/ns/pods/a/scale')).status).toBe(404);
      });

      test('kubectl scale etcdcluster/NAME --replicas=N sets spec.size; out of range is refused with the CRD\'s message', async () => {
        expect((await request(url, 'POST', C, json(ec('ks', { size: 3 })))).status).toBe(201);
        const r = await kubectl('scale', 'etcdcluster/ks', '--replicas=5');
        expect([r.code, r.stdout.trim(), r.stderr]).toEqual([0, 'etcdcluster.etcd.ts-etcd.io/ks scaled', '']);
        expect(body(await request(url, 'GET', `${C}/ks`)).spec?.size).toBe(5);
        const pre = await kubectl('scale', 'etcd/ks', '--current-replicas=4', '--replicas=3');
        expect(pre.code).not.toBe(0);
        expect(pre.stderr).toMatch(/Expected replicas to be 4, was 5/);
        const big = await kubectl('scale', 'etcd/ks', '--replicas=10');
        expect(big.code).not.toBe(0);
        expect(big.stderr).toContain('spec.size: Invalid value: 10: spec.size in body should be less than or equal to 9');
        expect(body(await request(url, 'GET', `${C}/ks`)).spec?.size).toBe(5);
      });
    });
  });
});
