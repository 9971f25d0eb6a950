import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { decode, encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Runtime, actorKey, partitionOf, type ActorBehavior } from '@kiln/runtime';
import { checkProperty } from './harness.js';

/**
 * Garbage, truncated msgpack, non-envelope values and bad actor keys published straight onto
 * actor mailboxes of a runtime node on a real nats-server: each is dead-lettered with a reason
 * (the original bytes and subject kept), and the actor applies a valid message sent afterwards.
 */
const PREFIX = 'fz';
const PARTITIONS = 4;

const tally: ActorBehavior<{ n: number }, { op: 'inc' }> = {
  type: 'tally',
  initial: () => ({ n: 0 }),
  reduce: (state) => ({ state: { n: state.n + 1 }, effects: [] }),
};

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  rt: Runtime;
}
const ctx = {} as Ctx;
const test = suite('fuzz: actor mailbox wire format');

test.before(async () => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  ctx.js = jetstream(ctx.nc);
  ctx.jsm = await jetstreamManager(ctx.nc);
  ctx.rt = await Runtime.start({ servers: ctx.nats.url, nodeId: 'wire', behaviors: [tally], partitions: PARTITIONS, leaseMs: 2000, prefix: PREFIX, eventsSubject: `${PREFIX}.events` });
  await waitFor('partitions owned', () => ctx.rt.metrics().partitionsOwned === PARTITIONS);
});
test.after(async () => {
  await ctx.rt?.stop();
  await ctx.nc?.close();
  await ctx.nats?.stop();
});

const validEnvelope = (i: string) => encode({ i, m: { op: 'inc' } });

/** True when the runtime would take these bytes as a message (not what this suite sends). */
function isEnvelope(bytes: Uint8Array): boolean {
  try {
    const v = decode(bytes) as { i?: unknown } | null;
    return typeof v === 'object' && v !== null && typeof v.i === 'string';
  } catch {
    return false;
  }
}

type Case = { actor: string; bytes: Uint8Array; key?: string; why: string };

const actor = fc.constantFrom('tally/a', 'tally/b', 'tally/c-1', 'tally/ü');
const aCase: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ actor, bytes: fc.uint8Array({ maxLength: 200 }) }).map((c) => ({ ...c, why: 'random bytes' })),
  fc.record({ actor, id: fc.string({ maxLength: 40 }), cut: fc.nat() }).map(({ actor, id, cut }) => {
    const full = validEnvelope(id);
    return { actor, bytes: full.subarray(0, cut % full.length), why: `truncated envelope at ${cut % full.length}/${full.length}` };
  }),
  fc.record({ actor, value: fc.anything({ maxDepth: 2 }) }).map(({ actor, value }) => ({ actor, bytes: encode(value), why: 'msgpack value that is not an envelope' })),
  fc.record({ actor, i: fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.string())) }).map(({ actor, i }) => ({ actor, bytes: encode({ i, m: { op: 'inc' } }), why: 'envelope id of the wrong type' })),
  fc.record({ actor, key: fc.constantFrom('tally.=!!', 'tally', 'nobody.x', 'tally.a.b', '=') }).map(({ actor, key }) => ({ actor, key, bytes: validEnvelope('k'), why: `bad actor key ${key}` })),
);

test('undecodable mail is dead-lettered with a reason; the actor keeps applying valid mail', async () => {
  let sent = 0;
  const applied = new Map<string, number>();
  await checkProperty(
    'wire',
    aCase,
    async (c) => {
      fc.pre(c.key !== undefined || !isEnvelope(c.bytes));
      const p = partitionOf(c.actor, PARTITIONS);
      const subject = `${PREFIX}.mbox.${p}.${c.key ?? actorKey(c.actor)}`;
      const dlqBefore = (await ctx.jsm.streams.info(`${PREFIX}_dlq`)).state.last_seq;
      await ctx.js.publish(subject, c.bytes);
      await ctx.rt.send(c.actor, { op: 'inc' }, { msgId: `valid-${++sent}` });
      applied.set(c.actor, (applied.get(c.actor) ?? 0) + 1);
      const want = applied.get(c.actor)!;
      await waitFor(`${c.actor} applies valid mail after ${c.why}`, async () => ((await ctx.rt.read(c.actor)) as { n: number } | null)?.n === want || undefined, 10_000);
      const dl = await waitFor(`dead letter for ${c.why}`, async () => {
        const info = await ctx.jsm.streams.info(`${PREFIX}_dlq`);
        return info.state.last_seq > dlqBefore ? info.state.last_seq : undefined;
      }, 10_000);
      assert.is(dl, dlqBefore + 1, `exactly one dead letter for ${c.why}`);
      const m = (await ctx.jsm.streams.getMessage(`${PREFIX}_dlq`, { seq: dl }))!;
      assert.is(m.subject, `${PREFIX}.dlq.${p}`);
      assert.is(m.header.get('Kiln-Subject'), subject);
      const reason = m.header.get('Kiln-Reason');
      assert.ok(/undecodable|not a runtime envelope|invalid actor key|no behaviour/.test(reason), `reason '${reason}' for ${c.why}`);
      assert.equal(Array.from(m.data), Array.from(c.bytes), `dead letter keeps the original bytes (${c.why})`);
    },
    120,
  );
  assert.ok(ctx.rt.metrics().deadLetters > 0);
});

test.run();
