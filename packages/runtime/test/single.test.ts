import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { decode, encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { MailboxClient, Runtime, actorKey, effectId, partitionOf, type Outgoing, type RuntimeOptions, type TaskHandler } from '../src/index.js';
import type { ActorRecord } from '../src/step.js';
import { counter, type CounterState } from './fixtures/counter.js';

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  runtimes: Runtime[];
  n: number;
}

const S = suite<Ctx>('runtime single node');
const PARTITIONS = 8;

S.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  ctx.runtimes = [];
  ctx.n = 0;
});
S.after.each(async (ctx) => {
  await Promise.all(ctx.runtimes.splice(0).map((r) => r.stop()));
});
S.after(async (ctx) => {
  await ctx.nc.close();
  await ctx.nats.stop();
});

/** A runtime on a fresh prefix (each test gets its own buckets and streams). */
async function start(ctx: Ctx, extra: Partial<RuntimeOptions> = {}, prefix = `t${++ctx.n}`): Promise<Runtime> {
  const rt = await Runtime.start({
    servers: ctx.nats.url,
    nodeId: `n${ctx.runtimes.length}`,
    behaviors: [counter],
    partitions: PARTITIONS,
    leaseMs: 2000,
    prefix,
    eventsSubject: `${prefix}.events`,
    tasks: { echo: async (input) => input },
    ...extra,
  });
  ctx.runtimes.push(rt);
  await waitFor('partitions owned', () => rt.metrics().partitionsOwned === PARTITIONS);
  return rt;
}

const stateOf = async (rt: Runtime, a: string) => (await rt.read(a)) as CounterState | null;

S('messages to one actor are applied in order, actors run concurrently', async (ctx) => {
  const rt = await start(ctx);
  const actors = 50;
  const per = 40;
  const sends: Promise<void>[] = [];
  for (let s = 1; s <= per; s++) for (let a = 0; a < actors; a++) sends.push(rt.send(`counter/o${a}`, { op: 'inc', tag: 'x', seq: s }));
  await Promise.all(sends);
  await waitFor('all processed', () => rt.metrics().processed >= actors * per);
  for (let a = 0; a < actors; a++) {
    const st = await stateOf(rt, `counter/o${a}`);
    assert.is(st?.n, per);
    assert.is(st?.disorder, 0);
    assert.is(st?.last.x, per);
  }
  // Batching: fewer state writes than messages is allowed, more is not.
  assert.ok(rt.metrics().stateWrites <= actors * per);
  assert.is(rt.metrics().redeliveries, 0);
});

S('cold actors assumed new (most recent ones were) still get their stored record: nothing lost, no fencing', async (ctx) => {
  const prefix = `t${++ctx.n}`;
  const first = await start(ctx, {}, prefix);
  const old = Array.from({ length: 5 }, (_, a) => `counter/old${a}`);
  for (const a of old) await first.send(a, { op: 'inc' });
  await waitFor('old actors stored', async () => (await Promise.all(old.map((a) => stateOf(first, a)))).every((st) => st?.n === 1));
  await first.stop();
  ctx.runtimes.splice(ctx.runtimes.indexOf(first), 1);
  const rt = await start(ctx, {}, prefix);
  // A run of new actors makes the node write cold actors without reading them first.
  await Promise.all(Array.from({ length: 60 }, (_, a) => rt.send(`counter/new${a}`, { op: 'inc' })));
  await waitFor('new actors processed', () => rt.metrics().processed >= 60);
  for (const a of old) await rt.send(a, { op: 'inc' });
  await waitFor('old actors processed', () => rt.metrics().processed >= 65);
  for (const a of old) assert.is((await stateOf(rt, a))?.n, 2, a);
  assert.is((await stateOf(rt, 'counter/new7'))?.n, 1);
  assert.is(rt.metrics().fencings, 0);
});

S('a caller-given msgId makes send idempotent', async (ctx) => {
  const rt = await start(ctx);
  await rt.send('counter/idem', { op: 'inc' }, { msgId: 'once' });
  await rt.send('counter/idem', { op: 'inc' }, { msgId: 'once' });
  await rt.send('counter/idem', { op: 'inc' }, { msgId: 'twice' });
  await waitFor('processed', async () => (await stateOf(rt, 'counter/idem'))?.n === 2);
  await waitFor('settled', () => rt.metrics().inFlight === 0);
  assert.is((await stateOf(rt, 'counter/idem'))?.n, 2);
});

