import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '@kiln/natsd';
import { settled, startEngineWorld, stopEngineWorld, type EngineWorld } from './helpers.js';

const test = suite<Partial<EngineWorld>>('engine + cloud types + sim cloud');

test.before((c) => startEngineWorld(c, 'providers-test'));
test.after(stopEngineWorld);

const template = {
  heat_template_version: '2018-08-31',
  parameters: { flavor: { type: 'string', default: 'm1.small' } },
  resources: {
    net: { type: 'OS::Neutron::Net', properties: { name: 'app-net' } },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.20.0.0/24' } },
    port: { type: 'OS::Neutron::Port', properties: { network: { get_resource: 'net' }, fixed_ips: [{ subnet: { get_resource: 'subnet' } }] } },
    server: {
      type: 'OS::Nova::Server',
      properties: { flavor: { get_param: 'flavor' }, image: 'cirros-0.6.2-x86_64-disk', networks: [{ port: { get_resource: 'port' } }], metadata: { app: 'demo' }, user_data: 'hello' },
    },
    volume: { type: 'OS::Cinder::Volume', properties: { size: 1 } },
    attachment: { type: 'OS::Cinder::VolumeAttachment', properties: { instance_uuid: { get_resource: 'server' }, volume_id: { get_resource: 'volume' } } },
  },
  outputs: { ip: { value: { get_attr: ['server', 'first_address'] } }, port_ip: { value: { get_attr: ['port', 'fixed_ips', 0, 'ip_address'] } } },
};

test('a stack of net, subnet, port, server, volume and attachment is created in the cloud, then deleted leaving nothing', async ({ engine, w }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'cloudy', template });
  const s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.match(String(s.outputs.ip), /^10\.20\.0\./);
  assert.is(s.outputs.ip, s.outputs.port_ip);
  const inv = await w!.client.inventory();
  const kinds = inv.filter((o) => !o.implicit).map((o) => o.kind).sort();
  assert.equal(kinds, ['network', 'port', 'server', 'subnet', 'volume']);
  const resources = await e.listResources(ref.id);
  for (const r of resources.filter((x) => x.name !== 'attachment')) {
    assert.ok(inv.some((o) => o.id === r.physicalId), `${r.name} is in the cloud`);
  }
  const vol = await w!.client.get('volume', resources.find((r) => r.name === 'volume')!.physicalId!);
  assert.is(vol!.status, 'in-use');

  // In-place update (metadata) and a replacement (flavor) through the engine.
  const serverBefore = resources.find((r) => r.name === 'server')!.physicalId;
  const t2 = structuredClone(template);
  t2.resources.server.properties.metadata = { app: 'demo2' };
  await e.updateStack('cloudy', { template: t2 });
  assert.is((await settled(e, ref.id, 2)).status, 'READY');
  const serverMid = (await e.listResources(ref.id)).find((r) => r.name === 'server')!;
  assert.is(serverMid.physicalId, serverBefore, 'metadata updates in place');
  assert.is((await w!.client.get('server', serverBefore!))!.metadata.app, 'demo2');

  await e.deleteStack('cloudy');
  const d = await settled(e, ref.id, 3);
  assert.is(d.status, 'DELETED', d.reason);
  await waitFor('inventory empty', async () => (await w!.client.inventory()).length === 0, 20_000);
});

const lbTemplate = {
  heat_template_version: '2018-08-31',
  resources: {
    net: { type: 'OS::Neutron::Net' },
    subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.30.0.0/24' } },
    sg: { type: 'OS::Neutron::SecurityGroup', properties: { rules: [{ protocol: 'tcp', port_range_min: 80, port_range_max: 80 }] } },
    // Heat adds this dependency implicitly (a server on a network waits for the network's subnets); Kiln's graph does not yet.
    web: { type: 'OS::Nova::Server', depends_on: ['subnet'], properties: { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: { get_resource: 'net' } }] } },
    lb: { type: 'OS::Octavia::LoadBalancer', properties: { vip_subnet: { get_resource: 'subnet' } } },
    listener: { type: 'OS::Octavia::Listener', properties: { loadbalancer: { get_resource: 'lb' }, protocol: 'HTTP', protocol_port: 80 } },
    pool: { type: 'OS::Octavia::Pool', properties: { listener: { get_resource: 'listener' }, lb_algorithm: 'ROUND_ROBIN', protocol: 'HTTP' } },
    member: { type: 'OS::Octavia::PoolMember', properties: { pool: { get_resource: 'pool' }, address: { get_attr: ['web', 'first_address'] }, protocol_port: 80, subnet: { get_resource: 'subnet' } } },
    monitor: { type: 'OS::Octavia::HealthMonitor', properties: { pool: { get_resource: 'pool' }, type: 'HTTP', delay: 5, timeout: 3, max_retries: 3 } },
  },
  outputs: { vip: { value: { get_attr: ['lb', 'vip_address'] } }, member_address: { value: { get_attr: ['member', 'address'] } }, web: { value: { get_attr: ['web', 'first_address'] } } },
};

test('a server behind a load balancer: member address from get_attr; delete leaves nothing', async ({ engine, w }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'balanced', template: lbTemplate });
  const s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.match(String(s.outputs.vip), /^10\.30\.0\./);
  assert.is(s.outputs.member_address, s.outputs.web);
  const kinds = (await w!.client.inventory()).filter((o) => !o.implicit).map((o) => o.kind).sort();
  assert.equal(kinds, ['healthmonitor', 'listener', 'loadbalancer', 'member', 'network', 'pool', 'security_group', 'server', 'subnet']);
  await e.deleteStack('balanced');
  assert.is((await settled(e, ref.id, 2)).status, 'DELETED');
  await waitFor('inventory empty', async () => (await w!.client.inventory()).length === 0, 20_000);
});

test.run();
