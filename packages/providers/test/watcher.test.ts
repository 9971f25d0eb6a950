import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChangeEvent } from '@kiln/sim-cloud';
import { createLogger } from '@kiln/core';
import { ChangeWatcher, createCloudProvider, type ChangeFeed, type CloudProvider } from '../src/index.js';
import { QUICK, ctx, props, request, startWorld, type World } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const test = suite<{ w?: World }>('waits woken by the change feed');
test.before(async (c) => {
  c.w = await startWorld({ latency: { default: { dist: 'fixed', ms: 5 }, server: { dist: 'fixed', ms: 300 }, delete: { dist: 'fixed', ms: 300 } } });
});
test.after(async (c) => {
  await c.w?.stop();
});

async function bootAndDelete(w: World, p: CloudProvider, name: string): Promise<number> {
  const Net = p.types.find((t) => t.name === 'OS::Neutron::Net')!;
  const Server = p.types.find((t) => t.name === 'OS::Nova::Server')!;
  if (Net.kind !== 'task' || Server.kind !== 'task') throw new Error('task types');
  const net = await Net.create(request(`${name}-net`, props(Net, {})), ctx());
  const req = request(name, props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net.physicalId }] }));
  const s = await Server.create(req, ctx());
  assert.is((s.attrs.show as { status: string }).status, 'ACTIVE');
  await Server.delete({ ...req, physicalId: s.physicalId }, ctx());
  assert.is((await w.client.inventory({ kind: 'server' })).length, 0);
  await Net.delete({ ...request(`${name}-net`, {}), physicalId: net.physicalId }, ctx());
  return p.gateway.calls.get('server.get') ?? 0;
}

test('with the change feed a boot and a delete cost a GET or two each; polling costs many', async ({ w }) => {
  const evented = createCloudProvider(w!.client, { ...QUICK, changes: w!.client, fallbackPollMs: 30_000 });
  let withEvents: number;
  try {
    // Waits poll until the feed is up; a change brings it up (the sim sends its headers with the first event).
    await waitFor('change feed up', async () => {
      if (!evented.gateway.following) await w!.client.create('network', { name: 'nudge' });
      return evented.gateway.following;
    });
    withEvents = await bootAndDelete(w!, evented, 'ev');
  } finally {
    await evented.close();
  }
  const polling = createCloudProvider(w!.client, QUICK);
  const withPolls = await bootAndDelete(w!, polling, 'poll');
  // The events carry the object: the waits need (almost) no GETs.
  assert.ok(withEvents <= 2, `GETs with events: ${withEvents}`);
  assert.ok(withPolls > withEvents, `GETs polling: ${withPolls} vs ${withEvents}`);
});

test('while the feed is live a wait needs no safety poll, however long the boot', async ({ w }) => {
  // Without the liveness rule a 300 ms boot would be polled every 50 ms or so.
  const evented = createCloudProvider(w!.client, { ...QUICK, changes: w!.client, fallbackPollMs: 50 });
  try {
    await waitFor('change feed up', async () => evented.gateway.following);
    // The one GET is the delete's first look (it registers before looking, so it needs no first object).
    assert.is(await bootAndDelete(w!, evented, 'live'), 1);
  } finally {
    await evented.close();
  }
});

/** A feed driven by the test: connects at once, then says only what `emit` gives it. */
class ManualFeed implements ChangeFeed {
  follows = 0;
  private current: Parameters<ChangeFeed['follow']>[0] | undefined;
  follow(opts: Parameters<ChangeFeed['follow']>[0]): Promise<void> {
    this.follows++;
    this.current = opts;
    opts.onOpen?.();
    return new Promise((resolve) => opts.signal?.addEventListener('abort', () => resolve(), { once: true }));
  }
  emit(e: Partial<ChangeEvent>): void {
    this.current!.onEvent({ seq: 1, at: new Date().toISOString(), tenant: 'demo', status: '', ...e } as ChangeEvent);
  }
}

