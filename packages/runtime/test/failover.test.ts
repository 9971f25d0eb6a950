import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsCluster, waitFor, type NatsServer } from '@kiln/natsd';
import { MailboxClient, Runtime, partitionOf, type Outgoing, type RuntimeOptions } from '../src/index.js';
import { counter, type CounterState } from './fixtures/counter.js';
import { sendUntilStored } from './helpers.js';

// A nats-server of a 3-node R3 cluster dies (SIGKILL) while the engine works: the engine stays
// connected to a surviving node, so nothing tells its consumers that their pulls went with the
// dead node.

const PARTITIONS = 8;

/** The cluster node (server name) leading a stream, or one of its consumers. */
async function leaderOf(nc: NatsConnection, stream: string, consumer?: string): Promise<string | undefined> {
  const jsm = await jetstreamManager(nc, { timeout: 3000 });
  const info = consumer ? await jsm.consumers.info(stream, consumer) : await jsm.streams.info(stream);
  return info.cluster?.leader;
}

test('SIGKILL of the node leading the mailbox stream and partition consumers while messages flow: every message applied once, in order', async () => {
  const cluster = await NatsCluster.start(3);
  const clientNode = cluster.nodes[0]!;
  // The engine and the test talk to n1 only; the node killed is another one.
  const nc = await connect({ servers: clientNode.url, noAsyncTraces: true });
  let rt: Runtime | undefined;
  const mail = new MailboxClient(nc, { prefix: 'f', partitions: PARTITIONS, timeoutMs: 3000 });
  try {
    rt = await Runtime.start({
      servers: clientNode.url,
      nodeId: 'a',
      behaviors: [counter],
      partitions: PARTITIONS,
      leaseMs: 10_000,
      replicas: 3,
      prefix: 'f',
      eventsSubject: 'f.events',
    });
    const node = rt;
    await waitFor('all partitions owned', () => node.metrics().partitionsOwned === PARTITIONS, 30_000, 100);

    // The victim: the other node leading the most partition consumers; the stream leader is moved
    // there too when a few step-downs manage it.
    const leads = new Map<string, number>();
    for (let p = 0; p < PARTITIONS; p++) {
      // Owned before its consumer is set up: wait for it.
      const l = await waitFor(`consumer f_p${p}`, () => leaderOf(nc, 'f_mbox', `f_p${p}`), 30_000, 100);
      if (l && l !== clientNode.name) leads.set(l, (leads.get(l) ?? 0) + 1);
    }
    const victimName = [...leads.entries()].sort((x, y) => y[1] - x[1])[0]?.[0] ?? cluster.nodes[1]!.name;
    const victim = cluster.nodes.find((n) => n.name === victimName) as NatsServer;
    for (let i = 0; i < 6 && (await leaderOf(nc, 'f_mbox')) !== victimName; i++) {
      await nc.request('$JS.API.STREAM.LEADER.STEPDOWN.f_mbox', '', { timeout: 3000 }).catch(() => undefined);
      await waitFor('stream leader elected', () => leaderOf(nc, 'f_mbox').catch(() => undefined), 15_000, 100);
    }
    const streamLeaderKilled = (await leaderOf(nc, 'f_mbox')) === victimName;

    const actors = 64;
    const rounds = 30;
    const round = (r: number): Outgoing[] =>
      Array.from({ length: actors }, (_, i) => ({ to: `counter/f${i}`, msg: { op: 'inc', tag: 't', seq: r }, msgId: `r${r}-${i}` }));
    const applied = () => Promise.all(Array.from({ length: actors }, (_, i) => node.read(`counter/f${i}`) as Promise<CounterState | null>));
    // Deliveries resume within a few seconds of a failover (not after 30 s of missed heartbeats).
    const allApplied = async (n: number, what: string) => {
      try {
        await waitFor(what, async () => (await applied()).every((s) => s?.n === n), 20_000, 200);
      } catch (e) {
        const behind = new Set<number>();
        (await applied().catch(() => [])).forEach((s, i) => {
          if (s?.n !== n) behind.add(partitionOf(`counter/f${i}`, PARTITIONS));
        });
        throw new Error(`${(e as Error).message}; partitions behind: ${[...behind].join(',')}; victim ${victimName} (stream leader: ${streamLeaderKilled})`);
      }
    };
    for (let r = 1; r <= 10; r++) await sendUntilStored(mail, round(r));
    await allApplied(10, 'first rounds applied');
    // Killed while idle: the consumers' outstanding pulls die with their leader.
    victim.signal('SIGKILL');
    for (let r = 11; r <= 20; r++) await sendUntilStored(mail, round(r));
    await allApplied(20, 'rounds sent after the kill applied');
    // Killed again while messages flow, then back.
    await victim.restart();
    await cluster.waitJetStream(30_000);
    for (let r = 21; r <= rounds; r++) {
      if (r === 24) victim.signal('SIGKILL');
      if (r === 27) await victim.restart();
      await sendUntilStored(mail, round(r));
    }
    await allApplied(rounds, 'every message applied');
    for (const [i, s] of (await applied()).entries()) {
      assert.is(s!.n, rounds, `counter/f${i} applied count`);
      assert.is(s!.last.t, rounds, `counter/f${i} last seq`);
      assert.is(s!.disorder, 0, `counter/f${i} order`);
    }
  } finally {
    mail.close();
    await rt?.stop();
    await nc.close();
    await cluster.stop();
  }
});

