import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { decode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine, encodeToken, type EngineEvent } from '../src/index.js';
import { nestedAsg, settled } from './helpers.js';

const test = suite<{ nats?: NatsServer; engine?: Engine }>('engine (one in-process node)');
test.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.engine = await Engine.start({ servers: ctx.nats.url, partitions: 8, nodeId: 'engine-test' });
});
test.after(async (ctx) => {
  await ctx.engine?.stop();
  await ctx.nats?.stop();
});

const chain = (v: string, replace = false) => ({
  heat_template_version: '2016-10-14',
  resources: {
    a: { type: 'OS::Heat::RandomString', properties: { length: 10 } },
    b: { type: 'OS::Heat::TestResource', properties: { value: { str_replace: { template: 'X-V', params: { X: { get_attr: ['a', 'value'] }, V: v } } }, update_replace: replace } },
  },
  outputs: { b: { value: { get_attr: ['b', 'output'] } } },
});

test('create, update in place, update-replace, delete; events replay from a sequence', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'chain', template: chain('1') });
  assert.is(ref.generation, 1);
  const s1 = await settled(e, ref.id, 1);
  assert.is(s1.status, 'READY', s1.reason);
  assert.is(s1.stackStatus, 'CREATE_COMPLETE');
  const a = (await e.listResources('chain')).find((r) => r.name === 'a')!;
  assert.is(s1.outputs.b, `${a.attributes.value}-1`);
  const before = Object.fromEntries((await e.listResources(ref.id)).map((r) => [r.name, r.physicalId]));

  const u = await e.updateStack('chain', { template: chain('2') });
  assert.is(u.generation, 2);
  const s2 = await settled(e, ref.id, 2);
  assert.is(s2.stackStatus, 'UPDATE_COMPLETE');
  const mid = Object.fromEntries((await e.listResources(ref.id)).map((r) => [r.name, r.physicalId]));
  assert.equal(mid, before, 'in place');

  await e.updateStack('chain', { template: chain('3', true) });
  const s3 = await settled(e, ref.id, 3);
  assert.is(s3.status, 'READY');
  const after = Object.fromEntries((await e.listResources(ref.id)).map((r) => [r.name, r.physicalId]));
  assert.is(after.a, before.a);
  assert.is.not(after.b, before.b, 'replaced');

  const evs = await e.events(ref.id);
  assert.ok(evs.length > 6);
  const tail = await e.events(ref.id, evs[3]!.seq);
  assert.is(tail[0]!.seq, evs[3]!.seq);
  assert.is(tail.length, evs.length - 3);
  assert.ok(evs.every((x) => x.event.stackId === ref.id && typeof x.event.ts === 'number'));

  await e.deleteStack('chain');
  const s4 = await settled(e, ref.id, 4);
  assert.is(s4.status, 'DELETED');
  assert.is(s4.stackStatus, 'DELETE_COMPLETE');
  assert.equal(await e.listResources(ref.id), []);
  // The name is free again.
  const again = await e.createStack({ name: 'chain', template: chain('1') });
  assert.is.not(again.id, ref.id);
  await settled(e, again.id, 1);
});

test('stack names are unique; unknown stacks are STACK_NOT_FOUND', async ({ engine }) => {
  const e = engine!;
  await e.createStack({ name: 'uniq', template: chain('1') });
  try {
    await e.createStack({ name: 'uniq', template: chain('1') });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'STACK_EXISTS');
  }
  try {
    await e.getStack('nope');
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'STACK_NOT_FOUND');
  }
});

const group = (count: number) => ({
  heat_template_version: '2016-10-14',
  parameters: { count: { type: 'number', default: count } },
  resources: { g: { type: 'OS::Heat::ResourceGroup', properties: { count: { get_param: 'count' }, resource_def: { type: 'OS::Heat::Value', properties: { value: 'v%index%' } } } } },
  outputs: { refs: { value: { get_attr: ['g', 'refs'] } }, values: { value: { get_attr: ['g', 'value'] } } },
});

