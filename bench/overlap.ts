/**
 * Overlapping updates and API latency under load. Against one nats-server, 2 engine processes
 * and the request API (`ApiService` over `EngineBackend`, served from this process as an API-only
 * node would):
 *  1. baseline: raw KV puts/s; create a stack of N resources (OS::Heat::None and OS::Heat::Value
 *     alternately) and measure the API's idle latency (stack.show, resource.list of 100,
 *     stack.list through NATS requests, one at a time);
 *  2. U updates spread evenly over W seconds (each sent at its time, up to 4 at once, without
 *     waiting for the previous ones to return or converge): generation g changes the properties of a quarter of the resources and removes 2% (those
 *     removed by g-1 come back), so every update overlaps the last;
 *  3. meanwhile the same API reads run in a loop (one at a time, at most 4/s): latency p50/p99
 *     under that load;
 *  4. the time from the last update to READY, against a direct create of the last generation
 *     (a second stack, the same-run baseline), and whether both stacks hold the same resources:
 *     same names, types, stored properties and attributes, every one COMPLETE, no old
 *     incarnation left (compared on the actors' stored states).
 * `--quick`: N=1,000, U=20 in W=15 s; full: N=10,000, U=100 in W=60 s.
 * Last line: `overlap last_update_to_ready_s=T direct_create_s=D equal=true api_p50_ms=.. api_p99_ms=..`
 * preceded by `BENCH_JSON {...}` (also written to `--json <file>`).
 * Usage: node bench/dist/overlap.js [--quick] [--resources N] [--updates U] [--window-s W] [--json <file>]
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { createLogger, decode } from '@kiln/core';
import { NatsServer } from '@kiln/natsd';
import { Engine, resourceAddress, type ResourceState } from '@kiln/engine';
import { actorKey } from '@kiln/runtime';
import { ApiService, EngineBackend, apiSubject } from '@kiln/api';
import { sampleSeries, waitSettled } from './lib/converge.js';
import { kvBaseline } from './lib/kv.js';
import { loadAverage, peakRssMiB, say, startEngine, stopRole, type RoleProcess } from './lib/procs.js';
import { percentile } from './lib/stats.js';

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const quick = process.argv.includes('--quick');
const jsonOut = arg('--json');
const N = Number(arg('--resources') ?? (quick ? 1000 : 10_000));
const UPDATES = Number(arg('--updates') ?? (quick ? 20 : 100));
const WINDOW_S = Number(arg('--window-s') ?? (quick ? 15 : 60));
const PARTITIONS = 64;
const ENGINES = 2;
/** Updates in flight at once at most (each is a compare-and-set on the stack's registry entry). */
const IN_FLIGHT = 4;
/** One API read starts at most this often. */
const API_PERIOD_MS = 250;
const TENANT = 'bench';

/** Generation g of the stack: a quarter of the properties change per generation, 2% of the resources are absent. */
function template(g: number): Record<string, unknown> {
  const resources: Record<string, unknown> = {};
  for (let i = 0; i < N; i++) {
    if (i % 50 === g % 50) continue;
    const v = Math.floor((g + (i % 4)) / 4);
    resources[`r${i}`] = i % 2 === 0 ? { type: 'OS::Heat::None', properties: { v, i } } : { type: 'OS::Heat::Value', properties: { value: `v${v}-${i}`, type: 'string' } };
  }
  return { heat_template_version: '2016-10-14', resources };
}

type ApiOp = 'stack.show' | 'resource.list' | 'stack.list';

/** One API request through NATS, as any client would send it; its latency in ms. */
async function apiCall(nc: NatsConnection, op: ApiOp, stack: string): Promise<number> {
  const body = op === 'stack.list' ? {} : op === 'resource.list' ? { stack, limit: 100 } : { stack };
  const t0 = performance.now();
  const r = await nc.request(apiSubject(TENANT, op), JSON.stringify(body), { timeout: 30_000 });
  const ms = performance.now() - t0;
  const reply = r.json<{ ok: boolean; error?: unknown }>();
  if (!reply.ok) throw new Error(`${op}: ${JSON.stringify(reply.error)}`);
  return ms;
}

