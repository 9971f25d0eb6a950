import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsCluster } from '@kiln/natsd';
import { Engine } from '../src/index.js';
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

test.run();
