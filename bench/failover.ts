/**
 * Failover benchmark: the cloud stack of bench/cloud.ts (N servers, each with a port and an
 * attached volume, on one network) created in the sim cloud (boot latency, 5% boot failures) by
 * 3 engine processes sharing one nats-server — twice in the same run:
 *  1. without a fault: the baseline time to READY;
 *  2. with one engine SIGKILLed once a third of the stack's resources are created; its
 *     partitions are taken over by the other two after its lease expires.
 * Figures: both times to READY, the extra seconds and their ratio, and the inventory check after
 * both (one live server per member and idempotency key: nothing created twice or leaked by the
 * killed engine's in-flight work). Both runs report resources created over time (the kill is a
 * fault marker).
 *
 * `--quick`: N=200 (as bench/cloud.ts --quick), boot 1–3 s; full: N=10,000, boot 5–30 s (`--servers N` overrides N).
 * Last line: `failover servers=N ready_s=T ready_kill_s=K extra_s=E ratio=R inventory_ok=1`
 * preceded by `BENCH_JSON {...}` (also written to `--json <file>`).
 * Usage: node bench/dist/failover.js [--quick] [--servers N] [--lease-ms L] [--json <file>]
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { SimCloudClient } from '@kiln/sim-cloud';
import { CompletedResources, sampleSeries, waitSettled, type Point } from './lib/converge.js';
import { loadAverage, peakRssMiB, say, startEngine, startSim, stopRole, type RoleProcess } from './lib/procs.js';
import { serverFleet } from './lib/server-fleet.js';

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const quick = process.argv.includes('--quick');
const jsonOut = arg('--json');
const n = Number(arg('--servers') ?? (quick ? 200 : 10_000));
/** The engines' lease: a killed engine's partitions are free again this long after its last renewal. */
const leaseMs = Number(arg('--lease-ms') ?? 10_000);
const boot = quick ? { min: 1000, max: 3000 } : { min: 5000, max: 30_000 };
const PARTITIONS = 64;
const TENANT = 'bench';
const ENGINES = 3;
const KILL_AT = 1 / 3;

interface Run {
  /** Seconds to READY (or to FAILED: see status). */
  readyS: number;
  status: string;
  reason: string;
  points: Point[];
  faults: Array<{ t: number; kind: string }>;
}

/** Creates the stack and waits for READY; with `kill`, SIGKILLs it once KILL_AT of the resources are created. */
async function converge(client: Engine, name: string, kill: RoleProcess | undefined, deadlineMs: number): Promise<Run> {
  const stackResources = 5 * n + 3;
  const t0 = performance.now();
  const ref = await client.createStack({ tenant: TENANT, name, ...serverFleet(name, n) });
  const created = new CompletedResources(client, ref.id, 'CREATE');
  const faults: Run['faults'] = [];
  const sampler = sampleSeries(t0, async () => {
    const c = await created.pump();
    if (kill && faults.length === 0 && c >= stackResources * KILL_AT) {
      kill.child.kill('SIGKILL');
      faults.push({ t: Math.round(performance.now() - t0) / 1000, kind: 'SIGKILL engine' });
      say(`${name}: SIGKILL engine pid ${String(kill.child.pid)} at ${faults[0]!.t} s (${c}/${stackResources} resources created)`);
    }
    return c;
  });
  // A stack still converging at the deadline is reported (status TIMEOUT), not a crash of the bench.
  const s = await waitSettled(client, ref.id, 1, deadlineMs)
    .catch((e: unknown) => ({ status: 'TIMEOUT', reason: (e as Error).message }))
    .finally(() => sampler.stop());
  const readyS = (performance.now() - t0) / 1000;
  const points = await sampler.stop();
  points.push({ t: Math.round(readyS * 1000) / 1000, converged: await created.pump() });
  say(`${name}: ${s.status} in ${readyS.toFixed(1)} s${s.status === 'READY' ? '' : `: ${s.reason}`}`);
  return { readyS, status: s.status, reason: s.reason, points, faults };
}