test('a task result published while the mailbox stream has no quorum is delivered once the cluster is back', async () => {
  const cluster = await NatsCluster.start(3);
  const [n1, n2, n3] = cluster.nodes as [NatsServer, NatsServer, NatsServer];
  let rt: Runtime | undefined;
  let runs = 0;
  let finish!: () => void;
  const gate = new Promise<void>((r) => (finish = r));
  const probeNc = await connect({ servers: n1.url, noAsyncTraces: true });
  try {
    rt = await Runtime.start({
      servers: n1.url,
      nodeId: 'a',
      behaviors: [counter],
      tasks: {
        echo: async (input) => {
          runs++;
          await gate;
          return input;
        },
      },
      partitions: 4,
      // Long enough to outlive the outage: the result must come from this run, not a takeover's rerun.
      leaseMs: 60_000,
      replicas: 3,
      prefix: 't',
      eventsSubject: 't.events',
    });
    const node = rt;
    await waitFor('all partitions owned', () => node.metrics().partitionsOwned === 4, 30_000, 100);
    await node.send('counter/job', { op: 'task', name: 'j', input: 'v1' }, { msgId: 'job-1' });
    await waitFor('task started', () => runs === 1, 30_000, 50);
    // Two of three nodes gone: no stream (or KV) can store anything, while the engine stays connected to n1.
    n2.signal('SIGKILL');
    n3.signal('SIGKILL');
    // The task ends only once n1 alone cannot store anything (a probe send gets no ack).
    const probe = new MailboxClient(probeNc, { prefix: 't', partitions: 4, timeoutMs: 1000 });
    await waitFor('cluster without quorum', async () => {
      try {
        await probe.send('counter/probe', { op: 'inc' }, { msgId: 'probe' });
        return false;
      } catch {
        return true;
      }
    }, 30_000, 100);
    probe.close();
    finish();
    await waitFor('result publish failed at least once', () => node.metrics().publishRetries > 0, 60_000, 100);
    await Promise.all([n2.restart(), n3.restart()]);
    await cluster.waitJetStream(60_000);
    const state = await waitFor('result delivered', async () => {
      const st = (await node.read('counter/job')) as CounterState | null;
      return st && st.results.length > 0 ? st : undefined;
    }, 60_000, 200);
    assert.equal(state.results, ['v1']);
    // From the first run: not lost and rerun by a takeover (the lease outlived the outage).
    assert.is(runs, 1);
    assert.is(node.metrics().tasksRunning, 0);
  } finally {
    finish();
    await rt?.stop();
    await probeNc.close();
    await cluster.stop();
  }
});

test('an engine started while a peer of its R3 cluster is down waits for it to place the storage; one that gives up leaves nothing running', async () => {
  const cluster = await NatsCluster.start(3);
  const [n1, , n3] = cluster.nodes as [NatsServer, NatsServer, NatsServer];
  let rt: Runtime | undefined;
  try {
    // Shut down cleanly, so that the meta leader knows at once that the peer is offline.
    await n3.halt();
    const opts: RuntimeOptions = { servers: n1.url, nodeId: 'a', behaviors: [counter], partitions: 2, replicas: 3, prefix: 'w', eventsSubject: 'w.events' };
    // Given up after 1 s: the error is the cluster's, and its connections are closed (the suite would not exit otherwise).
    const early = await Runtime.start({ ...opts, setupTimeoutMs: 1000 }).catch((e: Error) => e);
    if (early instanceof Runtime) await early.stop();
    assert.instance(early, Error, 'started without a third peer');
    assert.match((early as Error).message, /no suitable peers|temporarily unavailable|timeout/i);
    // Still placing when the peer is back (its restart takes far longer than a first attempt).
    const starting = Runtime.start(opts);
    starting.catch(() => undefined);
    await n3.restart();
    rt = await starting;
    const node = rt;
    await waitFor('all partitions owned', () => node.metrics().partitionsOwned === 2, 30_000, 100);
    await node.send('counter/w', { op: 'inc', tag: 't', seq: 1 }, { msgId: 'w1' });
    await waitFor('message applied', async () => ((await node.read('counter/w')) as CounterState | null)?.n === 1, 30_000, 100);
  } finally {
    await rt?.stop();
    await cluster.stop();
  }
});

test.run();