test('a change the feed delivers before the create answers is not lost to the wait', async ({ w }) => {
  const feed = new ManualFeed();
  const p = createCloudProvider(w!.client, { ...QUICK, changes: feed, livePollMs: 60_000 });
  try {
    await waitFor('feed up', async () => p.gateway.following);
    // The object does not exist in the sim: a GET would find it gone and fail the wait.
    const early = p.gateway.watchKey('res/s/x#1');
    feed.emit({ type: 'updated', kind: 'server', id: 'x-1', key: 'res/s/x#1', status: 'ACTIVE', object: { id: 'x-1', status: 'ACTIVE' } });
    const got = await p.gateway.waitFor('server', 'x-1', undefined, (o) => (o?.status === 'ACTIVE' ? 'done' : o ? 'pending' : { failed: 'gone' }), {
      first: { id: 'x-1', status: 'BUILD' } as never,
      early,
      onFail: (reason) => new Error(reason),
    });
    p.gateway.unwatchKey('res/s/x#1', early);
    assert.is(got?.status, 'ACTIVE');
    assert.is(p.gateway.calls.get('server.get'), undefined);
  } finally {
    await p.close();
  }
});

test('a boot that fails inside a create is not reported to the engine: the create replaces it itself', async ({ w }) => {
  const p = createCloudProvider(w!.client, { ...QUICK, changes: w!.client, replaceFailedCreates: 1 });
  const Server = p.types.find((t) => t.name === 'OS::Nova::Server')!;
  if (Server.kind !== 'task' || !Server.changes) throw new Error('a task type with the change hook');
  const reported: string[] = [];
  const stop = Server.changes((c) => reported.push(`${c.change} ${c.key}`));
  await w!.client.setFaults({ serverBootError: 1 });
  try {
    await waitFor('change feed up', async () => p.gateway.following);
    const req = request('doomed', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [] }));
    const failed = await Server.create(req, ctx()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.match(failed?.message ?? '', /ERROR/);
    // Both boots went to ERROR inside the task: neither is the engine's business.
    assert.equal(reported.filter((r) => r.startsWith('error')), []);
    const boots = (await w!.client.stats()).calls['server.create'] ?? 0;
    assert.ok(boots >= 2, `the failed boot was replaced in the task (${boots} creates)`);
  } finally {
    await w!.client.setFaults({ serverBootError: 0 });
    stop();
    await p.close();
  }
});

test('a feed that delivers changes late is not trusted to wake waits (they poll as well)', async () => {
  const feed = new ManualFeed();
  const watcher = new ChangeWatcher(feed, createLogger('test'), 10, 45_000, 5_000);
  try {
    await waitFor('feed up', async () => watcher.live);
    feed.emit({ type: 'updated', kind: 'server', id: 'a', at: new Date(Date.now() - 60_000).toISOString() });
    assert.is(watcher.live, false, 'a minute behind');
    feed.emit({ type: 'updated', kind: 'server', id: 'a', at: new Date().toISOString() });
    assert.is(watcher.live, true, 'caught up');
  } finally {
    await watcher.close();
  }
});

test('a stalled feed is reconnected and its waits look for themselves', async ({ w }) => {
  const feed = new ManualFeed();
  // Live waits would sleep a minute; the stall (no event, no keep-alive for 200 ms) must wake them.
  const p = createCloudProvider(w!.client, { ...QUICK, changes: feed, stallMs: 200, fallbackPollMs: 50, livePollMs: 60_000 });
  try {
    await waitFor('feed up', async () => p.gateway.following);
    const Net = p.types.find((t) => t.name === 'OS::Neutron::Net')!;
    const Server = p.types.find((t) => t.name === 'OS::Nova::Server')!;
    if (Net.kind !== 'task' || Server.kind !== 'task') throw new Error('task types');
    const net = await Net.create(request('stall-net', props(Net, {})), ctx());
    const req = request('stall', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net.physicalId }] }));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the wait slept through the stall')), 20_000)));
    const s = await Promise.race([Server.create(req, ctx()), deadline]).finally(() => clearTimeout(timer));
    assert.is((s.attrs.show as { status: string }).status, 'ACTIVE');
    assert.ok((p.gateway.calls.get('server.get') ?? 0) >= 1, 'the boot was polled');
    await waitFor('reconnected', async () => feed.follows >= 2);
    await Server.delete({ ...req, physicalId: s.physicalId }, ctx());
    await Net.delete({ ...request('stall-net', {}), physicalId: net.physicalId }, ctx());
  } finally {
    await p.close();
  }
});

test.run();
