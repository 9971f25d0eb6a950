/**
 * A top-level template too large for its supervisor to keep (RESEND_SPEC_LIMIT): the repeat of
 * its desires reads the spec back from the engine's spec store (STACK_SPEC_TASK), with a real
 * nats-server and engine. The reducer side, with a lost desire, is in the `resend` suite.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@kiln/natsd';
import { Engine } from '../src/index.js';
import { RESEND_SPEC_LIMIT } from '../src/stack.js';
import { settled } from './helpers.js';

const test = suite<{ nats?: NatsServer; nc?: NatsConnection; engine?: Engine }>('spec read back for a repeat (real nats)');
test.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  // Repeats every 0.5-1 s instead of 30 s - 5 min, so that they come while the stack works.
  ctx.engine = await Engine.start({ servers: ctx.nats.url, partitions: 4, nodeId: 'spec-resend', resend: { firstMs: 500, maxMs: 1000, perSecond: 100 } });
});
test.after(async (ctx) => {
  await ctx.engine?.stop();
  await ctx.nc?.close();
  await ctx.nats?.stop();
});

test('while a shard works, the repeat to it carries the desires planned from the spec read back from the store', async ({ nc, engine }) => {
  // Every publish to a mailbox, seen as a plain subscriber (msgpack keeps strings as they are).
  const repeats: number[] = [];
  const sub = nc!.subscribe('kiln.mbox.>', {
    callback: (_e, m) => {
      const text = Buffer.from(m.data).toString('latin1');
      if (text.includes('shardDesire') && text.includes('again') && text.includes('named')) repeats.push(m.data.length);
    },
  });
  try {
    const big = 'x'.repeat(RESEND_SPEC_LIMIT + 1024);
    const ref = await engine!.createStack({
      name: 'big-slow',
      template: {
        heat_template_version: '2016-10-14',
        resources: {
          big: { type: 'OS::Heat::TestResource', properties: { value: big } },
          slow: { type: 'OS::Heat::TestResource', properties: { value: 's', wait_secs: 3 } },
        },
      },
    });
    await waitFor('a repeat with the desires', () => repeats.length > 0 || null, 20_000, 50);
    // The big resource's definition travels in it: planned from the whole spec.
    assert.ok(repeats[0]! > RESEND_SPEC_LIMIT, `${repeats[0]} bytes`);
    const s = await settled(engine!, ref.id, 1, 30_000);
    assert.is(s.status, 'READY', s.reason);
  } finally {
    sub.unsubscribe();
  }
});

test.run();
