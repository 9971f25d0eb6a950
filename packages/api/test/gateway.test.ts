import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '@kiln/core';
import type { NatsServer } from '@kiln/natsd';
import { ApiService } from '../src/service.js';
import { Gateway, CLOSE, parseGatewayArgs } from '../src/gateway.js';
import { EVENTS_STREAM, eventFilter, eventSubject } from '../src/subjects.js';
import { MemoryBackend } from './memory-backend.js';
import { PASSWORDS, TEMPLATE, connectAs, createEventsStream, ok, startTenantServer } from './harness.js';
import { WsClient } from './ws-client.js';
import { waitFor } from '@kiln/natsd';

interface Ctx {
  server: NatsServer;
  kiln: NatsConnection;
  js: JetStreamClient;
  api: ApiService;
  gw: Gateway;
  ws: string;
  clients: WsClient[];
}
const ctx = { clients: [] } as unknown as Ctx;

async function client(token = 'tok-a'): Promise<WsClient> {
  const c = await WsClient.authed(ctx.ws, token);
  ctx.clients.push(c);
  return c;
}

/** Publishes an event as the engine does and returns its stream sequence. */
async function emit(tenant: string, stack: string, resource: string | undefined, status: string, extra: Record<string, unknown> = {}): Promise<number> {
  const ack = await ctx.js.publish(eventSubject(tenant, stack, resource), encode({ status, resource_type: 'OS::Nova::Server', generation: 1, timestamp: Date.now(), ...extra }));
  return ack.seq;
}

const gw = suite('gateway: web-socket event stream');

gw.before(async () => {
  ctx.server = await startTenantServer();
  ctx.kiln = await connectAs(ctx.server, 'kiln');
  ctx.js = jetstream(ctx.kiln);
  await createEventsStream(ctx.kiln);
  ctx.api = await ApiService.start({ nc: ctx.kiln, backend: new MemoryBackend() });
  ctx.gw = await Gateway.start({
    servers: ctx.server.url,
    user: 'gateway',
    pass: PASSWORDS.KILN_GATEWAY_PASSWORD,
    tokens: { 'tok-a': 'tenant-a', 'tok-b': 'tenant-b' },
    heartbeatMs: 300,
    authTimeoutMs: 500,
    maxBufferedBytes: 256 * 1024,
  });
  ctx.ws = ctx.gw.url.replace(/^http/, 'ws');
});

gw.after.each(() => {
  for (const c of ctx.clients.splice(0)) c.close();
});

gw.after(async () => {
  await ctx.gw?.stop();
  await ctx.api?.stop();
  await ctx.kiln?.close();
  await ctx.server?.stop();
});

gw('serves the page, a health check and 404s', async () => {
  const page = await fetch(`${ctx.gw.url}/`);
  assert.is(page.status, 200);
  assert.match(await page.text(), /<title>Kiln/);
  const health = await fetch(`${ctx.gw.url}/healthz`);
  assert.is(((await health.json()) as { ok: boolean }).ok, true);
  assert.is((await fetch(`${ctx.gw.url}/nope`)).status, 404);
  await WsClient.open(`${ctx.ws}/elsewhere`).then(
    () => assert.unreachable('upgrade on another path'),
    (e: Error) => assert.match(e.message, /404|Unexpected/),
  );
});

gw('authentication: token in the query or as first message; bad or missing token closes 4001', async () => {
  const q = await WsClient.open(`${ctx.ws}/events?token=tok-b`);
  ctx.clients.push(q);
  assert.is((await q.next('welcome')).tenant, 'tenant-b');
  const first = await client('tok-a');
  assert.is((await first.next('welcome')).tenant, 'tenant-a');
  const bad = await WsClient.open(`${ctx.ws}/events?token=nope`);
  assert.equal(await bad.waitClosed(), { code: CLOSE.UNAUTHORIZED, reason: 'invalid token' });
  const proto = await WsClient.open(`${ctx.ws}/events?token=__proto__`);
  assert.is((await proto.waitClosed()).code, CLOSE.UNAUTHORIZED);
  const early = await WsClient.open(`${ctx.ws}/events`);
  early.send({ type: 'subscribe' });
  assert.equal(await early.waitClosed(), { code: CLOSE.UNAUTHORIZED, reason: 'authenticate first' });
  const silent = await WsClient.open(`${ctx.ws}/events`);
  assert.equal(await silent.waitClosed(), { code: CLOSE.UNAUTHORIZED, reason: 'authentication timeout' });
});

