import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyCloudError } from '../src/index.js';
import { ctx, create, props, rejection, replaces, startWorld, type World } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const test = suite<{ w?: World; server?: string }>('cinder types against the sim cloud');
test.before(async (c) => {
  c.w = await startWorld();
  const net = await create(c.w.type('OS::Neutron::Net'), 'net', {});
  c.server = (await create(c.w.type('OS::Nova::Server'), 'vm', { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net.physicalId }] })).physicalId;
});
test.after(async (c) => {
  await c.w?.stop();
});

test('volume: create waits for available; metadata and size update in place; shrink refused; type change replaces', async ({ w }) => {
  const Volume = w!.type('OS::Cinder::Volume');
  const v = await create(Volume, 'vol', { size: 1, metadata: { tier: 'gold' } });
  assert.is(v.attrs.status, 'available');
  assert.is(v.attrs.size, 1);
  assert.equal(v.attrs.metadata, { tier: 'gold' });
  assert.not.ok(replaces(Volume, { size: 1 }, { size: 2, name: 'x', metadata: { a: 1 } }));
  assert.ok(replaces(Volume, { size: 1 }, { size: 1, volume_type: 'ssd' }));
  assert.ok(replaces(Volume, { size: 1 }, { size: 1, availability_zone: 'az2' }));
  const grown = { ...v, properties: props(Volume, { size: 3, metadata: { tier: 'silver' } }) };
  const r = await Volume.update(grown, ctx());
  assert.is(r.attrs.size, 3);
  assert.equal(r.attrs.metadata, { tier: 'silver' });
  const e = await rejection(Volume.update({ ...v, properties: props(Volume, { size: 2 }) }, ctx()));
  assert.is(classifyCloudError(e).code, 'PROPERTY_INVALID');
  assert.not.ok(classifyCloudError(e).transient);
  await Volume.delete(v, ctx());
  assert.is(await Volume.observe(v, ctx()), null);
});

test('volume attachment: attach, extend while attached, detach seen as gone, offline volume is an error, delete detaches', async ({ w, server }) => {
  const Volume = w!.type('OS::Cinder::Volume');
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const v = await create(Volume, 'data', { size: 1 });
  const a = await create(Att, 'att', { instance_uuid: server, volume_id: v.physicalId, mountpoint: '/dev/vdb' });
  assert.is(a.physicalId, `${server}:${v.physicalId}`);
  assert.is(a.attrs.device, '/dev/vdb');
  assert.is((await w!.client.get('volume', v.physicalId))!.status, 'in-use');
  // A replayed attach does not attach twice.
  await Att.create(a, ctx());
  assert.is((await w!.client.get('volume', v.physicalId))!.attachments.length, 1);
  assert.is((await Att.observe(a, ctx()))!.health.state, 'ok');

  // Growing an attached volume: detach, extend, attach again.
  const grown = await Volume.update({ ...v, properties: props(Volume, { size: 2 }) }, ctx());
  assert.is(grown.attrs.size, 2);
  assert.is(grown.attrs.status, 'in-use');

  // Detached by hand: the attachment is gone (recreating it reattaches).
  await w!.client.detachVolume(server!, v.physicalId);
  await waitFor('detached', async () => (await Att.observe(a, ctx())) === null);
  const again = await Att.create(a, ctx());
  assert.is(again.physicalId, a.physicalId);

  await w!.client.forceStatus(v.physicalId, { status: 'error' });
  const off = await Att.observe(a, ctx());
  assert.is(off!.health.state, 'error');
  assert.match(off!.health.reason!, /offline/);
  await w!.client.forceStatus(v.physicalId, { status: 'in-use' });

  await Att.delete(a, ctx());
  assert.is(await Att.observe(a, ctx()), null);
  assert.is((await w!.client.get('volume', v.physicalId))!.status, 'available');
  await Volume.delete(v, ctx());
});

test('attaching to a server that vanished waits for it (transient DEPENDENCY_GONE); a volume that does not exist is RESOURCE_NOT_FOUND', async ({ w }) => {
  const Volume = w!.type('OS::Cinder::Volume');
  const Att = w!.type('OS::Cinder::VolumeAttachment');
  const v = await create(Volume, 'spare', { size: 1 });
  const gone = classifyCloudError(await rejection(create(Att, 'att-gone', { instance_uuid: '00000000-0000-4000-8000-000000000001', volume_id: v.physicalId })));
  assert.is(gone.code, 'DEPENDENCY_GONE');
  assert.ok(gone.transient, 'the server actor recreates the server; the attachment waits');
  const missing = classifyCloudError(await rejection(create(Att, 'att-none', { instance_uuid: '00000000-0000-4000-8000-000000000001', volume_id: '00000000-0000-4000-8000-000000000002' })));
  assert.is(missing.code, 'RESOURCE_NOT_FOUND');
  assert.not.ok(missing.transient);
  assert.is((await w!.client.get('volume', v.physicalId))!.status, 'available');
  await Volume.delete(v, ctx());
});

test('volume that fails to create: RESOURCE_ERROR, removed', async ({ w }) => {
  const Volume = w!.type('OS::Cinder::Volume');
  await w!.client.setFaults({ volumeCreateError: 1 });
  const e = await rejection(create(Volume, 'broken', { size: 1 }));
  await w!.client.setFaults({ volumeCreateError: 0 });
  assert.is(classifyCloudError(e).code, 'RESOURCE_ERROR');
  assert.ok(classifyCloudError(e).transient);
  assert.is((await w!.client.inventory({ kind: 'volume' })).length, 0);
});

test.run();
