import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '@kiln/core';
import type { NatsServer } from '@kiln/natsd';
import { ApiService } from '../src/service.js';
import { OPERATIONS } from '../src/operations.js';
import { eventSubject } from '../src/subjects.js';
import { pushedEvent } from '../src/events.js';
import { MemoryBackend } from './memory-backend.js';
import { TEMPLATE, call, connectAs, createEventsStream, err, ok, startTenantServer } from './harness.js';
import { waitFor } from '@kiln/natsd';

interface Ctx {
  server: NatsServer;
  kiln: NatsConnection;
  a: NatsConnection;
  b: NatsConnection;
  admin: NatsConnection;
  backend: MemoryBackend;
  api: ApiService;
}

const ctx = {} as Ctx;
const MAX_BYTES = 200_000;

async function createStack(nc: NatsConnection, tenant: string, name: string, extra: Record<string, unknown> = {}) {
  return ok<{ id: string; name: string; generation: number }>(nc, tenant, 'stack.create', { name, template: TEMPLATE, ...extra });
}

// ---------------------------------------------------------------------------------------------
const api = suite('api: operations');

api.before(async () => {
  ctx.server = await startTenantServer();
  ctx.kiln = await connectAs(ctx.server, 'kiln');
  await createEventsStream(ctx.kiln);
  ctx.backend = new MemoryBackend();
  ctx.api = await ApiService.start({
    nc: ctx.kiln,
    backend: ctx.backend,
    maxRequestBytes: MAX_BYTES,
    quotas: {
      tenants: {
        'tenant-q': { maxStacks: 2, maxTemplateBytes: 2_000, maxResourcesPerStack: 3 },
        'tenant-r': { requestsPerSecond: 0.001, burst: 3 },
      },
    },
  });
  ctx.a = await connectAs(ctx.server, 'tenant-a');
  ctx.b = await connectAs(ctx.server, 'tenant-b');
  ctx.admin = await connectAs(ctx.server, 'admin');
});

api.after(async () => {
  await ctx.api?.stop();
  for (const nc of [ctx.a, ctx.b, ctx.admin, ctx.kiln]) await nc?.close();
  await ctx.server?.stop();
});

api('is a NATS micro service: $SRV.PING and $SRV.INFO list every operation', async () => {
  const ping = JSON.parse((await ctx.a.request('$SRV.PING.kiln-api', '', { timeout: 2_000 })).string());
  assert.is(ping.name, 'kiln-api');
  const info = JSON.parse((await ctx.a.request('$SRV.INFO.kiln-api', '', { timeout: 2_000 })).string());
  const subjects = (info.endpoints as Array<{ subject: string }>).map((e) => e.subject).sort();
  assert.equal(subjects, OPERATIONS.map((o) => `kiln.api.v1.*.${o.name}`).sort());
  for (const op of [
    'stack.create', 'stack.update', 'stack.patch', 'stack.delete', 'stack.show', 'stack.list', 'stack.validate', 'stack.preview',
    'stack.abandon', 'stack.adopt', 'stack.outputs', 'stack.cancel', 'resource.list', 'resource.show', 'resource.mark-unhealthy',
    'resource.signal', 'events.list', 'events.subscribe', 'group.capacity.set', 'engine.status',
  ]) {
    assert.ok(subjects.includes(`kiln.api.v1.*.${op}`), op);
  }
  await ok(ctx.a, 'tenant-a', 'engine.status');
  await call(ctx.a, 'tenant-a', 'stack.show', { stack: 'absent' });
  const stats = JSON.parse((await ctx.a.request('$SRV.STATS.kiln-api', '', { timeout: 2_000 })).string());
  const byName = Object.fromEntries((stats.endpoints as Array<{ name: string; num_requests: number; data: { errors: Record<string, number> } }>).map((e) => [e.name, e]));
  assert.is(byName['engine-status']!.num_requests, 1);
  assert.equal(byName['stack-show']!.data.errors, { STACK_NOT_FOUND: 1 });
});

