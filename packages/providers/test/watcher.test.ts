import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createCloudProvider, type CloudProvider } from '../src/index.js';
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

test.run();
