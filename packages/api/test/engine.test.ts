import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from '@nats-io/transport-node';
import { Engine } from '@kiln/engine';
import type { NatsServer } from '@kiln/natsd';
import { ApiService } from '../src/service.js';
import { EngineBackend } from '../src/engine-backend.js';
import { Gateway } from '../src/gateway.js';
import { PASSWORDS, connectAs, err, ok, startTenantServer } from './harness.js';
import { WsClient } from './ws-client.js';
import { waitFor } from '@kiln/natsd';

/**
 * Contract tests of the API against the real engine (one in-process node), through a real
 * nats-server with the shipped tenants config.
 */
interface Ctx {
  server: NatsServer;
  engine: Engine;
  kiln: NatsConnection;
  a: NatsConnection;
  b: NatsConnection;
  api: ApiService;
  gw: Gateway;
}
const ctx = {} as Ctx;
const test = suite('api over the real engine');

test.before(async () => {
  // The shipped tenants config as is: the engine authenticates as its own user.
  ctx.server = await startTenantServer();
  ctx.engine = await Engine.start({ servers: ctx.server.url, user: 'kiln', pass: PASSWORDS.KILN_ENGINE_PASSWORD, partitions: 8, nodeId: 'api-test' });
  ctx.kiln = await connectAs(ctx.server, 'kiln');
  ctx.api = await ApiService.start({ nc: ctx.kiln, backend: await EngineBackend.open({ engine: ctx.engine }) });
  ctx.gw = await Gateway.start({ servers: ctx.server.url, user: 'gateway', pass: PASSWORDS.KILN_GATEWAY_PASSWORD, tokens: { 'tok-a': 'tenant-a', 'tok-b': 'tenant-b' }, heartbeatMs: 300 });
  ctx.a = await connectAs(ctx.server, 'tenant-a');
  ctx.b = await connectAs(ctx.server, 'tenant-b');
});

test.after(async () => {
  await ctx.gw?.stop();
  await ctx.api?.stop();
  for (const nc of [ctx.a, ctx.b, ctx.kiln]) await nc?.close();
  await ctx.engine?.stop();
  await ctx.server?.stop();
});

const template = (v: string) => ({
  heat_template_version: '2016-10-14',
  resources: {
    a: { type: 'OS::Heat::RandomString', properties: { length: 8 } },
    b: { type: 'OS::Heat::TestResource', properties: { value: { str_replace: { template: 'X-V', params: { X: { get_attr: ['a', 'value'] }, V: v } } } } },
  },
  outputs: { b: { value: { get_attr: ['b', 'output'] } } },
});

type Show = { id: string; name: string; status: string; generation: number; outputs: Array<{ key: string; value: unknown }>; resources: { total: number; by_status: Record<string, number> } };

function settled(nc: NatsConnection, tenant: string, id: string, generation: number, status: string): Promise<Show> {
  return waitFor(
    `${id} to reach ${status} at generation ${generation}`,
    async () => {
      const s = await ok<Show>(nc, tenant, 'stack.show', { stack: id });
      return s.generation >= generation && s.status === status ? s : undefined;
    },
    60_000,
  );
}

test('create, show, resources, update, list and delete through the API', async () => {
  const g = await ok<{ id: string; name: string; generation: number }>(ctx.a, 'tenant-a', 'stack.create', { name: 'chain', template: template('1') });
  assert.is(g.name, 'chain');
  const s1 = await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  assert.is(s1.name, 'chain');
  assert.equal(s1.resources, { total: 2, by_status: { CREATE_COMPLETE: 2 } });
  const res = await ok<{ resources: Array<{ name: string; physical_id?: string; status: string }> }>(ctx.a, 'tenant-a', 'resource.list', { stack: 'chain' });
  assert.equal(res.resources.map((r) => r.name).sort(), ['a', 'b']);
  assert.ok(res.resources.every((r) => r.status === 'CREATE_COMPLETE' && typeof r.physical_id === 'string'));
  const a = await ok<{ attributes: { value: string } }>(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: 'a' });
  assert.equal(s1.outputs, [{ key: 'b', value: `${a.attributes.value}-1` }]);

  const u = await ok<{ generation: number }>(ctx.a, 'tenant-a', 'stack.update', { stack: 'chain', template: template('2'), request_id: 'u-1' });
  assert.is(u.generation, 2);
  assert.equal(await ok(ctx.a, 'tenant-a', 'stack.update', { stack: 'chain', template: template('2'), request_id: 'u-1' }), u, 'a retried update is not a new generation');
  const s2 = await settled(ctx.a, 'tenant-a', g.id, 2, 'UPDATE_COMPLETE');
  assert.is(s2.generation, 2);

  const list = await ok<{ stacks: Array<{ id: string; name: string }> }>(ctx.a, 'tenant-a', 'stack.list', {});
  assert.equal(list.stacks.map((s) => s.name), ['chain']);
  const validate = await ok<{ resource_count: number }>(ctx.a, 'tenant-a', 'stack.validate', { template: template('3') });
  assert.is(validate.resource_count, 2);
  const yaml = 'heat_template_version: 2016-10-14\nparameters:\n  size: {type: number, default: 3}\nresources:\n  r: {type: OS::Heat::RandomString}\n';
  const fromText = await ok<{ resource_count: number; parameters: Record<string, unknown> }>(ctx.a, 'tenant-a', 'stack.validate', { template: yaml });
  assert.is(fromText.resource_count, 1);
  assert.is(fromText.parameters.size, 3);

  await ok(ctx.a, 'tenant-a', 'stack.delete', { stack: 'chain' });
  await settled(ctx.a, 'tenant-a', g.id, 3, 'DELETE_COMPLETE');
  assert.equal((await ok<{ stacks: unknown[] }>(ctx.a, 'tenant-a', 'stack.list', {})).stacks, []);
});

