/**
 * Real HOT templates from Heat's repositories (../shared/conformance/hot) deployed by the engine
 * into the sim cloud through these types, then deleted: user-space templates keep working.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@kiln/natsd';
import type { Engine } from '@kiln/engine';
import { parseYaml } from '@kiln/template';
import { settled, startEngineWorld, stopEngineWorld, type EngineWorld, type World } from './helpers.js';

const HOT = fileURLToPath(new URL('../../../../../shared/conformance/hot/', import.meta.url));

const test = suite<Partial<EngineWorld> & { fixed?: Set<string>; ids?: Record<string, string> }>('conformance templates deployed into the sim cloud');

test.before(async (c) => {
  await startEngineWorld(c, 'providers-conformance');
  const w = c.w!;
  // What a real project already has: an external network and a private network with a subnet.
  const pub = await w.client.create('network', { name: 'public', 'router:external': true });
  const priv = await w.client.create('network', { name: 'private' });
  const sub = await w.client.create('subnet', { network_id: priv.id, cidr: '10.250.0.0/24', name: 'private-subnet' });
  c.ids = { pub: pub.id, priv: priv.id, sub: sub.id };
  c.fixed = new Set([pub.id, priv.id, sub.id]);
});
test.after(stopEngineWorld);

interface Case {
  file: string;
  params: (ids: Record<string, string>) => Record<string, unknown>;
  outputs?: string[];
  /** A second generation with these parameters, then a check of the cloud. */
  update?: { params: Record<string, unknown>; check: (w: World, e: Engine, stackId: string) => Promise<void> };
}

const cases: Case[] = [
  {
    file: 'heat-templates/servers_in_new_neutron_net.yaml',
    params: (ids) => ({
      key_name: 'demo-key',
      image: 'cirros-0.6.2-x86_64-disk',
      flavor: 'm1.tiny',
      public_net: ids.pub,
      private_net_name: 'app-net',
      private_net_cidr: '10.8.0.0/24',
      private_net_gateway: '10.8.0.1',
      private_net_pool_start: '10.8.0.10',
      private_net_pool_end: '10.8.0.100',
    }),
    outputs: ['server1_private_ip', 'server1_public_ip', 'server2_private_ip', 'server2_public_ip'],
  },
  {
    // Heat's test_stack_update_flavor_volume: a new flavor (replace here: no resize) and a bigger attached volume.
    file: 'inline/heat_integrationtests/test_create_update/test_template_updatae_flavor_and_volume_size.yaml',
    params: () => ({ image: 'cirros-0.6.2-x86_64-disk', flavor: 'm1.tiny', network: 'private' }),
    update: {
      params: { image: 'cirros-0.6.2-x86_64-disk', flavor: 'm1.small', network: 'private', volume_size: 12 },
      async check(w, e, stackId) {
        const rs = await e.listResources(stackId);
        const server = await w.client.get('server', rs.find((r) => r.name === 'my_instance')!.physicalId!);
        const volume = await w.client.get('volume', rs.find((r) => r.name === 'data_volume')!.physicalId!);
        assert.is(server!.flavor.original_name, 'm1.small');
        assert.is(volume!.size, 12);
        assert.is(volume!.status, 'in-use');
        assert.equal(volume!.attachments.map((a) => a.server_id), [server!.id]);
        assert.is((await w.client.inventory({ kind: 'server' })).length, 1, 'the old server is gone');
      },
    },
  },
  {
    file: 'heat-templates/octavia/servers_with_octavia.yaml',
    params: (ids) => ({ subnet: ids.sub, private_network: ids.priv, image: 'cirros-0.6.2-x86_64-disk', flavor: 'm1.tiny', server1_name: 'app1', server2_name: 'app2' }),
  },
  { file: 'inline/heat_tempest_plugin/test_nova_server_networks/server_with_sub_fixed_ip_template.yaml', params: () => ({ image: 'cirros-0.6.2-x86_64-disk', flavor: 'm1.tiny' }) },
  { file: 'inline/heat_tempest_plugin/test_create_update_neutron_port/test_template.yaml', params: () => ({}) },
  { file: 'inline/heat_tempest_plugin/test_create_update_neutron_subnet/test_template.yaml', params: () => ({}) },
];

for (const [i, tc] of cases.entries()) {
  test(tc.file, async ({ engine, w, fixed, ids }) => {
    const e = engine!;
    const template = parseYaml(readFileSync(HOT + tc.file, 'utf8')) as Record<string, unknown>;
    const ref = await e.createStack({ name: `conf${i}`, template, parameters: tc.params(ids!) });
    const s = await settled(e, ref.id, 1);
    assert.is(s.status, 'READY', s.reason);
    for (const o of tc.outputs ?? []) assert.ok(s.outputs[o], `output ${o}: ${JSON.stringify(s.outputs[o])}`);
    const made = (await w!.client.inventory()).filter((o) => !fixed!.has(o.id) && !o.implicit);
    assert.ok(made.length > 0);
    let gen = 1;
    if (tc.update) {
      await e.updateStack(ref.id, { template, parameters: tc.update.params });
      const u = await settled(e, ref.id, ++gen);
      assert.is(u.status, 'READY', u.reason);
      await tc.update.check(w!, e, ref.id);
    }
    await e.deleteStack(ref.id);
    assert.is((await settled(e, ref.id, gen + 1)).status, 'DELETED');
    await waitFor('only the pre-existing objects left', async () => (await w!.client.inventory()).every((o) => fixed!.has(o.id)), 20_000);
  });
}

test.run();
