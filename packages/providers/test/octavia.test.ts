import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ctx, create, props, replaces, startWorld, type World } from './helpers.js';

const test = suite<{ w?: World }>('octavia types against the sim cloud');
test.before(async (c) => {
  c.w = await startWorld();
});
test.after(async (c) => {
  await c.w?.stop();
});

test('load balancer, listener, pool, member, health monitor: create, update, member down, delete', async ({ w }) => {
  const net = await create(w!.type('OS::Neutron::Net'), 'net', {});
  const sub = await create(w!.type('OS::Neutron::Subnet'), 'sub', { network: net.physicalId, cidr: '10.9.0.0/24' });
  const LB = w!.type('OS::Octavia::LoadBalancer');
  const Listener = w!.type('OS::Octavia::Listener');
  const Pool = w!.type('OS::Octavia::Pool');
  const Member = w!.type('OS::Octavia::PoolMember');
  const HM = w!.type('OS::Octavia::HealthMonitor');

  const lb = await create(LB, 'lb', { vip_subnet: sub.physicalId });
  assert.is((lb.attrs.show as { provisioning_status: string }).provisioning_status, 'ACTIVE');
  assert.match(lb.attrs.vip_address as string, /^10\.9\.0\./);
  const listener = await create(Listener, 'listener', { loadbalancer: lb.physicalId, protocol: 'HTTP', protocol_port: 80 });
  assert.equal(listener.attrs.loadbalancers, [{ id: lb.physicalId }]);
  const pool = await create(Pool, 'pool', { listener: listener.physicalId, lb_algorithm: 'ROUND_ROBIN', protocol: 'HTTP' });
  const member = await create(Member, 'member', { pool: pool.physicalId, address: '10.9.0.10', protocol_port: 8080 });
  assert.is(member.attrs.pool_id, pool.physicalId);
  const hm = await create(HM, 'hm', { pool: pool.physicalId, type: 'HTTP', delay: 5, timeout: 3, max_retries: 3 });
  assert.equal(hm.attrs.pools, [{ id: pool.physicalId }]);

  assert.ok(replaces(Member, { pool: 'p', address: 'a', protocol_port: 1 }, { pool: 'p', address: 'b', protocol_port: 1 }));
  assert.not.ok(replaces(Member, { pool: 'p', address: 'a', protocol_port: 1 }, { pool: 'p', address: 'a', protocol_port: 1, weight: 5 }));
  assert.ok(replaces(Listener, { loadbalancer: 'l', protocol: 'HTTP', protocol_port: 80 }, { loadbalancer: 'l', protocol: 'HTTP', protocol_port: 81 }));
  assert.not.ok(replaces(Pool, { listener: 'l', lb_algorithm: 'ROUND_ROBIN', protocol: 'HTTP' }, { listener: 'l', lb_algorithm: 'LEAST_CONNECTIONS', protocol: 'HTTP' }));

  const heavier = { ...member, properties: props(Member, { pool: pool.physicalId, address: '10.9.0.10', protocol_port: 8080, weight: 5 }) };
  const r = await Member.update(heavier, ctx());
  assert.is((r.attrs.show as { weight: number }).weight, 5);
  const p2 = await Pool.update({ ...pool, properties: props(Pool, { listener: listener.physicalId, lb_algorithm: 'LEAST_CONNECTIONS', protocol: 'HTTP' }) }, ctx());
  assert.is(p2.attrs.lb_algorithm, 'LEAST_CONNECTIONS');
  const hm2 = await HM.update({ ...hm, properties: props(HM, { pool: pool.physicalId, type: 'HTTP', delay: 10, timeout: 3, max_retries: 3 }) }, ctx());
  assert.is((hm2.attrs.show as { delay: number }).delay, 10);

  // A member that stops forwarding is an error the engine can repair by replacing it.
  assert.is((await Member.observe(heavier, ctx()))!.health.state, 'ok');
  await w!.client.forceStatus(member.physicalId, { operating_status: 'ERROR' });
  const down = await Member.observe(heavier, ctx());
  assert.is(down!.health.state, 'error');
  assert.match(down!.health.reason!, /not forwarding/);

  for (const [t, x] of [[HM, hm], [Member, heavier], [Pool, pool], [Listener, listener], [LB, lb]] as const) {
    await t.delete(x, ctx());
    assert.is(await t.observe(x, ctx()), null, `${x.name} gone`);
  }
  await w!.type('OS::Neutron::Subnet').delete(sub, ctx());
  await w!.type('OS::Neutron::Net').delete(net, ctx());
  assert.is((await w!.client.inventory()).length, 0);
});

test.run();
