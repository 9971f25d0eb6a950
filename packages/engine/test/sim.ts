/**
 * Drives the engine's pure reducers by hand: a mailbox per actor (FIFO per actor, actors picked
 * in a seeded random order so interleavings vary), a virtual clock for timers, and recorded
 * events. No IO: this is the "feed messages, assert states and effects" harness; the wiring to
 * NATS is proven by the integration suites.
 */
import type { ActorBehavior, Effect, MessageContext } from '@kiln/runtime';
import {
  autoscalingTypes,
  builtinTypes,
  HotTemplateAdapter,
  resourceBehavior,
  shardBehavior,
  stackBehavior,
  TypeRegistry,
  type EngineEvent,
  type FanoutHold,
  type HealConfig,
  type ResourceState,
  type ResourceType,
  type StackMsg,
  type StackState,
  type TreeConfig,
} from '../src/index.js';
import { seededRandom } from '../src/hash.js';
import type { ResendPeriods } from '../src/stack.js';

export interface SimOptions {
  seed?: string;
  tree?: TreeConfig;
  extraTypes?: ResourceType[];
  /** Task handler for `task` providers (the sim runs it synchronously-ish: result queued as a message). */
  task?: (input: unknown, key: string) => unknown;
  heal?: HealConfig;
  fanoutHold?: FanoutHold;
  /** Virtual ms a task takes (its result arrives then, like a slow cloud call); default 0. */
  taskMs?: (input: unknown) => number;
  /** Mail the stream loses: a send for which this returns true is never delivered. */
  lose?: (to: string, msg: unknown) => boolean;
  resend?: ResendPeriods;
}

export class Sim {
  readonly states = new Map<string, unknown>();
  private readonly mailboxes = new Map<string, unknown[]>();
  /** Durable timers, plus task results in flight (`raw`: delivered as is when due). */
  private timers: Array<{ addr: string; name: string; at: number; msg: unknown; raw?: boolean }> = [];
  readonly events: EngineEvent[] = [];
  now = 1_000_000;
  delivered = 0;
  private seq = 0;
  private readonly rnd: () => number;
  readonly behaviors: Map<string, ActorBehavior<unknown, unknown>>;
  readonly types: TypeRegistry;
  private readonly opts: SimOptions;

  constructor(opts: SimOptions = {}) {
    this.opts = opts;
    this.rnd = seededRandom(opts.seed ?? 'sim');
    this.types = new TypeRegistry([...builtinTypes, ...autoscalingTypes, ...(opts.extraTypes ?? [])]);
    const template = new HotTemplateAdapter();
    const bs = [
      stackBehavior({ template, types: this.types, ...(opts.tree ? { tree: opts.tree } : {}), ...(opts.heal ? { heal: opts.heal } : {}), ...(opts.fanoutHold ? { fanoutHold: opts.fanoutHold } : {}), ...(opts.resend ? { resend: opts.resend } : {}) }),
      shardBehavior(opts.tree),
      resourceBehavior({ template, types: this.types, ...(opts.heal ? { heal: opts.heal } : {}) }),
    ] as unknown as ActorBehavior<unknown, unknown>[];
    this.behaviors = new Map(bs.map((b) => [b.type, b]));
  }

  send(to: string, msg: unknown): void {
    const box = this.mailboxes.get(to) ?? [];
    box.push(msg);
    this.mailboxes.set(to, box);
  }

  setDesired(stackId: string, msg: Omit<Extract<StackMsg, { kind: 'setDesired' }>, 'kind'>): void {
    this.send(`stack/${stackId}`, { kind: 'setDesired', ...msg });
  }

  pending(): number {
    let n = 0;
    for (const b of this.mailboxes.values()) n += b.length;
    return n;
  }

  /** Delivers one message to a randomly chosen actor with mail; false when all mailboxes are empty. */
  deliverOne(): boolean {
    const addrs = [...this.mailboxes.keys()].filter((a) => this.mailboxes.get(a)!.length > 0);
    if (addrs.length === 0) return false;
    const addr = addrs[Math.floor(this.rnd() * addrs.length)]!;
    const msg = this.mailboxes.get(addr)!.shift();
    this.process(addr, msg);
    return true;
  }

