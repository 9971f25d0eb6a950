import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Runtime, actorKey, effectId, partitionOf } from '../src/index.js';
import { MailSender } from '../src/mailbox.js';
import type { PubAck } from '../src/requester.js';
import type { ActorRecord, OutboxEntry } from '../src/step.js';
import { counter, type CounterState } from './fixtures/counter.js';

// The sends of the steps one incoming pack triggers are published together (the pack's combined
// publication): these tests prepare the crash points of that publication by hand (records and
// stream messages as a node that died there would have left them) and check that a node taking
// the pack over applies every send exactly once, in order per sender.

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  runtimes: Runtime[];
  n: number;
}

const F = suite<Ctx>('runtime pack fan-in');
const PARTITIONS = 8;
const SENDERS_AT = 3;

F.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  ctx.js = jetstream(ctx.nc);
  ctx.runtimes = [];
  ctx.n = 0;
});
F.after.each(async (ctx) => {
  await Promise.all(ctx.runtimes.splice(0).map((r) => r.stop()));
});
F.after(async (ctx) => {
  await ctx.nc.close();
  await ctx.nats.stop();
});

function onPartition(p: number, tag: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (partitionOf(`counter/${tag}${i}`, PARTITIONS) === p) out.push(`counter/${tag}${i}`);
  return out;
}

