import { SimCloud, SimCloudClient, type SimCloudOptions } from '@kiln/sim-cloud';
import { Engine, checkProperties, needsReplacement, type ActionRequest, type EngineOptions, type ResourceType, type StackInfo, type TaskType } from '@kiln/engine';
import { NatsServer, waitFor } from '@kiln/natsd';
import { cloudTypes, createCloudProvider, type CloudProvider, type CloudTaskType, type GatewayOptions, type TaskContext } from '../src/index.js';

/** Latencies small enough for tests, still asynchronous. */
export const FAST: SimCloudOptions['latency'] = {
  default: { dist: 'uniform', min: 5, max: 20 },
  server: { dist: 'uniform', min: 20, max: 60 },
  volume: { dist: 'uniform', min: 10, max: 30 },
  loadbalancer: { dist: 'uniform', min: 20, max: 50 },
  attach: { dist: 'uniform', min: 10, max: 30 },
  detach: { dist: 'uniform', min: 10, max: 30 },
  delete: { dist: 'fixed', ms: 10 },
};

/** Quick polls so tests follow the sim's short latencies. */
export const QUICK: GatewayOptions = { pollInitialMs: 10, pollMaxMs: 50, backoffBaseMs: 20, backoffMaxMs: 200, retryBudgetMs: 5_000 };

export interface World {
  sim: SimCloud;
  client: SimCloudClient;
  provider: CloudProvider;
  type(name: string): CloudTaskType;
  stop(): Promise<void>;
}

export async function startWorld(opts: SimCloudOptions = {}, gw: GatewayOptions = {}): Promise<World> {
  const sim = await SimCloud.start({ seed: 7, latency: FAST, ...opts });
  const client = new SimCloudClient(sim.url);
  const provider = createCloudProvider(client, { ...QUICK, ...gw });
  return {
    sim,
    client,
    provider,
    type(name) {
      const t = provider.types.find((x) => x.name === name);
      if (!t || t.kind !== 'task') throw new Error(`no task type ${name}`);
      return t as CloudTaskType;
    },
    async stop() {
      client.close();
      await sim.stop();
    },
  };
}

let n = 0;

/** A task context as the runtime makes one. */
export function ctx(signal: AbortSignal = new AbortController().signal): TaskContext {
  n += 1;
  return { self: `resource/s1/r${n}`, idempotencyKey: `task-${n}`, signal } as TaskContext;
}

/** An action request as the engine makes one for incarnation `inc` of resource `name`. */
export function request(name: string, properties: Record<string, unknown>, extra: Partial<ActionRequest> = {}, inc = 1): ActionRequest {
  return {
    stackId: 's1',
    stackName: 'stk',
    name,
    physicalName: `stk-${name}-abc${inc}`,
    idempotencyKey: `resource/s1/${name}#${inc}`,
    attributesRead: true,
    properties,
    now: Date.now(),
    ...extra,
  };
}

/** Properties as the engine hands them to a type: validated, with defaults filled. */
export function props(type: ResourceType, given: Record<string, unknown>): Record<string, unknown> {
  const r = checkProperties(type, given);
  if (!r.ok) throw new Error(`${r.path}: ${r.message}`);
  return r.value;
}

/** Create with defaults filled; returns the request to reuse for update/delete/observe. */
export async function create(t: TaskType, name: string, given: Record<string, unknown>, inc = 1): Promise<ActionRequest & { physicalId: string; attrs: Record<string, unknown> }> {
  const req = request(name, props(t, given), {}, inc);
  const r = await t.create(req, ctx());
  return { ...req, physicalId: r.physicalId!, attrs: r.attrs };
}

export function replaces(t: ResourceType, oldGiven: Record<string, unknown>, newGiven: Record<string, unknown>): boolean {
  return needsReplacement(t, props(t, oldGiven), props(t, newGiven));
}

/** The error a promise rejects with (fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** A real nats-server, a sim cloud and an engine running the cloud types against it. */
export interface EngineWorld {
  nats: NatsServer;
  w: World;
  engine: Engine;
}

/** Starts an EngineWorld into `c` piece by piece, so stopEngineWorld stops whatever did start. */
export async function startEngineWorld(c: Partial<EngineWorld>, nodeId: string, opts: EngineOptions = {}): Promise<void> {
  c.nats = await NatsServer.start();
  c.w = await startWorld();
  c.engine = await Engine.start({ servers: c.nats.url, partitions: 8, nodeId, types: cloudTypes(c.w.client, QUICK), ...opts });
}

/** The nats-server is stopped only after the engine (withNatsServer's after hook would run first). */
export async function stopEngineWorld(c: Partial<EngineWorld>): Promise<void> {
  await c.engine?.stop();
  await c.w?.stop();
  await c.nats?.stop();
}

/** Waits until the stack is at `gen` (or newer) and no longer converging. */
export function settled(e: Engine, id: string, gen: number): Promise<StackInfo> {
  return waitFor(`stack ${id} gen ${gen}`, async () => {
    const s = await e.getStack(id);
    return s.generation >= gen && s.status !== 'CONVERGING' ? s : null;
  }, 60_000);
}
