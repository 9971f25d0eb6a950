/**
 * The resource actor (`res/<stackId>/<name>`): brings one logical resource to the definition of
 * the newest generation it was sent, in dependency order, and keeps it there.
 *
 * Ordering rules (docs/engine.md):
 * - create/update at generation G starts once every referenced resource has sent `ready` at >= G;
 *   their data (reference, attributes) arrives in that message, so nothing re-reads the stack.
 * - when ready at G, it sends `ready` to its dependants and `moved` to everything it referenced
 *   (now or before), so those may clean up.
 * - an old incarnation (after a replacement) or the resource itself (when removed) is deleted only
 *   after every dependant, old or new, has reported `moved` at >= G.
 * - a newer desire never interrupts a provider call: the step finishes, then re-targets. Pure
 *   waits (TestResource) and nested stacks re-target at once.
 */
import type { Draft } from 'immer';
import type { ActorBehavior, Effect, MessageContext, Reduction, TaskResult, TimerFired } from '@kiln/runtime';
import { produce, undraftEffects } from './draft.js';
import { backoffMs, fnv1a, shortId } from './hash.js';
import {
  checkProperties,
  deepEqual,
  needsReplacement,
  OUTAGE_CODES,
  REPLACE_CODES,
  TRANSIENT_CODES,
  type ActionOutcome,
  DATA_HOLDING_TYPES,
  type ActionRequest,
  type ChildSpec,
  type ObservedResult,
  type ProviderError,
  type ResourceType,
  type TypeRegistry,
} from './provider.js';
import type { DepView, TemplateAdapter } from './spec.js';
import { DEFAULT_HEAL, nextObserveAt, observeInterval, type HealConfig } from './heal.js';
import type { AttributesRead, DepData, EngineEvent, EventsRoot, HeatAction, HeatStatus, MemberReport, ResourceDef, ResourceFacade, ResourceMsg, StackMsg } from './types.js';
import { DEFAULT_TENANT, eventSubjectTail } from './subjects.js';

export const RESOURCE_ACTOR = 'res';
export const MAX_TRANSIENT_ATTEMPTS = 6;

export function resourceAddress(stackId: string, name: string): string {
  return `${RESOURCE_ACTOR}/${stackId}/${name}`;
}

/** One physical incarnation of the logical resource. */
export interface Incarnation {
  readonly n: number;
  readonly type: string;
  readonly physicalId: string | null;
  readonly props: Record<string, unknown>;
  readonly attrs: Record<string, unknown>;
  /** Generation whose definition this incarnation matches. */
  readonly gen: number;
  /** The last action on it failed (Heat replaces failed resources on the next update). */
  readonly failed: boolean;
  readonly retain: boolean;
  /** Child stack id, for nested types. */
  readonly child?: string;
  /**
   * A digest of the nested template it was last sent (template resources; `nestedDigest`): only
   * compared, so the record does not hold the template a second time beside `def`. Records
   * written before hold the template itself, which differs from any digest (one re-send).
   */
  readonly nested?: unknown;
  /** Observed at least once (the first observation waits longer, see HealConfig.firstObserveFactor). */
  readonly observed?: boolean;
  /** Whether its child was asked to collect member data (groups). */
  readonly attributesRead?: boolean;
  /** Nested: an update was re-targeted, so the child's desire differs from `props`. */
  readonly resend?: boolean;
  /** Nested: the group capacity overrides its child was last sent. */
  readonly overrides?: Readonly<Record<string, number>> | null;
  /** Nested: the resource_facade its child was last sent (absent in records written before it was kept). */
  readonly facade?: ResourceFacade;
  /**
   * Nested: the READY child stack is repairing drift (it said CONVERGING); the resource is not
   * settled until the child says READY again (or a new action on it completes).
   */
  readonly childRepairing?: boolean;
  /**
   * A task create that failed: the object may exist (its type finds it by the idempotency key),
   * but no one ever got its data, so no dependant references it and its delete waits for nobody.
   */
  readonly createFailed?: boolean;
}

export interface Op {
  readonly id: string;
  readonly action: 'create' | 'update' | 'delete' | 'observe';
  /** create: the new incarnation number; update/delete/observe: the incarnation acted on. */
  readonly inc: number;
  readonly gen: number;
  readonly props: Record<string, unknown>;
  readonly kind: 'pure' | 'task' | 'nested';
  /** create/update: the resource type it acts as (the definition may be gone when it completes). */
  readonly type?: string;
  /** Pure ops waiting on a timer (re-targetable) or on dependency data (wait conditions). */
  readonly waiting?: 'timer' | 'deps';
  /** Outcome to apply when the wait ends. */
  readonly outcome?: ActionOutcome;
}

export interface ResourceState {
  readonly tenant: string;
  readonly stackId: string;
  readonly stackName: string;
  readonly name: string;
  readonly parent: string | null;
  readonly slot: number;
  /** Desired generation (0 = no desire received yet). */
  readonly gen: number;
  /** Desired definition; null = must not exist. */
  readonly def: ResourceDef | null;
  readonly collect: boolean;
  readonly requires: readonly string[];
  readonly dependants: readonly string[];
  /** Former dependants that have not yet reported moving past them. */
  readonly formerDependants: readonly string[];
  /** Resources owed a `moved` message (current and former requirements). */
  readonly notify: readonly string[];
  /** Generation at which each dependant last reported `moved`. */
  readonly moved: Readonly<Record<string, number>>;
  readonly deps: Readonly<Record<string, DepData>>;
  readonly current: Incarnation | null;
  readonly old: readonly Incarnation[];
  readonly nextInc: number;
  readonly op: Op | null;
  readonly attempt: number;
  readonly retryAt: number | null;
  /** Generation at which `ready` was last sent. */
  readonly readyGen: number;
  /** The last report sent (a failure with its reason, so that it can be sent again as it was). */
  readonly reported: {
    readonly gen: number;
    readonly state: MemberReport['state'];
    readonly reason?: string;
    readonly replaceable?: boolean;
    /** Settled again after a repair: the next healthy observe sends it once more (see confirmRepaired). */
    readonly confirm?: boolean;
  } | null;
  readonly action: HeatAction;
  readonly status: HeatStatus;
  readonly reason: string;
  /** Generation a permanent failure happened at (no retry until a newer generation). */
  readonly failedGen: number;
  /** The stack was abandoned: removal forgets the physical resources instead of deleting them. */
  readonly forget: boolean;
  /** In a nested stack: where this resource's events go. */
  readonly eventsRoot: EventsRoot | null;
  /** Heal: when the armed `observe` timer fires (null = not armed). */
  readonly observeAt: number | null;
  /** Heal: a repair decided, waiting for (or holding) the supervisor's permit. */
  readonly repair: Repair | null;
  /** Heal: a check (a change notification) came while busy: observe as soon as settled again. */
  readonly recheck?: boolean;
  /** Group rollout: this generation's create/change waits for `go` (its batch). */
  readonly rolling?: boolean;
  readonly go?: boolean;
}

/** What heal decided for the current incarnation. */
export interface Repair {
  /** The supervisor granted the permit: start at the next decision. */
  readonly granted: boolean;
  /** recreate: gone; replace: broken (or marked unhealthy); update: drifted properties set back. */
  readonly kind: 'recreate' | 'replace' | 'update';
  readonly inc: number;
  readonly reason: string;
}

export interface ResourceDeps {
  readonly types: TypeRegistry;
  readonly template: TemplateAdapter;
  readonly heal?: HealConfig;
}

