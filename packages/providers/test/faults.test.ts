import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError } from '@kiln/core';
import { SimCloudClient, type CloudClient } from '@kiln/sim-cloud';
import { CloudGateway, classifyCloudError, createCloudProvider } from '../src/index.js';
import { QUICK, ctx, create, props, rejection, request, startWorld, type World } from './helpers.js';

const test = suite<{ w?: World }>('cloud faults: rate limits, outages, quotas, ambiguous creates');
test.before(async (c) => {
  c.w = await startWorld();
});
test.after(async (c) => {
  await c.w?.stop();
});
test.before.each(async (c) => {
  await c.w!.client.reset();
  await c.w!.client.setRateLimits({});
  await c.w!.client.setQuotas({});
  await c.w!.client.setFaults({ apiErrorAfterCreateShare: 0, apiErrorShare: 0 });
});

test('429 with Retry-After: the gateway pauses every caller until then instead of hammering', async ({ w }) => {
  await w!.client.setRateLimits({ perSecond: 1, burst: 1 });
  const gw = new CloudGateway(w!.client, QUICK);
  const before = (await w!.client.stats()).rateLimited;
  const got = await Promise.all([1, 2, 3].map(() => gw.call('network.list', undefined, (o) => w!.client.list('network', {}, o))));
  assert.is(got.length, 3, 'every call succeeded in the end');
  const limited = (await w!.client.stats()).rateLimited - before;
  assert.ok(limited >= 1, 'the cloud did throttle');
  // Honouring Retry-After (1 s) allows at most one refusal per waiting caller per second; a
  // 20-200 ms backoff that ignored it would be refused many times over.
  assert.ok(limited <= 4, `refused ${limited} times`);
});

test('a Retry-After is never undercut (recorded call times)', async () => {
  const times: number[] = [];
  const stub = {
    async list() {
      times.push(Date.now());
      if (times.length === 1) throw new KilnError('RATE_LIMITED', 'slow down', { detail: { status: 429, retryAfterMs: 300 } });
      return [];
    },
  } as unknown as CloudClient;
  const gw = new CloudGateway(stub, QUICK);
  await gw.call('x.list', undefined, (o) => stub.list('network', {}, o));
  assert.is(times.length, 2);
  assert.ok(times[1]! - times[0]! >= 295, `retried after ${times[1]! - times[0]!} ms`);
});

test('the client-side token bucket keeps calls under the cloud limit', async ({ w }) => {
  await w!.client.setRateLimits({ perSecond: 5, burst: 1 });
  const gw = new CloudGateway(w!.client, { ...QUICK, rateLimit: { perSecond: 2, burst: 1 } });
  const before = (await w!.client.stats()).rateLimited;
  await Promise.all([1, 2, 3, 4].map(() => gw.call('network.list', undefined, (o) => w!.client.list('network', {}, o))));
  assert.is((await w!.client.stats()).rateLimited - before, 0);
});

test('quota refusals are QUOTA_EXCEEDED and not transient', async ({ w }) => {
  await w!.client.setQuotas({ default: { instances: 1, networks: 1 } });
  const net = await create(w!.type('OS::Neutron::Net'), 'qnet', {});
  const netErr = classifyCloudError(await rejection(create(w!.type('OS::Neutron::Net'), 'qnet2', {})));
  assert.is(netErr.code, 'QUOTA_EXCEEDED');
  assert.not.ok(netErr.transient);
  const Server = w!.type('OS::Nova::Server');
  await create(Server, 'q1', { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net.physicalId }] });
  const e = classifyCloudError(await rejection(create(Server, 'q2', { flavor: 'm1.tiny', image: 'cirros-0.6.2-x86_64-disk', networks: [{ network: net.physicalId }] })));
  assert.is(e.code, 'QUOTA_EXCEEDED');
  assert.not.ok(e.transient);
  assert.match(e.message, /instances/);
});

test('validation errors are permanent and precise', async ({ w }) => {
  const Server = w!.type('OS::Nova::Server');
  const bad = classifyCloudError(await rejection(create(Server, 'badflavor', { flavor: 'm1.gigantic', image: 'cirros-0.6.2-x86_64-disk' })));
  assert.is(bad.code, 'REQUEST_INVALID');
  assert.not.ok(bad.transient);
  const missing = classifyCloudError(await rejection(create(w!.type('OS::Neutron::Subnet'), 'orphan', { network: 'no-such-net', cidr: '10.0.0.0/24' })));
  assert.is(missing.code, 'RESOURCE_NOT_FOUND');
  assert.match(missing.message, /no-such-net/);
});

test('a create answered 500 after it happened: the retry with the same key finds it (one object)', async ({ w }) => {
  const Net = w!.type('OS::Neutron::Net');
  await w!.client.setFaults({ apiErrorAfterCreateShare: 1 });
  const quick = createCloudProvider(w!.client, { ...QUICK, retryBudgetMs: 0 }).types.find((t) => t.name === 'OS::Neutron::Net')!;
  if (quick.kind !== 'task') throw new Error('task type');
  const req = request('ambiguous', props(Net, {}));
  const first = classifyCloudError(await rejection(quick.create(req, ctx())));
  assert.is(first.code, 'UNAVAILABLE');
  assert.ok(first.transient);
  assert.is((await w!.client.inventory({ kind: 'network' })).length, 1, 'it did happen');
  await w!.client.setFaults({ apiErrorAfterCreateShare: 0 });
  const again = await Net.create(req, ctx());
  const inv = await w!.client.inventory({ kind: 'network' });
  assert.is(inv.length, 1, 'not repeated');
  assert.is(inv[0]!.id, again.physicalId);
  assert.is(inv[0]!.key, req.idempotencyKey);
});

test('random 5xx are retried inside the task with the same key', async ({ w }) => {
  await w!.client.setFaults({ apiErrorShare: 0.3, apiErrorAfterCreateShare: 0.3 });
  const Net = w!.type('OS::Neutron::Net');
  const made = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => create(Net, `n${i}`, {})));
  await w!.client.setFaults({ apiErrorShare: 0, apiErrorAfterCreateShare: 0 });
  const inv = await w!.client.inventory({ kind: 'network' });
  assert.is(inv.length, 6, 'no duplicates');
  assert.equal(new Set(made.map((m) => m.physicalId)).size, 6);
});

test('cloud outage (connection refused) is transient, never permanent', async () => {
  const w2 = await startWorld();
  const url = w2.sim.url;
  await w2.sim.stop();
  const client = new SimCloudClient(url);
  const p = createCloudProvider(client, { ...QUICK, retryBudgetMs: 300 });
  const Net = p.types.find((t) => t.name === 'OS::Neutron::Net')!;
  if (Net.kind !== 'task') throw new Error('task type');
  const e = classifyCloudError(await rejection(Net.create(request('down', props(Net, {})), ctx())));
  assert.is(e.code, 'UNAVAILABLE');
  assert.ok(e.transient);
  assert.ok((p.gateway.calls.get('network.findByKey') ?? 0) > 1, 'retried inside the task first');
  client.close();
});

test.run();