test('an invalid template is refused at once and creates nothing', async () => {
  const e = await err(ctx.a, 'tenant-a', 'stack.create', { name: 'broken', template: { heat_template_version: '2016-10-14', resources: { x: { type: 'OS::Heat::None', properties: { a: { get_resource: 'nope' } } } } } });
  assert.ok(['REFERENCE_UNKNOWN', 'TEMPLATE_INVALID'].includes(e.code), e.code);
  assert.is((await err(ctx.a, 'tenant-a', 'stack.show', { stack: 'broken' })).code, 'STACK_NOT_FOUND');
});

test('tenants: same names side by side, and no crossing by id or name', async () => {
  const ga = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'shared', template: template('a') });
  const gb = await ok<{ id: string }>(ctx.b, 'tenant-b', 'stack.create', { name: 'shared', template: template('b') });
  assert.is.not(ga.id, gb.id);
  await settled(ctx.a, 'tenant-a', ga.id, 1, 'CREATE_COMPLETE');
  for (const [op, body] of [
    ['stack.show', { stack: ga.id }],
    ['stack.update', { stack: ga.id, template: template('x') }],
    ['stack.delete', { stack: ga.id }],
    ['resource.list', { stack: ga.id }],
    ['resource.show', { stack: ga.id, resource: 'a' }],
    ['resource.signal', { stack: ga.id, resource: 'a' }],
    ['stack.outputs', { stack: ga.id }],
    ['stack.abandon', { stack: ga.id }],
    ['stack.cancel', { stack: ga.id }],
    ['resource.mark-unhealthy', { stack: ga.id, resource: 'a' }],
    ['group.capacity.set', { stack: ga.id, group: 'a', capacity: 2 }],
  ] as const) {
    assert.is((await err(ctx.b, 'tenant-b', op, body)).code, 'STACK_NOT_FOUND', `${op} ${JSON.stringify(body)}`);
  }
  assert.is((await ok<Show>(ctx.b, 'tenant-b', 'stack.show', { stack: 'shared' })).id, gb.id);
  assert.is((await ok<Show>(ctx.a, 'tenant-a', 'stack.show', { stack: 'shared' })).generation, 1, "a's stack untouched");
  const bl = await ok<{ stacks: Array<{ id: string }> }>(ctx.b, 'tenant-b', 'stack.list', {});
  assert.equal(bl.stacks.map((s) => s.id), [gb.id]);
});

test('the engine publishes its events per tenant: a gateway client sees them live, another tenant does not', async () => {
  const a = await WsClient.authed(ctx.gw.url.replace(/^http/, 'ws'), 'tok-a');
  const b = await WsClient.authed(ctx.gw.url.replace(/^http/, 'ws'), 'tok-b');
  try {
    a.send({ type: 'subscribe', filter: {} });
    b.send({ type: 'subscribe', filter: {} });
    await a.next('subscribed');
    await b.next('subscribed');
    const g = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'watched', template: template('w') });
    await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
    await waitFor('the stack and resource events on the socket', () => {
      const evs = a.events().filter((e) => e.stack === g.id);
      const done = evs.some((e) => e.resource === undefined && e.status === 'CREATE_COMPLETE');
      return done && ['a', 'b'].every((r) => evs.some((e) => e.resource === r && e.status === 'CREATE_COMPLETE')) ? evs : undefined;
    }, 20_000);
    assert.ok(a.events().every((e) => e.tenant === 'tenant-a'));
    const seqs = a.seqs();
    assert.equal(seqs, [...seqs].sort((x, y) => x - y), 'in stream order');
    assert.equal(b.events().filter((e) => e.stack === g.id), [], "tenant-b sees none of tenant-a's events");
    // events.list over the same stream, filtered by resource.
    const listed = await ok<{ events: Array<{ resource?: string; status: string }> }>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, resource: 'b' });
    assert.ok(listed.events.length > 0 && listed.events.every((e) => e.resource === 'b'));
  } finally {
    a.close();
    b.close();
  }
});