api('stack.create and stack.show (JSON)', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'web1', { parameters: { flavor: 'm1.large' }, tags: ['prod'] });
  assert.is(g.generation, 1);
  assert.is(g.name, 'web1');
  const s = await ok(ctx.a, 'tenant-a', 'stack.show', { stack: g.id });
  assert.is(s.id, g.id);
  assert.is(s.status, 'CREATE_COMPLETE');
  assert.equal(s.resources, { total: 3, by_status: { CREATE_COMPLETE: 3 } });
  assert.equal(s.parameters, { flavor: 'm1.large' });
  assert.equal(s.tags, ['prod']);
  // By name within the tenant.
  assert.is((await ok(ctx.a, 'tenant-a', 'stack.show', { stack: 'web1' })).id, g.id);
  const dup = await err(ctx.a, 'tenant-a', 'stack.create', { name: 'web1', template: TEMPLATE });
  assert.is(dup.code, 'STACK_EXISTS');
  assert.is(dup.status, 409);
});

api('msgpack requests get msgpack replies', async () => {
  const r = await call(ctx.a, 'tenant-a', 'stack.create', { name: 'packed', template: JSON.stringify(TEMPLATE) }, { encoding: 'msgpack' });
  assert.is(r.headers.contentType, 'application/msgpack');
  assert.ok(r.ok);
  const s = await call(ctx.a, 'tenant-a', 'stack.show', { stack: 'packed' }, { encoding: 'msgpack' });
  assert.ok(s.ok && (s.result as { name: string }).name === 'packed');
  const e = await call(ctx.a, 'tenant-a', 'stack.show', { stack: 'nope' }, { encoding: 'msgpack' });
  assert.is(e.headers.contentType, 'application/msgpack');
  assert.ok(!e.ok && e.error.code === 'STACK_NOT_FOUND' && e.error.status === 404);
  assert.is(e.headers.code, '404');
});

api('stack.update, stack.patch (parameters merged), stack.cancel', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'upd', { parameters: { flavor: 'a', image: 'x' } });
  const u = await ok(ctx.a, 'tenant-a', 'stack.update', { stack: g.id, template: TEMPLATE, parameters: { flavor: 'b', image: 'x' } });
  assert.is(u.generation, 2);
  const p = await ok(ctx.a, 'tenant-a', 'stack.patch', { stack: 'upd', parameters: { flavor: 'c' }, clear_parameters: ['image'] });
  assert.is(p.generation, 3);
  assert.equal((await ok(ctx.a, 'tenant-a', 'stack.show', { stack: g.id })).parameters, { flavor: 'c' });
  const c = await ok(ctx.a, 'tenant-a', 'stack.cancel', { stack: g.id });
  assert.is(c.generation, 4);
  assert.equal((await ok(ctx.a, 'tenant-a', 'stack.show', { stack: g.id })).parameters, { flavor: 'b', image: 'x' });
});

api('stack.list pages and filters', async () => {
  for (const n of ['l1', 'l2', 'l3']) await createStack(ctx.b, 'tenant-b', n);
  const p1 = await ok<{ stacks: Array<{ name: string }>; next_cursor?: string }>(ctx.b, 'tenant-b', 'stack.list', { limit: 2 });
  assert.is(p1.stacks.length, 2);
  assert.ok(p1.next_cursor);
  const p2 = await ok<{ stacks: Array<{ name: string }>; next_cursor?: string }>(ctx.b, 'tenant-b', 'stack.list', { limit: 2, cursor: p1.next_cursor });
  assert.equal([...p1.stacks, ...p2.stacks].map((s) => s.name).sort(), ['l1', 'l2', 'l3']);
  assert.is(p2.next_cursor, undefined);
  const f = await ok<{ stacks: Array<{ name: string }> }>(ctx.b, 'tenant-b', 'stack.list', { filter: { name: 'l2' } });
  assert.equal(f.stacks.map((s) => s.name), ['l2']);
});

