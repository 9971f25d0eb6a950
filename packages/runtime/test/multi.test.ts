import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { decode, encode } from '@kiln/core';
import { NatsServer, waitFor } from '@kiln/natsd';
import { MailboxClient, actorKey, partitionOf, type Outgoing } from '../src/index.js';
import { stateOf, type ActorRecord } from '../src/step.js';
import type { CounterState } from './fixtures/counter.js';
import { logLines, startWorker, type WorkerProcess } from './helpers.js';

interface Ctx {
  nats: NatsServer;
  nc: NatsConnection;
  workers: WorkerProcess[];
  n: number;
}

const M = suite<Ctx>('runtime across processes');
const PARTITIONS = 16;
const LEASE_MS = 4000;

M.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url, noAsyncTraces: true });
  ctx.workers = [];
  ctx.n = 0;
});
M.after.each((ctx) => {
  for (const w of ctx.workers.splice(0)) w.child.kill('SIGKILL');
});
M.after(async (ctx) => {
  await ctx.nc.close();
  await ctx.nats.stop();
});

async function spawnNode(ctx: Ctx, prefix: string, nodeId: string, servers: string | string[] = ctx.nats.url): Promise<WorkerProcess> {
  const w = await startWorker({ servers, prefix, nodeId, partitions: PARTITIONS, leaseMs: LEASE_MS });
  ctx.workers.push(w);
  return w;
}

interface Metrics {
  processed: number;
  partitionsOwned: number;
  partitions: number[];
  redeliveries: number;
  fencings: number;
}

async function metrics(nc: NatsConnection, prefix: string, nodeId: string): Promise<Metrics | undefined> {
  try {
    return (await nc.request(`${prefix}.node.${nodeId}.metrics`, '', { timeout: 1000 })).json<Metrics>();
  } catch {
    return undefined;
  }
}

async function owned(ctx: Ctx, prefix: string, nodes: string[]): Promise<number[]> {
  return Promise.all(nodes.map(async (n) => (await metrics(ctx.nc, prefix, n))?.partitionsOwned ?? -1));
}

const evenly = (counts: number[]) => counts.reduce((a, b) => a + b, 0) === PARTITIONS && counts.every((c) => Math.abs(c - PARTITIONS / counts.length) < 1);

