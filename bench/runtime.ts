/**
 * Actor runtime benchmark. In one run against one nats-server (file storage):
 *  1. baseline: raw JetStream KV puts/s, same client library and payload size, 500 in flight;
 *  2. actor messages/s end to end (publish -> reduce -> CAS state write -> ack) with 1 and 2
 *     engine processes, and the ratio to the baseline; published with MailboxClient.sendMany
 *     (packed per partition), after a warm-up like the baseline's;
 *  3. takeover time after SIGKILL of one of two engines (median of 5; 1 with --quick);
 *  4. RSS of an engine after 1,000,000 actors were touched once (full run only).
 * Last line: `runtime ratio=R actor_msgs_per_s=M kv_puts_per_s=K takeover_s=T`.
 * Usage: node bench/dist/runtime.js [--quick] [--json <file>]
 * KILN_ENGINE_NODE_ARGS (space-separated) is passed to the engine processes, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { encode } from '@kiln/core';
import { NatsServer } from '@kiln/natsd';
import { MailboxClient, actorKey, partitionOf, type Outgoing } from '@kiln/runtime';

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const PARTITIONS = 32; // the runtime default
const IN_FLIGHT = 500;
/**
 * Messages per `sendMany` call in the actor runs, as a step fanning out to many actors does:
 * they spread over the partitions, and those of one partition travel packed in one stream
 * message (up to the runtime's pack size). One call at a time: ~1,000 messages in flight.
 */
const SEND_CHUNK = 1024;
const workerScript = fileURLToPath(new URL('../../packages/runtime/dist/test/fixtures/worker.js', import.meta.url));

function say(line: string): void {
  process.stdout.write(line + '\n');
}

/** Runs `fn(i)` for i < n with at most `inFlight` pending. */
async function pipelined(n: number, inFlight: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  const pending = new Set<Promise<unknown>>();
  for (let i = 0; i < n; i++) {
    const p: Promise<unknown> = fn(i).finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= inFlight) await Promise.race(pending);
  }
  await Promise.all(pending);
}

interface Engine {
  nodeId: string;
  child: ChildProcess;
  exited: Promise<unknown>;
}

async function startEngine(servers: string, prefix: string, nodeId: string, extra: Record<string, unknown> = {}): Promise<Engine> {
  const nodeArgs = (process.env.KILN_ENGINE_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(process.execPath, [...nodeArgs, workerScript, JSON.stringify({ servers, prefix, nodeId, partitions: PARTITIONS, ...extra })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KILN_LOG_LEVEL: 'warn' },
  });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    void exited.then(() => reject(new Error(`engine ${nodeId} exited before ready`)));
  });
  return { nodeId, child, exited };
}

interface Metrics {
  processed: number;
  stateWrites: number;
  partitionsOwned: number;
  actorsCached: number;
}

async function metricsOf(nc: NatsConnection, prefix: string, nodeId: string): Promise<Metrics | undefined> {
  try {
    const r = await nc.request(`${prefix}.node.${nodeId}.metrics`, '', { timeout: 2000 });
    return r.json<Metrics>();
  } catch {
    return undefined;
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function owners(nc: NatsConnection, prefix: string, engines: Engine[]): Promise<number[]> {
  return Promise.all(engines.map(async (e) => (await metricsOf(nc, prefix, e.nodeId))?.partitionsOwned ?? -1));
}

async function stopEngines(engines: Engine[]): Promise<void> {
  for (const e of engines) e.child.kill('SIGTERM');
  await Promise.race([Promise.all(engines.map((e) => e.exited)), new Promise((r) => setTimeout(r, 10_000))]);
  for (const e of engines) e.child.kill('SIGKILL');
}

/** A counter record like the runtime stores, to give the baseline the same payload size. */
function samplePayload(): Uint8Array {
  return encode({ s: { n: 3, last: { b: 3 }, disorder: 0, fired: [], results: [] }, q: 123456 });
}

async function kvBaseline(nc: NatsConnection, n: number): Promise<number> {
  const kv = await new Kvm(jetstream(nc)).create('bench_kv', { history: 1 });
  const payload = samplePayload();
  await pipelined(2000, IN_FLIGHT, (i) => kv.put(`counter.w${i}`, payload)); // warm-up
  const pids: Pids = { server: serverPid, engines: [] };
  const cpu0 = cpuNow(pids);
  const t0 = performance.now();
  await pipelined(n, IN_FLIGHT, (i) => kv.put(`counter.a${i % 10_000}`, payload));
  const rate = (n / (performance.now() - t0)) * 1000;
  say(`  ${cpuSplit(pids, cpu0, n)}`);
  return rate;
}

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100/s)
}

