/**
 * Heal end to end: the engine (real nats-server) keeps a stack of cloud resources in line with a
 * real sim cloud after READY — servers deleted by hand come back within the observe interval, a
 * server forced to ERROR is replaced, and the inventory always ends equal to the stack's resources.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '@kiln/natsd';
import type { Engine } from '@kiln/engine';
import { settled, startEngineWorld, stopEngineWorld, type EngineWorld, type World } from './helpers.js';

const test = suite<Partial<EngineWorld>>('heal: observe and repair against the sim cloud');

const OBSERVE_MS = 1_000;

test.before((c) => startEngineWorld(c, 'heal-test', { heal: { observeIntervalMs: OBSERVE_MS, repairsPerSecond: 20, repairBurst: 20 } }));
test.after(stopEngineWorld);

const template = {
  heat_template_version: '2018-08-31',
  resources: {
    net: { type: 'OS::Neutron::Net' },
    // No depends_on: the servers wait for the subnet through Heat's implicit dependency.
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.40.0.0/24' } },
    ...Object.fromEntries(
      [0, 1, 2].map((i) => [`web${i}`, { type: 'OS::Nova::Server', properties: { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: { get_resource: 'net' } }] } }]),
    ),
  },
  outputs: { ip0: { value: { get_attr: ['web0', 'first_address'] } } },
};

/** The stack's physical ids equal the live (non-implicit) objects of the cloud, nothing more. */
async function inventoryMatches(e: Engine, w: World, id: string): Promise<Set<string> | null> {
  const [resources, inv] = await Promise.all([e.listResources(id), w.client.inventory()]);
  const mine = new Set(resources.map((r) => r.physicalId!).filter(Boolean));
  const live = inv.filter((o) => !o.implicit);
  if (live.length !== mine.size || !live.every((o) => mine.has(o.id))) return null;
  if (live.some((o) => o.kind === 'server' && o.status !== 'ACTIVE')) return null;
  return mine;
}

test('servers deleted by hand come back within the observe interval; one forced to ERROR is replaced; no leaks', async ({ engine, w }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'healing', template });
  const s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.match(String(s.outputs.ip0), /^10\.40\.0\./, 'the server got an address: it waited for the subnet');

  const before = await e.listResources(ref.id);
  const servers = before.filter((r) => r.type === 'OS::Nova::Server');
  await Promise.all(servers.slice(0, 2).map((r) => w!.client.vanish(r.physicalId!)));
  // Back within the interval (jittered up to 125 %) plus the time to boot, well under 20 s.
  await waitFor('vanished servers recreated', async () => {
    const now = await e.listResources(ref.id);
    const ok = servers.slice(0, 2).every((r) => {
      const n = now.find((x) => x.name === r.name);
      return n && n.physicalId && n.physicalId !== r.physicalId;
    });
    return ok && (await inventoryMatches(e, w!, ref.id));
  }, 20_000);
  assert.is((await settled(e, ref.id, 1)).status, 'READY');

  const victim = (await e.listResources(ref.id)).find((r) => r.name === 'web2')!;
  await w!.client.forceStatus(victim.physicalId!, { status: 'ERROR' });
  await waitFor('the ERROR server replaced', async () => {
    const n = (await e.listResources(ref.id)).find((r) => r.name === 'web2')!;
    return n.physicalId !== victim.physicalId && (await inventoryMatches(e, w!, ref.id));
  }, 20_000);
  assert.is((await settled(e, ref.id, 1)).status, 'READY');

  const events = await e.events(ref.id);
  assert.ok(events.some((x) => x.event.resource === 'web0' && x.event.action === 'CHECK' && /gone/.test(x.event.reason)), 'a repair event for the vanished server');
  assert.ok(events.some((x) => x.event.resource === 'web2' && x.event.action === 'CHECK' && /ERROR/i.test(x.event.reason)), 'a repair event for the ERROR server');

  await e.deleteStack(ref.id);
  assert.is((await settled(e, ref.id, 2)).status, 'DELETED');
  await waitFor('inventory empty', async () => (await w!.client.inventory()).length === 0, 20_000);
});

test.run();
