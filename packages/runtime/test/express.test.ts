import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { decode, encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { MailboxClient, Runtime, actorKey, effectId, partitionOf, type ActorBehavior, type Effect, type Outgoing } from '../src/index.js';
import { MailSender } from '../src/mailbox.js';
import type { PubAck } from '../src/requester.js';
import { stateOf, type ActorRecord, type OutboxEntry } from '../src/step.js';
import { counter, type CounterState } from './fixtures/counter.js';
import { startWorker, type WorkerProcess } from './helpers.js';

// Express delivery on a real nats-server: a task result or an express send overtakes the mail
// queued in its receiver's partition; a node that died around an early step leaves the message
// applied exactly once.

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  runtimes: Runtime[];
  n: number;
}

const X = suite<Ctx>('runtime express delivery');

X.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  ctx.js = jetstream(ctx.nc);
  ctx.runtimes = [];
  ctx.n = 0;
});
X.after.each(async (ctx) => {
  await Promise.all(ctx.runtimes.splice(0).map((r) => r.stop()));
});
X.after(async (ctx) => {
  await ctx.nc.close();
  await ctx.nats.stop();
});

/** Every application of a message by a probe actor, in order, across the test's runtime. */
const applied: string[] = [];

/**
 * Logs each message it applies. `start` runs the gated task; its result sends `hit` to
 * probe/fast (express) and to probe/slow (not express).
 */
const probe: ActorBehavior<number, { op: 'start' } | { op: 'hit' } | { op: 'fill' }> = {
  type: 'probe',
  initial: () => 0,
  reduce(state, msg, ctx) {
    applied.push(ctx.self);
    const effects: Effect[] = [];
    if ('kind' in msg) {
      effects.push({ type: 'send', to: 'probe/fast', msg: { op: 'hit' }, express: true }, { type: 'send', to: 'probe/slow', msg: { op: 'hit' } });
    } else if (msg.op === 'start') effects.push({ type: 'task', name: 'gate', task: 'gate', input: null });
    return { state: state + 1, effects };
  },
};