gw('replay from a sequence, caught_up, then live events; never another tenant’s or stack’s', async () => {
  const seqs: number[] = [];
  seqs.push(await emit('tenant-a', 'stk-replay', undefined, 'CREATE_IN_PROGRESS'));
  await emit('tenant-b', 'stk-replay', 'web', 'CREATE_IN_PROGRESS');
  seqs.push(await emit('tenant-a', 'stk-replay', 'web', 'CREATE_IN_PROGRESS'));
  await emit('tenant-a', 'stk-other', 'web', 'CREATE_IN_PROGRESS');
  seqs.push(await emit('tenant-a', 'stk-replay', 'web', 'CREATE_COMPLETE'));
  const c = await client();
  c.send({ type: 'subscribe', filter: { stack: 'stk-replay' }, from_seq: seqs[1] });
  const sub = await c.next('subscribed');
  assert.is(sub.from_seq, seqs[1]);
  assert.is(sub.replay, 2);
  const caught = await c.next('caught_up');
  assert.is(caught.seq, seqs[2]);
  assert.equal(c.seqs(), seqs.slice(1));
  // Live.
  seqs.push(await emit('tenant-b', 'stk-replay', 'web', 'CREATE_COMPLETE'));
  seqs.pop();
  seqs.push(await emit('tenant-a', 'stk-replay', 'db', 'CREATE_COMPLETE'));
  await waitFor('the live event', () => c.seqs().includes(seqs[3]!));
  assert.equal(c.seqs(), seqs.slice(1));
  assert.ok(c.events().every((e) => e.tenant === 'tenant-a' && e.stack === 'stk-replay'));
  assert.is(c.events()[2]!.resource, 'db');
});

gw('filters: resource, type, status; replay from a time; live-only without a start', async () => {
  const t0 = new Date().toISOString();
  const web1 = await emit('tenant-a', 'stk-filter', 'web', 'CREATE_IN_PROGRESS');
  const db = await emit('tenant-a', 'stk-filter', 'db', 'CREATE_FAILED', { resource_type: 'OS::Cinder::Volume' });
  const web2 = await emit('tenant-a', 'stk-filter', 'web', 'CREATE_COMPLETE');
  const byRes = await client();
  byRes.send({ type: 'subscribe', filter: { stack: 'stk-filter', resource: 'web' }, from_seq: 1 });
  await byRes.next('caught_up');
  assert.equal(byRes.seqs(), [web1, web2]);
  const byType = await client();
  byType.send({ type: 'subscribe', filter: { stack: 'stk-filter', type: 'OS::Cinder::Volume' }, from_time: t0 });
  await byType.next('caught_up');
  assert.equal(byType.seqs(), [db]);
  const byStatus = await client();
  byStatus.send({ type: 'subscribe', filter: { status: ['CREATE_FAILED', 'CREATE_COMPLETE'] }, from_time: t0 });
  await byStatus.next('caught_up');
  assert.equal(byStatus.seqs(), [db, web2]);
  const live = await client();
  live.send({ type: 'subscribe', filter: { stack: 'stk-filter' } });
  assert.is((await live.next('subscribed')).replay, 0);
  await live.next('caught_up');
  const later = await emit('tenant-a', 'stk-filter', 'web', 'UPDATE_IN_PROGRESS');
  await waitFor('the live event', () => live.seqs().length === 1);
  assert.equal(live.seqs(), [later]);
  const bad = await client();
  bad.send({ type: 'subscribe', filter: { resource: 'web' } });
  const e = await bad.next('error');
  assert.is((e.error as { path: string }).path, 'message.filter.resource');
});