type Msg = ResourceMsg | TaskResult | TimerFired;

export function initialResourceState(self: string): ResourceState {
  const [, stackId = '', ...rest] = self.split('/');
  return {
    tenant: DEFAULT_TENANT,
    stackId,
    stackName: '',
    name: rest.join('/'),
    parent: null,
    slot: 0,
    gen: 0,
    def: null,
    collect: false,
    requires: [],
    dependants: [],
    formerDependants: [],
    notify: [],
    moved: {},
    deps: {},
    current: null,
    old: [],
    nextInc: 0,
    op: null,
    attempt: 0,
    retryAt: null,
    readyGen: 0,
    reported: null,
    action: 'INIT',
    status: 'COMPLETE',
    reason: '',
    failedGen: 0,
    forget: false,
    eventsRoot: null,
    observeAt: null,
    repair: null,
  };
}

/** Child stack id of a nested resource's incarnation. */
export function childStackId(stackId: string, name: string, inc: number): string {
  return `${stackId}-${name}-${inc}`;
}

const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];

/** The `$outputs` pseudo-dependant: the stack supervisor wants this resource's data for outputs. */
export const OUTPUTS_DEPENDANT = '$outputs';

export function resourceBehavior(deps: ResourceDeps): ActorBehavior<ResourceState, ResourceMsg> {
  return {
    type: RESOURCE_ACTOR,
    initial: initialResourceState,
    reduce: (state, msg, ctx) => reduceResource(deps, state, msg as Msg, ctx),
  };
}

export function reduceResource(deps: ResourceDeps, state: ResourceState, msg: Msg, ctx: MessageContext): Reduction<ResourceState> {
  const effects: Effect[] = [];
  let finished = false;
  const next = produce(state, (d) => {
    const r = new Step(deps, d, ctx, effects);
    r.receive(msg);
    r.advance();
    r.flushProgress();
    finished = r.finished;
    undraftEffects(effects);
  });
  // A deleted resource keeps no state.
  return { state: finished ? null : next, effects };
}

/** One reduction: mutates the immer draft and collects effects. */
class Step {
  finished = false;
  /**
   * The step handles an asynchronous completion (a task result, a child stack's answer, a timer):
   * its `ready`, `moved` and first `report` are express sends, overtaking the fan-out queued in
   * the receivers' partitions. Sends of a step that handles a desire (a pure resource done at
   * once) are part of the fan-out itself and gain nothing by it (early delivery costs the runtime
   * work: 10K-wide creates were ~20 % slower with them express).
   */
  private express = false;

  constructor(
    private readonly deps: ResourceDeps,
    private readonly d: Draft<ResourceState>,
    private readonly ctx: MessageContext,
    private readonly effects: Effect[],
  ) {}

  receive(msg: Msg): void {
    const d = this.d;
    this.express = msg.kind === '$task' || msg.kind === 'child' || msg.kind === '$timer';
    // A late message to an actor that holds nothing (deleted, or never made) leaves no record: a
    // change notification, a batch's `go` over a removed member, a stray permit or timer. Only
    // `ready`/`moved` may legitimately come before the first desire (their data is kept).
    if (msg.kind !== 'desire' && msg.kind !== 'ready' && msg.kind !== 'moved' && this.holdsNothing()) {
      // Asked whether it moved past the asker: an actor holding nothing (deleted, its `moved`
      // lost; or not made yet) references nothing of it.
      if (msg.kind === 'askMoved') this.sendMovedTo(msg.from, msg.gen, true);
      this.finished = true;
      return;
    }
    switch (msg.kind) {
      case 'desire': {
        if (msg.gen < d.gen) return;
        const prevDependants = d.dependants;
        d.tenant = msg.tenant;
        d.eventsRoot = (msg.eventsRoot ?? null) as Draft<EventsRoot> | null;
        d.stackId = msg.stackId;
        d.stackName = msg.stackName;
        d.parent = msg.parent;
        d.slot = msg.slot;
        d.collect = !!msg.collect;
        if (msg.gen === d.gen) return this.desiredAgain();
        d.formerDependants = union(d.formerDependants, prevDependants).filter((x) => !msg.dependants.includes(x));
        d.notify = union(union(d.notify, d.requires), msg.requires);
        d.gen = msg.gen;
        d.def = msg.def as Draft<ResourceDef> | null;
        d.requires = [...msg.requires];
        d.dependants = [...msg.dependants];
        d.failedGen = 0;
        d.attempt = 0;
        d.forget = !!msg.forget;
        d.rolling = !!msg.rolling;
        d.go = false;
        if (d.retryAt !== null) {
          d.retryAt = null;
          this.effects.push({ type: 'cancelTimer', name: 'retry' });
        }
        this.retarget();
        return;
      }
      case 'go': {
        if (msg.gen === d.gen) d.go = true;
        return;
      }
      case 'ready': {
        const have = d.deps[msg.from];
        if (have && have.gen > msg.data.gen) return;
        // New data may be what the failed attempt lacked (an attachment's server, recreated under a
        // new id): the pending retry runs now instead of after its backoff.
        const changed = d.retryAt !== null && (!have || have.ref !== msg.data.ref || have.type !== msg.data.type || !deepEqual(have.attrs, msg.data.attrs));
        d.deps[msg.from] = msg.data as Draft<DepData>;
        if (d.op?.waiting === 'deps') this.rerunWaitingOp();
        else if (changed) {
          d.retryAt = null;
          this.effects.push({ type: 'cancelTimer', name: 'retry' });
        }
        return;
      }
      case 'askReady': {
        // A dependant desired again still lacks this generation's `ready` (lost): sent again to it only.
        if (d.current && d.readyGen >= msg.gen) this.sendReady(d.readyGen, false, msg.from);
        return;
      }
      case 'askMoved': {
        // Ready at >= gen: it moved past the asker's older incarnations then (its `moved` was lost).
        if (d.readyGen >= msg.gen) this.sendMovedTo(msg.from, d.readyGen, false);
        return;
      }
      case 'moved': {
        if ((d.moved[msg.from] ?? 0) < msg.gen) d.moved[msg.from] = msg.gen;
        if (msg.gen >= d.gen && d.formerDependants.includes(msg.from)) d.formerDependants = d.formerDependants.filter((x) => x !== msg.from);
        return;
      }
      case 'signal': {
        const type = d.current ? this.deps.types.get(d.current.type) : undefined;
        if (!d.current || !type || type.kind !== 'pure' || !type.signal) return;
        d.current.attrs = type.signal(d.current.attrs, msg.data, this.ctx.msgId) as Draft<Record<string, unknown>>;
        this.event(d.action, d.status, 'Signal received');
        // Dependants (a wait condition) see the signal as fresh data at the same generation.
        if (d.readyGen > 0) this.sendReady(d.readyGen);
        return;
      }
      case 'unhealthy': {
        const cur = d.current;
        if (!cur || d.def === null) return;
        // The same path as a repair found by observing: replace, once the stack grants a permit.
        this.requestRepair({ kind: 'replace', inc: cur.n, reason: `Marked unhealthy${msg.reason ? `: ${msg.reason}` : ''}` });
        return;
      }
      case 'check': {
        // A change of an incarnation being replaced or deleted is this resource's own doing.
        if (msg.inc !== undefined && d.current?.n !== msg.inc) return;
        if (!this.observable()) {
          // Busy (an observation or action in flight): look once more when settled, so a change
          // that raced an observation is not missed until the next poll.
          if (d.current && d.def !== null && !d.repair) d.recheck = true;
          return;
        }
        this.startObserve();
        return;
      }
      case 'permit': {
        if (d.repair) d.repair = { ...d.repair, granted: true };
        return;
      }
      case 'child': {
        const op = d.op;
        if (!op || op.id !== msg.token) return this.childChanged(msg);
        if (msg.state === 'FAILED') return this.fail({ code: 'RESOURCE_FAILED', message: msg.reason ?? 'Nested stack failed', transient: false }, !!msg.replaceable);
        if (op.action === 'delete' ? msg.state !== 'GONE' : msg.state !== 'READY') return;
        const type = this.deps.types.get(this.typeNameOf(op));
        const attrs = type && type.kind === 'nested' ? type.attrsFromOutputs(msg.outputs) : {};
        return this.complete({ ok: true, physicalId: childStackId(d.stackId, d.name, op.inc), attrs });
      }
      case '$task': {
        const op = d.op;
        if (!op || msg.name !== `op:${op.id}`) return;
        if (op.action === 'observe') return this.observed(op, msg);
        if (msg.ok) {
          const v = (msg.value ?? {}) as { physicalId?: string | null; attrs?: Record<string, unknown> };
          return this.complete({ ok: true, physicalId: v.physicalId ?? null, attrs: v.attrs ?? {} });
        }
        return this.fail({
          code: msg.error.code,
          message: msg.error.message,
          transient: TRANSIENT_CODES.has(msg.error.code),
          ...(msg.error.retryAfterMs !== undefined ? { retryAfterMs: msg.error.retryAfterMs } : {}),
        });
      }
      case '$timer': {
        const m = (msg.msg ?? {}) as { op?: string };
        if (msg.name === 'retry') {
          d.retryAt = null;
          return;
        }
        if (msg.name === 'observe') {
          d.observeAt = null;
          if (this.observable()) this.startObserve();
          return;
        }
        if (msg.name === 'permit') {
          if (d.repair && !d.repair.granted) this.askPermit((msg.msg as { againMs?: number } | undefined)?.againMs ?? PERMIT_ASK_MS);
          return;
        }
        const op = d.op;
        if (!op || m.op !== op.id) return;
        if (msg.name === 'op' && op.outcome) {
          const outcome = op.outcome as ActionOutcome;
          if (outcome.ok) return this.complete({ ...outcome, waitMs: 0 });
          return this.fail(outcome.error);
        }
        if (msg.name === 'deadline') return this.fail({ code: 'TIMEOUT', message: `${d.name}: wait timed out`, transient: false });
        return;
      }
    }
  }