/** Runs the three reads in turn (one request per API_PERIOD_MS at most), `rounds` times or until stopped; latencies per operation. */
type Latencies = Record<ApiOp, number[]> & { errors?: string[] };

function apiLoad(nc: NatsConnection, stack: string, rounds = Infinity): { done(): Promise<Latencies>; stop(): Promise<Latencies> } {
  const lat: Record<ApiOp, number[]> = { 'stack.show': [], 'resource.list': [], 'stack.list': [] };
  let running = true;
  const errors: string[] = [];
  const loop = (async () => {
    for (let i = 0; running && i < rounds; i++) {
      for (const op of Object.keys(lat) as ApiOp[]) {
        const t0 = performance.now();
        try {
          lat[op].push(await apiCall(nc, op, stack));
        } catch (e) {
          // An error reply or a timeout is a finding (counted, the first ones kept), not the end.
          errors.push(`${op}: ${(e as Error).message}`);
          if (nc.isClosed()) return;
        }
        // A dashboard's pace, so that the reads measure the updates' load rather than make their own.
        const ms = performance.now() - t0;
        if (ms < API_PERIOD_MS) await new Promise((r) => setTimeout(r, API_PERIOD_MS - ms));
      }
    }
  })();
  return {
    async done() {
      await loop;
      return { ...lat, errors };
    },
    async stop() {
      running = false;
      await loop;
      return { ...lat, errors };
    },
  };
}

function latencySummary({ errors, ...lat }: Latencies): Record<string, unknown> & { p50_ms: number; p99_ms: number } {
  const all = Object.values(lat).flat();
  const out: Record<string, unknown> = { requests: all.length, errors: errors?.length ?? 0, first_errors: errors?.slice(0, 5) ?? [], p50_ms: percentile(all, 50), p99_ms: percentile(all, 99) };
  for (const [op, v] of Object.entries(lat)) {
    out[`${op}_p50_ms`] = percentile(v, 50);
    out[`${op}_p99_ms`] = percentile(v, 99);
  }
  return out as Record<string, unknown> & { p50_ms: number; p99_ms: number };
}

/** The stored state of each listed resource of a stack. */
async function storedResources(client: Engine, state: KV, id: string): Promise<Map<string, ResourceState | null>> {
  const names = (await client.listResources(id)).map((r) => r.name);
  const out = new Map<string, ResourceState | null>();
  for (let i = 0; i < names.length; i += 500) {
    const chunk = names.slice(i, i + 500);
    const entries = await Promise.all(chunk.map((name) => state.get(actorKey(resourceAddress(id, name)))));
    chunk.forEach((name, j) => {
      const e = entries[j];
      out.set(name, e && e.operation === 'PUT' ? ((decode<{ s?: ResourceState }>(e.value).s as ResourceState | undefined) ?? null) : null);
    });
  }
  return out;
}

