import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError } from '@kiln/core';
import { type SimCloud, SimCloudClient } from '../src/index.js';
import { raw, startSim, statusTrail } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const test = suite<{ sim: SimCloud; client: SimCloudClient }>('lifecycle');

test.before(async (ctx) => {
  Object.assign(ctx, await startSim());
});
test.after(async (ctx) => {
  await ctx.sim.stop();
});

async function netWithSubnet(client: SimCloudClient, cidr = '10.0.0.0/24') {
  const net = await client.create('network', { name: 'private' });
  const subnet = await client.create('subnet', { network_id: net.id, cidr });
  return { net, subnet };
}

async function rejects(p: Promise<unknown>, code: string, status?: number): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, KilnError);
    assert.is((e as KilnError).code, code, (e as Error).message);
    if (status !== undefined) assert.is(((e as KilnError).detail as { status: number }).status, status);
    return e as KilnError;
  }
  throw new Error(`expected ${code}`);
}

test('flavors and images are listed and looked up by id or name', async ({ client, sim }) => {
  const flavors = await client.listFlavors();
  assert.ok(flavors.some((f) => f.name === 'm1.small' && f.vcpus === 1 && f.ram === 2048));
  const images = await client.listImages();
  assert.ok(images.some((i) => i.name === 'cirros-0.6.2-x86_64-disk'));
  assert.is((await raw(sim.url, 'GET', '/compute/v2.1/flavors/m1.tiny')).json.flavor.id, '1');
  const missing = await raw(sim.url, 'GET', '/compute/v2.1/flavors/nope');
  assert.is(missing.status, 404);
  assert.ok(missing.json.itemNotFound.message.includes('nope'));
});

test('server: 202 in BUILD, then ACTIVE with its port bound, addresses, metadata and tags; delete removes it and its port', async ({ client, sim }) => {
  const { net } = await netWithSubnet(client);
  const created = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server: { name: 'web', flavorRef: '2', imageRef: 'cirros-0.6.2-x86_64-disk', networks: [{ uuid: net.id }], metadata: { role: 'web' }, tags: ['a'] } });
  assert.is(created.status, 202);
  const id = created.json.server.id as string;
  assert.is(created.json.server.status, 'BUILD');
  const active = await waitFor('server ACTIVE', async () => {
    const s = await client.get('server', id);
    return s?.status === 'ACTIVE' ? s : undefined;
  });
  assert.equal(active.metadata, { role: 'web' });
  assert.equal(active.tags, ['a']);
  assert.is(active.flavor.vcpus, 1);
  assert.is(active['OS-EXT-STS:task_state'], null);
  const addrs = active.addresses.private!;
  assert.is(addrs.length, 1);
  assert.match(addrs[0]!.addr, /^10\.0\.0\.\d+$/);
  const ports = await client.list('port', { device_id: id });
  assert.is(ports.length, 1);
  assert.is(ports[0]!.status, 'ACTIVE');
  assert.is(ports[0]!.device_owner, 'compute:nova');

  assert.equal(await client.setMetadata('server', id, { role: 'db' }), { role: 'db' });
  assert.equal(await client.setTags('server', id, ['x', 'y']), ['x', 'y']);
  assert.is((await raw(sim.url, 'PUT', `/compute/v2.1/servers/${id}/tags/z`)).status, 201);
  assert.equal((await client.get('server', id))!.tags, ['x', 'y', 'z']);
  const renamed = await client.update('server', id, { name: 'web2' });
  assert.is(renamed.name, 'web2');
  await rejects(client.update('server', id, { flavorRef: '3' }), 'REQUEST_INVALID', 400);
  assert.ok((await client.list('server', { name: 'web2' })).some((s) => s.id === id));

  const extra = await client.attachInterface(id, { net_id: net.id });
  assert.is((await client.get('port', extra.port_id))!.status, 'ACTIVE');
  assert.is((await client.get('server', id))!.addresses.private!.length, 2);
  assert.ok(await client.detachInterface(id, extra.port_id));
  assert.is(await client.get('port', extra.port_id), undefined, 'a cloud-made interface port goes with the interface');

  const beforeReboot = (await client.stats()).seq;
  await client.serverAction(id, 'reboot');
  assert.equal(await statusTrail(client, id, beforeReboot, (t) => t.includes('ACTIVE')), ['REBOOT', 'ACTIVE']);

  assert.ok(await client.delete('server', id));
  await waitFor('server gone', async () => (await client.get('server', id)) === undefined);
  assert.is((await client.list('port', { device_id: id })).length, 0, 'implicit port deleted with the server');
  assert.not.ok(await client.delete('server', id), 'deleting again reports already gone');
  await client.delete('network', net.id);
});

