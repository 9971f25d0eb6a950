import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsCluster } from '@kiln/natsd';
import { Engine, type GenerationRef } from '../src/index.js';
import { settled } from './helpers.js';

test('on a 3-node cluster with replicas 3, every bucket and stream is R3 and a stack converges', async () => {
  const cluster = await NatsCluster.start(3);
  const engine = await Engine.start({ servers: cluster.servers, partitions: 8, replicas: 3, nodeId: 'r3' });
  try {
    const ref = await engine.createStack({
      name: 'r3',
      template: { heat_template_version: '2021-04-16', resources: { a: { type: 'OS::Heat::None' }, b: { type: 'OS::Heat::Value', properties: { value: { get_resource: 'a' } } } } },
    });
    const s = await settled(engine, ref.id, 1);
    assert.is(s.status, 'READY', s.reason);
    const nc = await connect({ servers: cluster.servers });
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const si of jsm.streams.list()) {
      names.push(si.config.name);
      assert.is(si.config.num_replicas, 3, `${si.config.name} is R${si.config.num_replicas}`);
    }
    // The stack registry, the spec store, actor state, leases, mailboxes and events all exist.
    for (const n of ['KV_kiln_stacks', 'KV_kiln_specs', 'KV_kiln_state', 'KV_kiln_leases', 'kiln_mbox']) assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
    await nc.close();
  } finally {
    await engine.stop();
    await cluster.stop();
  }
});

test('on R3, concurrent writes to one stack from engines on different nodes each get their own generation', async () => {
  // nats-server < 2.9.21 can store two compare-and-set writes expecting the same revision on a
  // clustered stream (nats-server#4320); without the engine's check, pairs share a generation.
  const cluster = await NatsCluster.start(3);
  const clients: Engine[] = [];
  try {
    // Started inside the try: a start that times out still stops the cluster (else the suite hangs).
    for (const [i, url] of cluster.servers.entries()) clients.push(await Engine.start({ servers: url, partitions: 8, replicas: 3, nodeId: `c${i}`, worker: i === 0 }));
    const t = (v: string) => ({ heat_template_version: '2021-04-16', resources: { v: { type: 'OS::Heat::Value', properties: { value: v } } } });
    const ref = await clients[0]!.createStack({ name: 'racy', template: t('0') });
    const gens: number[] = [1];
    for (let round = 0; round < 20; round++) {
      // With request ids (as the API passes them): a write stored out of order carries its id,
      // and its writer must not take that entry for the answer to a retried request.
      const refs = await Promise.all(clients.map((c, i) => c.updateStack(ref.id, { template: t(`${round}.${i}`) }, { requestId: `r${round}.${i}` })));
      gens.push(...refs.map((r) => r.generation));
    }
    assert.equal([...gens].sort((a, b) => a - b), Array.from({ length: gens.length }, (_, i) => i + 1));
    // Racing patches (each writer sets its own parameter on the stored spec): a write must build
    // on the winner's entry, not on a losing write stored after it, or a value is lost.
    const p = { heat_template_version: '2021-04-16', parameters: { a0: { type: 'string' }, a1: { type: 'string' }, a2: { type: 'string' } }, resources: { v: { type: 'OS::Heat::Value', properties: { value: { get_param: 'a0' } } } } };
    const pref = await clients[0]!.createStack({ name: 'patchy', template: p, parameters: { a0: '-', a1: '-', a2: '-' } });
    for (let round = 0; round < 15; round++) {
      await Promise.all(clients.map((c, i) => c.patchStack(pref.id, { parameters: { [`a${i}`]: `${round}` } }, { requestId: `p${round}.${i}` })));
      const d = await clients[0]!.desiredSpec(pref.id);
      assert.equal(d.spec.parameters, { a0: `${round}`, a1: `${round}`, a2: `${round}` }, `round ${round}`);
    }
    // The last generation's spec is stored, whoever won each race.
    const d = await clients[1]!.desiredSpec(ref.id);
    assert.is(d.generation, gens.length);
    assert.ok(JSON.stringify(d.spec.template).includes('19.'), JSON.stringify(d.spec.template));
  } finally {
    for (const c of clients) await c.stop();
    await cluster.stop();
  }
});

test('on R3, concurrent creates of one name from engines on different nodes: exactly one succeeds and the name stays its', async () => {
  // nats-server#4320 lets two updates expecting one revision both be stored (the test above); the
  // create of a name (expecting no entry) was never seen racing so: 300 rounds of this gave one
  // success each. Kept as the check that it stays so.
  const cluster = await NatsCluster.start(3);
  const clients: Engine[] = [];
  try {
    for (const [i, url] of cluster.servers.entries()) clients.push(await Engine.start({ servers: url, partitions: 8, replicas: 3, nodeId: `n${i}`, worker: i === 0 }));
    const t = { heat_template_version: '2021-04-16', resources: { v: { type: 'OS::Heat::Value', properties: { value: 'x' } } } };
    for (let round = 0; round < 25; round++) {
      const name = `twin${round}`;
      const outcomes = await Promise.allSettled(clients.map((c) => c.createStack({ name, template: t })));
      const won = outcomes.filter((o): o is PromiseFulfilledResult<GenerationRef> => o.status === 'fulfilled').map((o) => o.value);
      const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => (o.reason as { code?: string }).code);
      assert.is(won.length, 1, `round ${round}: ${won.length} creates of ${name} succeeded (${outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'ok')).join('; ')})`);
      assert.ok(refused.every((c) => c === 'STACK_EXISTS'), refused.join());
      for (const c of clients) assert.is(await c.resolve(name), won[0]!.id, `round ${round}: the name resolves to the winner`);
    }
  } finally {
    for (const c of clients) await c.stop();
    await cluster.stop();
  }
});

test.run();