  /**
   * The shard desired this generation again: it has not heard this resource reach it (the desire
   * or the report may have been lost by the mailbox stream). The report goes again when one was
   * sent at this generation, and a nested step in flight sends its child stack's desire again
   * (the child recognises the repeat by the step's token); nothing is redone, no event is
   * published. Work in progress otherwise ignores the repeat.
   */
  private desiredAgain(): void {
    const d = this.d;
    const r = d.reported;
    if (r && r.gen === d.gen) return this.report(r.state, r.reason, !!r.replaceable, true);
    const op = d.op;
    // An observation runs while old incarnations wait for their dependants to move.
    if (!op || op.action === 'observe') return this.askWaitedFor();
    // An op waiting for fresh data at this generation (a wait condition counting its handle's
    // signals): a signal's `ready` may have been lost, and nothing else would send it again.
    if (op.waiting === 'deps') return this.askWaitedFor(true);
    if (op.kind !== 'nested') return;
    const type = this.deps.types.get(this.typeNameOf(op));
    if (type?.kind === 'nested') this.run(type, op as Op);
  }

  /**
   * Desired again while waiting on other resources: their `ready` (dependencies) or `moved`
   * (dependants, before an old incarnation or the resource itself is deleted) may have been
   * lost, and they, having reached the generation, get no repeat of their own. Each one waited
   * for is asked once per repeat; the shard's repeat cadence drives it, no timer of its own.
   * `freshData`: every dependency is asked, also those whose `ready` at this generation came.
   */
  private askWaitedFor(freshData = false): void {
    const d = this.d;
    const G = d.gen;
    if (d.retryAt !== null || d.failedGen === G) return;
    const ask = (kind: 'askReady' | 'askMoved', to: string) => {
      const m: ResourceMsg = { kind, from: d.name, gen: G };
      this.effects.push({ type: 'send', to: resourceAddress(d.stackId, to), msg: m });
    };
    if (d.def !== null && (d.readyGen < G || !d.current || d.current.gen < G)) {
      for (const x of d.requires) if (freshData || (d.deps[x]?.gen ?? 0) < G) ask('askReady', x);
      return;
    }
    if (d.def !== null && d.old.length === 0) return;
    // The supervisor's `$outputs` never moves (it holds no incarnation of anything).
    for (const x of union(d.dependants, d.formerDependants)) if (x !== OUTPUTS_DEPENDANT && (d.moved[x] ?? 0) < G) ask('askMoved', x);
  }

  /** Never desired and nothing received worth keeping: the state of a deleted (or never made) actor. */
  private holdsNothing(): boolean {
    const d = this.d;
    return d.gen === 0 && !d.current && d.old.length === 0 && Object.keys(d.deps).length === 0 && Object.keys(d.moved).length === 0;
  }

  /** The Heat action of this resource's removal. */
  private get removal(): HeatAction {
    return this.d.forget ? 'ABANDON' : 'DELETE';
  }

  private typeNameOf(op: Op): string {
    const d = this.d;
    if (op.action === 'create') return d.def?.type ?? d.current?.type ?? '';
    const inc = d.current?.n === op.inc ? d.current : d.old.find((o) => o.n === op.inc);
    return inc?.type ?? '';
  }

  /** A newer generation arrived while a step is in flight. */
  private retarget(): void {
    const op = this.d.op;
    if (!op) return;
    if (op.kind === 'pure' && op.waiting && op.action !== 'delete') {
      // The provider already acted; only its wait is outstanding: settle it now so the new
      // generation proceeds (a failing one is abandoned: nothing was made).
      this.effects.push({ type: 'cancelTimer', name: op.waiting === 'timer' ? 'op' : 'deadline' });
      const outcome = op.outcome as ActionOutcome | undefined;
      if (outcome?.ok) this.complete({ ...outcome, waitMs: 0 });
      else this.d.op = null;
    }
    // Nested: the child stack takes the new desire when advance() re-sends it (newest wins), for
    // the same child (same incarnation number). Task ops finish first.
    if (op.kind === 'nested' && op.action !== 'delete') {
      this.d.op = null;
      if (op.action === 'create') this.d.nextInc = op.inc;
      // The child was told something newer than the incarnation's properties: always tell it the
      // next desire, even one equal to those properties (a group sized 3 -> 1 -> 3 quickly).
      const cur = this.d.current;
      if (op.action === 'update' && cur?.n === op.inc) this.d.current = { ...cur, resend: true };
    }
  }

  private rerunWaitingOp(): void {
    const op = this.d.op!;
    const type = this.deps.types.get(this.typeNameOf(op));
    if (!type || type.kind !== 'pure') return;
    const req = this.request(op.action, op.inc, op.props);
    const outcome = op.action === 'create' ? type.create(req) : type.update(req);
    if (outcome.ok && outcome.awaitDeps) return;
    this.effects.push({ type: 'cancelTimer', name: 'deadline' });
    if (outcome.ok) this.complete(outcome);
    else this.fail(outcome.error);
  }

