/**
 * Web-socket fan-out: events delivered by the gateway (`Gateway`, packages/api, in its own
 * process) to web-socket clients subscribed to the tenant's events while a stack of N
 * OS::Heat::None resources converges (2 engine processes, one nats-server). In one run:
 *  1. baseline: raw KV puts/s;
 *  2. one client, a stack of N: events/s delivered and the lag (receipt time minus the event's
 *     time) — the same-run baseline of the per-client figures;
 *  3. C clients (100), another stack of N: events/s delivered in total and per client, lag p50/p99.
 * A client counts an event of its stack once; the run checks every client got every event of the
 * stack (the engine's events read back from the stream). Series: resources created over time as
 * the (first) client sees them, per phase.
 * `--quick`: N=1,000; full: N=10,000 (`--resources N`, `--clients C` override).
 * Last line: `fanout clients=C events_per_s=T per_client_per_s=P lag_p50_ms=.. lag_p99_ms=.. complete=1`
 * preceded by `BENCH_JSON {...}` (also written to `--json <file>`).
 * Usage: node bench/dist/fanout.js [--quick] [--resources N] [--clients C] [--json <file>]
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { waitSettled, type Point } from './lib/converge.js';
import { kvBaseline } from './lib/kv.js';
import { loadAverage, peakRssMiB, say, startEngine, startGateway, stopRole, type RoleProcess } from './lib/procs.js';
import { percentile } from './lib/stats.js';

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const quick = process.argv.includes('--quick');
const jsonOut = arg('--json');
const N = Number(arg('--resources') ?? (quick ? 1000 : 10_000));
const CLIENTS = Number(arg('--clients') ?? 100);
const PARTITIONS = 64;
const TENANT = 'bench';
const TOKEN = 'bench-token';

type WsEvent = { seq: number; time: string; stack: string; stack_name?: string; resource?: string; status: string };

/** A web-socket client subscribed live to the tenant's events; keeps those of one stack name. */
class Client {
  received = 0;
  readonly lags: number[] = [];
  readonly completed = new Set<string>();
  lastAt = 0;
  closed: string | undefined;
  private constructor(
    private readonly ws: WebSocket,
    private readonly stackName: () => string,
  ) {}

  static async open(gatewayUrl: string, stackName: () => string): Promise<Client> {
    const ws = new WebSocket(`${gatewayUrl.replace(/^http/, 'ws')}/events?token=${TOKEN}`);
    const c = new Client(ws, stackName);
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (d: Buffer) => {
        const m = JSON.parse(d.toString()) as { type: string; event?: WsEvent };
        if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', filter: {} }));
        else if (m.type === 'subscribed') resolve();
        else if (m.type === 'event' && m.event && m.event.stack_name === c.stackName()) c.onEvent(m.event);
      });
      ws.on('close', (code, reason) => (c.closed = `${code} ${reason.toString()}`));
    });
    return c;
  }

  private onEvent(e: WsEvent): void {
    const now = Date.now();
    this.received++;
    this.lastAt = performance.now();
    this.lags.push(now - Date.parse(e.time));
    if (e.resource && e.status === 'CREATE_COMPLETE') this.completed.add(e.resource);
  }

  close(): void {
    this.ws.terminate();
  }
}

interface Phase {
  clients: number;
  events: number;
  delivered: number;
  seconds: number;
  eventsPerS: number;
  perClientPerS: number;
  lagP50Ms: number;
  lagP99Ms: number;
  complete: boolean;
  dropped: number;
  readyS: number;
  points: Point[];
}

/** Events of the stack in the stream (what every client must get). */
async function streamEvents(client: Engine, id: string): Promise<number> {
  let n = 0;
  let seq = 1;
  for (;;) {
    const batch = await client.events(id, seq, 10_000);
    n += batch.length;
    if (batch.length < 10_000) return n;
    seq = batch.at(-1)!.seq + 1;
  }
}

