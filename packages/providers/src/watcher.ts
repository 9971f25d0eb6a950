/**
 * Wakes waits early when the cloud says an object changed, so a wait costs one GET per real
 * change instead of a poll every few hundred milliseconds. Events are a hint: a wait still polls
 * (rarely while the feed is live, i.e. events or keep-alives keep arriving; on a short fallback
 * interval otherwise), and a missed event (stream down, stalled, gap) only costs latency.
 */
import { onAbort, type ChangeEvent, type Kind } from '@kiln/sim-cloud';
import type { Logger } from '@kiln/core';
import type { ObjectChange } from '@kiln/engine';

/** The change feed of a cloud (the sim's SSE `/events`; a real cloud's notifications could feed it too). */
export interface ChangeFeed {
  /**
   * `onPing` on every keep-alive: a feed that stays silent (no event, no keep-alive) for the
   * watcher's `stallMs` counts as stalled and is reconnected, so a feed without keep-alives makes
   * waits poll whenever the cloud is quiet.
   */
  follow(opts: { kinds?: Kind[]; signal?: AbortSignal; onEvent: (e: ChangeEvent) => void; onGap?: (seq: number) => void; onOpen?: () => void; onPing?: () => void }): Promise<void>;
}

/** Interest in one object: marked dirty by an event, so a change between a GET and the wait is not lost. */
export interface Interest {
  dirty: boolean;
  wake: (() => void) | undefined;
  /** The object as the last event showed it (undefined obj: deleted); absent when a GET is needed. */
  latest: { obj: unknown } | undefined;
}

/**
 * Interest in the objects created under one idempotency key, registered before the create call:
 * the events of the object it returns that arrive before the wait for it begins (the feed can
 * beat the create's answer) are kept, by object id, for that wait.
 */
export interface KeyInterest {
  readonly seen: Map<string, { obj: unknown }>;
  /** Events may have been missed (the feed reconnected or had a gap): the wait must GET first. */
  lost: boolean;
}