S('exactly once under redelivery: stored-but-unacknowledged messages are skipped, their outbox republished', async (ctx) => {
  const prefix = `t${++ctx.n}`;
  // Bring the streams and buckets up, then go away without consuming anything.
  const first = await Runtime.start({ servers: ctx.nats.url, nodeId: 'setup', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  await first.stop();
  const js = jetstream(ctx.nc);
  const a = 'counter/redeliver';
  const subject = `${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`;
  const seqs: number[] = [];
  for (let i = 0; i < 10; i++) seqs.push((await js.publish(subject, encode({ i: `m${i}`, m: i === 5 ? { op: 'send', to: 'counter/target', msg: { op: 'inc' } } : { op: 'inc' } }))).seq);
  // As if a node had applied and stored the first six (the sixth sent to counter/target) and died before acknowledging.
  const kv = await new Kvm(js).open(`${prefix}_state`);
  const outbox = [{ id: effectId(a, 'm5', 0), to: 'counter/target', m: { op: 'inc' } }];
  const stored: ActorRecord = { q: seqs[5]!, s: { n: 6, last: {}, disorder: 0, fired: [], results: [] }, o: outbox };
  await kv.create(actorKey(a), encode(stored));
  const rt = await start(ctx, {}, prefix);
  await waitFor('all ten handled', () => rt.metrics().processed >= 10);
  await waitFor('target got the send', async () => (await stateOf(rt, 'counter/target'))?.n === 1);
  assert.is((await stateOf(rt, a))?.n, 10, 'four new messages applied on top of six');
  assert.is(rt.metrics().redeliveries, 6);
  // The republished send carried the same Nats-Msg-Id as a first publish would have: one more
  // publish of it is dropped by the stream.
  await js.publish(`${prefix}.mbox.${partitionOf('counter/target', PARTITIONS)}.${actorKey('counter/target')}`, encode({ i: outbox[0]!.id, m: { op: 'inc' } }), {
    msgID: outbox[0]!.id,
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.is((await stateOf(rt, 'counter/target'))?.n, 1);
});

S('the same redelivery on a node that skips reads of cold actors (most were new): outbox republished too', async (ctx) => {
  const prefix = `t${++ctx.n}`;
  const rt = await start(ctx, {}, prefix);
  await Promise.all(Array.from({ length: 60 }, (_, i) => rt.send(`counter/fresh${i}`, { op: 'inc' })));
  await waitFor('fresh actors processed', () => rt.metrics().processed >= 60);
  const js = jetstream(ctx.nc);
  const last = (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.last_seq;
  const a = 'counter/redeliver';
  // As if a node had stored the first six of the ten messages below (the sixth sent to counter/target) and died before acknowledging.
  const outbox = [{ id: effectId(a, 'm5', 0), to: 'counter/target', m: { op: 'inc' } }];
  const stored: ActorRecord = { q: last + 6, s: { n: 6, last: {}, disorder: 0, fired: [], results: [] }, o: outbox };
  await (await new Kvm(js).open(`${prefix}_state`)).create(actorKey(a), encode(stored));
  const subject = `${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`;
  // In one write: the stream stores all ten before the node can react to the first one.
  const acks = await Promise.all(
    Array.from({ length: 10 }, (_, i) => js.publish(subject, encode({ i: `m${i}`, m: i === 5 ? { op: 'send', to: 'counter/target', msg: { op: 'inc' } } : { op: 'inc' } }))),
  );
  assert.equal(
    acks.map((k) => k.seq),
    Array.from({ length: 10 }, (_, i) => last + 1 + i),
  );
  await waitFor('all handled', () => rt.metrics().processed >= 70);
  await waitFor('target got the send', async () => (await stateOf(rt, 'counter/target'))?.n === 1);
  assert.is((await stateOf(rt, a))?.n, 10, 'four new messages applied on top of six');
  assert.is(rt.metrics().fencings, 0);
});

S('a refused state write fences the partition; the node keeps it only while the lease is its own', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const js = jetstream(ctx.nc);
  const kv = await new Kvm(js).open(`${prefix}_state`);
  const a = 'counter/fence';
  await rt.send(a, { op: 'inc' });
  await waitFor('first', async () => (await stateOf(rt, a))?.n === 1);
  // A foreign writer bumps the record behind the runtime's back (its cached revision is now stale).
  const e = (await kv.get(actorKey(a)))!;
  const rec = decode<ActorRecord>(e.value);
  await kv.update(actorKey(a), encode({ ...rec, s: { ...(rec.s as CounterState), n: 100 } }), e.revision);
  await rt.send(a, { op: 'inc' });
  await waitFor('applied on the fresh record', async () => (await stateOf(rt, a))?.n === 101);
  assert.ok(rt.metrics().fencings >= 1);
  assert.ok(rt.ownedPartitions().includes(partitionOf(a, PARTITIONS)), 'lease still its own: partition kept');

  // Now another node holds the lease and wrote the actor: this node must stop working it.
  const leases = await new Kvm(js).open(`${prefix}_leases`);
  const p = partitionOf(a, PARTITIONS);
  // The node renews its lease on its own schedule: a renewal between the read and the write
  // makes the write miss its revision, so the intruder reads again.
  await waitFor('lease taken by the intruder', async () => {
    const le = (await leases.get(`p.${p}`))!;
    return leases.update(`p.${p}`, encode({ node: 'intruder', exp: Date.now() + 60_000 }), le.revision).then(
      () => true,
      () => false,
    );
  });
  const e2 = (await kv.get(actorKey(a)))!;
  await kv.update(actorKey(a), encode({ ...decode<ActorRecord>(e2.value), s: { ...(decode<ActorRecord>(e2.value).s as CounterState), n: 500 } }), e2.revision);
  await waitFor('partition dropped', () => !rt.ownedPartitions().includes(p));
  await rt.send(a, { op: 'inc' });
  await new Promise((r) => setTimeout(r, 500));
  assert.is((await stateOf(rt, a))?.n, 500, 'nothing written by the fenced node');
  assert.is(rt.ownedPartitions().length, PARTITIONS - 1);
});

S('timers fire, can be cancelled, and survive a handover', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  await rt.send('counter/tm', { op: 'timer', name: 'soon', delayMs: 200 });
  await rt.send('counter/tm', { op: 'timer', name: 'never', delayMs: 400 });
  await rt.send('counter/tm', { op: 'cancel', name: 'never' });
  await waitFor('fired', async () => (await stateOf(rt, 'counter/tm'))?.fired.includes('soon'));
  await rt.send('counter/tm2', { op: 'timer', name: 'later', delayMs: 2500 });
  await waitFor('armed', async () => (await stateOf(rt, 'counter/tm2'))?.n === 1);
  await rt.stop();
  ctx.runtimes.splice(ctx.runtimes.indexOf(rt), 1);
  const next = await start(ctx, {}, prefix);
  await waitFor('fired on the next owner', async () => (await stateOf(next, 'counter/tm2'))?.fired.includes('later'), 10_000);
  await new Promise((r) => setTimeout(r, 500));
  const st = await stateOf(next, 'counter/tm');
  assert.equal(st?.fired, ['soon'], 'cancelled timer never fired');
});

S('timers of a rated name fire at most that many per second, in due order; other timers are not held up', async (ctx) => {
  const rt = await start(ctx, { timerRates: { poll: 10 } });
  const polls = Array.from({ length: 40 }, (_, i) => `counter/poll${i}`);
  const others = Array.from({ length: 10 }, (_, i) => `counter/other${i}`);
  const t0 = Date.now();
  await rt.sendMany([
    ...polls.map((to) => ({ to, msg: { op: 'timer', name: 'poll', delayMs: 100 } })),
    ...others.map((to) => ({ to, msg: { op: 'timer', name: 'other', delayMs: 100 } })),
  ]);
  const firedIn = async (actors: string[], name: string) => (await Promise.all(actors.map((a) => stateOf(rt, a)))).filter((st) => st?.fired.includes(name)).length;
  await waitFor('rated timers waiting their turn', () => rt.metrics().timersDeferred > 0, 10_000, 20);
  await waitFor('other timers fired', async () => (await firedIn(others, 'other')) === others.length, 10_000, 50);
  await waitFor('every rated timer fired', async () => (await firedIn(polls, 'poll')) === polls.length, 20_000, 100);
  // 10 at once (one second's burst), then 10 per second: the last 30 need 3 s at least. A lower
  // bound the token bucket guarantees (a slow machine only adds to it), not a speed figure.
  assert.ok(Date.now() - t0 >= 2900, `40 rated timers fired in ${Date.now() - t0} ms`);
  // A timer scheduled twice (the takeover window re-arms what it loads) waits its turn too, and its fire is dropped as stale.
  await waitFor('nothing left waiting', () => rt.metrics().timersDeferred === 0, 10_000, 50);
});

S('the task index keeps one entry per actor, gone once its last task is answered: the bucket does not grow with the tasks run', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const actors = ['counter/ta', 'counter/tb'];
  for (let r = 1; r <= 25; r++) await rt.sendMany(actors.map((to) => ({ to, msg: { op: 'task', name: `x${r}`, input: r } })));
  await waitFor('every task answered', async () => (await Promise.all(actors.map((a) => stateOf(rt, a)))).every((st) => st?.results.length === 25), 20_000, 50);
  const jsm = await jetstreamManager(ctx.nc);
  const kv = await new Kvm(ctx.nc).open(`${prefix}_pending`);
  await waitFor('task entries gone', async () => {
    for (const a of actors) if ((await kv.get(`${partitionOf(a, PARTITIONS)}.${actorKey(a)}.k`))?.operation === 'PUT') return null;
    return true;
  }, 10_000, 50);
  // 50 tasks: at most one subject per actor (its delete marker), not one per task.
  const subjects = (await jsm.streams.info(`KV_${prefix}_pending`)).state.num_subjects ?? 0;
  assert.ok(subjects <= actors.length, `${subjects} subjects in the pending bucket`);
});

S('an actor has one timer index entry while it holds timers: timers fired and re-armed meanwhile write none', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const actor = 'counter/tkeep';
  const entry = `${partitionOf(actor, PARTITIONS)}.${actorKey(actor)}.t`;
  const jsm = await jetstreamManager(ctx.nc);
  const kv = await new Kvm(ctx.nc).open(`${prefix}_pending`);
  const writes = async () => (await jsm.streams.info(`KV_${prefix}_pending`)).state.last_seq;
  const before = await writes();
  await rt.send(actor, { op: 'timer', name: 'keep', delayMs: 600_000 });
  await waitFor('entry written', async () => ((await kv.get(entry))?.operation === 'PUT' ? true : null), 10_000, 20);
  for (let i = 1; i <= 20; i++) await rt.send(actor, { op: 'timer', name: `s${i}`, delayMs: 5 });
  await waitFor('short timers fired', async () => ((await stateOf(rt, actor))?.fired.length === 20 ? true : null), 20_000, 50);
  // 21 timers armed and 20 fired: one index write (per timer it was 41).
  assert.is((await writes()) - before, 1);
  await rt.send(actor, { op: 'cancel', name: 'keep' });
  await waitFor('entry deleted with the last timer', async () => ((await kv.get(entry))?.operation === 'DEL' ? true : null), 10_000, 20);
  assert.is((await writes()) - before, 2);
});

S('tasks run with deterministic idempotency keys; a task cut off by a handover is rerun once', async (ctx) => {
  const seen: string[] = [];
  const echo: TaskHandler = async (input, c) => {
    seen.push(c.idempotencyKey);
    return input;
  };
  const rt = await start(ctx, { tasks: { echo } });
  const prefix = `t${ctx.n}`;
  await rt.send('counter/tk', { op: 'task', name: 'x', input: 7 }, { msgId: 'task-msg' });
  await waitFor('result', async () => (await stateOf(rt, 'counter/tk'))?.results.length === 1);
  assert.equal((await stateOf(rt, 'counter/tk'))?.results, [7]);
  assert.equal(seen, [effectId('counter/tk', 'task-msg', 0)]);

  // A task that never finishes on this node is rerun by the next owner, with the same key.
  const hung: TaskHandler = (_input, c) => new Promise((_, reject) => c.signal.addEventListener('abort', () => reject(new Error('aborted'))));
  const rt2 = await start(ctx, { tasks: { echo: hung }, nodeId: 'hung' }, `t${++ctx.n}`);
  const prefix2 = `t${ctx.n}`;
  await rt2.send('counter/tk2', { op: 'task', name: 'y', input: 'v' }, { msgId: 'm2' });
  await waitFor('task recorded', async () => (await stateOf(rt2, 'counter/tk2'))?.n === 1);
  await rt2.stop();
  ctx.runtimes.splice(ctx.runtimes.indexOf(rt2), 1);
  const rerun: string[] = [];
  const next = await start(ctx, { tasks: { echo: async (i, c) => (rerun.push(c.idempotencyKey), i) }, nodeId: 'next' }, prefix2);
  await waitFor('rerun result', async () => (await stateOf(next, 'counter/tk2'))?.results.length === 1, 10_000);
  assert.equal(rerun, [effectId('counter/tk2', 'm2', 0)]);
  assert.ok(prefix !== prefix2);
});

S('a step effect that cannot be stored is retried in place: the actor waits, the partition does not restart, stored once', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const jsm = await jetstreamManager(ctx.nc);
  // No stream captures the events subject for a while: the emit's publish finds no responder.
  await jsm.streams.delete(`${prefix}_events`);
  await rt.send('counter/em', { op: 'emit', subject: 'e1' }, { msgId: 'em-1' });
  await rt.send('counter/em', { op: 'inc', tag: 'z', seq: 1 }, { msgId: 'em-2' });
  await waitFor('emit publish retried', () => rt.metrics().publishRetries > 0, 10_000);
  // The step's state is stored, but the actor's next message waits behind its unpublished effect.
  assert.is((await stateOf(rt, 'counter/em'))?.n, 1);
  await jsm.streams.add({ name: `${prefix}_events`, subjects: [`${prefix}.events.>`] });
  await waitFor('next message applied', async () => (await stateOf(rt, 'counter/em'))?.n === 2, 10_000);
  assert.is((await jsm.streams.info(`${prefix}_events`)).state.messages, 1);
  assert.is(rt.metrics().workerRestarts, 0);
  assert.is(rt.metrics().redeliveries, 0);
});