api('stack.validate, stack.preview, stack.outputs', async () => {
  const v = await ok(ctx.a, 'tenant-a', 'stack.validate', { template: TEMPLATE });
  assert.is(v.valid, true);
  assert.is(v.resource_count, 3);
  const bad = await err(ctx.a, 'tenant-a', 'stack.validate', { template: { resources: {} } });
  assert.is(bad.code, 'TEMPLATE_INVALID');
  assert.is(bad.path, 'template.heat_template_version');
  const g = await createStack(ctx.a, 'tenant-a', 'prev');
  const next = { ...TEMPLATE, resources: { web: { type: 'OS::Nova::Server' }, lb: { type: 'OS::Octavia::LoadBalancer' } } };
  const pv = await ok<{ resources: Array<{ name: string; action: string }> }>(ctx.a, 'tenant-a', 'stack.preview', { stack: g.id, template: next });
  const actions = Object.fromEntries(pv.resources.map((r) => [r.name, r.action]));
  assert.equal(actions, { web: 'unchanged', lb: 'create', db: 'delete', workers: 'delete' });
  const out = await ok<{ outputs: Array<{ key: string; value: unknown }> }>(ctx.a, 'tenant-a', 'stack.outputs', { stack: g.id });
  assert.equal(out.outputs, [{ key: 'url', value: 'url-of-prev' }]);
  const one = await ok<{ outputs: unknown[] }>(ctx.a, 'tenant-a', 'stack.outputs', { stack: g.id, output: 'url' });
  assert.is(one.outputs.length, 1);
  assert.is((await err(ctx.a, 'tenant-a', 'stack.outputs', { stack: g.id, output: 'nope' })).path, 'body.output');
});

api('stack.abandon then stack.adopt; stack.delete', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'aband');
  const ab = await ok<{ adopt_data: Record<string, unknown> }>(ctx.a, 'tenant-a', 'stack.abandon', { stack: g.id });
  assert.ok(ab.adopt_data.resources);
  assert.is((await err(ctx.a, 'tenant-a', 'stack.show', { stack: g.id })).code, 'STACK_NOT_FOUND');
  const ad = await ok(ctx.a, 'tenant-a', 'stack.adopt', { name: 'aband', template: TEMPLATE, adopt_data: ab.adopt_data });
  assert.is(ad.name, 'aband');
  await ok(ctx.a, 'tenant-a', 'stack.delete', { stack: 'aband' });
  assert.is((await err(ctx.a, 'tenant-a', 'stack.show', { stack: 'aband' })).code, 'STACK_NOT_FOUND');
});

api('resource.list/show/mark-unhealthy/signal and group.capacity.set', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'res');
  const l = await ok<{ resources: Array<{ name: string; physical_id: string; type: string }> }>(ctx.a, 'tenant-a', 'resource.list', { stack: g.id });
  assert.equal(l.resources.map((r) => r.name).sort(), ['db', 'web', 'workers']);
  assert.is(l.resources.find((r) => r.name === 'web')!.physical_id, 'phys-web');
  const f = await ok<{ resources: unknown[] }>(ctx.a, 'tenant-a', 'resource.list', { stack: g.id, filter: { type: 'OS::Heat::ResourceGroup' } });
  assert.is(f.resources.length, 1);
  const r = await ok(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: 'web' });
  assert.equal(r.attributes, { name: 'web' });
  assert.is((await err(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: 'nope' })).code, 'RESOURCE_NOT_FOUND');
  await ok(ctx.a, 'tenant-a', 'resource.mark-unhealthy', { stack: g.id, resource: 'web', reason: 'disk' });
  assert.is((await ok(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: 'web' })).unhealthy, true);
  await ok(ctx.a, 'tenant-a', 'resource.mark-unhealthy', { stack: g.id, resource: 'web', unhealthy: false });
  assert.is((await ok(ctx.a, 'tenant-a', 'resource.show', { stack: g.id, resource: 'web' })).unhealthy, false);
  await ok(ctx.a, 'tenant-a', 'resource.signal', { stack: g.id, resource: 'db', data: { status: 'SUCCESS' } });
  assert.equal(ctx.backend.stacks.get(g.id)!.signals, [{ resource: 'db', data: { status: 'SUCCESS' } }]);
  const cap = await ok(ctx.a, 'tenant-a', 'group.capacity.set', { stack: g.id, group: 'workers', capacity: 5 });
  assert.is(cap.generation, 2);
  assert.is(ctx.backend.stacks.get(g.id)!.capacity.get('workers'), 5);
  assert.is((await err(ctx.a, 'tenant-a', 'group.capacity.set', { stack: g.id, group: 'workers', capacity: -1 })).path, 'body.capacity');
});

