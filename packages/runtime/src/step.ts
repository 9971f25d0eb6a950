import { effectId } from './address.js';
import type { ActorAddress, ActorBehavior, Effect, MessageContext, TaskResult, TimerFired } from './types.js';

/**
 * What the runtime stores per actor (one KV value). Besides the behaviour's state it holds what
 * makes processing exactly-once and durable:
 * - `q`, `x`: position of the last message applied: stream sequence, and index within a pack
 *   (absent: 0, also for an unpacked message). Mailbox messages of one actor are applied in
 *   (sequence, index) order, so a delivery at or before that position is a redelivery and is skipped.
 * - `t`: armed timers; `k`: tasks started and not yet answered (rerun after a takeover);
 * - `o`: the sends/emits of the last step (the outbox), published again if the step's message
 *   turns out not to have been acknowledged (a crash between the state write and the ack).
 * - `g`: the outbox's sends went out with those of the other actors of the pack at (`q`, `x`)
 *   (the runtime's combined publication of a pack's sends), so a redelivery republishes them
 *   there, never alone (alone they would be other stream messages, not recognised as duplicates).
 * - `e`: positions ([sequence, index]) of messages applied early (express delivery, handed over
 *   by this node before the stream delivered them) and not yet passed by the stream. They do not
 *   move `q`/`x`: older mail of the actor is still to come. The stream's delivery of one is
 *   skipped; positions at or before (`q`, `x`) are dropped as `q` moves.
 * - `p`: the pack publication at (`q`, `x`) is known stored: an early step replaced the outbox
 *   of a record marked `g` (it runs only once that publication is stored), so a redelivery of
 *   that pack must not publish it again.
 */
export interface ActorRecord {
  s?: unknown;
  /** true once the behaviour returned state null (finished); the record stays as a tombstone so q keeps deduplicating. */
  d?: true;
  q: number;
  x?: number;
  t?: Record<string, ArmedTimer>;
  k?: Record<string, PendingTask>;
  o?: OutboxEntry[];
  g?: true;
  e?: [seq: number, idx: number][];
  p?: true;
}

export interface ArmedTimer {
  at: number;
  m?: unknown;
}

export interface PendingTask {
  /** Name the result comes back under. */
  n: string;
  task: string;
  in: unknown;
}

export type OutboxEntry =
  /** A send: Nats-Msg-Id `id`, to `to`, envelope message `m`; `xp`: express (see Effect `send`). */
  | { id: string; to: ActorAddress; m: unknown; xp?: true }
  /** An emit on the events subject. */
  | { id: string; ev: string; e: unknown };

/** The envelope of a mailbox message (the payload, msgpack). */
export interface Envelope {
  /** Message id (stable on redelivery). */
  i: string;
  /** Sender address. */
  f?: ActorAddress;
  /** The behaviour's message. */
  m?: unknown;
  /** For a task result: the idempotency key of the task it answers. */
  k?: string;
  /** Runtime control: a timer is due (`fire`), or pending timers/tasks must be re-armed after a takeover (`resume`). */
  c?: { fire: string } | { resume: true; swept?: true };
}

export interface Incoming {
  /** Stream sequence. */
  readonly seq: number;
  /** Index within a pack (a stream message carrying several envelopes); undefined for an unpacked message. */
  readonly idx?: number | undefined;
  readonly env: Envelope;
  /**
   * Handed over early (express), before the stream delivers it: applied without moving the
   * record's position (see ActorRecord `e`); skipped silently when already applied.
   */
  readonly early?: true | undefined;
}

export interface DeadLetter {
  readonly inc: Incoming;
  readonly reason: string;
}

