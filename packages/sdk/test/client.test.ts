import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { headers, type Msg } from '@nats-io/transport-node';
import { KilnError } from '@kiln/core';
import { KilnClient } from '../src/index.js';
import { Installation, chain, group } from './fixture.js';
import { waitFor } from '@kiln/natsd';

/** The SDK against a real nats-server (shipped tenants config), the real API service and a real engine. */
const ctx = {} as { k: Installation; a: KilnClient; aPack: KilnClient; b: KilnClient };
const test = suite('KilnClient over the real API and engine');

test.before(async () => {
  ctx.k = await Installation.start();
  ctx.a = await ctx.k.client('tenant-a');
  ctx.aPack = await ctx.k.client('tenant-a', { encoding: 'msgpack' });
  ctx.b = await ctx.k.client('tenant-b');
});

test.after(async () => {
  for (const c of [ctx.a, ctx.aPack, ctx.b]) await c?.close();
  await ctx.k?.stop();
});

async function settled(c: KilnClient, stack: string, generation: number, status: string) {
  return waitFor(`${stack} ${status} at generation ${generation}`, async () => {
    const s = await c.showStack(stack);
    return s.generation >= generation && s.status === status ? s : undefined;
  });
}

async function expectError(p: Promise<unknown>, code: string): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, KilnError, String(e));
    assert.is((e as KilnError).code, code, (e as Error).message);
    return e as KilnError;
  }
  throw new Error(`expected ${code}, the call succeeded`);
}

test('create, show, resources, outputs, update, patch, list, delete — JSON and msgpack', async () => {
  for (const [c, name] of [
    [ctx.a, 'chain-json'],
    [ctx.aPack, 'chain-msgpack'],
  ] as const) {
    const g = await c.createStack(name, { template: chain('1') }, { tags: ['sdk'] });
    assert.equal([g.name, g.generation], [name, 1]);
    const s1 = await settled(c, name, 1, 'CREATE_COMPLETE');
    assert.is(s1.id, g.id);
    assert.equal(s1.resources, { total: 2, by_status: { CREATE_COMPLETE: 2 } });
    const resources = [];
    for await (const r of c.resources(name)) resources.push(r);
    assert.equal(resources.map((r) => r.name).sort(), ['a', 'b']);
    const a = await c.showResource(g.id, 'a');
    const value = (a.attributes as { value: string }).value;
    assert.equal(await c.outputs(name), [{ key: 'b', value: `${value}-1` }]);
    assert.equal(await c.outputs(name, 'b'), [{ key: 'b', value: `${value}-1` }]);

    const u = await c.updateStack(name, { template: chain('2') });
    assert.is(u.generation, 2);
    await settled(c, name, 2, 'UPDATE_COMPLETE');
    const p = await c.patchStack(name, { parameters: { suffix: '3' } });
    assert.is(p.generation, 3);
    await settled(c, name, 3, 'UPDATE_COMPLETE');
    assert.equal(await c.outputs(name), [{ key: 'b', value: `${value}-3` }], 'the patched parameter reached the output');
  }
  const names: string[] = [];
  for await (const s of ctx.a.stacks({}, { pageSize: 1 })) names.push(s.name);
  assert.equal(names, ['chain-json', 'chain-msgpack'], 'all pages, one stack per page');
  assert.equal((await ctx.a.listStacks({ filter: { name: 'chain-json' } })).stacks.map((s) => s.name), ['chain-json']);

  const v = await ctx.aPack.validate({ template: chain('x') });
  assert.equal([v.valid, v.resource_count], [true, 2]);
  const preview = await ctx.a.preview({ template: chain('x') });
  assert.equal(preview.resources.map((r) => [r.name, r.action]).sort(), [['a', 'create'], ['b', 'create']]);
  const status = await ctx.a.engineStatus();
  assert.type(status.version, 'string');

  for (const name of ['chain-json', 'chain-msgpack']) {
    const d = await ctx.a.deleteStack(name);
    await settled(ctx.a, d.id, d.generation, 'DELETE_COMPLETE');
  }
  assert.equal((await ctx.a.listStacks()).stacks, []);
});