  private request(action: Op['action'], inc: number, props: Record<string, unknown>): ActionRequest {
    const d = this.d;
    const target = action === 'create' ? null : d.current?.n === inc ? d.current : d.old.find((o) => o.n === inc) ?? null;
    return {
      stackId: d.stackId,
      stackName: d.stackName,
      name: d.name,
      physicalName: `${d.stackName}-${d.name}-${shortId(`${this.ctx.self}#${inc}`)}`,
      idempotencyKey: `${this.ctx.self}#${inc}`,
      properties: props,
      ...(target ? { oldProperties: target.props, physicalId: target.physicalId, attrs: target.attrs } : {}),
      deps: d.deps as Record<string, DepData>,
      attributesRead: !!d.def?.attributesRead,
      ...(d.def?.groupMember ? { groupMember: d.def.groupMember as ResourceDef['groupMember'] } : {}),
      now: this.ctx.now,
    };
  }

  /** Decides and starts the next steps towards the desired generation (pure steps may complete at once). */
  advance(): void {
    for (let i = 0; i < 16 && this.advanceOnce(); i++);
  }

  /** One decision; true when it started a step that already completed (decide again). */
  private advanceOnce(): boolean {
    const d = this.d;
    if (d.gen === 0 || d.op || d.retryAt !== null || d.failedGen === d.gen || this.finished) return false;
    const G = d.gen;
    const def = d.def;
    if (def === null) {
      d.repair = null;
      if (d.observeAt !== null) {
        d.observeAt = null;
        this.effects.push({ type: 'cancelTimer', name: 'observe' });
      }
      const orphan = d.old.find((o) => o.createFailed);
      if (orphan) return this.startDelete(orphan);
      if (!this.dependantsMoved(G)) return false;
      const victim = d.old[0] ?? d.current;
      if (victim) return this.startDelete(victim);
      this.sendMoved(G, true);
      this.report('gone');
      if (d.action !== 'INIT') this.setStatus(this.removal, 'COMPLETE', 'state changed');
      this.finished = true;
      return false;
    }
    if (d.repair?.granted) return this.applyRepair();
    if (d.readyGen < G || !d.current || d.current.gen < G) {
      for (const r of d.requires) if ((d.deps[r]?.gen ?? 0) < G) return false;
      const type = this.deps.types.get(def.type);
      if (!type) return this.permanentStop(`The Resource Type (${def.type}) could not be found.`);
      const resolved = this.resolveProps(def);
      if (!resolved.ok) return this.permanentStop(resolved.message);
      const checked = checkProperties(type, resolved.value);
      if (!checked.ok) return this.permanentStop(`Property error: resources.${d.name}.properties.${checked.path}: ${checked.message}`);
      const props = checked.value;
      const cur = d.current;
      // A group rolling out this generation: a member acts only in its batch (a broken
      // incarnation is replaced regardless: that is a repair, not the rollout).
      const waitsForBatch = !!d.rolling && !d.go && !cur?.failed;
      if (!cur) return waitsForBatch ? false : this.startAction('create', type, d.nextInc, props);
      const sameKind = cur.type === def.type || this.substitutable(cur.type, def.type);
      if (cur.failed || !sameKind || needsReplacement(type, cur.props, props)) return waitsForBatch ? false : this.startAction('create', type, d.nextInc, props);
      // Nested stacks are re-sent their desire when their template may have changed (Heat's
      // StackResource always updates); other types only when properties or the type changed.
      const nestedChanged =
        type.kind === 'nested' &&
        (!!cur.resend ||
          (cur.nested ?? null) !== nestedDigest(def.nestedTemplate) ||
          !!cur.attributesRead !== !!def.attributesRead ||
          !deepEqual(cur.overrides ?? null, def.childOverrides ?? null) ||
          (cur.facade !== undefined && !deepEqual(cur.facade, this.childFacade(def))));
      if (nestedChanged || cur.type !== def.type || !deepEqual(cur.props, props)) return waitsForBatch ? false : this.startAction('update', type, cur.n, props);
      d.current = { ...cur, gen: G, type: def.type };
      this.becomeReady(G);
    }
    if (d.old.length > 0) {
      // A failed create is referenced by no one: deleted at once. The others wait for every
      // dependant to move past them; meanwhile the current incarnation is watched (were it to
      // vanish unseen, a dependant waiting on it would never move: a deadlock).
      const orphan = d.old.find((o) => o.createFailed);
      if (orphan) return this.startDelete(orphan);
      if (!this.dependantsMoved(G)) {
        this.armObserve();
        return false;
      }
      return this.startDelete(d.old[0]!);
    }
    if (d.repair || d.current?.childRepairing) {
      this.report('repairing');
      return false;
    }
    if (d.status === 'FAILED') this.setStatus(d.action, 'COMPLETE', 'state changed');
    this.report('settled');
    this.armObserve();
    return false;
  }

  // ---- heal -------------------------------------------------------------------------------

  private get heal(): HealConfig {
    return this.deps.heal ?? DEFAULT_HEAL;
  }

  /** Whether the resource is settled on a healthy incarnation of a type that can be observed. */
  private observable(): boolean {
    const d = this.d;
    const cur = d.current;
    if (!cur || cur.failed || d.def === null || d.op || d.retryAt !== null || d.repair || d.failedGen === d.gen) return false;
    if (d.gen === 0 || d.readyGen < d.gen || cur.gen < d.gen) return false;
    const type = this.deps.types.get(cur.type);
    return type?.kind === 'task' && !!type.observe;
  }

  /** Arms the jittered observe timer (once; it re-arms after each observation settles), or observes now when a check is owed. */
  private armObserve(): void {
    const d = this.d;
    if (!this.observable()) return;
    if (d.recheck) return this.startObserve();
    if (d.observeAt !== null) return;
    const interval = observeInterval(this.heal, d.current!.type);
    if (interval <= 0) return;
    const factor = d.current!.observed ? 1 : (this.heal.firstObserveFactor ?? 1);
    d.observeAt = nextObserveAt(this.ctx.now, interval * factor, this.ctx.msgId);
    this.effects.push({ type: 'setTimer', name: 'observe', at: d.observeAt });
  }

  private startObserve(): void {
    const d = this.d;
    const cur = d.current!;
    if (d.observeAt !== null) this.effects.push({ type: 'cancelTimer', name: 'observe' });
    d.observeAt = null;
    d.recheck = false;
    const op: Op = { id: `${d.gen}.${cur.n}.observe.${this.ctx.msgId}`, action: 'observe', inc: cur.n, gen: d.gen, props: cur.props, kind: 'task' };
    d.op = op as Draft<Op>;
    const req = this.request('observe', cur.n, cur.props);
    this.effects.push({ type: 'task', name: `op:${op.id}`, task: 'provider', input: { type: cur.type, action: 'observe', request: req } });
  }