api('events.list: paged by sequence, filtered by stack, resource, status, type', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'ev');
  const other = await createStack(ctx.b, 'tenant-b', 'ev');
  const js = jetstream(ctx.kiln);
  const emit = (tenant: string, stack: string, resource: string | undefined, status: string, type = 'OS::Nova::Server') =>
    js.publish(eventSubject(tenant, stack, resource), encode({ status, resource_type: type, generation: 1, timestamp: Date.now(), physical_id: resource && `p-${resource}` }));
  await emit('tenant-a', g.id, undefined, 'CREATE_IN_PROGRESS', 'OS::Heat::Stack');
  await emit('tenant-a', g.id, 'web', 'CREATE_IN_PROGRESS');
  await emit('tenant-b', other.id, 'web', 'CREATE_IN_PROGRESS');
  await emit('tenant-a', g.id, 'web', 'CREATE_COMPLETE');
  await emit('tenant-a', g.id, 'db.primary', 'CREATE_FAILED');
  await emit('tenant-a', g.id, undefined, 'CREATE_COMPLETE', 'OS::Heat::Stack');

  type Page = { events: Array<{ seq: number; stack: string; resource?: string; status: string; tenant: string; physical_id?: string }>; next_seq: number; more: boolean };
  const all = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: g.id });
  assert.is(all.events.length, 5);
  assert.ok(all.events.every((e) => e.tenant === 'tenant-a' && e.stack === g.id));
  const seqs = all.events.map((e) => e.seq);
  assert.equal(seqs, [...seqs].sort((x, y) => x - y));
  assert.is(all.events[2]!.physical_id, 'p-web');

  const p1 = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: 'ev', limit: 2 });
  assert.is(p1.events.length, 2);
  assert.ok(p1.more);
  const p2 = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: 'ev', limit: 10, since_seq: p1.next_seq });
  assert.equal([...p1.events, ...p2.events].map((e) => e.seq), seqs);
  assert.not.ok(p2.more);

  const web = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, resource: 'web' });
  assert.equal(web.events.map((e) => e.status), ['CREATE_IN_PROGRESS', 'CREATE_COMPLETE']);
  const dotted = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, resource: 'db.primary' });
  assert.equal(dotted.events.map((e) => e.resource), ['db.primary']);
  const failed = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { status: 'CREATE_FAILED' });
  assert.equal(failed.events.map((e) => e.resource), ['db.primary']);
  const stackEvents = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, type: 'OS::Heat::Stack' });
  assert.equal(stackEvents.events.map((e) => e.status), ['CREATE_IN_PROGRESS', 'CREATE_COMPLETE']);
  assert.ok(stackEvents.events.every((e) => e.resource === undefined));
  const since = await ok<Page>(ctx.a, 'tenant-a', 'events.list', { stack: g.id, since_time: new Date(Date.now() + 60_000).toISOString() });
  assert.is(since.events.length, 0);
  // Tenant b sees only its own event, even without a stack filter.
  const bs = await ok<Page>(ctx.b, 'tenant-b', 'events.list', {});
  assert.ok(bs.events.length >= 1 && bs.events.every((e) => e.tenant === 'tenant-b'));
});