test('server create refuses unknown flavors, images, networks and ports in Nova shapes', async ({ sim }) => {
  const bad = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server: { name: 'x', flavorRef: '99', imageRef: '1' } });
  assert.is(bad.status, 400);
  assert.ok(bad.json.badRequest.message.includes('Flavor 99'));
  const noNet = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server: { name: 'x', flavorRef: '1', imageRef: 'fedora-39', networks: [{ uuid: 'nope' }] } });
  assert.is(noNet.status, 400);
  const unwrapped = await raw(sim.url, 'POST', '/compute/v2.1/servers', { name: 'x' });
  assert.is(unwrapped.status, 400);
  const notJson = await fetch(sim.url + '/compute/v2.1/servers', { method: 'POST', body: '{' });
  assert.is(notJson.status, 400);
});

test('network: subnets, ports with addresses, routers with interfaces, floating IPs, security groups and in-use conflicts', async ({ client, sim }) => {
  const { net, subnet } = await netWithSubnet(client, '192.168.7.0/24');
  assert.is(subnet.gateway_ip, '192.168.7.1');
  await waitFor('network ACTIVE', async () => (await client.get('network', net.id))?.status === 'ACTIVE');
  assert.equal((await client.get('network', net.id))!.subnets, [subnet.id]);
  const sg = await client.create('security_group', { name: 'web' });
  assert.is(sg.security_group_rules.length, 2, 'default egress rules');
  const rule = await client.addSecurityGroupRule({ security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 80, port_range_max: 80 });
  assert.is((await client.get('security_group', sg.id))!.security_group_rules.length, 3);
  assert.ok(await client.deleteSecurityGroupRule(rule.id));
  const port = await client.create('port', { network_id: net.id, security_groups: [sg.id] });
  assert.is(port.status, 'DOWN', 'an unbound port is DOWN');
  assert.is(port.fixed_ips[0]!.subnet_id, subnet.id);
  assert.match(port.fixed_ips[0]!.ip_address, /^192\.168\.7\./);

  assert.is((await client.update('port', port.id, { name: 'p1' })).name, 'p1');
  await rejects(client.update('port', port.id, { network_id: 'other' }), 'REQUEST_INVALID', 400);
  const ext = await client.create('network', { name: 'public', 'router:external': true });
  await client.create('subnet', { network_id: ext.id, cidr: '172.24.4.0/24' });
  const router = await client.create('router', { name: 'r1', external_gateway_info: { network_id: ext.id } });
  const itf = await client.addRouterInterface(router.id, { subnet_id: subnet.id });
  const itfPort = await client.get('port', itf.port_id);
  assert.is(itfPort!.device_owner, 'network:router_interface');
  assert.is(itfPort!.fixed_ips[0]!.ip_address, '192.168.7.1', 'the interface takes the gateway address');
  const inUse = await raw(sim.url, 'DELETE', `/network/v2.0/routers/${router.id}`);
  assert.is(inUse.status, 409);
  assert.is(inUse.json.NeutronError.type, 'RouterInUse');

  const fip = await client.create('floatingip', { floating_network_id: ext.id, port_id: port.id });
  assert.is(fip.status, 'ACTIVE');
  assert.is(fip.fixed_ip_address, port.fixed_ips[0]!.ip_address);
  const moved = await client.update('floatingip', fip.id, { port_id: null });
  assert.is(moved.status, 'DOWN');

  await rejects(client.delete('network', net.id), 'CONFLICT', 409);
  await rejects(client.delete('security_group', sg.id), 'CONFLICT', 409);
  assert.ok(await client.removeRouterInterface(router.id, { subnet_id: subnet.id }));
  assert.is(await client.get('port', itf.port_id), undefined, 'the interface port went with the interface');
  assert.ok(await client.delete('port', port.id));
  assert.ok(await client.delete('network', net.id));
  assert.is(await client.get('subnet', subnet.id), undefined, 'subnets go with their network');
  for (const [k, id] of [['router', router.id], ['floatingip', fip.id], ['security_group', sg.id]] as const) assert.ok(await client.delete(k, id));
  const missing = await raw(sim.url, 'GET', `/network/v2.0/ports/${port.id}`);
  assert.is(missing.status, 404);
  assert.is(missing.json.NeutronError.type, 'PortNotFound');
});