async function phase(client: Engine, gatewayUrl: string, clients: number, name: string): Promise<Phase> {
  const socks: Client[] = [];
  for (let i = 0; i < clients; i++) socks.push(await Client.open(gatewayUrl, () => name));
  let sampler: NodeJS.Timeout | undefined;
  try {
    const points: Point[] = [];
    const t0 = performance.now();
    sampler = setInterval(() => points.push({ t: Math.round(performance.now() - t0) / 1000, converged: socks[0]!.completed.size }), 250);
    const ref = await client.createStack({ tenant: TENANT, name, template: { heat_template_version: '2016-10-14', resources: Object.fromEntries(Array.from({ length: N }, (_, i) => [`r${i}`, { type: 'OS::Heat::None', properties: { v: 1 } }])) } });
    const s = await waitSettled(client, ref.id, 1, Math.max(300_000, N * 60));
    const readyS = (performance.now() - t0) / 1000;
    if (s.status !== 'READY') throw new Error(`${name}: ${s.status}: ${s.reason}`);
    const events = await streamEvents(client, ref.id);
    // Wait for delivery to finish: every client has every event, or nothing moved for 10 s.
    let last = -1;
    let stillSince = performance.now();
    for (;;) {
      const got = socks.reduce((a, c) => a + c.received, 0);
      if (socks.every((c) => c.received >= events || c.closed)) break;
      if (got !== last) [last, stillSince] = [got, performance.now()];
      else if (performance.now() - stillSince > 10_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    clearInterval(sampler);
    const lastAt = Math.max(...socks.map((c) => c.lastAt));
    points.push({ t: Math.round(lastAt - t0) / 1000, converged: socks[0]!.completed.size });
    const delivered = socks.reduce((a, c) => a + c.received, 0);
    const seconds = (lastAt - t0) / 1000;
    const lags = socks.flatMap((c) => c.lags);
    return {
      clients,
      events,
      delivered,
      seconds,
      eventsPerS: delivered / seconds,
      perClientPerS: delivered / clients / seconds,
      lagP50Ms: percentile(lags, 50),
      lagP99Ms: percentile(lags, 99),
      complete: socks.every((c) => c.received === events),
      dropped: socks.filter((c) => c.closed).length,
      readyS,
      points,
    };
  } finally {
    clearInterval(sampler);
    for (const c of socks) c.close();
  }
}

/** The scenario: its result record (the processes it started are stopped whatever happens). */
async function measure(): Promise<Record<string, unknown>> {
  const nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  const procs: RoleProcess[] = [];
  let client: Engine | undefined;
  try {
    const kvRate = await kvBaseline(nats.url, 10_000);
    say(`kv baseline: ${kvRate.toFixed(0)} puts/s`);
    for (let i = 0; i < 2; i++) procs.push(await startEngine({ nats: nats.url, nodeId: `fanout-${i}`, partitions: PARTITIONS }));
    const gateway = await startGateway(nats.url, TOKEN, TENANT);
    procs.push(gateway);
    client = await Engine.start({ servers: nats.url, partitions: PARTITIONS, worker: false });
    const load = [loadAverage()];
    // A stack that does not get READY is reported (ready: 0, with the reason), not a crash.
    const notReady = (e: unknown) => ({ kvPutsPerSec: kvRate, ready: 0, complete: 0, detail: { resources: N, clients: CLIENTS, error: (e as Error).message, load_average: [...load, loadAverage()] } });
    const one = await phase(client, gateway.line, 1, 'fanout-1').catch((e: unknown) => e as Error);
    if (one instanceof Error) {
      return notReady(one);
    }
    say(`1 client: ${one.delivered}/${one.events} events in ${one.seconds.toFixed(1)} s (${one.eventsPerS.toFixed(0)}/s), lag p50 ${one.lagP50Ms} ms, p99 ${one.lagP99Ms} ms`);
    const many = await phase(client, gateway.line, CLIENTS, 'fanout-many').catch((e: unknown) => e as Error);
    if (many instanceof Error) {
      return notReady(many);
    }
    load.push(loadAverage());
    say(
      `${CLIENTS} clients: ${many.delivered}/${many.events * CLIENTS} events in ${many.seconds.toFixed(1)} s (${many.eventsPerS.toFixed(0)}/s, ${many.perClientPerS.toFixed(0)}/s per client), ` +
        `lag p50 ${many.lagP50Ms} ms, p99 ${many.lagP99Ms} ms, ${many.dropped} dropped`,
    );
    const { points: onePoints, ...oneFigures } = one;
    const { points, ...manyFigures } = many;
    return {
      kvPutsPerSec: kvRate,
      events_per_s: many.eventsPerS,
      per_client_per_s: many.perClientPerS,
      per_client_per_s_1: one.perClientPerS,
      lag_p50_ms: many.lagP50Ms,
      lag_p99_ms: many.lagP99Ms,
      lag_p50_ms_1: one.lagP50Ms,
      lag_p99_ms_1: one.lagP99Ms,
      ready: 1,
      complete: one.complete && many.complete ? 1 : 0,
      detail: {
        resources: N,
        clients: CLIENTS,
        one: oneFigures,
        many: manyFigures,
        load_average: load,
        gateway_peak_rss_mib: peakRssMiB(gateway.child.pid),
        engine_peak_rss_mib: Math.max(...procs.slice(0, 2).map((p) => peakRssMiB(p.child.pid))),
      },
      series: [
        { name: '1 client', points: onePoints, faults: [] },
        { name: `${CLIENTS} clients`, points, faults: [] },
      ],
    };
  } finally {
    await client?.stop();
    for (const p of procs.reverse()) await stopRole(p);
    await nats.stop();
  }
}

async function main(): Promise<void> {
  const result = await measure();
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(result, null, 2));
  say(`BENCH_JSON ${JSON.stringify(result)}`);
  const f = (k: string, p = 1) => (typeof result[k] === 'number' ? (result[k] as number).toFixed(p) : 'none');
  say(
    `fanout clients=${CLIENTS} resources=${N} events_per_s=${f('events_per_s', 0)} per_client_per_s=${f('per_client_per_s', 0)} ` +
      `lag_p50_ms=${f('lag_p50_ms')} lag_p99_ms=${f('lag_p99_ms')} complete=${String(result.complete)} load=${loadAverage()}`,
  );
  if (!result.ready || !result.complete) process.exitCode = 1;
}

await main();
