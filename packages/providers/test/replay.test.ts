/**
 * Crash-replay of the actions that are not objects of their own (volume attachments, router
 * interfaces) and of pool members: after an engine dies mid-task, the new owner re-runs the task
 * under the same idempotency key, at any point of the first run. The replay must find what the
 * first run did and wait for it, never fail or do it twice.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '@kiln/natsd';
import { classifyCloudError } from '../src/index.js';
import { FAST, create, ctx, props, rejection, request, startWorld, type World } from './helpers.js';

// Long enough that a transition is still in flight when the test looks, even on a loaded machine.
const SLOW = { dist: 'fixed', ms: 2_500 } as const;

const test = suite<{ w?: World; net?: string }>('crash-replay of attachments, router interfaces and pool members');
test.before(async (c) => {
  c.w = await startWorld();
  c.net = (await create(c.w.type('OS::Neutron::Net'), 'net', {})).physicalId;
});
test.after(async (c) => {
  await c.w?.stop();
});
test.after.each(async ({ w }) => {
  await w!.client.setLatency({ attach: FAST!.attach!, detach: FAST!.detach! });
  await w!.client.setFaults({ apiErrorAfterActionShare: 0 });
});

const server = async (w: World, net: string, name: string, inc = 1) =>
  (await create(w.type('OS::Nova::Server'), name, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] }, inc)).physicalId;
const volume = async (w: World, name: string) => (await create(w.type('OS::Cinder::Volume'), name, { size: 1 })).physicalId;
const status = async (w: World, id: string) => (await w.client.get('volume', id))!;
const attachedTo = async (w: World, id: string) => (await status(w, id)).attachments.map((a) => a.server_id);

test('attach replayed after a crash while attaching, once in use, and after a 500 answered to an attach that happened: one attachment', async ({ w, net }) => {
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const vm = await server(w!, net!, 'vm-a');
  const vol = await volume(w!, 'vol-a');
  const req = request('att-a', props(Att, { instance_uuid: vm, volume_id: vol }));
  // The first run dies after its attach call, while the volume is attaching.
  await w!.client.setLatency({ attach: SLOW });
  const ac = new AbortController();
  const first = rejection(Att.create(req, ctx(ac.signal)));
  await waitFor('attaching', async () => (await status(w!, vol)).status === 'attaching');
  ac.abort();
  assert.is(classifyCloudError(await first).code, 'ABORTED');
  assert.is((await Att.observe({ ...req, physicalId: `${vm}:${vol}` }, ctx()))!.health.state, 'pending', 'an attach in flight is seen as pending');
  // Its replay is refused by the cloud (the volume is not `available`) and waits for that attach.
  const a = await Att.create(req, ctx());
  assert.is(a.physicalId, `${vm}:${vol}`);
  assert.is((await status(w!, vol)).status, 'in-use');
  assert.equal(await attachedTo(w!, vol), [vm]);
  // Replayed once more, in use: the same.
  assert.is((await Att.create(req, ctx())).physicalId, a.physicalId);
  assert.equal(await attachedTo(w!, vol), [vm]);

  // The cloud attaches but answers 500: the retried call is refused and finds the attach.
  const vol2 = await volume(w!, 'vol-a2');
  await w!.client.setFaults({ apiErrorAfterActionShare: 1 });
  const b = await Att.create(request('att-a2', props(Att, { instance_uuid: vm, volume_id: vol2 })), ctx());
  assert.is(b.physicalId, `${vm}:${vol2}`);
  assert.is((await status(w!, vol2)).status, 'in-use');
  assert.equal(await attachedTo(w!, vol2), [vm]);

  // Two runs of one task at once (the old owner had not stopped yet): both wait for the one attach.
  const vol3 = await volume(w!, 'vol-a3');
  const twice = request('att-a3', props(Att, { instance_uuid: vm, volume_id: vol3 }));
  const [x, y] = await Promise.all([Att.create(twice, ctx()), Att.create(twice, ctx())]);
  assert.is(x.physicalId, y.physicalId);
  assert.equal(await attachedTo(w!, vol3), [vm]);
});

test('attach replayed while a detach of the pair is in flight waits for it and attaches again', async ({ w, net }) => {
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const vm = await server(w!, net!, 'vm-b');
  const vol = await volume(w!, 'vol-b');
  const req = request('att-b', props(Att, { instance_uuid: vm, volume_id: vol }));
  await Att.create(req, ctx());
  await w!.client.setLatency({ detach: SLOW });
  await w!.client.detachVolume(vm, vol);
  assert.is((await status(w!, vol)).status, 'detaching');
  const a = await Att.create(req, ctx());
  assert.is(a.physicalId, `${vm}:${vol}`);
  assert.is((await status(w!, vol)).status, 'in-use');
  assert.equal(await attachedTo(w!, vol), [vm]);
});

test('attach replayed after the server was replaced: the attach the first run made to the old server moves to the new one', async ({ w, net }) => {
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  // Two incarnations of one server resource (keys resource/s1/vm-c#1 and #2).
  const old = await server(w!, net!, 'vm-c', 1);
  const fresh = await server(w!, net!, 'vm-c', 2);
  const vol = await volume(w!, 'vol-c');
  // The first run attached to the old server and died while the volume was attaching.
  await w!.client.setLatency({ attach: SLOW });
  await w!.client.attachVolume(old, vol);
  assert.is((await status(w!, vol)).status, 'attaching');
  await w!.client.setLatency({ attach: FAST!.attach! });
  const a = await Att.create(request('att-c', props(Att, { instance_uuid: fresh, volume_id: vol })), ctx());
  assert.is(a.physicalId, `${fresh}:${vol}`);
  assert.is((await status(w!, vol)).status, 'in-use');
  assert.equal(await attachedTo(w!, vol), [fresh]);
  // A stale run for the old server never takes the volume back from the newer incarnation.
  const stale = classifyCloudError(await rejection(Att.create(request('att-c', props(Att, { instance_uuid: old, volume_id: vol })), ctx())));
  assert.is(stale.code, 'REQUEST_INVALID');
  assert.match(stale.message, `in use by server ${fresh}`);
  assert.equal(await attachedTo(w!, vol), [fresh]);
});

test("a volume in use by another resource's server is refused (REQUEST_INVALID naming the holder), not taken", async ({ w, net }) => {
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const mine = await server(w!, net!, 'vm-d');
  const theirs = await server(w!, net!, 'other-d');
  const vol = await volume(w!, 'vol-d');
  await w!.client.attachVolume(theirs, vol);
  const e = await rejection(Att.create(request('att-d', props(Att, { instance_uuid: mine, volume_id: vol })), ctx()));
  const c = classifyCloudError(e);
  assert.is(c.code, 'REQUEST_INVALID');
  assert.not.ok(c.transient);
  assert.match(c.message, `in use by server ${theirs}`);
  await waitFor('still theirs', async () => (await status(w!, vol)).status === 'in-use');
  assert.equal(await attachedTo(w!, vol), [theirs]);
});

test('detach replayed: delete while detaching, after detached, after a 500 to a detach that happened; update replayed after its detach and after its attach', async ({ w, net }) => {
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const vm = await server(w!, net!, 'vm-e');
  const vm2 = await server(w!, net!, 'vm-e2');
  const vol = await volume(w!, 'vol-e');
  const a = await create(Att, 'att-e', { instance_uuid: vm, volume_id: vol });

  // Delete: the first run's detach is still in flight.
  await w!.client.setLatency({ detach: SLOW });
  await w!.client.detachVolume(vm, vol);
  await Att.delete(a, ctx());
  assert.is((await status(w!, vol)).status, 'available');
  // ... and once detached.
  await Att.delete(a, ctx());
  assert.is((await status(w!, vol)).status, 'available');
  // The cloud detaches but answers 500: the retried call finds it detaching or detached.
  await w!.client.setLatency({ detach: FAST!.detach! });
  await Att.create(a, ctx());
  await w!.client.setFaults({ apiErrorAfterActionShare: 1 });
  await Att.delete(a, ctx());
  await w!.client.setFaults({ apiErrorAfterActionShare: 0 });
  assert.is((await status(w!, vol)).status, 'available');
  assert.equal(await attachedTo(w!, vol), []);

  // Update to another server, replayed after its detach from the old one.
  await Att.create(a, ctx());
  const moved = { ...a, oldProperties: a.properties, properties: props(Att, { instance_uuid: vm2, volume_id: vol }) };
  await w!.client.detachVolume(vm, vol);
  await waitFor('detached', async () => (await status(w!, vol)).status === 'available');
  assert.is((await Att.update(moved, ctx())).physicalId, `${vm2}:${vol}`);
  assert.equal(await attachedTo(w!, vol), [vm2]);
  // ... and after its attach to the new one (still attaching): the old pair is gone, the new one waited for.
  await Att.update({ ...moved, physicalId: `${vm2}:${vol}`, oldProperties: moved.properties, properties: a.properties }, ctx());
  await w!.client.detachVolume(vm, vol);
  await waitFor('detached again', async () => (await status(w!, vol)).status === 'available');
  await w!.client.setLatency({ attach: SLOW });
  await w!.client.attachVolume(vm2, vol);
  assert.is((await Att.update(moved, ctx())).physicalId, `${vm2}:${vol}`);
  assert.is((await status(w!, vol)).status, 'in-use');
  assert.equal(await attachedTo(w!, vol), [vm2]);
  // An update whose old server is gone (replaced and deleted) only attaches the new pair.
  const orphaned = { ...moved, physicalId: `00000000-0000-4000-8000-00000000000e:${vol}` };
  assert.is((await Att.update(orphaned, ctx())).physicalId, `${vm2}:${vol}`);
  assert.equal(await attachedTo(w!, vol), [vm2]);
});

test('router interface: an add answered 500 after it happened, and a replay racing itself, leave one interface; a replayed remove is a no-op', async ({ w }) => {
  const sub = await create(w!.type('OS::Neutron::Subnet'), 'ri-sub', { network: (await create(w!.type('OS::Neutron::Net'), 'ri-net', {})).physicalId, cidr: '192.168.7.0/24' });
  const router = await create(w!.type('OS::Neutron::Router'), 'ri-router', {});
  const RI = w!.type('OS::Neutron::RouterInterface');
  const req = request('ri', props(RI, { router: router.physicalId, subnet: sub.physicalId }));
  const routerPorts = async () => (await w!.client.list('port', { device_id: router.physicalId })).length;
  await w!.client.setFaults({ apiErrorAfterActionShare: 1 });
  const ri = await RI.create(req, ctx());
  await w!.client.setFaults({ apiErrorAfterActionShare: 0 });
  assert.is(ri.physicalId, `${router.physicalId}:subnet_id=${sub.physicalId}`);
  assert.is(await routerPorts(), 1);
  await RI.delete({ ...req, physicalId: ri.physicalId! }, ctx());
  await RI.delete({ ...req, physicalId: ri.physicalId! }, ctx());
  assert.is(await routerPorts(), 0);
  // Two runs of one task at once (the old owner had not stopped yet): both succeed, one port.
  const [x, y] = await Promise.all([RI.create(req, ctx()), RI.create(req, ctx())]);
  assert.is(x.physicalId, y.physicalId);
  assert.is(await routerPorts(), 1);

  // By port: the port already bound to the router (409 PortInUse on a second add) is the interface.
  const port = await create(w!.type('OS::Neutron::Port'), 'ri-port', { network: sub.properties.network });
  const byPort = request('ri-port-if', props(RI, { router: router.physicalId, port: port.physicalId }));
  const [p, q] = await Promise.all([RI.create(byPort, ctx()), RI.create(byPort, ctx())]);
  assert.is(p.physicalId, `${router.physicalId}:port_id=${port.physicalId}`);
  assert.is(q.physicalId, p.physicalId);
  assert.is(await routerPorts(), 2);
});

test('pool member: a create that died mid-provisioning replays to the same member; a replayed delete of a gone member succeeds', async ({ w }) => {
  const sub = await create(w!.type('OS::Neutron::Subnet'), 'lb-sub', { network: (await create(w!.type('OS::Neutron::Net'), 'lb-net', {})).physicalId, cidr: '10.20.0.0/24' });
  const lb = await create(w!.type('OS::Octavia::LoadBalancer'), 'lb', { vip_subnet: sub.physicalId });
  const listener = await create(w!.type('OS::Octavia::Listener'), 'listener', { loadbalancer: lb.physicalId, protocol: 'HTTP', protocol_port: 80 });
  const pool = await create(w!.type('OS::Octavia::Pool'), 'pool', { listener: listener.physicalId, lb_algorithm: 'ROUND_ROBIN', protocol: 'HTTP' });
  const Member = w!.type('OS::Octavia::PoolMember');
  const req = request('member', props(Member, { pool: pool.physicalId, address: '10.20.0.5', protocol_port: 8080 }));
  const members = async () => (await w!.client.inventory({ kind: 'member' })).length;
  await w!.client.setLatency({ member: SLOW });
  const ac = new AbortController();
  const first = Member.create(req, ctx(ac.signal));
  await waitFor('member created', async () => (await members()) === 1);
  ac.abort();
  assert.is(classifyCloudError(await rejection(first)).code, 'ABORTED');
  await w!.client.setLatency({ member: FAST!.default! });
  const m = await Member.create(req, ctx());
  assert.is((await Member.create(req, ctx())).physicalId, m.physicalId);
  assert.is(await members(), 1);
  const made = { ...req, physicalId: m.physicalId!, attrs: m.attrs };
  await Member.delete(made, ctx());
  await Member.delete(made, ctx());
  assert.is(await members(), 0);
});

test.run();