  /** Decides the repair from what observe found. A failed observation just looks again later. */
  private observed(op: Op, msg: TaskResult): void {
    const d = this.d;
    d.op = null;
    const cur = d.current;
    if (!msg.ok || !cur || cur.n !== op.inc || d.def === null) return;
    cur.observed = true;
    const found = (msg.value ?? null) as ObservedResult | null;
    if (found === null) return this.requestRepair({ kind: 'recreate', inc: cur.n, reason: 'The physical resource is gone: recreating it' });
    const h = found.health;
    if (!h || h.state === 'ok' || h.state === 'pending' || h.repair === 'none') return this.confirmRepaired();
    const why = h.reason ?? h.state;
    if (h.repair === 'replace') {
      if (DATA_HOLDING_TYPES.has(cur.type) && !this.isGroupMember()) {
        // No right action: a new empty volume is not this one. A newer generation replaces it.
        d.current = { ...cur, failed: true };
        this.permanent(`${why}: no right action exists (replacing ${cur.type} ${cur.physicalId ?? ''} would lose its data)`, 'CHECK');
        return;
      }
      return this.requestRepair({ kind: 'replace', inc: cur.n, reason: `${why}: replacing it` });
    }
    this.requestRepair({ kind: 'update', inc: cur.n, reason: `Drifted${h.drifted?.length ? ` (${h.drifted.join(', ')})` : ''}: setting it back` });
  }

  /**
   * The report that a repair after READY ended goes once more at the next healthy observe: if the
   * mailbox stream lost it, the shard would wait for it forever, and a named shard cannot ask its
   * members again (it keeps no names; the supervisor's repeat to it is a probe).
   */
  private confirmRepaired(): void {
    const r = this.d.reported;
    if (r?.confirm && r.gen === this.d.gen) this.report('settled', undefined, false, true);
  }

  /** Group members are disposable: the group replaces whatever breaks. */
  private isGroupMember(): boolean {
    const d = this.d;
    return !!d.parent && d.parent.startsWith(`shard/${d.stackId}/g`);
  }

  /** A repair is decided: the stack shows converging, and the supervisor's permit starts it. */
  private requestRepair(r: Omit<Repair, 'granted'>): void {
    const d = this.d;
    if (d.repair) return;
    d.recheck = false;
    d.repair = { ...r, granted: false } as Draft<Repair>;
    this.setStatus('CHECK', 'FAILED', r.reason);
    this.report('repairing');
    this.askPermit(PERMIT_ASK_MS);
  }

  /**
   * Asks the supervisor for a repair permit, and again after `againMs` (doubling to 30 min) while
   * none came: the request or the permit may have been lost by the mailbox stream; the supervisor
   * queues a repeat once, or grants again when its permit went missing. Not sooner: a mass repair
   * queued at 5/s waits long, and each ask costs the supervisor a step.
   */
  private askPermit(againMs: number): void {
    const m: StackMsg = { kind: 'repairPermit', from: this.d.name };
    this.effects.push({ type: 'send', to: `stack/${this.d.stackId}`, msg: m });
    this.effects.push({ type: 'setTimer', name: 'permit', at: this.ctx.now + againMs, msg: { againMs: Math.min(PERMIT_ASK_MAX_MS, againMs * 2) } });
  }

  /** Starts a granted repair; true when the next decision should follow at once. */
  private applyRepair(): boolean {
    const d = this.d;
    const r = d.repair!;
    d.repair = null;
    this.effects.push({ type: 'cancelTimer', name: 'permit' });
    const cur = d.current;
    // Moot: a newer generation replaced the incarnation meanwhile.
    if (!cur || cur.n !== r.inc || cur.failed) return true;
    // An action completed since the repair was announced: announce it again, so that its
    // IN_PROGRESS does not follow that COMPLETE as if the action had not been done.
    if (d.action !== 'CHECK') this.setStatus('CHECK', 'FAILED', r.reason);
    if (r.kind === 'update') {
      const type = this.deps.types.get(cur.type);
      if (!type) return true;
      return this.startAction('update', type, cur.n, cur.props);
    }
    // Replace: the incarnation is failed and matches no generation, so the next decision (now)
    // creates a new one; dependants get its data at the same generation, then the old one goes.
    d.current = { ...cur, failed: true, gen: 0 };
    d.readyGen = Math.min(d.readyGen, d.gen - 1);
    d.failedGen = 0;
    d.attempt = 0;
    return true;
  }

  /** A READY child stack (nested resource, group) repairing or done repairing. */
  private childChanged(msg: Extract<ResourceMsg, { kind: 'child' }>): void {
    const d = this.d;
    const cur = d.current;
    if (d.op || !cur?.child || Number(msg.token.split('.')[1]) !== cur.n || d.def === null || d.readyGen < d.gen || d.failedGen === d.gen || d.repair) return;
    if (msg.state === 'CONVERGING') {
      d.current = { ...cur, childRepairing: true } as Draft<Incarnation>;
      return this.report('repairing');
    }
    if (cur.childRepairing) d.current = { ...cur, childRepairing: false } as Draft<Incarnation>;
    if (msg.state === 'FAILED') {
      if (this.isGroupMember()) return this.requestRepair({ kind: 'replace', inc: cur.n, reason: `${msg.reason ?? 'Nested stack failed'}: replacing the member` });
      return this.permanent(msg.reason ?? 'Nested stack failed', 'CHECK');
    }
    if (msg.state !== 'READY') return;
    const type = this.deps.types.get(cur.type);
    const attrs = type && type.kind === 'nested' ? type.attrsFromOutputs(msg.outputs) : {};
    if (!deepEqual(attrs, cur.attrs)) {
      // A replaced member changes the group's refs: dependants see them at the same generation.
      d.current = { ...d.current!, attrs } as Draft<Incarnation>;
      this.sendReady(d.readyGen);
    }
    if (d.status === 'FAILED') this.setStatus(d.action, 'COMPLETE', 'state changed');
    if (d.old.length === 0) this.report('settled');
  }

  /** Type changes between Heat-substitutable types do not replace (an alias of the same implementation). */
  private substitutable(from: string, to: string): boolean {
    const a = this.deps.types.get(from);
    const b = this.deps.types.get(to);
    return !!a && a === b;
  }

  /** Resolves the definition's properties (or another of its expressions) against the dependencies' data. */
  private resolveProps(def: ResourceDef, expr: unknown = def.properties): { ok: true; value: unknown } | { ok: false; message: string } {
    if (!def.scope) return { ok: true, value: expr };
    const d = this.d;
    const depsData = d.deps;
    const types = this.deps.types;
    const view: DepView = {
      has: (n) => d.requires.includes(n) || n in depsData,
      ref: (n) => {
        const x = depsData[n];
        if (!x) return undefined;
        return x.ref;
      },
      attr: (n, a, path) => {
        const x = depsData[n];
        if (!x) return undefined;
        const t = types.get(x.type);
        if (t?.attribute) return t.attribute(x.attrs as Record<string, unknown>, a, path);
        let v: unknown = (x.attrs as Record<string, unknown>)[a];
        for (const p of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(p)] : undefined;
        return v ?? null;
      },
      allAttrs: (n) => depsData[n]?.attrs as Record<string, unknown> | undefined,
    };
    try {
      const r = this.deps.template.resolve(expr, { ...def.scope, stackId: d.stackId, stackName: d.stackName }, view);
      if ('pending' in r) return { ok: false, message: `Unresolved reference ${r.pending}` };
      return { ok: true, value: r.value };
    } catch (e) {
      return { ok: false, message: e instanceof Error ? e.message : String(e) };
    }
  }

  private dependantsMoved(G: number): boolean {
    const d = this.d;
    for (const x of d.dependants) if (x !== OUTPUTS_DEPENDANT && (d.moved[x] ?? 0) < G) return false;
    for (const x of d.formerDependants) if (x !== OUTPUTS_DEPENDANT && (d.moved[x] ?? 0) < G) return false;
    return true;
  }