/** What a step asks the shell to do after (or, for index entries, before) storing the record. */
export interface StepOutcome {
  /** The record to store, or undefined when nothing changed (every message was a duplicate or a stale control message). */
  readonly record: ActorRecord | undefined;
  /** Messages skipped as redeliveries. */
  readonly duplicates: number;
  /** Stream deliveries skipped because they were applied early. */
  readonly passedEarly: number;
  /** Early messages applied. */
  readonly appliedEarly: number;
  readonly deadLetters: DeadLetter[];
  /** Sends and emits, in order (also stored as the record's outbox). */
  readonly outbox: OutboxEntry[];
  /**
   * The actor's one timer index entry: `put` when the step arms its first timer (the entry must
   * exist before the record is stored), `delete` once no timer is left (after the record is
   * stored). Re-arming while others stay armed (a periodic timer) costs no index write.
   */
  readonly timerIndex: 'put' | 'delete' | undefined;
  /** Tasks to run now (new ones, or pending ones re-armed by a resume). */
  readonly tasksToRun: { idem: string; task: PendingTask }[];
  /** Tasks newly recorded: their index entry must exist before the record is stored. */
  readonly tasksRecorded: string[];
  /** Tasks answered (or found answered): no longer pending. */
  readonly tasksDone: string[];
  /** A resume sent by the pending-task sweep was applied: it saw the actor's task index entry. */
  readonly sweptResume: boolean;
  /** Timers to (re)schedule in memory, as stored in the record. */
  readonly timersToSchedule: { name: string; at: number }[];
}

/**
 * Applies a batch of mailbox messages (in stream order) to one actor's record. Pure: the runtime
 * stores the result with one compare-and-set, so a batch costs one KV write however many
 * messages it holds.
 */
