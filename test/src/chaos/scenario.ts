import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { KilnError } from '@kiln/core';
import { waitFor } from '@kiln/natsd';
import type { GenerationRef } from '@kiln/sdk';
import { checkEvents, checkGenerations, checkInventory, reached, stackEvents, type TrackedStack } from './invariants.js';
import { GROUP, desiredOf, parameters, template, type StackShape, type Write } from './model.js';
import { ChaosWorld, type WorldOptions } from './world.js';

export const FAULT_KINDS = ['engine-kill', 'engine-stop', 'nats-kill', 'meta-leader-kill', 'sim-restart', 'api-burst'] as const;
/** `none`: a step without a fault (a baseline; never drawn at random). */
export type FaultKind = (typeof FAULT_KINDS)[number] | 'none';

export interface ScenarioOptions {
  seed: number;
  /** Stacks created in the first step. */
  stacks?: number;
  /** Steps: writes, one fault while they converge, then wait until every stack has converged. */
  steps?: number;
  /** One fault per step, in this order; drawn from the seed when absent. */
  faults?: FaultKind[];
  /**
   * Several writes to one stack in one step (overlapping updates, an update beside a capacity
   * change). Default true.
   */
  overlap?: boolean;
  /** The bound within which every stack must reach its last desired generation after a step. */
  settleMs?: number;
  /** Test bed options (the seed is the scenario's). */
  world?: Omit<WorldOptions, 'seed'>;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface FaultRecord {
  step: number;
  kind: FaultKind;
  detail: string;
  /** Every stack reached its desired generation within the bound after this fault. */
  converged: boolean;
  /** Fault injected → every stack at its desired generation (NaN when not converged). */
  reconvergeMs: number;
  /** Fault over (process back, burst ended) → converged; 0 when it converged before. */
  afterHealMs: number;
}

export interface ScenarioResult {
  seed: number;
  faults: FaultRecord[];
  writes: number;
  violations: string[];
  wallMs: number;
}

/** mulberry32: a small seeded PRNG, so a seed replays the same schedule. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Errors after which a write may or may not have happened, so it is sent again with its request id. */
const RETRY_CODES = new Set(['TIMEOUT', 'UNAVAILABLE', 'INTERNAL', 'RATE_LIMITED', 'CONFLICT']);

/**
 * One randomized scenario on a fresh test bed. Violations are collected, not thrown, so the
 * report shows them all; an error of the harness itself (the bed does not start) is thrown.
 */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const rand = rng(o.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const log = o.log ?? (() => undefined);
  const settleMs = o.settleMs ?? 120_000;
  const steps = o.faults?.length ?? o.steps ?? 5;
  const violations: string[] = [];
  const faults: FaultRecord[] = [];
  const stacks: TrackedStack[] = [];
  let writes = 0;

  const world = await ChaosWorld.start({ ...o.world, seed: o.seed });
  try {
    /** Sends a write until the API acknowledges it, with one request id for every attempt. */
    const ack = async (s: { name: string; id?: string }, w: Write): Promise<GenerationRef | undefined> => {
      const requestId = randomUUID();
      const deadline = Date.now() + 90_000;
      for (;;) {
        try {
          const c = world.client;
          if (w.kind === 'create') return await c.createStack(s.name, { template: template(s.name, w.shape), parameters: parameters(w.shape) }, { requestId });
          if (w.kind === 'update') return await c.updateStack(s.id!, { template: template(s.name, w.shape), parameters: parameters(w.shape) }, { requestId });
          if (w.kind === 'capacity') return await c.setCapacity(s.id!, GROUP, w.capacity, { requestId });
          return await c.deleteStack(s.id!, { requestId });
        } catch (e) {
          const code = e instanceof KilnError ? e.code : 'INTERNAL';
          if (!RETRY_CODES.has(code) || Date.now() > deadline) {
            violations.push(`${s.name}: ${w.kind} was not accepted: ${code} ${(e as Error).message}`);
            return undefined;
          }
          await sleep(300);
        }
      }
    };
    const write = async (s: TrackedStack, w: Write) => {
      const g = await ack(s, w);
      if (g) {
        s.writes.push({ write: w, gen: g.generation, at: Date.now() });
        writes++;
      }
    };
    const randomShape = (prev?: StackShape): StackShape => ({
      servers: prev && rand() < 0.7 ? prev.servers : int(1, 3),
      label: `v${int(0, 9999)}`,
      flavor: prev && rand() < 0.7 ? prev.flavor : pick(['m1.tiny', 'm1.small']),
      size: prev && rand() < 0.5 ? prev.size : int(0, 3),
    });

    for (let step = 0; step < steps; step++) {
      // The writes of this step, all in flight at once (overlapping updates of one stack included).
      const before = new Set(stacks.flatMap((s) => s.writes));
      const pending: Promise<void>[] = [];
      const live = stacks.filter((s) => !desiredOf(s.writes)!.deleted);
      if (step === 0) {
        for (let i = 0; i < (o.stacks ?? 3); i++) {
          const shape = randomShape();
          const name = `chaos${i}`;
          pending.push(
            ack({ name }, { kind: 'create', shape }).then((g) => {
              if (!g) return;
              stacks.push({ name, id: g.id, writes: [{ write: { kind: 'create', shape }, gen: g.generation, at: Date.now() }] });
              writes++;
            }),
          );
        }
      } else {
        // A stack changed by several writes in one step gets updates and capacity changes only;
        // a delete is its stack's only write (a write after it would be refused).
        const canDelete = step === steps - 1 && live.length > 1;
        for (const s of live) {
          const r = rand();
          const shape = desiredOf(s.writes)!.shape;
          const overlap = o.overlap ?? true;
          if (canDelete && r < 0.3) pending.push(write(s, { kind: 'delete' }));
          else if (r < 0.55 || (!overlap && r < 0.8)) pending.push(write(s, { kind: 'update', shape: randomShape(shape) }));
          else if (!overlap) pending.push(write(s, { kind: 'capacity', capacity: int(0, 4) }));
          else if (r < 0.75) {
            // Overlapping updates: the newest generation must win.
            pending.push(write(s, { kind: 'update', shape: randomShape(shape) }), write(s, { kind: 'update', shape: randomShape(shape) }));
          } else if (r < 0.9) pending.push(write(s, { kind: 'capacity', capacity: int(0, 4) }));
          else pending.push(write(s, { kind: 'update', shape: randomShape(shape) }), write(s, { kind: 'capacity', capacity: int(0, 4) }));
        }
      }
      const kind = o.faults?.[step] ?? pick(FAULT_KINDS);
      await sleep(int(100, 1200));
      const fault = await inject(world, kind, rand);
      log(`step ${step}: ${pending.length} writes, fault ${kind} (${fault.detail})`);
      await Promise.all(pending);
      const acked = stacks.flatMap((s) => s.writes.filter((w) => !before.has(w)).map((w) => `${s.name} ${w.write.kind} g${w.gen}`));
      log(`step ${step}: acknowledged ${acked.join(', ')}`);
      const healedAt = await fault.healed;
      // Every stack at its last desired generation, READY or deleted, within the bound.
      const failed = new Set<string>();
      try {
        await waitFor(
          `every stack converged after step ${step}`,
          async () => {
            for (const s of stacks) {
              if (failed.has(s.name)) continue;
              const d = desiredOf(s.writes)!;
              const shown = await world.client.showStack(s.id, { timeoutMs: 3_000 });
              if (shown.generation === d.gen && shown.status.endsWith('_FAILED')) {
                violations.push(`${s.name}: FAILED at generation ${d.gen} after step ${step} (${kind}): ${shown.status_reason ?? ''}`);
                failed.add(s.name);
                continue;
              }
              if (shown.generation > d.gen) throw new Error(`${s.name} is at generation ${shown.generation}, beyond the ${d.gen} acknowledged`);
              if (shown.generation < d.gen || !reached(shown.status, d)) throw new Error(`${s.name} is ${shown.status} at generation ${shown.generation}/${d.gen}`);
            }
            return true;
          },
          settleMs,
          250,
        );
      } catch (e) {
        violations.push(`step ${step} (${kind}): not converged within ${settleMs} ms: ${(e as Error).message}${await unsettled(world, stacks, o.seed, step)}`);
        faults.push({ step, kind, detail: fault.detail, converged: false, reconvergeMs: NaN, afterHealMs: NaN });
        break;
      }
      const now = Date.now();
      faults.push({ step, kind, detail: fault.detail, converged: true, reconvergeMs: now - fault.injectedAt, afterHealMs: Math.max(0, now - healedAt) });
      log(`step ${step}: converged ${now - fault.injectedAt} ms after the fault`);
    }

    for (const s of stacks) {
      violations.push(...(await checkGenerations(world.client, s)));
      const shown = await world.client.showStack(s.id);
      violations.push(...checkEvents(s.name, await stackEvents(world.client, s.id), shown));
    }
    violations.push(...(await checkInventory(world.client, world.cloud, stacks, 30_000)));
    // Every violation comes with the processes' logs (a non-convergence already wrote them).
    if (violations.length > 0 && faults.every((f) => f.converged)) violations[violations.length - 1] += `\n    engine and sim logs: ${writeLogs(world, o.seed, 'end')}`;
  } finally {
    await world.stop();
  }
  return { seed: o.seed, faults, writes, violations, wallMs: Date.now() - started };
}

/** Injects one fault; `healed` resolves (with the time) once it is over. */
async function inject(world: ChaosWorld, kind: FaultKind, rand: () => number): Promise<{ detail: string; injectedAt: number; healed: Promise<number> }> {
  const between = (lo: number, hi: number) => Math.round(lo + rand() * (hi - lo));
  const slot = Math.floor(rand() * world.engines.length);
  const after = async (ms: number, heal: () => Promise<unknown>): Promise<number> => {
    await sleep(ms);
    await heal();
    return Date.now();
  };
  switch (kind) {
    case 'none':
      return { detail: 'no fault', injectedAt: Date.now(), healed: Promise.resolve(Date.now()) };
    case 'engine-kill': {
      const label = world.engines[slot]!.label;
      await world.engines[slot]!.signal('SIGKILL');
      const ms = between(0, 2_000);
      return { detail: `SIGKILL ${label}, a new engine ${ms} ms later`, injectedAt: Date.now(), healed: after(ms, () => world.restartEngine(slot)) };
    }
    case 'engine-stop': {
      // Shorter and longer than the lease (10 s): the engine keeps its partitions, or wakes up fenced.
      const e = world.engines[slot]!;
      await e.signal('SIGSTOP');
      const ms = between(2_000, 14_000);
      return { detail: `SIGSTOP ${e.label} for ${ms} ms`, injectedAt: Date.now(), healed: after(ms, () => e.signal('SIGCONT')) };
    }
    case 'nats-kill':
    case 'meta-leader-kill': {
      const leader = world.metaLeader();
      // A follower no engine is homed on when there is one (see WorldOptions.engineNodes).
      const followers = world.cluster.nodes.filter((n) => n !== leader);
      const spare = followers.filter((n) => !world.engineHomes.includes(n));
      const others = spare.length ? spare : followers;
      const node = kind === 'meta-leader-kill' ? (leader ?? others[0]!) : others[Math.floor(rand() * others.length)]!;
      node.signal('SIGKILL');
      const ms = between(1_000, 4_000);
      const role = `${node === leader ? 'the meta leader' : leader ? 'a follower' : 'leader unknown'}, ${world.engineHomes.filter((h) => h === node).length} engines homed on it`;
      return { detail: `SIGKILL nats ${node.name} (${role}), back on its store ${ms} ms later`, injectedAt: Date.now(), healed: after(ms, () => world.restartNats(node)) };
    }
    case 'sim-restart': {
      await world.sim.signal('SIGKILL');
      const ms = between(300, 2_000);
      return { detail: `SIGKILL sim cloud, back on its state ${ms} ms later`, injectedAt: Date.now(), healed: after(ms, () => world.sim.start()) };
    }
    case 'api-burst': {
      const percent = between(30, 60);
      const share = percent / 100;
      await world.cloud.setFaults({ apiErrorShare: share, apiErrorAfterCreateShare: 0.2 });
      const ms = between(2_000, 5_000);
      return {
        detail: `cloud API errors: ${percent}% of calls 5xx, 20% of creates answered 500 after happening, for ${ms} ms`,
        injectedAt: Date.now(),
        healed: after(ms, () => world.cloud.setFaults({ apiErrorShare: 0, apiErrorAfterCreateShare: 0 })),
      };
    }
  }
}

/**
 * Why a step did not converge: resources not complete (or, at the top level, behind the
 * stack's desired generation), mailbox consumers with undelivered or unacknowledged messages,
 * and a file with the tail of every engine's log.
 */
async function unsettled(world: ChaosWorld, stacks: TrackedStack[], seed: number, step: number): Promise<string> {
  const lines: string[] = [];
  for (const s of stacks) {
    const d = desiredOf(s.writes)!;
    try {
      for (const r of (await world.client.listResources(s.id, { nested_depth: 1, limit: 1000 })).resources) {
        if (!r.status.endsWith('_COMPLETE') || (r.path === undefined && r.generation < d.gen)) {
          lines.push(`\n    ${s.name}/${r.path ?? r.name} ${r.status} g${r.generation} (stack at g${d.gen}) ${r.physical_id ?? '-'} ${r.status_reason ?? ''}`);
        }
      }
    } catch (e) {
      lines.push(`\n    ${s.name}: resources unreadable: ${(e as Error).message}`);
    }
  }
  try {
    const jsm = await jetstreamManager(world.client.nc);
    // Messages the stream holds per partition: mail no consumer reports (e.g. a consumer reset past it) shows here.
    const stream = await jsm.streams.info('kiln_mbox', { subjects_filter: 'kiln.mbox.>' });
    const held = new Map<string, number>();
    for (const [subject, n] of Object.entries(stream.state.subjects ?? {})) {
      const p = subject.split('.')[2]!;
      held.set(p, (held.get(p) ?? 0) + n);
    }
    lines.push(`\n    mailbox stream: ${stream.state.messages} messages, seq ${stream.state.first_seq}..${stream.state.last_seq}, leader ${stream.cluster?.leader ?? '?'}`);
    for await (const c of jsm.consumers.list('kiln_mbox')) {
      const p = /_p(\d+)$/.exec(c.name)?.[1] ?? '';
      if (c.num_pending > 0 || c.num_ack_pending > 0 || (held.get(p) ?? 0) > 0) {
        lines.push(`\n    mailbox consumer ${c.name}: ${held.get(p) ?? 0} held by the stream, ${c.num_pending} undelivered, ${c.num_ack_pending} unacknowledged, ${c.num_redelivered} redelivered, delivered to seq ${c.delivered.stream_seq}, ack floor ${c.ack_floor.stream_seq}, ${c.num_waiting} pulls waiting, leader ${c.cluster?.leader ?? '?'}`);
      }
    }
  } catch (e) {
    lines.push(`\n    mailbox consumers unreadable: ${(e as Error).message}`);
  }
  // nats-server 2.9 resets a stream replica's cluster state on some apply errors (docs/chaos.md, finding 6).
  for (const n of world.cluster.nodes) {
    const resets = n.log.split('\n').filter((l) => l.includes('Resetting stream cluster state'));
    if (resets.length > 0) lines.push(`\n    ${n.name}: ${resets.length} x ${resets[0]!.trim()}`);
  }
  lines.push(`\n    engine and sim logs: ${writeLogs(world, seed, `step${step}`)}`);
  return lines.join('');
}

/** Writes the tail of every process's log (engines, sim, nats-servers) to a file: its path. */
function writeLogs(world: ChaosWorld, seed: number, label: string): string {
  const file = join(tmpdir(), `kiln-chaos-${seed}-${label}.log`);
  writeFileSync(file, [world.sim, ...world.engines, ...world.cluster.nodes].map((p) => `==== ${'label' in p ? p.label : `nats ${p.name}`}\n${p.log}`).join('\n'));
  return file;
}