interface Pids {
  server: number;
  engines: number[];
}

/** CPU ms used so far by the server, each engine and this (publishing) process, in that order. */
function cpuNow(pids: Pids): number[] {
  const self = process.cpuUsage();
  return [cpuMs(pids.server), ...pids.engines.map(cpuMs), (self.user + self.system) / 1000];
}

/** CPU µs per message each process spent since `before` (throughput moves with the machine's other load; this does not). */
function cpuSplit(pids: Pids, before: number[], n: number): string {
  const us = cpuNow(pids).map((v, i) => (((v - before[i]!) * 1000) / n).toFixed(0));
  const engines = pids.engines.length > 0 ? `, engines ${us.slice(1, -1).join('+')} µs` : '';
  return `cpu per message: server ${us[0]} µs${engines}, publisher ${us[us.length - 1]} µs`;
}

/** Publishes `n` messages to `actors` counters and waits until the engines processed them all. */
async function actorRun(nc: NatsConnection, servers: string, prefix: string, engineCount: number, n: number, actors: number): Promise<number> {
  const engines: Engine[] = [];
  for (let i = 0; i < engineCount; i++) engines.push(await startEngine(servers, prefix, `e${i + 1}`, { cacheSize: 20_000 }));
  try {
    const share = Math.ceil(PARTITIONS / engineCount);
    await until(
      'partitions assigned',
      async () => {
        const o = await owners(nc, prefix, engines);
        return o.reduce((a, b) => a + b, 0) === PARTITIONS && o.every((x) => x >= PARTITIONS - share * (engineCount - 1));
      },
      60_000,
      100,
    );
    const mail = new MailboxClient(nc, { prefix, partitions: PARTITIONS });
    const total = async (field: 'processed' | 'stateWrites') =>
      (await Promise.all(engines.map((e) => metricsOf(nc, prefix, e.nodeId)))).reduce((s, m) => s + (m?.[field] ?? 0), 0);
    const processed = () => total('processed');
    /** `count` increments to `actors` counters named `<tag><a>`, SEND_CHUNK per sendMany call. */
    const publish = (tag: string, count: number) =>
      pipelined(Math.ceil(count / SEND_CHUNK), 1, (c) => {
        const items: Outgoing[] = [];
        for (let i = c * SEND_CHUNK; i < Math.min(count, (c + 1) * SEND_CHUNK); i++) {
          items.push({ to: `counter/${tag}${i % actors}`, msg: { op: 'inc', tag, seq: Math.floor(i / actors) + 1 }, msgId: `${tag}${i}` });
        }
        return mail.sendMany(items);
      });
    // Warm-up, as for the baseline: the engines' JIT and caches settle before the measured run
    // (otherwise a --quick run measures start-up costs as much as messages).
    const warm = Math.min(n / 5, 4000);
    await publish('w', warm);
    await until('warm-up processed', async () => (await processed()) >= warm, 600_000, 20);
    const jsm = await jetstreamManager(nc);
    const seq0 = (await jsm.streams.info(`${prefix}_mbox`)).state.last_seq;
    const writes0 = await total('stateWrites');
    const pids: Pids = { server: serverPid, engines: engines.map((e) => e.child.pid!) };
    const cpu0 = cpuNow(pids);
    const t0 = performance.now();
    await publish('b', n);
    await until('all processed', async () => (await processed()) >= warm + n, 600_000, 20);
    const rate = (n / (performance.now() - t0)) * 1000;
    const cpu = cpuSplit(pids, cpu0, n);
    mail.close();
    const streamMsgs = (await jsm.streams.info(`${prefix}_mbox`)).state.last_seq - seq0;
    const writes = (await total('stateWrites')) - writes0;
    say(`  ${streamMsgs} mailbox stream messages (${(n / streamMsgs).toFixed(1)} actor messages per pack), ${writes} state writes (${(n / writes).toFixed(2)} messages per write) for ${n} actor messages`);
    say(`  ${cpu}`);
    return rate;
  } finally {
    await stopEngines(engines);
  }
}

