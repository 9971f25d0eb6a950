/**
 * The registry audit (EngineOptions.registryAudit): a stack generation stored in the registry
 * whose message to the supervisor was lost — as nats-server 2.9 can lose an acknowledged mailbox
 * message (docs/chaos.md finding 6) — is sent again, so the stack still converges to it.
 * The loss is real: the message is deleted from the mailbox stream before any engine reads it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsServer } from '@kiln/natsd';
import { actorKey, partitionOf } from '@kiln/runtime';
import { Engine } from '../src/index.js';
import { settled } from './helpers.js';

const PARTITIONS = 4;
const AUDIT = { periodMs: 200, afterMs: 500 };
const test = suite<{ nats?: NatsServer; nc?: NatsConnection; client?: Engine }>('registry audit: lost setDesired (real nats)');
test.before(async (ctx) => {
  ctx.nats = await NatsServer.start();
  ctx.nc = await connect({ servers: ctx.nats.url });
  ctx.client = await Engine.start({ servers: ctx.nats.url, partitions: PARTITIONS, worker: false });
});
test.after(async (ctx) => {
  await ctx.client?.stop();
  await ctx.nc?.close();
  await ctx.nats?.stop();
});

const spec = (value: string) => ({
  template: {
    heat_template_version: '2018-08-31',
    resources: { a: { type: 'OS::Heat::TestResource', properties: { value } } },
    outputs: { out: { value: { get_attr: ['a', 'output'] } } },
  },
});

/** Deletes the last mailbox message of the stack's supervisor, after checking it is the `setDesired` of `op`. */
async function loseSetDesired(nc: NatsConnection, stackId: string, op: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const address = `stack/${stackId}`;
  const m = await jsm.streams.getMessage('kiln_mbox', { last_by_subj: `kiln.mbox.${partitionOf(address, PARTITIONS)}.${actorKey(address)}` });
  assert.ok(m, 'the setDesired is in the stream');
  const text = Buffer.from(m.data).toString('latin1');
  // msgpack keeps strings as they are: the message names its kind and op.
  assert.ok(text.includes('setDesired') && text.includes(op), `message at seq ${m.seq} is the ${op} setDesired`);
  assert.ok(await jsm.streams.deleteMessage('kiln_mbox', m.seq));
}

test('an update whose message to the supervisor was lost is sent again by the audit', async ({ nats, nc, client }) => {
  let worker = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w1', registryAudit: AUDIT });
  try {
    const ref = await client!.createStack({ name: 'lost-update', ...spec('one') });
    assert.equal((await settled(client!, ref.id, 1)).outputs, { out: 'one' });
    // No worker reads mail while the update is stored and its message lost.
    await worker.stop();
    const g = await client!.updateStack(ref.id, spec('two'));
    assert.is(g.generation, 2);
    await loseSetDesired(nc!, ref.id, 'update');
    worker = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w2', registryAudit: AUDIT });
    const s = await settled(client!, ref.id, 2, 30_000);
    assert.is(s.status, 'READY');
    assert.is(s.generation, 2);
    assert.equal(s.outputs, { out: 'two' });
  } finally {
    await worker.stop();
  }
});

test('a lost create and a lost delete are sent again too', async ({ nats, nc, client }) => {
  const worker = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w3', registryAudit: AUDIT });
  try {
    await worker.stop();
    const ref = await client!.createStack({ name: 'lost-create', ...spec('x') });
    await loseSetDesired(nc!, ref.id, 'create');
    const w = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w4', registryAudit: AUDIT });
    try {
      assert.equal((await settled(client!, ref.id, 1, 30_000)).outputs, { out: 'x' });
      await w.stop();
      await client!.deleteStack(ref.id);
      await loseSetDesired(nc!, ref.id, 'delete');
    } finally {
      await w.stop();
    }
    const w2 = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w5', registryAudit: AUDIT });
    try {
      assert.is((await settled(client!, ref.id, 2, 30_000)).status, 'DELETED');
    } finally {
      await w2.stop();
    }
  } finally {
    await worker.stop();
  }
});

test('writes acknowledged while the mailbox takes no mail: none fails, none is repeated by its retry, the writer sends the newest again once it does', async ({ nats, nc, client }) => {
  const jsm = await jetstreamManager(nc!);
  const ref = await client!.createStack({ name: 'no-mailbox', ...spec('zero') });
  const mbox = await jsm.streams.info('kiln_mbox');
  // The mailbox stream listens elsewhere: every message to a supervisor finds no stream (503).
  await jsm.streams.update('kiln_mbox', { ...mbox.config, subjects: ['kiln.elsewhere.>'] });
  let restored = false;
  const restore = async () => {
    if (!restored) await jsm.streams.update('kiln_mbox', mbox.config);
    restored = true;
  };
  try {
    // Two writers, each repeating its write as a client whose answer was lost would.
    const one = await client!.updateStack(ref.id, spec('one'), { requestId: 'req-one' });
    const two = await client!.updateStack(ref.id, spec('two'), { requestId: 'req-two' });
    assert.equal([one.generation, two.generation], [2, 3]);
    assert.is((await client!.updateStack(ref.id, spec('one'), { requestId: 'req-one' })).generation, 2, 'the retry gets its first answer');
    assert.is((await client!.updateStack(ref.id, spec('two'), { requestId: 'req-two' })).generation, 3);
    assert.is((await client!.getStack(ref.id)).generation, 3, 'no retry wrote a generation');
    await restore();
    // No audit: the writer's own repeats of its message (after 0.5–1 s, then doubling) must bring it.
    const worker = await Engine.start({ servers: nats!.url, partitions: PARTITIONS, nodeId: 'w6', registryAudit: false });
    try {
      const s = await settled(client!, ref.id, 3, 20_000);
      assert.is(s.status, 'READY');
      assert.equal(s.outputs, { out: 'two' });
    } finally {
      await worker.stop();
    }
  } finally {
    await restore();
  }
});

test.run();