/** Streams and buckets of a fresh prefix, with no node running yet. */
async function prepare(ctx: Ctx): Promise<string> {
  const prefix = `f${++ctx.n}`;
  const setup = await Runtime.start({ servers: ctx.nats.url, nodeId: 'setup', behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  await setup.stop();
  return prefix;
}

async function start(ctx: Ctx, prefix: string): Promise<Runtime> {
  const rt = await Runtime.start({ servers: ctx.nats.url, nodeId: `n${ctx.runtimes.length}`, behaviors: [counter], partitions: PARTITIONS, leaseMs: 2000, prefix, eventsSubject: `${prefix}.events` });
  ctx.runtimes.push(rt);
  return rt;
}

/** Pack entry: `from` sends `inc` (tagged with its own address, sequence `seq`) to `to`. */
const sendEntry = (from: string, to: string, seq: number): [string, { i: string; m: unknown }] => [
  actorKey(from),
  { i: `${from}>${to}#${seq}`, m: { op: 'send', to, msg: { op: 'inc', tag: from, seq } } },
];

/** The outbox entry the step applying `sendEntry(from, to, seq)` stores. */
const sent = (from: string, to: string, seq: number): OutboxEntry => ({ id: effectId(from, `${from}>${to}#${seq}`, 0), to, m: { op: 'inc', tag: from, seq } });

const senderState = (n: number): CounterState => ({ n, last: {}, disorder: 0, fired: [], results: [] });

/** Publishes as the runtime's MailSender does (same packing, same Nats-Msg-Id). */
function sender(ctx: Ctx, prefix: string): MailSender {
  return new MailSender(prefix, PARTITIONS, (subject, data, msgId) => ctx.js.publish(subject, data, { msgID: msgId }) as Promise<PubAck>);
}

const envelopes = (list: [from: string, e: OutboxEntry][]) =>
  list.map(([from, e]) => ({ key: actorKey((e as { to: string }).to), partition: partitionOf((e as { to: string }).to, PARTITIONS), env: { i: e.id, f: from, m: (e as { m: unknown }).m } }));

async function mailboxInfo(ctx: Ctx, prefix: string): Promise<{ messages: number; lastSeq: number }> {
  const s = (await (await jetstreamManager(ctx.nc)).streams.info(`${prefix}_mbox`)).state;
  return { messages: s.messages, lastSeq: s.last_seq };
}

/** Waits until every mailbox message is acknowledged, then checks each sink's exact count and order. */
async function expectSinks(ctx: Ctx, prefix: string, rt: Runtime, expected: Record<string, Record<string, number>>): Promise<void> {
  await waitFor('every mailbox message acknowledged', async () => {
    if ((await mailboxInfo(ctx, prefix)).messages !== 0) return false;
    for (const [sink, last] of Object.entries(expected)) {
      const st = (await rt.read(sink)) as CounterState | null;
      if ((st?.n ?? 0) < Object.values(last).reduce((a, b) => a + b, 0)) return false;
    }
    return true;
  });
  for (const [sink, last] of Object.entries(expected)) {
    const st = (await rt.read(sink)) as CounterState | null;
    assert.equal(
      { n: st?.n, last: st?.last, disorder: st?.disorder },
      { n: Object.values(last).reduce((a, b) => a + b, 0), last, disorder: 0 },
      sink,
    );
  }
}

F('the sends of one pack\'s steps travel as one stream message per target partition, in order per sender', async (ctx) => {
  const prefix = await prepare(ctx);
  const senders = onPartition(SENDERS_AT, 's', 20);
  const [t1] = onPartition(5, 't', 1) as [string];
  const [t2] = onPartition(6, 't', 1) as [string];
  const rt = await start(ctx, prefix);
  for (let round = 1; round <= 3; round++) {
    // Each sender has two entries in the pack (to t1 first, to t2 twenty entries later); from the
    // second round on the senders are cached and idle when their pack arrives.
    const pack = [...senders.map((s) => sendEntry(s, t1, round)), ...senders.map((s) => sendEntry(s, t2, round))];
    await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode(pack));
    await waitFor(`round ${round} applied`, async () => ((await rt.read(t2)) as CounterState | null)?.n === 20 * round);
  }
  const rounds = Object.fromEntries(senders.map((s) => [s, 3]));
  await expectSinks(ctx, prefix, rt, { [t1]: rounds, [t2]: rounds });
  // 3 incoming packs, and per round one stream message to each sink's partition (not 40).
  assert.is((await mailboxInfo(ctx, prefix)).lastSeq, 3 + 3 * 2);
  assert.is(rt.metrics().redeliveries, 0);
});

F('every actor of the pack stored its step, its publication half stored: the other half is published, nothing twice', async (ctx) => {
  const prefix = await prepare(ctx);
  const [a, b, c] = onPartition(SENDERS_AT, 'h', 3) as [string, string, string];
  const [t1] = onPartition(5, 't', 1) as [string];
  const [t2] = onPartition(6, 't', 1) as [string];
  const { seq } = await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode([sendEntry(a, t1, 1), sendEntry(b, t1, 1), sendEntry(c, t2, 1), sendEntry(a, t2, 1)]));
  const kv = await new Kvm(ctx.js).open(`${prefix}_state`);
  // a's step covered its two entries (0 and 3): its sends in entry order; the publication orders
  // the actors by the index of their last entry: b (1), c (2), a (3).
  const aOut = [sent(a, t1, 1), sent(a, t2, 1)];
  await kv.create(actorKey(a), encode({ q: seq, x: 3, s: senderState(2), o: aOut, g: true } satisfies ActorRecord));
  await kv.create(actorKey(b), encode({ q: seq, x: 1, s: senderState(1), o: [sent(b, t1, 1)], g: true } satisfies ActorRecord));
  await kv.create(actorKey(c), encode({ q: seq, x: 2, s: senderState(1), o: [sent(c, t2, 1)], g: true } satisfies ActorRecord));
  // The node died after the pack for t1's partition was stored, before the one for t2's.
  await sender(ctx, prefix).sendAll(envelopes([[b, sent(b, t1, 1)], [a, aOut[0]!]]));
  const before = (await mailboxInfo(ctx, prefix)).lastSeq;
  const rt = await start(ctx, prefix);
  await expectSinks(ctx, prefix, rt, { [t1]: { [a]: 1, [b]: 1 }, [t2]: { [a]: 1, [c]: 1 } });
  // The republished half for t1 was dropped by the stream: only t2's pack is new.
  assert.is((await mailboxInfo(ctx, prefix)).lastSeq, before + 1);
  assert.is(rt.metrics().redeliveries, 4, 'every entry was applied before');
});