/** Seconds from SIGKILL of one of two engines until the survivor owns every partition. */
async function takeover(nc: NatsConnection, servers: string, prefix: string, samples: number, leaseMs: number): Promise<number[]> {
  const out: number[] = [];
  const a = await startEngine(servers, prefix, 'ta', { leaseMs });
  let b = await startEngine(servers, prefix, 'tb0', { leaseMs });
  try {
    for (let s = 0; s < samples; s++) {
      await until(
        'even split',
        async () => {
          const [x, y] = await owners(nc, prefix, [a, b]);
          return x === PARTITIONS / 2 && y === PARTITIONS / 2;
        },
        60_000,
        100,
      );
      const t0 = performance.now();
      b.child.kill('SIGKILL');
      await b.exited;
      await until('takeover', async () => (await metricsOf(nc, prefix, a.nodeId))?.partitionsOwned === PARTITIONS, 60_000, 20);
      out.push((performance.now() - t0) / 1000);
      if (s + 1 < samples) b = await startEngine(servers, prefix, `tb${s + 1}`, { leaseMs });
    }
  } finally {
    await stopEngines([a, b]);
  }
  return out;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** RSS of one engine (cache 10,000) after `actors` distinct actors each got one message. */
async function rssRun(nc: NatsConnection, servers: string, prefix: string, actors: number): Promise<{ before: number; after: number }> {
  const e = await startEngine(servers, prefix, 'r1', { cacheSize: 10_000 });
  try {
    await until('partitions', async () => (await metricsOf(nc, prefix, e.nodeId))?.partitionsOwned === PARTITIONS, 60_000, 100);
    const before = rssMb(e.child.pid!);
    const js = jetstream(nc);
    await pipelined(actors, IN_FLIGHT, (i) => {
      const addr = `counter/r${i}`;
      const id = `r${i}`;
      return js.publish(`${prefix}.mbox.${partitionOf(addr, PARTITIONS)}.${actorKey(addr)}`, encode({ i: id, m: { op: 'inc' } }), { msgID: id });
    });
    await until('all processed', async () => ((await metricsOf(nc, prefix, e.nodeId))?.processed ?? 0) >= actors, 1_800_000, 500);
    return { before, after: rssMb(e.child.pid!) };
  } finally {
    await stopEngines([e]);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server = await NatsServer.start();
const serverPid = server.pid!;
// noAsyncTraces as in the runtime: the baseline uses the same client settings.
const nc = await connect({ servers: server.url, noAsyncTraces: true });
const results: Record<string, unknown> = { quick, partitions: PARTITIONS };
try {
  const n = quick ? 20_000 : 100_000;
  const actors = 10_000;
  const kv = await kvBaseline(nc, n);
  say(`kv baseline: ${kv.toFixed(0)} puts/s (${n} puts, ${IN_FLIGHT} in flight)`);
  const one = await actorRun(nc, server.url, 'b1', 1, n, actors);
  say(`actors, 1 engine: ${one.toFixed(0)} msgs/s end to end (${n} messages to ${actors} actors), ratio ${(one / kv).toFixed(2)}`);
  const two = await actorRun(nc, server.url, 'b2', 2, n, actors);
  say(`actors, 2 engines: ${two.toFixed(0)} msgs/s end to end, ratio ${(two / kv).toFixed(2)}`);
  const leaseMs = 2000;
  const takes = await takeover(nc, server.url, 'bt', quick ? 1 : 5, leaseMs);
  const take = median(takes);
  say(`takeover after SIGKILL: median ${take.toFixed(2)} s of [${takes.map((t) => t.toFixed(2)).join(', ')}] (lease ${leaseMs / 1000} s, bound ${(2 * leaseMs) / 1000} s)`);
  Object.assign(results, { kvPutsPerSec: kv, actorMsgsPerSec1: one, actorMsgsPerSec2: two, takeoverSamples: takes, takeoverS: take, leaseMs });
  if (!quick) {
    const rss = await rssRun(nc, server.url, 'br', 1_000_000);
    say(`RSS with 1,000,000 actors touched once (cache 10,000): ${rss.after.toFixed(0)} MB (${rss.before.toFixed(0)} MB at start)`);
    Object.assign(results, { rssMbAfterMillion: rss.after, rssMbAtStart: rss.before });
  }
  const best = Math.max(one, two);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
  say(`runtime ratio=${(best / kv).toFixed(2)} actor_msgs_per_s=${best.toFixed(0)} kv_puts_per_s=${kv.toFixed(0)} takeover_s=${take.toFixed(2)}`);
} finally {
  await nc.close();
  await server.stop();
}
