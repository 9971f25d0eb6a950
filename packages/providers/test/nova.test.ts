import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyCloudError, createCloudProvider } from '../src/index.js';
import { FAST, QUICK, ctx, create, rejection, replaces, request, props, startWorld, type World } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const test = suite<{ w?: World; net?: string; sub?: string }>('OS::Nova::Server against the sim cloud');
test.before(async (c) => {
  c.w = await startWorld();
  c.net = (await create(c.w.type('OS::Neutron::Net'), 'net', { name: 'private' })).physicalId;
  c.sub = (await create(c.w.type('OS::Neutron::Subnet'), 'sub', { network: c.net, cidr: '10.1.0.0/24' })).physicalId;
});
test.after(async (c) => {
  await c.w?.stop();
});

test('create waits for ACTIVE; networks by network, port and fixed_ip; attributes; delete frees everything', async ({ w, net, sub }) => {
  const Server = w!.type('OS::Nova::Server');
  const port = await create(w!.type('OS::Neutron::Port'), 'p', { network: net });
  const s = await create(Server, 'web', {
    flavor: 'm1.small',
    image: 'cirros-0.6.2-x86_64-disk',
    key_name: 'mykey',
    metadata: { role: 'web', n: 3 },
    user_data: '#!/bin/sh\necho hi',
    networks: [{ network: net }, { port: port.physicalId }, { network: net, fixed_ip: '10.1.0.77' }, { subnet: sub }],
  });
  const show = s.attrs.show as { status: string; metadata: Record<string, string>; 'OS-EXT-SRV-ATTR:user_data': string; key_name: string };
  assert.is(show.status, 'ACTIVE');
  assert.is(s.attrs.name, 'stk-web-abc1', 'physical name when no name given');
  assert.equal(show.metadata.role, 'web');
  assert.is(show.metadata.n, '3', 'metadata values are strings, as Heat sends them');
  assert.is(Buffer.from(show['OS-EXT-SRV-ATTR:user_data'], 'base64').toString(), '#!/bin/sh\necho hi');
  assert.is(show.key_name, 'mykey');
  const ips = Object.values(s.attrs.networks as Record<string, string[]>).flat();
  assert.is(ips.length, 4);
  assert.ok(ips.includes('10.1.0.77'), 'fixed_ip honoured through an internal port');
  assert.ok(ips.includes(s.attrs.first_address as string));
  assert.is((await w!.client.list('port', { device_id: s.physicalId })).length, 4);
  // As in Heat, each address names its port (get_attr: [server, addresses, net, 0, port]).
  const portIds = Object.values(s.attrs.addresses as Record<string, { port: string | null }[]>).flat().map((a) => a.port);
  assert.is(portIds.length, 4);
  assert.ok(portIds.includes(port.physicalId));
  assert.ok(portIds.every((id) => typeof id === 'string'));

  await Server.delete(s, ctx());
  assert.is(await Server.observe(s, ctx()), null);
  // The internal ports (fixed_ip, subnet) went with the server; the user's port stays, unbound.
  const left = await w!.client.list('port');
  assert.equal(left.map((p) => p.id), [port.physicalId]);
  assert.is(left[0]!.device_id, '');
  await w!.type('OS::Neutron::Port').delete(port, ctx());
});

test('update in place vs replace; drift of metadata repaired; vanished and ERROR seen by observe', async ({ w, net }) => {
  const Server = w!.type('OS::Nova::Server');
  const base = { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] };
  assert.not.ok(replaces(Server, base, { ...base, metadata: { a: 1 }, name: 'x' }));
  assert.ok(replaces(Server, base, { ...base, flavor: 'm1.small' }), 'no resize in this cloud: replace');
  assert.ok(replaces(Server, base, { ...base, image: 'fedora-39' }));
  assert.ok(replaces(Server, base, { ...base, security_groups: ['web'] }));
  assert.ok(replaces(Server, base, { ...base, key_name: 'k' }));
  assert.ok(replaces(Server, base, { ...base, user_data: 'new' }), 'user_data_update_policy REPLACE');
  assert.not.ok(replaces(Server, { ...base, user_data_update_policy: 'IGNORE' }, { ...base, user_data_update_policy: 'IGNORE', user_data: 'new' }));

  const s = await create(Server, 'app', { ...base, metadata: { a: 'b' } });
  const updated = { ...s, oldProperties: s.properties, properties: props(Server, { ...base, name: 'app-renamed', metadata: { a: 'c', d: 'e' } }) };
  const r = await Server.update(updated, ctx());
  assert.is(r.physicalId, s.physicalId);
  assert.is(r.attrs.name, 'app-renamed');
  assert.equal((r.attrs.show as { metadata: Record<string, string> }).metadata, { a: 'c', d: 'e', 'kiln:key': s.idempotencyKey });

  await w!.client.setMetadata('server', s.physicalId, { a: 'tampered' });
  const drift = await Server.observe(updated, ctx());
  assert.is(drift!.health.state, 'drifted');
  assert.equal(drift!.health.drifted, ['metadata']);
  await Server.update(updated, ctx());
  assert.is((await Server.observe(updated, ctx()))!.health.state, 'ok');

  await w!.client.forceStatus(s.physicalId, { status: 'ERROR' });
  const err = await Server.observe(updated, ctx());
  assert.is(err!.health.state, 'error');
  assert.is(err!.health.repair, 'replace');
  // An update cannot fix an ERROR server: RESOURCE_ERROR for the engine's replace; the server is left alone.
  assert.is(classifyCloudError(await rejection(Server.update(updated, ctx()))).code, 'RESOURCE_ERROR');
  assert.is((await w!.client.get('server', s.physicalId))!.status, 'ERROR');

  await w!.client.vanish(s.physicalId);
  assert.is(await Server.observe(updated, ctx()), null, 'deleted by hand -> gone');
  const e = await rejection(Server.update(updated, ctx()));
  assert.is(classifyCloudError(e).code, 'RESOURCE_GONE');
  await Server.delete(updated, ctx());
});

