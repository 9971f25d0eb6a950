/**
 * The one door between the resource types and a cloud endpoint/tenant: a client-side token
 * bucket, in-task retries of transient API errors with backoff that honours Retry-After, and
 * waits for asynchronous transitions that poll with backoff and stop when the task is aborted.
 */
import { KilnError, createLogger, type Logger } from '@kiln/core';
import { RETRYABLE_API_CODES, TaskAbortedError } from './errors.js';
import { onAbort, type CallOptions, type CloudClient, type Kind, type ObjectOf } from '@kiln/sim-cloud';
import { ChangeWatcher, type ChangeFeed, type KeyInterest } from './watcher.js';

export interface GatewayOptions {
  /** Client-side limit on API calls to this endpoint/tenant (token bucket). Default 500/s, burst 1000. */
  readonly rateLimit?: { readonly perSecond: number; readonly burst?: number };
  /** How long a task keeps retrying transient API errors (outage, 429, 409) before it fails transiently. Default 60 s. */
  readonly retryBudgetMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Poll schedule while waiting for a transition: first delay, growing 1.5x up to the max. */
  readonly pollInitialMs?: number;
  readonly pollMaxMs?: number;
  /** A server/volume/LB that has not settled after this long is treated as failed (stuck in BUILD). Default 15 min. */
  readonly settleTimeoutMs?: number;
  /** How long a delete waits for the object to be gone. Default 10 min. */
  readonly deleteTimeoutMs?: number;
  /**
   * The cloud's change feed (e.g. the SimCloudClient itself). When given, waits wake on the
   * object's change events and take the object from the event. While the feed is live (an event
   * or keep-alive heard within `stallMs`, default 45 s, and the last event not more than
   * `maxLagMs`, default 5 s, behind its change) a wait misses nothing, so it looks by GET only
   * after `livePollMs` (default 60 s) without an event for its object; a feed that is down,
   * stalled or lagging makes waits poll after `fallbackPollMs` (default 5 s) without an event,
   * then at doubling intervals up to 6x that. A gap, a reconnect or a stall wakes every wait to look.
   */
  readonly changes?: ChangeFeed;
  readonly livePollMs?: number;
  readonly stallMs?: number;
  readonly maxLagMs?: number;
  /**
   * The cloud itself makes creates idempotent on the key (the sim does; OpenStack does not): skip
   * the look-up by key before each create, a replayed create returns the first object. Saves one
   * call per create. Default false.
   */
  readonly idempotentCreates?: boolean;
  /**
   * A create whose object settles failed (server ERROR on boot, volume `error`, Octavia ERROR,
   * stuck past `settleTimeoutMs`) is deleted and made again under the same key up to this many
   * times inside the task before RESOURCE_ERROR goes to the engine: the failure is final for that
   * object, so the engine's retry backoff would only add latency. Default 2 (three objects per task).
   */
  readonly replaceFailedCreates?: number;
  readonly fallbackPollMs?: number;
  readonly logger?: Logger;
}

/** Sleeps, or rejects with TaskAbortedError as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new TaskAbortedError());
  return new Promise((resolve, reject) => {
    const dropAbort = onAbort(signal, () => {
      clearTimeout(t);
      reject(new TaskAbortedError());
    });
    const t = setTimeout(() => {
      dropAbort();
      resolve();
    }, Math.max(0, ms));
  });
}

interface TokenWaiter {
  resolve: () => void;
  dropAbort: () => void;
}

/**
 * Token bucket over API calls. A 429 from the cloud pauses the whole bucket until Retry-After,
 * so every caller backs off together instead of each discovering the limit on its own. A call
 * that finds a token goes at once (no timer, no promise); the others queue in arrival order
 * behind one timer set for when the next token is due.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private pausedUntil = 0;
  private readonly waiters: TokenWaiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  readonly rate: number;
  readonly burst: number;

  constructor(perSecond: number, burst = perSecond) {
    this.rate = perSecond;
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.last = Date.now();
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }

  /** Takes a token if one is there now and nobody queues for one. */
  tryTake(): boolean {
    if (this.waiters.length > 0) return false;
    const now = Date.now();
    if (now < this.pausedUntil) return false;
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Waits for a token (rejects with TaskAbortedError when the signal aborts first). */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new TaskAbortedError());
    if (this.tryTake()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: TokenWaiter = {
        resolve,
        dropAbort: onAbort(signal, () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new TaskAbortedError());
        }),
      };
      this.waiters.push(w);
      this.arm();
    });
  }

  /** No calls until `ms` from now (a 429's Retry-After). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
    this.tokens = 0;
  }

  /** Sets the timer for when the first waiter can have its token. */
  private arm(): void {
    if (this.timer || this.waiters.length === 0) return;
    const now = Date.now();
    const due = now < this.pausedUntil ? this.pausedUntil - now : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
    this.timer = setTimeout(() => this.serve(), Math.max(0, due));
  }

  private serve(): void {
    this.timer = undefined;
    const now = Date.now();
    if (now >= this.pausedUntil) {
      this.refill(now);
      while (this.tokens >= 1 && this.waiters.length > 0) {
        this.tokens -= 1;
        const w = this.waiters.shift()!;
        w.dropAbort();
        w.resolve();
      }
    }
    this.arm();
  }
}