const groupTemplate = (size: number) => ({
  heat_template_version: '2016-10-14',
  parameters: { size: { type: 'number', default: size } },
  resources: { workers: { type: 'OS::Heat::ResourceGroup', properties: { count: { get_param: 'size' }, resource_def: { type: 'OS::Heat::RandomString' } } } },
  outputs: { refs: { value: { get_attr: ['workers', 'refs'] } } },
});

test('group.capacity.set is a new generation that survives updates leaving the count alone; one that changes it wins', async () => {
  const g = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'scaled', template: groupTemplate(2) });
  await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  const members = async () => (await ok<{ resources: Array<{ path?: string }> }>(ctx.a, 'tenant-a', 'resource.list', { stack: g.id, nested_depth: 1 })).resources.filter((r) => r.path?.startsWith('workers/')).length;
  assert.is(await members(), 2);
  assert.equal(await ok(ctx.a, 'tenant-a', 'group.capacity.set', { stack: 'scaled', group: 'workers', capacity: 4 }), { id: g.id, name: 'scaled', generation: 2 });
  await settled(ctx.a, 'tenant-a', g.id, 2, 'UPDATE_COMPLETE');
  assert.is(await members(), 4);
  // Members' events are the stack's events, named by their path.
  const memberEvents = await ok<{ events: Array<{ stack: string; resource?: string; status: string }> }>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, resource: 'workers/3' });
  assert.ok(memberEvents.events.some((e) => e.stack === g.id && e.status === 'CREATE_COMPLETE'), JSON.stringify(memberEvents.events));
  assert.is((await err(ctx.a, 'tenant-a', 'group.capacity.set', { stack: 'scaled', group: 'nope', capacity: 1 })).code, 'RESOURCE_NOT_FOUND');
  // An update that leaves the group's count as it was keeps the override.
  const withDescription = { ...groupTemplate(2), description: 'same count' };
  await ok(ctx.a, 'tenant-a', 'stack.update', { stack: 'scaled', template: withDescription });
  await settled(ctx.a, 'tenant-a', g.id, 3, 'UPDATE_COMPLETE');
  assert.is(await members(), 4);
  // One that changes the count wins over the override.
  await ok(ctx.a, 'tenant-a', 'stack.patch', { stack: 'scaled', parameters: { size: 3 } });
  await settled(ctx.a, 'tenant-a', g.id, 4, 'UPDATE_COMPLETE');
  assert.is(await members(), 3);
});

test('stack.cancel re-targets to the previous generation', async () => {
  const g = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'cancelled', template: template('1') });
  await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  const out = async () => (await ok<Show>(ctx.a, 'tenant-a', 'stack.show', { stack: g.id })).outputs[0]!.value as string;
  const first = await out();
  await ok(ctx.a, 'tenant-a', 'stack.update', { stack: g.id, template: template('2') });
  const c = await ok<{ generation: number }>(ctx.a, 'tenant-a', 'stack.cancel', { stack: g.id });
  assert.is(c.generation, 3);
  await settled(ctx.a, 'tenant-a', g.id, 3, 'ROLLBACK_COMPLETE');
  assert.is(await out(), first, 'the desired state of generation 1 again');
});

test('resource.mark-unhealthy replaces the resource now; dependants are not touched until they update', async () => {
  const g = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'healing', template: template('1') });
  await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  const phys = async (r: string) => (await ok<{ physical_id: string; status: string }>(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: r }));
  const before = await phys('b');
  await ok(ctx.a, 'tenant-a', 'resource.mark-unhealthy', { stack: g.id, resource: 'b', reason: 'disk' });
  const after = await waitFor('b to be replaced', async () => {
    const r = await phys('b');
    return r.physical_id !== before.physical_id && r.status.endsWith('_COMPLETE') ? r : undefined;
  }, 20_000);
  assert.is.not(after.physical_id, before.physical_id);
  assert.is((await err(ctx.a, 'tenant-a', 'resource.mark-unhealthy', { stack: g.id, resource: 'nope' })).code, 'RESOURCE_NOT_FOUND');
});

