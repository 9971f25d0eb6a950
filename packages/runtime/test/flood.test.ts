import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createLogger, decode, encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { MailboxClient, Runtime, type Outgoing, type RuntimeOptions } from '../src/index.js';
import { NotSent, Requester } from '../src/requester.js';
import type { LeaseValue } from '../src/lease.js';
import { counter, type CounterState } from './fixtures/counter.js';

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  runtimes: Runtime[];
  n: number;
}

const PARTITIONS = 8;

/** A runtime whose ownership log lines ('partition lost', takeovers, fencings, recoveries) are counted. */
async function start(ctx: Ctx, extra: Partial<RuntimeOptions> = {}): Promise<{ rt: Runtime; prefix: string; logged: (msg: string) => number }> {
  const prefix = `f${++ctx.n}`;
  const lines: string[] = [];
  const logger = createLogger('runtime', {
    hooks: {
      logMethod(args, method) {
        const msg = args.find((a) => typeof a === 'string');
        if (typeof msg === 'string') lines.push(msg);
        method.apply(this, args);
      },
    },
  });
  // Counted lines include info ones ('partition taken over'), whatever KILN_LOG_LEVEL the runner sets.
  logger.level = 'info';
  const rt = await Runtime.start({
    servers: ctx.nats.url,
    nodeId: `flood${ctx.n}`,
    behaviors: [counter],
    partitions: PARTITIONS,
    leaseMs: 2000,
    prefix,
    eventsSubject: `${prefix}.events`,
    logger,
    ...extra,
  });
  ctx.runtimes.push(rt);
  await waitFor('partitions owned', () => rt.metrics().partitionsOwned === PARTITIONS);
  return { rt, prefix, logged: (msg) => lines.filter((l) => l === msg).length };
}

const F = suite<Ctx>('runtime under a flood');

F.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
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

F('a node flooded behind a small request bound keeps every lease and applies each message once', async (ctx) => {
  // 2 s leases (renewed every 250 ms, lease requests time out after 500 ms) and at most 16
  // requests awaiting a reply: the bulk traffic queues for seconds in the node, its leases must not.
  const { rt, prefix, logged } = await start(ctx, { maxOutstandingRequests: 16, cacheSize: 20_000 });
  const actors = 10_000;
  const rounds = 10;
  const mail = new MailboxClient(ctx.nc, { prefix, partitions: PARTITIONS });
  let minOwned = PARTITIONS;
  let maxWaiting = 0;
  const sampler = setInterval(() => {
    const m = rt.metrics();
    minOwned = Math.min(minOwned, m.partitionsOwned);
    maxWaiting = Math.max(maxWaiting, m.requestsWaiting);
  }, 50);
  try {
    for (let r = 0; r < rounds; r++) {
      const batch: Outgoing[] = [];
      for (let a = 0; a < actors; a++) batch.push({ to: `counter/a${a}`, msg: { op: 'inc', tag: 'f', seq: r + 1 }, msgId: `f${r}-${a}` });
      for (let i = 0; i < batch.length; i += 1024) await mail.sendMany(batch.slice(i, i + 1024));
    }
    await waitFor('flood processed', () => rt.metrics().processed >= actors * rounds, 240_000, 200);
  } finally {
    clearInterval(sampler);
    mail.close();
  }
  const m = rt.metrics();
  assert.is(m.processed, actors * rounds);
  assert.ok(maxWaiting > 0, 'the request bound was reached (back-pressure engaged)');
  assert.is(logged('partition lost'), 0, 'no partition lost during the flood');
  assert.is(logged('partition taken over'), 0);
  assert.is(m.fencings, 0);
  assert.is(m.redeliveries, 0);
  assert.is(minOwned, PARTITIONS);
  for (let a = 0; a < actors; a += 500) {
    const states = await Promise.all(Array.from({ length: 500 }, (_, i) => rt.read(`counter/a${a + i}`) as Promise<CounterState | null>));
    states.forEach((s, i) => {
      assert.is(s?.n, rounds, `counter/a${a + i} applied every message once`);
      assert.is(s?.disorder, 0);
    });
  }
});

F('a renewal applied without its reply reaching the node does not cost the lease', async (ctx) => {
  const { rt, prefix, logged } = await start(ctx);
  // What a renewal that timed out but was stored leaves behind: the lease still names this node
  // at a revision the node does not know.
  const leases = await new Kvm(jetstream(ctx.nc)).open(`${prefix}_leases`);
  // (Retried when the node's own renewal got in first.)
  await waitFor('lease rewritten', async () => {
    const e = await leases.get('p.0');
    assert.is(decode<LeaseValue>(e!.value).node, rt.nodeId);
    return leases.update('p.0', encode({ node: rt.nodeId, exp: Date.now() + 2000 } satisfies LeaseValue), e!.revision);
  });
  await waitFor('renewal recovered', () => logged('lease renewal recovered (an earlier renewal was applied without a reply)') > 0);
  // Several more renewals (every 250 ms) on the recovered revision.
  const renewed = (await leases.get('p.0'))!.revision;
  await waitFor('renewed again', async () => (await leases.get('p.0'))!.revision > renewed + 3);
  assert.is(logged('partition lost'), 0);
  assert.is(rt.metrics().partitionsOwned, PARTITIONS);
  await rt.send('counter/after', { op: 'inc' });
  await waitFor('still working', async () => ((await rt.read('counter/after')) as CounterState | null)?.n === 1);
});

F('the requester holds at most its bound awaiting replies, and asks before sending', async (ctx) => {
  const nc = await connect({ servers: ctx.nats.url });
  const held: (() => void)[] = [];
  let maxHeld = 0;
  const seen: string[] = [];
  const responder = nc.subscribe('slow.>', {
    callback: (_err, m) => {
      seen.push(m.subject);
      held.push(() => m.respond(m.data));
      maxHeld = Math.max(maxHeld, held.length);
    },
  });
  const requester = new Requester(nc, 10_000, 5);
  try {
    const replies = Array.from({ length: 40 }, (_, i) => requester.request(`slow.${i}`, encode(i)));
    let skipped = false;
    const refused = requester.request('slow.skipped', encode(-1), undefined, () => {
      skipped = true;
      return false;
    });
    // Answer whatever is held, a few at a time, until every request got its reply.
    let answered = 0;
    const done = Promise.all(replies).then(() => true);
    while (answered < 40) {
      await waitFor('requests held', () => held.length > 0);
      await nc.flush();
      for (const r of held.splice(0)) {
        r();
        answered++;
      }
    }
    assert.ok(await done);
    assert.ok(maxHeld <= 5, `at most 5 outstanding (saw ${maxHeld})`);
    assert.is(maxHeld, 5);
    const err = await refused.then(() => undefined, (e: unknown) => e);
    assert.ok(skipped && err instanceof NotSent);
    await nc.flush();
    assert.not.ok(seen.includes('slow.skipped'), 'a request refused by its check is never sent');
    assert.is(requester.queued, 0);
  } finally {
    requester.close();
    responder.unsubscribe();
    await nc.close();
  }
});

F.run();