api('events.subscribe: replay then live events pushed to the caller’s inbox, in order', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'push');
  const js = jetstream(ctx.kiln);
  const emit = (tenant: string, stack: string, resource: string, status: string) => js.publish(eventSubject(tenant, stack, resource), encode({ status }));
  const first = (await emit('tenant-a', g.id, 'web', 'CREATE_IN_PROGRESS')).seq;
  await emit('tenant-b', g.id, 'web', 'CREATE_IN_PROGRESS');
  const inbox = `_INBOX_tenant-a.events.${Date.now()}`;
  const got: Array<{ seq: number; status: string; tenant: string }> = [];
  const consumerSeqs: number[] = [];
  const sub = ctx.a.subscribe(inbox);
  void (async () => {
    for await (const m of sub) {
      const pushed = pushedEvent(m);
      if (!pushed) continue;
      got.push(pushed.event);
      consumerSeqs.push(pushed.consumerSeq);
    }
  })();
  const r = await ok<{ consumer: string; from_seq: number; replay: number }>(ctx.a, 'tenant-a', 'events.subscribe', { deliver_subject: inbox, stack: g.id, since_seq: first });
  assert.is(r.from_seq, first);
  assert.is(r.replay, 1);
  const live = (await emit('tenant-a', g.id, 'db', 'CREATE_COMPLETE')).seq;
  await waitFor('the pushed events', () => (got.length >= 2 ? true : undefined));
  assert.equal(got.map((e) => [e.seq, e.status, e.tenant]), [[first, 'CREATE_IN_PROGRESS', 'tenant-a'], [live, 'CREATE_COMPLETE', 'tenant-a']]);
  assert.equal(consumerSeqs, [1, 2], 'contiguous per subscription, for gap detection');
  sub.unsubscribe();
  // Tenant b cannot deliver into a's inbox, nor follow a's stack.
  const foreignInbox = await err(ctx.b, 'tenant-b', 'events.subscribe', { deliver_subject: inbox });
  assert.is(foreignInbox.path, 'body.deliver_subject');
  assert.is((await err(ctx.b, 'tenant-b', 'events.subscribe', { deliver_subject: '_INBOX_tenant-b.x', stack: g.id })).code, 'STACK_NOT_FOUND');
  assert.is((await err(ctx.a, 'tenant-a', 'events.subscribe', { deliver_subject: 'kiln.api.v1.tenant-a.stack.delete' })).path, 'body.deliver_subject');
});

api('events.list: a page never outgrows one NATS message; the rest follows from next_seq', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'bulky');
  const js = jetstream(ctx.kiln);
  const reason = 'r'.repeat(300_000);
  const seqs: number[] = [];
  for (let i = 0; i < 5; i++) seqs.push((await js.publish(eventSubject('tenant-a', g.id, `r${i}`), encode({ status: 'CREATE_FAILED', reason }))).seq);
  type Page = { events: Array<{ seq: number }>; next_seq: number; more: boolean };
  const seen: number[] = [];
  let since = 1;
  for (let pages = 1; ; pages++) {
    const r = await call(ctx.a, 'tenant-a', 'events.list', { stack: g.id, since_seq: since, limit: 100 });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
    const page = r.result as Page;
    assert.ok(page.events.length > 0 && page.events.length < 5, `page ${pages} has ${page.events.length} events`);
    seen.push(...page.events.map((e) => e.seq));
    since = page.next_seq;
    if (!page.more) break;
    assert.ok(pages < 5);
  }
  assert.equal(seen, seqs);
});

api('engine.status', async () => {
  const s = await ok(ctx.b, 'tenant-b', 'engine.status');
  assert.is(s.version, 'test');
});

function expectNoWrites(before: number) {
  assert.is(ctx.backend.writes.length, before, 'a refused request wrote to the backend');
}