test('networks update in place (Heat): plug, swap and unplug interfaces; a hand-unplugged port is plugged back', async ({ w, net, sub }) => {
  const Server = w!.type('OS::Nova::Server');
  const Port = w!.type('OS::Neutron::Port');
  const net2 = await create(w!.type('OS::Neutron::Net'), 'net2', {});
  await create(w!.type('OS::Neutron::Subnet'), 'sub2', { network: net2.physicalId, cidr: '10.2.0.0/24' });
  const p1 = await create(Port, 'p1', { network: net });
  const base = { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk' };
  const s = await create(Server, 'multi', { ...base, networks: [{ network: net }] });
  const step = async (from: unknown[], to: unknown[]) => {
    assert.not.ok(replaces(Server, { ...base, networks: from }, { ...base, networks: to }), 'networks change in place');
    const r = await Server.update({ ...s, oldProperties: props(Server, { ...base, networks: from }), properties: props(Server, { ...base, networks: to }) }, ctx());
    assert.is(r.physicalId, s.physicalId);
    return (await w!.client.list('port', { device_id: s.physicalId })).map((p) => p.network_id + (p.id === p1.physicalId ? ':p1' : '')).sort();
  };
  const n1 = net!;
  const n2 = net2.physicalId;
  assert.equal(await step([{ network: n1 }], [{ network: n1 }, { network: n2 }]), [n1, n2].sort());
  assert.equal(await step([{ network: n1 }, { network: n2 }], [{ port: p1.physicalId }, { network: n2 }]), [`${n1}:p1`, n2].sort());
  assert.equal(await step([{ port: p1.physicalId }, { network: n2 }], [{ port: p1.physicalId }, { subnet: sub, fixed_ip: '10.1.0.123' }]), [`${n1}:p1`, n1].sort());
  const fixed = (await w!.client.list('port', { device_id: s.physicalId })).find((p) => p.id !== p1.physicalId)!;
  assert.is(fixed.fixed_ips[0]!.ip_address, '10.1.0.123');
  // Unplugged by hand: an update with unchanged properties plugs it back.
  const same = [{ port: p1.physicalId }, { subnet: sub, fixed_ip: '10.1.0.123' }];
  await w!.client.detachInterface(s.physicalId, p1.physicalId);
  assert.equal(await step(same, same), [`${n1}:p1`, n1].sort());
  // Back to one network: the internal port is deleted, the user's port unplugged but kept.
  assert.equal(await step(same, [{ network: n1 }]), [n1]);
  assert.ok(await w!.client.get('port', p1.physicalId));
  assert.is((await w!.client.inventory({ kind: 'port' })).filter((o) => o.key?.startsWith(`${s.idempotencyKey}:port`)).length, 0);
  await Server.delete({ ...s, properties: props(Server, { ...base, networks: [{ network: n1 }] }) }, ctx());
  await Port.delete(p1, ctx());
});

test('a server whose port is unreachable is an error to repair by replacement', async ({ w, net }) => {
  const Server = w!.type('OS::Nova::Server');
  await w!.client.setFaults({ portUnreachable: 1 });
  const s = await create(Server, 'cutoff', { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] });
  await w!.client.setFaults({ portUnreachable: 0 });
  const seen = await Server.observe(s, ctx());
  assert.is(seen!.health.state, 'error');
  assert.is(seen!.health.repair, 'replace');
  assert.match(seen!.health.reason!, /unreachable/);
  await Server.delete(s, ctx());
});

test('ERROR on boot: RESOURCE_ERROR (transient), the broken server is removed, the retry boots a fresh one', async ({ w, net }) => {
  const Server = w!.type('OS::Nova::Server');
  await w!.client.setFaults({ serverBootError: 1 });
  const req = request('flaky', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] }));
  const e = await rejection(Server.create(req, ctx()));
  const c = classifyCloudError(e);
  assert.is(c.code, 'RESOURCE_ERROR');
  assert.ok(c.transient);
  assert.match(c.message, /ERROR/);
  assert.is((await w!.client.inventory({ kind: 'server' })).length, 0, 'the ERROR server was deleted');
  await w!.client.setFaults({ serverBootError: 0 });
  const ok = await Server.create(req, ctx());
  assert.is((ok.attrs.show as { status: string }).status, 'ACTIVE');
  await Server.delete({ ...req, physicalId: ok.physicalId }, ctx());
});