test('errors are KilnErrors with the code, path and status of the reply, in both encodings', async () => {
  for (const c of [ctx.a, ctx.aPack]) {
    const missing = await expectError(c.showStack('nope'), 'STACK_NOT_FOUND');
    assert.is(missing.status, 404);
    assert.is(missing.path, 'body.stack');
    const badName = await expectError(c.createStack('1-not-a-name', { template: chain('1') }), 'REQUEST_INVALID');
    assert.is(badName.path, 'body.name');
    assert.is(badName.status, 400);
    const unknown = await expectError(c.call('stack.show', { stack: 'x', colour: 'red' } as never), 'REQUEST_INVALID');
    assert.is(unknown.path, 'body.colour');
    const broken = await expectError(
      c.createStack('broken', { template: { heat_template_version: '2016-10-14', resources: { x: { type: 'OS::Heat::None', properties: { a: { get_resource: 'nope' } } } } } }),
      'REFERENCE_UNKNOWN',
    );
    assert.is(broken.status, 400);
  }
  await expectError(ctx.a.showStack('broken'), 'STACK_NOT_FOUND');
});

test('tenants: another tenant’s stack is not found through any SDK call', async () => {
  const g = await ctx.a.createStack('private', { template: chain('p') });
  await settled(ctx.a, 'private', 1, 'CREATE_COMPLETE');
  for (const call of [
    () => ctx.b.showStack(g.id),
    () => ctx.b.updateStack(g.id, { template: chain('q') }),
    () => ctx.b.deleteStack(g.id),
    () => ctx.b.listResources(g.id),
    () => ctx.b.groupHealth(g.id, 'a'),
    () => ctx.b.setCapacity(g.id, 'a', 2),
    () => ctx.b.listEvents({ stack: g.id }),
  ]) {
    await expectError(call(), 'STACK_NOT_FOUND');
  }
  assert.equal((await ctx.b.listStacks()).stacks, []);
  assert.is((await ctx.a.showStack('private')).generation, 1, 'untouched');
});

test('a write whose reply was lost is retried with the same request id: one stack, one generation', async () => {
  const subject = 'kiln.api.v1.tenant-a.stack.create';
  const seen: string[] = [];
  // Swallow the first attempt: the API is down, a bystander takes the request, lets the
  // API process it (restarted, reply sent elsewhere) and drops the answer, like a lost reply.
  await ctx.k.stopApi();
  let forwarded: { id: string; generation: number } | undefined;
  const blackHole = ctx.k.kiln.subscribe(subject, {
    callback: (_err, m: Msg) => {
      seen.push((JSON.parse(m.string()) as { request_id: string }).request_id);
      blackHole.unsubscribe();
      void (async () => {
        await ctx.k.startApi();
        const h = headers();
        h.set('Content-Type', 'application/json');
        const r = await ctx.k.kiln.request(subject, m.data, { timeout: 10_000, headers: h });
        forwarded = (JSON.parse(r.string()) as { result: { id: string; generation: number } }).result;
      })();
    },
  });
  const c = await ctx.k.client('tenant-a', { timeoutMs: 1_000, retries: 10, retryBackoffMs: 100 });
  try {
    const g = await c.createStack('lossy', { template: chain('l') });
    await waitFor('the forwarded first attempt', () => forwarded);
    assert.is(seen.length, 1);
    assert.equal(g, { id: forwarded!.id, name: 'lossy', generation: 1 }, 'the retry got the stored result of the first attempt');
    const same = await c.call('stack.create', { name: 'lossy', template: chain('l'), request_id: seen[0]! });
    assert.equal(same, g, 'the same request id, explicitly, again: still the first result');
    assert.equal((await c.listStacks({ filter: { name: 'lossy' } })).stacks.map((s) => s.id), [g.id]);
    await expectError(c.createStack('lossy', { template: chain('l') }), 'STACK_EXISTS');
  } finally {
    await c.close();
  }
});

