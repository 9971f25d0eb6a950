import { KilnError, createLogger, toKilnError, type Logger } from '@kiln/core';
import type { KilnClient, ScalingGroup } from './client.js';
import { sleep } from './sleep.js';
import { checkPolicy, decide, type Decision, type PolicyState, type ScalingPolicy } from './policy.js';

/** Where a runner's capacity goes: a group's desired capacity, or a stack parameter. */
export interface CapacityTarget {
  /** Human-readable, for logs. */
  readonly describe: string;
  /** Stores a new desired capacity (returns as soon as it is accepted). */
  set(capacity: number): Promise<void>;
  /** The capacity to start from when the runner is not told one. */
  current(): Promise<number>;
}

/** Members present now (not deleted), the best start when the desired capacity is not known. */
async function memberCount(group: ScalingGroup): Promise<number> {
  return (await group.health()).counts.total;
}

/** `group.capacity.set` on a scaling group. */
export function groupCapacity(group: ScalingGroup): CapacityTarget {
  return {
    describe: `${group.stack}/${group.name} capacity`,
    set: async (n) => void (await group.setCapacity(n)),
    current: () => memberCount(group),
  };
}

/**
 * A stack parameter that a group's size is bound to (`count: {get_param: size}`), changed with
 * `stack.patch`: for templates that size their groups by parameter, and for engines without
 * `group.capacity.set`.
 */
export function parameterCapacity(client: KilnClient, stack: string, parameter: string, group?: string): CapacityTarget {
  return {
    describe: `${stack} parameter ${parameter}`,
    set: async (n) => void (await client.patchStack(stack, { parameters: { [parameter]: n } })),
    current: async () => {
      if (group !== undefined) return memberCount(client.group(stack, group));
      const v = (await client.showStack(stack)).parameters?.[parameter];
      const n = typeof v === 'string' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new KilnError('REQUEST_INVALID', `stack '${stack}' has no integer parameter '${parameter}'`, { path: 'parameter' });
      return n;
    },
  };
}

export interface PolicyRunnerOptions {
  policy: ScalingPolicy;
  /** The metric the policy acts on; replace it with your own source. */
  metric: () => Promise<number>;
  target: CapacityTarget;
  /** Between two evaluations. Default 10 s. */
  intervalMs?: number;
  /** Start from this capacity instead of reading `target.current()`. */
  initialCapacity?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** Called after each evaluation (tests, metrics exporters). */
  onDecision?: (decision: Decision, sample: number | undefined) => void;
  /** The clock (ms); `Date.now` by default. */
  now?: () => number;
}

/**
 * The thin shell around `decide`: every interval it samples the metric, asks the policy, and
 * sets the desired capacity the decision names. It never waits for the group to converge — a
 * new desired capacity replaces the previous one at once. A failed metric read or capacity write
 * is logged and changes nothing (the next interval tries again, with a new request id).
 */
export class PolicyRunner {
  private st: PolicyState | undefined;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly o: PolicyRunnerOptions) {
    checkPolicy(o.policy);
    this.log = o.logger ?? createLogger('kiln-autoscaler');
    this.now = o.now ?? Date.now;
    if (o.initialCapacity !== undefined) this.st = { capacity: o.initialCapacity };
  }

  /** The policy state (capacity last set, last scale times); undefined before the first evaluation. */
  get state(): PolicyState | undefined {
    return this.st;
  }

  /** One evaluation. */
  async tick(): Promise<Decision | undefined> {
    let sample: number | undefined;
    try {
      this.st ??= { capacity: await this.o.target.current() };
      sample = await this.o.metric();
    } catch (e) {
      this.log.warn({ err: toKilnError(e).message, target: this.o.target.describe }, 'metric or capacity unavailable: no decision');
      return undefined;
    }
    const { state, decision } = decide(this.o.policy, this.st, sample, this.now());
    if (decision.action === 'set') {
      try {
        await this.o.target.set(decision.capacity);
        this.st = state;
        this.log.info({ target: this.o.target.describe, from: decision.from, capacity: decision.capacity, metric: sample, reason: decision.reason }, 'capacity set');
      } catch (e) {
        const err = toKilnError(e);
        this.log.error({ target: this.o.target.describe, capacity: decision.capacity, code: err.code, err: err.message }, 'setting capacity failed');
        this.o.onDecision?.({ action: 'none', capacity: this.st.capacity, reason: `set ${decision.capacity} failed: ${err.code}` }, sample);
        return undefined;
      }
    } else {
      this.st = state;
      this.log.debug({ target: this.o.target.describe, metric: sample, reason: decision.reason }, 'no change');
    }
    this.o.onDecision?.(decision, sample);
    return decision;
  }

  /** Evaluates every `intervalMs` until the abort signal fires. */
  async run(): Promise<void> {
    const interval = this.o.intervalMs ?? 10_000;
    const signal = this.o.signal;
    this.log.info({ target: this.o.target.describe, policy: this.o.policy.kind, intervalMs: interval }, 'autoscaler started');
    while (!signal?.aborted) {
      await this.tick();
      await sleep(interval, signal);
    }
    this.log.info({ target: this.o.target.describe }, 'autoscaler stopped');
  }
}