/** What a wait's check says about the object it is looking at. */
export type Settle = 'done' | 'pending' | { readonly failed: string };

export class CloudGateway {
  readonly bucket: TokenBucket;
  readonly log: Logger;
  private readonly o: Required<Omit<GatewayOptions, 'rateLimit' | 'logger' | 'changes' | 'idempotentCreates' | 'replaceFailedCreates' | 'stallMs' | 'maxLagMs'>>;
  readonly idempotentCreates: boolean;
  readonly replaceFailedCreates: number;
  private readonly watcher: ChangeWatcher | undefined;
  /** API calls made through this gateway, by operation (for the "calls per resource" figure). */
  readonly calls = new Map<string, number>();

  constructor(
    readonly client: CloudClient,
    opts: GatewayOptions = {},
  ) {
    this.bucket = new TokenBucket(opts.rateLimit?.perSecond ?? 500, opts.rateLimit?.burst ?? 1000);
    this.log = opts.logger ?? createLogger('providers');
    this.o = {
      retryBudgetMs: opts.retryBudgetMs ?? 60_000,
      backoffBaseMs: opts.backoffBaseMs ?? 200,
      backoffMaxMs: opts.backoffMaxMs ?? 10_000,
      pollInitialMs: opts.pollInitialMs ?? 250,
      pollMaxMs: opts.pollMaxMs ?? 2_000,
      settleTimeoutMs: opts.settleTimeoutMs ?? 15 * 60_000,
      deleteTimeoutMs: opts.deleteTimeoutMs ?? 10 * 60_000,
      fallbackPollMs: opts.fallbackPollMs ?? 5_000,
      livePollMs: opts.livePollMs ?? 60_000,
    };
    this.watcher = opts.changes ? new ChangeWatcher(opts.changes, this.log, 1_000, opts.stallMs ?? 45_000, opts.maxLagMs ?? 5_000) : undefined;
    this.idempotentCreates = opts.idempotentCreates ?? false;
    this.replaceFailedCreates = opts.replaceFailedCreates ?? 2;
  }

  /** Whether waits are being woken by the change feed right now (else they poll). */
  get following(): boolean {
    return this.watcher?.connected ?? false;
  }

  /** Stops following the change feed. */
  async close(): Promise<void> {
    await this.watcher?.close();
  }

  /**
   * Keeps the events of objects created under `key` from now on (register before the create
   * call, pass to `waitFor` as `early`, release with `unwatchKey`): undefined without a feed.
   */
  watchKey(key: string): KeyInterest | undefined {
    return this.watcher?.watchKey(key);
  }

  /** Whether a create task of this gateway is making the key's object right now. */
  creating(key: string): boolean {
    return this.watcher?.creating(key) ?? false;
  }

  unwatchKey(key: string, k: KeyInterest | undefined): void {
    if (k) this.watcher?.unwatchKey(key, k);
  }

  get settleTimeoutMs(): number {
    return this.o.settleTimeoutMs;
  }

