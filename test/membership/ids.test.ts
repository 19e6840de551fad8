import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterId, memberId, parseId } from '../../server/membership/ids';
import { freePort, requireRealEtcd } from '../support/real-etcd';

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('member and cluster IDs', () => {
  test('depend on peer URLs (in any order), the token and the time of a runtime addition', () => {
    const a = memberId(['http://10.0.0.1:2380', 'http://10.0.0.2:2380'], 'tok');
    expect(memberId(['http://10.0.0.2:2380', 'http://10.0.0.1:2380'], 'tok')).toBe(a);
    expect(memberId(['http://10.0.0.1:2380', 'http://10.0.0.2:2380'], 'other')).not.toBe(a);
    expect(memberId(['http://10.0.0.1:2380', 'http://10.0.0.2:2380'], 'tok', 1700000000)).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{1,16}$/);
    expect(clusterId(['b', 'a'])).toBe(clusterId(['a', 'b']));
    expect(() => parseId('xyz')).toThrow(/invalid member ID/);
  });

  test("equal the real etcd's for the same configuration", async () => {
    const etcd = requireRealEtcd();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-ids-'));
    const [cport, pport] = [await freePort(), await freePort()];
    const peer = `http://127.0.0.1:${pport}`;
    const proc = spawn(etcd, [
      '--name', 'id-check', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${cport}`, '--advertise-client-urls', `http://127.0.0.1:${cport}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `id-check=${peer}`, '--initial-cluster-token', 'ts-etcd-id-test', '--enable-v2=true',
    ], { stdio: 'ignore' });
    try {
      let res;
      const deadline = Date.now() + 20000;
      for (;;) {
        try {
          res = await get(`http://127.0.0.1:${cport}/v2/members`);
          if (res.status === 200) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error('real etcd did not come up within 20s');
        await new Promise<void>((r) => setTimeout(r, 50)); // poll until the server answers
      }
      const id = memberId([peer], 'ts-etcd-id-test');
      expect(JSON.parse(res.body).members.map((m: { id: string }) => m.id)).toEqual([id]);
      expect(res.headers['x-etcd-cluster-id']).toBe(clusterId([id]));
    } finally {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
