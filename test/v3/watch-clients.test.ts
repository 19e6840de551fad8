/**
 * Watch with real clients against our member: Python's etcd3 (python3-etcd3: watch, watch_prefix with a start
 * revision and prev_kv, cancel) and the npm etcd3 client (watchers on a key and a prefix, history, live events,
 * previous values, cancel).
 */
import { spawnSync } from 'node:child_process';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { TestCluster } from '../support/cluster';

jest.setTimeout(120_000);

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

test("Python's etcd3: watch_prefix from a past revision with prev_kv, watch of a key, live events, cancel", async () => {
  c = await TestCluster.start(1);
  const port = new URL(c.members[0].clientURL).port;
  const script = `
import etcd3
c = etcd3.client(host='127.0.0.1', port=${port})
start = c.put('/py/a', '1').header.revision
c.put('/py/b', '2')
c.put('/py/a', '3')
c.delete('/py/b')
c.put('/other', 'x')
events, cancel = c.watch_prefix('/py/', start_revision=start, prev_kv=True)
def show(e):
    prev = ' prev=%s' % e.prev_value.decode() if e.prev_value else ''
    print(type(e).__name__, e.key.decode(), e.value.decode(), e.mod_revision - start, e.version, prev)
for i, e in enumerate(events):
    show(e)
    if i == 3:
        break
c.put('/py/live', 'now')
show(next(events))
cancel()
kevents, kcancel = c.watch('/py/a')
c.put('/py/a', '5')
show(next(kevents))
kcancel()
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toBe(
    [
      'PutEvent /py/a 1 0 1 ',
      'PutEvent /py/b 2 1 1 ',
      'PutEvent /py/a 3 2 2  prev=1',
      'DeleteEvent /py/b  3 0  prev=2',
      'PutEvent /py/live now 5 1 ',
      'PutEvent /py/a 5 6 3 ',
      '',
    ].join('\n'),
  );
});

test('the npm etcd3 client: a key watcher and a prefix watcher, history from a revision, previous values, cancel', async () => {
  c = await TestCluster.start(1);
  const client = new Etcd3({ hosts: c.members[0].clientURL });
  const watchers: Watcher[] = [];
  try {
    const start = Number((await client.put('/js/a').value('1').exec()).header.revision);
    await client.put('/js/b').value('2');
    await client.delete().key('/js/a');
    const seen: string[] = [];
    const prefix = await client.watch().prefix('/js/').startRevision(String(start)).withPreviousKV().create();
    watchers.push(prefix);
    prefix.on('put', (kv: IKeyValue, prev?: IKeyValue) => seen.push(`put ${kv.key} ${kv.value} ${Number(kv.mod_revision) - start}${prev ? ` prev ${prev.value}` : ''}`));
    prefix.on('delete', (kv: IKeyValue, prev?: IKeyValue) => seen.push(`delete ${kv.key} ${Number(kv.mod_revision) - start}${prev ? ` prev ${prev.value}` : ''}`));
    const key = await client.watch().key('/js/b').create();
    watchers.push(key);
    const keyEvents: string[] = [];
    key.on('put', (kv: IKeyValue) => keyEvents.push(`put ${kv.value}`));
    const until = async (cond: () => boolean) => {
      for (const deadline = Date.now() + 20000; !cond(); ) {
        if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify({ seen, keyEvents })}`);
        await new Promise((r) => setTimeout(r, 20)); // events arrive on the watchers' streams
      }
    };
    await until(() => seen.length === 3);
    await client.put('/js/b').value('3');
    await client.put('/js/c').value('4');
    await until(() => seen.length === 5 && keyEvents.length === 1);
    await prefix.cancel();
    watchers.shift();
    await client.put('/js/b').value('after');
    await until(() => keyEvents.length === 2);
    expect(seen).toEqual(['put /js/a 1 0', 'put /js/b 2 1', 'delete /js/a 2 prev 1', 'put /js/b 3 3 prev 2', 'put /js/c 4 4']);
    expect(keyEvents).toEqual(['put 3', 'put after']);
  } finally {
    for (const w of watchers) await w.cancel().catch(() => undefined);
    client.close();
  }
});
