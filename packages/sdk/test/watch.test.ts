import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstreamManager } from '@nats-io/jetstream';
import { Empty, headers } from '@nats-io/transport-node';
import { KilnError } from '@kiln/core';
import { EVENTS_STREAM } from '@kiln/api';
import type { EventWatch, KilnClient, KilnEvent } from '../src/index.js';
import { Installation, chain } from './fixture.js';
import { waitFor } from '@kiln/natsd';

/**
 * watch() against the real API's events.subscribe. Events are published the way the engine
 * contract in docs/api.md says (the test plays the engine's event emitter), into the stream the
 * engine created, for a stack the real engine holds.
 */
const ctx = {} as { k: Installation; a: KilnClient; b: KilnClient; stackId: string };
const test = suite('watch: replay, follow, resume');

test.before(async () => {
  ctx.k = await Installation.start();
  ctx.a = await ctx.k.client('tenant-a');
  ctx.b = await ctx.k.client('tenant-b');
  ctx.stackId = (await ctx.a.createStack('watched', { template: chain('w') })).id;
  const other = (await ctx.a.createStack('other', { template: chain('o') })).id;
  // The engine publishes the stacks' own events too: let them finish (the stack-level
  // CREATE_COMPLETE is its last) so that only the test's events follow in the stream.
  for (const stack of [ctx.stackId, other]) {
    await waitFor(`${stack} CREATE_COMPLETE event`, async () =>
      (await ctx.a.listEvents({ stack, status: 'CREATE_COMPLETE', limit: 1000 })).events.some((e) => e.resource === undefined) || undefined,
    );
  }
});

test.after(async () => {
  for (const c of [ctx.a, ctx.b]) await c?.close();
  await ctx.k?.stop();
});