test('ResourceGroup scales up and down by PATCH; nested stack is listed', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'grp', template: group(3) });
  let s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.equal(s.outputs.values, ['v0', 'v1', 'v2']);
  await e.patchStack('grp', { parameters: { count: 7 } });
  s = await settled(e, ref.id, 2);
  assert.is((s.outputs.values as string[]).length, 7);
  const g = (await e.listResources(ref.id))[0]!;
  assert.ok(g.nestedStackId);
  assert.is((await e.listResources(g.nestedStackId!)).length, 7);
  await e.patchStack('grp', { parameters: { count: 2 } });
  s = await settled(e, ref.id, 3);
  assert.equal(s.outputs.values, ['v0', 'v1']);
  assert.is((await e.listResources(g.nestedStackId!)).length, 2);
});

test('listResourcesPage: pages from a name position cover every listed resource once, in order, filtered; members removed are skipped', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'pages', template: group(40) });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  await e.patchStack('pages', { parameters: { count: 30 } });
  assert.is((await settled(e, ref.id, 2)).status, 'READY');
  const child = (await e.listResources(ref.id))[0]!.nestedStackId!;
  const all = (await e.listResources(child)).map((r) => r.name);
  assert.is(all.length, 30, 'members 30..39 are gone');
  const odd = (r: { name: string }) => Number(r.name) % 2 === 1;
  const seen: string[] = [];
  let from: number | undefined = 0;
  for (let pages = 0; from !== undefined; pages++) {
    assert.ok(pages < 10, 'ends');
    const page: { items: Array<{ name: string }>; next?: number } = await e.listResourcesPage(child, { from, limit: 4, filter: odd });
    assert.ok(page.items.length <= 4);
    seen.push(...page.items.map((r) => r.name));
    from = page.next;
  }
  assert.equal(seen, all.filter((n) => odd({ name: n })));
});

test('rolling_update: members are updated two at a time, in index order, with a pause (durable timers)', async ({ engine }) => {
  const e = engine!;
  const rolling = (value: string) => ({
    heat_template_version: '2016-10-14',
    resources: {
      g: {
        type: 'OS::Heat::ResourceGroup',
        properties: { count: 5, resource_def: { type: 'OS::Heat::TestResource', properties: { value, action_wait_secs: { update: 0.3 } } } },
        update_policy: { rolling_update: { max_batch_size: 2, pause_time: 0.5 } },
      },
    },
  });
  const ref = await e.createStack({ name: 'rolling', template: rolling('v1') });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  const seq = (await e.events(ref.id)).at(-1)!.seq;
  await e.updateStack(ref.id, { template: rolling('v2') });
  assert.is((await settled(e, ref.id, 2)).status, 'READY');
  const evs = (await e.events(ref.id, seq + 1)).map((x) => x.event).filter((x) => /^g\/\d+$/.test(x.resource ?? '') && x.action === 'UPDATE');
  const start = (m: string) => evs.find((x) => x.resource === `g/${m}` && x.status === 'IN_PROGRESS')!.ts;
  const end = (m: string) => evs.find((x) => x.resource === `g/${m}` && x.status === 'COMPLETE')!.ts;
  // Batches [0, 1], [2, 3], [4]: each starts after the one before ended plus the pause.
  for (const [before, after] of [[['0', '1'], ['2', '3']], [['2', '3'], ['4']]] as const) {
    const ended = Math.max(...before.map(end));
    for (const m of after) assert.ok(start(m) >= ended + 500, `g/${m} started ${start(m) - ended} ms after the batch before ended`);
  }
  const child = (await e.listResources(ref.id))[0]!.nestedStackId!;
  assert.ok((await e.listResources(child)).every((r) => r.attributes.output === 'v2'));
});

