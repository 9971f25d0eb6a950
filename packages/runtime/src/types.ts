/**
 * The contract between actor logic and the runtime. Actor logic is pure: it sees a state and a
 * message and returns the next state plus effects, which are plain data the runtime executes.
 * Nothing here does IO.
 */

/**
 * An actor's address: `<type>/<id>`, where `<type>` names a registered ActorBehavior
 * (lowercase letters, digits, '-') and `<id>` is any non-empty string (the runtime encodes it
 * for KV keys and subjects). The address is hashed onto a partition.
 */
export type ActorAddress = string;

/** What the reducer may know about the message it is processing, besides the message itself. */
export interface MessageContext {
  /** This actor's address. */
  readonly self: ActorAddress;
  /** Stable id of the message (the same on redelivery); basis of idempotency keys. */
  readonly msgId: string;
  /** Sender's address, when the message came from an actor. */
  readonly from?: ActorAddress | undefined;
  /** Wall-clock time (ms since epoch) the runtime assigns to this processing step. */
  readonly now: number;
}

/** Outcome of an async task, delivered to the actor as a message. */
export type TaskResult =
  | { readonly kind: '$task'; readonly name: string; readonly ok: true; readonly value: unknown; readonly idempotencyKey: string }
  | {
      readonly kind: '$task';
      readonly name: string;
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string; readonly retryAfterMs?: number };
      readonly idempotencyKey: string;
    };

/** A timer firing, delivered to the actor as a message. */
export interface TimerFired {
  readonly kind: '$timer';
  readonly name: string;
  readonly msg: unknown;
}

export type Effect =
  /**
   * Deliver `msg` to another actor (or to self). Sent after the state is stored, at least once; the receiver dedups.
   * `express`: when the receiver's partition is owned by this node, the message is also handed to
   * it as soon as its publication is stored, ahead of mail queued before it (a completion or reply
   * overtaking a fan-out). Order between two sends of one sender to one receiver is only kept among
   * non-express sends: an express send may overtake earlier ones.
   */
  | { readonly type: 'send'; readonly to: ActorAddress; readonly msg: unknown; readonly express?: true }
  /** Arm (or re-arm) the named timer of this actor; it fires as a TimerFired message at or after `at` (ms since epoch), also after a takeover. */
  | { readonly type: 'setTimer'; readonly name: string; readonly at: number; readonly msg?: unknown }
  | { readonly type: 'cancelTimer'; readonly name: string }
  /** Publish an event on the events stream under `kiln.events.<subject>`. At least once. */
  | { readonly type: 'emit'; readonly subject: string; readonly event: unknown }
  /**
   * Run the registered task `task` with `input` (e.g. a cloud call). Its outcome comes back as a
   * TaskResult with this `name`. At least once: the handler receives an idempotency key derived
   * from actor address, message id and effect index, identical when the step is replayed.
   */
  | { readonly type: 'task'; readonly name: string; readonly task: string; readonly input: unknown };

export interface Reduction<S> {
  /** The next state; `null` deletes the actor's stored state (the actor is finished). */
  readonly state: S | null;
  readonly effects: readonly Effect[];
}

export interface TaskContext {
  readonly self: ActorAddress;
  readonly idempotencyKey: string;
  /** Aborted when this node loses the partition or shuts down. */
  readonly signal: AbortSignal;
}

export type TaskHandler = (input: unknown, ctx: TaskContext) => Promise<unknown>;

export interface ActorBehavior<S = unknown, M = unknown> {
  /** The `<type>` part of addresses handled by this behaviour. */
  readonly type: string;
  /** State of an actor that has never stored one. */
  initial(self: ActorAddress): S;
  /** Pure: no IO, no clocks (use ctx.now), no randomness except derived from ctx. */
  reduce(state: S, msg: M | TaskResult | TimerFired, ctx: MessageContext): Reduction<S>;
}
