import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsCluster, waitFor } from '@kiln/natsd';
import { MailboxClient, Runtime, partitionOf, type Outgoing } from '../src/index.js';
import { stallVerdict, type ConsumerView } from '../src/runtime.js';
import { counter, type CounterState } from './fixtures/counter.js';
import { sendUntilStored } from './helpers.js';

// nats-server 2.9 resets a clustered stream's replicas ("Resetting stream cluster state") when a
// replica applies a message delete beyond its last sequence; chaos runs saw it on the mailbox
// stream seconds after a killed node came back (docs/chaos.md, finding 6). The same reset is
// triggered here on purpose: a delete of a sequence the mailbox stream never had.

const PARTITIONS = 4;

test('stall verdict: mail the stream holds while the consumer counts none restarts the worker on the second check', () => {
  const none: ConsumerView = { pending: 0, unacknowledged: 0, pullsWaiting: 1, held: false };
  assert.is(stallVerdict(none, false), 'quiet');
  assert.is(stallVerdict(none, true), 'quiet');
  // What a consumer reset by the server looked like in the chaos run (delivered past its ack
  // floor, nothing pending or unacknowledged, the stream still holding the partition's mail).
  const stranded: ConsumerView = { ...none, held: true };
  assert.is(stallVerdict(stranded, false), 'suspect');
  assert.is(stallVerdict(stranded, true), 'restart');
  // Pulls lost with the consumer leader: at once.
  assert.is(stallVerdict({ pending: 3, unacknowledged: 0, pullsWaiting: 0, held: false }, false), 'restart');
  // Pending with a pull waiting, or unacknowledged: on the second check.
  assert.is(stallVerdict({ pending: 3, unacknowledged: 0, pullsWaiting: 1, held: false }, false), 'suspect');
  assert.is(stallVerdict({ pending: 0, unacknowledged: 2, pullsWaiting: 1, held: false }, true), 'restart');
});

test('a reset of the mailbox stream replicas while messages wait: every message applied once, in order', async () => {
  const cluster = await NatsCluster.start(3);
  const node0 = cluster.nodes[0]!;
  const nc = await connect({ servers: node0.url, noAsyncTraces: true });
  const mail = new MailboxClient(nc, { prefix: 'z', partitions: PARTITIONS, timeoutMs: 3000 });
  let rt: Runtime | undefined;
  try {
    rt = await Runtime.start({ servers: node0.url, nodeId: 'a', behaviors: [counter], partitions: PARTITIONS, leaseMs: 10_000, replicas: 3, prefix: 'z', eventsSubject: 'z.events' });
    const node = rt;
    await waitFor('all partitions owned', () => node.metrics().partitionsOwned === PARTITIONS, 30_000, 100);
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const actors = 32;
    const round = (r: number): Outgoing[] => Array.from({ length: actors }, (_, i) => ({ to: `counter/z${i}`, msg: { op: 'inc', tag: 't', seq: r }, msgId: `r${r}-${i}` }));
    const applied = () => Promise.all(Array.from({ length: actors }, (_, i) => node.read(`counter/z${i}`) as Promise<CounterState | null>));
    const allApplied = async (n: number, what: string) => {
      try {
        await waitFor(what, async () => (await applied()).every((s) => s?.n === n), 30_000, 200);
      } catch (e) {
        const behind = new Set<number>();
        (await applied().catch(() => [])).forEach((s, i) => {
          if (s?.n !== n) behind.add(partitionOf(`counter/z${i}`, PARTITIONS));
        });
        throw new Error(`${(e as Error).message}; partitions behind: ${[...behind].join(',')}`);
      }
    };
    for (let r = 1; r <= 3; r++) await sendUntilStored(mail, round(r));
    await allApplied(3, 'first rounds applied');
    for (let k = 0; k < 3; k++) {
      const last = (await jsm.streams.info('z_mbox')).state.last_seq;
      // The reset: every replica applies a delete of a sequence it does not have.
      await jsm.streams.deleteMessage('z_mbox', last + 1000, false).catch(() => undefined);
      for (let r = 4 + k * 3; r < 7 + k * 3; r++) await sendUntilStored(mail, round(r));
    }
    await allApplied(12, 'every message applied after the resets');
    for (const [i, s] of (await applied()).entries()) {
      assert.is(s!.n, 12, `counter/z${i} applied count`);
      assert.is(s!.disorder, 0, `counter/z${i} order`);
    }
    const logs = cluster.nodes.map((n) => n.log).join('\n');
    assert.ok(logs.includes('Resetting stream cluster state'), 'the server reset the stream');
  } finally {
    mail.close();
    await rt?.stop();
    await nc.close();
    await cluster.stop();
  }
});

test.run();
