import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NatsCluster, waitFor } from '@kiln/natsd';
import { Runtime } from '../src/index.js';
import { counter, type CounterState } from './fixtures/counter.js';

test('two runtimes on a 3-node JetStream cluster with R3 buckets and streams', async () => {
  const cluster = await NatsCluster.start(3);
  const runtimes: Runtime[] = [];
  try {
    for (const nodeId of ['a', 'b']) {
      runtimes.push(
        await Runtime.start({
          servers: cluster.servers,
          nodeId,
          behaviors: [counter],
          partitions: 8,
          leaseMs: 3000,
          replicas: 3,
          prefix: 'c',
          eventsSubject: 'c.events',
        }),
      );
    }
    const [a, b] = runtimes as [Runtime, Runtime];
    await waitFor('split', () => a.metrics().partitionsOwned === 4 && b.metrics().partitionsOwned === 4, 30_000, 100);
    const actors = 40;
    const per = 10;
    const sends: Promise<void>[] = [];
    for (let s = 1; s <= per; s++) for (let i = 0; i < actors; i++) sends.push(a.send(`counter/c${i}`, { op: 'inc', tag: 'x', seq: s }));
    await Promise.all(sends);
    await a.send('counter/timer', { op: 'timer', name: 't', delayMs: 300 });
    await waitFor('processed', () => a.metrics().processed + b.metrics().processed >= actors * per + 2, 30_000, 100);
    for (let i = 0; i < actors; i++) {
      const st = (await b.read(`counter/c${i}`)) as CounterState;
      assert.is(st.n, per);
      assert.is(st.disorder, 0);
    }
    await waitFor('timer fired', async () => ((await a.read('counter/timer')) as CounterState | null)?.fired.includes('t'), 10_000, 100);
    // One node leaves gracefully: the other owns everything.
    await b.stop();
    runtimes.pop();
    await waitFor('a owns all', () => a.metrics().partitionsOwned === 8, 15_000, 100);
  } finally {
    await Promise.all(runtimes.map((r) => r.stop()));
    await cluster.stop();
  }
});

test.run();