  private process(addr: string, msg: unknown): void {
    const type = addr.slice(0, addr.indexOf('/'));
    const b = this.behaviors.get(type);
    if (!b) throw new Error(`no behaviour for ${addr}`);
    const state = this.states.has(addr) ? this.states.get(addr) : b.initial(addr);
    const ctx: MessageContext = { self: addr, msgId: `m${++this.seq}`, now: this.now };
    const r = b.reduce(state, msg, ctx);
    this.delivered++;
    if (r.state === null) this.states.delete(addr);
    else this.states.set(addr, r.state);
    r.effects.forEach((e, i) => this.apply(addr, e, `${ctx.msgId}:${i}`));
  }

  private apply(addr: string, e: Effect, key: string): void {
    switch (e.type) {
      case 'send':
        if (!this.opts.lose?.(e.to, e.msg)) this.send(e.to, e.msg);
        return;
      case 'emit':
        this.events.push(e.event as EngineEvent);
        return;
      case 'setTimer':
        this.timers = this.timers.filter((t) => !(t.addr === addr && t.name === e.name));
        this.timers.push({ addr, name: e.name, at: e.at, msg: e.msg });
        return;
      case 'cancelTimer':
        this.timers = this.timers.filter((t) => !(t.addr === addr && t.name === e.name));
        return;
      case 'task': {
        if (!this.opts.task) throw new Error('no task handler in this sim');
        let result: unknown;
        try {
          const value = this.opts.task(e.input, key);
          result = { kind: '$task', name: e.name, ok: true, value, idempotencyKey: key };
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'INTERNAL';
          result = { kind: '$task', name: e.name, ok: false, error: { code, message: (err as Error).message }, idempotencyKey: key };
        }
        const ms = this.opts.taskMs?.(e.input) ?? 0;
        if (ms > 0) this.timers.push({ addr, name: `$task:${key}`, at: this.now + ms, msg: result, raw: true });
        else this.send(addr, result);
        return;
      }
    }
  }

  /** Delivers up to n messages (no timers). */
  step(n: number): void {
    for (let i = 0; i < n && this.deliverOne(); i++);
  }

  /**
   * Runs until no mail is left, firing due timers (advancing the clock) as needed, up to `maxMs`
   * of virtual time. `onQuiet` runs whenever every mailbox is empty (before a timer fires): the
   * moments a reader of the stored states sees a stable picture.
   */
  run(maxMs = 24 * 3600_000, limit = 2_000_000, onQuiet?: () => void): void {
    const end = this.now + maxMs;
    for (let i = 0; i < limit; i++) {
      if (this.deliverOne()) continue;
      onQuiet?.();
      const next = this.timers.sort((a, b) => a.at - b.at)[0];
      if (!next || next.at > end) return;
      this.timers.shift();
      this.now = Math.max(this.now, next.at);
      this.send(next.addr, next.raw ? next.msg : { kind: '$timer', name: next.name, msg: next.msg });
    }
    throw new Error('sim did not quiesce');
  }

  /** Names of the durable timers armed for an actor. */
  armed(addr: string): string[] {
    return this.timers.filter((t) => t.addr === addr && !t.raw).map((t) => t.name);
  }

  stack(stackId: string): StackState {
    return this.states.get(`stack/${stackId}`) as StackState;
  }

  resource(stackId: string, name: string): ResourceState | undefined {
    return this.states.get(`res/${stackId}/${name}`) as ResourceState | undefined;
  }

  /** Live resources of a stack: name -> physical id of the current incarnation. */
  live(stackId: string): Record<string, string | null> {
    const out: Record<string, string | null> = {};
    for (const [addr, s] of this.states) {
      if (!addr.startsWith(`res/${stackId}/`)) continue;
      const r = s as ResourceState;
      if (r.current) out[addr.slice(`res/${stackId}/`.length)] = r.current.physicalId;
    }
    return out;
  }

  /** Every physical incarnation alive anywhere (current and old), for leak checks. */
  physicalCount(prefix = 'res/'): number {
    let n = 0;
    for (const [addr, s] of this.states) {
      if (!addr.startsWith(prefix)) continue;
      const r = s as ResourceState;
      n += (r.current ? 1 : 0) + r.old.length;
    }
    return n;
  }
}
