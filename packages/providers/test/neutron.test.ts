import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ctx, create, replaces, startWorld, type World } from './helpers.js';

const test = suite<{ w?: World }>('neutron types against the sim cloud');
test.before(async (c) => {
  c.w = await startWorld();
});
test.after(async (c) => {
  await c.w?.stop();
});

test('net, subnet, port: create, attributes, in-place update, drift, replace rules, delete', async ({ w }) => {
  const Net = w!.type('OS::Neutron::Net');
  const Subnet = w!.type('OS::Neutron::Subnet');
  const Port = w!.type('OS::Neutron::Port');
  const net = await create(Net, 'net', { name: 'private' });
  assert.is(net.attrs.status, 'ACTIVE');
  assert.is(net.attrs.name, 'private');
  const sub = await create(Subnet, 'sub', { network: net.physicalId, cidr: '10.0.0.0/24' });
  assert.is(sub.attrs.cidr, '10.0.0.0/24');
  assert.is(sub.attrs.gateway_ip, '10.0.0.1');
  assert.is(sub.attrs.network_id, net.physicalId);
  // A network given by name is resolved like Heat's client plugin does.
  const port = await create(Port, 'port', { network: 'private', fixed_ips: [{ subnet: sub.physicalId, ip_address: '10.0.0.50' }] });
  assert.equal(port.attrs.fixed_ips, [{ subnet_id: sub.physicalId, ip_address: '10.0.0.50' }]);
  assert.is(port.attrs.network_id, net.physicalId);
  assert.equal(port.attrs.subnets, [sub.physicalId]);

  // Heat's update_allowed: the name changes in place, the network or cidr replaces.
  assert.not.ok(replaces(Net, { name: 'a' }, { name: 'b' }));
  assert.ok(replaces(Subnet, { network: 'n', cidr: '10.0.0.0/24' }, { network: 'n', cidr: '10.0.1.0/24' }));
  assert.not.ok(replaces(Subnet, { network: 'n', cidr: '10.0.0.0/24' }, { network: 'n', cidr: '10.0.0.0/24', dns_nameservers: ['8.8.8.8'] }));
  assert.ok(replaces(Port, { network: 'n' }, { network: 'm' }));
  assert.not.ok(replaces(Port, { network: 'n' }, { network: 'n', name: 'x', security_groups: [] }));

  const renamed = await Net.update({ ...net, oldProperties: net.properties, properties: { ...net.properties, name: 'renamed' } }, ctx());
  assert.is(renamed.physicalId, net.physicalId);
  assert.is(renamed.attrs.name, 'renamed');

  // Drift: renamed behind Kiln's back -> observe reports it; an update with the same properties repairs it.
  await w!.client.update('network', net.physicalId, { name: 'hand-edited' });
  const desired = { ...net, properties: { ...net.properties, name: 'renamed' } };
  const seen = await Net.observe(desired, ctx());
  assert.is(seen!.health.state, 'drifted');
  assert.equal(seen!.health.drifted, ['name']);
  assert.is(seen!.health.repair, 'update');
  await Net.update(desired, ctx());
  assert.is((await Net.observe(desired, ctx()))!.health.state, 'ok');

  // Unreachable port -> error with a replace repair.
  await w!.client.setFaults({ portUnreachable: 1 });
  const bad = await create(Port, 'badport', { network: net.physicalId });
  await w!.client.setFaults({ portUnreachable: 0 });
  const badSeen = await Port.observe(bad, ctx());
  assert.is(badSeen!.health.state, 'error');
  assert.is(badSeen!.health.repair, 'replace');
  assert.match(badSeen!.health.reason!, /unreachable/);

  for (const [t, r] of [[Port, bad], [Port, port], [Subnet, sub], [Net, net]] as const) {
    await t.delete(r, ctx());
    assert.is(await t.observe(r, ctx()), null, `${r.name} gone`);
  }
  // Deleting again is a no-op, not an error.
  await Net.delete(net, ctx());
  assert.is((await w!.client.inventory()).length, 0);
});

test('router, router interface, floating IP, security group', async ({ w }) => {
  const ext = await create(w!.type('OS::Neutron::Net'), 'ext', {});
  const net = await create(w!.type('OS::Neutron::Net'), 'inner', {});
  const sub = await create(w!.type('OS::Neutron::Subnet'), 'innersub', { network: net.physicalId, cidr: '192.168.5.0/24' });
  const Router = w!.type('OS::Neutron::Router');
  const router = await create(Router, 'router', { external_gateway_info: { network: ext.physicalId } });
  assert.equal(router.attrs.external_gateway_info, { network_id: ext.physicalId });
  const RI = w!.type('OS::Neutron::RouterInterface');
  const ri = await create(RI, 'ri', { router: router.physicalId, subnet: sub.physicalId });
  assert.is(ri.physicalId, `${router.physicalId}:subnet_id=${sub.physicalId}`);
  // A replayed create finds the interface instead of adding a second one.
  await RI.create(ri, ctx());
  assert.is((await w!.client.list('port', { device_id: router.physicalId })).length, 1);
  assert.ok(await RI.observe(ri, ctx()));

  const port = await create(w!.type('OS::Neutron::Port'), 'fport', { network: net.physicalId });
  const FIP = w!.type('OS::Neutron::FloatingIP');
  const fip = await create(FIP, 'fip', { floating_network: ext.physicalId, port_id: port.physicalId });
  assert.is(fip.attrs.port_id, port.physicalId);
  assert.ok(typeof fip.attrs.floating_ip_address === 'string');
  assert.not.ok(replaces(FIP, { floating_network: 'x', port_id: 'a' }, { floating_network: 'x', port_id: 'b' }));
  const moved = await FIP.update({ ...fip, properties: { ...fip.properties, port_id: null } }, ctx());
  assert.is(moved.attrs.port_id, null);

  const SG = w!.type('OS::Neutron::SecurityGroup');
  const sg = await create(SG, 'sg', { rules: [{ protocol: 'tcp', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '0.0.0.0/0' }] });
  const rules = (sg.attrs.show as { security_group_rules: { direction: string; port_range_min: number | null }[] }).security_group_rules;
  assert.is(rules.filter((r) => r.direction === 'ingress' && r.port_range_min === 22).length, 1);
  assert.is(rules.filter((r) => r.direction === 'egress').length, 2, 'default egress rules kept');
  const newRules = [{ protocol: 'tcp', port_range_min: 80, port_range_max: 80 }, { direction: 'egress', protocol: 'tcp' }];
  assert.not.ok(replaces(SG, { rules: [] }, { rules: newRules }));
  const upd = await SG.update({ ...sg, properties: { ...sg.properties, rules: newRules } }, ctx());
  const after = (upd.attrs.show as { security_group_rules: { direction: string; port_range_min: number | null }[] }).security_group_rules;
  assert.equal(after.map((r) => [r.direction, r.port_range_min]).sort(), [['egress', null], ['ingress', 80]]);
  assert.is((await SG.observe({ ...sg, properties: { ...sg.properties, rules: newRules } }, ctx()))!.health.state, 'ok');
  assert.is((await SG.observe(sg, ctx()))!.health.state, 'drifted');

  for (const [t, r] of [[SG, sg], [FIP, fip], [w!.type('OS::Neutron::Port'), port], [RI, ri], [Router, router]] as const) await t.delete(r, ctx());
  assert.is(await RI.observe(ri, ctx()), null);
  for (const r of [sub, net, ext]) await w!.type(r === sub ? 'OS::Neutron::Subnet' : 'OS::Neutron::Net').delete(r, ctx());
  assert.is((await w!.client.inventory()).length, 0);
});

test.run();