F('some actors of the pack stored their step, others not: one publication with all their sends', async (ctx) => {
  const prefix = await prepare(ctx);
  const [a, b, c] = onPartition(SENDERS_AT, 'p', 3) as [string, string, string];
  const [t1] = onPartition(5, 't', 1) as [string];
  const { seq } = await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode([sendEntry(a, t1, 1), sendEntry(b, t1, 1), sendEntry(c, t1, 1)]));
  const kv = await new Kvm(ctx.js).open(`${prefix}_state`);
  await kv.create(actorKey(b), encode({ q: seq, x: 1, s: senderState(1), o: [sent(b, t1, 1)], g: true } satisfies ActorRecord));
  const before = (await mailboxInfo(ctx, prefix)).lastSeq;
  const rt = await start(ctx, prefix);
  await expectSinks(ctx, prefix, rt, { [t1]: { [a]: 1, [b]: 1, [c]: 1 } });
  assert.is((await mailboxInfo(ctx, prefix)).lastSeq, before + 1, 'one stream message for the three sends');
  for (const s of [a, b, c]) assert.is(((await rt.read(s)) as CounterState).n, 1, s);
});

F('an actor already past a redelivered pack proves its publication stored: not repeated (partially), the later pack\'s is', async (ctx) => {
  const prefix = await prepare(ctx);
  const [a, b] = onPartition(SENDERS_AT, 'q', 2) as [string, string];
  const [t1] = onPartition(5, 't', 1) as [string];
  const p1 = await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode([sendEntry(a, t1, 1), sendEntry(b, t1, 1)]));
  const p2 = await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode([sendEntry(a, t1, 2), sendEntry(b, t1, 2)]));
  // The first pack's publication was stored (one pack to t1), then a applied the second pack and
  // the node died before acknowledging either: a's record is past the first pack, b's at it.
  await sender(ctx, prefix).sendAll(envelopes([[a, sent(a, t1, 1)], [b, sent(b, t1, 1)]]));
  const kv = await new Kvm(ctx.js).open(`${prefix}_state`);
  await kv.create(actorKey(a), encode({ q: p2.seq, s: senderState(2), o: [sent(a, t1, 2)], g: true } satisfies ActorRecord));
  await kv.create(actorKey(b), encode({ q: p1.seq, x: 1, s: senderState(1), o: [sent(b, t1, 1)], g: true } satisfies ActorRecord));
  const rt = await start(ctx, prefix);
  // Republishing b's part of the first pack alone would be a new stream message: t1 would count it twice.
  await expectSinks(ctx, prefix, rt, { [t1]: { [a]: 2, [b]: 2 } });
  for (const s of [a, b]) assert.is(((await rt.read(s)) as CounterState).n, 2, s);
});

F('a sender whose steps are not at a pack end (single messages) still publishes alone, in order with its packed sends', async (ctx) => {
  const prefix = await prepare(ctx);
  const [a, b] = onPartition(SENDERS_AT, 'm', 2) as [string, string];
  const [t1] = onPartition(5, 't', 1) as [string];
  const rt = await start(ctx, prefix);
  const [key, env] = sendEntry(a, t1, 1);
  // A single message, then a pack (a's second and third sends, b's first), then a single message.
  await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.${key}`, encode(env));
  await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.pack`, encode([sendEntry(a, t1, 2), sendEntry(b, t1, 1), sendEntry(a, t1, 3)]));
  const [key4, env4] = sendEntry(a, t1, 4);
  await ctx.js.publish(`${prefix}.mbox.${SENDERS_AT}.${key4}`, encode(env4));
  await expectSinks(ctx, prefix, rt, { [t1]: { [a]: 4, [b]: 1 } });
});

F.run();