  /**
   * One API operation: waits for a token, then calls; transient API errors are retried with
   * exponential backoff (full jitter), never sooner than the cloud's Retry-After, until the
   * retry budget is spent, then the last error is thrown for the engine to classify.
   */
  async call<T>(op: string, signal: AbortSignal | undefined, fn: (opts: CallOptions) => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (!this.bucket.tryTake()) await this.bucket.take(signal);
      this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
      try {
        return await fn(signal ? { signal } : {});
      } catch (e) {
        if (signal?.aborted) throw new TaskAbortedError();
        if (!(e instanceof KilnError) || !RETRYABLE_API_CODES.has(e.code)) throw e;
        const retryAfter = (e.detail as { retryAfterMs?: number } | undefined)?.retryAfterMs;
        if (e.code === 'RATE_LIMITED' && retryAfter !== undefined) this.bucket.pause(retryAfter);
        const backoff = Math.random() * Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** attempt);
        const wait = Math.max(retryAfter ?? 0, backoff);
        if (Date.now() + wait - started > this.o.retryBudgetMs) throw e;
        this.log.debug({ op, attempt, code: e.code, wait }, 'cloud call retried');
        await sleep(wait, signal);
      }
    }
  }

  get<K extends Kind>(kind: K, id: string, signal?: AbortSignal, opts: CallOptions = {}): Promise<ObjectOf[K] | undefined> {
    return this.call(`${kind}.get`, signal, (o) => this.client.get(kind, id, { ...opts, ...o }));
  }

  /**
   * Polls an object until `check` says done (returns it) or failed (throws `onFail`'s error);
   * `check` sees undefined when the object is gone. Gives up after `timeoutMs` with `onFail`.
   */
  async waitFor<K extends Kind>(
    kind: K,
    id: string,
    signal: AbortSignal | undefined,
    check: (obj: ObjectOf[K] | undefined) => Settle,
    opts: {
      timeoutMs?: number;
      call?: CallOptions;
      first?: ObjectOf[K] | undefined;
      /**
       * Starts the transition once the change events are being watched (e.g. the attach call) and
       * says whether the object is now known to be in transition: then the first look is the next
       * change event (no GET), or the first poll when the feed is down.
       */
      start?: () => Promise<boolean>;
      /** The create's key interest (`watchKey`), registered before `first` was made: its events of this object count. */
      early?: KeyInterest | undefined;
      onFail: (reason: string, obj: ObjectOf[K] | undefined) => Error;
    },
  ): Promise<ObjectOf[K] | undefined> {
    const deadline = Date.now() + (opts.timeoutMs ?? this.o.settleTimeoutMs);
    let delay = this.o.pollInitialMs;
    let fallback = this.o.fallbackPollMs;
    // Interest is registered before the first look (and before `start`), so a change right after it still wakes us.
    const interest = this.watcher?.watch(id);
    // `first` is trusted only when no change of the object can have been missed before `interest`:
    // the create's key interest covers the time since the create call, else a GET looks.
    const early = opts.early;
    const seenEarly = early && !early.lost ? early.seen.get(id) : undefined;
    if (interest && seenEarly) {
      interest.latest = seenEarly;
      interest.dirty = true;
    }
    try {
      const moving = (await opts.start?.()) ?? false;
      let obj = moving ? undefined : 'first' in opts && !early?.lost ? opts.first : await this.get(kind, id, signal, opts.call);
      for (let looked = !moving; ; looked = true) {
        const s = looked ? check(obj) : 'pending';
        if (s === 'done') return obj;
        if (s !== 'pending') throw opts.onFail(s.failed, obj);
        if (Date.now() >= deadline) throw opts.onFail(`did not settle within ${opts.timeoutMs ?? this.o.settleTimeoutMs} ms (status ${statusOf(obj)})`, obj);
        const left = Math.max(0, deadline - Date.now());
        if (interest && this.watcher?.connected) {
          // A live feed misses nothing: silence means the object did not change, so look rarely.
          const live = this.watcher.live;
          const slice = Math.min(live ? this.o.livePollMs : fallback, left);
          const since = Date.now();
          await this.watcher.wait(interest, slice, signal);
          const timedOut = Date.now() - since >= slice;
          if (signal?.aborted) throw new TaskAbortedError();
          const seen = interest.latest;
          interest.latest = undefined;
          if (seen) {
            obj = seen.obj as ObjectOf[K] | undefined;
            continue;
          }
          // Nothing was heard for a whole interval: the object is simply slow (a long boot); look less often.
          if (timedOut && !live) fallback = Math.min(fallback * 2, this.o.fallbackPollMs * 6);
        } else {
          await sleep(Math.min(delay, left), signal);
          delay = Math.min(this.o.pollMaxMs, delay * 1.5);
        }
        obj = await this.get(kind, id, signal, opts.call);
      }
    } finally {
      if (interest) this.watcher?.unwatch(id, interest);
    }
  }

  /** Waits until the object is gone (404). */
  async waitGone(kind: Kind, id: string, signal: AbortSignal | undefined, call?: CallOptions): Promise<void> {
    await this.waitFor(kind, id, signal, (o) => (o === undefined ? 'done' : 'pending'), {
      timeoutMs: this.o.deleteTimeoutMs,
      ...(call ? { call } : {}),
      onFail: (reason) => new KilnError('TIMEOUT', `${kind} ${id} was not deleted: ${reason}`),
    });
  }
}

/** The status field of any cloud object, for messages. */
export function statusOf(obj: unknown): string {
  if (obj === undefined || obj === null) return 'gone';
  const o = obj as { status?: unknown; provisioning_status?: unknown };
  return String(o.provisioning_status ?? o.status ?? 'unknown');
}
