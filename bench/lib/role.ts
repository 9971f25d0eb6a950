/**
 * The child processes of the benchmarks, one role per process so that each one's CPU and peak
 * RSS are its own and an engine can be killed with SIGKILL:
 *   node role.js sim '<SimCloud options json>'                 prints {"url":…}
 *   node role.js engine '<EngineRole json>'                    prints "ready"
 *   node role.js gateway <nats url> <token> <tenant>            prints {"url":…}
 * Each stops cleanly on SIGTERM. Spawned through `startRole` (./procs.ts).
 */
import type { ResourceType } from '@kiln/engine';
import { say } from './procs.js';

/** An engine process: the built-in types, plus the cloud types when `sim` is given (wired as `kiln engine` does). */
export interface EngineRole {
  nats: string;
  nodeId: string;
  partitions: number;
  /** Lease of the engine's partitions (the runtime default when absent). */
  leaseMs?: number;
  /** Observe interval of cloud resources, ms (the engine's default when absent). */
  observeIntervalMs?: number;
  /**
   * Sim cloud URL and tenant; `idempotentCreates`: the provider skips the look-up by key before
   * each create (the sim's creates are idempotent on the key).
   */
  sim?: { url: string; tenant: string; idempotentCreates?: boolean };
}

async function runSim(optionsJson: string): Promise<void> {
  const { SimCloud } = await import('@kiln/sim-cloud');
  const sim = await SimCloud.start(JSON.parse(optionsJson) as Parameters<typeof SimCloud.start>[0]);
  say(JSON.stringify({ url: sim.url }));
  process.once('SIGTERM', () => void sim.stop().then(() => process.exit(0)));
}

async function runEngine(o: EngineRole): Promise<void> {
  const { Engine } = await import('@kiln/engine');
  let cloud: Array<{ close(): Promise<void> | void }> = [];
  let types: readonly ResourceType[] = [];
  if (o.sim) {
    const { SimCloudClient } = await import('@kiln/sim-cloud');
    const { createCloudProvider } = await import('@kiln/providers');
    const client = new SimCloudClient(o.sim.url, { tenant: o.sim.tenant });
    const provider = createCloudProvider(client, { changes: client, ...(o.sim.idempotentCreates ? { idempotentCreates: true } : {}) });
    types = provider.types;
    cloud = [provider, { close: () => client.close() }];
  }
  const engine = await Engine.start({
    servers: o.nats,
    partitions: o.partitions,
    nodeId: o.nodeId,
    types,
    ...(o.leaseMs ? { leaseMs: o.leaseMs } : {}),
    ...(o.observeIntervalMs ? { heal: { observeIntervalMs: o.observeIntervalMs } } : {}),
  });
  say('ready');
  process.once('SIGTERM', () => {
    void (async () => {
      await engine.stop();
      for (const c of cloud) await c.close();
      process.exit(0);
    })();
  });
}

async function runGateway(nats: string, token: string, tenant: string): Promise<void> {
  const { Gateway } = await import('@kiln/api');
  // Heartbeats every 5 s: the fan-out measures events, not keep-alives.
  const gw = await Gateway.start({ servers: nats, tokens: { [token]: tenant }, heartbeatMs: 5000, maxBufferedBytes: 8 * 1024 * 1024 });
  say(JSON.stringify({ url: gw.url }));
  process.once('SIGTERM', () => void gw.stop().then(() => process.exit(0)));
}

// A bench that died without stopping its children (a crash, a kill) must not leave them running.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(1), 1000).unref();

const [role, a, b, c] = process.argv.slice(2);
if (role === 'sim') await runSim(a!);
else if (role === 'engine') await runEngine(JSON.parse(a!) as EngineRole);
else if (role === 'gateway') await runGateway(a!, b!, c!);
else {
  process.stderr.write(`unknown role '${String(role)}'\n`);
  process.exit(2);
}