gw('resume after a disconnect: no gap, no duplicate', async () => {
  const all: number[] = [];
  for (let i = 0; i < 5; i++) all.push(await emit('tenant-a', 'stk-resume', `r${i}`, 'CREATE_IN_PROGRESS'));
  const c1 = await client();
  c1.send({ type: 'subscribe', filter: { stack: 'stk-resume' }, from_seq: 1 });
  await c1.next('caught_up');
  c1.close(); // abrupt: no close handshake
  for (let i = 0; i < 5; i++) all.push(await emit('tenant-a', 'stk-resume', `r${i}`, 'CREATE_COMPLETE'));
  const last = c1.seqs().at(-1)!;
  const c2 = await client();
  c2.send({ type: 'subscribe', filter: { stack: 'stk-resume' }, from_seq: last + 1 });
  await c2.next('caught_up');
  all.push(await emit('tenant-a', 'stk-resume', 'r0', 'UPDATE_IN_PROGRESS'));
  await waitFor('the live event after resume', () => c2.seqs().includes(all.at(-1)!));
  assert.equal([...c1.seqs(), ...c2.seqs()], all);
  await waitFor('the first consumer to be gone', () => ctx.gw.stats().subscriptions === 1 || undefined);
});

gw('a lost consumer closes the socket with 4011 and the sequence to resume from', async () => {
  const first = await emit('tenant-a', 'stk-lost', 'web', 'CREATE_IN_PROGRESS');
  const c = await client();
  c.send({ type: 'subscribe', filter: { stack: 'stk-lost' }, from_seq: first });
  await c.next('caught_up');
  const jsm = await jetstreamManager(ctx.kiln);
  for await (const ci of jsm.consumers.list(EVENTS_STREAM)) {
    if (ci.config.filter_subject === eventFilter('tenant-a', 'stk-lost')) await jsm.consumers.delete(EVENTS_STREAM, ci.name);
  }
  const closed = await c.waitClosed(30_000);
  assert.is(closed.code, CLOSE.INTERRUPTED);
  assert.is(closed.reason, `events interrupted: resume with from_seq=${first + 1}`);
  const next = await emit('tenant-a', 'stk-lost', 'web', 'CREATE_COMPLETE');
  const r = await client();
  r.send({ type: 'subscribe', filter: { stack: 'stk-lost' }, from_seq: first + 1 });
  await r.next('caught_up');
  assert.equal([...c.seqs(), ...r.seqs()], [first, next]);
});

gw('a new subscribe replaces the previous one; a closed socket leaves no consumer behind', async () => {
  const jsm = await jetstreamManager(ctx.kiln);
  const mine = new Set([eventFilter('tenant-a', 'stk-one'), eventFilter('tenant-a', 'stk-two')]);
  const consumers = async () => {
    let n = 0;
    for await (const ci of jsm.consumers.list(EVENTS_STREAM)) if (mine.has(ci.config.filter_subject ?? '')) n++;
    return n;
  };
  const c = await client();
  c.send({ type: 'subscribe', filter: { stack: 'stk-one' } });
  c.send({ type: 'subscribe', filter: { stack: 'stk-two' } });
  await waitFor('two subscribed replies', () => (c.messages.filter((m) => m.type === 'subscribed').length === 2 ? true : undefined));
  await emit('tenant-a', 'stk-one', 'web', 'CREATE_COMPLETE');
  const two = await emit('tenant-a', 'stk-two', 'web', 'CREATE_COMPLETE');
  await waitFor('the event of the second subscription', () => c.seqs().includes(two));
  assert.equal(c.seqs(), [two]);
  assert.is(await consumers(), 1);
  c.close();
  await waitFor('the consumer to be deleted', async () => ((await consumers()) === 0 ? true : undefined));
});

gw('heartbeats carry the last sequence; ping answers pong', async () => {
  const c = await client();
  const s = await emit('tenant-a', 'stk-hb', 'web', 'CREATE_COMPLETE');
  c.send({ type: 'subscribe', filter: { stack: 'stk-hb' }, from_seq: s });
  await c.next('caught_up');
  const n = c.messages.length;
  const hb = await c.next('heartbeat', n);
  assert.is(hb.seq, s);
  c.send({ type: 'ping' });
  await c.next('pong');
});

gw('a slow client is dropped with a reason, the engine is not slowed, and it resumes without gaps', async () => {
  // Its own gateway with rare heartbeats: a client that reads nothing also answers no pings, and
  // the dead-peer check must not end it before the buffer limit does.
  const slowGw = await Gateway.start({
    servers: ctx.server.url,
    user: 'gateway',
    pass: PASSWORDS.KILN_GATEWAY_PASSWORD,
    tokens: { 'tok-a': 'tenant-a' },
    heartbeatMs: 60_000,
    maxBufferedBytes: 256 * 1024,
  });
  try {
    await slowClientCase(slowGw);
  } finally {
    await slowGw.stop();
  }
});