test('volume: creating -> available, attach -> in-use, detach -> available; an attached volume cannot be deleted', async ({ client, sim }) => {
  const server = await client.create('server', { name: 'vm', flavorRef: '1', imageRef: 'cirros-0.6.2-x86_64-disk' });
  const created = await raw(sim.url, 'POST', '/volume/v3/volumes', { volume: { size: 10, name: 'data', metadata: { a: 'b' } } });
  assert.is(created.status, 202);
  const vol = created.json.volume;
  assert.is(vol.status, 'creating');
  await waitFor('volume available', async () => (await client.get('volume', vol.id))?.status === 'available');
  await waitFor('server ACTIVE', async () => (await client.get('server', server.id))?.status === 'ACTIVE');
  const beforeAttach = (await client.stats()).seq;
  const att = await client.attachVolume(server.id, vol.id);
  assert.is(att.serverId, server.id);
  assert.equal(await statusTrail(client, vol.id, beforeAttach, (t) => t.includes('in-use')), ['attaching', 'in-use']);
  const inUse = (await client.get('volume', vol.id))!;
  assert.is(inUse.attachments[0]!.server_id, server.id);
  assert.equal((await client.get('server', server.id))!['os-extended-volumes:volumes_attached'], [{ id: vol.id, delete_on_termination: false }]);
  const refused = await raw(sim.url, 'DELETE', `/volume/v3/volumes/${vol.id}`);
  assert.is(refused.status, 400);
  assert.ok(refused.json.badRequest.message.includes('Volume status'));
  const beforeDetach = (await client.stats()).seq;
  assert.ok(await client.detachVolume(server.id, vol.id));
  assert.equal(await statusTrail(client, vol.id, beforeDetach, (t) => t.includes('available')), ['detaching', 'available']);
  await waitFor('available again', async () => {
    const v = await client.get('volume', vol.id);
    return v?.status === 'available' && v.attachments.length === 0;
  });
  await rejects(client.update('volume', vol.id, { size: 50 }), 'REQUEST_INVALID', 400);
  assert.is((await client.update('volume', vol.id, { name: 'data2' })).name, 'data2');
  await client.extendVolume(vol.id, 20);
  assert.is((await client.get('volume', vol.id))!.size, 20);
  await rejects(client.extendVolume(vol.id, 5), 'REQUEST_INVALID', 400);
  // Cinder's own path form, with the project in the path.
  assert.is((await raw(sim.url, 'GET', `/volume/v3/demo/volumes/${vol.id}`)).json.volume.id, vol.id);
  assert.ok(await client.delete('volume', vol.id));
  await waitFor('volume gone', async () => (await client.get('volume', vol.id)) === undefined);
  await client.delete('server', server.id);
});

