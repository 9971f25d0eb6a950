/**
 * Cloud benchmark: a stack of N servers, each with a port and a volume (+ attachment), on one
 * network/subnet, created in the simulated cloud by a real engine, with boot latency and 5% boot
 * failures. Three processes besides nats-server, so that each one's peak RSS is its own: this one
 * (the engine client, the sim's change feed, the measurements), the sim cloud and the engine
 * (`bench/lib/role.ts sim` / `engine`, spawned by `startSim` / `startEngine`).
 *
 * Figures: seconds to READY versus the critical path the cloud's latency implies, their ratio
 * (target ≤ 1.25), cloud API calls per cloud resource (every call counts, wasted ones included),
 * peak RSS of the engine and the sim, and the inventory check (the sim's live objects are exactly
 * the stack's physical resources after READY, no duplicate keys, nothing left after delete).
 *
 * The critical path is measured from the sim's change feed, not assumed: the network's build,
 * then, for the slowest member, the larger of (the sum of every boot of its server, failed ones
 * included, whatever key each incarnation had) and its volume's build, plus its attach. It leaves
 * out what only the engine and the providers add (reaction time between steps, deleting a failed
 * server before the next boot). The bound implied by the configured distribution alone is
 * reported next to it (`detail.critical_path_config_s`), and where the rest of the wall time goes
 * per member (`detail.gaps_ms`: stack create → port, port → server create, failed boot → next
 * create, ACTIVE → attach, and READY after the last attach) with the load average beside it.
 *
 * Full run: N=10,000 (≈ 50K resources), boot uniform 5–30 s. `--quick`: N=200, boot 1–3 s
 * (`--servers N` overrides N). Last line:
 *   `cloud servers=N ready_s=T critical_path_s=C ratio=R api_calls_per_resource=A`
 * preceded by `BENCH_JSON {...}` (also written to `--json <file>`).
 * Usage: node bench/dist/cloud.js [--quick] [--servers N] [--engines N] [--boot-ms MIN-MAX] [--observe-interval-ms MS] [--json <file>] [--profile <dir>]
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from '@kiln/natsd';
import { Engine } from '@kiln/engine';
import { SimCloudClient } from '@kiln/sim-cloud';
import { CompletedResources, sampleSeries, waitSettled } from './lib/converge.js';
import { cpuSeconds, loadAverage, peakRssMiB, say, startEngine, startSim, stopRole, type RoleProcess } from './lib/procs.js';
import { serverFleet } from './lib/server-fleet.js';
import { opCounts, opsPer } from './lib/ops.js';

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const PARTITIONS = 64;
const TENANT = 'bench';
const SEED = 20261128;
/** `--profile <dir>`: the engine and the sim write V8 CPU profiles there (open them in Chrome's DevTools). */
const profileDir = arg('--profile');
/** `--observe-interval-ms <ms>`: the engine's heal observe interval (its default when absent). */
const observeIntervalMs = Number(arg('--observe-interval-ms') ?? 0);
const engineCount = Number(arg('--engines') ?? 1);

// ---- the scenario ---------------------------------------------------------------------------

/** Timestamps (ms) of one group member's cloud objects, from the sim's change feed. */
interface MemberTrace {
  /** Every server boot of the member, in order: when it was created, when it ended and how. */
  boots: { created: number; ended?: number; ok?: boolean }[];
  portCreated?: number;
  volumeCreated?: number;
  volumeBuildMs?: number;
  attaching?: number;
  inUse?: number;
}

/**
 * What the sim's change feed shows of each member, for the critical path and for where the time
 * goes. A member is named by the stack part of its objects' idempotency keys
 * (`res/<member stack>/<resource>#<incarnation>`), so every incarnation of its server (a boot
 * that ended in ERROR and its replacement under a new key) counts toward the same member.
 */