  private startAction(action: 'create' | 'update', type: ResourceType, inc: number, props: Record<string, unknown>): boolean {
    const d = this.d;
    const heatAction: HeatAction = action === 'create' && !d.current ? 'CREATE' : 'UPDATE';
    const op: Op = { id: `${d.gen}.${inc}.${action}.${this.ctx.msgId}`, action, inc, gen: d.gen, props, kind: type.kind, type: d.def?.type ?? type.name };
    if (action === 'create') d.nextInc = inc + 1;
    d.op = op as Draft<Op>;
    const adopt = action === 'create' && !d.current ? d.def?.adopt : undefined;
    if (adopt) {
      // stack.adopt: the physical resource exists already; take it over instead of creating it.
      this.setStatus('ADOPT', 'IN_PROGRESS', 'adopting');
      this.complete({ ok: true, physicalId: adopt.physicalId, attrs: adopt.attrs as Record<string, unknown> });
      return true;
    }
    this.setStatus(heatAction, 'IN_PROGRESS', action === 'create' && d.current ? 'replacing' : 'state changed');
    this.run(type, op);
    return d.op === null;
  }

  private startDelete(victim: Incarnation): boolean {
    const d = this.d;
    const type = this.deps.types.get(victim.type);
    const op: Op = { id: `${d.gen}.${victim.n}.delete.${this.ctx.msgId}`, action: 'delete', inc: victim.n, gen: d.gen, props: victim.props, kind: type?.kind ?? 'pure' };
    d.op = op as Draft<Op>;
    if (d.def === null || victim === d.current) this.setStatus(this.removal, 'IN_PROGRESS', 'state changed');
    // Retained (deletion_policy: Retain), abandoned and never-made pure incarnations are forgotten,
    // not deleted; an abandoned nested stack forgets its own resources the same way. A task
    // incarnation without a physical id is deleted all the same: its create may have happened
    // (the type finds it by the idempotency key).
    // An old incarnation naming the same physical object as the current one (an attachment's
    // `<server>:<volume>` re-made by a repair) is forgotten too: deleting it would undo the current.
    const shared = victim !== d.current && victim.physicalId !== null && victim.physicalId === d.current?.physicalId;
    const forgotten = !type || victim.retain || shared || (d.forget && type.kind !== 'nested') || (victim.physicalId === null && type.kind === 'pure');
    if (forgotten) this.complete({ ok: true, physicalId: null, attrs: {} });
    else this.run(type, op);
    return d.op === null;
  }

  private run(type: ResourceType, op: Op): void {
    const req = this.request(op.action, op.inc, op.props);
    if (type.kind === 'pure') {
      const outcome = op.action === 'create' ? type.create(req) : op.action === 'update' ? type.update(req) : type.delete(req);
      if (outcome.ok && outcome.awaitDeps) {
        this.d.op = { ...op, waiting: 'deps' } as Draft<Op>;
        this.effects.push({ type: 'setTimer', name: 'deadline', at: this.ctx.now + outcome.awaitDeps.timeoutMs, msg: { op: op.id } });
        return;
      }
      const wait = outcome.waitMs ?? 0;
      if (wait !== 0) {
        this.d.op = { ...op, waiting: 'timer', outcome } as Draft<Op>;
        // A negative wait never ends (Heat: wait forever); only a newer generation moves on.
        if (wait > 0) this.effects.push({ type: 'setTimer', name: 'op', at: this.ctx.now + wait, msg: { op: op.id } });
        return;
      }
      if (outcome.ok) this.complete(outcome);
      else this.fail(outcome.error);
      return;
    }
    if (type.kind === 'task') {
      this.effects.push({ type: 'task', name: `op:${op.id}`, task: 'provider', input: { type: type.name, action: op.action, request: req } });
      return;
    }
    // nested
    const d = this.d;
    const childId = childStackId(d.stackId, d.name, op.inc);
    const to = `stack/${childId}`;
    if (op.action === 'delete') {
      const m: StackMsg = { kind: 'setDesired', op: d.forget ? 'abandon' : 'delete', name: childId, tenant: d.tenant, parent: { addr: this.ctx.self, token: op.id } };
      this.effects.push({ type: 'send', to, msg: m });
      return;
    }
    const policy = d.def?.updatePolicy ? this.resolveProps(d.def, d.def.updatePolicy) : null;
    const made = type.child(policy?.ok ? { ...req, updatePolicy: policy.value } : req, d.def?.nestedTemplate as never);
    if ('error' in made) return this.fail(made.error);
    const child = made as ChildSpec;
    const facade = this.childFacade(d.def);
    const m: StackMsg = {
      kind: 'setDesired',
      op: op.action === 'create' ? 'create' : 'update',
      name: `${d.stackName}-${d.name}-${shortId(`${this.ctx.self}#${op.inc}`)}`,
      tenant: d.tenant,
      eventsRoot: this.childEventsRoot(),
      ...(child.spec ? { spec: { ...child.spec, facade } } : {}),
      ...(child.spec && d.def?.childOverrides ? { overrides: d.def.childOverrides } : {}),
      ...(child.group ? { group: child.group } : {}),
      parent: { addr: this.ctx.self, token: op.id },
    };
    this.effects.push({ type: 'send', to, msg: m });
  }

  /**
   * resource_facade in the child stack reads this resource's sections, resolved (Heat's defaults
   * when absent); a change of them alone re-sends the child's desire.
   */
  private childFacade(def: ResourceDef | null): ResourceFacade {
    const metadata = def?.metadata ? this.resolveProps(def, def.metadata) : null;
    const policy = def?.updatePolicy ? this.resolveProps(def, def.updatePolicy) : null;
    return {
      metadata: (metadata?.ok ? metadata.value : null) ?? {},
      deletion_policy: def?.deletionPolicy ?? 'Delete',
      update_policy: (policy?.ok ? policy.value : null) ?? {},
    };
  }

  /** A child stack's resources publish under this resource's path. */
  private childEventsRoot(): EventsRoot {
    const d = this.d;
    return { stackId: d.eventsRoot?.stackId ?? d.stackId, stackName: d.eventsRoot?.stackName ?? d.stackName, path: `${d.eventsRoot?.path ?? ''}${d.name}/` };
  }

  private complete(outcome: Extract<ActionOutcome, { ok: true }>): void {
    const d = this.d;
    const op = d.op;
    if (!op) return;
    d.op = null;
    d.attempt = 0;
    if (op.action === 'delete') {
      if (d.current?.n === op.inc) d.current = null;
      else d.old = d.old.filter((o) => o.n !== op.inc);
      if (d.def === null && !d.current && d.old.length === 0) this.setStatus(this.removal, 'COMPLETE', 'state changed');
      return;
    }
    // The definition may have been removed while the action ran: the incarnation keeps the type
    // it was made as, so that its delete still runs (an untyped incarnation would be forgotten).
    const typeName = op.type ?? d.def?.type ?? d.current?.type ?? '';
    const type = this.deps.types.get(typeName);
    const inc: Incarnation = {
      n: op.inc,
      type: typeName,
      physicalId: outcome.physicalId,
      props: op.props,
      attrs: outcome.attrs,
      gen: op.gen,
      failed: false,
      retain: d.def?.deletionPolicy === 'Retain',
      ...(type?.kind === 'nested'
        ? {
            child: childStackId(d.stackId, d.name, op.inc),
            nested: nestedDigest(d.def?.nestedTemplate),
            attributesRead: !!d.def?.attributesRead,
            ...(d.def?.childOverrides ? { overrides: d.def.childOverrides } : {}),
            facade: this.childFacade(d.def ?? null),
          }
        : {}),
    };
    const first = op.action === 'create' && !d.current && d.old.every((o) => o.physicalId === null);
    if (op.action === 'create' && d.current) d.old = [...d.old, d.current] as Draft<Incarnation>[];
    d.current = inc as Draft<Incarnation>;
    const adopted = d.action === 'ADOPT' && d.status === 'IN_PROGRESS';
    // An action re-targeted while it ran completes the generation it was started for: reported at
    // that generation (the newer one's work, if any, follows as its own IN_PROGRESS/COMPLETE).
    this.setStatus(adopted ? 'ADOPT' : first ? 'CREATE' : 'UPDATE', 'COMPLETE', 'state changed', op.gen);
    if (op.gen === d.gen) this.becomeReady(op.gen);
  }