api('malformed requests: every one refused with a code, status and path, and no backend write', async () => {
  const n = ctx.backend.writes.length;
  const enc = new TextEncoder();
  const cases: Array<[string, Parameters<typeof call>[4], unknown, string, string | undefined]> = [
    ['unknown field', {}, { name: 'x', template: TEMPLATE, colour: 'red' }, 'REQUEST_INVALID', 'body.colour'],
    ['missing field', {}, { template: TEMPLATE }, 'REQUEST_INVALID', 'body.name'],
    ['wrong type', {}, { name: 'x', template: TEMPLATE, files: { 'a.yaml': 3 } }, 'REQUEST_INVALID', 'body.files["a.yaml"]'],
    ['bad template kind', {}, { name: 'x', template: 42 }, 'REQUEST_INVALID', 'body.template'],
    ['bad name', {}, { name: '1-starts-with-digit', template: TEMPLATE }, 'REQUEST_INVALID', 'body.name'],
    ['bad request id', {}, { name: 'x', template: TEMPLATE, request_id: 'has space' }, 'REQUEST_INVALID', 'body.request_id'],
    ['body not an object', {}, [1, 2], 'REQUEST_INVALID', 'body'],
    ['invalid JSON', { raw: enc.encode('{"name": "x", ') }, undefined, 'REQUEST_INVALID', 'body'],
    ['invalid UTF-8', { raw: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) }, undefined, 'REQUEST_INVALID', 'body'],
    ['deep JSON', { raw: enc.encode('{"name":"x","template":' + '['.repeat(5_000) + ']'.repeat(5_000) + '}') }, undefined, 'REQUEST_INVALID', 'body'],
    ['invalid msgpack', { raw: new Uint8Array([0xc1, 0xc1]), encoding: 'msgpack' }, undefined, 'REQUEST_INVALID', 'body'],
    ['unsupported content type', { contentType: 'text/yaml' }, { name: 'x', template: TEMPLATE }, 'REQUEST_INVALID', 'headers.Content-Type'],
    ['too large', {}, { name: 'big', template: 'x'.repeat(MAX_BYTES) }, 'REQUEST_TOO_LARGE', 'body'],
  ];
  for (const [label, opts, body, code, path] of cases) {
    const e = await err(ctx.a, 'tenant-a', 'stack.create', body, opts);
    assert.is(e.code, code, label);
    assert.is(e.path, path, label);
    assert.is(e.status, code === 'REQUEST_TOO_LARGE' ? 413 : 400, label);
  }
  // Deep msgpack: nesting beyond the limit is refused even though it decodes.
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  const d = await err(ctx.a, 'tenant-a', 'stack.create', { name: 'deep', template: { heat_template_version: '2021-04-16', x: deep } }, { encoding: 'msgpack' });
  assert.is(d.code, 'REQUEST_INVALID');
  assert.match(d.message, /nests deeper/);
  expectNoWrites(n);
});

api('a request on a tenant token that is not a valid tenant name is refused', async () => {
  const m = await ctx.admin.request('kiln.api.v1.Bad_Tenant.stack.list', '{}', { timeout: 2_000 });
  const r = JSON.parse(m.string());
  assert.is(r.error.code, 'REQUEST_INVALID');
  assert.is(r.error.path, 'subject.tenant');
});

api('replies only to inboxes (no confused deputy through the reply subject)', async () => {
  const seen: string[] = [];
  const sub = ctx.kiln.subscribe('not.an.inbox');
  void (async () => {
    for await (const m of sub) seen.push(m.subject);
  })();
  ctx.kiln.publish('kiln.api.v1.tenant-a.engine.status', '{}', { reply: 'not.an.inbox' });
  await ok(ctx.kiln, 'tenant-a', 'engine.status');
  await ctx.kiln.flush();
  assert.equal(seen, []);
  sub.unsubscribe();
});