test('a boot that ends in ERROR is replaced inside the task under the same key: one create, an ACTIVE server, nothing left over', async ({ w, net }) => {
  const Server = w!.type('OS::Nova::Server');
  // The first boot is doomed at its create; later ones are not (the fault is drawn per object at create).
  await w!.client.setLatency({ server: { dist: 'fixed', ms: 300 } });
  await w!.client.setFaults({ serverBootError: 1 });
  const before = (await w!.client.stats()).injected.struck['boot-error'] ?? 0;
  const req = request('reboot-at-once', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] }));
  const made = Server.create(req, ctx());
  await waitFor('the first boot doomed', async () => ((await w!.client.stats()).injected.struck['boot-error'] ?? 0) > before);
  await w!.client.setFaults({ serverBootError: 0 });
  const s = await made;
  await w!.client.setLatency({ server: FAST!.server! });
  assert.is((s.attrs.show as { status: string }).status, 'ACTIVE');
  const servers = await w!.client.inventory({ kind: 'server' });
  assert.equal(servers.map((o) => [o.id, o.key]), [[s.physicalId, req.idempotencyKey]], 'only the replacement is left, under the incarnation key');
  await Server.delete({ ...req, physicalId: s.physicalId }, ctx());
});

test('stuck in BUILD past the settle timeout: RESOURCE_ERROR and cleaned up', async ({ w, net }) => {
  const Server = createCloudProvider(w!.client, { ...QUICK, settleTimeoutMs: 300 }).types.find((t) => t.name === 'OS::Nova::Server')!;
  if (Server.kind !== 'task') throw new Error('task type');
  await w!.client.setFaults({ serverBuildStuck: 1 });
  const req = request('stuck', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net }] }));
  const e = await rejection(Server.create(req, ctx()));
  await w!.client.setFaults({ serverBuildStuck: 0 });
  assert.is(classifyCloudError(e).code, 'RESOURCE_ERROR');
  assert.match((e as Error).message, /did not settle/);
  await waitFor('stuck server removed', async () => (await w!.client.inventory({ kind: 'server' })).length === 0);
});

test('a create that happened before a crash is found again by its key, not repeated', async ({ w, net }) => {
  const Server = w!.type('OS::Nova::Server');
  const req = request('once', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net, fixed_ip: '10.1.0.99' }] }));
  // First attempt dies mid-wait (the node lost its partition): the server exists, no result was stored.
  // A boot slower than any scheduling delay keeps the server in BUILD until the abort.
  await w!.client.setLatency({ server: { dist: 'fixed', ms: 1_500 } });
  const ac = new AbortController();
  const first = Server.create(req, ctx(ac.signal));
  await waitFor('server created', async () => (await w!.client.inventory({ kind: 'server' })).length === 1);
  ac.abort();
  assert.is(classifyCloudError(await rejection(first)).code, 'ABORTED');
  await w!.client.setLatency({ server: FAST!.server! });
  // The replay (same incarnation, same key) finds it; so does a second replay.
  const a = await Server.create(req, ctx());
  const b = await Server.create(req, ctx());
  assert.is(a.physicalId, b.physicalId);
  const inv = await w!.client.inventory();
  assert.is(inv.filter((o) => o.kind === 'server').length, 1);
  assert.is(inv.filter((o) => o.kind === 'port' && o.key?.startsWith(req.idempotencyKey)).length, 1, 'the internal port too');
  // Delete without a stored physical id (the crash lost it) still finds and removes it.
  await Server.delete(req, ctx());
  assert.is((await w!.client.inventory({ kind: 'server' })).length, 0);
  assert.is((await w!.client.inventory({ kind: 'port' })).filter((o) => !o.implicit).length, 0);
});

test('with a cloud that makes creates idempotent, a replay returns the first object without a look-up', async ({ w, net }) => {
  const p = createCloudProvider(w!.client, { ...QUICK, idempotentCreates: true });
  const Server = p.types.find((t) => t.name === 'OS::Nova::Server')!;
  if (Server.kind !== 'task') throw new Error('task type');
  const req = request('trusting', props(Server, { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net, fixed_ip: '10.1.0.88' }] }));
  const a = await Server.create(req, ctx());
  const b = await Server.create(req, ctx());
  assert.is(a.physicalId, b.physicalId);
  assert.is((await w!.client.inventory({ kind: 'server' })).length, 1);
  assert.is(p.gateway.calls.get('server.findByKey'), undefined);
  assert.is(p.gateway.calls.get('port.findByKey'), undefined);
  await Server.delete({ ...req, physicalId: a.physicalId }, ctx());
  assert.is((await w!.client.inventory({ kind: 'port' })).filter((o) => !o.implicit).length, 0);
});

test.run();
