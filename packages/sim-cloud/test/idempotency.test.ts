import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError } from '@kiln/core';
import type { SimCloud, SimCloudClient } from '../src/index.js';
import { raw, startSim } from './helpers.js';
import { waitFor } from '@kiln/natsd';

const test = suite<{ sim: SimCloud; client: SimCloudClient }>('idempotency');

test.before(async (ctx) => {
  Object.assign(ctx, await startSim());
});
test.after(async (ctx) => {
  await ctx.sim.stop();
});

const server = { name: 'web', flavorRef: '1', imageRef: 'cirros-0.6.2-x86_64-disk' };

test('a repeated create with the same X-Idempotency-Key returns the first object, marked as a replay', async ({ sim, client }) => {
  const first = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server }, { 'x-idempotency-key': 'stack1/web/gen1' });
  const again = await raw(sim.url, 'POST', '/compute/v2.1/servers', { server: { ...server, name: 'different' } }, { 'x-idempotency-key': 'stack1/web/gen1' });
  assert.is(first.status, 202);
  assert.is(again.status, 202);
  assert.is(again.json.server.id, first.json.server.id);
  assert.is(again.headers.get('x-idempotent-replay'), 'true');
  assert.is(first.headers.get('x-idempotent-replay'), null);
  assert.ok(first.json.server.tags.includes('kiln:key=stack1/web/gen1'), 'the key is visible as a tag');
  assert.is(first.json.server.metadata['kiln:key'], 'stack1/web/gen1', 'and as server metadata');
  const inv = (await client.inventory({ kind: 'server' })).filter((o) => o.key === 'stack1/web/gen1');
  assert.is(inv.length, 1);
});

test('the key can come as a kiln:key= tag or kiln:key metadata, and finds the object after a "crash"', async ({ client }) => {
  const net = await client.create('network', { name: 'n', tags: ['kiln:key=net-1', 'team'] });
  const again = await client.create('network', { name: 'n', tags: ['kiln:key=net-1'] });
  assert.is(again.id, net.id);
  const vol = await client.create('volume', { size: 1, metadata: { 'kiln:key': 'vol-1' } });
  assert.is((await client.create('volume', { size: 1 }, { key: 'vol-1' })).id, vol.id, 'header and metadata keys are the same key');
  // A client that lost its memory finds the object by key, by tag filter, or not at all.
  assert.is((await client.findByKey('network', 'net-1'))!.id, net.id);
  assert.is((await client.list('network', { tags: 'kiln:key=net-1' }))[0]!.id, net.id);
  assert.is((await client.list('network', { 'tags-any': 'nope,team' }))[0]!.id, net.id);
  assert.is(await client.findByKey('network', 'never-created'), undefined);
  assert.is((await client.findByKey('volume', 'vol-1'))!.id, vol.id);
});

test('keys are per tenant and per kind; after a delete completes the key creates a new object', async ({ client }) => {
  const a = await client.create('server', server, { key: 'k' });
  const b = await client.forTenant('other').create('server', server, { key: 'k' });
  assert.is.not(a.id, b.id);
  const vol = await client.create('volume', { size: 1 }, { key: 'k' });
  assert.is.not(vol.id, a.id);
  await client.setLatency({ delete: { dist: 'fixed', ms: 3_600_000 } });
  await client.delete('server', a.id);
  await client.setLatency({ delete: { dist: 'fixed', ms: 10 } });
  // While the delete is in flight the key still names the dying server.
  assert.is((await client.create('server', server, { key: 'k' })).id, a.id);
  assert.ok(await client.vanish(a.id), 'the delete completes');
  const c = await client.create('server', server, { key: 'k' });
  assert.is.not(c.id, a.id);
});

test('many concurrent creates with one key make exactly one object', async ({ client }) => {
  const results = await Promise.all(Array.from({ length: 30 }, () => client.create('port', { network_id: '' }, { key: 'p' }).catch((e: KilnError) => e)));
  // network_id is required: every attempt fails the same way and nothing is created.
  assert.ok(results.every((r) => r instanceof KilnError && r.code === 'REQUEST_INVALID'));
  const net = await client.create('network', { name: 'n2' });
  const ports = await Promise.all(Array.from({ length: 30 }, () => client.create('port', { network_id: net.id }, { key: 'p' })));
  assert.is(new Set(ports.map((p) => p.id)).size, 1);
  assert.is((await client.list('port', { network_id: net.id })).length, 1);
});

test('members are found by key within their pool or across pools', async ({ client }) => {
  const net = await client.create('network', { name: 'lbnet' });
  const subnet = await client.create('subnet', { network_id: net.id, cidr: '10.1.0.0/24' });
  const lb = await client.create('loadbalancer', { vip_subnet_id: subnet.id });
  const pool = await client.create('pool', { loadbalancer_id: lb.id, protocol: 'HTTP', lb_algorithm: 'ROUND_ROBIN' });
  const m = await client.create('member', { pool_id: pool.id, address: '10.1.0.5', protocol_port: 80 }, { key: 'm1' });
  assert.is((await client.create('member', { pool_id: pool.id, address: '10.1.0.5', protocol_port: 80 }, { key: 'm1' })).id, m.id);
  assert.is((await client.findByKey('member', 'm1', { pool: pool.id }))!.id, m.id);
  assert.is((await client.findByKey('member', 'm1'))!.id, m.id);
});

test.run();