test('no API instance: reads are retried until one answers; signals are not retried', async () => {
  const c = await ctx.k.client('tenant-a', { timeoutMs: 1_000, retries: 40, retryBackoffMs: 50 });
  try {
    await ctx.k.stopApi();
    const e = await expectError(c.signal('private', 'a', {}), 'UNAVAILABLE');
    assert.equal(e.detail, { transport: 'no_responders' });
    const show = c.showStack('private');
    await new Promise((r) => setTimeout(r, 200));
    await ctx.k.startApi();
    assert.is((await show).name, 'private');
  } finally {
    if (!ctx.k.api) await ctx.k.startApi();
    await c.close();
  }
});

test('group health and capacity: members from resource.list; capacity.set resizes the group', async () => {
  const g = await ctx.a.createStack('grp', { template: group(3) });
  await settled(ctx.a, 'grp', 1, 'CREATE_COMPLETE');
  const h = await ctx.a.groupHealth('grp', 'workers');
  assert.is(h.type, 'OS::Heat::ResourceGroup');
  assert.is(h.status, 'CREATE_COMPLETE');
  assert.equal(h.members.map((m) => [m.name, m.path, m.state]), [['0', 'workers/0', 'healthy'], ['1', 'workers/1', 'healthy'], ['2', 'workers/2', 'healthy']]);
  assert.equal(h.counts, { total: 3, healthy: 3, in_progress: 0, failed: 0, deleted: 0, unknown: 0 });
  await expectError(ctx.a.groupHealth('grp', 'nope'), 'RESOURCE_NOT_FOUND');
  await expectError(ctx.a.setCapacity('grp', 'workers', -1), 'REQUEST_INVALID');
  const set = await ctx.a.group(g.id, 'workers').setCapacity(5);
  assert.equal(set, { id: g.id, name: 'grp', generation: 2 });
  await settled(ctx.a, 'grp', 2, 'UPDATE_COMPLETE');
  assert.is((await ctx.a.group('grp', 'workers').health()).counts.total, 5);
});

test('fromConnection: an operator acts for a tenant over its own connection (inbox prefix _INBOX)', async () => {
  const nc = await ctx.k.admin();
  try {
    const admin = KilnClient.fromConnection(nc, { tenant: 'tenant-a', inboxPrefix: '_INBOX' });
    const s = await admin.showStack('private');
    assert.is(s.name, 'private');
    const first = await ctx.k.emit('tenant-a', s.id, 'a', 'CHECK_COMPLETE');
    const w = admin.watch('private', { fromSequence: first, heartbeatMs: 500 });
    for await (const e of w) {
      assert.equal([e.seq, e.status, e.tenant], [first, 'CHECK_COMPLETE', 'tenant-a']);
      break;
    }
    await admin.close();
    assert.is(nc.isClosed(), false, 'a borrowed connection stays open');
    // With the tenant's inbox prefix (the default) the operator may not receive: a typed error, not a retry loop.
    const wrong = KilnClient.fromConnection(nc, { tenant: 'tenant-a' });
    try {
      for await (const _ of wrong.watch('private', { heartbeatMs: 500 })) assert.unreachable('no event expected');
      assert.unreachable('the watch must fail');
    } catch (e) {
      assert.instance(e, KilnError);
      assert.equal([(e as KilnError).code, (e as KilnError).path], ['FORBIDDEN', 'inboxPrefix']);
    }
  } finally {
    await nc.close();
  }
});

test('mark-unhealthy, cancel, abandon and adopt through the SDK', async () => {
  await ctx.a.markUnhealthy('private', 'a', { reason: 'test' });
  const cancelled = await ctx.a.cancelUpdate('private');
  assert.is(cancelled.name, 'private');
  const abandoned = await ctx.a.abandonStack('private');
  assert.type(abandoned.adopt_data, 'object');
  const adopted = await ctx.a.adoptStack('adopted', { template: chain('x') }, abandoned.adopt_data);
  assert.is(adopted.name, 'adopted');
});

test.run();
