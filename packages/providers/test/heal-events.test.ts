/**
 * Heal woken by the sim cloud's change feed: with a minute between polls, a server deleted by
 * hand or forced to ERROR is repaired within seconds, because the provider's `changes` hook
 * (createCloudProvider with `changes`) makes the engine observe it at once.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { createCloudProvider, notableChange, type CloudProvider } from '../src/index.js';
import { QUICK, settled, startWorld, type World } from './helpers.js';

const test = suite<{ nats?: NatsServer; w?: World; provider?: CloudProvider; engine?: Engine }>('heal: change notifications wake observation');

test.before(async (c) => {
  c.nats = await NatsServer.start();
  c.w = await startWorld();
  c.provider = createCloudProvider(c.w.client, { ...QUICK, changes: c.w.client });
  c.engine = await Engine.start({ servers: c.nats.url, partitions: 8, nodeId: 'heal-events', types: c.provider.types, heal: { observeIntervalMs: 60_000 } });
});
test.after(async (c) => {
  await c.engine?.stop();
  await c.provider?.close();
  await c.w?.stop();
  await c.nats?.stop();
});

const server = { type: 'OS::Nova::Server', properties: { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: { get_resource: 'net' } }] } };
const template = {
  heat_template_version: '2018-08-31',
  resources: {
    net: { type: 'OS::Neutron::Net' },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.41.0.0/24' } },
    web0: server,
    web1: server,
  },
};

test('a server deleted by hand and one forced to ERROR are repaired within seconds although polls are a minute apart', async ({ engine, w, provider }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'notified', template });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  // The sim answers the feed's request with the first event: the creates brought it up.
  assert.ok(provider!.gateway.following, 'following the change feed');
  const before = Object.fromEntries((await e.listResources(ref.id)).map((r) => [r.name, r.physicalId!]));

  await w!.client.vanish(before.web0!);
  await w!.client.forceStatus(before.web1!, { status: 'ERROR' });
  // A poll could not explain this: the earliest one is 45 s away (60 s jittered to [75 %, 125 %]).
  await waitFor('both servers repaired', async () => {
    const now = Object.fromEntries((await e.listResources(ref.id)).map((r) => [r.name, r.physicalId]));
    const inv = await w!.client.inventory();
    const servers = inv.filter((o) => o.kind === 'server');
    const fresh = now.web0 !== before.web0 && now.web1 !== before.web1;
    return fresh && servers.length === 2 && servers.every((o) => o.status === 'ACTIVE' && (o.id === now.web0 || o.id === now.web1));
  }, 20_000);
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  const events = (await e.events(ref.id)).map((x) => x.event);
  assert.ok(events.some((x) => x.resource === 'web0' && x.action === 'CHECK' && /gone/.test(x.reason)), 'web0 found gone');
  assert.ok(events.some((x) => x.resource === 'web1' && x.action === 'CHECK' && /ERROR/i.test(x.reason)), 'web1 found in ERROR');

  await e.deleteStack(ref.id);
  assert.is((await settled(e, ref.id, 2)).status, 'DELETED');
  await waitFor('inventory empty', async () => (await w!.client.inventory()).length === 0, 20_000);
});

test('notableChange: deletions and error states of objects made by a resource; ordinary progress is not forwarded', () => {
  const ev = (x: Record<string, unknown>) => ({ seq: 1, at: '', key: 'res/s/web#0', ...x }) as Parameters<typeof notableChange>[0];
  assert.equal(notableChange(ev({ type: 'deleted' })), { key: 'res/s/web#0', change: 'deleted' });
  assert.equal(notableChange(ev({ type: 'updated', status: 'ERROR', previous_status: 'ACTIVE' })), { key: 'res/s/web#0', change: 'error' });
  assert.equal(notableChange(ev({ type: 'updated', status: 'error' })), { key: 'res/s/web#0', change: 'error' }, 'a volume in error');
  assert.equal(notableChange(ev({ type: 'updated', status: 'ACTIVE', operating_status: 'OFFLINE' })), { key: 'res/s/web#0', change: 'error' }, 'an LB member not forwarding');
  assert.equal(notableChange(ev({ type: 'updated', status: 'DOWN', object: { 'binding:vif_type': 'binding_failed' } })), { key: 'res/s/web#0', change: 'error' });
  assert.is(notableChange(ev({ type: 'updated', status: 'ACTIVE', previous_status: 'BUILD' })), null);
  assert.is(notableChange(ev({ type: 'updated', status: 'PENDING_CREATE', operating_status: 'OFFLINE' })), null);
  assert.is(notableChange(ev({ type: 'created', status: 'BUILD' })), null);
  assert.is(notableChange({ seq: 1, at: '', type: 'deleted', id: 'x' }), null, 'not made by Kiln (no key)');
});

test.run();