export class ChangeWatcher {
  private readonly interests = new Map<string, Set<Interest>>();
  private readonly keyInterests = new Map<string, Set<KeyInterest>>();
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;
  private readonly watchdog: NodeJS.Timeout;
  /** The current connection, aborted when it stalls. */
  private conn: AbortController | undefined;
  private lastHeard = 0;
  /** How late the last event arrived after the change it reports (the cloud's `at`). */
  private lagMs = 0;
  connected = false;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
    private readonly reconnectMs = 1_000,
    /** A connected feed silent for this long (no event, no keep-alive) is stalled. */
    readonly stallMs = 45_000,
    /**
     * A feed whose last event came this much after the change it reports is lagging (a busy
     * process reads it late): waits then poll as well, since a GET answers sooner than the feed.
     */
    readonly maxLagMs = 5_000,
  ) {
    this.done = this.run();
    // A stalled feed is dropped: its waits are woken to look for themselves, and it reconnects.
    this.watchdog = setInterval(() => {
      if (this.connected && !this.live) {
        this.log.debug({ silentMs: Date.now() - this.lastHeard }, 'change feed stalled; reconnecting');
        this.conn?.abort();
      }
    }, Math.max(1, Math.floor(stallMs / 3)));
    this.watchdog.unref();
  }

  /**
   * Connected, heard from (an event or a keep-alive) within `stallMs` and not lagging: silence
   * about an object means it did not change.
   */
  get live(): boolean {
    return this.connected && Date.now() - this.lastHeard <= this.stallMs && this.lagMs <= this.maxLagMs;
  }

  private heard(): void {
    this.lastHeard = Date.now();
  }

  private async run(): Promise<void> {
    while (!this.ac.signal.aborted) {
      const conn = (this.conn = new AbortController());
      const stop = () => conn.abort();
      this.ac.signal.addEventListener('abort', stop, { once: true });
      try {
        await this.feed.follow({
          signal: conn.signal,
          onOpen: () => {
            this.heard();
            this.connected = true;
            this.wakeAll();
          },
          onEvent: (e) => {
            this.heard();
            const at = Date.parse(e.at);
            if (!Number.isNaN(at)) this.lagMs = Math.max(0, this.lastHeard - at);
            if (e.id) this.wakeId(e);
            else this.wakeAll();
          },
          onGap: () => {
            this.heard();
            this.wakeAll();
          },
          onPing: () => this.heard(),
        });
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'change feed down; waits fall back to polling');
      }
      this.ac.signal.removeEventListener('abort', stop);
      this.connected = false;
      // Waits sleeping on the feed look for themselves (and poll while it is down).
      this.wakeAll();
      if (this.ac.signal.aborted) return;
      await new Promise((r) => setTimeout(r, this.reconnectMs));
    }
  }

  /** The event carries the object as the API shows it, so the woken wait needs no GET. */
  private wakeId(e: ChangeEvent): void {
    const latest = e.type === 'deleted' ? { obj: undefined } : e.object ? { obj: e.object } : undefined;
    for (const i of this.interests.get(e.id!) ?? []) {
      i.latest = latest;
      i.dirty = true;
      i.wake?.();
    }
    if (e.key) for (const k of this.keyInterests.get(e.key) ?? []) {
      if (latest) k.seen.set(e.id!, latest);
      else k.lost = true;
    }
  }

  private wakeAll(): void {
    for (const set of this.interests.values()) for (const i of set) {
      i.latest = undefined;
      i.dirty = true;
      i.wake?.();
    }
    for (const set of this.keyInterests.values()) for (const k of set) k.lost = true;
  }

  watchKey(key: string): KeyInterest {
    // Events arrive in order once connected (however late): only a feed that is down can miss them.
    const k: KeyInterest = { seen: new Map(), lost: !this.connected };
    let set = this.keyInterests.get(key);
    if (!set) this.keyInterests.set(key, (set = new Set()));
    set.add(k);
    return k;
  }

  /** Whether a create under this key is waiting for its object (it deals with that object's failures itself). */
  creating(key: string): boolean {
    return this.keyInterests.has(key);
  }

  unwatchKey(key: string, k: KeyInterest): void {
    const set = this.keyInterests.get(key);
    set?.delete(k);
    if (set?.size === 0) this.keyInterests.delete(key);
  }

  watch(id: string): Interest {
    const i: Interest = { dirty: false, wake: undefined, latest: undefined };
    let set = this.interests.get(id);
    if (!set) this.interests.set(id, (set = new Set()));
    set.add(i);
    return i;
  }

  unwatch(id: string, i: Interest): void {
    const set = this.interests.get(id);
    set?.delete(i);
    if (set?.size === 0) this.interests.delete(id);
  }

  /** Resolves when the object changed since the last wait, after `ms`, or when the signal aborts (the caller's next sleep throws). */
  wait(i: Interest, ms: number, signal?: AbortSignal): Promise<void> {
    if (i.dirty) {
      i.dirty = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(t);
        dropAbort();
        i.wake = undefined;
        i.dirty = false;
        resolve();
      };
      const t = setTimeout(finish, ms);
      const dropAbort = onAbort(signal, finish);
      i.wake = finish;
    });
  }

  async close(): Promise<void> {
    clearInterval(this.watchdog);
    this.ac.abort();
    await this.done;
  }
}

/**
 * Passes a feed's events on to listeners besides the one following it (the gateway's watcher),
 * so the engine's change hook shares the watcher's single connection to the cloud.
 */
export class ChangeTee implements ChangeFeed {
  private readonly listeners = new Set<(e: ChangeEvent) => void>();

  constructor(private readonly feed: ChangeFeed) {}

  follow(opts: Parameters<ChangeFeed['follow']>[0]): Promise<void> {
    return this.feed.follow({
      ...opts,
      onEvent: (e) => {
        opts.onEvent(e);
        for (const l of this.listeners) l(e);
      },
    });
  }

  /** Adds a listener; returns its removal. */
  listen(l: (e: ChangeEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

const ERROR_STATES: ReadonlySet<string> = new Set(['ERROR', 'OFFLINE']);

/**
 * The change the engine should look at, if any: an object made by a resource (it carries the
 * idempotency key) that is gone or went to an error state (status ERROR, a load-balancer object
 * operating ERROR/OFFLINE, a port whose binding failed). Ordinary progress (BUILD -> ACTIVE,
 * PENDING_*) is left alone: the actor making the object is waiting for it anyway.
 */
export function notableChange(e: ChangeEvent): ObjectChange | null {
  if (!e.key) return null;
  if (e.type === 'deleted') return { key: e.key, change: 'deleted' };
  if (e.type !== 'updated') return null;
  const status = String(e.status ?? '').toUpperCase();
  const operating = String(e.operating_status ?? '').toUpperCase();
  const pending = status.startsWith('PENDING_') || status === 'BUILD';
  const broken = status === 'ERROR' || (!pending && ERROR_STATES.has(operating)) || e.object?.['binding:vif_type'] === 'binding_failed';
  return broken ? { key: e.key, change: 'error' } : null;
}
