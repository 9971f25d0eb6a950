import { SimCloud, SimCloudClient, type SimCloudOptions } from '@kiln/sim-cloud';
import { checkProperties, needsReplacement, type ActionRequest, type ResourceType, type TaskType } from '@kiln/engine';
import { createCloudProvider, type CloudProvider, type CloudTaskType, type GatewayOptions, type TaskContext } from '../src/index.js';

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

/** Polls until `probe` gives a truthy value (deadline, not a fixed sleep). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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