S('undecodable messages and throwing reducers are dead-lettered; the actor keeps working', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const a = 'counter/dl';
  const js = jetstream(ctx.nc);
  await rt.send(a, { op: 'inc' });
  await js.publish(`${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`, new Uint8Array([0xc1, 0xff, 0x00]));
  await js.publish(`${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`, encode({ i: 'trunc', m: { op: 'inc' } }).subarray(0, 5));
  await rt.send(a, { op: 'boom' });
  await rt.send('nobody/x', { op: 'inc' });
  await rt.send(a, { op: 'inc' });
  await waitFor('actor continued', async () => (await stateOf(rt, a))?.n === 2);
  await waitFor('dead letters', () => rt.metrics().deadLetters === 4);
  const jsm = await jetstreamManager(ctx.nc);
  const info = await jsm.streams.info(`${prefix}_dlq`);
  assert.is(info.state.messages, 4);
  const reasons: string[] = [];
  for (let seq = 1; seq <= 4; seq++) reasons.push((await jsm.streams.getMessage(`${prefix}_dlq`, { seq }))!.header.get('Kiln-Reason'));
  assert.ok(reasons.some((r) => /reducer threw: boom/.test(r)), reasons.join('; '));
  assert.ok(reasons.some((r) => /undecodable|envelope/.test(r)), reasons.join('; '));
  assert.ok(reasons.some((r) => /no behaviour/.test(r)), reasons.join('; '));
});