/** Differences between the updated stack and the direct create (at most `max` listed). */
function differences(updated: Map<string, ResourceState | null>, direct: Map<string, ResourceState | null>, max = 10): string[] {
  const out: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const view = (r: ResourceState | null) =>
    r && { type: r.current?.type, props: r.current?.props, attrs: r.current?.attrs, status: r.status, old: r.old.length, desired: r.def !== null };
  for (const name of new Set([...updated.keys(), ...direct.keys()])) {
    const a = view(updated.get(name) ?? null);
    const b = view(direct.get(name) ?? null);
    if (!a || !b) out.push(`${name}: ${a ? 'only in the updated stack' : 'only in the direct create'}`);
    else if (a.status !== 'COMPLETE' || a.old !== 0 || !a.desired) out.push(`${name}: updated stack has ${JSON.stringify(a)}`);
    else if (!same(a, b)) out.push(`${name}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
    if (out.length >= max) break;
  }
  return out;
}

async function main(): Promise<void> {
  // A 10K-resource template is ~0.5 MB; fan-out messages exceed the default 1 MiB payload.
  const nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  const engines: RoleProcess[] = [];
  let client: Engine | undefined;
  let apiNc: NatsConnection | undefined;
  let callerNc: NatsConnection | undefined;
  let api: ApiService | undefined;
  let result: Record<string, unknown>;
  try {
    const kvRate = await kvBaseline(nats.url, 10_000);
    say(`kv baseline: ${kvRate.toFixed(0)} puts/s`);
    for (let i = 0; i < ENGINES; i++) engines.push(await startEngine({ nats: nats.url, nodeId: `overlap-${i}`, partitions: PARTITIONS }));
    apiNc = await connect({ servers: nats.url, name: 'bench-api' });
    client = await Engine.start({ connection: apiNc, partitions: PARTITIONS, worker: false });
    api = await ApiService.start({ nc: apiNc, backend: await EngineBackend.open({ engine: client }), logger: createLogger('kiln-api', { level: 'warn' }) });
    callerNc = await connect({ servers: nats.url, name: 'bench-caller' });
    const timeout = Math.max(300_000, N * 60);

    const tc = performance.now();
    const ref = await client.createStack({ tenant: TENANT, name: 'overlap', template: template(1) });
    await waitSettled(client, ref.id, 1, timeout);
    const createS = (performance.now() - tc) / 1000;
    say(`created ${N} resources in ${createS.toFixed(1)} s`);
    const idle = latencySummary(await apiLoad(callerNc, ref.id, 20).done());
    say(`API idle: p50 ${idle.p50_ms.toFixed(1)} ms, p99 ${idle.p99_ms.toFixed(1)} ms`);

    // The updates, each at its slot of the window whatever the previous ones are doing: a
    // writer does not wait for another's update to return (up to IN_FLIGHT at once, as several
    // admins or autoscalers would). Concurrent writers take the next generation, so the last
    // desired state is the template of the highest generation returned.
    const load = apiLoad(callerNc, ref.id);
    // The API is served from this process, which also writes the updates: how long a ready
    // callback waits for its turn here is part of every request's latency.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const loadAvg = [loadAverage()];
    const t0 = performance.now();
    const sampler = sampleSeries(t0, async () => (await client!.getStack(ref.id)).resources.settled);
    const faults: Array<{ t: number; kind: string }> = [{ t: 0, kind: 'first update' }];
    let lastGen = 1;
    let lastTemplate = 1;
    const inFlight = new Set<Promise<unknown>>();
    const updateErrors: string[] = [];
    for (let k = 0; k < UPDATES; k++) {
      const due = t0 + (k * WINDOW_S * 1000) / Math.max(1, UPDATES - 1);
      if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
      while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      const p: Promise<unknown> = client.updateStack(ref.id, { template: template(k + 2) }).then(
        (g) => {
          if (g.generation > lastGen) [lastGen, lastTemplate] = [g.generation, k + 2];
        },
        // A refused update (e.g. CONFLICT after many concurrent retries) is counted, not fatal.
        (e: unknown) => void updateErrors.push((e as Error).message),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await Promise.all(inFlight);
    faults.push({ t: Math.round(performance.now() - t0) / 1000, kind: `update ${UPDATES} stored` });
    const tLast = performance.now();
    const updatesS = (tLast - t0) / 1000;
    say(`${UPDATES} updates stored in ${updatesS.toFixed(1)} s (generation ${lastGen}: template ${lastTemplate})`);
    // Not READY by the deadline (or FAILED) is a finding to report with the API figures, not a crash.
    const settled = await waitSettled(client, ref.id, lastGen, timeout)
      .catch((e: unknown) => ({ status: 'TIMEOUT', reason: (e as Error).message }))
      .finally(() => sampler.stop());
    const lastToReadyS = (performance.now() - tLast) / 1000;
    loadAvg.push(loadAverage());
    const points = await sampler.stop();
    const loaded = latencySummary(await load.stop());
    loopDelay.disable();
    const eventLoopDelay = { p50_ms: loopDelay.percentile(50) / 1e6, p99_ms: loopDelay.percentile(99) / 1e6, max_ms: loopDelay.max / 1e6 };
    say(
      `${settled.status} ${lastToReadyS.toFixed(1)} s after the last update; API under load: p50 ${loaded.p50_ms.toFixed(1)} ms, p99 ${loaded.p99_ms.toFixed(1)} ms ` +
        `(event loop delay of the API's process: p50 ${eventLoopDelay.p50_ms.toFixed(0)} ms, p99 ${eventLoopDelay.p99_ms.toFixed(0)} ms)`,
    );
    const apiFigures = { api_p50_ms: loaded.p50_ms, api_p99_ms: loaded.p99_ms, api_idle_p50_ms: idle.p50_ms, api_idle_p99_ms: idle.p99_ms, api_errors: loaded.errors };
    const common = {
      resources: N,
      updates: UPDATES,
      window_s: WINDOW_S,
      updates_stored_s: updatesS,
      updates_in_flight_max: IN_FLIGHT,
      update_errors: updateErrors,
      engines: ENGINES,
      create_s: createS,
      last_generation: lastGen,
      last_template: lastTemplate,
      api_under_load: loaded,
      api_process_event_loop_delay: eventLoopDelay,
      api_idle: idle,
      load_average: loadAvg,
    };
    const series = { name: 'settled at current generation', points, faults };
    if (settled.status !== 'READY') {
      result = { kvPutsPerSec: kvRate, ready: 0, equal: 0, updates_refused: updateErrors.length, ...apiFigures, detail: { ...common, status: settled.status, reason: settled.reason, seconds_waited: lastToReadyS }, series };
    } else {
      // The same generation created directly: the baseline and the reference result.
      const td = performance.now();
      const direct = await client.createStack({ tenant: TENANT, name: 'overlap-direct', template: template(lastTemplate) });
      const d = await waitSettled(client, direct.id, 1, timeout);
      const directS = (performance.now() - td) / 1000;
      if (d.status !== 'READY') throw new Error(`direct create ${d.status}: ${d.reason}`);
      const state = await new Kvm(jetstream(callerNc)).open('kiln_state');
      const updated = await storedResources(client, state, ref.id);
      const reference = await storedResources(client, state, direct.id);
      const diffs = differences(updated, reference);
      const expected = Object.keys((template(lastTemplate) as { resources: object }).resources).length;
      const equal = diffs.length === 0 && updated.size === expected;
      say(`direct create of template ${lastTemplate}: ${directS.toFixed(1)} s; ${updated.size} resources, equal: ${equal}${diffs.length ? `\n  ${diffs.join('\n  ')}` : ''}`);

      result = {
        kvPutsPerSec: kvRate,
        last_update_to_ready_s: lastToReadyS,
        direct_create_s: directS,
        ratio: lastToReadyS / directS,
        ready: 1,
        equal: equal ? 1 : 0,
        updates_refused: updateErrors.length,
        ...apiFigures,
        detail: {
          ...common,
          compared_resources: updated.size,
          expected_resources: expected,
          differences: diffs,
          engine_peak_rss_mib: Math.max(...engines.map((e) => peakRssMiB(e.child.pid))),
        },
        series,
      };
    }
  } finally {
    await api?.stop();
    await client?.stop();
    await apiNc?.close();
    await callerNc?.close();
    for (const e of engines) await stopRole(e);
    await nats.stop();
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(result, null, 2));
  say(`BENCH_JSON ${JSON.stringify(result)}`);
  const f = (k: string, p = 2) => (typeof result[k] === 'number' ? (result[k] as number).toFixed(p) : 'none');
  say(
    `overlap resources=${N} updates=${UPDATES} last_update_to_ready_s=${f('last_update_to_ready_s')} direct_create_s=${f('direct_create_s')} ` +
      `equal=${result.equal ? 'true' : 'false'} api_p50_ms=${f('api_p50_ms', 1)} api_p99_ms=${f('api_p99_ms', 1)} load=${loadAverage()}`,
  );
  if (!result.equal) process.exitCode = 1;
}

await main();