test('a ScalingPolicy in a nested stack scales its group (signal app/up); a later update of the parent keeps the size', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({ name: 'nested-scaling', ...nestedAsg });
  assert.is((await settled(e, ref.id, 1)).status, 'READY');
  const app = (await e.listResources(ref.id)).find((r) => r.name === 'app')!.nestedStackId!;
  const size = async () => (await e.listResources((await e.listResources(app)).find((r) => r.name === 'asg')!.nestedStackId!)).length;
  assert.is(await size(), 1);
  await e.signal(ref.id, 'app/up', {});
  assert.is((await settled(e, ref.id, 2)).status, 'READY');
  assert.is(await size(), 2);
  await e.signal(ref.id, 'app/up', {});
  assert.is((await settled(e, ref.id, 3)).status, 'READY');
  assert.is(await size(), 3);
  // The parent's update changes the nested stack's parameter, not the group's size.
  await e.updateStack(ref.id, { ...nestedAsg, template: { heat_template_version: '2016-10-14', resources: { app: { type: 'My::App', properties: { tag: 'b' } } } } });
  assert.is((await settled(e, ref.id, 4)).status, 'READY');
  assert.is(await size(), 3, 'autoscaled size kept');
});

test('overlapping updates: gen 3 wins, nothing of gen 1/2 is left', async ({ engine }) => {
  const e = engine!;
  const wide = (prefix: string, n: number, wait = 0) => ({
    heat_template_version: '2016-10-14',
    resources: Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`${prefix}${i}`, { type: 'OS::Heat::TestResource', properties: { value: prefix, action_wait_secs: { create: wait } } }]),
    ),
  });
  const ref = await e.createStack({ name: 'overlap', template: wide('a', 40, 0.2) });
  await waitFor('gen 1 half done', async () => (await e.listResources(ref.id)).length >= 5, 30_000, 20);
  await e.updateStack(ref.id, { template: wide('b', 30, 0.2) });
  await waitFor('gen 2 started', async () => (await e.listResources(ref.id)).some((r) => r.name.startsWith('b')), 30_000, 20);
  await e.updateStack(ref.id, { template: { ...wide('c', 20), resources: { ...wide('c', 20).resources, ...wide('a', 3).resources } } });
  const s = await settled(e, ref.id, 3);
  assert.is(s.status, 'READY', s.reason);
  const names = (await e.listResources(ref.id)).map((r) => r.name).sort();
  assert.equal(names, [...Array.from({ length: 20 }, (_, i) => `c${i}`), 'a0', 'a1', 'a2'].sort());
});

test('WaitCondition signalled through the API', async ({ engine }) => {
  const e = engine!;
  const ref = await e.createStack({
    name: 'wait',
    template: {
      heat_template_version: '2016-10-14',
      resources: { h: { type: 'OS::Heat::WaitConditionHandle' }, w: { type: 'OS::Heat::WaitCondition', properties: { handle: { get_resource: 'h' }, timeout: 60 } } },
      outputs: { data: { value: { get_attr: ['w', 'data'] } } },
    },
  });
  await waitFor('handle created', async () => (await e.listResources(ref.id)).some((r) => r.name === 'h' && r.physicalId), 60_000, 100);
  await e.signal('wait', 'h', { id: 'x', status: 'SUCCESS', data: 'hello' });
  const s = await settled(e, ref.id, 1);
  assert.is(s.status, 'READY', s.reason);
  assert.equal(JSON.parse(s.outputs.data as string), { x: 'hello' });
});