S('metrics answer on the request subject', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  await rt.send('counter/m', { op: 'inc' });
  await waitFor('processed', () => rt.metrics().processed === 1);
  const r = await ctx.nc.request(`${prefix}.node.${rt.nodeId}.metrics`, '', { timeout: 2000 });
  const m = r.json<{ processed: number; partitionsOwned: number; actorsCached: number }>();
  assert.is(m.processed, 1);
  assert.is(m.partitionsOwned, PARTITIONS);
  assert.is(m.actorsCached, 1);
});

S('backpressure: unacknowledged messages held by the node never exceed maxInFlight', async (ctx) => {
  const prefix = `t${++ctx.n}`;
  // The backlog is in the stream before the node starts, so it could pull all of it at once.
  const setup = await Runtime.start({ servers: ctx.nats.url, nodeId: 'setup', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  await setup.stop();
  const js = jetstream(ctx.nc);
  const pubs: Promise<unknown>[] = [];
  for (let i = 0; i < 3000; i++) {
    const a = `counter/b${i % 300}`;
    pubs.push(js.publish(`${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`, encode({ i: `b${i}`, m: { op: 'inc' } })));
  }
  await Promise.all(pubs);
  const maxInFlight = 64;
  const rt = await start(ctx, { maxInFlight }, prefix);
  let peak = 0;
  await waitFor('backlog processed', () => {
    peak = Math.max(peak, rt.metrics().inFlight);
    return rt.metrics().processed >= 3000;
  }, 60_000, 5);
  assert.ok(peak > 0 && peak <= maxInFlight, `peak in flight ${peak}`);
  assert.is((await stateOf(rt, 'counter/b7'))?.n, 10);
});

S('the cache stays within its size', async (ctx) => {
  const rt = await start(ctx, { cacheSize: 20 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => rt.send(`counter/c${i}`, { op: 'inc' })));
  await waitFor('processed', () => rt.metrics().processed === 200);
  // Busy actors are not evicted; the scan runs again at most 100 ms after one that found only those.
  await waitFor('cache within its size', () => rt.metrics().actorsCached <= 20, 2000);
  assert.is((await stateOf(rt, 'counter/c0'))?.n, 1);
  await rt.send('counter/c0', { op: 'inc' });
  await waitFor('reloaded after eviction', async () => (await stateOf(rt, 'counter/c0'))?.n === 2);
});

/** Stream messages a list of sends becomes: one per partition and up to 32 entries (a lone message is unpacked). */
function streamMessagesFor(targets: string[]): number {
  const perPartition = new Map<number, number>();
  for (const t of targets) perPartition.set(partitionOf(t, PARTITIONS), (perPartition.get(partitionOf(t, PARTITIONS)) ?? 0) + 1);
  return [...perPartition.values()].reduce((sum, g) => sum + Math.ceil(g / 32), 0);
}

const lastSeq = async (ctx: Ctx, prefix: string) => (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.last_seq;

S('sendMany packs messages per partition: applied in order per actor, a retried list stored once', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const before = await lastSeq(ctx, prefix);
  const items: Outgoing[] = [];
  for (let s = 1; s <= 5; s++) for (let a = 0; a < 20; a++) items.push({ to: `counter/p${a}`, msg: { op: 'inc', tag: 'x', seq: s }, msgId: `p${a}-${s}` });
  await rt.sendMany(items);
  await rt.sendMany(items);
  assert.is((await lastSeq(ctx, prefix)) - before, streamMessagesFor(items.map((i) => i.to)), 'one stream message per partition and 32 entries; the retry was dropped');
  await waitFor('all processed', () => rt.metrics().processed >= 100);
  for (let a = 0; a < 20; a++) {
    const st = await stateOf(rt, `counter/p${a}`);
    assert.equal([st?.n, st?.disorder, st?.last.x], [5, 0, 5], `counter/p${a}`);
  }
  await waitFor('settled', () => rt.metrics().inFlight === 0);
  assert.is((await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.messages, 0, 'every pack acknowledged');
  const last = await lastSeq(ctx, prefix);
  const refused = await rt.sendMany([{ to: 'counter/ok', msg: {} }, { to: 'Bad', msg: {} }]).then(() => undefined, (e: unknown) => e);
  assert.match(String(refused), /actor address/);
  assert.is(await lastSeq(ctx, prefix), last, 'nothing sent when one address is invalid');
});

S('a step fanning out to many actors publishes one pack per partition', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const targets = Array.from({ length: 40 }, (_, i) => `counter/fan${i}`);
  const before = await lastSeq(ctx, prefix);
  await rt.send('counter/fanner', { op: 'fan', to: targets, msg: { op: 'inc' } });
  await waitFor('every target applied it', async () => (await Promise.all(targets.map((t) => stateOf(rt, t)))).every((st) => st?.n === 1));
  assert.is((await lastSeq(ctx, prefix)) - before, 1 + streamMessagesFor(targets));
  // From outside, the same with a client that runs no node.
  const client = new MailboxClient(ctx.nc, { prefix, partitions: PARTITIONS });
  await client.sendMany(targets.map((to) => ({ to, msg: { op: 'inc' } })));
  client.close();
  await waitFor('applied again', async () => (await Promise.all(targets.map((t) => stateOf(rt, t)))).every((st) => st?.n === 2));
});

/** `count` addresses `counter/<tag><i>` that hash onto partition `p`. */
function onPartition(p: number, tag: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (partitionOf(`counter/${tag}${i}`, PARTITIONS) === p) out.push(`counter/${tag}${i}`);
  return out;
}

S('a half-applied pack redelivered: each remaining entry applied once, in order, then the pack acknowledged', async (ctx) => {
  const prefix = `t${++ctx.n}`;
  const setup = await Runtime.start({ servers: ctx.nats.url, nodeId: 'setup', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  await setup.stop();
  const [a, b, c] = onPartition(3, 'h', 3) as [string, string, string];
  const inc = (to: string, seq: number): [string, unknown] => [actorKey(to), { i: `${to}-${seq}`, m: { op: 'inc', tag: 'h', seq } }];
  const pack = [inc(a, 1), inc(b, 1), inc(a, 2), inc(c, 1), inc(a, 3), inc(b, 2)];
  const js = jetstream(ctx.nc);
  const { seq } = await js.publish(`${prefix}.mbox.3.pack`, encode(pack));
  // As if a node had stored a's first two entries (indexes 0 and 2) and b's first (index 1), then died before the ack.
  const kv = await new Kvm(js).open(`${prefix}_state`);
  const counted = (n: number): CounterState => ({ n, last: { h: n }, disorder: 0, fired: [], results: [] });
  await kv.create(actorKey(a), encode({ q: seq, x: 2, s: counted(2) } satisfies ActorRecord));
  await kv.create(actorKey(b), encode({ q: seq, x: 1, s: counted(1) } satisfies ActorRecord));
  const rt = await start(ctx, {}, prefix);
  await waitFor('pack handled', () => rt.metrics().processed >= 6);
  for (const [actor, n] of [[a, 3], [b, 2], [c, 1]] as const) {
    const st = await stateOf(rt, actor);
    assert.equal([st?.n, st?.last.h, st?.disorder], [n, n, 0], actor);
  }
  assert.is(rt.metrics().redeliveries, 3, 'the three stored entries were skipped');
  await waitFor('pack acknowledged', async () => (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.messages === 0);
});

S('dead letters in packs: a bad entry is dead-lettered alone, a pack that is garbage as a whole', async (ctx) => {
  const rt = await start(ctx);
  const prefix = `t${ctx.n}`;
  const [a] = onPartition(2, 'd', 1) as [string];
  const ok = (i: string): [string, unknown] => [actorKey(a), { i, m: { op: 'inc' } }];
  const js = jetstream(ctx.nc);
  await js.publish(`${prefix}.mbox.2.pack`, encode([ok('1'), ['nobody.x', { i: 'n', m: {} }], [actorKey(a), { i: 'b', m: { op: 'boom' } }], 'not a pair', [actorKey(a), { m: 1 }], ok('2')]));
  await js.publish(`${prefix}.mbox.2.pack`, new Uint8Array([0xc1, 0x00]));
  await js.publish(`${prefix}.mbox.2.pack`, encode({ i: 'x', m: {} }));
  await waitFor('valid entries applied', async () => (await stateOf(rt, a))?.n === 2);
  await waitFor('dead letters', () => rt.metrics().deadLetters === 6);
  const jsm = await jetstreamManager(ctx.nc);
  const dl = await Promise.all([1, 2, 3, 4, 5, 6].map(async (seq) => (await jsm.streams.getMessage(`${prefix}_dlq`, { seq }))!));
  const entries = dl.filter((m) => m.header.get('Kiln-Entry') !== '');
  assert.equal(entries.map((m) => m.header.get('Kiln-Entry')).sort(), ['1', '2', '3', '4']);
  for (const m of dl) assert.is(m.header.get('Kiln-Subject'), `${prefix}.mbox.2.pack`);
  const reasons = dl.map((m) => m.header.get('Kiln-Reason')).join('; ');
  for (const r of [/no behaviour/, /reducer threw: boom/, /not a pack entry/, /not a runtime envelope/, /undecodable/, /pack/]) assert.match(reasons, r);
  const boom = entries.find((m) => m.header.get('Kiln-Entry') === '2')!;
  assert.equal(decode(boom.data), [actorKey(a), { i: 'b', m: { op: 'boom' } }], 'an entry dead letter carries the entry');
  await waitFor('packs acknowledged', async () => (await jsm.streams.info(`${prefix}_mbox`)).state.messages === 0);
});

S.run();