// ---------------------------------------------------------------------------------------------
api('request_id: a retried create never creates two stacks; reuse with another body conflicts', async () => {
  const before = await ctx.backend.countStacks('tenant-a');
  const body = { name: 'idem', template: TEMPLATE, request_id: 'req-1' };
  const first = await ok(ctx.a, 'tenant-a', 'stack.create', body);
  const again = await ok(ctx.a, 'tenant-a', 'stack.create', body);
  assert.equal(again, first);
  // The same body in msgpack (another key order) is the same request.
  const packed = await call(ctx.a, 'tenant-a', 'stack.create', { request_id: 'req-1', template: TEMPLATE, name: 'idem' }, { encoding: 'msgpack' });
  assert.ok(packed.ok);
  assert.equal(packed.result, first);
  const conflict = await err(ctx.a, 'tenant-a', 'stack.create', { ...body, name: 'other' });
  assert.is(conflict.code, 'CONFLICT');
  assert.is(conflict.path, 'body.request_id');
  // Concurrent retries of a new request: exactly one stack.
  const par = await Promise.all(Array.from({ length: 6 }, () => call(ctx.a, 'tenant-a', 'stack.create', { name: 'idem2', template: TEMPLATE, request_id: 'req-2' })));
  assert.ok(par.every((r) => r.ok));
  assert.is(new Set(par.map((r) => JSON.stringify(r.ok && r.result))).size, 1);
  assert.is(await ctx.backend.countStacks('tenant-a'), before + 2);
  // The same request id in another tenant is another request.
  const b = await ok(ctx.b, 'tenant-b', 'stack.create', { name: 'idem', template: TEMPLATE, request_id: 'req-1' });
  assert.is.not(b.id, first.id);
  // A failed attempt releases its request id: the retry runs again (and fails again here).
  const failing = { stack: first.id as string, template: { resources: {} }, request_id: 'req-3' };
  assert.is((await err(ctx.a, 'tenant-a', 'stack.update', failing)).code, 'TEMPLATE_INVALID');
  assert.is((await err(ctx.a, 'tenant-a', 'stack.update', failing)).code, 'TEMPLATE_INVALID');
  const u1 = await ok(ctx.a, 'tenant-a', 'stack.update', { stack: first.id as string, template: TEMPLATE, request_id: 'req-4' });
  const u2 = await ok(ctx.a, 'tenant-a', 'stack.update', { stack: first.id as string, template: TEMPLATE, request_id: 'req-4' });
  assert.equal(u2, u1);
  assert.is((await ok(ctx.a, 'tenant-a', 'stack.show', { stack: first.id as string })).generation, u1.generation);
});

// ---------------------------------------------------------------------------------------------
api('quotas: stacks, template bytes, resources per stack (QUOTA_EXCEEDED)', async () => {
  const q = 'tenant-q';
  const small = { heat_template_version: '2021-04-16', resources: { a: { type: 'X' } } };
  await ok(ctx.admin, q, 'stack.create', { name: 's1', template: small });
  const big = { ...small, description: 'x'.repeat(3_000) };
  const tooBig = await err(ctx.admin, q, 'stack.create', { name: 's2', template: big });
  assert.is(tooBig.code, 'QUOTA_EXCEEDED');
  assert.is(tooBig.status, 403);
  assert.is((tooBig.details as { quota: string }).quota, 'template_bytes');
  const many = { heat_template_version: '2021-04-16', resources: { a: { type: 'X' }, b: { type: 'X' }, c: { type: 'X' }, d: { type: 'X' } } };
  const tooMany = await err(ctx.admin, q, 'stack.create', { name: 's2', template: many });
  assert.is((tooMany.details as { quota: string }).quota, 'resources_per_stack');
  const s2 = await ok(ctx.admin, q, 'stack.create', { name: 's2', template: small });
  const third = await err(ctx.admin, q, 'stack.create', { name: 's3', template: small });
  assert.is((third.details as { quota: string }).quota, 'stacks');
  const cap = await err(ctx.admin, q, 'group.capacity.set', { stack: s2.id as string, group: 'a', capacity: 4 });
  assert.is((cap.details as { quota: string }).quota, 'resources_per_stack');
  // Other tenants are unlimited by default.
  for (const n of ['u1', 'u2', 'u3']) await ok(ctx.b, 'tenant-b', 'stack.create', { name: n, template: big });
});

api('quotas: request rate (RATE_LIMITED with a retry hint)', async () => {
  const results = [];
  for (let i = 0; i < 5; i++) results.push(await call(ctx.admin, 'tenant-r', 'stack.list', {}));
  assert.equal(results.map((r) => r.ok), [true, true, true, false, false]);
  const e = results[3]!;
  assert.ok(!e.ok && e.error.code === 'RATE_LIMITED' && e.error.status === 429);
  assert.ok(!e.ok && (e.error.details as { retry_after_ms: number }).retry_after_ms > 0);
  // Another tenant is not affected.
  await ok(ctx.admin, 'tenant-b', 'stack.list', {});
});