test('tenants: names are per tenant, listStacks pages and filters, events carry the tenant in their subject', async ({ engine, nats }) => {
  const e = engine!;
  const a1 = await e.createStack({ tenant: 'acme', name: 'web.v1', template: chain('a') });
  const b1 = await e.createStack({ tenant: 'beta', name: 'web.v1', template: chain('b') });
  const a2 = await e.createStack({ tenant: 'acme', name: 'db', template: chain('c') });
  assert.is.not(a1.id, b1.id, 'the same name in two tenants');
  try {
    await e.createStack({ tenant: 'acme', name: 'db', template: chain('d') });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'STACK_EXISTS');
  }
  try {
    await e.createStack({ tenant: 'Bad.Tenant', name: 'x', template: chain('d') });
    assert.unreachable();
  } catch (err) {
    assert.equal([(err as { code: string }).code, (err as { path: string }).path], ['REQUEST_INVALID', 'tenant']);
  }
  for (const r of [a1, b1, a2]) assert.is((await settled(e, r.id, 1)).status, 'READY');
  assert.is((await e.getStack({ tenant: 'beta', name: 'web.v1' })).id, b1.id);
  assert.is((await e.getStack(a1.id)).tenant, 'acme');
  try {
    await e.getStack({ tenant: 'beta', name: 'db' });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code: string }).code, 'STACK_NOT_FOUND');
  }
  const all = await e.listStacks('acme');
  assert.equal(all.stacks.map((s) => s.name), ['db', 'web.v1']);
  assert.is(all.nextCursor, undefined);
  const p1 = await e.listStacks('acme', { limit: 1 });
  assert.equal(p1.stacks.map((s) => s.id), [a2.id]);
  const p2 = await e.listStacks('acme', { limit: 1, cursor: p1.nextCursor! });
  assert.equal([p2.stacks.map((s) => s.id), p2.nextCursor], [[a1.id], undefined]);
  assert.equal((await e.listStacks('acme', { name: 'web.v1' })).stacks.map((s) => s.id), [a1.id]);
  assert.equal((await e.listStacks('acme', { status: 'UPDATE_COMPLETE' })).stacks, []);
  assert.is(await e.countStacks('beta'), 1);
  assert.is(await e.countStacks('nobody'), 0);

  // Events: kiln.events.<tenant>.<stack>.<resource | $stack>, read straight from the stream.
  const nc = await connect({ servers: nats!.url });
  try {
    const jsm = await jetstreamManager(nc);
    const subject = `kiln.events.acme.${encodeToken(a1.id)}.>`;
    const stream = await jsm.streams.find(subject);
    const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject });
    const seen: Array<{ subject: string; ev: EngineEvent }> = [];
    for await (const m of await consumer.fetch({ max_messages: 1000, expires: 2_000 })) {
      seen.push({ subject: m.subject, ev: decode<EngineEvent>(m.data) });
      if (m.info.pending === 0) break;
    }
    assert.ok(seen.some((x) => x.subject === `kiln.events.acme.${encodeToken(a1.id)}.$stack` && x.ev.status === 'COMPLETE' && !x.ev.resource));
    assert.ok(seen.some((x) => x.subject === `kiln.events.acme.${encodeToken(a1.id)}.b` && x.ev.resource === 'b'));
    assert.ok(seen.every((x) => x.ev.tenant === 'acme' && x.ev.stackId === a1.id));
  } finally {
    await nc.close();
  }
  assert.ok((await e.events(a1.id)).every((x) => x.event.tenant === 'acme' && x.event.stackId === a1.id));
});

test('Engine.start over an existing connection leaves it open on stop', async ({ engine, nats }) => {
  const nc = await connect({ servers: nats!.url });
  try {
    const client = await Engine.start({ connection: nc, worker: false, partitions: 8 });
    const ref = await client.createStack({ name: 'borrowed', template: chain('x') });
    assert.is((await settled(engine!, ref.id, 1)).status, 'READY');
    await client.stop();
    assert.is(nc.isClosed(), false);
  } finally {
    await nc.close();
  }
});

test("while a generation converges, a stack's total is its template's size, not what its shards have reported yet", async ({ engine }) => {
  const e = engine!;
  const t = (v: number) => ({ heat_template_version: '2016-10-14', resources: Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`r${i}`, { type: 'OS::Heat::None', properties: { v } }])) });
  const ref = await e.createStack({ name: 'sized', template: t(1) });
  assert.is((await settled(e, ref.id, 1, 60_000)).resources.total, 1500);
  await e.updateStack(ref.id, { template: t(2) });
  // Sampled from the update to READY: the fan-out resets the shards' reports (two shards of up
  // to 1,000), so a total summed from them alone read 0 or 1,000 meanwhile (and the API then
  // read every resource's state for an "exact" count of a small stack).
  const totals = new Set<number>();
  let ready = false;
  for (const deadline = Date.now() + 60_000; !ready && Date.now() < deadline; ) {
    const s = await e.getStack(ref.id);
    totals.add(s.resources.total);
    ready = s.generation === 2 && s.status === 'READY';
  }
  assert.ok(ready, 'generation 2 READY within 60 s');
  assert.equal([...totals], [1500]);
});