  /** `childReplaceable`: a child stack failed by broken physical resources only (see MemberReport.replaceable). */
  private fail(error: ProviderError, childReplaceable = false): void {
    const d = this.d;
    const op = d.op;
    const action: HeatAction = op?.action === 'delete' ? 'DELETE' : op?.action === 'create' && !d.current ? 'CREATE' : 'UPDATE';
    d.op = null;
    // An outage means waiting, however long; a broken physical resource is replaced a limited
    // number of times; any other transient error is retried a limited number of times.
    const outage = error.transient && OUTAGE_CODES.has(error.code);
    // An update of an object deleted behind Kiln's back (RESOURCE_GONE) is repaired by a new one too.
    const gone = error.code === 'RESOURCE_GONE' && op?.kind === 'task' && op.action === 'update';
    if (gone) error = { ...error, transient: true };
    // A group member whose child stack failed that way (a template member whose server never
    // booted) is replaced whole, like a broken task member; a template error stays permanent.
    const brokenChild = childReplaceable && op?.kind === 'nested' && op.action !== 'delete' && this.isGroupMember();
    const broken = brokenChild || (error.transient && (REPLACE_CODES.has(error.code) || gone) && op?.kind === 'task' && op.action !== 'delete');
    // A group member is disposable and its group is refilled without intervention: its
    // replacements are not capped (the backoff still grows, up to its cap).
    const uncapped = outage || (broken && this.isGroupMember());
    const retried = (error.transient || brokenChild) && (uncapped || d.attempt + 1 < MAX_TRANSIENT_ATTEMPTS);
    // A create retried under the same incarnation (same key) finds what it may have made; only
    // one that is replaced or given up leaves something to clean up by key.
    if (op?.kind === 'task' && op.action === 'create' && !outage && (broken || !retried)) this.keepForCleanup(op);
    if (retried) {
      d.attempt += 1;
      if (broken) {
        // Replace, do not repeat: a failed create's next try is a new incarnation (new key; the
        // failed one is deleted by key later), a failed update marks the incarnation failed so
        // the next decision replaces it.
        if (op.action === 'update' && d.current?.n === op.inc) d.current = { ...d.current, failed: true };
        // The failed child goes among the old incarnations (deleted), the next try is a new one.
        if (brokenChild && op.action === 'create') this.keepFailedChild(op, true);
      } else if (op?.action === 'create') {
        // The retry reuses the incarnation, hence the idempotency key: the provider finds a
        // create that did happen instead of making a second one.
        d.nextInc = op.inc;
      }
      if (broken && d.attempt === 1 && !error.retryAfterMs) {
        // The first replacement starts now (the next decision, in this step): a new incarnation is
        // not a repeat of what just failed. The backoff applies from the second.
        this.setStatus(action, 'IN_PROGRESS', `Replacing after: ${error.message}`);
        this.flushProgress();
        return;
      }
      const wait = Math.max(error.retryAfterMs ?? 0, backoffMs(broken ? d.attempt - 1 : d.attempt, this.ctx.msgId, RETRY_BASE_MS.value));
      d.retryAt = this.ctx.now + wait;
      this.effects.push({ type: 'setTimer', name: 'retry', at: d.retryAt });
      this.setStatus(action, 'IN_PROGRESS', `Retrying in ${wait} ms after: ${error.message}`);
      return;
    }
    // An in-place update that failed leaves the incarnation FAILED (replaced on the next
    // generation); a child stack is updated again instead, its resources deciding (Heat), so a
    // group whose update failed in one member is not replaced whole.
    if (op?.action === 'update' && d.current?.n === op.inc) d.current = op.kind === 'nested' ? { ...d.current, resend: true } : { ...d.current, failed: true };
    if (op?.kind === 'nested' && op.action === 'create') this.keepFailedChild(op);
    const reason = error.transient ? `${error.message} (gave up after ${d.attempt + 1} attempts)` : error.message;
    if (op && op.gen < d.gen) {
      // Started for an older generation: the failure is reported there, and the newer generation
      // decides afresh (it may replace the failed incarnation) instead of being failed unattempted.
      d.attempt = 0;
      this.setStatus(action, 'FAILED', reason, op.gen);
      return;
    }
    this.permanent(reason, action, broken || childReplaceable);
  }

  /**
   * A task create that failed may still have made something (a 500 answered after the create);
   * keep the incarnation, without a physical id, among the old ones so that its delete runs: the
   * type finds the object by the incarnation's idempotency key.
   */
  private keepForCleanup(op: Op): void {
    const d = this.d;
    if (d.old.some((o) => o.n === op.inc)) return;
    const inc: Incarnation = { n: op.inc, type: op.type ?? d.def?.type ?? '', physicalId: null, props: op.props, attrs: {}, gen: 0, failed: true, retain: false, createFailed: true };
    d.old = [...d.old, inc] as Draft<Incarnation>[];
  }

  /**
   * A child stack whose create failed still holds whatever it did make: it stays this resource's
   * (Heat keeps a FAILED nested stack and updates it, letting its resources decide), so the next
   * generation updates it in place (`resend`) and a delete deletes it. A failed replacement child
   * goes among the old incarnations, to be deleted.
   */
  private keepFailedChild(op: Op, replacing = false): void {
    const d = this.d;
    const child = childStackId(d.stackId, d.name, op.inc);
    const inc: Incarnation = {
      n: op.inc,
      type: op.type ?? d.def?.type ?? '',
      physicalId: child,
      props: op.props,
      attrs: {},
      gen: op.gen,
      failed: false,
      retain: d.def?.deletionPolicy === 'Retain',
      child,
      nested: nestedDigest(d.def?.nestedTemplate),
      attributesRead: !!d.def?.attributesRead,
      ...(d.def?.childOverrides ? { overrides: d.def.childOverrides } : {}),
      resend: true,
    };
    if (d.current || replacing) d.old = [...d.old, { ...inc, failed: true, ...(replacing ? { createFailed: true } : {}) }] as Draft<Incarnation>[];
    else d.current = inc as Draft<Incarnation>;
  }

  private permanentStop(reason: string): false {
    this.permanent(reason);
    return false;
  }

  /** No right action exists at this generation: report FAILED with the reason; a newer generation retries. */
  private permanent(reason: string, action?: HeatAction, replaceable = false): void {
    const d = this.d;
    d.failedGen = d.gen;
    d.attempt = 0;
    this.setStatus(action ?? (d.def === null ? 'DELETE' : d.current ? 'UPDATE' : 'CREATE'), 'FAILED', reason);
    this.report('failed', reason, replaceable);
  }