/** Publishes `per` increments to each of `actors` counters, pipelined; `during(i)` runs after message i is acknowledged by the stream. */
async function flood(ctx: Ctx, prefix: string, actors: number, per: number, during: (i: number) => void | Promise<void> = () => undefined): Promise<void> {
  const js = jetstream(ctx.nc);
  const pending = new Set<Promise<unknown>>();
  // An actor's next message is published only once its previous one is stored: a publish retried
  // across an outage must not land behind a later one (the mailbox order is the stream order).
  const previous: Promise<unknown>[] = new Array(actors).fill(Promise.resolve());
  let i = 0;
  for (let s = 1; s <= per; s++) {
    for (let a = 0; a < actors; a++, i++) {
      const addr = `counter/k${a}`;
      const id = `${prefix}-${a}-${s}`;
      const subject = `${prefix}.mbox.${partitionOf(addr, PARTITIONS)}.${actorKey(addr)}`;
      const publish = async (): Promise<void> => {
        // Retried with the same msgId across outages: the stream stores it once.
        for (;;) {
          try {
            await js.publish(subject, encode({ i: id, m: { op: 'inc', tag: 'f', seq: s } }), { msgID: id, timeout: 5000 });
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      };
      const p: Promise<unknown> = previous[a]!.then(publish).finally(() => pending.delete(p));
      previous[a] = p;
      pending.add(p);
      if (pending.size >= 300) await Promise.race(pending);
      await during(i);
    }
  }
  await Promise.all(pending);
}

/**
 * Like flood, with packs: round s sends increment s to every actor through sendMany calls of 500
 * messages (one pack per partition each), retried with the same list until stored; a round
 * starts once the previous one is stored, which keeps each actor's messages in order.
 */
async function packFlood(
  ctx: Ctx,
  prefix: string,
  actors: number,
  per: number,
  during: (round: number) => void | Promise<void> = () => undefined,
  msgFor: (actor: number, round: number) => unknown = (_a, s) => ({ op: 'inc', tag: 'f', seq: s }),
): Promise<void> {
  const mail = new MailboxClient(ctx.nc, { prefix, partitions: PARTITIONS, timeoutMs: 5000 });
  for (let s = 1; s <= per; s++) {
    const calls: Promise<void>[] = [];
    for (let from = 0; from < actors; from += 500) {
      const items: Outgoing[] = [];
      for (let a = from; a < Math.min(actors, from + 500); a++) items.push({ to: `counter/k${a}`, msg: msgFor(a, s), msgId: `${prefix}-${a}-${s}` });
      calls.push(
        (async () => {
          for (;;) {
            try {
              return await mail.sendMany(items);
            } catch {
              await new Promise((r) => setTimeout(r, 200));
            }
          }
        })(),
      );
    }
    await Promise.all(calls);
    await during(s);
  }
  mail.close();
}

async function readAll(kv: KV, actors: number): Promise<(CounterState | undefined)[]> {
  const out: (CounterState | undefined)[] = new Array(actors);
  const idx = Array.from({ length: actors }, (_, a) => a);
  while (idx.length) {
    await Promise.all(
      idx.splice(0, 500).map(async (a) => {
        const e = await kv.get(actorKey(`counter/k${a}`));
        out[a] = e && e.operation === 'PUT' ? (stateOf(decode<ActorRecord>(e.value)) as CounterState) : undefined;
      }),
    );
  }
  return out;
}

async function expectExactlyOnce(ctx: Ctx, prefix: string, actors: number, per: number): Promise<void> {
  const kv = await new Kvm(jetstream(ctx.nc)).open(`${prefix}_state`);
  let states: (CounterState | undefined)[] = [];
  await waitFor(
    'every message applied',
    async () => {
      states = await readAll(kv, actors);
      return states.every((s) => s && s.n >= per);
    },
    90_000,
    500,
  );
  const wrong = states.map((s, a) => ({ a, n: s?.n, disorder: s?.disorder })).filter((x) => x.n !== per || x.disorder !== 0);
  assert.equal(wrong.slice(0, 5), [], `${wrong.length} actors not applied exactly once in order`);
}

M('two, then three processes share the partitions evenly', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  await spawnNode(ctx, prefix, 'a');
  await spawnNode(ctx, prefix, 'b');
  await waitFor('2-way split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  await spawnNode(ctx, prefix, 'c');
  await waitFor('3-way split', async () => {
    const o = await owned(ctx, prefix, ['a', 'b', 'c']);
    return o.reduce((x, y) => x + y, 0) === PARTITIONS && o.every((c) => c >= 5 && c <= 6);
  }, 20_000, 100);
});

M('SIGKILL of one of three mid-stream to 10,000 actors: every message applied exactly once, partitions owned again within 2x lease', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  const nodes = ['a', 'b', 'c'];
  const ws: WorkerProcess[] = [];
  for (const n of nodes) ws.push(await spawnNode(ctx, prefix, n));
  await waitFor('3-way split', async () => (await owned(ctx, prefix, nodes)).every((c) => c >= 5), 20_000, 100);
  const actors = 10_000;
  const per = 2;
  let killedAt = 0;
  await flood(ctx, prefix, actors, per, async (i) => {
    if (i === 8_000) {
      ws[2]!.child.kill('SIGKILL');
      killedAt = Date.now();
      await ws[2]!.exited;
    }
  });
  await waitFor('survivors own everything', async () => (await owned(ctx, prefix, ['a', 'b'])).reduce((x, y) => x + y, 0) === PARTITIONS, 2 * LEASE_MS + 3000, 50);
  const takeoverMs = Date.now() - killedAt;
  await expectExactlyOnce(ctx, prefix, actors, per);
  const taken = logLines(ws[0]!).concat(logLines(ws[1]!)).filter((l) => l.msg === 'partition taken over' && l.takeoverFrom === 'c');
  assert.ok(taken.length > 0, 'takeovers logged');
  assert.ok(takeoverMs > 0);
});

M('SIGKILL of one of two while packs to 10,000 actors are processed: every entry applied exactly once, in order', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  const ws = [await spawnNode(ctx, prefix, 'a'), await spawnNode(ctx, prefix, 'b')];
  await waitFor('split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  const actors = 10_000;
  const per = 3;
  await packFlood(ctx, prefix, actors, per, async (round) => {
    if (round === 2) {
      // Packs of rounds 1-2 are still being worked through (some half-applied) when b dies.
      ws[1]!.child.kill('SIGKILL');
      await ws[1]!.exited;
    }
  });
  await waitFor('survivor owns everything', async () => (await metrics(ctx.nc, prefix, 'a'))?.partitionsOwned === PARTITIONS, 2 * LEASE_MS + 3000, 50);
  await expectExactlyOnce(ctx, prefix, actors, per);
});

M('SIGKILL of one of two while the sends of packed steps fan in to few actors: every send applied exactly once, in order', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  const ws = [await spawnNode(ctx, prefix, 'a'), await spawnNode(ctx, prefix, 'b')];
  await waitFor('split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  const actors = 4000;
  const sinks = 8;
  const per = 3;
  // Every actor of a pack sends to its sink: the sends of a pack's steps travel packed (combined
  // publication), and b dies with some of them stored, half published or not yet published.
  const sinkOf = (a: number) => `counter/sink${a % sinks}`;
  await packFlood(
    ctx,
    prefix,
    actors,
    per,
    async (round) => {
      if (round === 2) {
        ws[1]!.child.kill('SIGKILL');
        await ws[1]!.exited;
      }
    },
    (a, s) => ({ op: 'send', to: sinkOf(a), msg: { op: 'inc', tag: `k${a}`, seq: s } }),
  );
  await expectExactlyOnce(ctx, prefix, actors, per);
  const kv = await new Kvm(jetstream(ctx.nc)).open(`${prefix}_state`);
  const sinkState = async (i: number) => {
    const e = await kv.get(actorKey(`counter/sink${i}`));
    return e && e.operation === 'PUT' ? (stateOf(decode<ActorRecord>(e.value)) as CounterState) : undefined;
  };
  const want = (actors / sinks) * per;
  const jsm = await jetstreamManager(ctx.nc);
  // Once the mailboxes are empty, a send stored twice would have been applied twice.
  await waitFor(
    'every send applied, mailboxes empty',
    async () =>
      (await Promise.all(Array.from({ length: sinks }, (_, i) => sinkState(i)))).every((st) => (st?.n ?? 0) >= want) &&
      (await jsm.streams.info(`${prefix}_mbox`)).state.messages === 0,
    60_000,
    500,
  );
  for (let i = 0; i < sinks; i++) {
    const st = await sinkState(i);
    const lastOk = Object.entries(st!.last).filter(([tag, seq]) => seq === per && Number(tag.slice(1)) % sinks === i).length;
    assert.equal({ n: st?.n, disorder: st?.disorder, senders: lastOk }, { n: want, disorder: 0, senders: actors / sinks }, `sink${i}`);
  }
});

M('a stale node woken by SIGCONT after its lease was taken cannot write and drops its partitions', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  const a = await spawnNode(ctx, prefix, 'a');
  const b = await spawnNode(ctx, prefix, 'b');
  await waitFor('split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  const actors = 2000;
  // Keep b busy so it is stopped with work in flight.
  await flood(ctx, prefix, actors, 1, (i) => {
    if (i === 1000) b.child.kill('SIGSTOP');
  });
  await waitFor('a took over', async () => (await metrics(ctx.nc, prefix, 'a'))?.partitionsOwned === PARTITIONS, 3 * LEASE_MS + 3000, 50);
  // Round two (round one's messages are published again with the same ids and dropped by the stream).
  await flood(ctx, prefix, actors, 2);
  b.child.kill('SIGCONT');
  await waitFor('b answers again', () => metrics(ctx.nc, prefix, 'b'), 10_000, 100);
  await expectExactlyOnce(ctx, prefix, actors, 2);
  const lost = logLines(b).filter((l) => l.msg === 'partition lost' || l.msg === 'state write refused (fenced): dropping partition');
  assert.ok(lost.length > 0, 'stale node logged that it dropped its partitions');
  await waitFor('rebalanced after waking', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  void a;
});

M('timers armed before a SIGKILL fire on the new owner', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  await spawnNode(ctx, prefix, 'a');
  const b = await spawnNode(ctx, prefix, 'b');
  await waitFor('split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  const bParts = new Set((await metrics(ctx.nc, prefix, 'b'))!.partitions);
  const targets: string[] = [];
  for (let i = 0; targets.length < 20; i++) if (bParts.has(partitionOf(`counter/tm${i}`, PARTITIONS))) targets.push(`counter/tm${i}`);
  const js = jetstream(ctx.nc);
  for (const t of targets) {
    await js.publish(`${prefix}.mbox.${partitionOf(t, PARTITIONS)}.${actorKey(t)}`, encode({ i: `set-${t}`, m: { op: 'timer', name: 'wake', delayMs: 1500 } }));
  }
  const kv = await new Kvm(js).open(`${prefix}_state`);
  const read = async (t: string) => {
    const e = await kv.get(actorKey(t));
    return e ? (stateOf(decode<ActorRecord>(e.value)) as CounterState) : undefined;
  };
  await waitFor('timers armed', async () => (await Promise.all(targets.map(read))).every((s) => s?.n === 1), 10_000, 100);
  b.child.kill('SIGKILL');
  await waitFor('every timer fired after takeover', async () => (await Promise.all(targets.map(read))).every((s) => s?.fired.includes('wake')), 20_000, 200);
  for (const t of targets) assert.equal((await read(t))?.fired, ['wake']);
});

M('graceful shutdown hands partitions over with no redelivery', async (ctx) => {
  const prefix = `m${++ctx.n}`;
  const a = await spawnNode(ctx, prefix, 'a');
  const b = await spawnNode(ctx, prefix, 'b');
  await waitFor('split', async () => evenly(await owned(ctx, prefix, ['a', 'b'])), 20_000, 100);
  const actors = 3000;
  await flood(ctx, prefix, actors, 2, (i) => {
    if (i === 2500) b.child.kill('SIGTERM');
  });
  assert.is(await b.exited, 0);
  await waitFor('a owns everything', async () => (await metrics(ctx.nc, prefix, 'a'))?.partitionsOwned === PARTITIONS, 10_000, 50);
  await expectExactlyOnce(ctx, prefix, actors, 2);
  const m = (await metrics(ctx.nc, prefix, 'a'))!;
  assert.is(m.redeliveries, 0, 'nothing was delivered twice');
  assert.ok(logLines(b).some((l) => l.msg === 'partition released'), b.stderr().slice(-3000));
  void a;
});

M.run();

const R = suite('runtime with a restarting nats-server');

R('a nats-server restart while busy loses nothing acknowledged', async () => {
  const nats = await NatsServer.start();
  const w = await startWorker({ servers: nats.url, prefix: 'r', nodeId: 'a', partitions: PARTITIONS, leaseMs: 3000 });
  const nc = await connect({ servers: nats.url, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const ctx = { nats, nc, workers: [w], n: 0 } as Ctx;
  try {
    await waitFor('owned', async () => (await metrics(nc, 'r', 'a'))?.partitionsOwned === PARTITIONS, 20_000, 100);
    const actors = 2000;
    let restarting: Promise<void> | undefined;
    await flood(ctx, 'r', actors, 3, (i) => {
      if (i === 2500) restarting = nats.restart();
    });
    await restarting;
    await expectExactlyOnce(ctx, 'r', actors, 3);
  } finally {
    w.child.kill('SIGKILL');
    await nc.close().catch(() => undefined);
    await nats.stop();
  }
});

R.run();
