import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsServer, NatsCluster } from '../src/index.js';

test('starts a JetStream server on a free port, survives restart with its store, and cleans up', async () => {
  const s = await NatsServer.start();
  try {
    const nc = await connect({ servers: s.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'T', subjects: ['t.>'] });
    await s.restart();
    // The stream lives in the store dir, so it is still there after the restart.
    const deadline = Date.now() + 10_000;
    let info;
    while (!info && Date.now() < deadline) {
      try {
        info = await jsm.streams.info('T');
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.is(info?.config.name, 'T');
    await nc.close();
  } finally {
    await s.stop();
  }
  assert.not.ok(existsSync(s.storeDir), 'temp store dir removed');
  assert.not.ok(s.running);
});

test('a missing nats-server binary is a typed error naming the install command', () => {
  const script = `
    process.env.NATS_SERVER_BIN = '/nonexistent/nats-server';
    const { NatsServer } = await import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)});
    try { await NatsServer.start(); process.exit(3); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const out = JSON.parse(r.stdout.trim()) as { code: string; message: string };
  assert.is(out.code, 'NATS_SERVER_MISSING');
  assert.match(out.message, 'apt-get install -y nats-server');
});

test('a 3-node cluster elects a JetStream leader and holds an R3 stream', async () => {
  const c = await NatsCluster.start(3);
  try {
    const nc = await connect({ servers: c.servers });
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
    assert.is(si.config.num_replicas, 3);
    await nc.close();
  } finally {
    await c.stop();
  }
});

test.run();