async function slowClientCase(slowGw: Gateway): Promise<void> {
  const base = slowGw.url.replace(/^http/, 'ws');
  const c = await WsClient.authed(base, 'tok-a');
  ctx.clients.push(c);
  c.send({ type: 'subscribe', filter: { stack: 'stk-slow' }, from_seq: 1 });
  await c.next('caught_up');
  // Stop reading: the gateway's send buffer for this socket grows once the kernel buffers are full.
  c.ws.pause();
  const published: number[] = [];
  const reason = 'x'.repeat(4_000);
  const dropsBefore = slowGw.stats().droppedSlow;
  await waitFor(
    'the gateway to drop the slow client',
    async () => {
      if (slowGw.stats().droppedSlow > dropsBefore) return true;
      assert.ok(published.length < 20_000, 'no drop after 80 MB of events');
      // Publishing never waits for the reader: all 200 acks come back while the client reads nothing.
      const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => ctx.js.publish(eventSubject('tenant-a', 'stk-slow', `r${i}`), encode({ status: 'CREATE_IN_PROGRESS', reason }))));
      published.push(...acks.map((a) => a.seq));
      return undefined;
    },
    60_000,
  );
  c.ws.resume();
  const closed = await c.waitClosed(30_000);
  assert.is(closed.code, CLOSE.SLOW);
  const m = /from_seq=(\d+)/.exec(closed.reason);
  assert.ok(m, closed.reason);
  const got = c.seqs();
  assert.is(Number(m![1]), got.at(-1)! + 1, 'the reason names the sequence after the last delivered event');
  assert.equal(got, published.slice(0, got.length));
  assert.ok(got.length < published.length, 'dropped before the end');
  const r = await WsClient.authed(base, 'tok-a');
  ctx.clients.push(r);
  r.send({ type: 'subscribe', filter: { stack: 'stk-slow' }, from_seq: Number(m![1]) });
  await r.next('caught_up', 0, 30_000);
  assert.equal([...got, ...r.seqs()], published);
}

gw('isolation: a tenant’s socket never sees or reads another tenant’s stacks', async () => {
  const natsA = await connectAs(ctx.server, 'tenant-a');
  const stack = await ok<{ id: string }>(natsA, 'tenant-a', 'stack.create', { name: 'mine', template: TEMPLATE });
  await natsA.close();
  const b = await client('tok-b');
  b.send({ type: 'subscribe', filter: { stack: stack.id }, from_seq: 1 });
  await b.next('caught_up');
  await emit('tenant-a', stack.id, 'web', 'CREATE_COMPLETE');
  const theirs = await emit('tenant-b', stack.id, 'web', 'CREATE_COMPLETE');
  await waitFor('b’s own event', () => b.seqs().includes(theirs));
  assert.equal(b.seqs(), [theirs]);
  b.send({ type: 'request', id: 1, op: 'stack.show', body: { stack: stack.id } });
  const reply = await b.next('reply');
  assert.is(reply.ok, false);
  assert.is((reply.error as { code: string }).code, 'STACK_NOT_FOUND');
  b.send({ type: 'request', id: 2, op: 'stack.delete', body: { stack: stack.id } });
  const refused = await b.next('error');
  assert.is(refused.id, 2);
  assert.is((refused.error as { path: string }).path, 'message.op');
  const a = await client('tok-a');
  a.send({ type: 'request', id: 'x', op: 'stack.show', body: { stack: 'mine' } });
  const mine = await a.next('reply');
  assert.is(mine.ok, true);
  assert.is((mine.result as { id: string }).id, stack.id);
});

gw('kiln gateway arguments', () => {
  const o = parseGatewayArgs(['--nats', 'nats://h:1', '--port', '0', '--token', 'k1=tenant-a', '--token', 'k2=tenant-b'], {});
  assert.equal(o.servers, ['nats://h:1']);
  assert.equal(o.tokens, { k1: 'tenant-a', k2: 'tenant-b' });
  assert.equal(parseGatewayArgs([], { KILN_GATEWAY_TOKENS: '{"t":"x"}', KILN_NATS_URL: 'nats://e:2' }).tokens, { t: 'x' });
  assert.throws(() => parseGatewayArgs([], {}), /no tokens/);
  assert.throws(() => parseGatewayArgs(['--bogus'], {}), /unknown argument/);
});

gw.run();
