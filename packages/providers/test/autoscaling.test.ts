/**
 * Autoscaling end to end (real nats-server, real sim cloud with boot failures): a scaling group
 * receives 50 capacity changes in about 5 seconds, through setGroupCapacity and policy signals,
 * while members fail; it ends at the last desired capacity with exactly that many servers in the
 * cloud, a parent update keeps the autoscaled size, and deleting leaves nothing.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine, RETRY_BASE_MS, type StackInfo } from '@kiln/engine';
import { cloudTypes } from '../src/index.js';
import { QUICK, startWorld, type World } from './helpers.js';

const test = suite<{ nats?: NatsServer; w?: World; engine?: Engine }>('autoscaling against the sim cloud');

test.before(async (c) => {
  RETRY_BASE_MS.value = 50;
  c.nats = await NatsServer.start();
  c.w = await startWorld({ seed: 11, faults: { serverBootError: 0.2 } });
  c.engine = await Engine.start({
    servers: c.nats!.url,
    partitions: 8,
    nodeId: 'asg-test',
    types: cloudTypes(c.w.client, QUICK),
    heal: { observeIntervalMs: 1_000, repairsPerSecond: 50, repairBurst: 50 },
  });
});
test.after(async (c) => {
  await c.engine?.stop();
  await c.w?.stop();
  await c.nats?.stop();
});

const template = (label: string) => ({
  heat_template_version: '2018-08-31',
  resources: {
    net: { type: 'OS::Neutron::Net', properties: { name: label } },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.50.0.0/24' } },
    asg: {
      type: 'OS::Heat::AutoScalingGroup',
      properties: {
        min_size: 1,
        max_size: 12,
        desired_capacity: 2,
        resource: { type: 'OS::Nova::Server', properties: { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: { get_resource: 'net' } }] } },
      },
    },
    up: { type: 'OS::Heat::ScalingPolicy', properties: { auto_scaling_group_id: { get_resource: 'asg' }, adjustment_type: 'change_in_capacity', scaling_adjustment: 2 } },
    down: { type: 'OS::Heat::ScalingPolicy', properties: { auto_scaling_group_id: { get_resource: 'asg' }, adjustment_type: 'percent_change_in_capacity', scaling_adjustment: -50 } },
  },
  outputs: { size: { value: { get_attr: ['asg', 'current_size'] } }, url: { value: { get_attr: ['up', 'signal_url'] } } },
});

async function settledAt(e: Engine, id: string, gen: number): Promise<StackInfo> {
  return waitFor(`stack ${id} at gen ${gen}`, async () => {
    const s = await e.getStack(id);
    return s.generation >= gen && s.status !== 'CONVERGING' ? s : null;
  }, 90_000);
}

/** What groupIs saw last (printed when a wait fails). */
let lastSeen = '';

/** Live servers of the group in the cloud equal its members, `n` of them, all ACTIVE. */
async function groupIs(e: Engine, w: World, id: string, n: number): Promise<boolean> {
  const asg = (await e.listResources(id)).find((r) => r.name === 'asg');
  if (!asg?.nestedStackId) return false;
  const members = (await e.listResources(asg.nestedStackId)).filter((r) => r.physicalId);
  const servers = (await w.client.inventory({ kind: 'server' })).filter((o) => !o.implicit);
  const ids = new Set(members.map((m) => m.physicalId));
  lastSeen = JSON.stringify({ members: members.map((m) => [m.name, m.physicalId, m.status, m.reason]), servers: servers.map((x) => [x.id, x.status, x.key]) });
  return members.length === n && servers.length === n && servers.every((s) => ids.has(s.id) && s.status === 'ACTIVE');
}

test('50 capacity changes in ~5 s while members fail: the group ends at the last desired capacity', async ({ engine, w }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'scaling', template: template('a') });
  const s0 = await settledAt(e, ref.id, 1);
  assert.is(s0.status, 'READY', s0.reason);
  assert.is(s0.outputs.size, 2);
  assert.match(String(s0.outputs.url), /up/);

  let lastGen = 1;
  let vanished = 0;
  for (let i = 0; i < 50; i++) {
    const pick = i % 5;
    if (pick === 0) await e.signal(ref.id, 'up', {});
    else if (pick === 1) await e.signal(ref.id, 'down', {});
    else lastGen = (await e.setGroupCapacity(ref.id, 'asg', 1 + ((i * 7) % 12))).generation;
    if (i % 10 === 5) {
      // Members fail by hand too: one live server vanishes.
      const live = (await w!.client.inventory({ kind: 'server' })).filter((o) => o.status === 'ACTIVE');
      if (live[0]) vanished += (await w!.client.vanish(live[0].id)) ? 1 : 0;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  lastGen = (await e.setGroupCapacity(ref.id, 'asg', 7)).generation;
  assert.ok(vanished > 0);
  const s1 = await settledAt(e, ref.id, lastGen);
  assert.is(s1.status, 'READY', s1.reason);
  await waitFor('7 ACTIVE servers, exactly the members', () => groupIs(e, w!, ref.id, 7), 60_000).catch(async (err) => {
    const evs = (await e.events(ref.id)).map((x) => `${x.event.resource} ${x.event.gen} ${x.event.action} ${x.event.status} ${x.event.physicalId} ${x.event.reason}`);
    throw new Error(`${(err as Error).message}; last seen ${lastSeen}\n${evs.join('\n')}`);
  });
  assert.is((await e.getStack(ref.id)).outputs.size, 7);

  // A parent update that leaves the group's size alone keeps the autoscaled capacity (Heat's bug).
  const g = (await e.updateStack(ref.id, { template: template('b') })).generation;
  assert.is((await settledAt(e, ref.id, g)).status, 'READY');
  assert.ok(await groupIs(e, w!, ref.id, 7));

  // A policy signal acts on the newest capacity.
  const before = (await e.getStack(ref.id)).generation;
  await e.signal(ref.id, 'down', {});
  await settledAt(e, ref.id, before + 1);
  await waitFor('7 -50 % = 4 servers', () => groupIs(e, w!, ref.id, 4), 60_000);

  const events = await e.events(ref.id);
  // Failed boots are replaced inside the provider's task (or by the engine's retry when that gives up too).
  assert.ok(((await w!.client.stats()).injected.struck['boot-error'] ?? 0) > 0, 'members failed to boot and were replaced');
  assert.ok(events.some((x) => x.event.resource?.startsWith('asg/') && x.event.action === 'CHECK'), 'vanished members were repaired');

  await e.deleteStack(ref.id);
  const d = await waitFor('deleted', async () => {
    const s = await e.getStack(ref.id);
    return s.status === 'DELETED' ? s : null;
  }, 60_000);
  assert.is(d.status, 'DELETED');
  await waitFor('inventory empty', async () => (await w!.client.inventory()).length === 0, 30_000);
});

test.run();