test('load balancer: PENDING_CREATE -> ACTIVE/ONLINE for LB, listener, pool, member, health monitor; immutable while pending; cascade delete', async ({ client, sim }) => {
  const { net, subnet } = await netWithSubnet(client, '10.9.0.0/24');
  const lb = await client.create('loadbalancer', { name: 'lb', vip_subnet_id: subnet.id });
  assert.is(lb.provisioning_status, 'PENDING_CREATE');
  assert.is(lb.operating_status, 'OFFLINE');
  assert.match(lb.vip_address, /^10\.9\.0\./);
  const activeLb = async (kind: 'loadbalancer' | 'listener' | 'pool' | 'healthmonitor', id: string) =>
    waitFor(`${kind} ACTIVE`, async () => {
      const o = await client.get(kind, id);
      return o?.provisioning_status === 'ACTIVE' && o.operating_status === 'ONLINE';
    });
  await activeLb('loadbalancer', lb.id);
  // Octavia objects are immutable while PENDING_*.
  await client.forceStatus(lb.id, { status: 'PENDING_UPDATE' });
  const busy = await raw(sim.url, 'PUT', `/load-balancer/v2/lbaas/loadbalancers/${lb.id}`, { loadbalancer: { name: 'x' } });
  assert.is(busy.status, 409);
  assert.is(busy.json.faultcode, 'Client');
  await client.forceStatus(lb.id, { status: 'ACTIVE', operating_status: 'ONLINE' });
  assert.is((await client.update('loadbalancer', lb.id, { name: 'renamed' })).name, 'renamed');
  const listener = await client.create('listener', { loadbalancer_id: lb.id, protocol: 'HTTP', protocol_port: 80 });
  await activeLb('listener', listener.id);
  const pool = await client.create('pool', { listener_id: listener.id, protocol: 'HTTP', lb_algorithm: 'ROUND_ROBIN' });
  assert.is(pool.loadbalancer_id, lb.id);
  await activeLb('pool', pool.id);
  const member = await client.create('member', { pool_id: pool.id, address: '10.9.0.10', protocol_port: 80, subnet_id: subnet.id });
  await waitFor('member ONLINE', async () => (await client.get('member', member.id, { pool: pool.id }))?.operating_status === 'ONLINE');
  const hm = await client.create('healthmonitor', { pool_id: pool.id, type: 'HTTP', delay: 5, timeout: 3, max_retries: 3 });
  await activeLb('healthmonitor', hm.id);
  const p = (await client.get('pool', pool.id))!;
  assert.equal(p.members, [{ id: member.id }]);
  assert.is(p.healthmonitor_id, hm.id);
  assert.is((await client.get('listener', listener.id))!.default_pool_id, pool.id);
  assert.equal((await client.get('loadbalancer', lb.id))!.listeners, [{ id: listener.id }]);
  assert.is((await client.list('member', {}, { pool: pool.id })).length, 1);
  await rejects(client.create('healthmonitor', { pool_id: pool.id, type: 'HTTP', delay: 5, timeout: 3, max_retries: 3 }), 'CONFLICT');

  const refused = await raw(sim.url, 'DELETE', `/load-balancer/v2/lbaas/loadbalancers/${lb.id}`);
  assert.is(refused.status, 400);
  const beforeDelete = (await client.stats()).seq;
  assert.ok(await client.delete('loadbalancer', lb.id, { cascade: true }));
  assert.equal(await statusTrail(client, lb.id, beforeDelete, (t) => t.includes('deleted')), ['PENDING_DELETE', 'deleted']);
  assert.is(await client.get('member', member.id, { pool: pool.id }), undefined);
  assert.is((await client.inventory({ kind: 'healthmonitor' })).length, 0);
  await client.delete('network', net.id);
});