  private becomeReady(G: number): void {
    const d = this.d;
    if (d.readyGen >= G) return;
    d.readyGen = G;
    // Express (see `express`) only while nothing was reported at G: a later ready at the same G
    // (a repair's new incarnation) must not be overtaken by this one, nor overtake an earlier one
    // (readers keep the newest generation's data, and the last of one generation's).
    this.sendReady(G, this.express && d.reported?.gen !== G);
    this.sendMoved(G, false);
  }

  /**
   * `express`: see becomeReady; later data of the same generation (a signal, a child's new
   * outputs) keeps its order. `only`: to that dependant alone (it asked again).
   */
  private sendReady(G: number, express = false, only?: string): void {
    const d = this.d;
    const cur = d.current;
    if (!cur) return;
    const type = this.deps.types.get(cur.type);
    const data: DepData = {
      gen: G,
      ref: type?.reference ? type.reference(cur.physicalId, cur.attrs) : cur.physicalId,
      attrs: attrsSent(type, cur.attrs, d.def?.attributesRead),
      type: cur.type,
    };
    for (const x of only !== undefined ? [only] : d.dependants) {
      const to = x === OUTPUTS_DEPENDANT ? `stack/${d.stackId}` : resourceAddress(d.stackId, x);
      const m: ResourceMsg = { kind: 'ready', from: d.name, data };
      this.effects.push(express ? { type: 'send', to, msg: m, express: true } : { type: 'send', to, msg: m });
    }
  }

  private sendMoved(G: number, gone: boolean): void {
    const d = this.d;
    for (const x of d.notify) {
      const m: ResourceMsg = { kind: 'moved', from: d.name, gen: G, gone };
      // The receiver keeps the highest generation moved, so order does not matter.
      const to = resourceAddress(d.stackId, x);
      this.effects.push(this.express ? { type: 'send', to, msg: m, express: true } : { type: 'send', to, msg: m });
    }
    d.notify = gone ? [] : [...d.requires];
  }

  /** A `moved` to one resource that asked for it again (see askWaitedFor). */
  private sendMovedTo(to: string, G: number, gone: boolean): void {
    const m: ResourceMsg = { kind: 'moved', from: this.d.name, gen: G, gone };
    this.effects.push({ type: 'send', to: resourceAddress(this.d.stackId, to), msg: m });
  }

  /** `again`: send it even when it is the report sent last (the shard asked again). */
  private report(state: MemberReport['state'], reason?: string, replaceable = false, again = false): void {
    const d = this.d;
    if (!d.parent) return;
    if (!again && d.reported && d.reported.gen === d.gen && d.reported.state === state) return;
    // Only the generation's first report may be express (see `express`); later ones of the same
    // generation (repairing, settled again) are not, so none of them can overtake another and
    // leave the shard with a stale state. The shard drops reports of other generations whatever
    // their order.
    const express = this.express && d.reported?.gen !== d.gen;
    const confirm = state === 'settled' && d.reported?.gen === d.gen && d.reported.state === 'repairing';
    d.reported = { gen: d.gen, state, ...(reason !== undefined ? { reason } : {}), ...(replaceable ? { replaceable } : {}), ...(confirm ? { confirm } : {}) };
    const cur = d.current;
    const type = cur ? this.deps.types.get(cur.type) : undefined;
    const m: MemberReport = {
      kind: 'report',
      gen: d.gen,
      slot: d.slot,
      state,
      name: d.name,
      ...(reason !== undefined ? { reason } : {}),
      ...(replaceable ? { replaceable: true } : {}),
      ...(d.collect && cur && state === 'settled'
        ? { ref: type?.reference ? type.reference(cur.physicalId, cur.attrs) : cur.physicalId, attrs: cur.attrs }
        : {}),
    };
    this.effects.push(express ? { type: 'send', to: d.parent, msg: m, express: true } : { type: 'send', to: d.parent, msg: m });
  }

  /** `gen`: the generation the transition belongs to (an action started for an older one reports there). */
  private setStatus(action: HeatAction, status: HeatStatus, reason: string, gen = this.eventGen): void {
    const d = this.d;
    if (d.action === action && d.status === status && d.reason === reason) return;
    d.action = action;
    d.status = status;
    d.reason = reason;
    // An IN_PROGRESS that ends within this same step (an instant pure action) is not published:
    // it would cost a stream write per resource for a transition nobody could observe.
    if (status === 'IN_PROGRESS') this.pendingProgress = { action, reason };
    else {
      this.pendingProgress = null;
      this.event(action, status, reason, gen);
    }
  }

  private pendingProgress: { action: HeatAction; reason: string } | null = null;

  /** Publishes a transition to IN_PROGRESS that is still in progress at the end of the step. */
  flushProgress(): void {
    const p = this.pendingProgress;
    if (p && this.d.status === 'IN_PROGRESS') this.event(p.action, 'IN_PROGRESS', p.reason);
    this.pendingProgress = null;
  }

  /**
   * While an action started for an older generation is in flight, the resource's events still
   * belong to that generation (its completion is reported there), so they never go back.
   */
  private get eventGen(): number {
    const op = this.d.op;
    return op && op.gen < this.d.gen ? op.gen : this.d.gen;
  }

  private event(action: HeatAction, status: HeatStatus, reason: string, gen = this.eventGen): void {
    const d = this.d;
    const cur = d.current ?? d.old[0];
    const root = d.eventsRoot;
    const resource = root ? `${root.path}${d.name}` : d.name;
    const ev: EngineEvent = {
      tenant: d.tenant,
      stackId: root?.stackId ?? d.stackId,
      ...(root ? { nestedStackId: d.stackId } : {}),
      stackName: root?.stackName ?? d.stackName,
      resource,
      physicalId: cur?.physicalId ?? null,
      type: d.def?.type ?? cur?.type ?? '',
      gen,
      action,
      status,
      reason,
      ts: this.ctx.now,
    };
    this.effects.push({ type: 'emit', subject: eventSubjectTail(d.tenant, ev.stackId, resource), event: ev });
  }
}

/**
 * What a `ready` carries of a resource's attributes: only those something reads (a server's
 * `show` alone is ~1 KB, stored by every dependant). Only a task type's attributes are cut: its
 * get_attr names are its attribute keys, and no type reads them whole through `deps` (a
 * WaitCondition reads its handle's, a group's `attribute` maps names onto member data).
 */
export function attrsSent(type: ResourceType | undefined, attrs: Record<string, unknown>, read: AttributesRead | undefined): Record<string, unknown> {
  if (read === true || type?.kind !== 'task' || type.attribute) return attrs;
  const out: Record<string, unknown> = {};
  for (const a of read ?? []) if (Object.hasOwn(attrs, a)) out[a] = attrs[a];
  return out;
}

/** A nested template's digest (64 bits of FNV-1a over its JSON, and its length); null for none. */
export function nestedDigest(t: ResourceDef['nestedTemplate']): string | null {
  if (!t) return null;
  const json = JSON.stringify(t);
  return `${fnv1a(json).toString(36)}.${fnv1a(`#${json}`).toString(36)}.${json.length}`;
}

/** Base of the retry backoff (tests shorten it; reducers read it as configuration, not a clock). */
export const RETRY_BASE_MS = { value: 1_000 };
/** A repair without its permit asks again after this long (doubling to PERMIT_ASK_MAX_MS). */
export const PERMIT_ASK_MS = 5 * 60_000;
const PERMIT_ASK_MAX_MS = 30 * 60_000;