test('stack.abandon forgets the stack and keeps its resources; stack.adopt takes them over without creating', async () => {
  const g = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.create', { name: 'moving', template: template('m') });
  const s = await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  const res = await ok<{ resources: Array<{ name: string; physical_id: string }> }>(ctx.a, 'tenant-a', 'resource.list', { stack: g.id });
  const ab = await ok<{ adopt_data: { name: string; template: unknown; resources: Record<string, { resource_id: string; type: string }> } }>(ctx.a, 'tenant-a', 'stack.abandon', { stack: 'moving' });
  assert.is(ab.adopt_data.name, 'moving');
  assert.equal(Object.keys(ab.adopt_data.resources).sort(), ['a', 'b']);
  for (const r of res.resources) assert.is(ab.adopt_data.resources[r.name]!.resource_id, r.physical_id);
  assert.is((await err(ctx.a, 'tenant-a', 'stack.show', { stack: 'moving' })).code, 'STACK_NOT_FOUND');
  const ad = await ok<{ id: string }>(ctx.a, 'tenant-a', 'stack.adopt', { name: 'moved', template: ab.adopt_data.template, adopt_data: ab.adopt_data });
  const t = await settled(ctx.a, 'tenant-a', ad.id, 1, 'ADOPT_COMPLETE');
  assert.equal(t.outputs, s.outputs, 'same resources, same attributes');
  const res2 = await ok<{ resources: Array<{ name: string; physical_id: string; status: string }> }>(ctx.a, 'tenant-a', 'resource.list', { stack: ad.id });
  assert.equal(Object.fromEntries(res2.resources.map((r) => [r.name, r.physical_id])), Object.fromEntries(res.resources.map((r) => [r.name, r.physical_id])));
  assert.ok(res2.resources.every((r) => r.status === 'ADOPT_COMPLETE'), JSON.stringify(res2.resources));
});

test('stack.show describes the desired spec: description, parameter values (hidden masked), output descriptions', async () => {
  const t = {
    heat_template_version: '2016-10-14',
    description: 'two values',
    parameters: {
      size: { type: 'number', default: 3 },
      secret: { type: 'string', hidden: true },
      name: { type: 'string', default: 'n' },
    },
    resources: { v: { type: 'OS::Heat::Value', properties: { value: { get_param: 'size' } } } },
    outputs: { size: { description: 'the size', value: { get_attr: ['v', 'value'] } }, bare: { value: 1 } },
  };
  const g = await ok<{ id: string; generation: number }>(ctx.a, 'tenant-a', 'stack.create', { name: 'described', template: t, parameters: { secret: 'pw', name: 'x' } });
  await settled(ctx.a, 'tenant-a', g.id, 1, 'CREATE_COMPLETE');
  type Described = Show & { description: string; parameters: Record<string, unknown>; outputs: Array<{ key: string; value: unknown; description?: string }> };
  const s = await ok<Described>(ctx.a, 'tenant-a', 'stack.show', { stack: 'described' });
  assert.is(s.description, 'two values');
  assert.equal(s.parameters, { 'OS::stack_id': g.id, 'OS::stack_name': 'described', 'OS::region': 'RegionOne', 'OS::project_id': 'tenant-a', size: 3, secret: '******', name: 'x' });
  assert.equal(s.outputs.sort((x, y) => x.key.localeCompare(y.key)), [{ key: 'bare', value: 1 }, { key: 'size', value: 3, description: 'the size' }]);
  // Shown again at the same generation: described from the cache, the spec is not read again.
  const engine = ctx.engine;
  const read = engine.desiredSpec.bind(engine);
  let reads = 0;
  engine.desiredSpec = (ref) => (reads++, read(ref));
  try {
    assert.is((await ok<Described>(ctx.a, 'tenant-a', 'stack.show', { stack: 'described' })).description, 'two values');
    assert.is(reads, 0, 'a described generation reads no spec');
    // A patch is a new generation: show describes it, not the cached first one.
    const g2 = await ok<{ generation: number }>(ctx.a, 'tenant-a', 'stack.patch', { stack: 'described', parameters: { size: 5 } });
    await settled(ctx.a, 'tenant-a', g.id, g2.generation, 'UPDATE_COMPLETE');
    const s2 = await ok<Described>(ctx.a, 'tenant-a', 'stack.show', { stack: 'described' });
    assert.is(s2.parameters.size, 5);
    assert.is(s2.parameters.name, 'x');
    assert.is(reads, 1);
  } finally {
    engine.desiredSpec = read;
  }
});

test.run();