/** Reads events from the watch in the background. */
function collect(w: EventWatch): { events: KilnEvent[]; done: Promise<unknown> } {
  const events: KilnEvent[] = [];
  const done = (async () => {
    try {
      for await (const e of w) events.push(e);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  return { events, done };
}

function untilCount(got: { events: KilnEvent[] }, n: number, timeoutMs = 30_000) {
  return waitFor(`${n} events (have ${got.events.length})`, () => got.events.length >= n || undefined, timeoutMs);
}

const emit = (resource: string, status: string, stack = ctx.stackId) => ctx.k.emit('tenant-a', stack, resource, status);

test('replays from a sequence, then follows live events of the stack only, in order', async () => {
  const first = await emit('r0', 'CREATE_IN_PROGRESS');
  const otherStack = (await ctx.a.showStack('other')).id;
  await emit('x', 'CREATE_IN_PROGRESS', otherStack);
  await ctx.k.emit('tenant-b', ctx.stackId, 'r0', 'CREATE_IN_PROGRESS');
  const w = ctx.a.watch('watched', { fromSequence: first, heartbeatMs: 500 });
  const got = collect(w);
  await untilCount(got, 1);
  const live = [await emit('r1', 'CREATE_COMPLETE'), await emit('r2', 'CREATE_COMPLETE')];
  await untilCount(got, 3);
  w.close();
  assert.is(await got.done, undefined, 'close ends the iteration');
  assert.equal(got.events.map((e) => [e.seq, e.resource, e.tenant, e.stack]), [
    [first, 'r0', 'tenant-a', ctx.stackId],
    [live[0], 'r1', 'tenant-a', ctx.stackId],
    [live[1], 'r2', 'tenant-a', ctx.stackId],
  ]);
  assert.is(w.lastSeq, live[1]);
});

test('a later watch from lastSeq + 1 continues exactly; without a start it only sees new events', async () => {
  const a = await emit('s1', 'UPDATE_IN_PROGRESS');
  const w1 = ctx.a.watch(ctx.stackId, { fromSequence: a, heartbeatMs: 500 });
  const g1 = collect(w1);
  await untilCount(g1, 1);
  w1.close();
  const b = await emit('s2', 'UPDATE_COMPLETE');
  const c = await emit('s3', 'UPDATE_COMPLETE');
  const w2 = ctx.a.watch(ctx.stackId, { fromSequence: w1.lastSeq! + 1, heartbeatMs: 500 });
  const g2 = collect(w2);
  await untilCount(g2, 2);
  const liveOnly = ctx.a.watch(ctx.stackId, { heartbeatMs: 500 });
  const g3 = collect(liveOnly);
  await waitFor('the live-only watch to subscribe', () => liveOnly.subscriptions === 1 || undefined);
  const d = await emit('s4', 'UPDATE_COMPLETE');
  await untilCount(g2, 3);
  await untilCount(g3, 1);
  w2.close();
  liveOnly.close();
  assert.equal(g2.events.map((e) => e.seq), [b, c, d]);
  assert.equal(g3.events.map((e) => e.seq), [d]);
});

test('filters: resource on the server, type and status in the client; since a time', async () => {
  const before = new Date();
  const seqs = [await emit('web', 'CREATE_FAILED'), await emit('db', 'CREATE_FAILED'), await emit('web', 'CREATE_COMPLETE')];
  const webWatch = ctx.a.watch('watched', { since: before, filters: { resource: 'web' }, heartbeatMs: 500 });
  const failedWatch = ctx.a.watch('watched', { fromSequence: seqs[0], filters: { status: ['CREATE_FAILED'], type: 'OS::Heat::TestResource' }, heartbeatMs: 500 });
  const web = collect(webWatch);
  const failed = collect(failedWatch);
  await untilCount(web, 2);
  await untilCount(failed, 2);
  webWatch.close();
  failedWatch.close();
  assert.equal(web.events.map((e) => [e.seq, e.resource]), [[seqs[0], 'web'], [seqs[2], 'web']]);
  assert.equal(failed.events.map((e) => e.seq), [seqs[0], seqs[1]]);
});

test('events(): every stored event of the stack, page after page', async () => {
  const all: number[] = [];
  for await (const e of ctx.a.events({ stack: 'watched', limit: 2 })) all.push(e.seq);
  const page = await ctx.a.listEvents({ stack: 'watched', limit: 1000 });
  assert.ok(all.length > 2, 'more than one page');
  assert.equal(all, page.events.map((e) => e.seq));
});

test('an abort signal ends the iteration', async () => {
  const stop = new AbortController();
  const first = await emit('ab', 'CREATE_COMPLETE');
  const w = ctx.a.watch(ctx.stackId, { fromSequence: first, heartbeatMs: 500, signal: stop.signal });
  const got = collect(w);
  await untilCount(got, 1);
  stop.abort();
  assert.is(await got.done, undefined);
  assert.equal(got.events.map((e) => e.seq), [first]);
});

test('closing the client ends its watches with UNAVAILABLE', async () => {
  const c = await ctx.k.client('tenant-a');
  const w = c.watch(ctx.stackId, { heartbeatMs: 500 });
  const got = collect(w);
  await waitFor('the subscription', () => w.subscriptions === 1 || undefined);
  await c.close();
  const err = await got.done;
  assert.instance(err, KilnError);
  assert.is((err as KilnError).code, 'UNAVAILABLE');
});

test('errors: an unknown or foreign stack ends the watch with a typed error', async () => {
  const err = await collect(ctx.a.watch('nope', { heartbeatMs: 500 })).done;
  assert.instance(err, KilnError);
  assert.is((err as KilnError).code, 'STACK_NOT_FOUND');
  const foreign = await collect(ctx.b.watch(ctx.stackId, { heartbeatMs: 500 })).done;
  assert.is((foreign as KilnError).code, 'STACK_NOT_FOUND');
});

test('a consumer lost on the server: silence past three heartbeats, resubscribe, no gap', async () => {
  const first = await emit('c0', 'CREATE_IN_PROGRESS');
  const w = ctx.a.watch(ctx.stackId, { fromSequence: first, heartbeatMs: 500 });
  const got = collect(w);
  await untilCount(got, 1);
  const jsm = await jetstreamManager(ctx.k.kiln);
  for await (const c of jsm.consumers.list(EVENTS_STREAM)) if (c.name.startsWith('kiln_ev_')) await jsm.consumers.delete(EVENTS_STREAM, c.name);
  const during = [await emit('c1', 'CREATE_COMPLETE'), await emit('c2', 'CREATE_COMPLETE')];
  await untilCount(got, 3);
  w.close();
  assert.equal(got.events.map((e) => e.seq), [first, ...during]);
  assert.ok(w.subscriptions >= 2, `resubscribed (${w.subscriptions})`);
});

/** The deliver subject of the watch's current push consumer (only one watch is open). */
async function deliverSubject(): Promise<string> {
  const jsm = await jetstreamManager(ctx.k.kiln);
  return waitFor('the push consumer', async () => {
    for await (const c of jsm.consumers.list(EVENTS_STREAM)) if (c.name.startsWith('kiln_ev_') && c.config.deliver_subject) return c.config.deliver_subject;
    return undefined;
  });
}

test('lost messages at the tail (an idle heartbeat names a later consumer sequence): resubscribe from the last event', async () => {
  const jsm = await jetstreamManager(ctx.k.kiln);
  for await (const c of jsm.consumers.list(EVENTS_STREAM)) if (c.name.startsWith('kiln_ev_')) await jsm.consumers.delete(EVENTS_STREAM, c.name);
  const first = await emit('g0', 'CREATE_IN_PROGRESS');
  const w = ctx.a.watch(ctx.stackId, { fromSequence: first, heartbeatMs: 500 });
  const got = collect(w);
  try {
    await untilCount(got, 1);
    await waitFor('the first subscription', () => w.subscriptions === 1 || undefined);
    // What the server sends when idle: its last consumer sequence is 99, we received 1.
    const h = headers(100, 'Idle Heartbeat');
    h.set('Nats-Last-Consumer', '99');
    ctx.k.kiln.publish(await deliverSubject(), Empty, { headers: h });
    await waitFor('the resubscription', () => w.subscriptions >= 2 || undefined);
    const second = await emit('g1', 'CREATE_COMPLETE');
    await untilCount(got, 2);
    assert.equal(got.events.map((e) => [e.seq, e.status]), [[first, 'CREATE_IN_PROGRESS'], [second, 'CREATE_COMPLETE']]);
  } finally {
    w.close();
  }
});

test('a slow reader: the watch pauses at maxBuffered and resumes from the stream, all events once, in order', async () => {
  const seqs: number[] = [];
  for (let i = 0; i < 40; i++) seqs.push(await emit(`slow${i}`, 'CREATE_COMPLETE'));
  const w = ctx.a.watch(ctx.stackId, { fromSequence: seqs[0], maxBuffered: 6, heartbeatMs: 500 });
  const got: number[] = [];
  for await (const e of w) {
    got.push(e.seq);
    // Read slower than the server pushes, so the buffer fills.
    await new Promise((r) => setTimeout(r, 5));
    if (got.length === seqs.length) break;
  }
  assert.equal(got, seqs);
  assert.ok(w.subscriptions >= 2, `paused and resubscribed (${w.subscriptions})`);
});

test('nats-server restart: the watch reconnects and resumes after the last event, without gaps or duplicates', async () => {
  const first = await emit('n0', 'CREATE_IN_PROGRESS');
  const w = ctx.a.watch(ctx.stackId, { fromSequence: first, heartbeatMs: 500 });
  const got = collect(w);
  const before = [first, await emit('n1', 'CREATE_IN_PROGRESS'), await emit('n2', 'CREATE_IN_PROGRESS')];
  await untilCount(got, 3);
  await ctx.k.server.restart();
  // The events stream is on disk; the push consumer was in memory and is gone.
  const otherStack = (await ctx.a.showStack('other')).id;
  await waitFor('JetStream back after the restart', async () => (await emit('ping', 'CHECK_COMPLETE', otherStack)) > 0, 60_000);
  const after = [await emit('n3', 'CREATE_COMPLETE'), await emit('n4', 'CREATE_COMPLETE')];
  await untilCount(got, 5, 60_000);
  const more = await emit('n5', 'CREATE_COMPLETE');
  await untilCount(got, 6, 30_000);
  w.close();
  const seqs = got.events.map((e) => e.seq);
  assert.equal(seqs, [...before, ...after, more]);
  assert.ok(w.subscriptions >= 2, `resubscribed (${w.subscriptions})`);
});

test.run();