export function stepActor(
  behavior: ActorBehavior<unknown, unknown>,
  self: ActorAddress,
  stored: ActorRecord | undefined,
  batch: readonly Incoming[],
  now: number,
): StepOutcome {
  const out: { -readonly [K in keyof StepOutcome]: StepOutcome[K] } = {
    record: undefined,
    duplicates: 0,
    passedEarly: 0,
    appliedEarly: 0,
    deadLetters: [],
    outbox: [],
    timerIndex: undefined,
    tasksToRun: [],
    tasksRecorded: [],
    tasksDone: [],
    sweptResume: false,
    timersToSchedule: [],
  };
  let rec: ActorRecord = stored ? { ...stored } : { q: 0 };
  let timers = stored?.t;
  let tasks = stored?.k;
  let changed = false;
  /** A timer went (fired, cancelled, or found stale). */
  let dropped = false;
  const ownTimers = () => (timers === stored?.t ? (timers = { ...(timers ?? {}) }) : (timers ??= {}));
  const ownTasks = () => (tasks === stored?.k ? (tasks = { ...(tasks ?? {}) }) : (tasks ??= {}));
  const answer = (idem: string) => {
    delete ownTasks()[idem];
    changed = true;
    out.tasksDone.push(idem);
  };
  /** The position moved in this batch (the record is no longer at the stored one). */
  let moved = false;

  let early = rec.e;
  const ownEarly = () => (early === stored?.e ? (early = [...(early ?? [])]) : (early ??= []));
  for (const inc of batch) {
    const idx = inc.idx ?? 0;
    if (inc.seq < rec.q || (inc.seq === rec.q && idx <= (rec.x ?? 0))) {
      if (!inc.early) out.duplicates++;
      continue;
    }
    const appliedEarly = early ? early.findIndex(([s, i]) => s === inc.seq && i === idx) : -1;
    if (inc.early) {
      if (appliedEarly >= 0) continue;
    } else {
      // The stream delivers an actor's mail in order, so every position before this one was
      // delivered: early positions passed by it are done.
      rec.q = inc.seq;
      if (idx > 0) rec.x = idx;
      else delete rec.x;
      if (early?.some(([s, i]) => s < inc.seq || (s === inc.seq && i <= idx))) {
        early = early.filter(([s, i]) => s > inc.seq || (s === inc.seq && i > idx));
      }
      // Past the position an early step may have marked `p` at.
      delete rec.p;
      moved = true;
      if (appliedEarly >= 0) {
        out.passedEarly++;
        continue;
      }
    }
    const env = inc.env;
    let msg: unknown;
    /** The pending task this message answers, removed once it is applied (or dead-lettered). */
    let answered: string | undefined;
    if (env.c) {
      if ('fire' in env.c) {
        const t = timers?.[env.c.fire];
        if (!t) {
          dropped = true;
          continue;
        }
        if (t.at > now) {
          // Fired early (an index hint after takeover, or a re-armed timer): wait for the stored time.
          out.timersToSchedule.push({ name: env.c.fire, at: t.at });
          continue;
        }
        delete ownTimers()[env.c.fire];
        changed = true;
        dropped = true;
        msg = { kind: '$timer', name: env.c.fire, msg: t.m } satisfies TimerFired;
      } else {
        for (const [name, t] of Object.entries(timers ?? {})) out.timersToSchedule.push({ name, at: t.at });
        for (const [idem, task] of Object.entries(tasks ?? {})) out.tasksToRun.push({ idem, task });
        if (env.c.swept) out.sweptResume = true;
        continue;
      }
    } else if (env.k !== undefined) {
      // A task result is delivered once: a rerun task's second answer finds nothing pending.
      if (!tasks?.[env.k]) continue;
      answered = env.k;
      msg = env.m;
    } else {
      msg = env.m;
    }

    const ctx: MessageContext = { self, msgId: env.i, from: env.f, now };
    const state = rec.d || !('s' in rec) ? behavior.initial(self) : rec.s;
    let reduction;
    try {
      reduction = behavior.reduce(state, msg as never, ctx);
    } catch (e) {
      // Early: left as it was for the stream delivery, which applies it again (reducers are
      // deterministic) and dead-letters it then.
      if (inc.early) continue;
      out.deadLetters.push({ inc, reason: `reducer threw: ${e instanceof Error ? e.message : String(e)}` });
      if (answered !== undefined) answer(answered);
      continue;
    }
    changed = true;
    if (answered !== undefined) answer(answered);
    if (inc.early) {
      ownEarly().push([inc.seq, idx]);
      out.appliedEarly++;
      // This step replaces an outbox that went out in the pack publication at (q, x): it is stored
      // (the runtime runs an early step on such a record only then), which a redelivery must know.
      if (!moved && (rec.g || rec.p)) rec.p = true;
    }
    if (reduction.state === null) {
      const tomb: ActorRecord = rec.x === undefined ? { q: rec.q, d: true } : { q: rec.q, x: rec.x, d: true };
      if (rec.p) tomb.p = true;
      rec = tomb;
      if (timers) dropped = true;
      timers = undefined;
      tasks = undefined;
    } else {
      rec = { ...rec, s: reduction.state };
      delete rec.d;
    }
    reduction.effects.forEach((eff: Effect, index: number) => {
      switch (eff.type) {
        case 'send':
          out.outbox.push(eff.express ? { id: effectId(self, env.i, index), to: eff.to, m: eff.msg, xp: true } : { id: effectId(self, env.i, index), to: eff.to, m: eff.msg });
          break;
        case 'emit':
          out.outbox.push({ id: effectId(self, env.i, index), ev: eff.subject, e: eff.event });
          break;
        case 'setTimer': {
          const t: ArmedTimer = eff.msg === undefined ? { at: eff.at } : { at: eff.at, m: eff.msg };
          ownTimers()[eff.name] = t;
          out.timersToSchedule.push({ name: eff.name, at: eff.at });
          break;
        }
        case 'cancelTimer':
          if (timers?.[eff.name]) {
            delete ownTimers()[eff.name];
            dropped = true;
          }
          break;
        case 'task': {
          const idem = effectId(self, env.i, index);
          const task: PendingTask = { n: eff.name, task: eff.task, in: eff.input };
          ownTasks()[idem] = task;
          out.tasksRecorded.push(idem);
          out.tasksToRun.push({ idem, task });
          break;
        }
      }
    });
  }
  const had = Object.keys(stored?.t ?? {}).length > 0;
  if (!changed) return had || !dropped ? out : { ...out, timerIndex: 'delete' };
  const has = timers !== undefined && Object.keys(timers).length > 0;
  if (has && !had) out.timerIndex = 'put';
  else if (!has && (had || dropped)) out.timerIndex = 'delete';
  if (early && early.length > 0) rec.e = early;
  else delete rec.e;
  if (has) rec.t = timers;
  else delete rec.t;
  if (tasks && Object.keys(tasks).length > 0) rec.k = tasks;
  else delete rec.k;
  if (out.outbox.length > 0) rec.o = out.outbox;
  else delete rec.o;
  // The runtime marks the record again when this step's sends join a pack's combined publication.
  delete rec.g;
  return { ...out, record: rec };
}

/** The behaviour's state held by a stored record (undefined for none or a finished actor). */
export function stateOf(rec: ActorRecord | undefined): unknown {
  return rec && !rec.d ? rec.s : undefined;
}