X('a task result and an express send overtake a backlog of thousands queued in the partition; a plain send does not', async (ctx) => {
  const prefix = `x${++ctx.n}`;
  let gateCalled = false;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  // One partition, few deliveries in flight: everything queues behind one consumer.
  const rt = await Runtime.start({
    servers: ctx.nats.url,
    nodeId: 'n0',
    behaviors: [probe],
    partitions: 1,
    maxInFlight: 8,
    leaseMs: 4000,
    prefix,
    eventsSubject: `${prefix}.events`,
    tasks: {
      gate: async () => {
        gateCalled = true;
        await gate;
        return 'open';
      },
    },
  });
  ctx.runtimes.push(rt);
  await waitFor('partition owned', () => rt.metrics().partitionsOwned === 1);
  await rt.send('probe/starter', { op: 'start' });
  await waitFor('gated task running', () => gateCalled);
  const BACKLOG = 6000;
  const fills: Promise<void>[] = [];
  for (let from = 0; from < BACKLOG; from += 1000) {
    const items: Outgoing[] = [];
    for (let i = from; i < from + 1000; i++) items.push({ to: `probe/b${i}`, msg: { op: 'fill' } });
    fills.push(rt.sendMany(items));
  }
  await Promise.all(fills);
  const backlogApplied = () => applied.filter((a) => a.startsWith('probe/b')).length;
  await waitFor('backlog being worked', () => backlogApplied() >= 100);
  open();
  await waitFor('backlog drained and every probe applied', () => backlogApplied() === BACKLOG && applied.includes('probe/slow'), 60_000);
  const before = (who: string) => applied.slice(0, applied.indexOf(who)).filter((a) => a.startsWith('probe/b')).length;
  const starterResult = applied.lastIndexOf('probe/starter');
  assert.is(applied.filter((a) => a === 'probe/starter').length, 2, 'start and its result, once each');
  const resultBefore = applied.slice(0, starterResult).filter((a) => a.startsWith('probe/b')).length;
  // The bound: what one consumer holds in flight at most (8 packs of 32); the backlog is far larger.
  assert.ok(resultBefore < BACKLOG - 8 * 32, `task result applied after ${resultBefore} of ${BACKLOG} queued messages`);
  assert.ok(before('probe/fast') < BACKLOG - 8 * 32, `express send applied after ${before('probe/fast')} of ${BACKLOG} queued messages`);
  assert.ok(before('probe/slow') >= BACKLOG - 8 * 32, `plain send applied after only ${before('probe/slow')} of ${BACKLOG} queued messages`);
  assert.is(applied.filter((a) => a === 'probe/fast').length, 1);
  assert.is(applied.filter((a) => a === 'probe/slow').length, 1);
  assert.ok(rt.metrics().expressApplied >= 2, `expressApplied ${rt.metrics().expressApplied}`);
  // The stream copies were acknowledged (skipped as applied early), nothing left or redelivered.
  await waitFor('mailbox empty', async () => (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.messages === 0);
  assert.is(rt.metrics().redeliveries, 0);
  assert.is((await rt.read('probe/fast')) as number, 1);
  assert.is((await rt.read('probe/starter')) as number, 2);
});

// Crash points prepared by hand, as a node that died there leaves them (see fanin.test.ts).

const PARTITIONS = 8;

async function prepare(ctx: Ctx): Promise<string> {
  const prefix = `x${++ctx.n}`;
  const setup = await Runtime.start({ servers: ctx.nats.url, nodeId: 'setup', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  await setup.stop();
  return prefix;
}

async function start(ctx: Ctx, prefix: string): Promise<Runtime> {
  const rt = await Runtime.start({ servers: ctx.nats.url, nodeId: `n${ctx.runtimes.length}`, behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  ctx.runtimes.push(rt);
  return rt;
}

type Sent = Extract<OutboxEntry, { to: string }>;

const counterState = (n: number): CounterState => ({ n, last: {}, disorder: 0, fired: [], results: [] });

/**
 * Sender `a` has an older message queued, then one telling it to send (express) to `b`: as stored
 * in the stream by the time the dead node had handed the second over early.
 */
async function queueMail(ctx: Ctx, prefix: string, a: string, b: string): Promise<{ older: number; express: number; sent: Sent }> {
  const subject = `${prefix}.mbox.${partitionOf(a, PARTITIONS)}.${actorKey(a)}`;
  const older = (await ctx.js.publish(subject, encode({ i: 'older', m: { op: 'inc' } }))).seq;
  const i = 'tell';
  const express = (await ctx.js.publish(subject, encode({ i, m: { op: 'send', to: b, msg: { op: 'inc', tag: 'a', seq: 1 }, express: true } }))).seq;
  return { older, express, sent: { id: effectId(a, i, 0), to: b, m: { op: 'inc', tag: 'a', seq: 1 }, xp: true } };
}

async function expectOnce(ctx: Ctx, prefix: string, rt: Runtime, a: string, b: string): Promise<void> {
  await waitFor('every mailbox message acknowledged and applied', async () => {
    const s = (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state;
    return s.messages === 0 && ((await rt.read(b)) as CounterState | null)?.n === 1 && ((await rt.read(a)) as CounterState | null)?.n === 2;
  });
  const sa = (await rt.read(a)) as CounterState;
  const sb = (await rt.read(b)) as CounterState;
  assert.is(sa.n, 2, 'the older message and the express one, once each');
  assert.equal({ n: sb.n, last: sb.last }, { n: 1, last: { a: 1 } }, 'the express step\'s send, once');
}

for (const published of [false, true]) {
  X(`crash after the early step's write, its send ${published ? 'published' : 'not yet published'}: every message applied once`, async (ctx) => {
    const prefix = await prepare(ctx);
    const [a, b] = ['counter/ea', 'counter/eb'];
    const { express, sent } = await queueMail(ctx, prefix, a, b);
    // The dead node's early step: applied `tell` without moving q, stored its outbox.
    const record: ActorRecord = { q: 0, s: counterState(1), e: [[express, 0]], o: [sent] };
    const kv = await new Kvm(ctx.nc).open(`${prefix}_state`);
    await kv.create(actorKey(a), encode(record));
    if (published) {
      // As the dead node's MailSender published it (same Nats-Msg-Id): the republication is dropped.
      const mail = new MailSender(prefix, PARTITIONS, (subject, data, msgId) => ctx.js.publish(subject, data, { msgID: msgId }) as Promise<PubAck>);
      await mail.sendAll([{ key: actorKey(b), partition: partitionOf(b, PARTITIONS), env: { i: sent.id, f: a, m: sent.m } }]);
    }
    const rt = await start(ctx, prefix);
    await expectOnce(ctx, prefix, rt, a, b);
  });
}

X('crash before the early step\'s write: its stream delivery applies it, once', async (ctx) => {
  const prefix = await prepare(ctx);
  const [a, b] = ['counter/ea', 'counter/eb'];
  await queueMail(ctx, prefix, a, b);
  const rt = await start(ctx, prefix);
  await expectOnce(ctx, prefix, rt, a, b);
});

X('early mail for an actor whose stored pack publication is not known to be out waits for the stream: that publication is made once', async (ctx) => {
  const prefix = await prepare(ctx);
  const on = (p: number, tag: string) => {
    for (let i = 0; ; i++) if (partitionOf(`counter/${tag}${i}`, PARTITIONS) === p) return `counter/${tag}${i}`;
  };
  const [a, c, b] = [on(1, 'a'), on(2, 'c'), on(3, 'b')];
  // A dead node left: a backlog in a's partition, then pack P, whose entry made a send to b; a's
  // step at P's tail is stored (marked g), P's publication was not made.
  await Promise.all(Array.from({ length: 3000 }, (_, i) => ctx.js.publish(`${prefix}.mbox.1.${actorKey(`counter/fill${i}`)}`, encode({ i: `fill${i}`, m: { op: 'inc' } }))));
  const env = { i: 'a1', m: { op: 'send', to: b, msg: { op: 'inc', tag: 'a', seq: 1 } } };
  const pack = (await ctx.js.publish(`${prefix}.mbox.1.pack`, encode([[actorKey(a), env]]))).seq;
  const sent: Sent = { id: effectId(a, 'a1', 0), to: b, m: { op: 'inc', tag: 'a', seq: 1 } };
  await (await new Kvm(ctx.nc).open(`${prefix}_state`)).create(actorKey(a), encode({ q: pack, s: counterState(1), o: [sent], g: true } satisfies ActorRecord));
  // c, in another partition, sends to a express: handed over long before P reaches a.
  await ctx.js.publish(`${prefix}.mbox.2.${actorKey(c)}`, encode({ i: 'c1', m: { op: 'send', to: a, msg: { op: 'inc', tag: 'c', seq: 1 }, express: true } }));
  const rt = await Runtime.start({ servers: ctx.nats.url, nodeId: 'n0', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, maxInFlight: 8, prefix, eventsSubject: `${prefix}.events` });
  ctx.runtimes.push(rt);
  const state = async (x: string) => (await rt.read(x)) as CounterState | null;
  await waitFor('every mailbox message acknowledged and applied', async () => {
    const m = (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state.messages;
    return m === 0 && (await state(b))?.n === 1 && (await state(a))?.n === 2;
  }, 60_000);
  assert.ok(rt.metrics().expressDeferred >= 1, 'the early message was left to its stream delivery');
  assert.equal({ n: (await state(b))?.n, last: (await state(b))?.last }, { n: 1, last: { a: 1 } }, 'P\'s publication made once');
  assert.equal({ n: (await state(a))?.n, last: (await state(a))?.last }, { n: 2, last: { c: 1 } });
});

X('SIGKILL of one of two nodes while task results and express sends overtake packed mail: every message applied exactly once', async (ctx) => {
  const prefix = `x${++ctx.n}`;
  const workers: WorkerProcess[] = [];
  try {
    for (const nodeId of ['a', 'b']) workers.push(await startWorker({ servers: ctx.nats.url, prefix, nodeId, partitions: 16, leaseMs: 4000 }));
    const metrics = async (node: string) => {
      try {
        return (await ctx.nc.request(`${prefix}.node.${node}.metrics`, '', { timeout: 1000 })).json<{ partitionsOwned: number; expressApplied: number }>();
      } catch {
        return undefined;
      }
    };
    await waitFor('split', async () => (await metrics('a'))?.partitionsOwned === 8 && (await metrics('b'))?.partitionsOwned === 8, 20_000, 100);
    const actors = 2000;
    const rounds = 3;
    const peer = (a: number) => `counter/k${(a + 1) % actors}`;
    const mail = new MailboxClient(ctx.nc, { prefix, partitions: 16, timeoutMs: 5000 });
    let expressOnB = 0;
    for (let s = 1; s <= rounds; s++) {
      // Per actor and round: a task (its result is express) and an express send to its peer.
      const items: Outgoing[] = [];
      for (let a = 0; a < actors; a++) {
        items.push({ to: `counter/k${a}`, msg: { op: 'task', name: 't', input: s }, msgId: `${prefix}-t-${a}-${s}` });
        items.push({ to: `counter/k${a}`, msg: { op: 'send', to: peer(a), msg: { op: 'inc' }, express: true }, msgId: `${prefix}-s-${a}-${s}` });
      }
      for (let from = 0; from < items.length; from += 1000) {
        const list = items.slice(from, from + 1000);
        await waitFor('mailbox publish', async () => {
          await mail.sendMany(list);
          return true;
        }, 60_000, 200);
      }
      if (s === 2) {
        // Round 1 and 2 are being worked through, early steps among them, when b dies.
        await waitFor('b applies express mail', async () => ((expressOnB = (await metrics('b'))?.expressApplied ?? 0) > 0), 20_000, 20);
        workers[1]!.child.kill('SIGKILL');
        await workers[1]!.exited;
      }
    }
    mail.close();
    const kv = await new Kvm(ctx.nc).open(`${prefix}_state`);
    const jsm = await jetstreamManager(ctx.nc);
    const read = async () =>
      Promise.all(
        Array.from({ length: actors }, async (_, a) => {
          const e = await kv.get(actorKey(`counter/k${a}`));
          return e && e.operation === 'PUT' ? (stateOf(decode<ActorRecord>(e.value)) as CounterState) : undefined;
        }),
      );
    let states: (CounterState | undefined)[] = [];
    await waitFor(
      'every message applied, mailboxes empty',
      async () => (states = await read()).every((st) => (st?.n ?? 0) >= 4 * rounds) && (await jsm.streams.info(`${prefix}_mbox`)).state.messages === 0,
      90_000,
      500,
    ).catch(async (e) => {
      // What a failure needs to be understood: the distribution of counts and a few stored records.
      const counts: Record<string, number> = {};
      for (const st of states) counts[`n=${st?.n} results=${st?.results.length}`] = (counts[`n=${st?.n} results=${st?.results.length}`] ?? 0) + 1;
      const short = states.flatMap((st, a) => ((st?.n ?? 0) < 4 * rounds ? [a] : [])).slice(0, 3);
      const records = await Promise.all(
        short.map(async (a) => {
          const r = await kv.get(actorKey(`counter/k${a}`));
          return r?.operation === 'PUT' ? { a, ...decode<ActorRecord>(r.value), s: undefined } : { a, missing: true };
        }),
      );
      throw new Error(`${(e as Error).message}: ${JSON.stringify(counts)}, records ${JSON.stringify(records)}`);
    });
    states = await read();
    // n: the task message, its result, the send message and the peer's send, once each per round.
    const wrong = states.map((st, a) => ({ a, n: st?.n, results: st?.results.length })).filter((x) => x.n !== 4 * rounds || x.results !== rounds);
    assert.equal(wrong.slice(0, 5), [], `${wrong.length} actors not applied exactly once`);
    assert.ok(expressOnB > 0);
    assert.ok(((await metrics('a'))?.expressApplied ?? 0) > 0, 'the survivor applied express mail early');
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
  }
});

X('a pending task the takeover listing did not see is resumed by the sweep and answered once; a stale task entry is dropped', async (ctx) => {
  const prefix = `x${++ctx.n}`;
  const tasks = { echo: async (input: unknown) => input };
  const rt = await Runtime.start({ servers: ctx.nats.url, nodeId: 'sweeper', behaviors: [counter], tasks, partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events`, taskSweepMs: 200 });
  ctx.runtimes.push(rt);
  await waitFor('every partition owned and resumed', async () => (rt.ownedPartitions().length === PARTITIONS && rt.metrics().partitionsResuming === 0) || null, 20_000, 50);
  // Written behind the runtime's back after its listing: a record with a task pending and its
  // index entry, as a step of the previous owner stored them (nothing runs that task now).
  const address = 'counter/orphan';
  const key = actorKey(address);
  const p = partitionOf(address, PARTITIONS);
  const idem = 'orphan-task-1';
  const kvm = new Kvm(ctx.js);
  const state = await kvm.open(`${prefix}_state`);
  const pending = await kvm.open(`${prefix}_pending`);
  await pending.put(`${p}.${key}.k`, encode({}));
  await state.put(key, encode({ q: 0, s: counterState(1), k: { [idem]: { n: 't', task: 'echo', in: 42 } } } satisfies ActorRecord));
  // And an entry whose step's state write was refused: the record holds no task.
  const stale = actorKey('counter/stale');
  const ps = partitionOf('counter/stale', PARTITIONS);
  await pending.put(`${ps}.${stale}.k`, encode({}));
  await state.put(stale, encode({ q: 0, s: counterState(1) } satisfies ActorRecord));
  const s = await waitFor('the orphaned task answered', async () => {
    const st = (await rt.read(address)) as CounterState | null;
    return st && st.results.length > 0 ? st : null;
  }, 20_000, 50);
  assert.equal(s.results, [42]);
  assert.is(s.n, 2);
  const gone = async (k: string) => ((await pending.get(k))?.operation === 'PUT' ? null : true);
  await waitFor('its index entry gone', () => gone(`${p}.${key}.k`), 10_000, 50);
  await waitFor('the stale entry gone', () => gone(`${ps}.${stale}.k`), 10_000, 50);
  assert.is(((await rt.read('counter/stale')) as CounterState | null)?.n, 1, 'nothing applied to it');
});

X.run();
