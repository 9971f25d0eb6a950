/**
 * Wakes waits early when the cloud says an object changed, so a wait costs one GET per real
 * change instead of a poll every few hundred milliseconds. Events are a hint: every wait still
 * polls on a slow fallback interval, and a missed event (stream down, gap) only costs latency.
 */
import type { ChangeEvent, Kind } from '@kiln/sim-cloud';
import type { Logger } from '@kiln/core';
import type { ObjectChange } from '@kiln/engine';

/** The change feed of a cloud (the sim's SSE `/events`; a real cloud's notifications could feed it too). */
export interface ChangeFeed {
  follow(opts: { kinds?: Kind[]; signal?: AbortSignal; onEvent: (e: ChangeEvent) => void; onGap?: (seq: number) => void; onOpen?: () => void }): Promise<void>;
}

/** Interest in one object: marked dirty by an event, so a change between a GET and the wait is not lost. */
export interface Interest {
  dirty: boolean;
  wake: (() => void) | undefined;
  /** The object as the last event showed it (undefined obj: deleted); absent when a GET is needed. */
  latest: { obj: unknown } | undefined;
}

export class ChangeWatcher {
  private readonly interests = new Map<string, Set<Interest>>();
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;
  connected = false;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
    private readonly reconnectMs = 1_000,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.ac.signal.aborted) {
      try {
        await this.feed.follow({
          signal: this.ac.signal,
          onOpen: () => {
            this.connected = true;
            this.wakeAll();
          },
          onEvent: (e) => (e.id ? this.wakeId(e) : this.wakeAll()),
          onGap: () => this.wakeAll(),
        });
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'change feed down; waits fall back to polling');
      }
      this.connected = false;
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
  }

  private wakeAll(): void {
    for (const set of this.interests.values()) for (const i of set) {
      i.latest = undefined;
      i.dirty = true;
      i.wake?.();
    }
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
        signal?.removeEventListener('abort', finish);
        i.wake = undefined;
        i.dirty = false;
        resolve();
      };
      const t = setTimeout(finish, ms);
      signal?.addEventListener('abort', finish, { once: true });
      i.wake = finish;
    });
  }

  async close(): Promise<void> {
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