class CloudClock {
  private readonly created = new Map<string, { at: number; kind: string; member?: string }>();
  private readonly volumeMember = new Map<string, string>();
  readonly members = new Map<string, MemberTrace>();
  readonly maxBuildMs: Record<string, number> = {};
  bootErrors = 0;
  events = 0;

  private member(key: string | undefined): { member: string; resource: string } | undefined {
    const m = key ? /^[^/]+\/(.+)\/([^/#]+)#\d+$/.exec(key) : null;
    return m ? { member: m[1]!, resource: m[2]! } : undefined;
  }

  private trace(member: string): MemberTrace {
    let t = this.members.get(member);
    if (!t) this.members.set(member, (t = { boots: [] }));
    return t;
  }

  onEvent(e: { type: string; kind?: string; id?: string; key?: string; status?: string; previous_status?: string; at: string }): void {
    this.events++;
    if (!e.id || !e.kind) return;
    const at = Date.parse(e.at);
    if (e.type === 'created') {
      const m = this.member(e.key);
      this.created.set(e.id, { at, kind: e.kind, ...(m ? { member: m.member } : {}) });
      if (m && e.kind === 'server') this.trace(m.member).boots.push({ created: at });
      if (m && e.kind === 'port') this.trace(m.member).portCreated = at;
      if (m && e.kind === 'volume') {
        this.trace(m.member).volumeCreated = at;
        this.volumeMember.set(e.id, m.member);
      }
      return;
    }
    if (e.type !== 'updated') return;
    const vm = e.kind === 'volume' ? this.volumeMember.get(e.id) : undefined;
    if (vm && e.status === 'attaching') this.trace(vm).attaching = at;
    if (vm && e.status === 'in-use') this.trace(vm).inUse = at;
    const c = this.created.get(e.id);
    // The first change out of the initial status ends the object's build.
    if (!c || !['BUILD', 'creating', 'PENDING_CREATE'].includes(e.previous_status ?? '')) return;
    this.created.delete(e.id);
    const ms = at - c.at;
    this.maxBuildMs[c.kind] = Math.max(this.maxBuildMs[c.kind] ?? 0, ms);
    if (c.kind === 'volume' && c.member) this.trace(c.member).volumeBuildMs = ms;
    if (c.kind === 'server') {
      if (e.status === 'ERROR') this.bootErrors++;
      const boot = c.member ? this.trace(c.member).boots.find((b) => b.created === c.at && b.ended === undefined) : undefined;
      if (boot) Object.assign(boot, { ended: at, ok: e.status !== 'ERROR' });
    }
  }

  /**
   * The time the cloud alone needs, in seconds: the network's build, then for the slowest member
   * max(the sum of all its server boots, failed ones included; its volume's build) plus its
   * attach. Subnets and ports are built at once by the sim (Neutron answers them synchronously).
   */
  criticalPathS(): number {
    let worst = 0;
    for (const t of this.members.values()) {
      const boots = t.boots.reduce((a, b) => a + (b.ended !== undefined ? b.ended - b.created : 0), 0);
      const attach = t.attaching !== undefined && t.inUse !== undefined ? t.inUse - t.attaching : 0;
      worst = Math.max(worst, Math.max(boots, t.volumeBuildMs ?? 0) + attach);
    }
    const b = (k: string) => this.maxBuildMs[k] ?? 0;
    return (b('network') + b('subnet') + b('port') + worst) / 1000;
  }

  /**
   * Where the wall time goes, per member (ms; mean and max over members): from the stack's
   * create to the member's port (fan-out), port → first server create (engine reaction), each
   * failed boot's end → the next server create (clean-up and retry), ACTIVE → attach started
   * (engine reaction), attach done → READY is the fan-in (only as a whole: `ready_after_last_attach_ms`).
   */
  gaps(t0: number): Record<string, { mean: number; max: number; n: number }> {
    const acc: Record<string, number[]> = { fanout_to_port: [], port_to_server: [], boot_ms: [], failed_boot_to_next_create: [], active_to_attach: [], attach_ms: [] };
    for (const t of this.members.values()) {
      if (t.portCreated !== undefined) acc.fanout_to_port!.push(t.portCreated - t0);
      const first = t.boots[0];
      if (first && t.portCreated !== undefined) acc.port_to_server!.push(first.created - t.portCreated);
      t.boots.forEach((b, i) => {
        if (b.ended !== undefined) acc.boot_ms!.push(b.ended - b.created);
        const next = t.boots[i + 1];
        if (b.ok === false && b.ended !== undefined && next) acc.failed_boot_to_next_create!.push(next.created - b.ended);
      });
      const last = t.boots[t.boots.length - 1];
      if (last?.ok && last.ended !== undefined && t.attaching !== undefined) acc.active_to_attach!.push(t.attaching - Math.max(last.ended, t.volumeCreated! + (t.volumeBuildMs ?? 0)));
      if (t.attaching !== undefined && t.inUse !== undefined) acc.attach_ms!.push(t.inUse - t.attaching);
    }
    const out: Record<string, { mean: number; max: number; n: number }> = {};
    for (const [k, v] of Object.entries(acc)) out[k] = { mean: Math.round(v.reduce((a, b) => a + b, 0) / Math.max(1, v.length)), max: Math.max(0, ...v), n: v.length };
    return out;
  }

  /** When the last attach completed (ms since the epoch). */
  lastInUse(): number {
    return Math.max(0, ...[...this.members.values()].map((t) => t.inUse ?? 0));
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const jsonOut = arg('--json');
  const n = Number(arg('--servers') ?? (quick ? 200 : 10_000));
  // `--boot-ms MIN-MAX` overrides the boot latency, e.g. `--boot-ms 10-20` to measure what the engine alone adds.
  const bootArg = /^(\d+)-(\d+)$/.exec(arg('--boot-ms') ?? '');
  const boot = bootArg ? { min: Number(bootArg[1]), max: Number(bootArg[2]) } : quick ? { min: 1000, max: 3000 } : { min: 5000, max: 30_000 };
  const simOptions = {
    seed: SEED,
    latency: { server: { dist: 'uniform', ...boot } },
    faults: { serverBootError: 0.05 },
    fsync: 'interval',
    eventBuffer: Math.max(20_000, 20 * n),
  };
  // Nothing else in flight: the critical path bound assumes every other latency is the sim's default.
  const nats = await NatsServer.start({ maxPayload: 8 * 1024 * 1024 });
  const procs: RoleProcess[] = [];
  let client: Engine | undefined;
  let cloud: SimCloudClient | undefined;
  const clock = new CloudClock();
  const feed = new AbortController();
  let following: Promise<unknown> | undefined;
  let result: Record<string, unknown> | undefined;
  try {
    const sim = await startSim(simOptions, profileDir);
    procs.push(sim);
    // The sim's creates are idempotent on the key: no look-up by key before each create.
    // `--engines N` engine processes (default 1) share the partitions: Node runs one thread each.
    const engineProcs: RoleProcess[] = [];
    for (let i = 0; i < engineCount; i++) {
      const e = await startEngine(
        { nats: nats.url, nodeId: `bench-cloud-${i + 1}`, partitions: PARTITIONS, sim: { url: sim.line, tenant: TENANT, idempotentCreates: true }, ...(observeIntervalMs ? { observeIntervalMs } : {}) },
        profileDir,
      );
      procs.push(e);
      engineProcs.push(e);
    }
    cloud = new SimCloudClient(sim.line, { tenant: TENANT });
    client = await Engine.start({ servers: nats.url, partitions: PARTITIONS, worker: false });
    following = cloud.follow({ since: 0, kinds: ['network', 'subnet', 'port', 'server', 'volume'], signal: feed.signal, onEvent: (e) => clock.onEvent(e) }).catch(() => undefined);
    const cloudResources = 4 * n + 2;
    const stackResources = 5 * n + 3; // + the group and one nested stack per member
    const deadlineMs = quick ? 300_000 : 3_600_000;
    const opsNc = await connect({ servers: nats.url });
    const ops0 = await opCounts(opsNc);
    const t0 = performance.now();
    const t0Wall = Date.now();
    const ref = await client.createStack({ tenant: TENANT, name: 'cloud-bench', ...serverFleet('srv', n) });

    // Resources converged over time, sampled beside the READY poll so that a slow events read does not delay the time to READY.
    const created = new CompletedResources(client, ref.id, 'CREATE');
    // A long run says how far it got every 30 s (on stderr: stdout is the result).
    let nextProgress = t0 + 30_000;
    const sampler = sampleSeries(t0, async () => {
      const c = await created.pump();
      if (performance.now() >= nextProgress) {
        nextProgress += 30_000;
        process.stderr.write(`cloud: ${Math.round((performance.now() - t0) / 1000)} s, ${c}/${stackResources} resources created, load ${loadAverage()}\n`);
      }
      return c;
    });
    const ready = await waitSettled(client, ref.id, 1, deadlineMs).catch(async (e: unknown) => {
      await sampler.stop();
      throw e;
    });
    const readyS = (performance.now() - t0) / 1000;
    const readyWall = Date.now();
    const load = loadAverage();
    // CPU used up to READY, per process kind: what each member costs whatever the load.
    const cpuAtReady = { engine: engineProcs.reduce((a, e) => a + cpuSeconds(e.child.pid), 0), sim: cpuSeconds(sim.child.pid), nats: cpuSeconds(nats.pid) };
    const points = await sampler.stop();
    // Server operations up to READY (a few of the sampler's reads included), per stack resource.
    const opsAtReady = opsPer(ops0, await opCounts(opsNc), stackResources);
    await opsNc.close();
    if (ready.status !== 'READY') throw new Error(`stack ${ready.status}: ${ready.reason}`);
    points.push({ t: Math.round(readyS * 1000) / 1000, converged: await created.pump() });
    const engineRssMiB = Math.max(...engineProcs.map((e) => peakRssMiB(e.child.pid)));
    const simRssMiB = peakRssMiB(sim.child.pid);
    const createStats = await cloud.stats();

    // Inventory after READY: exactly the stack's cloud resources, one object per key.
    const inventory = (await cloud.inventory({ tenant: TENANT })).filter((o) => !o.implicit);
    // Every cloud resource but the attachment (not an object of its own) is one live object.
    const cloudObject = /^OS::(Nova::Server|Neutron::(Net|Subnet|Port)|Cinder::Volume)$/;
    const expected = new Set([...created.physical.values()].filter((p) => cloudObject.test(p.type) && p.id).map((p) => p.id!));
    const live = new Set(inventory.map((o) => o.id));
    const keys = inventory.map((o) => o.key).filter((k) => k !== undefined);
    const leaks = inventory.filter((o) => !expected.has(o.id)).length;
    const missing = [...expected].filter((id) => !live.has(id)).length;
    const duplicateKeys = keys.length - new Set(keys).size;
    const servers = inventory.filter((o) => o.kind === 'server');
    const inventoryOk = leaks === 0 && missing === 0 && duplicateKeys === 0 && servers.length === n && servers.every((s) => s.status === 'ACTIVE');

    const t1 = performance.now();
    await client.deleteStack(ref.id);
    for (;;) {
      const s = await client.getStack(ref.id);
      if (s.status === 'DELETED') break;
      if (s.status === 'FAILED') throw new Error(`delete failed: ${s.reason}`);
      if (performance.now() - t1 > deadlineMs) throw new Error(`not deleted after ${deadlineMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const deleteS = (performance.now() - t1) / 1000;
    const leftAfterDelete = (await cloud.inventory({ tenant: TENANT })).length;
    const allStats = await cloud.stats();
    const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    const createCalls = sum(createStats.calls);
    const criticalPathS = clock.criticalPathS();
    const configPathS = (200 + 200 + 200 + boot.max + 200) / 1000; // defaults: others ≤ 200 ms, attach ≤ 200 ms

    result = {
      ready_s: readyS,
      critical_path_s: criticalPathS,
      ratio: readyS / criticalPathS,
      api_calls_per_resource: createCalls / cloudResources,
      api_calls_per_resource_with_delete: sum(allStats.calls) / cloudResources,
      delete_s: deleteS,
      engine_peak_rss_mib: engineRssMiB,
      sim_peak_rss_mib: simRssMiB,
      nats_peak_rss_mib: peakRssMiB(nats.pid),
      inventory_ok: inventoryOk ? 1 : 0,
      left_after_delete: leftAfterDelete,
      detail: {
        servers: n,
        stack_resources: stackResources,
        cloud_resources: cloudResources,
        boot_ms: boot,
        boot_errors: clock.bootErrors,
        max_build_ms: clock.maxBuildMs,
        critical_path_source: 'sim change feed: network build + max over members of (max(sum of every server boot of the member, failed ones included; volume build) + attach)',
        gaps_ms: clock.gaps(t0Wall),
        ready_after_last_attach_ms: readyWall - clock.lastInUse(),
        load_average_1m: load,
        engines: engineCount,
        cpu_s_at_ready: cpuAtReady,
        ops_per_stack_resource_at_ready: opsAtReady,
        cpu_ms_per_server_at_ready: Object.fromEntries(Object.entries(cpuAtReady).map(([k, v]) => [k, Math.round((v * 1000) / n)])),
        observe_interval_ms: observeIntervalMs || 'engine default',
        critical_path_config_s: configPathS,
        calls_create: createStats.calls,
        calls_total: allStats.calls,
        injected: allStats.injected,
        rate_limited: allStats.rateLimited,
        inventory: { live: inventory.length, expected: expected.size, leaks, missing, duplicate_keys: duplicateKeys, servers: servers.length },
        cloud_events: clock.events,
      },
      series: { name: `servers ${n}: resources created`, points, faults: [] },
    };
  } finally {
    feed.abort();
    await following;
    await client?.stop();
    cloud?.close();
    for (const p of procs.reverse()) await stopRole(p);
    await nats.stop();
  }
  const r = result!;
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(r, null, 2));
  say(
    `servers=${n}: READY in ${(r.ready_s as number).toFixed(1)} s, critical path ${(r.critical_path_s as number).toFixed(1)} s, ` +
      `${(r.api_calls_per_resource as number).toFixed(2)} API calls/resource (${(r.api_calls_per_resource_with_delete as number).toFixed(2)} with delete), ` +
      `delete ${(r.delete_s as number).toFixed(1)} s, peak RSS engine ${String(r.engine_peak_rss_mib)} MiB, sim ${String(r.sim_peak_rss_mib)} MiB, ` +
      `inventory ${r.inventory_ok ? 'ok' : 'MISMATCH'} ${JSON.stringify((r.detail as { inventory: unknown }).inventory)}, left after delete ${String(r.left_after_delete)}, ` +
      `load average ${String((r.detail as { load_average_1m: number }).load_average_1m)}, ` +
      `CPU ms per server to READY ${JSON.stringify((r.detail as { cpu_ms_per_server_at_ready: unknown }).cpu_ms_per_server_at_ready)}, ` +
      `server operations per stack resource to READY ${JSON.stringify((r.detail as { ops_per_stack_resource_at_ready: unknown }).ops_per_stack_resource_at_ready)}`,
  );
  say(`BENCH_JSON ${JSON.stringify(r)}`);
  say(
    `cloud servers=${n} ready_s=${(r.ready_s as number).toFixed(2)} critical_path_s=${(r.critical_path_s as number).toFixed(2)} ` +
      `ratio=${(r.ratio as number).toFixed(3)} api_calls_per_resource=${(r.api_calls_per_resource as number).toFixed(2)}`,
  );
  if (!r.inventory_ok || r.left_after_delete !== 0) process.exitCode = 1;
}

await main();