// ---------------------------------------------------------------------------------------------
api('tenancy: every operation refuses another tenant’s stack as not found, without side effects', async () => {
  const g = await createStack(ctx.a, 'tenant-a', 'private');
  const id = g.id;
  const n = ctx.backend.writes.length;
  const crossing: Array<[string, Record<string, unknown>]> = [
    ['stack.update', { stack: id, template: TEMPLATE }],
    ['stack.patch', { stack: id, parameters: { flavor: 'evil' } }],
    ['stack.delete', { stack: id }],
    ['stack.show', { stack: id }],
    ['stack.preview', { stack: id, template: TEMPLATE }],
    ['stack.abandon', { stack: id }],
    ['stack.outputs', { stack: id }],
    ['stack.cancel', { stack: id }],
    ['resource.list', { stack: id }],
    ['resource.show', { stack: id, resource: 'web' }],
    ['resource.mark-unhealthy', { stack: id, resource: 'web' }],
    ['resource.signal', { stack: id, resource: 'web' }],
    ['events.list', { stack: id }],
    ['events.subscribe', { stack: id, deliver_subject: '_INBOX_tenant-b.x' }],
    ['group.capacity.set', { stack: id, group: 'workers', capacity: 9 }],
  ];
  for (const [op, body] of crossing) {
    const e = await err(ctx.b, 'tenant-b', op, body);
    assert.is(e.code, 'STACK_NOT_FOUND', op);
    assert.is(e.status, 404, op);
  }
  expectNoWrites(n);
  // By name, the name resolves in the caller's own tenant only.
  assert.is((await err(ctx.b, 'tenant-b', 'stack.show', { stack: 'private' })).code, 'STACK_NOT_FOUND');
  // Listing, validate and create stay within the tenant.
  const list = await ok<{ stacks: Array<{ id: string }> }>(ctx.b, 'tenant-b', 'stack.list', { limit: 1000 });
  assert.not.ok(list.stacks.some((s) => s.id === id));
  await ok(ctx.b, 'tenant-b', 'stack.create', { name: 'private', template: TEMPLATE });
  await ok(ctx.b, 'tenant-b', 'stack.adopt', { name: 'private2', template: TEMPLATE, adopt_data: {} });
  assert.is((await ok(ctx.a, 'tenant-a', 'stack.show', { stack: 'private' })).id, id, "a's stack is untouched");
  // The admin may act on any tenant.
  assert.is((await ok(ctx.admin, 'tenant-a', 'stack.show', { stack: id })).id, id);
});

api('tenancy: nats-server permissions stop a tenant from speaking for another or reading its replies', async () => {
  // Publishing on another tenant's API prefix is a permissions violation: no reply ever comes.
  const crossed = await ctx.b.request('kiln.api.v1.tenant-a.stack.list', '{}', { timeout: 1_000 }).then(
    () => 'answered',
    (e: Error) => e.message,
  );
  assert.is.not(crossed, 'answered');
  // Nor may it subscribe to another tenant's inbox, to API subjects or to the events.
  for (const subject of ['_INBOX_tenant-a.>', 'kiln.api.v1.>', 'kiln.events.>', '_INBOX.>']) {
    const nc = await connectAs(ctx.server, 'tenant-b');
    const closed = nc.closed();
    const sub = nc.subscribe(subject);
    const done = (async () => {
      try {
        for await (const _ of sub) break;
        return 'ended';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    const outcome = await done;
    assert.match(outcome, /permission/i, subject);
    await nc.close();
    await closed;
  }
  // Nor use JetStream (streams, KV, consumers) directly.
  const jsm = await jetstreamManager(ctx.b, { timeout: 1_000 }).then(
    () => 'allowed',
    (e: Error) => e.message,
  );
  assert.is.not(jsm, 'allowed');
});

api.run();