test('a 512 KiB template converges with the default max_payload (specs live in the spec store); patch reads it back', async ({ engine, nats }) => {
  const e = engine!;
  const filler = 'x'.repeat(1024);
  const big = (tag: string) => ({
    heat_template_version: '2016-10-14',
    parameters: { tag: { type: 'string', default: tag } },
    resources: Object.fromEntries(
      Array.from({ length: 512 }, (_, i) => [`r${i}`, { type: 'OS::Heat::TestResource', properties: { value: { list_join: ['-', [{ get_param: 'tag' }, filler]] } } }]),
    ),
    outputs: { first: { value: { get_attr: ['r0', 'output'] } } },
  });
  assert.ok(JSON.stringify(big('a')).length > 512 * 1024);
  const ref = await e.createStack({ name: 'big', template: big('a') });
  const s1 = await settled(e, ref.id, 1, 120_000);
  assert.is(s1.status, 'READY', s1.reason);
  assert.is(s1.resources.total, 512);
  assert.is(s1.outputs.first, `a-${filler}`);
  // The patch carries no template: the engine reads generation 1's from the spec store.
  await e.patchStack(ref.id, { parameters: { tag: 'b' } });
  const s2 = await settled(e, ref.id, 2, 120_000);
  assert.is(s2.status, 'READY', s2.reason);
  assert.is(s2.outputs.first, `b-${filler}`);
  const nc = await connect({ servers: nats!.url });
  try {
    const specs = await new Kvm(nc).open('kiln_specs');
    const keys = async () => {
      const out: string[] = [];
      for await (const k of await specs.keys(`${ref.id}.>`)) out.push(k);
      return out.sort();
    };
    // Two generations kept (current and previous, for cancel), each a head and >= 3 chunks of 256 KiB.
    const stored = await keys();
    // Generation 2's spec is keyed `<gen>-<writer nonce>` (racing writers never touch each other's).
    const gen2 = stored.find((k) => /\.2-[0-9a-f]{8}$/.test(k));
    assert.ok(stored.includes(`${ref.id}.1`) && gen2 && stored.includes(`${gen2}.2`), stored.join(' '));
    await e.deleteStack(ref.id);
    assert.is((await settled(e, ref.id, 3, 120_000)).status, 'DELETED');
    assert.equal(await keys(), [], 'a deleted stack keeps no spec');
  } finally {
    await nc.close();
  }
});

test('a write repeated with its request id gets the first answer: no STACK_EXISTS, no extra generation', async ({ engine }) => {
  const e = engine!;
  const t = (v: string) => ({ heat_template_version: '2016-10-14', resources: { v: { type: 'OS::Heat::Value', properties: { value: v } } } });
  const c1 = await e.createStack({ name: 'retried', template: t('1') }, { requestId: 'req-create' });
  assert.equal(await e.createStack({ name: 'retried', template: t('1') }, { requestId: 'req-create' }), c1);
  try {
    await e.createStack({ name: 'retried', template: t('1') }, { requestId: 'another' });
    assert.unreachable('a different request must not take the name');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'STACK_EXISTS');
  }
  const u1 = await e.updateStack(c1.id, { template: t('2') }, { requestId: 'req-update' });
  assert.is(u1.generation, 2);
  assert.is((await e.updateStack(c1.id, { template: t('2') }, { requestId: 'req-update' })).generation, 2);
  assert.is((await e.patchStack(c1.id, {}, { requestId: 'req-patch' })).generation, 3);
  assert.is((await e.updateStack(c1.id, { template: t('4') })).generation, 4);
  const s = await settled(e, c1.id, 4);
  assert.is(s.status, 'READY', s.reason);
  const d1 = await e.deleteStack(c1.id, { requestId: 'req-delete' });
  assert.equal(await e.deleteStack(c1.id, { requestId: 'req-delete' }), d1);
  assert.is((await settled(e, c1.id, d1.generation)).status, 'DELETED');
});

test.run();