test('quotas: Nova 403, Neutron 409, Cinder 413, and usage is reported; freed capacity can be reused', async ({ client, sim }) => {
  const t = client.forTenant('small');
  await client.setQuotas({ tenants: { small: { instances: 2, cores: 3, volumes: 1, networks: 1 } } });
  const a = await t.create('server', { name: 'a', flavorRef: '1', imageRef: 'fedora-39' });
  await t.create('server', { name: 'b', flavorRef: '1', imageRef: 'fedora-39' });
  const over = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server: { name: 'c', flavorRef: '1', imageRef: 'fedora-39' } }, { 'x-project-id': 'small' });
  assert.is(over.status, 403);
  assert.match(over.json.forbidden.message, /Quota exceeded for instances/);
  await rejects(t.create('server', { name: 'c', flavorRef: '1', imageRef: 'fedora-39' }), 'QUOTA_EXCEEDED', 403);
  assert.equal((await t.quotaUsage()).instances, { limit: 2, in_use: 2 });
  await t.create('network', { name: 'n' });
  await rejects(t.create('network', { name: 'n2' }), 'QUOTA_EXCEEDED', 409);
  await t.create('volume', { size: 1 });
  await rejects(t.create('volume', { size: 1 }), 'QUOTA_EXCEEDED', 413);
  // Another tenant is not limited, and cannot see the small tenant's servers.
  await client.create('server', { name: 'other', flavorRef: '1', imageRef: 'fedora-39' });
  assert.is(await client.get('server', a.id), undefined);
  await t.delete('server', a.id);
  await waitFor('quota freed', async () => (await t.quotaUsage()).instances!.in_use === 1);
  const c = await t.create('server', { name: 'c', flavorRef: '1', imageRef: 'fedora-39' });
  assert.ok(c.id);
  await rejects(t.create('server', { name: 'd', flavorRef: '3', imageRef: 'fedora-39' }), 'QUOTA_EXCEEDED', 403);
  await client.setQuotas({});
  const bad = await raw(sim.url, 'PUT', '/control/quotas', { default: { instancez: 1 } });
  assert.is(bad.status, 400);
  assert.is(bad.json.error.path, 'quotas.default.instancez');
  assert.is((await raw(sim.url, 'PUT', '/control/rate-limits', { perSecond: -1 })).status, 400);
});

test('lists filter by indexed and plain fields, tags and tenant, and page in creation order', async ({ client, sim }) => {
  const a = await client.create('network', { name: 'list-a' });
  const b = await client.create('network', { name: 'list-b' });
  const onA = [];
  for (let i = 0; i < 3; i++) onA.push(await client.create('port', { network_id: a.id, name: `pa${i}`, tags: i === 1 ? ['odd'] : [] }));
  const onB = await client.create('port', { network_id: b.id, name: 'pa1' });
  const ids = (docs: { id: string }[]) => docs.map((d) => d.id);
  assert.equal(ids(await client.list('port', { network_id: a.id })), ids(onA));
  assert.equal(ids(await client.list('port', { network_id: a.id, name: 'pa1' })), [onA[1]!.id]);
  assert.equal(ids(await client.list('port', { name: 'pa1' })), [onA[1]!.id, onB.id]);
  assert.equal(ids(await client.list('port', { network_id: 'no-such-network' })), []);
  assert.equal(ids(await client.list('port', { id: onB.id })), [onB.id]);
  assert.equal(ids((await raw(sim.url, 'GET', `/network/v2.0/ports?network_id=${a.id}&tags=odd`)).json.ports), [onA[1]!.id]);
  const page1 = (await raw(sim.url, 'GET', `/network/v2.0/ports?network_id=${a.id}&limit=2`)).json.ports;
  assert.equal(ids(page1), ids(onA.slice(0, 2)));
  const page2 = (await raw(sim.url, 'GET', `/network/v2.0/ports?network_id=${a.id}&limit=2&marker=${onA[1]!.id}`)).json.ports;
  assert.equal(ids(page2), [onA[2]!.id]);
  // Another tenant sees none of them, by index or not.
  const other = new SimCloudClient(sim.url, { tenant: 'other' });
  assert.equal(await other.list('port', { network_id: a.id }), []);
  assert.equal(await other.list('port', { name: 'pa1' }), []);
});

test.run();