async function main(): Promise<void> {
  const simOptions = { seed: 20261128, latency: { server: { dist: 'uniform', ...boot } }, faults: { serverBootError: 0.05 }, fsync: 'interval' };
  const nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  const procs: RoleProcess[] = [];
  let client: Engine | undefined;
  let cloud: SimCloudClient | undefined;
  let result: Record<string, unknown>;
  try {
    const sim = await startSim(simOptions);
    procs.push(sim);
    for (let i = 0; i < ENGINES; i++) procs.push(await startEngine({ nats: nats.url, nodeId: `failover-${i}`, partitions: PARTITIONS, leaseMs, sim: { url: sim.line, tenant: TENANT } }));
    cloud = new SimCloudClient(sim.line, { tenant: TENANT });
    client = await Engine.start({ servers: nats.url, partitions: PARTITIONS, worker: false });
    const loadBefore = loadAverage();
    const base = await converge(client, 'fo-base', undefined, quick ? 300_000 : 3_600_000);
    const victim = procs[2]!;
    // Far beyond a takeover (2 leases) and a re-run of the whole create: past this it is stuck.
    const killed = await converge(client, 'fo-kill', victim, Math.max(120_000, 4 * leaseMs + 3 * base.readyS * 1000));
    const loadAfter = loadAverage();
    if (killed.faults.length === 0) throw new Error('the engine was never killed (the stack converged before the kill point)');

    // Both stacks' servers are live once each, one object per idempotency key.
    const inventory = (await cloud.inventory({ tenant: TENANT })).filter((o) => !o.implicit);
    const servers = inventory.filter((o) => o.kind === 'server');
    const keys = inventory.map((o) => o.key).filter((k) => k !== undefined);
    const duplicateKeys = keys.length - new Set(keys).size;
    // A stack that FAILED is a finding to report (with its reason), not a crash of the bench.
    const ok = base.status === 'READY' && killed.status === 'READY';
    const inventoryOk = servers.length === 2 * n && servers.every((s) => s.status === 'ACTIVE') && duplicateKeys === 0;
    const stats = await cloud.stats();
    result = {
      ...(ok ? { ready_s: base.readyS, ready_kill_s: killed.readyS, extra_s: killed.readyS - base.readyS, ratio: killed.readyS / base.readyS } : {}),
      ready: ok ? 1 : 0,
      inventory_ok: inventoryOk ? 1 : 0,
      detail: {
        runs: { base: { status: base.status, reason: base.reason, seconds: base.readyS }, kill: { status: killed.status, reason: killed.reason, seconds: killed.readyS } },
        servers: n,
        stack_resources: 5 * n + 3,
        engines: ENGINES,
        lease_ms: leaseMs,
        boot_ms: boot,
        kill_at_s: killed.faults[0]!.t,
        kill_at_fraction: KILL_AT,
        load_average: { before: loadBefore, after: loadAfter },
        surviving_engine_peak_rss_mib: Math.max(...procs.slice(1, 1 + ENGINES - 1).map((p) => peakRssMiB(p.child.pid))),
        inventory: { live: inventory.length, servers: servers.length, expected_servers: 2 * n, duplicate_keys: duplicateKeys },
        injected: stats.injected,
      },
      series: [
        { name: 'no fault', points: base.points, faults: [] },
        { name: 'engine killed', points: killed.points, faults: killed.faults },
      ],
    };
  } finally {
    await client?.stop();
    cloud?.close();
    for (const p of procs.reverse()) await stopRole(p);
    await nats.stop();
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(result, null, 2));
  say(`BENCH_JSON ${JSON.stringify(result)}`);
  const f = (k: string, p = 2) => (typeof result[k] === 'number' ? (result[k] as number).toFixed(p) : 'none');
  say(
    `failover servers=${n} ready_s=${f('ready_s')} ready_kill_s=${f('ready_kill_s')} extra_s=${f('extra_s')} ratio=${f('ratio', 3)} ` +
      `ready=${String(result.ready)} inventory_ok=${String(result.inventory_ok)} load=${loadAverage()}`,
  );
  if (!result.ready || !result.inventory_ok) process.exitCode = 1;
}

await main();
